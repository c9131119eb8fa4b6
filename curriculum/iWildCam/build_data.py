"""Build the iWildCam curriculum training data (spec §4, the reference's datacreation step).

From the WILDS train split and the scored synthetic spectrum (clip_scores.csv from comp_clip_scores.py),
write into --save_folder: train.csv (tab-separated: title, filepath, label, strength, guidance, seed,
img_id; two caption templates per row), validate.csv (the curriculum-validation set, first template only)
and levels.csv (rows and images per guidance level). See docs/filtering-and-training-data.md.

    python curriculum/iWildCam/build_data.py --syn_path runs/gen/iwildcam --data-root data/wilds \
        --save_folder runs/data/iwildcam
"""

from __future__ import annotations

import argparse

from discl.cli import run_cli, setup_logging
from discl.training_data import add_build_args, level_counts, run_build

DATASET = "iwildcam"


def get_args_parser() -> argparse.ArgumentParser:
    """The builder's flags with iWildCam's defaults (guidance >= 50, 2000 validation images)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_build_args(parser, DATASET)
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    setup_logging(args.verbose)
    tables, paths = run_build(args, DATASET)
    print(level_counts(tables).to_string(index=False))
    print(f"levels {tables.levels}; {tables.validation['key'].nunique()} validation images; "
          f"wrote {paths['train']} and {paths['validation']}")
    return 0


if __name__ == "__main__":
    run_cli(main)
