"""Progress that reads well in a terminal and in a batch job's log file.

On an interactive terminal :func:`progress` is a ``tqdm`` bar. When stderr is not a terminal (a SLURM job's
``.out`` file, ``nohup``, a pipe), a bar would be one ever-growing line of carriage returns; there it logs a plain
line instead — ``epoch 3: 120/500 step (24%), 2.1 step/s, 3m01s left, loss=0.5312`` — every
``DISCL_PROGRESS_SECONDS`` seconds (default 60) and when a task that long closes. ``enabled=False`` (every rank
but 0) shows nothing, so a job has one bar, not one per process.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Iterable, Iterator

from tqdm import tqdm

log = logging.getLogger("discl.progress")

INTERVAL_ENV = "DISCL_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 60.0


def interactive() -> bool:
    """True when stderr is a terminal (where a redrawn bar is readable)."""
    return sys.stderr.isatty()


def log_interval() -> float:
    """Seconds between plain progress lines (``DISCL_PROGRESS_SECONDS``, default 60)."""
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def duration(seconds: float) -> str:
    """``3725`` → ``1h02m05s``; ``65`` → ``1m05s``; ``4.2`` → ``4s``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class LogProgress:
    """The subset of ``tqdm`` the package uses (iterate, ``update``, ``set_postfix``, ``close``), as log lines."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", interval: float | None = None):
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.desc, self.unit = desc, unit
        self.interval = log_interval() if interval is None else interval
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self.start = self.last = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __len__(self) -> int:
        return self.total or 0

    def set_postfix(self, **values: Any) -> None:
        """Values shown at the end of the next line."""
        self.postfix = values

    def update(self, n: int = 1) -> None:
        """Count ``n`` more; log a line when the interval has passed."""
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            log.info(self.line(now))

    def line(self, now: float | None = None) -> str:
        """``desc: n/total unit (p%), rate, time left, postfix``."""
        elapsed = (time.monotonic() if now is None else now) - self.start
        parts = [f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        if elapsed > 0 and self.n:
            rate = self.n / elapsed
            parts.append(f"{rate:.3g} {self.unit}/s" if rate >= 1 else f"{1 / rate:.3g} s/{self.unit}")
            if self.total and self.n < self.total:
                parts.append(f"{duration((self.total - self.n) / rate)} left")
        parts.append(f"{duration(elapsed)} elapsed")
        text = ", ".join(parts)
        if self.postfix:
            text += ", " + " ".join(f"{k}={v}" for k, v in self.postfix.items())
        return f"{self.desc}: {text}" if self.desc else text

    def close(self) -> None:
        """Log the final line (once) of a task that logged before or took an interval; short tasks stay quiet."""
        now = time.monotonic()
        if not self.closed and self.n and (self.last != self.start or now - self.start >= self.interval):
            log.info(self.line(now))
        self.closed = True


class _Off(LogProgress):
    """A progress object that counts but never shows anything (ranks other than 0)."""

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        self.closed = True


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             enabled: bool = True, leave: bool = True) -> Any:
    """A ``tqdm`` bar on a terminal, plain periodic log lines otherwise, nothing when not ``enabled``."""
    if not enabled:
        return _Off(iterable, total, desc, unit)
    if interactive():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True)
    return LogProgress(iterable, total, desc, unit)
