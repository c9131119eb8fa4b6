"""Guidance curricula: which data to train on next, as pure, model-free code over integer guidance levels.

A guidance level is ``100·λ`` (``100`` = the real images). A schedule never sees a model or an image: the
trainer asks it for the next :class:`Stage` whenever the current stage's data runs out or the stage's
``until_step`` is reached, and (adaptive schedule only) answers ``probe`` stages with the true-class
probabilities of the curriculum-validation rows. Time is counted in optimiser steps; ``steps_per_epoch`` turns
epochs into steps (the training loop's epoch is a fixed number of steps, and stages cut across epochs;
``steps_per_epoch=1`` reads a schedule per epoch). All arithmetic on boundaries is integer, so there is no
float off-by-one at ``curriculum_epoch``.

Baselines in the same frame: ``none`` (real data only), ``mixed`` (every level at once, no order, then real),
``single`` (one fixed level, then real); the text-only comparison is a stage-data recipe
(``discl.training.stage_data``), not a schedule.

Every schedule's state is a dict of plain ints / floats / lists (``state_dict`` / ``load_state_dict``), so
a checkpoint restores it exactly and loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from discl.guidance import REAL
from discl.seeding import stable_seed

log = logging.getLogger(__name__)

SCHEDULES = ("none", "fixed", "two_stage", "reverse", "random", "adaptive", "mixed", "single")
ADAPTIVE_CHOICES = ("argmax", "random")

PROBE = "probe"
LEVEL = "level"
REAL_SAMPLE = "real_sample"
# The level of a stage that trains on every scheduled level at once (the ``mixed`` baseline); the stage-data
# recipe turns it into the union of the levels' rows (``discl.training.stage_data``).
ALL_LEVELS = -1


@dataclass(frozen=True)
class Stage:
    """What to do next: ``probe`` the validation rows, or train on the data of ``level``.

    ``kind == "real_sample"`` is the adaptive schedule's pass over a fresh random sample of real rows.
    A training stage ends when its data runs out or, if ``until_step`` is set, when the global step reaches it.
    """

    kind: str
    level: int = REAL
    until_step: int | None = None


def _check_levels(levels: Sequence[int]) -> list[int]:
    levels = sorted({int(g) for g in levels})
    if not levels:
        raise ValueError("a curriculum needs at least one guidance level")
    bad = [g for g in levels if not 0 <= g <= REAL]
    if bad:
        raise ValueError(f"guidance levels must lie in 0..100, got {bad}")
    return levels


def _check_time(curriculum_epoch: int, steps_per_epoch: int) -> None:
    if curriculum_epoch < 0:
        raise ValueError(f"curriculum_epoch must be ≥ 0, got {curriculum_epoch}")
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be ≥ 1, got {steps_per_epoch}")


class Schedule:
    """Base of all schedules: real data from ``curriculum_epoch`` on; subclasses decide what comes before."""

    name = "base"

    def __init__(self, levels: Sequence[int], curriculum_epoch: int):
        self.levels = _check_levels(levels)
        _check_time(curriculum_epoch, 1)
        self.curriculum_epoch = int(curriculum_epoch)

    @property
    def is_adaptive(self) -> bool:
        """True when the schedule asks for probes (the trainer must answer them with ``observe_probe``)."""
        return False

    def curriculum_end(self, steps_per_epoch: int) -> int:
        """The first step that trains on real data only."""
        _check_time(self.curriculum_epoch, steps_per_epoch)
        return self.curriculum_epoch * steps_per_epoch

    def next_stage(self, step: int, steps_per_epoch: int = 1) -> Stage:
        """The stage to run from global step ``step`` on."""
        if step >= self.curriculum_end(steps_per_epoch):
            return Stage(LEVEL, REAL, None)
        return self._curriculum_stage(step, steps_per_epoch)

    def level_at(self, step: int, steps_per_epoch: int = 1) -> int:
        """The guidance level scheduled at ``step`` (non-adaptive schedules; ``steps_per_epoch=1`` → per epoch)."""
        return self.next_stage(step, steps_per_epoch).level

    def _curriculum_stage(self, step: int, steps_per_epoch: int) -> Stage:
        raise NotImplementedError

    def observe_probe(self, probabilities: Sequence[float], row_levels: Sequence[int]) -> None:
        """Only the adaptive schedule probes."""
        raise RuntimeError(f"schedule {self.name!r} does not probe")

    def state_dict(self) -> dict:
        """Plain-data state (non-adaptive schedules are stateless beyond their configuration)."""
        return {"name": self.name, "levels": list(self.levels), "curriculum_epoch": self.curriculum_epoch}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``; refuses a state saved by a differently configured schedule."""
        mine = self.state_dict()
        for key in ("name", "levels", "curriculum_epoch"):
            if state.get(key) != mine[key]:
                raise ValueError(f"checkpoint schedule {key}={state.get(key)!r} differs from this run's {mine[key]!r}")


class RealOnly(Schedule):
    """``none``: the FLYP baseline, real data from the first step."""

    name = "none"

    def __init__(self, levels: Sequence[int] = (REAL,), curriculum_epoch: int = 0):
        super().__init__(levels, curriculum_epoch)

    def _curriculum_stage(self, step: int, steps_per_epoch: int) -> Stage:
        # Real data before and after curriculum_epoch: nothing to switch, the stage runs until its data ends.
        return Stage(LEVEL, REAL, None)


class Sequential(Schedule):
    """Levels in a fixed order, each held for an equal share of the curriculum or from explicit start epochs.

    With ``n`` levels and no ``starts``, level ``i`` runs on steps ``[⌈i·E/n⌉, ⌈(i+1)·E/n⌉)`` where
    ``E = curriculum_epoch · steps_per_epoch`` (the paper: each level held ``curriculum_epoch / n``).
    With ``starts`` (epochs, first 0, increasing), level ``i`` runs from epoch ``starts[i]`` to the next start
    (the ImageNet-LT working schedule 10→30→50→real at epochs 0, 14, 29, 44).
    """

    name = "fixed"

    def __init__(self, levels: Sequence[int], curriculum_epoch: int, order: Sequence[int] | None = None,
                 starts: Sequence[int] | None = None, name: str = "fixed"):
        super().__init__(levels, curriculum_epoch)
        self.name = name
        self.order = list(self.levels) if order is None else [int(g) for g in order]
        if sorted(self.order) != self.levels:
            raise ValueError(f"order {self.order} is not a permutation of the levels {self.levels}")
        self.starts = None if starts is None else [int(s) for s in starts]
        if self.starts is not None:
            if len(self.starts) != len(self.order):
                raise ValueError(f"{len(self.starts)} start epochs for {len(self.order)} levels")
            if self.starts[0] != 0 or any(b <= a for a, b in zip(self.starts, self.starts[1:])):
                raise ValueError(f"start epochs must begin at 0 and increase strictly, got {self.starts}")

    def _boundaries(self, steps_per_epoch: int) -> list[int]:
        """Start step of every level, then the end of the curriculum."""
        end = self.curriculum_end(steps_per_epoch)
        if self.starts is not None:
            return [min(s * steps_per_epoch, end) for s in self.starts] + [end]
        n = len(self.order)
        return [-(-i * end // n) for i in range(n + 1)]  # ceil(i·end/n) in integers

    def _curriculum_stage(self, step: int, steps_per_epoch: int) -> Stage:
        bounds = self._boundaries(steps_per_epoch)
        index = max(i for i in range(len(self.order)) if bounds[i] <= step)
        # Skip levels whose share rounds to zero steps (more levels than curriculum steps).
        until = next(b for b in bounds[index + 1:] if b > step)
        return Stage(LEVEL, self.order[index], until)

    def state_dict(self) -> dict:
        """Configuration incl. the level order and explicit starts."""
        return {**super().state_dict(), "order": list(self.order), "starts": self.starts}

    def load_state_dict(self, state: dict) -> None:
        """Restore; the order and starts must match too."""
        super().load_state_dict(state)
        if state.get("order") != self.order or state.get("starts") != self.starts:
            raise ValueError("checkpoint schedule order/starts differ from this run's")


def fixed(levels: Sequence[int], curriculum_epoch: int, starts: Sequence[int] | None = None) -> Sequential:
    """Synthetic → real: ascending guidance, equal shares (or explicit start epochs), then real."""
    return Sequential(levels, curriculum_epoch, order=sorted(set(levels)), starts=starts)


def reverse(levels: Sequence[int], curriculum_epoch: int) -> Sequential:
    """The paper's ablation: descending guidance (real-like → prototypical), equal shares, then real."""
    return Sequential(levels, curriculum_epoch, order=sorted(set(levels), reverse=True), name="reverse")


def random_order(levels: Sequence[int], curriculum_epoch: int, seed: int) -> Sequential:
    """The paper's ablation: the levels in a seeded random order, equal shares, then real."""
    rng = np.random.default_rng(stable_seed("random-curriculum", int(seed)))
    order = [int(g) for g in rng.permutation(sorted(set(levels)))]
    return Sequential(levels, curriculum_epoch, order=order, name="random")


class TwoStage(Schedule):
    """The released iWildCam script: the lowest level until ``curriculum_epoch``, then real."""

    name = "two_stage"

    def _curriculum_stage(self, step: int, steps_per_epoch: int) -> Stage:
        return Stage(LEVEL, self.levels[0], self.curriculum_end(steps_per_epoch))


class Mixed(Schedule):
    """The no-curriculum baseline: every scheduled level at once (one stage of all their rows) until
    ``curriculum_epoch``, then real."""

    name = "mixed"

    def _curriculum_stage(self, step: int, steps_per_epoch: int) -> Stage:
        return Stage(LEVEL, ALL_LEVELS, self.curriculum_end(steps_per_epoch))


class Single(TwoStage):
    """The single-level baseline: one fixed synthetic level (the only non-real one given) until
    ``curriculum_epoch``, then real."""

    name = "single"

    def __init__(self, levels: Sequence[int], curriculum_epoch: int):
        synthetic = sorted({int(g) for g in levels} - {REAL})
        if len(synthetic) != 1:
            raise ValueError(f"the single-level schedule needs exactly one synthetic guidance level, got {synthetic}")
        super().__init__(synthetic, curriculum_epoch)


def remove_outliers(values: np.ndarray) -> np.ndarray:
    """Keep the values inside ``[Q1 − 1.5·IQR, Q3 + 1.5·IQR]`` (quartiles by linear interpolation)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    q1, q3 = np.percentile(values, [25, 75])
    spread = 1.5 * (q3 - q1)
    return values[(values >= q1 - spread) & (values <= q3 + spread)]


def progress_scores(p0: Sequence[float], p1: Sequence[float], row_levels: Sequence[int],
                    levels: Sequence[int] | None = None) -> dict[int, float]:
    """Per guidance level: mean of ``p1 − p0`` over its rows after dropping 1.5·IQR outliers (NaN if no rows)."""
    p0 = np.asarray(p0, dtype=np.float64)
    p1 = np.asarray(p1, dtype=np.float64)
    row_levels = np.asarray(row_levels, dtype=np.int64)
    if not p0.shape == p1.shape == row_levels.shape or p0.ndim != 1:
        raise ValueError(f"p0, p1 and row_levels must be 1-D and equally long, got {p0.shape}, {p1.shape}, "
                         f"{row_levels.shape}")
    wanted = sorted({int(g) for g in row_levels}) if levels is None else sorted({int(g) for g in levels})
    delta = p1 - p0
    scores = {}
    for level in wanted:
        kept = remove_outliers(delta[row_levels == level])
        scores[level] = float(kept.mean()) if kept.size else math.nan
    return scores


def argmax_level(scores: dict[int, float]) -> int | None:
    """The level with the largest score; ties go to the lowest level (the more synthetic one); NaN never wins."""
    finite = [(score, level) for level, score in scores.items() if not math.isnan(score)]
    if not finite:
        return None
    best = max(score for score, _ in finite)
    return min(level for score, level in finite if score == best)


class Adaptive(Schedule):
    """The paper's adaptive round: probe → one pass over a fresh real sample → probe → one pass over the level
    g* of largest mean progress (or a uniformly random level, ``choose="random"``) → repeat; real only from
    ``curriculum_epoch`` on, cutting a running stage at exactly that step.

    Candidates are ``levels`` (include 100 so real data can win). A level with no validation rows scores NaN
    and is never chosen by ``argmax``; if no level has rows, the round trains on real data.
    """

    name = "adaptive"
    # The phases of a round, in order; ``phase`` is the index of the next thing to do.
    PHASES = ("probe_before", "train_sample", "probe_after", "train_level")

    def __init__(self, levels: Sequence[int], curriculum_epoch: int, choose: str = "argmax", seed: int = 0):
        super().__init__(levels, curriculum_epoch)
        if choose not in ADAPTIVE_CHOICES:
            raise ValueError(f"choose must be one of {ADAPTIVE_CHOICES}, got {choose!r}")
        self.choose = choose
        self.seed = int(seed)
        self.round = 0
        self.phase = 0
        self.p0: list[float] | None = None
        self.chosen: int | None = None
        self.last_scores: dict[int, float] = {}

    @property
    def is_adaptive(self) -> bool:
        """The trainer must answer ``probe`` stages."""
        return True

    def level_at(self, step: int, steps_per_epoch: int = 1) -> int:
        """Not defined before ``curriculum_epoch``: the level depends on the probes (use ``next_stage``)."""
        if step >= self.curriculum_end(steps_per_epoch):
            return REAL
        raise RuntimeError("the adaptive schedule has no fixed level; drive it with next_stage/observe_probe")

    @property
    def needs_probes(self) -> bool:
        """False for the random ablation: it never looks at the probes (the trainer may skip them)."""
        return self.choose == "argmax"

    def _curriculum_stage(self, step: int, steps_per_epoch: int) -> Stage:
        end = self.curriculum_end(steps_per_epoch)
        phase = self.PHASES[self.phase]
        if phase in ("probe_before", "probe_after") and not self.needs_probes:
            # The random ablation skips the probes but keeps the round's real-sample pass.
            if phase == "probe_after":
                self._choose(None, None)
            self.phase = (self.phase + 1) % len(self.PHASES)
            return self._curriculum_stage(step, steps_per_epoch)
        if phase in ("probe_before", "probe_after"):
            return Stage(PROBE, REAL, None)
        self.phase = (self.phase + 1) % len(self.PHASES)
        if phase == "train_sample":
            return Stage(REAL_SAMPLE, REAL, end)
        self.round += 1
        return Stage(LEVEL, self.chosen, end)

    def observe_probe(self, probabilities: Sequence[float], row_levels: Sequence[int]) -> None:
        """Take the answer to a ``probe`` stage: per validation row, its true-class probability and its level."""
        phase = self.PHASES[self.phase]
        if phase not in ("probe_before", "probe_after"):
            raise RuntimeError(f"observe_probe called in phase {phase!r}; call next_stage first")
        probabilities = [float(p) for p in probabilities]
        if phase == "probe_before":
            self.p0 = probabilities
        else:
            self._choose(probabilities, row_levels)
        self.phase += 1

    def _choose(self, p1: list[float] | None, row_levels: Sequence[int] | None) -> None:
        if self.choose == "random":
            # Seeded by (seed, round): the same choices after a resume, no RNG state to carry.
            rng = np.random.default_rng(stable_seed("adaptive-random", self.seed, self.round))
            self.chosen = int(self.levels[int(rng.integers(len(self.levels)))])
            self.last_scores = {}
        else:
            self.last_scores = progress_scores(self.p0, p1, row_levels, levels=self.levels)
            best = argmax_level(self.last_scores)
            if best is None:
                log.warning("no guidance level has curriculum-validation rows; training this round on real data")
                best = REAL
            self.chosen = best
        self.p0 = None
        log.info("adaptive round %d: scores %s → guidance %d", self.round,
                 {g: round(s, 6) for g, s in self.last_scores.items()}, self.chosen)

    def state_dict(self) -> dict:
        """Configuration plus the round, phase, pending P₀, last choice and scores (plain data)."""
        return {**super().state_dict(), "choose": self.choose, "seed": self.seed, "round": self.round,
                "phase": self.phase, "p0": self.p0, "chosen": self.chosen,
                "last_scores": [[int(g), float(s)] for g, s in sorted(self.last_scores.items())]}

    def load_state_dict(self, state: dict) -> None:
        """Restore a round in progress."""
        super().load_state_dict(state)
        if state.get("choose") != self.choose or state.get("seed") != self.seed:
            raise ValueError("checkpoint adaptive choice/seed differ from this run's")
        self.round = int(state["round"])
        self.phase = int(state["phase"])
        self.p0 = None if state["p0"] is None else [float(p) for p in state["p0"]]
        self.chosen = None if state["chosen"] is None else int(state["chosen"])
        self.last_scores = {int(g): float(s) for g, s in state["last_scores"]}


def make_schedule(name: str, levels: Sequence[int], curriculum_epoch: int, *, seed: int = 0,
                  choose: str = "argmax", starts: Sequence[int] | None = None) -> Schedule:
    """Build a schedule by name (``SCHEDULES``); ``levels`` are the guidance levels the training data has."""
    if name == "none":
        return RealOnly(levels, curriculum_epoch)
    if name == "fixed":
        return fixed(levels, curriculum_epoch, starts=starts)
    if name == "two_stage":
        return TwoStage(levels, curriculum_epoch)
    if name == "reverse":
        return reverse(levels, curriculum_epoch)
    if name == "random":
        return random_order(levels, curriculum_epoch, seed)
    if name == "adaptive":
        return Adaptive(levels, curriculum_epoch, choose=choose, seed=seed)
    if name == "mixed":
        return Mixed(levels, curriculum_epoch)
    if name == "single":
        return Single(levels, curriculum_epoch)
    raise ValueError(f"unknown curriculum {name!r}; choose one of {SCHEDULES}")
