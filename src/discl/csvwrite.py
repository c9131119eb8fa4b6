"""CSV tables written the way ``DataFrame.to_csv(index=False)`` writes them, byte for byte, in a fraction of the
time (docs/performance.md).

The manifest, the scored manifest and the training tables of the real volume have 617k–900k rows; pandas'
writer spends most of its time converting each cell. Here each column is converted at once, as pandas converts
it (integers and floats by NumPy's shortest round-trip text, NaN / None as an empty cell, other objects by
``str``), and Python's ``csv`` writer — the one pandas uses — quotes and joins the cells. Frames with a column of
another kind (dates, categories, …) are handed to pandas unchanged.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import pandas as pd

from discl.fileio import atomic_write


def _cells(series: pd.Series) -> list | None:
    """The column's cells as pandas' CSV writer sees them (None: a kind left to pandas)."""
    kind = series.dtype.kind
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
        cells = series.to_numpy(dtype=object).copy()
        cells[pd.isna(cells)] = ""
        return cells.tolist()
    return None


def write_csv(path: str | os.PathLike, frame: pd.DataFrame, sep: str = ",") -> None:
    """``frame`` as CSV (header, no index), atomically; the bytes of ``frame.to_csv(path, sep=sep, index=False)``."""
    columns = [_cells(frame.iloc[:, i]) for i in range(frame.shape[1])]
    with atomic_write(path, "w") as handle:
        if any(cells is None for cells in columns) or not all(isinstance(c, str) for c in frame.columns):
            frame.to_csv(handle, sep=sep, index=False)
            return
        writer = csv.writer(handle, delimiter=sep, quotechar='"', quoting=csv.QUOTE_MINIMAL, lineterminator=os.linesep)
        writer.writerow(list(frame.columns))
        writer.writerows(zip(*columns))
