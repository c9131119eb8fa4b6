"""Curriculum training on ImageNet-LT (spec §6): ResNet-10 from a long-tail checkpoint, synthetic → real.

Each epoch draws a fresh 30% of the real non-tail images and fills the tail (few-shot classes) to 13.6% of the
epoch with every real tail image plus synthetic tail images of the scheduled guidance level; the working
schedule is 10 → 30 → 50 → real at epochs 0, 14, 29, 44. Evaluates top-1 overall and on many / medium / few
classes every epoch on val and test, keeps the checkpoint of the best *validation* epoch.

    python curriculum/ImageNet_LT/train.py --data-root ROOT --train-list DATA/train.txt \\
        --init BASELINE/checkpoints/best.pt --output-dir runs/lt_ce_discl [--loss balanced_softmax] \\
        [--curriculum adaptive --curriculum-val-list DATA/validate.txt]

Multi-GPU: ``torchrun --nproc_per_node N curriculum/ImageNet_LT/train.py ...`` (the batch is global).
"""

from __future__ import annotations

import argparse
from typing import Sequence

from discl import lt
from discl.cli import run_cli, setup_logging


def get_args_parser() -> argparse.ArgumentParser:
    """Flags of the curriculum trainer; defaults are the paper's (spec §6)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    return lt.add_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Train, then print the per-epoch many / medium / few / overall table."""
    args = get_args_parser().parse_args(argv)
    setup_logging(args.verbose)
    config = lt.config_from_args(args)
    lt.warn_if_random_start(config)
    if lt.train(config) is not None:  # the main process reports
        print(lt.report(args.output_dir))
    return 0


if __name__ == "__main__":
    run_cli(main)
