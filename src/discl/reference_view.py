"""A view of a generation output that holds its class folders and nothing else.

The reference's ImageNet-LT scorer (``comp_clip_scores.py``) and table builder (``imagenet_LT.py``) take every
entry of their ``--syn_path`` / ``--input_folder`` for a class folder, so the bookkeeping beside the class folders
of our outputs (``manifests/``, ``run_records/``, ``clip_cache/``, the scorer's reports) would stop them. The view
is a folder of symbolic links, one per class folder, to run those scripts on; it is made in a temp folder and
renamed into place, and remade (links only) when asked again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from discl.errors import InputError
from discl.fileio import TMP_PREFIX


def is_view(folder: Path) -> bool:
    """Whether ``folder`` holds symbolic links only (a view made here, which may be replaced)."""
    return folder.is_dir() and not folder.is_symlink() and all(entry.is_symlink() for entry in folder.iterdir())


def make_reference_view(syn_root: str | os.PathLike, view: str | os.PathLike) -> list[Path]:
    """Link every class folder of ``syn_root`` into ``view`` (absolute link targets); returns the links.

    ``view`` must not exist, or be an earlier view (links only): anything else is refused, nothing is deleted.
    """
    from discl.clipscore import class_folders

    syn_root, view = Path(syn_root), Path(view)
    if not syn_root.is_dir():
        raise InputError(syn_root, "--syn-path is not a folder")
    folders = class_folders(syn_root)
    if not folders:
        raise InputError(syn_root, "holds no class folder (expected <class>/Strength…_guidance…_seed…/)")
    if view.resolve() == syn_root.resolve() or syn_root.resolve() in view.resolve().parents:
        raise InputError(view, f"--view must lie outside --syn-path {syn_root}")
    if view.exists() and not is_view(view):
        raise InputError(view, "exists and holds more than links: choose a new --view folder")
    view.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + view.name + ".", dir=view.parent))
    try:
        for folder in folders:
            (staging / folder.name).symlink_to(folder.resolve(), target_is_directory=True)
        if view.exists():
            shutil.rmtree(view)  # links only (checked above): the class folders they point to stay
        os.replace(staging, view)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [view / folder.name for folder in folders]
