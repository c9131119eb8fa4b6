"""Score a training split with a classifier (zero-shot CLIP or a trained checkpoint) and write the hard-sample CSV (DisCL Phase 1, step 1).

    python data_generation/make_hard_samples.py --dataset iwildcam --data-root /data/wilds \
        --model ViT-B-16 --pretrained openai --criterion misclassified --output hard_iwildcam.csv
    python data_generation/make_hard_samples.py --dataset imagenet_lt --data-root /data/imagenet \
        --criterion none --tail-classes --output hard_imagenet_lt.csv
    python data_generation/make_hard_samples.py --dataset folder --data-root /data/my_images --output hard.csv

Any registered dataset (--dataset). Writes the hard-sample CSV (the dataset's template columns), a scores CSV
with every scored image, and prints a per-class summary. See docs/hard-samples-and-prompts.md.
"""

from __future__ import annotations

import argparse
import logging

from discl import hard_samples
from discl.cli import run_cli, setup_logging
from discl.config import add_arguments
from discl.config import from_args as config_from_args
from discl.datasets import dataset_parser
from discl.datasets import from_args as dataset_from_args
from discl.hard_samples import HardSampleConfig

log = logging.getLogger("make_hard_samples")

GROUPS = {
    "classifier": ("model", "pretrained", "checkpoint", "device", "batch_size", "workers", "seed"),
    "selection": ("criterion", "max_prob", "tail_classes", "few_max", "many_min", "split_convention",
                  "per_class_cap"),
    "output": ("output", "scores", "summary_rows"),
}


def get_args_parser(default_dataset: str | None = None) -> argparse.ArgumentParser:
    """The command-line flags: the dataset flags, then one group per part of HardSampleConfig."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     parents=[dataset_parser(required_root=True, default=default_dataset)])
    add_arguments(parser.add_argument_group("training images"), HardSampleConfig, only=("list",))
    for title, fields in GROUPS.items():
        add_arguments(parser.add_argument_group(title), HardSampleConfig, only=fields)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv=None, default_dataset: str | None = None) -> int:
    """Load data and classifier, score, select, write both CSVs, print the summary."""
    args = get_args_parser(default_dataset).parse_args(argv)
    setup_logging(args.verbose)
    dataset = dataset_from_args(args)
    config = config_from_args(HardSampleConfig, args)
    hard_samples.check_config(config, dataset)
    scores, hard = hard_samples.find_hard_samples(config, dataset)
    output, scores_path = hard_samples.write_hard_samples(scores, hard, config, dataset)
    summary = hard_samples.per_class_summary(scores, hard)
    print(hard_samples.format_summary(summary, config.summary_rows or None))
    print(f"{int(hard.sum())} hard of {len(scores)} images -> {output} (scores: {scores_path})")
    return 0


if __name__ == "__main__":
    run_cli(main)
