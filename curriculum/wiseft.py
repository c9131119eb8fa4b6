"""WiSE-FT for a FLYP run: interpolate its zero-shot and fine-tuned weights, α = 0, 0.1, …, 1 (docs/experiments.md).

    python curriculum/wiseft.py --run-dir runs/iwildcam/flyp_adaptive
    → RUN_DIR/wiseft/wiseft.tsv (metrics per α), wiseft.json (α chosen on ID-val and its metrics), wiseft.{pdf,png}

Dataset, model, pretrained weights and seed come from the run's checkpoint; each θ_α is evaluated on the
dataset's evaluation splits like a training epoch, and α is chosen on the selection split (never on a test split).
"""

from __future__ import annotations

import argparse
from typing import Sequence

from discl.cli import run_cli, setup_logging
from discl.config import add_arguments, from_args
from discl.runrecord import RunRecord
from discl.wiseft import WiseFTConfig, report, run_wiseft


def get_args_parser() -> argparse.ArgumentParser:
    """The flags of ``WiseFTConfig``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, WiseFTConfig)
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate every α, print the curve of the selection metric and the chosen α."""
    args = get_args_parser().parse_args(argv)
    setup_logging(args.verbose)
    with RunRecord("wiseft", argv):  # RUN_DIR/wiseft/run_records/: command, versions, times, log
        result = run_wiseft(from_args(WiseFTConfig, args))
    print(report(result))
    return 0


if __name__ == "__main__":
    run_cli(main)
