"""CLIPScore filtering (spec §3): batched, cached CLIP similarities of synthetic images, filtering, reference pickles.

For every synthetic image we need two cosines: against the text embedding of its prompt and against the image
embedding of its real source. The reference re-encoded the prompt and the real image for each of the 80
synthetic versions of a hard image, at batch 1; here every distinct prompt and every real image is encoded
once, images in batches, and all embeddings are cached on disk so a rerun or a newly finished shard only
encodes what is new.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from discl.errors import InputError
from discl.fileio import atomic_write, atomic_write_csv
from discl.manifest import MANIFEST_COLUMNS, read_manifest, sample_id, validate_manifest
from discl.models import HF_CLIP_ID

log = logging.getLogger(__name__)

IWILDCAM_THRESHOLD = 0.25
IMAGENET_LT_THRESHOLD = 0.30
REFERENCE_RESIZE = (480, 270)  # spec §3: the reference resizes to 480×270 before embedding (iWildCam)
SCORES_FILE = "clip_scores.csv"
CLIP_SCORE_PICKLE = "clip_score.pkl"
FILTERED_PICKLE = "filtered_results.pkl"
EMBEDDING_PICKLE = "clip_emb.pkl"
REPORT_FILE = "filter_report.csv"
HISTOGRAM_FILE = "clip_scores_hist.png"
CACHE_DIR = "clip_cache"


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``[N, D]`` arrays (``[D]`` rows broadcast)."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)).astype(np.float32)


def _features(output) -> "torch.Tensor":  # noqa: F821
    # transformers 5 returns an output object (projected embedding in .pooler_output); 4.x returned a tensor.
    return output if hasattr(output, "ndim") else output.pooler_output


def _normalised(features) -> np.ndarray:
    array = features.detach().float().cpu().numpy()
    return (array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class ClipEmbedder:
    """A transformers CLIP model that turns PIL images and strings into L2-normalised float32 embeddings."""

    def __init__(self, model_id: str = HF_CLIP_ID, device: str = "cpu", batch_size: int = 64):
        from discl.models import load_hf_clip

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_id = model_id
        self.device = device
        self.batch_size = batch_size
        self.model, self.processor = load_hf_clip(model_id, device)
        # Counted so tests (and the log) can check that cached items are never re-encoded.
        self.images_encoded = 0
        self.texts_encoded = 0

    @property
    def dim(self) -> int:
        """Embedding dimension (the projection size)."""
        return int(self.model.config.projection_dim)

    def signature(self) -> str:
        """A short hash of the model id and its projection weights: caches from other weights never match."""
        digest = hashlib.sha256(self.model_id.encode())
        for name in ("visual_projection", "text_projection"):
            weight = getattr(self.model, name).weight.detach().float().cpu().numpy()
            digest.update(np.ascontiguousarray(weight).tobytes())
        return digest.hexdigest()[:12]

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """``[N, D]`` normalised image embeddings, computed in batches of ``batch_size``."""
        import torch

        chunks = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(images), self.batch_size):
            batch = [image.convert("RGB") for image in images[start:start + self.batch_size]]
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.inference_mode():
                chunks.append(_normalised(_features(self.model.get_image_features(pixel_values=pixels))))
        self.images_encoded += len(images)
        return np.concatenate(chunks)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``[N, D]`` normalised text embeddings; prompts longer than CLIP's 77 tokens are truncated."""
        import torch

        chunks = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(texts), self.batch_size):
            tokens = self.processor.tokenizer(list(texts[start:start + self.batch_size]), padding=True,
                                              truncation=True, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                chunks.append(_normalised(_features(self.model.get_text_features(
                    input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]))))
        self.texts_encoded += len(texts)
        return np.concatenate(chunks)
