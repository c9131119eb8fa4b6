"""Build the ImageNet-LT curriculum training data (spec §4, the reference's datacreation step).

From ImageNet_LT_train.txt and the scored synthetic spectrum (clip_scores.csv from comp_clip_scores.py),
write into --save_folder the list files train.txt and validate.txt (one 'relative/path label guidance' per
line: real rows, guidance 100, relative to --data-root; synthetic rows relative to --syn_path), data_roots.json
(those two roots) and levels.csv. See docs/filtering-and-training-data.md.

    python curriculum/ImageNet_LT/build_data.py --syn_path runs/gen/imagenet_lt --data-root data/imagenet \
        --save_folder runs/data/imagenet_lt
"""

from __future__ import annotations

import argparse

from discl.cli import run_cli, setup_logging
from discl.training_data import add_build_args, level_counts, run_build

DATASET = "imagenet_lt"


def get_args_parser() -> argparse.ArgumentParser:
    """The builder's flags with ImageNet-LT's defaults (guidance 10, 30, 50 + real, 100 validation images)."""
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
