"""A validated binary copy of each stage table, so the next stage skips parsing and checking it again.

The stages hand each other CSV files (docs/DESIGN.md): the manifest parts, ``clip_scores.csv`` and the training
tables, up to ~617k rows each at the paper's volume, where reading one back (``pandas.read_csv`` of text plus the
whole-table validation) costs seconds each time a stage starts (docs/performance.md). A writer that has just
validated a table also stores its typed columns as NumPy arrays, with the SHA-256 of the CSV's bytes and the
*kind* of table (which validator, which version of its rules), in a per-user cache folder — never beside the
outputs, which stay exactly the CSV files. A reader given the same kind takes the copy only when the CSV's bytes
still hash to the recorded digest; any other case — no copy, an edited or replaced CSV, a copy from older rules, an
unreadable or partly written copy, another user's outputs — falls back to parsing and validating the CSV. The CSV
stays the contract: the copy is only ever a faster way to the same table (tested).

The folder is ``$DISCL_TABLE_CACHE`` (``off`` turns the copies off), else ``$XDG_CACHE_HOME/discl/tables`` or
``~/.cache/discl/tables``. There is one copy per table path and kind (a rewritten table replaces its copy); the
least recently used copies are removed once the folder holds more than ``MAX_BYTES``. A copy is one file of raw
arrays — ``MAGIC``, the length of a JSON header, the header (what the table is, which CSV bytes it stands for, each
array's dtype, length and offset), the arrays — read with one ``read`` and never unpickled: integer and float
columns as they are, text columns as UTF-8 joined by NUL (each distinct value once, with int32 codes, when values
repeat), columns of ``True`` / ``False`` / ``None`` as int8. A table with another kind of column, or text holding a
NUL, gets no copy; a cache folder that cannot be written only costs the speed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import mmap
import os
from pathlib import Path

import numpy as np
import pandas as pd

from discl.bulk import mostly_repeated
from discl.csvwrite import write_csv
from discl.fileio import atomic_write

log = logging.getLogger(__name__)

CACHE_ENV = "DISCL_TABLE_CACHE"
FORMAT = 1  # layout of the copy itself; the table kind carries the version of its rules
MAX_BYTES = 16 * 2 ** 30  # the copies of the real volume's tables take a few hundred MB
MAGIC = b"DISCL-TABLE\x00"
_ALIGN = 64
_OPTIONAL_BOOL = {None: -1, False: 0, True: 1}


def cache_folder() -> Path | None:
    """Where the copies live (``None``: turned off)."""
    setting = os.environ.get(CACHE_ENV)
    if setting is not None:
        return None if setting.strip().lower() in ("", "off", "0", "none") else Path(setting).expanduser()
    try:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    except (RuntimeError, KeyError):  # no home folder (a bare batch environment): no copies
        return None
    return Path(base) / "discl" / "tables"


def cache_path(csv_path: str | os.PathLike, kind: str) -> Path | None:
    """The copy's file for the table at ``csv_path`` (one per real path and kind), or None when turned off."""
    folder = cache_folder()
    if folder is None:
        return None
    key = hashlib.sha256(f"{kind}\x00{os.path.realpath(csv_path)}".encode("utf-8", "surrogateescape")).hexdigest()
    return folder / f"{key[:40]}.table"


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex), hashed from a memory map: no copy of a large file."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return hashlib.sha256(b"").hexdigest()
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return hashlib.sha256(mapped).hexdigest()


def _text_arrays(name: str, values: np.ndarray) -> dict[str, np.ndarray] | None:
    """A text column as NUL-joined UTF-8 (distinct values + codes when they repeat); None if it cannot be stored."""
    if mostly_repeated(values):
        codes, uniques = pd.factorize(values)
        texts, arrays = list(uniques), {f"{name}.codes": codes.astype(np.int32)}
    else:
        texts, arrays = values.tolist(), {}
    joined = "\x00".join(texts)
    if len(texts) and joined.count("\x00") != len(texts) - 1:
        return None  # a NUL inside a value
    arrays[f"{name}.text"] = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
    return arrays


def _column_arrays(name: str, series: pd.Series) -> tuple[str, dict[str, np.ndarray]] | None:
    """``(kind, arrays)`` of one column, or None for a column the copy does not hold."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iufb":
        return dtype.str, {f"{name}.values": series.to_numpy()}
    values = series.to_numpy(dtype=object)
    if str(dtype) in ("str", "object") and pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty"):
        arrays = _text_arrays(name, values)
        return (str(dtype), arrays) if arrays is not None else None
    if dtype == object and set(map(id, set(values.tolist()))) <= {id(None), id(True), id(False)}:
        codes = np.array([_OPTIONAL_BOOL[v] for v in values.tolist()], dtype=np.int8)
        return "optional-bool", {f"{name}.values": codes}
    return None


def write_cache(csv_path: str | os.PathLike, frame: pd.DataFrame, kind: str) -> bool:
    """Store ``frame`` — the validated table whose CSV was just written to ``csv_path`` — as its binary copy.

    Call it after the CSV is in place (a kill in between leaves an older copy, whose digest no longer matches).
    Returns whether a copy was stored; a column the copy cannot hold, or a cache folder that cannot be written,
    leaves none (never an error: the CSV is what counts).
    """
    target = cache_path(csv_path, kind)
    if target is None:
        return False
    try:
        if not frame.columns.is_unique:
            target.unlink(missing_ok=True)
            return False
        arrays: dict[str, np.ndarray] = {}
        columns = []
        for name in frame.columns:
            stored = _column_arrays(name, frame[name]) if isinstance(name, str) else None
            if stored is None:
                target.unlink(missing_ok=True)
                return False
            columns.append([name, stored[0]])
            arrays.update(stored[1])
        meta = {"format": FORMAT, "kind": kind, "rows": len(frame), "columns": columns,
                "csv_sha256": file_digest(csv_path), "csv_size": os.path.getsize(csv_path)}
        with atomic_write(target, "wb", durable=False) as handle:  # cheap to rebuild: the CSV is the durable copy
            _write_arrays(handle, meta, arrays)
        _prune(target.parent, MAX_BYTES)
        return True
    except (OSError, ValueError, TypeError) as err:  # a full or read-only cache folder; text UTF-8 cannot encode;
        # a column of unhashable objects
        log.debug("no table copy for %s (%s)", csv_path, err)
        return False


def write_table(csv_path: str | os.PathLike, typed: pd.DataFrame, kind: str, sep: str = ",") -> None:
    """Write a validated table as CSV (atomically, ``discl.csvwrite``), then its binary copy of ``kind``."""
    write_csv(csv_path, typed, sep=sep)
    write_cache(csv_path, typed, kind)


def _prune(folder: Path, max_bytes: int) -> None:
    """Remove the least recently used copies until ``folder`` holds at most ``max_bytes``."""
    entries = []
    for entry in os.scandir(folder):
        if entry.name.endswith(".table") and entry.is_file():
            info = entry.stat()
            entries.append((info.st_mtime_ns, info.st_size, entry.path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= max_bytes:
            break
        with contextlib.suppress(OSError):
            os.unlink(path)
            total -= size


def _write_arrays(handle, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """``MAGIC``, header length, JSON header, then each array at a 64-byte aligned offset."""
    layout, offset = [], 0
    for key, array in arrays.items():
        layout.append([key, array.dtype.str, len(array), offset])
        offset += -(-array.nbytes // _ALIGN) * _ALIGN
    header = json.dumps({**meta, "arrays": layout}).encode("utf-8")
    start = -(-(len(MAGIC) + 8 + len(header)) // _ALIGN) * _ALIGN
    handle.write(MAGIC + len(header).to_bytes(8, "little") + header + bytes(start - len(MAGIC) - 8 - len(header)))
    for array in arrays.values():
        handle.write(memoryview(np.ascontiguousarray(array)).cast("B"))
        handle.write(bytes(-array.nbytes % _ALIGN))


def _read_arrays(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and the arrays (views into ``data``) of a copy; ValueError when it is not a whole copy."""
    if not data.startswith(MAGIC):
        raise ValueError("not a table copy")
    size = int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "little")
    meta = json.loads(data[len(MAGIC) + 8:len(MAGIC) + 8 + size].decode("utf-8"))
    start = -(-(len(MAGIC) + 8 + size) // _ALIGN) * _ALIGN
    arrays = {}
    for key, dtype, length, offset in meta["arrays"]:
        dtype = np.dtype(dtype)
        if dtype.hasobject or offset < 0 or length < 0 or start + offset + length * dtype.itemsize > len(data):
            raise ValueError(f"array {key!r} outside the file")
        arrays[key] = np.frombuffer(data, dtype=dtype, count=length, offset=start + offset)
    return meta, arrays


def _text_column(arrays: dict[str, np.ndarray], name: str, rows: int) -> np.ndarray:
    text = str(arrays[f"{name}.text"].data, "utf-8")
    values = np.array(text.split("\x00") if text or rows else [], dtype=object)
    codes = arrays.get(f"{name}.codes")
    if codes is None:
        return values
    if len(codes) and not 0 <= codes.min() <= codes.max() < len(values):
        raise ValueError(f"codes of column {name!r} outside its values")
    return values[codes]


def read_cache(csv_path: str | os.PathLike, kind: str) -> pd.DataFrame | None:
    """The validated table of ``csv_path`` from its binary copy, or None when there is no copy of this kind that
    matches the CSV's current bytes (the caller then reads and validates the CSV)."""
    target = cache_path(csv_path, kind)
    if target is None:
        return None
    try:
        with open(target, "rb") as handle:
            data = handle.read()
        meta, arrays = _read_arrays(data)
        if (meta.get("format") != FORMAT or meta.get("kind") != kind
                or meta.get("csv_size") != os.path.getsize(csv_path)
                or meta.get("csv_sha256") != file_digest(csv_path)):
            return None
        rows, columns = meta["rows"], {}
        for name, column_kind in meta["columns"]:
            if column_kind in ("str", "object"):
                columns[name] = pd.Series(_text_column(arrays, name, rows), dtype=column_kind, copy=False)
            elif column_kind == "optional-bool":
                codes = arrays[f"{name}.values"].astype(np.intp) + 1
                if len(codes) and not 0 <= codes.min() <= codes.max() <= 2:
                    raise ValueError(f"column {name!r} holds codes other than -1, 0, 1")
                columns[name] = pd.Series(np.array([None, False, True], dtype=object)[codes], dtype=object)
            else:  # a copy: the frame's arrays must be writable
                columns[name] = arrays[f"{name}.values"].astype(np.dtype(column_kind), copy=True)
            if len(columns[name]) != rows:
                raise ValueError(f"column {name!r} has {len(columns[name])} rows, not {rows}")
        frame = pd.DataFrame(columns, columns=[name for name, _ in meta["columns"]])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:  # JSON and UTF-8 errors are ValueErrors
        log.warning("ignoring unreadable table copy %s of %s (%s)", target, csv_path, err)
        return None
    with contextlib.suppress(OSError):
        os.utime(target)  # recently used: pruned last
    return frame
