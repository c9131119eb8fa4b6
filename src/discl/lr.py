"""Learning-rate schedules as pure functions of the optimiser step, so a resumed run gets the same rates."""

from __future__ import annotations

import math


def cosine_lr(step: int, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> float:
    """Linear warm-up to ``base_lr`` over ``warmup_steps``, then cosine decay to ``min_lr`` at ``total_steps``.

    Step ``s`` (0-based) of the warm-up gets ``base_lr·(s+1)/warmup_steps`` (FLYP's convention: the first step
    already trains); after ``total_steps`` the rate stays at ``min_lr``.
    """
    if step < 0 or total_steps < 1 or warmup_steps < 0:
        raise ValueError(f"bad schedule: step={step}, warmup_steps={warmup_steps}, total_steps={total_steps}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = total_steps - warmup_steps
    if decay_steps <= 0:
        return base_lr
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (base_lr - min_lr)


def cosine_annealing_lr(step: int, base_lr: float, total_steps: int, min_lr: float = 0.0) -> float:
    """Cosine annealing over all steps with no warm-up (``torch.optim.lr_scheduler.CosineAnnealingLR``'s curve)."""
    return cosine_lr(step, base_lr, 0, total_steps, min_lr)


def set_lr(optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
