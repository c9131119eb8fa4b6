"""The digits world's data: scikit-learn's 1,797 real 8×8 handwritten digits, drawn at 16 px.

Every digit is split once, per class and seeded: ``val`` and ``test`` are held out from everything (the models
of the world never see them); the rest is the *pool*, on which the small CLIP and the diffusion model are
trained (the stand-in for the web data behind real CLIP and SDXL). The long-tailed dataset takes its training
images from the pool: 5 many, 3 medium and 2 few classes (``LT_TRAIN_COUNTS``), in the generic ``folder``
layout (``train/ val/ test/<class>/*.png``).
"""

from __future__ import annotations

import logging
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from PIL import Image

from discl.seeding import stable_seed

log = logging.getLogger(__name__)

IMAGE_SIZE = 16  # 8×8 digits upsampled ×2: 4×8×8 latents through a 2×-down VAE
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Captions of the CLIP and the diffusion model. They include the folder dataset's own prompt ("a photo of a {}"),
# caption and zero-shot template ("a photo of a {}."), so every stage's text is one the models were trained on.
CAPTION_TEMPLATES = ("a photo of the digit {}.", "a photo of the digit {}", "a photo of a {}.", "a photo of a {}",
                     "the digit {}", "a handwritten {}.", "{}")
VAL_PER_CLASS = 20
TEST_PER_CLASS = 50
SPLIT_SEED = 0
# Training images per class of the long-tailed dataset (many >= 100, medium 20-99, few < 20: the reference's cut).
LT_TRAIN_COUNTS = {"zero": 100, "one": 100, "two": 100, "four": 100, "six": 100,
                   "five": 40, "seven": 40, "nine": 40,
                   "three": 8, "eight": 8}


@lru_cache(maxsize=1)
def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """All digits as uint8 ``(1797, 16, 16)`` grey images (dark ink on white) and their labels 0-9."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.stack([_draw(ink) for ink in digits.images])
    return images, digits.target.astype(np.int64)


def _draw(ink: np.ndarray) -> np.ndarray:
    """One 8×8 ink map (0-16) as a 16×16 grey image: bicubic ×2, dark ink on white paper."""
    small = Image.fromarray(np.round(ink * (255 / 16)).astype(np.uint8), mode="L")
    return 255 - np.asarray(small.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC))


def to_pil(image: np.ndarray) -> Image.Image:
    """A grey uint8 digit as an RGB PIL image (the pipelines and CLIP read RGB)."""
    return Image.fromarray(image, mode="L").convert("RGB")


@lru_cache(maxsize=1)
def split_indices() -> dict[str, np.ndarray]:
    """Indices into ``digit_images()`` of ``val``, ``test`` and ``pool``; each class shuffled by its own seed."""
    _, labels = digit_images()
    splits: dict[str, list[int]] = {"val": [], "test": [], "pool": []}
    for label, name in enumerate(DIGIT_NAMES):
        members = np.flatnonzero(labels == label)
        order = members[np.random.default_rng(stable_seed("digits-split", SPLIT_SEED, name)).permutation(len(members))]
        splits["val"].extend(order[:VAL_PER_CLASS])
        splits["test"].extend(order[VAL_PER_CLASS:VAL_PER_CLASS + TEST_PER_CLASS])
        splits["pool"].extend(order[VAL_PER_CLASS + TEST_PER_CLASS:])
    return {split: np.asarray(indices, dtype=np.int64) for split, indices in splits.items()}


def lt_entries() -> list[tuple[str, int]]:
    """``(relative path, index into digit_images())`` of the long-tailed folder dataset (pure).

    Train takes the first ``LT_TRAIN_COUNTS[name]`` pool images of each class (in the pool's seeded order);
    val and test are the held-out digits. Files are named by their scikit-learn index.
    """
    _, labels = digit_images()
    entries = []
    for split, source in (("train", "pool"), ("val", "val"), ("test", "test")):
        for label, name in enumerate(DIGIT_NAMES):
            members = [int(i) for i in split_indices()[source] if labels[i] == label]
            if split == "train":
                members = members[:LT_TRAIN_COUNTS[name]]
            entries.extend((f"{split}/{name}/digit{index:04d}.png", index) for index in members)
    return entries


def _image(index: int) -> Image.Image:
    return to_pil(digit_images()[0][index])


def make_digits_lt(root: str | Path) -> Path:
    """Write the long-tailed digits as an ImageFolder root (``train/ val/ test/<class>/*.png``); return ``root``."""
    from discl.tiny.datasets import _finish, _write_images

    root = Path(root)
    images = [(path, partial(_image, index)) for path, index in lt_entries()]
    if not _write_images(root, SPLIT_SEED, images):
        log.info("long-tailed digits already complete at %s", root)
        return root
    _finish(root, SPLIT_SEED)
    log.info("long-tailed digits: %d images at %s", len(images), root)
    return root


def captions(label: int) -> list[str]:
    """Every caption of a class (one per template)."""
    return [template.format(DIGIT_NAMES[label]) for template in CAPTION_TEMPLATES]
