"""The one exception for bad user input, with a message that names the file, row and column."""

from __future__ import annotations

import os


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
