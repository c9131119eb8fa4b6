"""Hard-sample CSVs: the list of real images to regenerate, in the dataset's template columns.

The columns come from ``dataset.csv_layout`` (iWildCam: an unnamed index, ``label id``, ``label name``,
``filepath``, ``img_name``; ImageNet-LT and every dataset without a reference template: ``filepath``,
``image_name``, ``label``, ``classname``). Columns are read by name, never by position; class names pass
through ``dataset.canonical_class_name`` (unknown names raise) and folders come from ``dataset.class_folder``.
Label ids must be the dataset's ids of the named classes (with a root; without one, within its default
classes); image stems and class folders become output file and
folder names, so they follow the manifest's name rule (``discl.manifest.name_problem``: no ``/``, ``\\``, ``=``,
control characters, ``.`` or ``..``, at most ``MAX_NAME_BYTES``). Every problem is an ``InputError`` naming file,
row and column, raised before anything is written. Every dataset reads into one frame:
``class_id, class_name, class_folder, real_path, image_stem``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from discl.datasets.base import IMAGE_SUFFIXES, CsvLayout, Dataset, class_folder_name
from discl.errors import InputError, csv_error, decoding
from discl.fileio import atomic_write_csv
from discl.manifest import name_problem

log = logging.getLogger(__name__)

FRAME_COLUMNS = ["class_id", "class_name", "class_folder", "real_path", "image_stem"]

class_folder = class_folder_name  # the output folder of a class: spaces and path separators as ``_``


def as_dataset(dataset: Dataset | str) -> Dataset:
    """A ``Dataset``; a registered name is looked up (without a root)."""
    if isinstance(dataset, Dataset):
        return dataset
    from discl.datasets import get_dataset

    return get_dataset(str(dataset))


def image_stem(name: str) -> str:
    """``name`` without an image extension (``n02093428_672.JPEG`` → ``n02093428_672``)."""
    name = str(name).strip()
    stem, suffix = os.path.splitext(name)
    return stem if suffix.lower() in IMAGE_SUFFIXES else name


def read_hard_sample_csv(path: str | os.PathLike, dataset: Dataset | str,
                         root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read a hard-sample CSV into ``class_id, class_name, class_folder, real_path, image_stem``.

    Relative ``filepath`` values are joined to ``root`` when given. Class names are returned in the dataset's
    canonical spelling; a name the dataset does not know (iWildCam: a common name like the reference template's
    ``Cheetah``) is an error, not a silent skip.
    """
    dataset = as_dataset(dataset)
    layout = dataset.csv_layout
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "hard-sample CSV not found")
    try:
        # utf-8-sig: a CSV saved by a spreadsheet starts with a BOM that would otherwise hide the first column
        with decoding(path):
            table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise InputError(path, "empty CSV: expected a header with columns "
                         f"{list(layout.columns)}") from None
    except pd.errors.ParserError as err:
        raise csv_error(path, err, "hard-sample CSV", skipinitialspace=True) from None
    table.columns = [str(column).strip() for column in table.columns]
    for column in layout.columns:
        if column not in table.columns:
            raise InputError(path, f"missing column (have {list(table.columns)}, need {list(layout.columns)})",
                             column=column)
    if table.empty:
        raise InputError(path, "empty CSV: a header but no rows")
    classes = _ClassCheck(path, dataset, layout.label)
    rows = [_read_row(path, row, record, layout, dataset, root, classes)
            for row, record in enumerate(table.to_dict("records"), start=1)]
    frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
    _check_consistent_labels(path, frame, layout)
    frame = _disambiguate_folders(frame)
    _check_folder_names(path, frame, layout)
    return frame


class _ClassCheck:
    """Label ids against the dataset's classes: within them, and (with a root) the id of the class the row names.

    The dataset bound to its root is the authority on ids (iWildCam's come from the root's ``categories.csv``);
    without a root only the range of its default class list is checked, and nothing for a dataset that lists its
    classes from its root alone.
    """

    def __init__(self, path: Path, dataset: Dataset, column: str):
        self.path, self.dataset, self.column = path, dataset, column
        try:
            self.names = dataset.class_names()
        except NotImplementedError:
            self.names = None
        except InputError:
            if dataset.root is not None:
                raise
            self.names = None
        self._canonical: dict[int, str | None] = {}

    def check(self, row: int, class_id: int, class_name: str) -> None:
        """An ``InputError`` naming the row and label column when ``class_id`` is not class ``class_name``."""
        if self.names is None:
            return
        if class_id >= len(self.names):
            raise InputError(self.path, f"label {class_id} outside 0..{len(self.names) - 1} (the "
                                        f"{self.dataset.name} dataset has {len(self.names)} classes)",
                             row=row, column=self.column)
        if self.dataset.root is None:
            return
        if class_id not in self._canonical:
            try:
                self._canonical[class_id] = self.dataset.canonical_class_name(self.names[class_id])
            except InputError:
                self._canonical[class_id] = self.names[class_id]
        if self._canonical[class_id] != class_name:
            raise InputError(self.path, f"label {class_id} is {self._canonical[class_id]!r} in the "
                                        f"{self.dataset.name} dataset, but the row names {class_name!r}",
                             row=row, column=self.column)


def _read_row(path: Path, row: int, record: dict, layout: CsvLayout, dataset: Dataset,
              root: str | os.PathLike | None, classes: _ClassCheck) -> dict:
    label_text = record[layout.label].strip()
    try:
        class_id = int(label_text)
    except ValueError:
        raise InputError(path, f"label must be an integer, got {label_text!r}", row=row, column=layout.label) from None
    if class_id < 0:
        raise InputError(path, f"label must be >= 0, got {class_id}", row=row, column=layout.label)
    class_name = record[layout.name].strip()
    if not class_name:
        raise InputError(path, "empty class name", row=row, column=layout.name)
    # one spelling per class, so 'Puma concolor' and 'puma concolor' share a folder; unknown names raise
    class_name = dataset.canonical_class_name(class_name, file=path, row=row, column=layout.name)
    classes.check(row, class_id, class_name)
    real_path = record[layout.path].strip()
    if not real_path:
        raise InputError(path, "empty image path", row=row, column=layout.path)
    if root is not None and not os.path.isabs(real_path):
        real_path = str(Path(root) / real_path)
    stem = image_stem(record[layout.image])
    if not stem:
        raise InputError(path, "empty image name", row=row, column=layout.image)
    problem = name_problem(stem)  # the stem names the output files: the manifest's rule, checked before any is made
    if problem is not None:
        shown = stem if len(stem) <= 60 else stem[:60] + "…"
        raise InputError(path, f"image name {shown!r} {problem}", row=row, column=layout.image)
    return {"class_id": class_id, "class_name": class_name, "class_folder": dataset.class_folder(class_name),
            "real_path": real_path, "image_stem": stem}


def _check_consistent_labels(path: Path, frame: pd.DataFrame, layout: CsvLayout) -> None:
    """One label id, one class name: a CSV mixing them would scatter a class over two folders."""
    first_name: dict[int, str] = {}
    for row, (class_id, name) in enumerate(zip(frame["class_id"], frame["class_name"]), start=1):
        seen = first_name.setdefault(int(class_id), name)
        if seen != name:
            raise InputError(path, f"label {class_id} is named {name!r} here but {seen!r} in an earlier row",
                             row=row, column=layout.name)


def _check_folder_names(path: Path, frame: pd.DataFrame, layout: CsvLayout) -> None:
    """Every class folder (an output folder name, made from the class name) passes the manifest's name rule."""
    for folder in frame["class_folder"].unique():
        problem = name_problem(folder)
        if problem is not None:
            row = int(np.flatnonzero((frame["class_folder"] == folder).to_numpy())[0]) + 1
            raise InputError(path, f"class folder {folder!r} (made from the class name) {problem}", row=row,
                             column=layout.name)


def _disambiguate_folders(frame: pd.DataFrame) -> pd.DataFrame:
    """Give classes that share a folder name (ImageNet has two 'missile' and two 'sunglasses') ``_<label>``."""
    ids_per_folder = frame.groupby("class_folder")["class_id"].nunique()
    shared = set(ids_per_folder[ids_per_folder > 1].index)
    if shared:
        log.warning("class names shared by several labels get the label appended to their folder: %s",
                    sorted(shared))
        mask = frame["class_folder"].isin(shared)
        frame.loc[mask, "class_folder"] = [f"{folder}_{class_id}" for folder, class_id in
                                           zip(frame.loc[mask, "class_folder"], frame.loc[mask, "class_id"])]
    return frame


def write_hard_sample_csv(frame: pd.DataFrame, path: str | os.PathLike, dataset: Dataset | str) -> None:
    """Write ``class_id, class_name, real_path, image_stem`` rows in the dataset's template columns (atomic)."""
    layout = as_dataset(dataset).csv_layout
    missing = [c for c in ("class_id", "class_name", "real_path", "image_stem") if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing}")
    if layout.image_has_suffix:
        # image_name keeps the real file's extension, as in the reference's ImageNet-LT template
        images = [stem + os.path.splitext(str(real))[1] for stem, real in zip(frame["image_stem"], frame["real_path"])]
    else:
        images = list(frame["image_stem"])
    values = {layout.label: frame["class_id"].astype(int).tolist(), layout.name: list(frame["class_name"]),
              layout.path: list(frame["real_path"]), layout.image: images}
    table = pd.DataFrame({column: values[column] for column in layout.columns})
    atomic_write_csv(path, table, index=layout.index)
