"""Atomic file writes: every file this project writes goes through here.

A write goes to a temporary file in the destination folder and is renamed over the target with
``os.replace``, so a killed process leaves either the old file, the new file, or a stray ``.tmp-*`` file
that readers ignore — never a truncated target.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

TMP_PREFIX = ".tmp-"


def _process_umask() -> int:
    """The process umask (read by setting and restoring it: the only portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def created_file_mode() -> int:
    """The mode ``open()`` would give a new file: ``0o666`` less the umask (``mkstemp`` always gives 0600)."""
    return 0o666 & ~_process_umask()


def share_tree(folder: str | os.PathLike) -> None:
    """Give ``folder`` and everything in it the modes the umask allows (``mkdtemp`` folders and the temp files some
    libraries rename into place are private: 0700 / 0600)."""
    mask = _process_umask()
    for root, _, files in os.walk(folder):
        os.chmod(root, 0o777 & ~mask)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~mask)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8",
                 durable: bool = True) -> Iterator[IO]:
    """Open a temp file next to ``path``; on success fsync (if ``durable``) and rename it onto ``path``.

    The rename alone makes the write atomic against a killed process; ``durable`` also survives a power loss,
    at a few milliseconds per file (skip it for bulk files that are cheap to rebuild).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        # mkstemp creates 0600 files whatever the umask; lab-mates on a shared cluster must read the outputs
        os.fchmod(fd, created_file_mode())
        with os.fdopen(fd, mode, encoding=None if binary else encoding, newline=None if binary else "") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb", durable=durable) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def atomic_write_csv(path: str | os.PathLike, frame, sep: str = ",", **kwargs) -> None:
    """Write a pandas DataFrame as CSV atomically (``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    with atomic_write(path, "w") as handle:
        frame.to_csv(handle, sep=sep, **kwargs)


def atomic_save_image(image, path: str | os.PathLike, durable: bool = True, **save_kwargs) -> None:
    """Save a PIL image atomically; the format comes from the suffix of ``path``."""
    path = Path(path)
    buffer = io.BytesIO()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(path.suffix.lower())
    image.save(buffer, format=fmt, **save_kwargs)
    atomic_write_bytes(path, buffer.getvalue(), durable=durable)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically (store plain dicts/tensors: torch 2.14 loads with ``weights_only=True``)."""
    import torch

    with atomic_write(path, "wb") as handle:
        torch.save(obj, handle)


def is_temp_file(path: str | os.PathLike) -> bool:
    """True for the temporary files ``atomic_write`` leaves behind when killed."""
    return Path(path).name.startswith(TMP_PREFIX)
