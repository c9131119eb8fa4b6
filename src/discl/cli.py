"""Helpers shared by the argparse entry points."""

from __future__ import annotations

import logging
import sys
from typing import Callable, Sequence

from discl.errors import InputError


class QuietThirdParty(logging.Filter):
    """Drop INFO chatter that libraries log on the root logger (open_clip logs each config it loads)."""

    NOISY_PACKAGES = ("open_clip", "wilds")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or record.name != "root":
            return True
        path = record.pathname.replace("\\", "/")
        return not any(f"/{package}/" in path for package in self.NOISY_PACKAGES)


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr with a short, timestamped format; third-party INFO chatter only with ``verbose``."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(QuietThirdParty())


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> None:
    """Run ``main(argv)`` and exit: bad input (a text file that is not UTF-8 included) becomes a one-line
    ``error: ...`` and exit code 2; a file-system error (a path that cannot be read or written, a full disk) or
    running out of GPU memory one line and exit 1; Ctrl-C exit 130. Anything else is a bug and keeps its traceback."""
    try:
        code = main(argv)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except UnicodeDecodeError as err:  # a reader that does not name its file (they should: errors.decoding)
        print(f"error: an input file is not UTF-8 text ({err.reason} at byte {err.start})", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        print(f"error: {err.strerror or err}{where}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except RuntimeError as err:
        if type(err).__name__ != "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch
            raise
        print(f"error: out of GPU memory ({str(err).splitlines()[0]}); lower --batch-size", file=sys.stderr)
        sys.exit(1)
    sys.exit(code or 0)
