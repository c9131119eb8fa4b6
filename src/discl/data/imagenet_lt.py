"""ImageNet-LT: the ``path label [guidance [train_count]]`` list files, class names, and the many/medium/few split."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

from discl.errors import InputError, decoding

NUM_CLASSES = 1000
LIST_FILES = {"train": "ImageNet_LT_train.txt", "val": "ImageNet_LT_val.txt", "test": "ImageNet_LT_test.txt"}
GROUPS = ("many", "medium", "few")
CONVENTIONS = ("reference", "standard")


@dataclass(frozen=True)
class ListEntry:
    """One line of a list file: an image path (relative to the ImageNet root, or absolute), its label, its guidance
    level and ``line``, its 1-based line in the file, blank lines counted (0 when not read from a file). A fourth
    field, the class's training count the reference's loader reads, is checked and not kept: our trainers take the
    counts of ``ImageNet_LT_train.txt``."""

    path: str
    label: int
    guidance: int | None = None
    line: int = field(default=0, compare=False)


def read_list(path: str | os.PathLike, allow_guidance: bool = True) -> list[ListEntry]:
    """Parse a ``path label [guidance [train_count]]`` list; ``InputError`` names the file and line of a
    bad one (``line N``: the list has no header and may have blank lines, so a line number is what an editor
    shows)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "list file not found")
    entries = []
    with decoding(path), open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            entries.append(_parse_line(path, line_number, fields, allow_guidance))
    if not entries:
        raise InputError(path, "list file is empty (expected lines 'relative/path label [guidance]')")
    return entries


def line_error(path: str | os.PathLike, line_number: int, message: str) -> InputError:
    """The error of a bad line of a header-less list: ``FILE: line N: message``."""
    return InputError(path, f"line {line_number}: {message}")


def _parse_line(path: Path, line_number: int, fields: list[str], allow_guidance: bool) -> ListEntry:
    max_fields = 4 if allow_guidance else 2
    if not 2 <= len(fields) <= max_fields:
        expected = "'path label [guidance [train_count]]'" if allow_guidance else "'relative/path label'"
        raise line_error(path, line_number, f"expected {expected}, got {len(fields)} fields")
    label = _non_negative_int(path, line_number, "label", fields[1])
    guidance = None
    if len(fields) >= 3:
        guidance = _non_negative_int(path, line_number, "guidance", fields[2])
        if guidance > 100:
            raise line_error(path, line_number, f"guidance must be in 0..100, got {guidance}")
    if len(fields) == 4:
        _non_negative_int(path, line_number, "train_count", fields[3])
    return ListEntry(fields[0], label, guidance, line_number)


def _non_negative_int(path: Path, line_number: int, column: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise line_error(path, line_number, f"{column} must be an integer, got {text!r}") from None
    if value < 0:
        raise line_error(path, line_number, f"{column} must be >= 0, got {value}")
    return value


def read_split(root: str | os.PathLike, split: str) -> list[ListEntry]:
    """The entries of ``ImageNet_LT_{split}.txt`` under ``root`` (split = train | val | test)."""
    if split not in LIST_FILES:
        raise ValueError(f"split must be one of {sorted(LIST_FILES)}, got {split!r}")
    return read_list(Path(root) / LIST_FILES[split], allow_guidance=False)


@lru_cache(maxsize=1)
def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1k WordNet ids in label order (sorted, as ImageNet folders are)."""
    text = resources.files("discl.data").joinpath("imagenet_wnids.txt").read_text(encoding="utf-8")
    wnids = text.split()
    assert len(wnids) == NUM_CLASSES, "package data imagenet_wnids.txt is damaged"
    return wnids


@lru_cache(maxsize=1)
def class_names() -> list[str]:
    """The 1000 ImageNet class names in label order (open_clip's curated names, as CLIP zero-shot uses)."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return list(IMAGENET_CLASSNAMES)


def class_counts(entries: Iterable[ListEntry], num_classes: int | None = None) -> list[int]:
    """Images per label, as a list indexed by label (length ``num_classes`` or max label + 1)."""
    counter = Counter(entry.label for entry in entries)
    size = num_classes if num_classes is not None else (max(counter) + 1 if counter else 0)
    if counter and max(counter) >= size:
        raise ValueError(f"label {max(counter)} out of range for {size} classes")
    return [counter.get(label, 0) for label in range(size)]


def split_by_count(counts: Sequence[int], many_min: int = 100, few_max: int = 20,
                   convention: str = "reference") -> list[str]:
    """Per class 'many' / 'medium' / 'few' by training count.

    ``reference`` (the DisCL/LDMLR code): many ``>= many_min``, few ``< few_max``.
    ``standard`` (the ImageNet-LT papers): many ``> many_min``, few ``< few_max``; only a class with
    exactly ``many_min`` images differs (many vs medium).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    groups = []
    for count in counts:
        is_many = count >= many_min if convention == "reference" else count > many_min
        groups.append("many" if is_many else "few" if count < few_max else "medium")
    return groups
