"""Score a training split with a classifier (zero-shot CLIP or a trained checkpoint) and write the hard-sample CSV (DisCL Phase 1, step 1).

    python data_generation/make_hard_samples.py --dataset iwildcam --data-root /data/wilds \
        --model ViT-B-16 --pretrained openai --criterion misclassified --output hard_iwildcam.csv
    python data_generation/make_hard_samples.py --dataset imagenet_lt --data-root /data/imagenet \
        --criterion none --tail-classes --output hard_imagenet_lt.csv
    python data_generation/make_hard_samples.py --dataset folder --data-root /data/my_images --output hard.csv

Any registered dataset (--dataset). Writes the hard-sample CSV (the dataset's template columns), a scores CSV
with every scored image, and prints a per-class summary; --dry-run counts without loading a model; --criterion
none (the tail-classes rule alone) loads none either. See docs/hard-samples-and-prompts.md.
"""

from __future__ import annotations

from discl import hard_samples
from discl.cli import run_cli


def main(argv=None, default_dataset: str | None = None) -> int:
    """Score, select, write both CSVs, print the summary (see discl.hard_samples.main); --dataset is required."""
    return hard_samples.main(argv, default_dataset, __doc__)


if __name__ == "__main__":
    run_cli(main)
