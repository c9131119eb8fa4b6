"""What a trainer adds to the loop: the task adapter interface (FLYP in ``discl.flyp``, CE in ``discl.lt``).

The loop (``discl.training.loop``) owns time, stages, data order, evaluation, selection, checkpoints and logs;
a task owns its model, optimiser, learning-rate curve, per-row training targets, loss and evaluation logits.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import pandas as pd
import torch

from discl.datasets.base import Dataset
from discl.config import Range, check_ranges
from discl.training.config import LoopConfig
from discl.training.precision import StepContext, micro_batches


class Task:
    """Base of the task adapters; a subclass sets the class attributes and implements the methods."""

    name: ClassVar[str] = ""  # --trainer value
    options_class: ClassVar[type] = object  # the adapter's options dataclass (its flags)
    loop_defaults: ClassVar[dict[str, Any]] = {}  # loop settings whose default differs for this trainer
    resume_keys: ClassVar[tuple[str, ...]] = ()  # option names a resumed run must share with its checkpoint
    option_ranges: ClassVar[dict[str, Range]] = {}  # every numeric option and the values it accepts

    def __init__(self, options: Any):
        self.options = options
        self.train_transform = None
        self.eval_transform = None

    def check(self, loop: LoopConfig) -> None:
        """Refuse options that cannot run (``InputError``), before anything is loaded; a subclass extends it."""
        check_ranges(self.options, self.option_ranges)

    def build(self, dataset: Dataset, device: str, resume: bool) -> torch.nn.Module:
        """The model on ``device``; sets ``train_transform`` / ``eval_transform``."""
        raise NotImplementedError

    def trainable(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        """The parameters the optimiser updates."""
        return [p for p in model.parameters() if p.requires_grad]

    def optimizer(self, parameters: Sequence[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """The optimiser over ``parameters``."""
        raise NotImplementedError

    def lr(self, step: int, total_steps: int) -> float:
        """Learning rate of optimiser step ``step`` (a pure function: resumes are exact)."""
        raise NotImplementedError

    def prepare_table(self, table: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
        """The canonical table as this task trains on it (default: unchanged)."""
        return table

    def targets(self, rows: pd.DataFrame) -> torch.Tensor:
        """Per row, what the loss compares the image with (a label, caption tokens …)."""
        raise NotImplementedError

    def enter_training(self, model: torch.nn.Module) -> None:
        """Put the model in training mode (the loop calls it after every evaluation)."""
        model.train()

    def loss(self, model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss of this rank's share of a global batch (the loop back-propagates it)."""
        raise NotImplementedError

    def backward(self, model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor,
                 step: StepContext) -> float:
        """Forward and backward of this rank's share of a global batch (the loop then steps); returns its loss.

        With ``step.accum_steps`` = k > 1 the share runs as k equal micro-batches, each loss divided by k: the
        gradients add up to the whole share's for a loss that is a mean over rows (cross-entropy). Layers that
        mix rows (batch-norm statistics) see micro-batches, as they see per-process shares under DDP.
        """
        if step.accum_steps == 1:
            with step.autocast():
                loss = self.loss(model, step.to_device(images), step.to_device(targets))
            step.backward(loss)
            return float(loss.detach())
        parts = micro_batches(images, targets, step.accum_steps)
        total = 0.0
        for index, (part_images, part_targets) in enumerate(parts):
            with step.sync(model, last=index == len(parts) - 1):
                with step.autocast():
                    loss = self.loss(model, step.to_device(part_images), step.to_device(part_targets))
                step.backward(loss / len(parts))
            total += float(loss.detach())
        return total / len(parts)

    def prepare_eval(self, model: torch.nn.Module, dataset: Dataset, device: str) -> None:
        """Called before each evaluation or probe with the bare model in eval mode (FLYP builds its head)."""

    def logits(self, model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Class logits of a batch (bare model, eval mode)."""
        raise NotImplementedError

    def draft_size(self, model: torch.nn.Module) -> int | None:
        """Smallest side JPEGs may be draft-decoded to for training and probes (None: full decodes)."""
        return None
