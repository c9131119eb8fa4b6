"""Plain training on the real long-tailed ImageNet-LT list (CE or Balanced Softmax), no synthetic data.

Produces the checkpoint that ``train.py --init`` starts from (and a classifier for choosing hard samples):
the curriculum trainer with ``--curriculum none`` and every real training image in each epoch (no
down-sampling, no tail top-up), from scratch or from torchvision weights. Without ``--train-table`` the
training images are ``ImageNet_LT_train.txt``.

    python curriculum/ImageNet_LT/train_baseline.py --data-root ROOT --output-dir runs/lt_baseline_ce
    → runs/lt_baseline_ce/checkpoints/best.pt (best validation epoch) and last.pt, stats.tsv, summary.json
"""

from __future__ import annotations

import argparse
from typing import Sequence

from discl.cli import run_cli
from discl.training import cli

DATASET, TRAINER = "imagenet_lt", "ce"
# What differs from the curriculum trainer: real data as it is, trained from scratch for longer.
BASELINE_DEFAULTS = dict(curriculum="none", guidance_levels=[100], downsample_ratio=1.0, tail_fraction=None,
                         epochs=90, curriculum_epoch=0)


def get_args_parser() -> argparse.ArgumentParser:
    """The curriculum trainer's flags with the baseline's defaults."""
    return cli.get_args_parser(TRAINER, DATASET, BASELINE_DEFAULTS, description=__doc__)


def main(argv: Sequence[str] | None = None) -> int:
    """Train the baseline, then print the per-epoch many / medium / few / overall table."""
    return cli.main(argv, DATASET, TRAINER, BASELINE_DEFAULTS, description=__doc__)


if __name__ == "__main__":
    run_cli(main)
