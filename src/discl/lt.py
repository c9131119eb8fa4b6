"""Curriculum training on ImageNet-LT (spec §6): losses, the data of one epoch, and the training loop.

The loop is shared by the curriculum trainer and the plain baseline (``--curriculum none`` with no synthetic
list): one code path, different arguments.
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

REAL_GUIDANCE = 100
LOSSES = ("ce", "balanced_softmax")


class Row(NamedTuple):
    """One training image: where it is, its class and its image guidance (100 = the real photo)."""

    path: str
    label: int
    guidance: int


# ---------------------------------------------------------------------------------------------------- losses
def log_class_prior(class_counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """``log(n_c / Σ n)`` per class; a class without training images counts as one (keeps the log finite)."""
    counts = torch.as_tensor(class_counts, dtype=torch.float64).clamp(min=1.0)
    return torch.log(counts / counts.sum()).float()


def balanced_softmax_loss(logits: torch.Tensor, labels: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
    """Balanced Softmax (Ren et al. 2020): cross-entropy on ``logits + log prior``; test time uses plain logits."""
    return F.cross_entropy(logits + log_prior.to(logits.device, logits.dtype), labels)


def training_loss(name: str, logits: torch.Tensor, labels: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
    """The training loss ``name`` (``ce`` or ``balanced_softmax``) of one batch."""
    if name == "ce":
        return F.cross_entropy(logits, labels)
    if name == "balanced_softmax":
        return balanced_softmax_loss(logits, labels, log_prior)
    raise ValueError(f"unknown loss {name!r}; expected one of {LOSSES}")


# ------------------------------------------------------------------------------------------ data of one epoch
def _draw(rows: Sequence[Row], count: int, rng: np.random.Generator) -> list[Row]:
    """``count`` rows drawn at random: without replacement when there are enough, else with replacement."""
    if count <= 0:
        return []
    if not rows:
        raise ValueError("cannot draw from an empty set of rows")
    index = rng.choice(len(rows), size=count, replace=len(rows) < count)
    return [rows[i] for i in index]


def tail_target(num_non_tail: int, tail_fraction: float) -> int:
    """How many tail images make them ``tail_fraction`` of an epoch with ``num_non_tail`` other images."""
    # x / (x + y) = f  ⇒  x = f / (1 − f) · y; floored as in the reference (0.136 → 13.6 % of the epoch)
    return int(tail_fraction / (1.0 - tail_fraction) * num_non_tail)


def build_epoch_rows(real_rows: Sequence[Row], synthetic_rows: Sequence[Row], tail_classes: set[int] | frozenset[int],
                     level: int, rng: np.random.Generator, downsample_ratio: float = 0.3,
                     tail_fraction: float = 0.136) -> list[Row]:
    """The training images of one epoch at guidance ``level`` (spec §6), in no particular order.

    A fresh ``downsample_ratio`` share of the real non-tail images; then every real tail image, topped up to
    ``tail_fraction`` of the epoch with synthetic tail images of guidance ``level`` or, when ``level`` is 100
    (a real-only stage), with more copies of real tail images.
    """
    non_tail = [r for r in real_rows if r.label not in tail_classes]
    real_tail = [r for r in real_rows if r.label in tail_classes]
    kept = _draw(non_tail, int(downsample_ratio * len(non_tail)), rng) if downsample_ratio < 1 else list(non_tail)
    top_up = tail_target(len(kept), tail_fraction) - len(real_tail)
    if level == REAL_GUIDANCE:
        pool = real_tail
    else:
        pool = [r for r in synthetic_rows if r.guidance == level and r.label in tail_classes]
        if not pool and top_up > 0:
            raise ValueError(f"no synthetic tail images of guidance {level}")
    if top_up < 0:
        logger.warning("the %d real tail images already exceed %.1f%% of the epoch; no top-up",
                       len(real_tail), 100 * tail_fraction)
    return kept + list(real_tail) + _draw(pool, top_up, rng)
