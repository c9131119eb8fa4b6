"""CLIPScore filtering of a synthetic spectrum, for any registered dataset (DisCL Phase 1, step 3).

Scores every synthetic image against its prompt (image–text) and its real source (image–image), keeps those
with image–text similarity >= --threshold (default: the dataset's clip_threshold), and writes into --syn-path:
clip_scores.csv (one row per image), clip_score.pkl / filtered_results.pkl (the reference's format), filter
reports, a histogram figure, and the embedding cache clip_cache/. See docs/filtering-and-training-data.md.

    python data_generation/comp_clip_scores.py --dataset folder --syn-path runs/gen/my_data \
        --real-path /data/my_images
"""

from __future__ import annotations

from discl import clipscore
from discl.cli import run_cli


def main(argv=None) -> int:
    """Score, filter and report (see discl.clipscore.main); --dataset is required."""
    return clipscore.main(argv, default_dataset=None, description=__doc__)


if __name__ == "__main__":
    run_cli(main)
