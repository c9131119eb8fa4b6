"""FLYP as a task of the training loop: CLIP fine-tuned with its own contrastive loss, zero-shot evaluation.

FLYP ("fine-tune like you pretrain") trains an open_clip model with CLIP's contrastive loss between images and
their class captions (the training table's ``title``) and classifies with a zero-shot head: per class, the
mean of the normalised text embeddings of the dataset's zero-shot templates filled with its text names,
renormalised, rebuilt from the current weights at every evaluation and probe. The paper's iWildCam recipe
(docs/train-iwildcam.md): ViT-B/16 from OpenAI's weights, AdamW lr 1e-5, weight decay 0.2, 500 warm-up steps,
then cosine decay; batch 256, 20 epochs. Works on any registered dataset (``discl.training.loop``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import cycle
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from discl import checkpoint as ckpt
from discl.config import option
from discl.datasets.base import Dataset, render
from discl.lr import cosine_lr
from discl.errors import InputError
from discl.training.config import FLYP as PAPER
from discl.config import NON_NEGATIVE, POSITIVE
from discl.training.config import LoopConfig
from discl.training.data import Lookup
from discl.training.precision import StepContext, micro_batches, restore_rng, rng_snapshot
from discl.training.task import Task


@dataclass
class FlypOptions:
    """The FLYP task's own settings (the loop's are in ``discl.training.config.LoopConfig``)."""

    model: str = option("ViT-B-16", "open_clip model name (or a model config .json)", paper=PAPER)
    pretrained: str = option("openai", "open_clip pretrained tag ('' = random init)", paper=PAPER)
    lr: float = option(1e-5, "AdamW learning rate", paper=PAPER)
    wd: float = option(0.2, "AdamW weight decay", paper=PAPER)
    warmup: int = option(500, "linear warm-up steps before the cosine decay", paper=PAPER)
    min_lr: float = option(0.0, "learning rate at the end of the cosine decay")


def input_size(model) -> int:
    """The larger side of an open_clip model's input images."""
    size = ckpt.unwrap(model).visual.image_size
    return int(max(size) if isinstance(size, (tuple, list)) else size)


def with_captions(table: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """Rows without a title (an ImageNet-LT list) become one row per caption template of the dataset."""
    codes, titles = pd.factorize(table["title"])  # few distinct captions: each looked at once; -1 is a missing title
    blank = np.array([str(title).strip() == "" for title in titles] + [True], dtype=bool)
    empty = pd.Series(blank[codes], index=table.index)
    if not empty.any():
        return table
    names, templates = dataset.text_names(), list(dataset.caption_templates())
    missing = table[empty]
    repeated = missing.loc[missing.index.repeat(len(templates))]
    titles = [render(template, names[label]) for label, template in zip(repeated["label"], cycle(templates))]
    # a stable sort on the original positions keeps each image's rows where the image was
    return pd.concat([table[~empty], repeated.assign(title=titles)]).sort_index(kind="stable").reset_index(drop=True)


class FlypTask(Task):
    """CLIP contrastive fine-tuning on image/caption pairs; a zero-shot head for evaluation and probes."""

    name = "flyp"
    options_class = FlypOptions
    loop_defaults = {}  # the loop's defaults are FLYP's (batch 256, 20 epochs, curriculum epoch 15)
    resume_keys = ("model", "pretrained", "lr", "wd", "warmup", "min_lr")
    option_ranges = {"lr": POSITIVE, "wd": NON_NEGATIVE, "warmup": NON_NEGATIVE, "min_lr": NON_NEGATIVE}

    def check(self, loop: LoopConfig) -> None:
        """The numeric options' ranges; the cosine decays down to ``--min-lr``, never up."""
        super().check(loop)
        if self.options.min_lr > self.options.lr:
            raise InputError("--min-lr", f"the cosine decays to it from --lr {self.options.lr}: expected at most "
                                         f"that, got {self.options.min_lr}")

    def build(self, dataset: Dataset, device: str, resume: bool) -> torch.nn.Module:
        """The open_clip model, its train / val transforms, tokenizer and the (distributed) CLIP loss."""
        import torch.distributed as dist
        from open_clip import ClipLoss

        from discl.models import create_open_clip

        model, self.train_transform, self.eval_transform, self.tokenizer = create_open_clip(
            self.options.model, self.options.pretrained, device=device)
        distributed = dist.is_available() and dist.is_initialized()
        self.world_size = dist.get_world_size() if distributed else 1
        # Every rank's features are gathered with their autograd graphs: the loss sees the one global batch,
        # and DDP's gradient average makes N processes take the step of one.
        self.loss_fn = ClipLoss(gather_with_grad=True, rank=dist.get_rank() if distributed else 0,
                                world_size=self.world_size)
        self.head = None
        return model

    def optimizer(self, parameters: Sequence[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """AdamW."""
        return torch.optim.AdamW(parameters, lr=self.options.lr, weight_decay=self.options.wd)

    def lr(self, step: int, total_steps: int) -> float:
        """Linear warm-up, then cosine decay to ``min_lr``."""
        return cosine_lr(step, self.options.lr, self.options.warmup, total_steps, self.options.min_lr)

    def prepare_table(self, table: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
        """Captions for rows without one; every row is an image/caption pair."""
        return with_captions(table, dataset)

    def targets(self, rows: pd.DataFrame) -> Lookup:
        """Caption tokens per row, each distinct caption tokenised once (there are few per class)."""
        # hashed, not sorted: a stage of the real volume has ~900k rows and a few hundred captions
        codes, unique = pd.factorize(rows["title"].astype(str).to_numpy())
        order = np.argsort(unique)  # captions in sorted order, as before
        index = np.empty(len(order), dtype=np.int64)
        index[order] = np.arange(len(order))
        tokens = self.tokenizer(list(unique[order])) if len(unique) else torch.zeros(0, 1, dtype=torch.long)
        return Lookup(tokens, index[codes])

    def loss(self, model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """CLIP's contrastive loss over the global batch."""
        image_features, text_features, logit_scale = model(images, targets)
        return self._contrastive(image_features, text_features, logit_scale)

    def _contrastive(self, image_features: torch.Tensor, text_features: torch.Tensor,
                     logit_scale: torch.Tensor) -> torch.Tensor:
        """The loss of features (gathered with their gradients over the ranks)."""
        if self.world_size == 1:
            return self.loss_fn(image_features, text_features, logit_scale)
        # open_clip gathers with torch.distributed.nn.all_gather, deprecated in favour of a private API
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*all_gather is deprecated")
            return self.loss_fn(image_features, text_features, logit_scale)

    def backward(self, model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor,
                 step: StepContext) -> float:
        """The contrastive loss of the whole global batch, also when it runs as micro-batches.

        Split naively, each micro-batch would contrast its rows with its own k-times fewer negatives: another loss.
        With ``--accum-steps`` k > 1 the features of all micro-batches are computed first without a graph, the
        loss of the whole batch (every negative, gathered over the ranks as without accumulation) gives their
        gradients, and each micro-batch is run again with its graph to carry its slice of those gradients into the
        weights (gradient caching, Gao et al. 2021): the gradients of the unsplit step, for one more forward
        pass. The random state is replayed, so a re-run forward draws what the first did.
        """
        if step.accum_steps == 1:
            return super().backward(model, images, targets, step)
        parts = micro_batches(images, targets, step.accum_steps)
        states, image_parts, text_parts = [], [], []
        with torch.no_grad():
            for part_images, part_tokens in parts:
                states.append(rng_snapshot(step.device))
                with step.autocast():
                    image_features, text_features, logit_scale = model(step.to_device(part_images),
                                                                       step.to_device(part_tokens))
                image_parts.append(image_features)
                text_parts.append(text_features)
        after = rng_snapshot(step.device)
        image_all = torch.cat(image_parts).requires_grad_()
        text_all = torch.cat(text_parts).requires_grad_()
        scale = logit_scale.detach().requires_grad_()
        with step.autocast():
            loss = self._contrastive(image_all, text_all, scale)
        step.backward(loss)  # gradients of the features and the scale (leaves here), scaled like the loss
        sizes = [len(part_images) for part_images, _ in parts]
        image_grads, text_grads = image_all.grad.split(sizes), text_all.grad.split(sizes)
        for index, (part_images, part_tokens) in enumerate(parts):
            restore_rng(states[index], step.device)
            last = index == len(parts) - 1
            with step.sync(model, last):
                with step.autocast():
                    image_features, text_features, logit_scale = model(step.to_device(part_images),
                                                                       step.to_device(part_tokens))
                outputs, grads = [image_features, text_features], [image_grads[index], text_grads[index]]
                if last:  # the scale's gradient once, in the backward that synchronises every parameter
                    outputs.append(logit_scale)
                    grads.append(scale.grad)
                step.backward_from(outputs, grads)
        restore_rng(after, step.device)
        return float(loss.detach())

    def prepare_eval(self, model: torch.nn.Module, dataset: Dataset, device: str) -> None:
        """Rebuild the zero-shot head from the current weights (per class, the mean of the normalised template
        embeddings, renormalised: ``discl.zeroshot``, shared with the hard-sample scorer)."""
        from discl.zeroshot import build_zeroshot_head

        self.head = build_zeroshot_head(model, self.tokenizer, dataset.text_names(), list(dataset.zeroshot_templates()),
                                        device=device)

    def logits(self, model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        """``logit_scale · normalise(image embedding) @ head.T``."""
        from discl.zeroshot import zeroshot_logits

        return zeroshot_logits(model, images, self.head)

    def draft_size(self, model: torch.nn.Module) -> int | None:
        """JPEGs may be decoded down to the model's input size."""
        return input_size(model)
