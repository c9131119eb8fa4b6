"""The ``folder`` dataset: a user's own labelled images, as an ImageFolder root or a CSV list.

Two layouts (``--data-root``, see ``docs/own-dataset.md``):

* an ImageFolder root: ``train/<class>/<image>`` and optionally ``val/<class>/…`` and ``test/<class>/…``.
  Classes are the sorted folder names of ``train/`` (torchvision's ``ImageFolder`` order; hidden folders such as
  ``.ipynb_checkpoints`` are skipped); images are the files with an image suffix (case-insensitive), searched
  recursively inside each class folder.
* a CSV file with columns ``filepath, label`` and optionally ``split`` (``train`` / ``val`` / ``test``, empty =
  ``train``). Paths are relative to the CSV's folder or absolute. A label is a class name (classes are the
  sorted names of the training rows) or, when ``--class-names`` is given, an integer index into that file.

Readable names (prompts, captions, zero-shot heads) come from ``--class-names`` (one per line, in label order),
else from the class names with ``_`` as spaces. Without a ``val`` split a seeded, stratified share of the
training images is held out as ``val`` (the trainers select the epoch on ``val``, never on ``test``); without a
``test`` split only ``val`` is evaluated. Metrics: top-1 and macro-F1 (over the classes present in the split,
WILDS' definition), and top-1 on the many / medium / few classes by training count, all in percent.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from discl.config import Range
from discl.datasets import register
from discl.datasets.base import (GENERIC_CSV_LAYOUT, IMAGE_SUFFIXES, CsvLayout, Dataset, EvalSet, RealImages,
                                 render)
from discl.errors import InputError
from discl.seeding import stable_seed

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
GROUPS = ("many", "medium", "few")  # by training count, base.Dataset.class_groups: many >= 100, few < 20
DEFAULT_PROMPT_TEMPLATE = "a photo of a {}"
DEFAULT_VAL_FRACTION = 0.1  # share of each class's training images held out as val when there is no val split
DEFAULT_VAL_SEED = 0
_INTEGER = re.compile(r"^[+-]?\d+$")


# ------------------------------------------------------------------------------------------ metric math ----

def top1_accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Top-1 accuracy in percent; NaN without labels."""
    predictions, labels = _pair(predictions, labels)
    return float(100.0 * np.mean(predictions == labels)) if len(labels) else float("nan")


def macro_f1(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Macro-F1 in percent over the classes present in ``labels`` (WILDS' definition); NaN without labels."""
    predictions, labels = _pair(predictions, labels)
    if not len(labels):
        return float("nan")
    scores = []
    for label in np.unique(labels):
        true_positive = np.sum((predictions == label) & (labels == label))
        false_positive = np.sum((predictions == label) & (labels != label))
        false_negative = np.sum((predictions != label) & (labels == label))
        scores.append(2 * true_positive / (2 * true_positive + false_positive + false_negative))
    return float(100.0 * np.mean(scores))


def folder_metrics(predictions: Sequence[int], labels: Sequence[int], groups: Sequence[str]) -> dict[str, float]:
    """``top1``, ``macro_f1`` and top-1 on the ``many`` / ``medium`` / ``few`` classes of one split, in percent.

    ``groups``: per class its group by training count (``Dataset.class_groups``); NaN for a group without images.
    """
    from discl.lt_metrics import group_accuracy

    by_group = group_accuracy(predictions, labels, np.asarray(groups, dtype=object))
    return {"top1": top1_accuracy(predictions, labels), "macro_f1": macro_f1(predictions, labels),
            **{name: by_group[name] for name in GROUPS}}


def _pair(predictions: Sequence[int], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    predictions = np.asarray(predictions, dtype=np.int64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if predictions.shape != labels.shape:
        raise ValueError(f"{predictions.shape[0]} predictions for {labels.shape[0]} labels")
    return predictions, labels


# --------------------------------------------------------------------------------------------- held-out val ----

def held_out_val(keys: Sequence[str], labels: Sequence[int], class_names: Sequence[str],
                 fraction: float = DEFAULT_VAL_FRACTION, seed: int = DEFAULT_VAL_SEED) -> list[int]:
    """Indices of the training images held out as val: per class ``round(fraction·n)``, at least 1, at most n−1.

    Stratified and deterministic: each class's images are sorted by key and shuffled by a seed derived from
    ``seed`` and the class *name*, so adding a class or an image elsewhere does not move another class's choice.
    A class with a single image keeps it for training.
    """
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(index)
    held = []
    for label, indices in sorted(by_class.items()):
        if len(indices) < 2:
            continue
        size = min(len(indices) - 1, max(1, math.floor(fraction * len(indices) + 0.5)))
        ordered = sorted(indices, key=lambda i: keys[i])
        rng = np.random.default_rng(stable_seed("folder-val", seed, class_names[label]))
        held.extend(ordered[i] for i in rng.permutation(len(ordered))[:size])
    return sorted(held)


# ----------------------------------------------------------------------------------------------- listing ----

@dataclass
class _Item:
    key: str  # root-relative path (ImageFolder) or the CSV's filepath value
    path: str  # absolute path
    label: int
    row: int | None = None  # 1-based CSV data row


@dataclass
class _Listing:
    classes: list[str]
    text: list[str]
    splits: dict[str, list[_Item]]
    source: Path  # the CSV, or the train/ folder
    val_held_out: bool


def _read_class_names(path: str | os.PathLike) -> list[str]:
    """The lines of a ``--class-names`` file (trailing blank lines ignored, others are errors)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise InputError(path, f"cannot read the class names file: {err.strerror or err}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    for row, name in enumerate(names, start=1):
        if not name:
            raise InputError(path, "empty class name", row=row)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(path, f"class names listed twice: {', '.join(duplicates)}")
    return names


def _image_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith(".")), key=lambda p: p.as_posix())


def _class_folders(folder: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))


def _list_image_folder(root: Path) -> tuple[list[str], dict[str, list[_Item]], Path]:
    train = root / "train"
    if not train.is_dir():
        raise InputError(root, "no train/ folder: an ImageFolder root holds train/<class>/<image> "
                               "(and optionally val/ and test/), or give a CSV file filepath,label[,split]")
    classes = _class_folders(train)
    if not classes:
        raise InputError(train, "no class folders: expected train/<class>/<image>")
    splits: dict[str, list[_Item]] = {}
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        items = []
        for name in _class_folders(folder):
            if name not in classes:
                raise InputError(folder / name, f"class folder not in train/ (classes: {', '.join(classes)})")
            files = _image_files(folder / name)
            if split == "train" and not files:
                raise InputError(folder / name, f"no images in this class folder (suffixes: "
                                                f"{' '.join(IMAGE_SUFFIXES)}, any case)")
            label = classes.index(name)
            items.extend(_Item(p.relative_to(root).as_posix(), os.path.abspath(p), label) for p in files)
        if items:
            splits[split] = items
        else:
            log.warning("%s holds no images; treated as absent", folder)
    return classes, splits, train


def _read_list_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise InputError(path, f"not a readable CSV: {err}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ("filepath", "label") if c not in frame.columns]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}: the folder dataset's CSV has columns "
                               f"filepath,label[,split] (found: {', '.join(frame.columns) or 'none'})")
    return frame


def _csv_rows(path: Path) -> list[tuple[int, str, str, str, str]]:
    """``(row, split, filepath, absolute path, label)`` per data row, checked for existence and split values."""
    frame = _read_list_csv(path)
    has_split = "split" in frame.columns
    rows, seen = [], {}
    for row, value in enumerate(frame.to_dict("records"), start=1):
        filepath, label = str(value["filepath"]).strip(), str(value["label"]).strip()
        split = str(value["split"]).strip().lower() if has_split else ""
        split = split or "train"
        if split not in SPLITS:
            raise InputError(path, f"unknown split {value['split']!r}; expected one of {', '.join(SPLITS)} "
                                   "(empty = train)", row=row, column="split")
        if not filepath:
            raise InputError(path, "empty image path", row=row, column="filepath")
        if not label:
            raise InputError(path, "empty label", row=row, column="label")
        absolute = Path(filepath) if os.path.isabs(filepath) else path.parent / filepath
        if not absolute.is_file():
            raise InputError(path, f"image not found: {absolute}", row=row, column="filepath")
        if filepath in seen:
            raise InputError(path, f"image listed twice (first at row {seen[filepath]})", row=row, column="filepath")
        seen[filepath] = row
        rows.append((row, split, filepath, os.path.abspath(absolute), label))
    return rows


def _label_ids(path: Path, rows: Sequence[tuple[int, str, str, str, str]], classes: list[str],
               integer: bool) -> list[int]:
    """Each row's label id: an index into ``classes`` (``integer``) or the position of its class name."""
    ids = []
    for row, _, _, _, label in rows:
        if integer:
            index = int(label)
            if not 0 <= index < len(classes):
                raise InputError(path, f"label index {index} out of range: --class-names lists {len(classes)} "
                                       f"classes (0..{len(classes) - 1})", row=row, column="label")
            ids.append(index)
        elif label in classes:
            ids.append(classes.index(label))
        else:
            raise InputError(path, f"class {label!r} has no training rows (classes: {', '.join(classes)})",
                             row=row, column="label")
    return ids


# ----------------------------------------------------------------------------------------------- dataset ----

@register
@dataclass
class FolderDataset(Dataset):
    """A user's own image-classification data: an ImageFolder root or a ``filepath,label[,split]`` CSV."""

    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    name: ClassVar[str] = "folder"
    description: ClassVar[str] = "your own labelled images: an ImageFolder root or a filepath,label[,split] CSV"
    root_help: ClassVar[str] = "ImageFolder root (train/<class>/<image>, optional val/ test/) or a CSV file"
    user_options: ClassVar[dict[str, str]] = {
        "val_fraction": f"share of each class's training images held out as val when there is no val split, "
                        f"in (0, 1) (default {DEFAULT_VAL_FRACTION})",
        "val_seed": f"seed of that hold-out, an integer ≥ 0 (default {DEFAULT_VAL_SEED})"}

    csv_layout: ClassVar[CsvLayout] = GENERIC_CSV_LAYOUT
    supports_tail_rule: ClassVar[bool] = True  # few-shot classes by training count (< 20 images)
    never_regenerated: ClassVar[frozenset[str]] = frozenset()

    generation_resolution: ClassVar[tuple[int, int] | None] = None  # native sizes, batched by equal size
    uses_prompt_json: ClassVar[bool] = False
    quality_retry: ClassVar[bool] = False

    clip_threshold: ClassVar[float] = 0.25
    clip_resize: ClassVar[tuple[int, int] | None] = None

    table_min_guidance: ClassVar[int] = 0
    table_guidance_levels: ClassVar[tuple[int, ...] | None] = None
    curriculum_val_size: ClassVar[int] = 100  # the builder caps it at the number of eligible hard images

    split_titles: ClassVar[dict[str, str]] = {"val": "validation", "test": "test"}
    selection_split: ClassVar[str] = "val"
    selection_metric: ClassVar[str] = "top1"
    metric_names: ClassVar[tuple[str, ...]] = ("top1", "macro_f1") + GROUPS

    # ------------------------------------------------------------------------------------------ listing
    def _listing(self) -> _Listing:
        if "listing" not in self._cache:
            self._cache["listing"] = self._build_listing()
        return self._cache["listing"]

    def _build_listing(self) -> _Listing:
        root = self.require_root()
        names_file = self.option("class_names")
        given_names = _read_class_names(names_file) if names_file else None
        if root.is_dir():
            classes, splits, source = _list_image_folder(root)
        elif root.is_file():
            classes, splits, source = self._list_csv(root, given_names)
        else:
            raise InputError(root, "no such folder or CSV file")
        if given_names is None:
            text = [name.replace("_", " ").strip() or name for name in classes]
        elif len(given_names) != len(classes):
            raise InputError(names_file, f"{len(given_names)} class names for {len(classes)} classes "
                                         f"({', '.join(classes)}): one name per line, in label order")
        else:
            text = given_names
        folders: dict[str, str] = {}
        for name in classes:
            folder = self.class_folder(name).lower()
            if folder in folders:
                raise InputError(source, f"classes {folders[folder]!r} and {name!r} share the output folder "
                                         f"{self.class_folder(name)!r}")
            folders[folder] = name
        val_held_out = "val" not in splits
        if val_held_out:
            splits = self._hold_out_val(splits, classes, source)
        return _Listing(classes, text, splits, source, val_held_out)

    def _list_csv(self, path: Path, given_names: list[str] | None
                  ) -> tuple[list[str], dict[str, list[_Item]], Path]:
        rows = _csv_rows(path)
        train_labels = sorted({label for _, split, _, _, label in rows if split == "train"})
        if not train_labels:
            raise InputError(path, "no training rows (split train or empty): the class set is empty")
        integer = all(_INTEGER.match(label) for _, _, _, _, label in rows)
        if integer and given_names is None:
            raise InputError(path, "labels are integers: give --class-names (one name per line, in label "
                                   "order) or write class names in the label column", column="label")
        classes = list(given_names) if integer else train_labels
        ids = _label_ids(path, rows, classes, integer)
        splits: dict[str, list[_Item]] = {}
        for (row, split, filepath, absolute, _), label in zip(rows, ids):
            splits.setdefault(split, []).append(_Item(filepath, absolute, label, row))
        return classes, splits, path

    def _hold_out_val(self, splits: dict[str, list[_Item]], classes: list[str],
                      source: Path) -> dict[str, list[_Item]]:
        fraction, seed = self._val_options()
        train = splits["train"]
        held = set(held_out_val([item.key for item in train], [item.label for item in train], classes,
                                fraction=fraction, seed=seed))
        if not held:
            raise InputError(source, "no val split, and no class has 2 training images to hold one out as val")
        log.info("%s: no val split; held out %d of %d training images as val (%.0f%% per class, seeded)",
                 source, len(held), len(train), 100 * fraction)
        return {**splits, "train": [item for i, item in enumerate(train) if i not in held],
                "val": [item for i, item in enumerate(train) if i in held]}

    def check_options(self) -> None:
        """The hold-out options parse and lie in their ranges."""
        self._val_options()

    def _val_options(self) -> tuple[float, int]:
        """``val_fraction`` and ``val_seed``."""
        return (self._number_option("val_fraction", DEFAULT_VAL_FRACTION, float, Range(0, 1, True, True)),
                self._number_option("val_seed", DEFAULT_VAL_SEED, int, Range(0)))

    def _number_option(self, key: str, default, kind: type, valid: Range):
        """The option ``key`` as ``kind`` (strings from ``--dataset-option`` parsed), inside ``valid``."""
        value = self.option(key, default)
        if isinstance(value, str):
            try:
                value = kind(value.strip())
            except ValueError:
                raise InputError(f"--dataset-option {key}", f"expected {'an integer' if kind is int else 'a number'} "
                                                            f"{valid.describe()}, got {value!r}") from None
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if kind is int and not isinstance(value, int):
            raise InputError(f"--dataset-option {key}", f"expected an integer {valid.describe()}, got {value!r}")
        valid.check(f"--dataset-option {key}", value)
        return value

    # ------------------------------------------------------------------------------------------ classes
    @property
    def eval_splits(self) -> tuple[str, ...]:
        """``val`` (given or held out) and ``test`` when the data has one."""
        return tuple(split for split in ("val", "test") if split in self._listing().splits)

    @property
    def val_held_out(self) -> bool:
        """True when ``val`` was cut from the training images (the data has no val split)."""
        return self._listing().val_held_out

    def class_names(self) -> list[str]:
        """Class folder / CSV label names (or the ``--class-names`` lines for integer CSV labels)."""
        return list(self._listing().classes)

    def text_names(self) -> list[str]:
        """The ``--class-names`` lines, else the class names with ``_`` as spaces."""
        return list(self._listing().text)

    def canonical_class_name(self, name: str, file: str | os.PathLike | None = None, row: int | None = None,
                             column: str | None = None) -> str:
        """A class name or readable name as written in a CSV → the class name; unknown names are errors.

        Without a root (generation from a hard-sample CSV alone) the name is taken as written.
        """
        name = str(name).strip()
        if self.root is None:
            return name
        classes, text = self._listing().classes, self._listing().text
        for candidates in (classes, text):
            if name in candidates:
                return classes[candidates.index(name)]
        lowered = [[c.lower() for c in candidates] for candidates in (classes, text)]
        for candidates in lowered:
            if candidates.count(name.lower()) == 1:
                return classes[candidates.index(name.lower())]
        raise InputError(file, f"unknown class {name!r} (classes: {', '.join(classes)})", row=row, column=column)

    def text_name(self, class_name: str) -> str:
        """The readable name of a class; without a root, the class name with ``_`` as spaces."""
        if self.root is None:
            return class_name.replace("_", " ").strip() or class_name
        return super().text_name(class_name)

    # ------------------------------------------------------------------------------------- hard samples
    def training_images(self, list_file: str | os.PathLike | None = None) -> RealImages:
        """The training images (less a held-out val); ``list_file``: a ``filepath,label`` CSV of a subset."""
        listing = self._listing()
        if list_file is None:
            items = listing.splits["train"]
            source = listing.source
        else:
            source = Path(list_file)
            rows = _csv_rows(source)
            integer = all(_INTEGER.match(label) for _, _, _, _, label in rows) and self.option("class_names")
            ids = _label_ids(source, rows, listing.classes, bool(integer))
            items = [_Item(filepath, absolute, label, row)
                     for (row, _, filepath, absolute, _), label in zip(rows, ids)]
        return RealImages([item.path for item in items], [item.label for item in items],
                          [item.key for item in items], source=source,
                          rows=[item.row for item in items] if all(item.row for item in items) else None)

    def zeroshot_templates(self) -> Sequence[str]:
        """One template, as the training captions."""
        return ("a photo of a {}.",)

    # --------------------------------------------------------------------------------------- generation
    def prompt_template(self) -> str:
        """``--prompt-template`` (one ``{}`` for the readable class name), default ``a photo of a {}``."""
        template = str(self.option("prompt_template", DEFAULT_PROMPT_TEMPLATE))
        if template.count("{}") != 1 or re.search(r"\{[^}]", template):
            raise InputError("--prompt-template", f"needs exactly one {{}} for the class name, got {template!r}")
        return template

    def generation_prompt(self, class_name: str) -> str:
        """The prompt template filled with the readable class name."""
        return render(self.prompt_template(), self.text_name(class_name))

    def class_text(self, class_name: str) -> str:
        """CLIPScore text: the generation prompt itself, so a custom template is scored as it was generated."""
        return self.generation_prompt(class_name)

    # ---------------------------------------------------------------------------------- training tables
    def caption_templates(self) -> Sequence[str]:
        """One caption per row: ``a photo of a {readable name}.``."""
        return ("a photo of a {}.",)

    # ------------------------------------------------------------------------------ training, evaluation
    def class_counts(self) -> list[int]:
        """Training images per label (after holding out val)."""
        labels = np.asarray([item.label for item in self._listing().splits["train"]], dtype=np.int64)
        return np.bincount(labels, minlength=len(self._listing().classes)).tolist()

    def eval_set(self, split: str) -> EvalSet:
        """The images and labels of ``val`` or ``test``."""
        listing = self._listing()
        if split not in self.eval_splits:
            raise InputError("--eval-splits", f"the folder dataset at {self.root} has no {split!r} split "
                                              f"(evaluation splits: {', '.join(self.eval_splits)})")
        items = listing.splits[split]
        return EvalSet(split, [item.path for item in items],
                       np.asarray([item.label for item in items], dtype=np.int64), context=list(self.class_groups()))

    def evaluate(self, eval_set: EvalSet, predictions: np.ndarray) -> dict[str, float]:
        """``top1``, ``macro_f1``, ``many``, ``medium``, ``few`` in percent (NaN for a group without images)."""
        groups = eval_set.context if eval_set.context is not None else self.class_groups()
        return folder_metrics(predictions, eval_set.labels, groups)

    def format_metrics(self, metrics: dict[str, float]) -> str:
        """``top1 71.2%, macro-F1 65.0%, many/medium/few 80.0/60.0/nan%``."""
        groups = "/".join(f"{metrics.get(g, float('nan')):.1f}" for g in GROUPS)
        nan = float("nan")
        return (f"top1 {metrics.get('top1', nan):.1f}%, macro-F1 {metrics.get('macro_f1', nan):.1f}%, "
                f"many/medium/few {groups}%")
