"""Curriculum training on ImageNet-LT (docs/train-imagenet-lt.md): ResNet-10 from a long-tail checkpoint.

Each pass draws a fresh 30% of the real non-tail images and fills the tail (few-shot classes) to 13.6% of the
pass with every real tail image plus synthetic tail images of the scheduled guidance level; the working
schedule is 10 → 30 → 50 → real at epochs 0, 14, 29, 44. Evaluates top-1 overall and on many / medium / few
classes every epoch on val and test and keeps the checkpoint of the best *validation* epoch.

    python curriculum/ImageNet_LT/train.py --data-root ROOT --train-table DATA/train.txt \\
        --init BASELINE/checkpoints/best.pt --output-dir runs/lt_ce_discl [--loss balanced_softmax] \\
        [--curriculum adaptive --val-table DATA/validate.txt]

The same as ``curriculum/train.py --trainer ce --dataset imagenet_lt``. Multi-GPU:
``torchrun --nproc_per_node N curriculum/ImageNet_LT/train.py ...`` (the batch is global).
"""

from __future__ import annotations

import argparse
from typing import Sequence

from discl.cli import run_cli
from discl.training import cli

DATASET, TRAINER = "imagenet_lt", "ce"


def get_args_parser() -> argparse.ArgumentParser:
    """Flags of the curriculum trainer; defaults are the paper's."""
    return cli.get_args_parser(TRAINER, DATASET, description=__doc__)


def main(argv: Sequence[str] | None = None) -> int:
    """Train, then print the per-epoch many / medium / few / overall table and the selected epoch."""
    return cli.main(argv, DATASET, TRAINER, description=__doc__)


if __name__ == "__main__":
    run_cli(main)
