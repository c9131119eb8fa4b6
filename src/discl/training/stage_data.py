"""Stage data: which rows of the canonical training table one curriculum stage trains on (pure functions).

The canonical table has the columns ``title, filepath, label, strength, guidance, seed, img_id``; real rows
have guidance 100, images with synthetic versions have ``img_id >= 0`` (the hard images), the others
``img_id < 0``. Three recipes, chosen with ``--stage-data`` (see docs/train-iwildcam.md, docs/train-imagenet-lt.md,
docs/experiments.md):

``replace-hard`` (the paper's iWildCam runs, FLYP's default)
    the synthetic rows of the stage's level for the hard images plus the real rows of the other images;
    level 100 is every real row. A real-only epoch has as many rows as the table has real rows.
``tail-topup`` (the paper's ImageNet-LT runs, after LDMLR; the CE trainer's default)
    a fresh ``downsample_ratio`` share of the real rows of the non-tail classes, every real row of the tail
    (few-shot) classes, topped up to ``tail_fraction`` of the epoch with synthetic tail rows of the level, or
    with repeated real tail rows at level 100. ``tail_fraction=None`` keeps the real rows as they are.
``text-only`` (the ALIA-style comparison, with ``--curriculum none``)
    every real row plus the guidance-0 (pure text-to-image) synthetic rows of the hard images, in every pass:
    synthetic data as augmentation, with no image guidance and no curriculum.

The level ``ALL_LEVELS`` (the ``mixed`` schedule) is the union of the rows of every scheduled level.

Every draw takes a NumPy generator, so the trainer makes a stage's rows a function of the stage's identity.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from discl.curriculum import ALL_LEVELS
from discl.errors import InputError
from discl.guidance import REAL

log = logging.getLogger(__name__)

STAGE_DATA = ("replace-hard", "tail-topup", "text-only")
# guidance of the text-only recipe's synthetic rows: strength 1, the image left no trace (text-to-image)
TEXT_ONLY_LEVEL = 0


def replace_hard(table: pd.DataFrame, level: int | Sequence[int]) -> pd.DataFrame:
    """Synthetic rows of ``level`` for the hard images (img_id ≥ 0) + real rows of the others; 100 = all real.

    (The reference merged the non-hard real rows only inside a ``datalimit`` branch, so its stages trained on
    synthetic images alone.) Several levels give the union of their rows (the ``mixed`` baseline).
    """
    levels = {int(level)} if np.isscalar(level) else {int(g) for g in level}
    real = table["guidance"] == REAL
    if levels == {REAL}:
        return table[real]
    synthetic = table["guidance"].isin(levels - {REAL}) & (table["img_id"] >= 0)
    if REAL in levels:  # 100 among several levels (mixed): the hard images' real rows join their synthetic ones
        return table[synthetic | real]
    return table[synthetic | (real & (table["img_id"] < 0))]


def text_only(table: pd.DataFrame) -> pd.DataFrame:
    """Every real row + the guidance-0 synthetic rows of the hard images (the ALIA-style comparison)."""
    synthetic = (table["guidance"] == TEXT_ONLY_LEVEL) & (table["img_id"] >= 0)
    return table[(table["guidance"] == REAL) | synthetic]


def draw(rows: pd.DataFrame, count: int, rng: np.random.Generator) -> pd.DataFrame:
    """``count`` rows at random: without replacement when there are enough, else with replacement."""
    if count <= 0:
        return rows.iloc[:0]
    if len(rows) == 0:
        raise ValueError("cannot draw from an empty set of rows")
    return rows.iloc[rng.choice(len(rows), size=count, replace=len(rows) < count)]


def tail_target(num_non_tail: int, tail_fraction: float) -> int:
    """How many tail rows make them ``tail_fraction`` of an epoch with ``num_non_tail`` other rows."""
    # x / (x + y) = f  ⇒  x = f / (1 − f) · y; floored as in the reference (0.136 → 13.6 % of the epoch)
    return int(tail_fraction / (1.0 - tail_fraction) * num_non_tail)


def tail_topup(table: pd.DataFrame, level: int | Sequence[int], tail_classes: Sequence[int],
               rng: np.random.Generator, downsample_ratio: float = 0.3,
               tail_fraction: float | None = 0.136) -> pd.DataFrame:
    """The rows of one pass at ``level``: a fresh share of the non-tail real rows, the real tail, the top-up
    (several levels: the top-up is drawn from all their tail rows, the real tail's too when 100 is one)."""
    levels = {int(level)} if np.isscalar(level) else {int(g) for g in level}
    real = table[table["guidance"] == REAL]
    in_tail = real["label"].isin(list(tail_classes))
    non_tail, real_tail = real[~in_tail], real[in_tail]
    kept = draw(non_tail, int(downsample_ratio * len(non_tail)), rng) if downsample_ratio < 1 else non_tail
    if tail_fraction is None:  # the plain long-tailed data (the baseline): no top-up
        return pd.concat([kept, real_tail])
    top_up = tail_target(len(kept), tail_fraction) - len(real_tail)
    if levels == {REAL}:
        pool = real_tail
    else:
        pool = table[table["guidance"].isin(levels) & table["label"].isin(list(tail_classes))]
    if top_up > 0 and len(pool) == 0:
        what = ("real tail rows to repeat" if levels == {REAL}
                else f"synthetic tail rows of guidance {' '.join(map(str, sorted(levels)))}")
        raise ValueError(f"no {what}")
    return pd.concat([kept, real_tail, draw(pool, top_up, rng)])


def tail_epoch_size(num_non_tail: int, num_tail: int, downsample_ratio: float, tail_fraction: float | None) -> int:
    """Rows of one ``tail_topup`` pass: the same at every level (the tail is topped up to one count)."""
    kept = int(downsample_ratio * num_non_tail) if downsample_ratio < 1 else num_non_tail
    if tail_fraction is None:
        return kept + num_tail
    return kept + max(num_tail, tail_target(kept, tail_fraction))


def real_sample(table: pd.DataFrame, size: int, rng: np.random.Generator) -> pd.DataFrame:
    """The adaptive round's real pass: ``size`` real rows drawn without replacement (all when fewer)."""
    real = table[table["guidance"] == REAL]
    if size >= len(real):
        return real
    return real.iloc[np.sort(rng.choice(len(real), size=size, replace=False))]


@dataclass
class StageData:
    """A recipe bound to its table: the rows of a stage from ``(level, rng)`` and the size of a real epoch.

    ``levels`` are the scheduled levels: what ``ALL_LEVELS`` (the ``mixed`` baseline) stands for (default:
    every level of the table).
    """

    recipe: str
    table: pd.DataFrame
    tail_classes: frozenset[int] = field(default_factory=frozenset)
    downsample_ratio: float = 0.3
    tail_fraction: float | None = 0.136
    levels: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.recipe not in STAGE_DATA:
            raise ValueError(f"unknown stage data {self.recipe!r}; expected one of {STAGE_DATA}")
        if self.recipe == "tail-topup":
            synthetic = self.table[self.table["guidance"] != REAL]
            outside = int((~synthetic["label"].isin(list(self.tail_classes))).sum())
            if outside:
                log.warning("%d synthetic rows belong to non-tail classes and are not used by --stage-data "
                            "tail-topup", outside)

    def rows(self, level: int, rng: np.random.Generator) -> pd.DataFrame:
        """The rows of one pass over the data of ``level`` (``ALL_LEVELS``: of every scheduled level)."""
        if self.recipe == "text-only":
            return text_only(self.table)
        if level == ALL_LEVELS:
            level = list(self.levels) or sorted({int(g) for g in self.table["guidance"]})
        if self.recipe == "replace-hard":
            return replace_hard(self.table, level)
        return tail_topup(self.table, level, self.tail_classes, rng, self.downsample_ratio, self.tail_fraction)

    def real_sample(self, size: int, rng: np.random.Generator) -> pd.DataFrame:
        """A fresh sample of ``size`` real rows (the adaptive round's real pass)."""
        return real_sample(self.table, size, rng)

    @property
    def epoch_rows(self) -> int:
        """Rows of a real-only epoch: what one epoch's fixed number of steps is cut from."""
        real = self.table[self.table["guidance"] == REAL]
        if self.recipe in ("replace-hard", "text-only"):  # text-only: the real epoch's steps, as the baseline's
            return len(real)
        num_tail = int(real["label"].isin(list(self.tail_classes)).sum())
        return tail_epoch_size(len(real) - num_tail, num_tail, self.downsample_ratio, self.tail_fraction)

    def check_levels(self, levels: Sequence[int], path) -> None:
        """Every scheduled level needs rows; an ``InputError`` on the table's guidance column otherwise."""
        guidance, labels = self.table["guidance"], self.table["label"]
        if self.recipe == "text-only":
            if not ((guidance == TEXT_ONLY_LEVEL) & (self.table["img_id"] >= 0)).any():
                raise InputError(path, f"--stage-data text-only needs synthetic rows of guidance {TEXT_ONLY_LEVEL} "
                                       "(strength 1.0) of hard images; build the table with --min-guidance 0",
                                 column="guidance")
            levels = [REAL]
        for level in sorted({int(g) for g in levels} | {REAL}):
            if level == REAL:
                has_rows, what = bool((guidance == REAL).any()), "real rows (guidance 100)"
            elif self.recipe == "replace-hard":
                has_rows = bool(((guidance == level) & (self.table["img_id"] >= 0)).any())
                what = f"synthetic rows of hard images (guidance {level}, img_id ≥ 0)"
            else:
                if self.tail_fraction is None:
                    continue  # no top-up: synthetic rows are never drawn
                has_rows = bool(((guidance == level) & labels.isin(list(self.tail_classes))).any())
                what = f"synthetic rows of tail classes (guidance {level})"
            if not has_rows:
                raise InputError(path, f"guidance level {level} is scheduled but the table has no {what}",
                                 column="guidance")
