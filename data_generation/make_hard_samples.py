"""Score a training split with a classifier (zero-shot CLIP or a trained checkpoint) and write the hard-sample CSV (DisCL Phase 1, step 1).

    python data_generation/make_hard_samples.py --dataset iwildcam --root /data/wilds \
        --model ViT-B-16 --pretrained openai --criterion misclassified --output hard_iwildcam.csv
    python data_generation/make_hard_samples.py --dataset imagenet_lt --root /data/imagenet \
        --list ImageNet_LT_train.txt --criterion none --tail-classes --output hard_imagenet_lt.csv

Writes the hard-sample CSV (the reference's template columns), a scores CSV with every scored image, and
prints a per-class summary.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from discl import hard_samples
from discl.cli import run_cli, setup_logging
from discl.data.hard_sample_csv import write_hard_sample_csv
from discl.errors import InputError
from discl.fileio import atomic_write_csv
from discl.models import default_device

log = logging.getLogger("make_hard_samples")


def get_args_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=("iwildcam", "imagenet_lt"), required=True)
    data.add_argument("--root", required=True, help="WILDS root dir (holds iwildcam_v2.0/) or ImageNet root")
    data.add_argument("--list", default="ImageNet_LT_train.txt",
                      help="ImageNet-LT list to score (relative to --root or a path)")
    model = parser.add_argument_group("classifier")
    model.add_argument("--model", default=None, help="open_clip model name (default ViT-B-16, or the checkpoint's)")
    model.add_argument("--pretrained", default="openai", help="open_clip pretrained tag ('' = random init)")
    model.add_argument("--checkpoint", default=None,
                       help="a FLYP (open_clip) or ImageNet-LT (ResNet) checkpoint saved as {'model', 'args'}")
    model.add_argument("--device", default=None, help="default: cuda if available")
    model.add_argument("--batch-size", type=int, default=128)
    model.add_argument("--workers", type=int, default=4, help="DataLoader workers")
    model.add_argument("--seed", type=int, default=0, help="torch seed (matters only for random init)")
    select = parser.add_argument_group("selection")
    select.add_argument("--criterion", choices=hard_samples.CRITERIA, default="misclassified",
                        help="both = wrong AND low prob; either = wrong OR low prob; none = tail classes only")
    select.add_argument("--max-prob", type=float, default=0.5, help="'low prob': true-class probability below this")
    select.add_argument("--tail-classes", action="store_true",
                        help="also take every image of the few-shot classes (the ImageNet-LT reference's rule)")
    select.add_argument("--few-max", type=int, default=20, help="few-shot: fewer than this many training images")
    select.add_argument("--many-min", type=int, default=100)
    select.add_argument("--split-convention", choices=("reference", "standard"), default="reference")
    select.add_argument("--per-class-cap", type=int, default=None,
                        help="at most this many per class (lowest true-class probability first)")
    out = parser.add_argument_group("output")
    out.add_argument("--output", required=True, help="hard-sample CSV to write")
    out.add_argument("--scores", default=None, help="scores CSV (default: <output stem>_scores.csv)")
    out.add_argument("--summary-rows", type=int, default=30, help="classes shown in the summary (0 = all)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Reject flag values that make no sense before any model is loaded."""
    if not 0.0 <= args.max_prob <= 1.0:
        raise InputError(None, f"--max-prob must be in [0, 1], got {args.max_prob}")
    if args.per_class_cap is not None and args.per_class_cap < 0:
        raise InputError(None, f"--per-class-cap must be >= 0, got {args.per_class_cap}")
    if args.batch_size < 1:
        raise InputError(None, f"--batch-size must be >= 1, got {args.batch_size}")
    if args.criterion == "none" and not args.tail_classes:
        raise InputError(None, "--criterion none selects nothing without --tail-classes")


def main(argv=None) -> int:
    """Load data and classifier, score, select, write both CSVs, print the summary."""
    args = get_args_parser().parse_args(argv)
    setup_logging(args.verbose)
    check_args(args)
    if args.dataset == "iwildcam":
        images = hard_samples.iwildcam_training_images(args.root)
    else:
        images = hard_samples.imagenet_lt_training_images(args.root, args.list)
    log.info("%s: %d training images, %d classes", args.dataset, len(images.paths), len(images.class_names))

    device = args.device or default_device()
    torch.manual_seed(args.seed)
    classifier = hard_samples.load_classifier(args.model, args.pretrained, args.checkpoint, device, images)
    log.info("classifier: %s", classifier.description)
    scores = hard_samples.score_images(classifier, images, device, args.batch_size, args.workers)

    tail = []
    if args.tail_classes:
        tail = hard_samples.tail_class_ids(images.labels, args.many_min, args.few_max, args.split_convention)
        log.info("few-shot classes (< %d images): %s", args.few_max, tail)
    hard = hard_samples.select_hard(scores, args.criterion, args.max_prob, tail, args.per_class_cap,
                                    sorted(images.never_hard))

    output = Path(args.output)
    scores_path = Path(args.scores) if args.scores else output.with_name(output.stem + "_scores.csv")
    atomic_write_csv(scores_path, scores.assign(hard=hard))
    if not hard.any():
        log.warning("no image met the criteria: %s has a header and no rows", output)
    write_hard_sample_csv(scores[hard], output, args.dataset)

    summary = hard_samples.per_class_summary(scores, hard)
    print(hard_samples.format_summary(summary, args.summary_rows or None))
    print(f"{int(hard.sum())} hard of {len(scores)} images -> {output} (scores: {scores_path})")
    return 0


if __name__ == "__main__":
    run_cli(main)
