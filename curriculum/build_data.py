"""Build the curriculum training data of any registered dataset (between DisCL's two phases).

From the dataset's training images and the scored synthetic spectrum (clip_scores.csv from
comp_clip_scores.py), write into --save-folder: train.csv (tab-separated: title, filepath, label, strength,
guidance, seed, img_id; one row per caption template), validate.csv (the curriculum-validation set, first
template only), levels.csv, and the dataset's reference tables where it has them. The minimum guidance, the
kept levels and the validation size default to the dataset's. See docs/filtering-and-training-data.md.

    python curriculum/build_data.py --dataset folder --data-root /data/my_images \
        --syn-path runs/gen/my_data --save-folder runs/data/my_data
"""

from __future__ import annotations

from discl import training_data
from discl.cli import run_cli


def main(argv=None) -> int:
    """Build the training and curriculum-validation tables (see discl.training_data.main); --dataset is required."""
    return training_data.main(argv, default_dataset=None, description=__doc__)


if __name__ == "__main__":
    run_cli(main)
