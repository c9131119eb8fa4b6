"""Build the ImageNet-LT curriculum training data (the generic curriculum/build_data.py with --dataset imagenet_lt).

From ImageNet_LT_train.txt and the scored synthetic spectrum (clip_scores.csv from comp_clip_scores.py),
write into --save_folder the canonical train.csv / validate.csv, the reference's list files train.txt and
validate.txt (+ its copy train_curri.txt; one 'path label guidance train_cnt' per line: real rows, guidance 100,
relative to --data-root; synthetic rows absolute), data_roots.json (the two roots) and levels.csv.
See docs/filtering-and-training-data.md.

    python curriculum/ImageNet_LT/build_data.py --syn_path runs/gen/imagenet_lt --data-root data/imagenet \
        --save_folder runs/data/imagenet_lt
"""

from __future__ import annotations

from discl import training_data
from discl.cli import run_cli

DATASET = "imagenet_lt"


def main(argv=None) -> int:
    """Build the training and curriculum-validation tables (see discl.training_data.main)."""
    return training_data.main(argv, default_dataset=DATASET, description=__doc__)


if __name__ == "__main__":
    run_cli(main)
