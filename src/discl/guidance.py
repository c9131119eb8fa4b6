"""Image guidance, in one unit: the integer level ``100·λ`` with ``λ = 1 − strength`` (``REAL = 100``).

Every stage talks in levels; a diffusion strength appears only at the img2img call and in the reference's
folder names (``Strength{int(100·s)}``), converted here and nowhere else.
"""

from __future__ import annotations

REAL = 100  # the level of a real photo: λ = 1, strength 0
REAL_STRENGTH = 0  # the strength column of a real row in the training tables (percent)
REAL_SEED = 100  # the reference's marker seed for real rows in the training tables


def level_from_strength(strength: float) -> int:
    """Image-guidance level ``100 − round(100·strength)`` of an img2img strength in ``[0, 1]``."""
    return REAL - strength_percent(strength)


def strength_percent(strength: float) -> int:
    """``round(100·strength)``: the reference's ``Strength{…}`` folder number (``int(100·0.29)`` would give 28)."""
    return int(round(100 * float(strength)))


def strength_from_level(level: int) -> float:
    """The img2img strength ``1 − level/100`` of a guidance level."""
    level = int(level)
    if not 0 <= level <= REAL:
        raise ValueError(f"guidance level must lie in 0..{REAL}, got {level}")
    return (REAL - level) / 100.0


def is_real(level: int) -> bool:
    """True for the real-image level."""
    return int(level) == REAL
