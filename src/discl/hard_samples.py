"""Scoring real training images with a zero-shot CLIP classifier and choosing the hard ones (spec §1).

The selection rules are pure functions over a score table (one row per image: true class, true-class
probability, prediction), so they are tested on hand-made tables; scoring is a batched DataLoader loop.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from discl.errors import InputError
from discl.zeroshot import Template, build_zeroshot_head, zeroshot_logits

log = logging.getLogger(__name__)

CRITERIA = ("misclassified", "low-prob", "both", "either", "none")
SCORE_COLUMNS = ["real_path", "image_stem", "class_id", "class_name", "true_prob", "pred_id", "pred_name",
                 "pred_prob", "misclassified"]


@dataclass
class RealImageSet:
    """Training images of one dataset with everything the scorer and the CSV writer need."""

    dataset: str  # "iwildcam" | "imagenet_lt"
    paths: list[str]  # absolute image paths, also written to the hard-sample CSV
    labels: list[int]
    class_names: list[str]  # per label id: the name written to the CSV (scientific name for iWildCam)
    head_names: list[str]  # per label id: the name given to the text templates (common name for iWildCam)
    templates: Sequence[Template]
    never_hard: set[int] = field(default_factory=set)  # label ids never selected (iWildCam's `empty`)

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.labels):
            raise ValueError("paths and labels must have the same length")
        if len(self.class_names) != len(self.head_names):
            raise ValueError("class_names and head_names must have the same length")


def iwildcam_training_images(root: str | os.PathLike) -> RealImageSet:
    """The WILDS iWildCam training split; zero-shot classes are the common names, CSV names the scientific ones."""
    from discl.data import iwildcam

    dataset = iwildcam.load_dataset(root)
    train = np.flatnonzero(dataset.split_array == dataset.split_dict["train"])
    # WILDS keeps every image under <data dir>/train/ and the file names in _input_array (see get_input).
    filenames = [str(name) for name in dataset._input_array[train]]
    paths = [str((Path(dataset.data_dir) / "train" / name).resolve()) for name in filenames]
    species = iwildcam.species_names(root)
    labels = [int(y) for y in dataset.y_array[train]]
    _check_labels(labels, len(species), iwildcam.data_dir(root) / "metadata.csv", rows=train + 1, column="y")
    return RealImageSet(
        dataset="iwildcam", paths=paths, labels=labels, class_names=species,
        head_names=iwildcam.zeroshot_classnames(root), templates=iwildcam.IWILDCAM_TEMPLATES,
        never_hard={y for y, name in enumerate(species) if name == iwildcam.EMPTY_CLASS})


def imagenet_lt_training_images(root: str | os.PathLike, list_file: str | os.PathLike) -> RealImageSet:
    """The images of an ImageNet-LT list (relative to ``root``); the head covers labels 0..max label."""
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

    from discl.data import imagenet_lt

    root = Path(root)
    list_path = Path(list_file) if Path(list_file).is_absolute() or Path(list_file).is_file() else root / list_file
    entries = imagenet_lt.read_list(list_path, allow_guidance=False)
    names = imagenet_lt.class_names()
    labels = [entry.label for entry in entries]
    _check_labels(labels, len(names), list_path)
    num_classes = max(labels) + 1  # 1000 for the real lists; a mini list with labels 0..7 gets an 8-way head
    paths = [str((root / entry.path).resolve()) for entry in entries]
    return RealImageSet(dataset="imagenet_lt", paths=paths, labels=labels,
                        class_names=names[:num_classes], head_names=names[:num_classes],
                        templates=SIMPLE_IMAGENET_TEMPLATES)


def _check_labels(labels: Sequence[int], num_classes: int, file: Path, rows: Sequence[int] | None = None,
                  column: str = "label") -> None:
    """Every label must name a class; ``rows`` maps positions to the file's data rows (default 1, 2, …)."""
    if not labels:
        raise InputError(file, "no training images")
    bad = next((i for i, label in enumerate(labels) if not 0 <= label < num_classes), None)
    if bad is not None:
        row = int(rows[bad]) if rows is not None else bad + 1
        raise InputError(file, f"label {labels[bad]} outside 0..{num_classes - 1}", row=row, column=column)


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


class _ImageFolderList(Dataset):
    """Images by path; an unreadable file is flagged rather than raised (worker exceptions lose their type)."""

    def __init__(self, paths: Sequence[str], transform: Callable):
        self.paths = list(paths)
        self.transform = transform
        self._blank: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            with Image.open(self.paths[index]) as image:
                tensor = self.transform(image.convert("RGB"))
            return tensor, index, True
        except (OSError, ValueError, SyntaxError):
            if self._blank is None:
                self._blank = self.transform(Image.new("RGB", (32, 32)))
            return self._blank, index, False


@dataclass
class Classifier:
    """What scoring needs: logits for a batch of pixels, and the transform that makes the batch."""

    logits: Callable[[torch.Tensor], torch.Tensor]
    transform: Callable
    description: str


@torch.no_grad()
def score_images(classifier: Classifier, images: RealImageSet, device: str = "cpu", batch_size: int = 64,
                 num_workers: int = 0) -> pd.DataFrame:
    """Classify every image; one row per image in input order (``SCORE_COLUMNS``)."""
    loader = DataLoader(_ImageFolderList(images.paths, classifier.transform), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers)
    labels = torch.as_tensor(images.labels, dtype=torch.long)
    true_prob = torch.empty(len(labels))
    pred_id = torch.empty(len(labels), dtype=torch.long)
    pred_prob = torch.empty(len(labels))
    for pixels, index, ok in tqdm(loader, desc="scoring", unit="batch"):
        if not bool(ok.all()):
            raise InputError(images.paths[int(index[~ok][0])], "cannot read image")
        probs = classifier.logits(pixels.to(device)).float().softmax(dim=-1).cpu()
        true_prob[index] = probs.gather(1, labels[index, None]).squeeze(1)
        pred_prob[index], pred_id[index] = probs.max(dim=1)
    names = np.asarray(images.class_names, dtype=object)
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


def zeroshot_classifier(model, tokenizer, transform: Callable, images: RealImageSet, device: str = "cpu",
                        description: str = "zero-shot CLIP") -> Classifier:
    """An open_clip model with a zero-shot head built from the dataset's class names and templates."""
    model = model.to(device).eval()
    head = build_zeroshot_head(model, tokenizer, images.head_names, images.templates, device)
    return Classifier(lambda pixels: zeroshot_logits(model, pixels, head), transform, description)


def load_classifier(model_name: str | None, pretrained: str | None, checkpoint: str | os.PathLike | None,
                    device: str, images: RealImageSet) -> Classifier:
    """The classifier that finds hard samples: open_clip zero-shot (pretrained tag or FLYP checkpoint) or one of
    our ImageNet-LT checkpoints (ResNet, recognised by the ``arch`` in its saved args)."""
    state, saved_args = (None, {}) if checkpoint is None else _read_checkpoint(Path(checkpoint))
    if saved_args.get("arch") is not None:
        return _resnet_classifier(Path(checkpoint), saved_args, device, images)
    model, transform, tokenizer = _load_open_clip(model_name or saved_args.get("model"), pretrained, checkpoint,
                                                  state, device, saved_args.get("pretrained"))
    return zeroshot_classifier(model, tokenizer, transform, images, device)


def _resnet_classifier(checkpoint: Path, saved_args: dict, device: str, images: RealImageSet) -> Classifier:
    from discl.lt import make_transforms
    from discl.resnet import load_classifier as load_resnet

    model = load_resnet(checkpoint, device)
    if saved_args.get("num_classes") != len(images.class_names):
        raise InputError(checkpoint, f"the classifier has {saved_args.get('num_classes')} outputs but the data has "
                                     f"{len(images.class_names)} classes")
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
