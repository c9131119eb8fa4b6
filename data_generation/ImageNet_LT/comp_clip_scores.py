"""CLIPScore filtering of the ImageNet-LT synthetic spectrum (spec §3).

Scores every synthetic image against its prompt (image–text) and its real source (image–image), keeps those
with image–text similarity >= --threshold, and writes into --syn_path: clip_scores.csv (one row per image),
clip_score.pkl / filtered_results.pkl (the reference's format), filter reports, a histogram figure, and the
embedding cache clip_cache/. See docs/filtering-and-training-data.md.

    python data_generation/ImageNet_LT/comp_clip_scores.py --syn_path runs/gen/imagenet_lt \
        --real_path data/imagenet
"""

from __future__ import annotations

import argparse

from discl.cli import run_cli, setup_logging
from discl.clipscore import add_scoring_args, filter_reports, run_scoring

DATASET = "imagenet_lt"


def get_args_parser() -> argparse.ArgumentParser:
    """The scoring flags with ImageNet-LT's defaults (threshold 0.30, native image size)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_scoring_args(parser, DATASET)
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    setup_logging(args.verbose)
    table, stats, paths = run_scoring(args, DATASET)
    _, by_guidance = filter_reports(table)
    print(by_guidance.to_string(index=False, float_format="%.3f"))
    print(f"kept {int(table['keep'].sum())} of {len(table)} synthetic images (threshold {args.threshold}); "
          f"encoded {stats.texts_encoded} prompts, {stats.real_encoded} real, {stats.synthetic_encoded} synthetic "
          f"images; scores in {paths['clip_scores.csv']}")
    return 0


if __name__ == "__main__":
    run_cli(main)
