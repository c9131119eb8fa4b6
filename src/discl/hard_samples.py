"""Scoring real training images with a classifier and choosing the hard ones (DisCL Phase 1, step 1).

Any registered dataset: its training images come from ``dataset.training_images()``, the zero-shot head from
``dataset.text_names()`` and ``dataset.zeroshot_templates()``; classes in ``dataset.never_regenerated`` are never
chosen and the tail-classes rule applies only where ``dataset.supports_tail_rule``. The selection rules are pure
functions over a score table (one row per image: true class, true-class probability, prediction), so they are
tested on hand-made tables; scoring is a batched DataLoader loop.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from discl.config import option
from discl.datasets.base import Dataset, RealImages
from discl.distributed import check_device
from discl.errors import InputError
from discl.generation.config import SEED_LIMIT, check_inputs_kept, check_number
from discl.imageio import decode
from discl.progress import progress
from discl.zeroshot import build_zeroshot_head, zeroshot_logits

log = logging.getLogger(__name__)

CRITERIA = ("misclassified", "low-prob", "both", "either", "none")
CONVENTIONS = ("reference", "standard")
SCORE_COLUMNS = ["real_path", "image_stem", "class_id", "class_name", "true_prob", "pred_id", "pred_name",
                 "pred_prob", "misclassified"]


@dataclass
class HardSampleConfig:
    """How make_hard_samples.py scores and selects (the dataset comes separately, from the registry)."""

    train_list: str | None = option(None, "another list of training images to score, for datasets with list "
                                          "files, relative to --data-root or a path; none = the dataset's training "
                                          "images", aliases=("--list",))
    model: str | None = option(None, "open_clip model name; none = ViT-B-16, or the checkpoint's")
    pretrained: str = option("openai", "open_clip pretrained tag ('' = random init)")
    checkpoint: str | None = option(None, "a FLYP (open_clip) or ImageNet-LT (ResNet) checkpoint saved as "
                                          "{'model', 'args'} (curriculum/train.py's best.pt)")
    device: str | None = option(None, "torch device; none = cuda if available")
    batch_size: int = option(128, "images per classifier call")
    workers: int = option(4, "image-decoding worker processes (DataLoader)")
    seed: int = option(0, "torch seed (matters only for random init)")
    criterion: str = option("misclassified", "hard = wrong (misclassified), true-class probability below "
                            "--max-prob (low-prob), both, either, or none (tail classes only: no classifier is "
                            "loaded unless --per-class-cap needs its probabilities)", choices=CRITERIA)
    max_prob: float = option(0.5, "'low prob': true-class probability below this")
    tail_classes: bool = option(False, "also take every image of the few-shot classes (the ImageNet-LT "
                                       "reference's rule; datasets with supports_tail_rule)")
    few_max: int = option(20, "few-shot: fewer than this many training images")
    many_min: int = option(100, "many-shot: at least this many training images (reference cut)")
    split_convention: str = option("reference", "many/medium/few cut: reference (many >= 100) or standard "
                                                "(many > 100)", choices=CONVENTIONS)
    per_class_cap: int | None = option(None, "at most this many per class (lowest true-class probability first)")
    output: str = option("", "hard-sample CSV to write (the --data-csv of gene_img.py)", required=True)
    scores: str | None = option(None, "scores CSV; none = <output stem>_scores.csv")
    summary_rows: int = option(30, "classes shown in the summary (0 = all)")


def check_config(config: HardSampleConfig, dataset: Dataset) -> None:
    """Reject settings that make no sense before any data or model is loaded."""
    if not 0.0 <= config.max_prob <= 1.0:
        raise InputError(None, f"--max-prob must be in [0, 1], got {config.max_prob}")
    if config.per_class_cap is not None and config.per_class_cap < 0:
        raise InputError(None, f"--per-class-cap must be >= 0, got {config.per_class_cap}")
    if config.batch_size < 1:
        raise InputError(None, f"--batch-size must be >= 1, got {config.batch_size}")
    if config.tail_classes and not dataset.supports_tail_rule:
        raise InputError(None, f"--tail-classes: the {dataset.name} dataset has no tail-classes rule")
    if config.criterion == "none" and not config.tail_classes:
        raise InputError(None, "--criterion none selects nothing without --tail-classes")
    for flag, value, low in (("--workers", config.workers, 0), ("--few-max", config.few_max, 0),
                             ("--many-min", config.many_min, config.few_max),
                             ("--summary-rows", config.summary_rows, 0)):
        check_number(flag, value, low)
    check_number("--seed", config.seed, 0, SEED_LIMIT, high_open=True)
    if config.device is not None:
        check_device(config.device)
    for flag, path in (("--output", config.output), ("--scores", config.scores)):
        if path and Path(path).is_dir():
            raise InputError(path, f"{flag} is a folder; name the CSV file to write")
    if config.checkpoint is not None and not Path(config.checkpoint).is_file():
        raise InputError(config.checkpoint, "--checkpoint: no such file")
    lists = [config.train_list] + ([Path(dataset.root) / config.train_list] if config.train_list and dataset.root
                                   else [])
    check_inputs_kept([("--output", config.output), ("--scores", scores_path(config))],
                      [("--checkpoint", config.checkpoint)] + [("--train-list", path) for path in lists])


def scores_path(config: HardSampleConfig) -> Path:
    """The scores CSV: ``--scores``, else ``<output stem>_scores.csv`` beside the hard-sample CSV."""
    output = Path(config.output)
    return Path(config.scores) if config.scores else output.with_name(output.stem + "_scores.csv")


def check_labels(images: RealImages, num_classes: int) -> None:
    """Every label must name a class of the dataset; the error names the file and row that listed it."""
    if not images.labels:
        raise InputError(images.source, "no training images")
    bad = next((i for i, label in enumerate(images.labels) if not 0 <= label < num_classes), None)
    if bad is not None:
        row = images.rows[bad] if images.rows is not None else bad + 1
        raise InputError(images.source, f"label {images.labels[bad]} outside 0..{num_classes - 1}", row=row,
                         column="label")


def never_hard_ids(dataset: Dataset) -> list[int]:
    """Label ids of the classes the dataset never regenerates (iWildCam's ``empty``)."""
    return [label for label, name in enumerate(dataset.class_names()) if name in dataset.never_regenerated]


def tail_class_ids(labels: Sequence[int], many_min: int = 100, few_max: int = 20,
                   convention: str = "reference") -> list[int]:
    """Label ids of the few-shot classes present in ``labels`` (``discl.data.imagenet_lt.split_by_count``)."""
    from discl.data.imagenet_lt import split_by_count

    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    groups = split_by_count(counts.tolist(), many_min, few_max, convention)
    return [label for label, group in enumerate(groups) if group == "few" and counts[label] > 0]


# ---------------------------------------------------------------------------------------------------------
# Pure selection rules


def hard_mask(misclassified: np.ndarray, true_prob: np.ndarray, criterion: str, max_prob: float) -> np.ndarray:
    """Which images the classifier finds hard: wrong, true-class probability < ``max_prob``, both, either or none."""
    misclassified = np.asarray(misclassified, dtype=bool)
    low = np.asarray(true_prob, dtype=float) < max_prob
    if criterion == "misclassified":
        return misclassified
    if criterion == "low-prob":
        return low
    if criterion == "both":
        return misclassified & low
    if criterion == "either":
        return misclassified | low
    if criterion == "none":
        return np.zeros_like(misclassified)
    raise ValueError(f"unknown criterion {criterion!r}; expected one of {CRITERIA}")


def cap_per_class(labels: np.ndarray, true_prob: np.ndarray, selected: np.ndarray, cap: int | None) -> np.ndarray:
    """Keep at most ``cap`` selected images per class: the lowest true-class probability first, ties by position."""
    selected = np.asarray(selected, dtype=bool).copy()
    if cap is None:
        return selected
    if cap < 0:
        raise ValueError(f"per-class cap must be >= 0, got {cap}")
    labels = np.asarray(labels)
    true_prob = np.asarray(true_prob, dtype=float)
    for label in np.unique(labels[selected]):
        members = np.flatnonzero(selected & (labels == label))
        # lexsort sorts by the last key first: probability, then position for ties
        order = members[np.lexsort((members, true_prob[members]))]
        selected[order[cap:]] = False
    return selected


def select_hard(scores: pd.DataFrame, criterion: str = "misclassified", max_prob: float = 0.5,
                tail_class_ids: Sequence[int] = (), per_class_cap: int | None = None,
                never_hard: Sequence[int] = ()) -> np.ndarray:
    """Boolean mask of hard images: criterion ∪ every image of the tail classes, minus ``never_hard``, capped."""
    labels = scores["class_id"].to_numpy()
    mask = hard_mask(scores["misclassified"].to_numpy(), scores["true_prob"].to_numpy(), criterion, max_prob)
    mask = mask | np.isin(labels, np.asarray(list(tail_class_ids), dtype=labels.dtype))
    mask = mask & ~np.isin(labels, np.asarray(list(never_hard), dtype=labels.dtype))
    return cap_per_class(labels, scores["true_prob"].to_numpy(), mask, per_class_cap)


def per_class_summary(scores: pd.DataFrame, selected: np.ndarray) -> pd.DataFrame:
    """Per class: images, misclassified, mean true-class probability, hard images chosen (sorted by class id)."""
    table = scores.assign(hard=np.asarray(selected, dtype=bool))
    summary = table.groupby(["class_id", "class_name"], sort=True).agg(
        images=("true_prob", "size"), misclassified=("misclassified", "sum"),
        mean_true_prob=("true_prob", "mean"), hard=("hard", "sum"))
    return summary.reset_index()


def format_summary(summary: pd.DataFrame, max_rows: int | None = None) -> str:
    """The per-class summary as a fixed-width text table with a total line."""
    shown = summary
    if max_rows is not None and len(summary) > max_rows:
        # too many classes to list (182 for iWildCam): show those with the most hard images
        shown = summary.sort_values(["hard", "class_id"], ascending=[False, True]).head(max_rows)
    width = max([len("class")] + [len(str(n)) for n in shown["class_name"]])
    lines = [f"{'id':>4}  {'class':<{width}}  {'images':>6}  {'wrong':>6}  {'p(true)':>7}  {'hard':>5}"]
    for row in shown.itertuples(index=False):
        lines.append(f"{row.class_id:>4}  {row.class_name:<{width}}  {row.images:>6}  {row.misclassified:>6}  "
                     f"{row.mean_true_prob:>7.3f}  {row.hard:>5}")
    if max_rows is not None and len(summary) > len(shown):
        lines.append(f"... {len(summary) - len(shown)} more classes")
    total_images = int(summary["images"].sum())
    lines.append(f"{'':>4}  {'total':<{width}}  {total_images:>6}  {int(summary['misclassified'].sum()):>6}  "
                 f"{'':>7}  {int(summary['hard'].sum()):>5}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Scoring


class _ImageFolderList(TorchDataset):
    """Images by path; an unreadable file is flagged rather than raised (worker exceptions lose their type)."""

    def __init__(self, paths: Sequence[str], transform: Callable):
        self.paths = list(paths)
        self.transform = transform
        self._blank: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            return self.transform(decode(self.paths[index])), index, ""
        except OSError as err:  # discl.imageio: every decoder failure (a decompression bomb too) is an OSError
            if self._blank is None:
                self._blank = self.transform(Image.new("RGB", (32, 32)))
            return self._blank, index, f"{type(err).__name__}: {err}"


def unreadable_image(images: RealImages, index: int, reason: str) -> InputError:
    """The error for image ``index`` that did not decode: the file and row that listed it, when known."""
    path = images.paths[index]
    if images.source is None or images.rows is None:
        return InputError(path, f"cannot read image ({reason})")
    return InputError(images.source, f"cannot read image {path} ({reason})", row=images.rows[index])


@dataclass
class Classifier:
    """What scoring needs: logits for a batch of pixels, and the transform that makes the batch."""

    logits: Callable[[torch.Tensor], torch.Tensor]
    transform: Callable
    description: str


@torch.no_grad()
def score_images(classifier: Classifier, images: RealImages, class_names: Sequence[str], device: str = "cpu",
                 batch_size: int = 64, num_workers: int = 0) -> pd.DataFrame:
    """Classify every image; one row per image in input order (``SCORE_COLUMNS``)."""
    loader = DataLoader(_ImageFolderList(images.paths, classifier.transform), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers)
    labels = torch.as_tensor(images.labels, dtype=torch.long)
    true_prob = torch.empty(len(labels))
    pred_id = torch.empty(len(labels), dtype=torch.long)
    pred_prob = torch.empty(len(labels))
    for pixels, index, failures in progress(loader, desc="scoring training images", unit="batch"):
        bad = next((k for k, reason in enumerate(failures) if reason), None)
        if bad is not None:
            raise unreadable_image(images, int(index[bad]), failures[bad])
        probs = classifier.logits(pixels.to(device)).float().softmax(dim=-1).cpu()
        true_prob[index] = probs.gather(1, labels[index, None]).squeeze(1)
        pred_prob[index], pred_id[index] = probs.max(dim=1)
    names = np.asarray(list(class_names), dtype=object)
    frame = pd.DataFrame({
        "real_path": images.paths,
        "image_stem": [Path(p).stem for p in images.paths],
        "class_id": labels.numpy(),
        "class_name": names[labels.numpy()],
        "true_prob": true_prob.numpy().astype(float),
        "pred_id": pred_id.numpy(),
        "pred_name": names[pred_id.numpy()],
        "pred_prob": pred_prob.numpy().astype(float),
    })
    frame["misclassified"] = frame["pred_id"] != frame["class_id"]
    return frame[SCORE_COLUMNS]


def needs_classifier(config: HardSampleConfig) -> bool:
    """Whether the selection reads classifier scores (every criterion but ``none``, and any per-class cap)."""
    return config.criterion != "none" or config.per_class_cap is not None


def unscored_images(images: RealImages, class_names: Sequence[str]) -> pd.DataFrame:
    """The score table of images no classifier has seen (``--criterion none``): probabilities and predictions empty."""
    labels = np.asarray(images.labels, dtype=np.int64)
    frame = pd.DataFrame({
        "real_path": images.paths, "image_stem": [Path(p).stem for p in images.paths], "class_id": labels,
        "class_name": np.asarray(list(class_names), dtype=object)[labels], "true_prob": np.nan, "pred_id": -1,
        "pred_name": "", "pred_prob": np.nan, "misclassified": False})
    return frame[SCORE_COLUMNS]


def zeroshot_classifier(model, tokenizer, transform: Callable, dataset: Dataset, device: str = "cpu",
                        description: str = "zero-shot CLIP") -> Classifier:
    """An open_clip model with a zero-shot head from the dataset's text names and zero-shot templates."""
    model = model.to(device).eval()
    head = build_zeroshot_head(model, tokenizer, dataset.text_names(), dataset.zeroshot_templates(), device)
    return Classifier(lambda pixels: zeroshot_logits(model, pixels, head), transform, description)


def load_classifier(model_name: str | None, pretrained: str | None, checkpoint: str | os.PathLike | None,
                    device: str, dataset: Dataset) -> Classifier:
    """The classifier that finds hard samples: open_clip zero-shot (pretrained tag or FLYP checkpoint) or one of
    our ImageNet-LT checkpoints (ResNet, recognised by the ``arch`` in its saved args)."""
    state, saved_args = (None, {}) if checkpoint is None else _read_checkpoint(Path(checkpoint))
    if saved_args.get("arch") is not None:
        return _resnet_classifier(Path(checkpoint), saved_args, device, len(dataset.class_names()))
    model, transform, tokenizer = _load_open_clip(model_name or saved_args.get("model"), pretrained, checkpoint,
                                                  state, device, saved_args.get("pretrained"))
    return zeroshot_classifier(model, tokenizer, transform, dataset, device)


def _resnet_classifier(checkpoint: Path, saved_args: dict, device: str, num_classes: int) -> Classifier:
    from discl.lt import make_transforms
    from discl.resnet import load_classifier as load_resnet

    model = load_resnet(checkpoint, device)
    if saved_args.get("num_classes") != num_classes:
        raise InputError(checkpoint, f"the classifier has {saved_args.get('num_classes')} outputs but the data has "
                                     f"{num_classes} classes")
    _, test_transform = make_transforms(saved_args.get("crop_size", 224), saved_args.get("resize_size", 256))
    return Classifier(model, test_transform, f"{saved_args['arch']} checkpoint")


def _load_open_clip(model_name: str | None, pretrained: str | None, checkpoint, state: dict | None, device: str,
                    trained_from: str | None = None):
    """An open_clip model (+ val transform, tokenizer), with the checkpoint's weights when given.

    ``trained_from`` is the pretrained tag the checkpoint was fine-tuned from: it fixes the activation function
    (QuickGELU for OpenAI's weights), which a state dict does not record.
    """
    from discl.models import create_open_clip, uses_quick_gelu

    model_name = model_name or "ViT-B-16"
    quick_gelu = None
    if state is not None:
        pretrained = ""  # the checkpoint's weights replace any pretrained ones
        quick_gelu = uses_quick_gelu(model_name, trained_from)
    try:
        model, _, preprocess_val, tokenizer = create_open_clip(model_name, pretrained, device, quick_gelu)
    except RuntimeError as err:
        # open_clip raises RuntimeError for unknown model names and pretrained tags
        raise InputError(None, f"cannot create open_clip model {model_name!r} with pretrained {pretrained!r}: "
                               f"{err}") from None
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            first_line = str(err).strip().splitlines()[0]
            raise InputError(checkpoint, f"weights do not fit open_clip model {model_name!r}: {first_line}") from None
    return model.to(device).eval(), preprocess_val, tokenizer


def _read_checkpoint(path: Path) -> tuple[dict, dict]:
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a damaged or foreign file
        raise InputError(path, f"cannot load checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict):
        raise InputError(path, "expected a dict {'model': state_dict, 'args': dict}")
    state = payload.get("model", payload)
    if not isinstance(state, dict) or not state:
        raise InputError(path, "the 'model' entry is not a state dict")
    # Checkpoints saved from a DistributedDataParallel wrapper prefix every key with 'module.'
    state = {key.removeprefix("module."): value for key, value in state.items()}
    args = payload.get("args") if isinstance(payload.get("args"), dict) else {}
    return state, args


# ---------------------------------------------------------------------------------------------------------
# The whole step


def find_hard_samples(config: HardSampleConfig, dataset: Dataset) -> tuple[pd.DataFrame, np.ndarray]:
    """Score the dataset's training images (or ``config.train_list``) and select the hard ones: (scores, hard mask).

    ``--criterion none`` without ``--per-class-cap`` (the tail-classes rule alone) needs no classifier: none is
    loaded and the scores CSV has empty probabilities and predictions (a cap keeps the lowest probabilities, so it
    needs them).
    """
    check_config(config, dataset)
    images = dataset.training_images(config.train_list)
    class_names = dataset.class_names()
    check_labels(images, len(class_names))
    log.info("%s: %d training images, %d classes", dataset.name, len(images.paths), len(class_names))

    if not needs_classifier(config):
        scores = unscored_images(images, class_names)
    else:
        device = check_device(config.device)
        torch.manual_seed(config.seed)
        classifier = load_classifier(config.model, config.pretrained, config.checkpoint, device, dataset)
        log.info("classifier: %s", classifier.description)
        scores = score_images(classifier, images, class_names, device, config.batch_size, config.workers)

    tail: list[int] = []
    if config.tail_classes:
        tail = tail_class_ids(images.labels, config.many_min, config.few_max, config.split_convention)
        log.info("few-shot classes (< %d images): %s", config.few_max, tail)
    hard = select_hard(scores, config.criterion, config.max_prob, tail, config.per_class_cap, never_hard_ids(dataset))
    return scores, hard


def write_hard_samples(scores: pd.DataFrame, hard: np.ndarray, config: HardSampleConfig,
                       dataset: Dataset) -> tuple[Path, Path]:
    """Write the scores CSV (every image, with a ``hard`` column) and the hard-sample CSV; return both paths."""
    from discl.data.hard_sample_csv import write_hard_sample_csv
    from discl.fileio import atomic_write_csv

    output, scores_file = Path(config.output), scores_path(config)
    atomic_write_csv(scores_file, scores.assign(hard=hard))
    if not hard.any():
        log.warning("no image met the criteria: %s has a header and no rows", output)
    write_hard_sample_csv(scores[hard], output, dataset)
    return output, scores_file


# ---------------------------------------------------------------------------------------------------------
# The entry point (data_generation/make_hard_samples.py, discl-hard-samples)

GROUPS = {
    "training images": ("train_list",),
    "classifier": ("model", "pretrained", "checkpoint", "device", "batch_size", "workers", "seed"),
    "selection": ("criterion", "max_prob", "tail_classes", "few_max", "many_min", "split_convention",
                  "per_class_cap"),
    "output": ("output", "scores", "summary_rows"),
}


def get_args_parser(default_dataset: str | None = None, description: str | None = None):
    """The command-line flags: the dataset flags, then one group per part of ``HardSampleConfig``."""
    import argparse

    from discl.config import add_arguments
    from discl.datasets import dataset_parser

    parser = argparse.ArgumentParser(description=(description or __doc__).split("\n\n")[0],
                                     parents=[dataset_parser(required_root=True, default=default_dataset)])
    for title, fields in GROUPS.items():
        add_arguments(parser.add_argument_group(title), HardSampleConfig, only=fields)
    parser.add_argument("--dry-run", action="store_true",
                        help="count the images that would be scored (and, for --tail-classes, the hard ones) and "
                             "name the classifier; load no model, write nothing")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def dry_run_report(config: HardSampleConfig, dataset: Dataset) -> str:
    """What a run would do, without a model: images to score, the classifier, the tail rule's hard images."""
    check_config(config, dataset)
    images = dataset.training_images(config.train_list)
    check_labels(images, len(dataset.class_names()))
    lines = [f"{dataset.name}: {len(images.paths)} training images of {len(dataset.class_names())} classes"]
    if not needs_classifier(config):
        lines.append("classifier: none (--criterion none: the tail-classes rule alone)")
    elif config.checkpoint:
        lines.append(f"classifier: checkpoint {config.checkpoint}; every image is scored ({config.criterion})")
    else:
        lines.append(f"classifier: zero-shot open_clip {config.model or 'ViT-B-16'} ({config.pretrained or 'random'}"
                     f" weights); every image is scored ({config.criterion})")
    if config.tail_classes:
        tail = tail_class_ids(images.labels, config.many_min, config.few_max, config.split_convention)
        labels = np.asarray(images.labels)
        mask = select_hard(pd.DataFrame({"class_id": labels, "true_prob": np.nan, "misclassified": False}),
                           "none", config.max_prob, tail, config.per_class_cap, never_hard_ids(dataset))
        lines.append(f"tail rule: {int(mask.sum())} images of {len(tail)} few-shot classes are hard whatever the "
                     "classifier says" + (" (after --per-class-cap)" if config.per_class_cap is not None else ""))
    lines.append(f"would write {config.output} and {scores_path(config)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, default_dataset: str | None = None,
         description: str | None = None) -> int:
    """Load data and classifier, score, select, write both CSVs, print the summary (or only the plan: --dry-run)."""
    from discl.cli import setup_logging
    from discl.config import from_args, to_plain
    from discl.datasets import from_args as dataset_from_args
    from discl.runrecord import RunRecord, start

    args = get_args_parser(default_dataset, description).parse_args(argv)
    setup_logging(args.verbose)
    dataset = dataset_from_args(args)
    config = from_args(HardSampleConfig, args)
    if args.dry_run:
        print(dry_run_report(config, dataset))
        return 0
    with RunRecord("make_hard_samples", argv):
        scores, hard = find_hard_samples(config, dataset)
        start(Path(config.output).resolve().parent, {**to_plain(config), "dataset": dataset.name,
                                                     "data_root": str(dataset.root)})
        output, scores_path = write_hard_samples(scores, hard, config, dataset)
    print(format_summary(per_class_summary(scores, hard), config.summary_rows or None))
    print(f"{int(hard.sum())} hard of {len(scores)} images -> {output} (scores: {scores_path})")
    return 0
