"""Zero-shot classification heads for open_clip models: class-name templates → one text embedding per class."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from discl.datasets.base import Template
from discl.datasets.base import render as render_template  # noqa: F401 - a format pattern or a callable


@torch.no_grad()
def build_zeroshot_head(model, tokenizer, classnames: Sequence[str], templates: Sequence[Template],
                        device: str | torch.device = "cpu", batch_size: int = 256) -> torch.Tensor:
    """Per class: mean of the L2-normalised template text embeddings, renormalised → ``[C, D]`` float32.

    The arithmetic of open_clip's ``build_zero_shot_classifier`` (equal to it on the tiny model), kept here because
    open_clip's needs templates all of one kind (format strings or callables) and batches by class, not by text.
    """
    if not classnames or not templates:
        raise ValueError("build_zeroshot_head needs at least one class name and one template")
    texts = [render_template(t, name) for name in classnames for t in templates]
    was_training = model.training
    model.eval()
    try:
        chunks = []
        # One batched pass over all class × template texts instead of one forward per class.
        for start in range(0, len(texts), batch_size):
            tokens = tokenizer(texts[start:start + batch_size]).to(device)
            chunks.append(F.normalize(model.encode_text(tokens).float(), dim=-1))
    finally:
        model.train(was_training)
    embeddings = torch.cat(chunks).view(len(classnames), len(templates), -1)
    return F.normalize(embeddings.mean(dim=1), dim=-1)


def zeroshot_logits(model, images: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    """``logit_scale.exp() · normalise(encode_image(images)) @ head.T`` → ``[N, C]``."""
    features = F.normalize(model.encode_image(images).float(), dim=-1)
    return model.logit_scale.exp().float() * features @ head.to(features.device, torch.float32).T
