"""The one exception for bad user input, with a message that names the file, row and column."""

from __future__ import annotations

import csv
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class InputError(Exception):
    """Bad input: a file, a row or a value the user must fix. ``str()`` is one line."""

    def __init__(self, file: str | os.PathLike | None, message: str, row: int | None = None,
                 column: str | None = None):
        self.file = None if file is None else str(file)
        self.row = row
        self.column = column
        self.message = message
        super().__init__(self.format())

    def format(self) -> str:
        """``FILE: row N: column 'C': message`` (parts that are unknown are left out)."""
        parts = []
        if self.file is not None:
            parts.append(self.file)
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        parts.append(self.message)
        return ": ".join(parts).replace("\n", " ")


def not_utf8(path: str | os.PathLike, err: UnicodeDecodeError) -> InputError:
    """The error for a file that is not UTF-8 text, naming the line of its first undecodable byte when the file
    can be read again (a data file is UTF-8 everywhere in this project)."""
    where = None
    try:
        data = Path(path).read_bytes()
        data.decode("utf-8")
    except UnicodeDecodeError as full:
        where = data.count(b"\n", 0, full.start) + 1
    except OSError:
        pass
    place = f"line {where}: " if where is not None else ""
    return InputError(path, f"{place}not UTF-8 text ({err.reason}); save it as UTF-8")


@contextmanager
def decoding(path: str | os.PathLike) -> Iterator[None]:
    """Reading ``path`` inside: text that is not UTF-8 becomes an ``InputError`` naming the file and line."""
    try:
        yield
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None


def csv_error(path: str | os.PathLike, err: Exception, what: str = "CSV", **reader) -> InputError:
    """pandas' error on a malformed CSV as an ``InputError`` naming the data row (1-based, blank lines skipped as
    pandas skips them) where pandas says which record; ``reader``: the ``csv.reader`` options matching the read."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    extra = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    quote = re.search(r"EOF inside string starting at row (\d+)", text)
    if extra:
        record = int(extra.group(2)) - 1  # pandas counts records from 1, the header and blank lines included
        message = f"{extra.group(3)} fields, the header has {extra.group(1)} (a separator too many or unquoted?)"
    elif quote:
        record = int(quote.group(1))  # from 0, the header and blank lines included
        message = "a quoted field starts in this row and never ends (an unmatched '\"')"
    else:
        return InputError(path, f"not a valid {what} ({text})")
    return InputError(path, message, _data_row(path, record, reader))


def _data_row(path: str | os.PathLike, record: int, reader: dict) -> int | None:
    """The 1-based data row of CSV record ``record`` (0 = the header; blank records are not data rows)."""
    try:
        with decoding(path), open(path, encoding="utf-8-sig", newline="") as handle:
            row = 0
            for index, cells in enumerate(csv.reader(handle, **reader)):
                if index >= record:
                    return row + 1 if index == record and cells else None
                row += bool(cells) and index > 0
    except (OSError, csv.Error, InputError):
        pass
    return None
