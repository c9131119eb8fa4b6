"""Training checkpoints: plain dicts of tensors and Python data (``torch.load(weights_only=True)`` safe).

A checkpoint holds everything a resumed run needs to continue exactly: model and optimiser state, the step
(the learning rate is a pure function of it, ``discl.lr``), the curriculum's ``state_dict()``, the trainer's
own counters, and the RNG states of Python, NumPy and torch. ``last.pt`` is rewritten every epoch; ``best.pt``
(model weights and the metric only) whenever the selection metric improves. Both are written atomically.

Kill safety: ``last.pt`` is the commit point of an epoch and is written first; ``best.pt`` follows. A kill
between the two leaves a ``last.pt`` that names its own epoch as the best and an older ``best.pt``:
:func:`repair_best` (run by every resume) rewrites ``best.pt`` from ``last.pt`` then, so the pair always
agrees before training continues. :func:`remove_stale_temp_files` deletes what a kill during a write left.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from discl.errors import InputError
from discl.fileio import atomic_torch_save, is_temp_file

log = logging.getLogger(__name__)

LAST = "last.pt"
BEST = "best.pt"
FORMAT = 1


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper."""
    return getattr(model, "module", model)


def rng_state() -> dict:
    """RNG states of Python, NumPy and torch (CPU and CUDA) as plain data."""
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(words), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict) -> None:
    """Restore ``rng_state()``."""
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, epoch: int, step: int,
                   schedule_state: dict, trainer_state: dict, args: dict,
                   best: dict | None = None) -> dict:
    """Everything a resume needs, as one plain dict (``epoch`` = the last finished epoch)."""
    return {
        "format": FORMAT,
        "epoch": int(epoch),
        "step": int(step),
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule_state,
        "trainer": trainer_state,
        "args": dict(args),
        "best": best,
        "rng": rng_state(),
    }


def best_state(state: dict) -> dict:
    """What ``best.pt`` keeps of a training state: the model, its epoch and metric, the settings."""
    return {k: state[k] for k in ("format", "epoch", "step", "model", "args", "best")}


def save_checkpoint(folder: str | os.PathLike, state: dict, is_best: bool = False) -> Path:
    """Write ``folder/last.pt`` (the epoch's commit point), then, when ``is_best``, ``folder/best.pt``."""
    folder = Path(folder)
    atomic_torch_save(state, folder / LAST)
    if is_best:
        atomic_torch_save(best_state(state), folder / BEST)
    log.info("checkpoint: epoch %d → %s%s", state["epoch"], folder / LAST, " (best)" if is_best else "")
    return folder / LAST


def repair_best(folder: str | os.PathLike, state: dict) -> bool:
    """Rewrite ``folder/best.pt`` from ``state`` (a loaded ``last.pt``) when a kill fell between the two writes.

    Only ``last.pt``'s own epoch can be affected: an earlier best epoch's ``best.pt`` was checked by the resume
    that followed it. Returns whether ``best.pt`` was rewritten.
    """
    best = state.get("best")
    if not best or best.get("epoch") != state["epoch"]:
        return False
    path = Path(folder) / BEST
    if path.is_file():
        try:
            if torch.load(path, map_location="cpu", weights_only=True).get("epoch") == state["epoch"]:
                return False
        except Exception:  # noqa: BLE001 - an unreadable best.pt is rewritten like a stale one
            pass
    atomic_torch_save(best_state(state), path)
    log.warning("%s was older than %s (the run was killed between the two writes): rewritten for epoch %d",
                path, Path(folder) / LAST, state["epoch"])
    return True


def remove_stale_temp_files(*folders: str | os.PathLike) -> list[Path]:
    """Delete the ``.tmp-*`` files killed writes left directly in a run's own ``folders``; return them."""
    stale = [p for folder in folders if Path(folder).is_dir() for p in sorted(Path(folder).iterdir())
             if p.is_file() and is_temp_file(p)]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d temp file(s) left by a killed write: %s", len(stale), ", ".join(p.name for p in stale))
    return stale


def check_fresh_output(last: str | os.PathLike, resume: bool) -> None:
    """Refuse to start a new run over an earlier one: ``last`` (its ``last.pt``) exists and ``--resume`` is off."""
    last = Path(last)
    if last.exists() and not resume:
        raise InputError(last, "a run already lives here; pass --resume to continue it or choose another "
                               "--output-dir")


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint on CPU with ``weights_only=True``; a missing or foreign file is an ``InputError``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no checkpoint to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which file, not a pickle traceback
        raise InputError(path, f"cannot read checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(path, f"not a DisCL checkpoint of format {FORMAT}")
    return state


def restore(state: dict, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
            schedule: Any = None, restore_rng: bool = True) -> None:
    """Load model / optimiser / schedule state and the RNG states from a ``training_state`` dict."""
    unwrap(model).load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if schedule is not None:
        schedule.load_state_dict(state["schedule"])
    if restore_rng:
        set_rng_state(state["rng"])
