"""FLYP fine-tuning on iWildCam with a synthetic-to-real guidance curriculum (DisCL Phase 2, docs/train-iwildcam.md).

Single process:   python curriculum/iWildCam/train.py --data-root WILDS --train-table DATA/train.csv \\
                      --val-table DATA/validate.csv --curriculum adaptive --output-dir OUT
Multi-GPU (DDP):  torchrun --nproc_per_node N curriculum/iWildCam/train.py ...   (--batch-size is global)

Without --curriculum this trains the FLYP baseline (real images only), not the paper's method: DisCL's
iWildCam runs use --curriculum adaptive (as scripts/train_iwildcam.sh does). The same as
``curriculum/train.py --trainer flyp --dataset iwildcam`` (``--wilds-root`` = ``--data-root``).
"""

from __future__ import annotations

import argparse
from typing import Sequence

from discl.cli import run_cli
from discl.training import cli

DATASET, TRAINER = "iwildcam", "flyp"


def get_args_parser() -> argparse.ArgumentParser:
    """The trainer's flags; defaults are the paper's (ViT-B/16 OpenAI, lr 1e-5, wd 0.2, batch 256, 20 epochs)."""
    return cli.get_args_parser(TRAINER, DATASET, description=__doc__, root_aliases=("--wilds-root",))


def main(argv: Sequence[str] | None = None) -> int:
    """Train, then print the per-epoch metrics, the adaptive choices and the epoch selected on ID-val."""
    return cli.main(argv, DATASET, TRAINER, description=__doc__, root_aliases=("--wilds-root",))


if __name__ == "__main__":
    run_cli(main)
