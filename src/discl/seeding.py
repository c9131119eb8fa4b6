"""Reproducible seeds: derived with SHA-256 from a sample's identity, never from Python's salted ``hash()``."""

from __future__ import annotations

import hashlib
import random
from typing import Sequence

import numpy as np

SEED_BITS = 63  # torch.Generator.manual_seed takes any int64; keep it non-negative


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from the SHA-256 of the parts' ``repr`` — identical in every process and platform."""
    payload = "\x1f".join(_canonical(p) for p in parts).encode("utf-8")
    digest = hashlib.sha256(payload).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << SEED_BITS) - 1)


def _canonical(part: object) -> str:
    # Floats are written with a fixed precision so 0.1 and 0.1000000001 from arithmetic map the same way.
    if isinstance(part, (float, np.floating)):
        return f"f:{float(part):.6f}"
    if isinstance(part, (int, np.integer)):
        return f"i:{int(part)}"
    return f"s:{part}"


def sample_seed(image_id: str, prompt: str, strength: float, seed: int) -> int:
    """The generator seed of one synthetic image: a function of what it is, not of when or where it is made."""
    return stable_seed("discl-sample", image_id, prompt, float(strength), int(seed))


def sample_seeds(image_ids: Sequence[str], prompts: Sequence[str], strengths: Sequence[float],
                 seeds: Sequence[int]) -> list[int]:
    """``sample_seed`` of many samples at once (the same values; the manifest refresh of a ~617k-image part).

    Consecutive samples of one image, prompt and strength (an image's seeds, in plan order) share the hash of their
    common prefix: it is hashed once and copied; each seed's text is encoded once.
    """
    mask = (1 << SEED_BITS) - 1
    suffixes: dict[int, bytes] = {}
    derived: list[int] = []
    append, from_bytes = derived.append, int.from_bytes
    last, prefix = None, None
    for image_id, prompt, strength, seed in zip(image_ids, prompts, strengths, seeds):
        key = (image_id, prompt, strength)
        if key != last:
            prefix = hashlib.sha256(f"s:discl-sample\x1fs:{image_id}\x1fs:{prompt}\x1ff:{float(strength):.6f}"
                                    "\x1fi:".encode("utf-8"))
            last = key
        suffix = suffixes.get(seed)
        if suffix is None:
            suffix = suffixes[seed] = str(int(seed)).encode("ascii")
        digest = prefix.copy()
        digest.update(suffix)
        append(from_bytes(digest.digest()[:8], "big") & mask)
    return derived


def make_generators(seeds: Sequence[int], device: str = "cpu") -> list:
    """One ``torch.Generator`` per sample, seeded with ``seeds`` (for batched, per-sample-exact diffusion)."""
    import torch

    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for a training run."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def derived_rng(*parts: object) -> np.random.Generator:
    """A NumPy generator seeded from ``stable_seed(*parts)`` (e.g. prompt draws per (class, seed))."""
    return np.random.default_rng(stable_seed(*parts))

