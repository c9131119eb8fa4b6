"""Decoding images at the size they are used: JPEG draft mode, then the resize (docs/performance.md).

A JPEG stores 8×8 blocks of frequencies, so libjpeg can decode it directly at 1/2, 1/4 or 1/8 of its size for
a fraction of the work (PIL's *draft mode*). iWildCam's 1920×1080 frames are shrunk to 480×270 for generation
and scoring and to 224 for training: decoded at 1/4 they need no full-size decode at all. The reduction is
always the largest power of two that keeps both sides at least the size asked for, so nothing is ever upsampled
that a full decode would have had; the pixels differ from a full decode + resize by the difference between
libjpeg's scaled inverse DCT and PIL's antialiased resampling (measured by ``bench/bench_decode.py``, documented
in docs/performance.md). Other formats (PNG, WebP, …) are decoded in full, exactly as without draft mode.

Every image of the project is opened here: a file that does not decode (a damaged or truncated file, a header
that claims a decompression bomb's size) raises ``ImageDecodeError``, an ``OSError`` naming the file, whatever
PIL raised, so every ``except OSError`` of the callers (``--skip-bad``, failure lists, loaders) handles it.
"""

from __future__ import annotations

import contextlib
import os
import struct
from typing import Iterator

from PIL import Image

# What PIL raises for a file it cannot decode besides OSError: broken headers (SyntaxError, ValueError,
# struct.error, IndexError), early ends (EOFError), and images larger than its pixel limit (a decompression bomb).
_NOT_OS_ERRORS = (Image.DecompressionBombError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


class ImageDecodeError(OSError):
    """An image file that does not decode; ``filename`` is the file, ``str()`` PIL's reason."""

    def __init__(self, path: str | os.PathLike, reason: BaseException | str):
        text = str(reason).strip() or type(reason).__name__
        super().__init__(f"cannot decode image ({text})")
        self.strerror = f"cannot decode image ({text})"
        self.filename = str(path)
        self.reason = text

    def __str__(self) -> str:
        return self.reason

    def __reduce__(self):  # crosses process boundaries (DataLoader workers) intact
        return type(self), (self.filename, self.reason)


@contextlib.contextmanager
def reading(path: str | os.PathLike) -> Iterator[None]:
    """Opening or decoding ``path`` inside: a decoder failure becomes ``ImageDecodeError`` (file-system errors,
    which carry an errno and the file name, pass unchanged)."""
    try:
        yield
    except ImageDecodeError:
        raise
    except OSError as err:
        if err.errno is not None:
            raise
        raise ImageDecodeError(path, err) from err
    except _NOT_OS_ERRORS as err:
        raise ImageDecodeError(path, err) from err


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """An image's ``(width, height)`` from its header (the pixels are not decoded)."""
    with reading(path), Image.open(path) as handle:
        return handle.size


def _rgb(image: Image.Image) -> Image.Image:
    """RGB pixels; an image already in RGB is returned as it is (``convert`` would copy it)."""
    image.load()
    return image if image.mode == "RGB" else image.convert("RGB")


def decode(path: str | os.PathLike, at_least: tuple[int, int] | None = None) -> Image.Image:
    """An RGB image; with ``at_least = (w, h)`` a JPEG is decoded at the largest 1/2, 1/4 or 1/8 reduction whose
    sides are still ≥ ``(w, h)`` (other formats, and ``None``, decode in full)."""
    with reading(path), Image.open(path) as handle:
        if at_least is not None:
            handle.draft("RGB", (max(1, int(at_least[0])), max(1, int(at_least[1]))))
        return _rgb(handle)


def load_rgb(path: str | os.PathLike, size: tuple[int, int] | None = None, draft: bool = False) -> Image.Image:
    """An RGB image resized to ``size`` with PIL's default (bicubic) resampling, as the reference resized.

    ``draft=False`` is the reference's ``Image.open(path).convert("RGB").resize(size)`` exactly. ``draft=True``
    decodes a JPEG at the largest power-of-two reduction that is still at least ``size`` first, and resizes
    the reduced image over the same source area (a 1920×1080 frame asked at 480×270 comes out of the decoder at
    that size and is not resampled at all).
    """
    with reading(path), Image.open(path) as handle:
        box = None
        if draft and size is not None:
            reduced = handle.draft("RGB", size)
            box = reduced[1] if reduced is not None else None
        image = _rgb(handle)
    if size is None or (image.size == tuple(size) and box in (None, (0, 0, *size))):
        return image
    if box is not None and box != (0, 0, *image.size):
        # the reduced image covers the source's area up to a fraction of a pixel: resample that exact area
        return image.resize(size, box=box)
    return image.resize(size)


def at_least_side(side: int | None) -> tuple[int, int] | None:
    """``(side, side)``: the draft size of a transform that resizes the shorter side to ``side`` (None: full)."""
    return None if not side else (int(side), int(side))
