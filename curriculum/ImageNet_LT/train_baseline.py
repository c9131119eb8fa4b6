"""Plain training on the real long-tailed ImageNet-LT list (CE or Balanced Softmax), no synthetic data.

Produces the checkpoint that ``train.py --init`` starts from (and a classifier for choosing hard samples):
the same loop as the curriculum trainer with ``--curriculum none``, every real training image each epoch
(no down-sampling, no tail top-up), from scratch or from torchvision weights.

    python curriculum/ImageNet_LT/train_baseline.py --data-root ROOT --output-dir runs/lt_baseline_ce
    → runs/lt_baseline_ce/checkpoints/best.pt (best validation epoch) and last.pt, stats.tsv, summary.json
"""

from __future__ import annotations

import argparse
from typing import Sequence

from discl import lt
from discl.cli import run_cli, setup_logging

# What differs from the curriculum trainer: real data as it is, trained from scratch for longer.
BASELINE_DEFAULTS = dict(curriculum="none", guidance_levels=[100], downsample_ratio=1.0, tail_fraction=None, epochs=90,
                         curriculum_epoch=0)


def get_args_parser() -> argparse.ArgumentParser:
    """The curriculum trainer's flags with the baseline's defaults."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    lt.add_arguments(parser)
    parser.set_defaults(**BASELINE_DEFAULTS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Train the baseline, then print the per-epoch many / medium / few / overall table."""
    args = get_args_parser().parse_args(argv)
    setup_logging(args.verbose)
    if lt.train(lt.config_from_args(args)) is not None:  # the main process reports
        print(lt.report(args.output_dir))
    return 0


if __name__ == "__main__":
    run_cli(main)
