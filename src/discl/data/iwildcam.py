"""WILDS iWildCam v2.0: loading the dataset, its species list, and scientific → English common names.

The species table (``iwildcam_species.csv``, package data) lists all 182 classes of iWildCam v2.0 as
``y, category_id, name, english``: the class order, WILDS category ids and scientific names of the release's
``categories.csv`` plus the English names that WiSE-FT/FLYP ship in ``iwildcam_metadata/labels.csv``. Prompts
and zero-shot heads use the common name in lower case (*Acinonyx jubatus* → ``cheetah``).
"""

from __future__ import annotations

import difflib
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from discl.errors import InputError

DATA_DIRNAME = "iwildcam_v2.0"
EMPTY_CLASS = "empty"
NUM_CLASSES = 182
ABSENT_Y = 99999  # categories.csv lists categories with no images under this y
SPLITS = ("train", "id_val", "id_test", "val", "test")  # val / test are OOD (unseen camera locations)
# The FLYP / WiSE-FT iWildCam zero-shot templates (the reference's iwildcam_template), as str.format patterns.
IWILDCAM_TEMPLATES = ("a photo of {}.", "{} in the wild.")


@lru_cache(maxsize=1)
def species_table() -> pd.DataFrame:
    """The packaged 182-class table ``y, category_id, name, english`` in class order."""
    with resources.files("discl.data").joinpath("iwildcam_species.csv").open(encoding="utf-8") as handle:
        table = pd.read_csv(handle, dtype={"name": str, "english": str})
    return table


@lru_cache(maxsize=1)
def _common_names() -> dict[str, str]:
    table = species_table()
    return {_normalise(name): english.lower() for name, english in zip(table["name"], table["english"])}


def _normalise(name: str) -> str:
    return " ".join(str(name).replace("_", " ").split()).lower()


def common_name(scientific: str, *, file: str | os.PathLike | None = None, row: int | None = None,
                column: str | None = None) -> str:
    """The lower-case English name of an iWildCam species (``acinonyx jubatus`` → ``cheetah``).

    Underscores (class folder names) and case are accepted. An unknown name raises ``InputError``, with
    ``file`` / ``row`` / ``column`` when the caller read it from a table — never a silent skip.
    """
    names = _common_names()
    key = _normalise(scientific)
    if key in names:
        return names[key]
    hint = ""
    scientific_of_common = {english: name for name, english in names.items()}
    if key in scientific_of_common:
        hint = f" ('{scientific}' is a common name; use the scientific name '{scientific_of_common[key]}')"
    else:
        close = difflib.get_close_matches(key, list(names), n=1)
        if close:
            hint = f" (did you mean '{close[0]}'?)"
    raise InputError(file, f"unknown iWildCam species '{scientific}'{hint}", row=row, column=column)


def canonical_species(scientific: str, *, file: str | os.PathLike | None = None, row: int | None = None,
                      column: str | None = None) -> str:
    """The table's spelling of a species name (``Puma_Concolor`` → ``puma concolor``); unknown → ``InputError``."""
    common_name(scientific, file=file, row=row, column=column)
    return _normalise(scientific)


def data_dir(root: str | os.PathLike) -> Path:
    """``root/iwildcam_v2.0`` for a WILDS root dir; a path that already is the data dir is returned as is."""
    root = Path(root)
    return root if root.name == DATA_DIRNAME else root / DATA_DIRNAME


def _check_release(folder: Path) -> None:
    for required in ("metadata.csv", "RELEASE_v2.0.txt"):
        if not (folder / required).is_file():
            raise InputError(folder / required, "missing: not a WILDS iWildCam v2.0 root "
                             "(pass the folder that contains iwildcam_v2.0/, or --download)")


def load_dataset(root: str | os.PathLike, download: bool = False):
    """``wilds.get_dataset("iwildcam", root_dir=root)``; a missing or incomplete root is an ``InputError``."""
    import wilds

    folder = data_dir(root)
    if not download:
        _check_release(folder)
    return wilds.get_dataset("iwildcam", root_dir=str(folder.parent), download=download)


def read_split(root: str | os.PathLike, split: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """One split of ``metadata.csv`` as WILDS reads it: (row indices, file names, ``y``) of the rows whose ``split``
    is ``split``, without building the WILDS dataset (which parses every row's date: ~10 s for the 203k rows)."""
    folder = data_dir(root)
    _check_release(folder)
    path = folder / "metadata.csv"
    try:
        table = pd.read_csv(path, usecols=["split", "filename", "y"], dtype={"split": str, "filename": str})
    except ValueError as err:  # a missing column
        raise InputError(path, f"not a WILDS iWildCam metadata table ({err})") from None
    names = table["split"].to_numpy(dtype=object)
    unknown = np.flatnonzero(~np.isin(names, SPLITS))
    if unknown.size:
        raise InputError(path, f"unknown split {names[unknown[0]]!r}; WILDS has {', '.join(SPLITS)}",
                         int(unknown[0]) + 1, "split")
    labels = pd.to_numeric(table["y"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(np.isnan(labels) | (labels != np.round(labels)))
    if bad.size:
        raise InputError(path, f"expected an integer label, got {table['y'].iloc[bad[0]]!r}", int(bad[0]) + 1, "y")
    rows = np.flatnonzero(names == split)
    return rows, table["filename"].to_numpy(dtype=object)[rows].astype(str).tolist(), labels[rows].astype(np.int64)


def read_categories(root: str | os.PathLike) -> list[str]:
    """Scientific names indexed by ``y`` from the release's ``categories.csv`` (rows with y 99999 dropped)."""
    path = data_dir(root) / "categories.csv"
    if not path.is_file():
        raise InputError(path, "categories.csv not found")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in ("y", "name"):
        if column not in table.columns:
            raise InputError(path, f"missing column (have {list(table.columns)})", column=column)
    names: dict[int, str] = {}
    for row, (y_text, name) in enumerate(zip(table["y"], table["name"]), start=1):
        try:
            y = int(y_text)
        except ValueError:
            raise InputError(path, f"y must be an integer, got {y_text!r}", row=row, column="y") from None
        if y == ABSENT_Y:
            continue
        if y < 0 or y in names:
            raise InputError(path, f"y {y} is negative or repeated", row=row, column="y")
        names[y] = name.strip()
    if sorted(names) != list(range(len(names))):
        raise InputError(path, f"y values must be 0..{len(names) - 1} without gaps")
    return [names[y] for y in range(len(names))]


def species_names(root: str | os.PathLike | None = None) -> list[str]:
    """Scientific names indexed by label: from ``root``'s categories.csv, or the packaged 182-class list."""
    if root is None:
        return list(species_table()["name"])
    return read_categories(root)


def zeroshot_classnames(root: str | os.PathLike | None = None) -> list[str]:
    """Lower-case common names indexed by label: the class names for prompts and zero-shot heads."""
    path = None if root is None else data_dir(root) / "categories.csv"
    return [common_name(name, file=path, row=None, column="name") for name in species_names(root)]
