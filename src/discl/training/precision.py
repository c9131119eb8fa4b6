"""Memory and speed levers of a training step: mixed precision, gradient accumulation, compilation, and the
memory estimate printed at start (docs/performance.md).

* **Precision** (``--precision``): ``fp32`` runs as before; ``bf16`` / ``fp16`` run the forward and the loss under
  ``torch.autocast`` (weights, gradients and optimiser state stay fp32); ``fp16`` adds a gradient scaler, because
  fp16 gradients underflow without one (bf16 has fp32's range and needs none). Evaluation and probes stay fp32.
* **Accumulation** (``--accum-steps k``): each process's share of the global batch is cut into ``k`` equal
  micro-batches whose gradients add up before the one optimiser step, so the global batch stays
  ``per-device × devices × k`` rows and the data order does not change. How a task splits its loss is its own
  business (``Task.backward``): a per-row mean (CE) is the mean of the micro-batch means; a contrastive loss keeps
  the negatives of the whole batch (``discl.flyp``).
* **Compilation** (``--compile``, ``--compile-backend``): ``torch.compile`` of the model's forward, in place, so
  checkpoints keep their keys.
* **Memory estimate**: parameters, gradients, optimiser state and the activations saved for backward, measured on
  one micro-batch; a device too small for it is an ``InputError`` naming the ``--accum-steps`` that would fit.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from discl.errors import InputError

PRECISIONS = ("fp32", "bf16", "fp16")
COMPILE_BACKENDS = ("inductor", "aot_eager")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
GIB = 2 ** 30
# The share of a device the estimate may fill; the rest is for what it does not see: the allocator's
# fragmentation, cuDNN / cuBLAS workspaces, the CUDA context, the evaluation pass.
HEADROOM = 0.85


def device_type(device: str | torch.device) -> str:
    """``cuda:1`` → ``cuda``."""
    return torch.device(device).type


def autocast(device: str | torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The forward's autocast context (a no-op for ``fp32``)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in _DTYPES:
        raise InputError("--precision", f"expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    return torch.autocast(device_type(device), dtype=_DTYPES[precision])


def grad_scaler(device: str | torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A gradient scaler for ``fp16`` (None otherwise: fp32 and bf16 gradients do not underflow)."""
    return torch.amp.GradScaler(device_type(device)) if precision == "fp16" else None


@dataclass
class StepContext:
    """What a task needs to run the forward/backward of one optimiser step (``Task.backward``)."""

    device: str
    precision: str = "fp32"
    accum_steps: int = 1
    scaler: torch.amp.GradScaler | None = None

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast for a forward and its loss."""
        return autocast(self.device, self.precision)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, through the gradient scaler when there is one."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def backward_from(self, outputs: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """Back-propagate given output gradients (already scaled when they came from a scaled loss)."""
        torch.autograd.backward(outputs, grads)

    def sync(self, model: torch.nn.Module, last: bool) -> contextlib.AbstractContextManager:
        """DDP's gradient all-reduce only on the last micro-batch (``no_sync`` on the others)."""
        if last or not hasattr(model, "no_sync"):
            return contextlib.nullcontext()
        return model.no_sync()

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """A batch on the device (asynchronously from pinned memory)."""
        return tensor.to(self.device, non_blocking=True)


def micro_batches(images: torch.Tensor, targets: torch.Tensor, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` equal consecutive slices of a batch (the loop checks that the share divides)."""
    if len(images) % steps:
        raise ValueError(f"a batch of {len(images)} rows does not split into {steps} equal micro-batches")
    return list(zip(images.chunk(steps), targets.chunk(steps)))


def rng_snapshot(device: str) -> tuple:
    """The random state a forward on ``device`` draws from (CPU, and the CUDA device's)."""
    cuda = device_type(device) == "cuda"
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if cuda else None


def restore_rng(snapshot: tuple, device: str) -> None:
    """Set back an ``rng_snapshot`` (a forward run again draws the same dropout masks)."""
    torch.set_rng_state(snapshot[0])
    if snapshot[1] is not None:
        torch.cuda.set_rng_state(snapshot[1], device)


def compile_module(module: torch.nn.Module, backend: str = "inductor") -> torch.nn.Module:
    """``torch.compile`` the module's forward in place (its class, attributes and state-dict keys are kept)."""
    module.compile(backend=backend)
    return module


# ------------------------------------------------------------------------------------------------ memory
@dataclass
class MemoryEstimate:
    """Bytes per process of one training step (activations: one micro-batch, measured)."""

    parameters: int
    gradients: int
    optimizer: int
    activations: int
    micro_batch: int
    accum_steps: int
    capacity: int | None = None  # what the device holds (None: unknown)

    @property
    def model_state(self) -> int:
        """Parameters, gradients and optimiser state: what stays whatever the micro-batch."""
        return self.parameters + self.gradients + self.optimizer

    @property
    def total(self) -> int:
        """Model state + activations of one micro-batch."""
        return self.model_state + self.activations

    def describe(self) -> str:
        """One line for the log."""
        text = (f"memory estimate per process: {self.total / GIB:.2f} GiB = parameters {self.parameters / GIB:.2f} "
                f"+ gradients {self.gradients / GIB:.2f} + optimiser state {self.optimizer / GIB:.2f} + activations "
                f"{self.activations / GIB:.2f} (micro-batch of {self.micro_batch}, measured; --accum-steps "
                f"{self.accum_steps})")
        if self.capacity is not None:
            text += f"; the device holds {self.capacity / GIB:.1f} GiB"
        return text


def tensor_bytes(tensors) -> int:
    """Bytes of some tensors."""
    return sum(t.numel() * t.element_size() for t in tensors)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """The optimiser's state: measured when it has some, else Adam's two moments (per parameter, its dtype) or
    SGD's momentum buffer."""
    measured = sum(tensor_bytes(v for v in state.values() if torch.is_tensor(v) and v.dim() > 0)
                   for state in optimizer.state.values())
    if measured:
        return measured
    total = 0
    for group in optimizer.param_groups:
        size = tensor_bytes(p for p in group["params"] if p.requires_grad)
        if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
            total += 2 * size
        elif isinstance(optimizer, torch.optim.SGD) and group.get("momentum", 0):
            total += size
    return total


@contextlib.contextmanager
def counting_saved_tensors(parameters) -> Iterator[list[int]]:
    """Counts the bytes autograd saves for backward (each storage once; the parameters' own storages not)."""
    skip = {p.untyped_storage().data_ptr() for p in parameters}
    seen: set[int] = set()
    total = [0]

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer not in skip and pointer not in seen:
            seen.add(pointer)
            total[0] += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield total


def measure_activations(forward: Callable[[], torch.Tensor], model: torch.nn.Module) -> int:
    """Bytes saved for backward by ``forward()`` (a loss), which runs once with no lasting effect: the model's
    buffers (batch-norm statistics) and the random state are restored, no gradient is computed."""
    buffers = {name: buffer.detach().clone() for name, buffer in model.named_buffers()}
    devices = [p.device for p in model.parameters() if p.device.type == "cuda"][:1]
    with torch.random.fork_rng(devices=devices), counting_saved_tensors(list(model.parameters())) as total:
        loss = forward()
        del loss
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(buffers[name])
    return total[0]


def device_capacity(device: str | torch.device) -> int | None:
    """Memory of a CUDA device, or the machine's RAM for the CPU (None when unknown)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type == "cpu":
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError, AttributeError):
            return None
    return None


def accum_that_fits(estimate: MemoryEstimate, capacity: int, per_process_batch: int) -> int | None:
    """The smallest ``--accum-steps`` (a divisor of the per-process batch) whose activations fit beside the model
    state in ``HEADROOM`` of ``capacity``; None when even one row per micro-batch does not fit."""
    room = HEADROOM * capacity - estimate.model_state
    per_row = estimate.activations / max(1, estimate.micro_batch)
    for steps in range(1, per_process_batch + 1):
        if per_process_batch % steps == 0 and per_row * per_process_batch / steps <= room:
            return steps
    return None


def check_fits(estimate: MemoryEstimate, per_process_batch: int, precision: str) -> None:
    """``InputError`` (suggesting ``--accum-steps`` / bf16) when the estimate exceeds the device."""
    if estimate.capacity is None or estimate.total <= HEADROOM * estimate.capacity:
        return
    raise InputError("--accum-steps", too_small_message(estimate, per_process_batch, precision))


def too_small_message(estimate: MemoryEstimate, per_process_batch: int, precision: str) -> str:
    """Why the step does not fit and what would: the accumulation steps, half precision."""
    needed = f"{estimate.total / GIB:.1f} GiB" if estimate.activations else "more memory"
    capacity = "" if estimate.capacity is None else f" of the device's {estimate.capacity / GIB:.1f} GiB"
    text = f"one training step needs {needed} per process, over {HEADROOM:.0%}{capacity}"
    steps = None if estimate.capacity is None else accum_that_fits(estimate, estimate.capacity, per_process_batch)
    if steps is not None and steps > estimate.accum_steps:
        text += (f": use --accum-steps {steps} (micro-batches of {per_process_batch // steps}; the global batch "
                 "and the results stay the same)")
    elif steps is None and estimate.capacity is not None:
        text += (f": the model state alone ({estimate.model_state / GIB:.1f} GiB) leaves no room; use more or "
                 "larger devices")
    else:
        text += f": use a larger --accum-steps than {estimate.accum_steps}"
    if precision == "fp32":
        text += "; --precision bf16 also roughly halves the activations"
    return text


def out_of_memory_message(micro_batch: int, accum_steps: int, per_process_batch: int, precision: str) -> str:
    """The error of a step that ran out of device memory."""
    larger = next((k for k in range(accum_steps + 1, per_process_batch + 1) if per_process_batch % k == 0), None)
    text = f"out of device memory in a training step with micro-batches of {micro_batch} rows"
    if larger is not None:
        text += f": use --accum-steps {larger} or more (the global batch and the results stay the same)"
    if precision == "fp32":
        text += "; --precision bf16 also roughly halves the activations"
    return text


def is_out_of_memory(error: BaseException) -> bool:
    """An allocator failure on any device."""
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()
