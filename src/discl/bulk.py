"""Whole-volume table work (~617k synthetic images): the garbage collector paused, distinct values handled once.

Building, checking and writing the tables of the real volume creates millions of short-lived small containers
(row tuples, per-key lists) and no reference cycles; the collector's passes over the growing heap then cost up to
half the time of a step (docs/performance.md). ``gc_paused`` runs a function with the collector off and switches it
back on afterwards (also after an exception); cycles made meanwhile are collected at its next pass.
``mostly_repeated`` tells whether a column is worth factorising (parse or format each distinct value once).
"""

from __future__ import annotations

import functools
import gc
from typing import Callable, TypeVar

import numpy as np
import pandas as pd

F = TypeVar("F", bound=Callable)


def gc_paused(fn: F) -> F:
    """Decorator: run ``fn`` with the cyclic garbage collector paused (nested calls leave it to the outermost)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()

    return wrapper  # type: ignore[return-value]


def mostly_repeated(values: np.ndarray, sample_size: int = 4096) -> bool:
    """Whether a column's values repeat enough (judged on an even sample) that handling each distinct value once
    pays for hashing them all: strengths, seeds and class names over ~617k rows do; paths and scores do not."""
    sample = values[:: max(1, len(values) // sample_size)]
    return len(pd.unique(sample)) * 2 <= len(sample)
