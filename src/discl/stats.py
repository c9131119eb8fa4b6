"""The per-epoch statistics table (``stats.tsv``): one row per epoch, rewritten atomically on every append."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from discl.fileio import atomic_write_csv


def read_stats(path: str | os.PathLike) -> pd.DataFrame:
    """The table so far (an empty frame when the file does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame()
    return pd.read_csv(path, sep="\t")


def append_stats(path: str | os.PathLike, row: dict[str, Any], key: str = "epoch") -> pd.DataFrame:
    """Append ``row``; a row with the same ``key`` value (an epoch re-run after a resume) is replaced.

    Rows beyond that key are dropped too: after a resume from epoch k the epochs > k are being redone.
    """
    frame = read_stats(path)
    new = pd.DataFrame([{k: _plain(v) for k, v in row.items()}])
    if not frame.empty and key in frame.columns:
        frame = frame[frame[key] < row[key]]
    frame = new if frame.empty else pd.concat([frame, new], ignore_index=True)
    atomic_write_csv(path, frame, sep="\t")
    return frame


def truncate_stats(path: str | os.PathLike, last: int, key: str = "epoch") -> None:
    """Keep only the rows with ``key ≤ last`` (a resumed run forgets what it will redo)."""
    frame = read_stats(path)
    if frame.empty or key not in frame.columns:
        return
    atomic_write_csv(path, frame[frame[key] <= last], sep="\t")


def _plain(value: Any) -> Any:
    # numpy / torch scalars → Python numbers, so the TSV holds plain values
    return value.item() if hasattr(value, "item") else value
