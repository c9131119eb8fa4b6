"""CSV tables written the way ``DataFrame.to_csv(index=False)`` writes them, byte for byte, in a fraction of the
time (docs/performance.md).

The manifest, the scored manifest and the training tables of the real volume have 617k–900k rows; pandas'
writer spends most of its time converting each cell. Here each column is converted at once, as pandas converts
it (integers and floats by NumPy's shortest round-trip text, NaN / None as an empty cell, other objects by
``str``), quoted as Python's ``csv`` writer — the one pandas uses — quotes them (a cell holding the separator or a
quote is put in quotes, its quotes doubled), and joined a block of rows at a time. Frames with a column of another
kind (dates, categories, …), a cell holding a line break, or a single column are left to the ``csv`` writer or to
pandas unchanged.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import pandas as pd

from discl.bulk import mostly_repeated
from discl.fileio import atomic_write


def _number_cells(values: np.ndarray) -> list[str]:
    """Integers and floats as pandas writes them: Python's shortest round-trip ``repr`` (NumPy's ``str`` is the same
    text, at twice the cost), each distinct value formatted once where values repeat; NaN as an empty cell."""
    values = np.ascontiguousarray(values)
    if not mostly_repeated(values):  # scores, generator seeds: hashing them would not pay
        cells = list(map(repr, values.tolist()))
        if values.dtype.kind == "f":
            for row in np.flatnonzero(np.isnan(values)).tolist():
                cells[row] = ""
        return cells
    bits = values.view(np.int64) if values.dtype == np.float64 else values  # -0.0 and 0.0 stay apart
    codes, uniques = pd.factorize(bits)
    if values.dtype == np.float64:
        uniques = uniques.view(np.float64)
    text = np.array(list(map(repr, uniques.tolist())), dtype=object)  # no Python-level loop body per value
    if values.dtype.kind == "f":
        text[np.isnan(uniques)] = ""
    return text[codes].tolist()


def _cells(series: pd.Series) -> list | None:
    """The column's cells as pandas' CSV writer sees them (None: a kind left to pandas)."""
    kind = series.dtype.kind
    if kind in "iuf" and isinstance(series.dtype, np.dtype) and series.dtype.itemsize == 8:
        return _number_cells(series.to_numpy())
    if kind in "iu" and isinstance(series.dtype, np.dtype):
        return series.to_numpy().astype(str).tolist()
    if kind == "f" and isinstance(series.dtype, np.dtype):
        values = series.to_numpy()
        cells = values.astype(str).astype(object)
        cells[np.isnan(values)] = ""
        return cells.tolist()
    if kind == "b" and isinstance(series.dtype, np.dtype):
        return np.where(series.to_numpy(), "True", "False").tolist()
    if kind == "O":
        cells = series.to_numpy(dtype=object)
        inferred = pd.api.types.infer_dtype(cells, skipna=False)  # a quick scan
        if inferred == "boolean":  # Python / NumPy bools only (a missing value would make it "mixed"): str of each
            return np.where(cells.astype(bool), "True", "False").tolist()
        if inferred != "string":  # all text: nothing is missing
            cells = cells.copy()
            cells[pd.isna(cells)] = ""
        return cells.tolist()
    return None


ROWS_PER_BLOCK = 65536  # rows joined into one string before it is written


def _quoted(cells: list, sep: str) -> list[str] | None:
    """The cells as ``csv.QUOTE_MINIMAL`` writes them; None when a cell holds a line break (left to ``csv``)."""
    try:
        joined = "\x00".join(cells)  # one C-speed search per column: almost every column needs no quoting
    except TypeError:  # objects other than text: the csv writer writes str(cell)
        cells = [cell if isinstance(cell, str) else str(cell) for cell in cells]
        joined = "\x00".join(cells)
    if "\n" in joined or "\r" in joined:
        return None
    if sep not in joined and '"' not in joined:
        return cells
    return ['"' + cell.replace('"', '""') + '"' if sep in cell or '"' in cell else cell for cell in cells]


def write_csv(path: str | os.PathLike, frame: pd.DataFrame, sep: str = ",") -> None:
    """``frame`` as CSV (header, no index), atomically; the bytes of ``frame.to_csv(path, sep=sep, index=False)``."""
    columns = [_cells(frame.iloc[:, i]) for i in range(frame.shape[1])]
    with atomic_write(path, "w") as handle:
        if any(cells is None for cells in columns) or not all(isinstance(c, str) for c in frame.columns):
            frame.to_csv(handle, sep=sep, index=False)
            return
        quoted = [_quoted(cells, sep) for cells in [list(frame.columns)] + columns]
        if len(columns) < 2 or any(cells is None for cells in quoted):
            # a lone empty cell is written as "" and line breaks have rules of their own: the csv writer knows them
            writer = csv.writer(handle, delimiter=sep, quotechar='"', quoting=csv.QUOTE_MINIMAL,
                                lineterminator=os.linesep)
            writer.writerow(list(frame.columns))
            writer.writerows(zip(*columns))
            return
        header, columns = quoted[0], quoted[1:]
        handle.write(sep.join(header) + os.linesep)
        for start in range(0, len(frame), ROWS_PER_BLOCK):
            block = [cells[start:start + ROWS_PER_BLOCK] for cells in columns]
            handle.write(os.linesep.join(map(sep.join, zip(*block))) + os.linesep)
