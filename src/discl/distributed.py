"""Data-parallel training: set-up from ``torchrun``'s environment, rank-0-only writes, gathering results.

``torchrun --nproc_per_node N script.py`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; without them
everything here degrades to a single process (no process group, ``is_main()`` true, gathers are identities).
The backend is NCCL when the process has a GPU and gloo on CPU (how the tests run two processes).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank, world size and the device it computes on."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and logs results."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group with more than one member is running."""
        return self.world_size > 1


DEVICE_TYPES = ("cpu", "cuda", "mps")
DEVICE_NAMES = ("cpu", "cuda", "cuda:N", "mps")


def check_device(device: str | None) -> str:
    """The device to compute on: ``device``, else cuda when a GPU is visible, else cpu (said in the log).

    The one device check of every script with ``--device``: a name torch does not know (or one this project
    does not compute on), or cuda where no GPU is visible, is an ``InputError`` naming the flag (and
    ``CUDA_VISIBLE_DEVICES``), not a traceback from deep inside torch.
    """
    from discl.errors import InputError

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if device is None:
        if torch.cuda.is_available():
            return "cuda"
        log.warning("no GPU visible (CUDA_VISIBLE_DEVICES=%s): computing on the CPU", visible)
        return "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError, TypeError):
        kind = None
    if kind not in DEVICE_TYPES:
        raise InputError("--device", f"{device!r} is not a device: use {', '.join(DEVICE_NAMES)}")
    if kind == "cuda":
        index = torch.device(device).index
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (index is not None and index >= count):
            raise InputError("--device", f"{device} asked for, but {count} GPU(s) are visible "
                                         f"(CUDA_VISIBLE_DEVICES={visible}); use --device cpu or run on a GPU node")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device", "mps asked for, but this machine has no Apple GPU; use --device cpu")
    return device


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the process group described by torchrun's environment (or stay single-process)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = check_device(device)
    if device.startswith("cuda"):
        device = f"cuda:{local_rank}" if world_size > 1 or device == "cuda" else device
        torch.cuda.set_device(torch.device(device))
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
        log.info("process group: rank %d/%d, backend %s, device %s", rank, world_size, backend, device)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def cleanup() -> None:
    """Leave the process group (no-op when single-process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    """True on rank 0 or when not distributed."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op when single-process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_gather_objects(obj):
    """Every rank's ``obj`` as a list in rank order (``[obj]`` when single-process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def shard_indices(indices: list[int], rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s strided share of ``indices`` (``indices[rank::world_size]``; equal lengths if divisible)."""
    return list(indices[rank::world_size])


def wrap_ddp(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """``DistributedDataParallel`` around ``model`` when distributed, else the model itself."""
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [torch.device(info.device).index] if info.device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=device_ids)
