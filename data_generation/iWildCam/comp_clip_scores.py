"""CLIPScore filtering of the iWildCam synthetic spectrum (the generic data_generation/comp_clip_scores.py with --dataset iwildcam).

Scores every synthetic image against its prompt (image–text) and its real source (image–image), keeps those
with image–text similarity >= --threshold (default: the dataset's), and writes into --syn_path: clip_scores.csv
(one row per image), clip_score.pkl / filtered_results.pkl (the reference's format), filter reports, a
histogram figure, and the embedding cache clip_cache/. See docs/filtering-and-training-data.md.

    python data_generation/iWildCam/comp_clip_scores.py --syn_path runs/gen/iwildcam \
        --real_path data/wilds/iwildcam_v2.0/train
"""

from __future__ import annotations

from discl import clipscore
from discl.cli import run_cli

DATASET = "iwildcam"


def main(argv=None) -> int:
    """Score, filter and report (see discl.clipscore.main)."""
    return clipscore.main(argv, default_dataset=DATASET, description=__doc__)


if __name__ == "__main__":
    run_cli(main)
