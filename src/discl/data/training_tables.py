"""The curriculum training tables: column constants, validating readers and atomic writers.

Every dataset: ``train.csv`` and ``validate.csv``, tab-separated, columns ``title, filepath, label, strength,
guidance, seed, img_id`` (the reference's iWildCam format; the curriculum-validation table has the same
columns). ``filepath`` is written absolute; a relative one is read relative to the table's folder.
``read_training_table`` reads these and also the ImageNet-LT reference lists below.

ImageNet-LT also gets the reference's list files, one ``path label guidance train_cnt`` per line, no header.
Real rows (guidance 100) are relative to the ImageNet-LT root (as in ``ImageNet_LT_train.txt``); synthetic rows
(guidance < 100) are absolute, or relative to the generation output root. ``data_roots.json`` beside the lists
records both roots, so a reader needs no extra arguments.

The tables of one build belong together (a training table with another build's validation table would probe
other images): ``build_data.py`` marks its folder with ``tables.json`` saying ``"complete": false`` before it
writes the first table and ``true`` after the last, and ``read_training_table`` refuses a table whose folder is
marked incomplete — what a kill between the writes leaves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from discl.errors import InputError, csv_error, decoding
from discl.fileio import atomic_write, atomic_write_json
from discl.guidance import REAL, REAL_SEED
from discl.tablecache import read_cache, write_table

TABLE_COLUMNS = ["title", "filepath", "label", "strength", "guidance", "seed", "img_id"]
BUILD_RECORD = "tables.json"
IMAGENET_LT_COLUMNS = ["path", "label", "guidance"]
TRAIN_COUNT = "train_cnt"  # the optional fourth field: the class's training count (the reference loader's tail flag)
DATA_ROOTS_FILE = "data_roots.json"
CACHE_KIND = "training-table/1"  # the validated copy's kind (discl.tablecache): change it when the rules change


def _first_bad(mask: np.ndarray) -> int | None:
    """1-based data row of the first True in ``mask``, or None."""
    hits = np.flatnonzero(mask)
    return int(hits[0]) + 1 if hits.size else None


def _plain_integers(cells: np.ndarray) -> np.ndarray | None:
    """The cells as float64 when every one is a plain decimal integer (``-``, digits), as ``pd.to_numeric`` reads
    them, in one pass; None otherwise (the caller asks ``pd.to_numeric``)."""
    if not len(cells) or pd.api.types.infer_dtype(cells, skipna=False) != "string":
        return None
    text = "\x00".join(cells).encode("utf-8")
    if text.translate(None, b"0123456789\x00-"):
        return None
    if b"-" in text and text.count(b"-") != text.count(b"\x00-") + text.startswith(b"-"):
        return None  # a '-' inside a cell
    try:
        return cells.astype(np.int64).astype(np.float64)
    except (ValueError, OverflowError):  # an empty cell, a lone '-', more than 63 bits
        return None


def _int_column(frame: pd.DataFrame, column: str, file, lo: int | None = None, hi: int | None = None) -> np.ndarray:
    """Parse one column as integers, raising on the first non-integer or out-of-range value."""
    raw = frame[column]
    numbers = _plain_integers(raw.to_numpy(dtype=object))
    if numbers is None:
        numbers = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64")
    bad = ~np.isfinite(numbers) | (numbers != np.round(numbers))  # 'inf' parses as a number, not an integer
    row = _first_bad(bad)
    if row is not None:
        raise InputError(file, f"expected an integer, got {raw.iloc[row - 1]!r}", row, column)
    lo = -2 ** 63 if lo is None else lo  # the columns are int64
    hi = 2 ** 63 - 1 if hi is None else hi
    row = _first_bad((numbers < lo) | (numbers > hi) | (numbers >= 2.0 ** 63))
    if row is not None:
        raise InputError(file, f"{int(numbers[row - 1])} outside [{lo}, {hi}]", row, column)
    return numbers.astype("int64")


def _blank_check(frame: pd.DataFrame, column: str, file) -> None:
    values = frame[column]
    cells = values.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # str.strip() == "": empty or all whitespace
        blank = (cells == "") | np.fromiter(map(str.isspace, cells), dtype=bool, count=len(cells))
    else:
        blank = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
    row = _first_bad(blank)
    if row is not None:
        raise InputError(file, "value is missing", row, column)


def validate_training_table(frame: pd.DataFrame, file: str | os.PathLike = "<table>") -> pd.DataFrame:
    """Check columns, types and the strength/guidance encoding; return a typed copy with the table's columns."""
    missing = [c for c in TABLE_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(file, f"missing column(s) {', '.join(missing)}; expected {', '.join(TABLE_COLUMNS)}")
    frame = frame[TABLE_COLUMNS].reset_index(drop=True)
    for column in ("title", "filepath"):
        _blank_check(frame, column, file)
    typed = pd.DataFrame({
        "title": frame["title"].astype(str),
        "filepath": frame["filepath"].astype(str),
        "label": _int_column(frame, "label", file, lo=0),
        "strength": _int_column(frame, "strength", file, 0, 100),
        "guidance": _int_column(frame, "guidance", file, 0, 100),
        "seed": _int_column(frame, "seed", file, lo=0),
        "img_id": _int_column(frame, "img_id", file),
    })
    row = _first_bad((typed["guidance"] != 100 - typed["strength"]).to_numpy())
    if row is not None:
        raise InputError(file, f"guidance {typed['guidance'][row - 1]} != 100 - strength "
                               f"({100 - typed['strength'][row - 1]})", row, "guidance")
    return typed


def write_training_table(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Validate and write a training / curriculum-validation table (TSV with header) atomically."""
    write_table(path, validate_training_table(frame, path), CACHE_KIND, sep="\t")


def _read_tsv_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a TSV table (or take its validated copy, when one matches its bytes); relative
    ``filepath`` values are resolved against its folder."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "training table not found")
    typed = read_cache(path, CACHE_KIND)
    if typed is None:
        try:
            with decoding(path):
                frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise InputError(path, "file is empty (expected a header row)") from None
        except pd.errors.ParserError as err:
            raise csv_error(path, err, "tab-separated table", delimiter="\t") from None
        typed = validate_training_table(frame, path)
    base = path.resolve().parent
    paths = typed["filepath"].to_numpy(dtype=object)
    relative = np.flatnonzero(~np.fromiter(map(os.path.isabs, paths), dtype=bool, count=len(paths)))
    if relative.size:
        paths = paths.copy()
        paths[relative] = [str(base / p) for p in paths[relative]]
    typed["filepath"] = paths.tolist()
    return typed


def validate_imagenet_lt_list(frame: pd.DataFrame, file: str | os.PathLike = "<list>") -> pd.DataFrame:
    """Check an ImageNet-LT list table (``path, label, guidance`` and, when present, ``train_cnt``); return a typed
    copy. Real rows (guidance 100) are relative to the ImageNet root; synthetic rows may be absolute."""
    missing = [c for c in IMAGENET_LT_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(file, f"missing column(s) {', '.join(missing)}; expected {', '.join(IMAGENET_LT_COLUMNS)}")
    frame = frame[IMAGENET_LT_COLUMNS + [TRAIN_COUNT] * (TRAIN_COUNT in frame.columns)].reset_index(drop=True)
    _blank_check(frame, "path", file)
    paths = frame["path"].astype(str)
    row = _first_bad(paths.str.contains(r"\s", regex=True).to_numpy())
    if row is not None:
        raise InputError(file, f"path {paths[row - 1]!r} contains whitespace (lists are space-separated)", row, "path")
    guidance = _int_column(frame, "guidance", file, 0, 100)
    row = _first_bad((paths.map(os.path.isabs) & (guidance == REAL)).to_numpy())
    if row is not None:
        raise InputError(file, f"path {paths[row - 1]!r} of a real image must be relative to the ImageNet root", row,
                         "path")
    typed = pd.DataFrame({"path": paths, "label": _int_column(frame, "label", file, lo=0), "guidance": guidance})
    if TRAIN_COUNT in frame.columns:
        typed[TRAIN_COUNT] = _int_column(frame, TRAIN_COUNT, file, lo=0)
    return typed


def write_imagenet_lt_list(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Validate and write an ImageNet-LT list file atomically: ``path label guidance`` per line, and the class's
    training count as a fourth field when the frame has ``train_cnt`` (the reference's loader reads it)."""
    typed = validate_imagenet_lt_list(frame, path)
    columns = [typed[c].astype(str) for c in IMAGENET_LT_COLUMNS + ([TRAIN_COUNT] if TRAIN_COUNT in typed else [])]
    lines = [" ".join(fields) + "\n" for fields in zip(*columns)]
    with atomic_write(path, "w") as handle:
        handle.writelines(lines)


def write_data_roots(folder: str | os.PathLike, real_root: str | os.PathLike,
                     synthetic_root: str | os.PathLike) -> Path:
    """Record the roots the relative paths of an ImageNet-LT list are resolved against."""
    target = Path(folder) / DATA_ROOTS_FILE
    atomic_write_json(target, {"real_root": str(Path(real_root).resolve()),
                               "synthetic_root": str(Path(synthetic_root).resolve())})
    return target


def read_data_roots(folder: str | os.PathLike) -> tuple[Path, Path]:
    """``(real_root, synthetic_root)`` from ``data_roots.json`` in ``folder``."""
    target = Path(folder) / DATA_ROOTS_FILE
    if not target.is_file():
        raise InputError(target, "not found; pass the real and synthetic roots explicitly")
    try:
        with decoding(target):
            roots = json.loads(target.read_text(encoding="utf-8"))
        return Path(roots["real_root"]), Path(roots["synthetic_root"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(target, f"expected {{'real_root': ..., 'synthetic_root': ...}} ({err})") from None


def read_imagenet_lt_list(path: str | os.PathLike, real_root: str | os.PathLike | None = None,
                          synthetic_root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read a list file into ``path, label, guidance, filepath`` (absolute: real rows under ``real_root``).

    Roots not given are taken from ``data_roots.json`` beside the list.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "list file not found")
    if real_root is None or synthetic_root is None:
        saved_real, saved_synthetic = read_data_roots(path.parent)
        real_root = saved_real if real_root is None else real_root
        synthetic_root = saved_synthetic if synthetic_root is None else synthetic_root
    records = []
    with decoding(path), open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if len(parts) not in (3, 4):
                raise InputError(path, f"expected 'path label guidance [train_cnt]', got {line.strip()!r}", number)
            records.append(parts[:3])
    # one record per line (blank lines are rejected above), so data row N is line N
    typed = validate_imagenet_lt_list(pd.DataFrame(records, columns=IMAGENET_LT_COLUMNS), path)
    real_root, synthetic_root = Path(real_root), Path(synthetic_root)
    typed["filepath"] = [str((real_root if g == REAL else synthetic_root) / p)
                         for p, g in zip(typed["path"], typed["guidance"])]
    return typed


def start_build(folder: str | os.PathLike) -> None:
    """Mark ``folder`` as being written: its tables do not belong together until :func:`finish_build`."""
    atomic_write_json(Path(folder) / BUILD_RECORD, {"complete": False})


def finish_build(folder: str | os.PathLike, info: dict) -> None:
    """Mark ``folder``'s tables as one complete build (``info``: what was written, counts, sources)."""
    atomic_write_json(Path(folder) / BUILD_RECORD, {"complete": True, **info})


def build_record(folder: str | os.PathLike) -> dict | None:
    """``folder``'s build record; ``None`` for a folder without one (tables made by hand), ``{}`` for one that does
    not parse (an unfinished build)."""
    record = Path(folder) / BUILD_RECORD
    if not record.is_file():
        return None
    try:
        info = json.loads(record.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def build_complete(folder: str | os.PathLike) -> bool | None:
    """``True``/``False`` from ``folder``'s build record; ``None`` for a folder without one (tables made by hand)."""
    info = build_record(folder)
    return None if info is None else bool(info.get("complete"))


def check_build_complete(path: str | os.PathLike) -> None:
    """A table from a build that did not finish is an ``InputError`` (see the module doc)."""
    path = Path(path)
    if build_complete(path.parent) is False:
        raise InputError(path, f"comes from a build_data.py run that did not finish ({path.parent / BUILD_RECORD} "
                               "is not complete): run build_data.py again")


def read_training_table(path: str | os.PathLike, real_root: str | os.PathLike | None = None,
                        synthetic_root: str | os.PathLike | None = None) -> pd.DataFrame:
    """A training or curriculum-validation table with exactly the columns ``TABLE_COLUMNS``.

    A ``.txt`` ImageNet-LT list (``path label [guidance [train_count]]``) is accepted too: real rows under
    ``real_root``, synthetic rows under ``synthetic_root`` (default: ``data_roots.json`` beside the list); its
    titles are empty, seeds 100 (real) / 0 (unknown), img_ids ``-1, -2, …`` for real rows and ``0, 1, …`` for
    synthetic rows.
    """
    path = Path(path)
    check_build_complete(path)
    if path.suffix.lower() != ".txt":
        return _read_tsv_table(path)[TABLE_COLUMNS]
    from discl.data.imagenet_lt import line_error, read_list

    entries = read_list(path)
    guidance = np.asarray([REAL if e.guidance is None else e.guidance for e in entries], dtype=np.int64)
    real = guidance == REAL
    roots = {"real": real_root, "synthetic": synthetic_root}
    needed = {"real"} | ({"synthetic"} if (~real).any() else set())
    if any(roots[k] is None for k in needed):
        saved = dict(zip(("real", "synthetic"), read_data_roots(path.parent)))
        roots = {k: saved[k] if v is None else v for k, v in roots.items()}
    bad = next((i for i, (e, r) in enumerate(zip(entries, real)) if r and os.path.isabs(e.path)), None)
    if bad is not None:
        raise line_error(path, entries[bad].line, f"path {entries[bad].path!r} of a real image must be relative to "
                                                  "the ImageNet root")
    img_id = np.where(real, -np.cumsum(real), np.cumsum(~real) - 1)
    return pd.DataFrame({
        "title": "", "filepath": [str(Path(roots["real" if r else "synthetic"]) / e.path)
                                  for e, r in zip(entries, real)],
        "label": np.asarray([e.label for e in entries], dtype=np.int64), "strength": REAL - guidance,
        "guidance": guidance, "seed": np.where(real, REAL_SEED, 0).astype(np.int64), "img_id": img_id.astype(np.int64),
    }, columns=TABLE_COLUMNS)
