"""Build the iWildCam curriculum training data (the generic curriculum/build_data.py with --dataset iwildcam).

From the WILDS train split and the scored synthetic spectrum (clip_scores.csv from comp_clip_scores.py),
write into --save_folder: train.csv (tab-separated: title, filepath, label, strength, guidance, seed,
img_id; two caption templates per row), validate.csv (the curriculum-validation set, first template only)
and levels.csv (rows and images per guidance level). See docs/filtering-and-training-data.md.

    python curriculum/iWildCam/build_data.py --syn_path runs/gen/iwildcam --data-root data/wilds \
        --save_folder runs/data/iwildcam
"""

from __future__ import annotations

from discl import training_data
from discl.cli import run_cli

DATASET = "iwildcam"


def main(argv=None) -> int:
    """Build the training and curriculum-validation tables (see discl.training_data.main)."""
    return training_data.main(argv, default_dataset=DATASET, description=__doc__)


if __name__ == "__main__":
    run_cli(main)
