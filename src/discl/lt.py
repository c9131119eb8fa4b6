"""Classification with CE or Balanced Softmax as a task of the training loop (the paper's ImageNet-LT trainer).

Built on LDMLR's recipe (docs/train-imagenet-lt.md): a ResNet-10 (``discl.resnet``) fine-tuned from a model
trained with CE on the real long-tailed data (``--init``), in full or classifier-only (``onlyfc``, frozen
backbone incl. its batch-norm statistics); Adam, lr 1e-3, weight decay 1e-5, cosine annealing over all steps;
65 epochs, batch 128, the fixed schedule 10 → 30 → 50 → real at epochs 0, 14, 29, 44 with ``curriculum_epoch``
60, and tail-topup stage data. The same task with ``--curriculum none`` is the plain baseline. Works on any
registered dataset (``discl.training.loop``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from discl import checkpoint as ckpt
from discl import resnet
from discl.config import option
from discl.datasets.base import Dataset
from discl.errors import InputError
from discl.lr import cosine_annealing_lr
from discl.training.config import LT as PAPER
from discl.config import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE
from discl.training.config import LoopConfig
from discl.training.task import Task

logger = logging.getLogger(__name__)

LOSSES = ("ce", "balanced_softmax")
MIN_CROP_AREA = 0.08  # RandomResizedCrop's default scale=(0.08, 1.0): the smallest share of the image a crop takes


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


def make_transforms(crop_size: int = 224, resize_size: int = 256):
    """(train, test) transforms after LDMLR: random crop + flip + colour jitter; resize + centre crop."""
    from torchvision import transforms

    normalize = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    train = transforms.Compose([transforms.RandomResizedCrop(crop_size), transforms.RandomHorizontalFlip(),
                                transforms.ColorJitter(0.4, 0.4, 0.4, 0), transforms.ToTensor(), normalize])
    test = transforms.Compose([transforms.Resize(resize_size), transforms.CenterCrop(crop_size),
                               transforms.ToTensor(), normalize])
    return train, test


# ------------------------------------------------------------------------------------------------------ task
@dataclass
class CEOptions:
    """The CE task's own settings (the loop's are in ``discl.training.config.LoopConfig``)."""

    arch: str = option("resnet10", "backbone", choices=resnet.ARCHS, paper=PAPER)
    width: int = option(64, "ResNet-10 first-stage width", paper=PAPER)
    init: Path | None = option(None, "checkpoint trained on the real data to start from (the baseline's best.pt)")
    torchvision_weights: str | None = option(None, "torchvision weights for resnet18/50, e.g. DEFAULT (downloads)")
    train_mode: str = option("full", "full fine-tuning or classifier only (frozen backbone, batch-norm statistics "
                                     "included)", choices=resnet.TRAIN_MODES, paper=PAPER)
    loss: str = option("ce", "cross-entropy or Balanced Softmax (log class prior added at training time)",
                       choices=LOSSES, paper=PAPER)
    lr: float = option(1e-3, "Adam learning rate, cosine-annealed over all steps", paper=PAPER)
    wd: float = option(1e-5, "Adam weight decay", paper=PAPER)
    crop_size: int = option(224, "RandomResizedCrop / CenterCrop size", paper=PAPER)
    resize_size: int = option(256, "test-time Resize before the centre crop", paper=PAPER)


class CETask(Task):
    """A classifier trained with CE or Balanced Softmax on image/label rows; its logits evaluate it."""

    name = "ce"
    options_class = CEOptions
    # What differs from the loop's (FLYP's) defaults: LDMLR's ImageNet-LT schedule and data.
    loop_defaults = dict(epochs=65, batch_size=128, curriculum="fixed", curriculum_epoch=60,
                         guidance_levels=[10, 30, 50, 100], level_starts=[0, 14, 29, 44], stage_data="tail-topup")
    resume_keys = ("arch", "width", "init", "torchvision_weights", "train_mode", "loss", "lr", "wd", "crop_size",
                   "resize_size")
    option_ranges = {"width": AT_LEAST_ONE, "lr": POSITIVE, "wd": NON_NEGATIVE, "crop_size": AT_LEAST_ONE,
                     "resize_size": AT_LEAST_ONE}

    def check(self, loop: LoopConfig) -> None:
        """The numeric options' ranges; ``onlyfc`` needs starting weights; random weights get a loud warning."""
        super().check(loop)
        starts = self.options.init is not None or self.options.torchvision_weights is not None
        if self.options.train_mode == "onlyfc" and not starts:
            raise InputError(None, "--train-mode onlyfc needs --init (or --torchvision-weights): training only the "
                                   "classifier on a randomly initialised, frozen backbone is never intended")
        if loop.curriculum != "none" and not starts and not loop.resume:
            logger.warning("no --init: fine-tuning from RANDOM weights. The curriculum starts from a model trained "
                           "on the real data; pass --init BASELINE/checkpoints/best.pt (curriculum none)")

    def build(self, dataset: Dataset, device: str, resume: bool) -> torch.nn.Module:
        """The backbone with ``--init`` weights (a resumed run takes them from its checkpoint), frozen per mode."""
        opts = self.options
        self.train_transform, self.eval_transform = make_transforms(opts.crop_size, opts.resize_size)
        model = resnet.build_model(opts.arch, len(dataset.class_names()), opts.width, opts.torchvision_weights)
        if opts.init is not None and not resume:
            resnet.load_weights(model, opts.init)
        resnet.set_train_mode(model, opts.train_mode)
        # Balanced Softmax's prior: the canonical training counts (not the curriculum table's)
        self.log_prior = log_class_prior(dataset.class_counts()).to(device)
        return model.to(device)

    def optimizer(self, parameters: Sequence[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """Adam."""
        return torch.optim.Adam(parameters, lr=self.options.lr, weight_decay=self.options.wd)

    def lr(self, step: int, total_steps: int) -> float:
        """Cosine annealing over all steps, no warm-up."""
        return cosine_annealing_lr(step, self.options.lr, total_steps)

    def prepare_table(self, table: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
        """One row per image / guidance / seed: the table's caption copies of a row are one training image."""
        return table.drop_duplicates(subset=["filepath", "guidance", "seed"])

    def targets(self, rows: pd.DataFrame) -> torch.Tensor:
        """The labels."""
        return torch.from_numpy(rows["label"].to_numpy(dtype=np.int64, copy=True))

    def enter_training(self, model: torch.nn.Module) -> None:
        """Training mode; ``onlyfc`` keeps the frozen backbone's batch-norm statistics (eval mode)."""
        model.train()
        if self.options.train_mode == "onlyfc":
            for name, module in ckpt.unwrap(model).named_children():
                if name != "fc":
                    module.eval()

    def loss(self, model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """CE, or CE on ``logits + log prior`` (Balanced Softmax)."""
        return training_loss(self.options.loss, model(images), targets, self.log_prior)

    def logits(self, model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        """The classifier's plain logits (no prior at test time)."""
        return model(images)

    def draft_size(self, model: torch.nn.Module) -> int | None:
        """JPEGs may be decoded down to where the smallest random crop (8% of the area) still has ``crop_size``
        pixels a side: large photos decode at 1/2 or less, ImageNet's ~500×375 in full (docs/performance.md)."""
        return math.ceil(self.options.crop_size / math.sqrt(MIN_CROP_AREA))
