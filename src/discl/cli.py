"""Helpers shared by the argparse entry points."""

from __future__ import annotations

import logging
import sys
from typing import Callable, Sequence

from discl.errors import InputError


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr with a short, timestamped format."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> None:
    """Run ``main(argv)`` and exit; bad input becomes a one-line ``error: ...`` and exit code 2."""
    try:
        code = main(argv)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
