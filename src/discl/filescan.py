"""Which of many files exist, by listing each of their folders once (docs/performance.md).

The resume scan, the manifest refresh, the scorer and the trainer's checks ask about every one of up to ~617k
synthetic images. One ``os.scandir`` per folder answers for all the files in it (the directory entries carry their
type), where one ``stat`` per file costs a system call and a path parse each.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


def _listing(folder: str) -> frozenset[str] | None:
    """Names of the regular files (or links to them) in ``folder``; None when it is not a readable folder."""
    try:
        with os.scandir(folder) as entries:
            return frozenset([entry.name for entry in entries if entry.is_file()])
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return frozenset()  # unreadable: every file is asked for by its own stat below


class _Listings(dict):
    """Folder (as written in the paths) → its listing, made on first use."""

    def __init__(self, base: str):
        super().__init__()
        self.base = base

    def __missing__(self, folder: str) -> frozenset[str] | None:
        names = self[folder] = _listing(os.path.join(self.base, folder) if self.base else (folder or "."))
        return names


def existing(paths: Iterable[str], root: str | os.PathLike | None = None) -> np.ndarray:
    """Per path (relative to ``root``, or absolute), whether it is a file, as ``os.path.isfile`` says: one folder
    listing per distinct folder; a name the listing lacks in an existing folder is asked for by ``isfile`` (a
    case-insensitive file system may still have it)."""
    paths = list(paths)
    base = os.fspath(root) if root is not None else ""
    listings = _Listings(base)

    def is_file(path: str) -> bool:
        folder, _, name = path.rpartition("/")
        names = listings[folder]
        return names is not None and (name in names or os.path.isfile(os.path.join(base, path)))

    return np.fromiter(map(is_file, paths), dtype=bool, count=len(paths))


def join_names(folder: str | os.PathLike, names: Sequence[str]) -> list[str]:
    """``str(Path(folder) / name)`` of each name; one concatenation for plain file names (no ``/``, not ``""``,
    ``.`` or ``..``), which is the same text (the iWildCam train split: ~130k names in one folder)."""
    folder = str(Path(folder))
    plain = "\x00".join(names)
    if "/" in plain or any(name in ("", ".", "..") for name in names):
        return [str(Path(folder) / name) for name in names]
    return (os.path.join(folder, "") + np.asarray(names, dtype=object)).tolist() if names else []


def resolved_paths(paths: Sequence[str]) -> list[str]:
    """``str(Path(path).resolve())`` of each path, each distinct folder resolved once (a file that is not a symbolic
    link resolves to its resolved folder and its name): one ``lstat`` per file instead of one per path part."""
    folders: dict[str, str] = {}
    out = []
    for path in paths:
        folder, name = os.path.split(path)
        if name in ("", ".", "..") or os.path.islink(path):
            out.append(str(Path(path).resolve()))
            continue
        if folder not in folders:
            folders[folder] = str(Path(folder).resolve())
        out.append(os.path.join(folders[folder], name))
    return out
