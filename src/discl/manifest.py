"""The generation manifest: one CSV row per synthetic image, passed from generation to scoring to training data.

See ``docs/DESIGN.md`` for the column meanings. ``validate_manifest`` checks a table and raises
``InputError`` naming the file, the (1-based data) row and the column of the first problem.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from discl.errors import InputError
from discl.fileio import atomic_write_csv
from discl.guidance import level_from_strength, strength_percent

MANIFEST_COLUMNS = [
    "sample_id",
    "dataset",
    "class_id",
    "class_name",
    "class_folder",
    "real_path",
    "image_stem",
    "prompt",
    "strength",
    "image_guidance",
    "text_guidance",
    "seed",
    "generator_seed",
    "synthetic_path",
    "tries",
    "clip_image_text",
    "clip_image_image",
    "keep",
]
DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")  # a registered dataset name (``Dataset.name``)
SCORE_COLUMNS = ("clip_image_text", "clip_image_image", "keep")
INT64_MAX = 2 ** 63 - 1  # integer columns are stored as int64



def subfolder_name(strength: float, text_guidance: float, seed: int) -> str:
    """The reference's per-setting folder, ``Strength{int(100s)}_guidance{int(10g)}_seed{seed}``."""
    return f"Strength{strength_percent(strength)}_guidance{int(round(10 * text_guidance))}_seed{int(seed)}"


def sample_id(class_folder: str, subfolder: str, image_stem: str) -> str:
    """The reference's ``clip_score.pkl`` key, ``{class folder}={subfolder}={image stem}``."""
    return f"{class_folder}={subfolder}={image_stem}"


def synthetic_relpath(class_folder: str, strength: float, text_guidance: float, seed: int, image_stem: str) -> str:
    """Output path of one synthetic image relative to the generation output root."""
    return f"{class_folder}/{subfolder_name(strength, text_guidance, seed)}/{image_stem}.jpg"


def empty_manifest() -> pd.DataFrame:
    """A manifest with the right columns and no rows."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in MANIFEST_COLUMNS})


def _is_blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and value == "")


def _parse_int(value) -> int:
    """An exact integer from an int, an integral float (in-memory frames) or text such as ``10`` / ``1e3``."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    text = str(value).strip()
    try:
        return int(text)  # exact, also for 63-bit generator seeds that a float would round
    except ValueError:
        number = float(text)
        if not number.is_integer():
            raise ValueError(text) from None
        return int(number)


def _as_int(value, file, row, column, minimum=None, maximum=INT64_MAX) -> int:
    try:
        number = _parse_int(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(file, f"expected an integer, got {value!r}", row, column) from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        low = "-inf" if minimum is None else minimum
        raise InputError(file, f"{number} outside [{low}, {maximum}]", row, column)
    return number


def _as_float(value, file, row, column) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(file, f"expected a number, got {value!r}", row, column) from None
    if math.isnan(number):
        raise InputError(file, "value is missing", row, column)
    return number


def validate_manifest(frame: pd.DataFrame, file: str | os.PathLike = "<manifest>") -> pd.DataFrame:
    """Check columns, types, ranges and internal consistency; return a copy with proper dtypes."""
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(file, f"missing column(s) {', '.join(missing)}; expected {', '.join(MANIFEST_COLUMNS)}")
    seen: dict[str, int] = {}
    for index, record in enumerate(frame[MANIFEST_COLUMNS].itertuples(index=False), start=1):
        rec = record._asdict()
        for column in ("sample_id", "dataset", "class_name", "class_folder", "real_path", "image_stem",
                       "prompt", "synthetic_path"):
            if _is_blank(rec[column]):
                raise InputError(file, "value is missing", index, column)
        if not DATASET_NAME.match(str(rec["dataset"])):
            raise InputError(file, f"{rec['dataset']!r} is not a dataset name (letters, digits, '_', '.', '-')",
                             index, "dataset")
        _as_int(rec["class_id"], file, index, "class_id", minimum=0)
        strength = _as_float(rec["strength"], file, index, "strength")
        if not 0 < strength <= 1:
            raise InputError(file, f"strength {strength} outside (0, 1]", index, "strength")
        guidance = _as_int(rec["image_guidance"], file, index, "image_guidance", 0, 99)
        if guidance != level_from_strength(strength):
            raise InputError(file, f"image_guidance {guidance} does not match strength {strength} "
                                   f"(expected {level_from_strength(strength)})", index, "image_guidance")
        if _as_float(rec["text_guidance"], file, index, "text_guidance") <= 0:
            raise InputError(file, "text guidance must be > 0", index, "text_guidance")
        _as_int(rec["seed"], file, index, "seed", minimum=0)
        _as_int(rec["generator_seed"], file, index, "generator_seed", minimum=0)
        _as_int(rec["tries"], file, index, "tries", minimum=1)
        for column in ("clip_image_text", "clip_image_image"):
            if not _is_blank(rec[column]):
                score = _as_float(rec[column], file, index, column)
                if not -1.0 - 1e-6 <= score <= 1.0 + 1e-6:
                    raise InputError(file, f"cosine similarity {score} outside [-1, 1]", index, column)
        if not _is_blank(rec["keep"]) and str(rec["keep"]) not in ("True", "False", "true", "false", "1", "0"):
            raise InputError(file, f"expected True/False, got {rec['keep']!r}", index, "keep")
        if rec["sample_id"] in seen:
            raise InputError(file, f"duplicate sample_id {rec['sample_id']!r} (first at row {seen[rec['sample_id']]})",
                             index, "sample_id")
        seen[rec["sample_id"]] = index
        _check_names(rec, file, index)
    return _typed(frame[MANIFEST_COLUMNS])


def _check_names(rec: dict, file, row: int) -> None:
    """``sample_id`` and ``synthetic_path`` must follow from the class folder, settings and stem (docs/DESIGN.md)."""
    for column in ("class_folder", "image_stem"):
        if "=" in rec[column] or "/" in rec[column]:
            # '=' separates the parts of the reference's clip_score.pkl keys; '/' would nest folders
            raise InputError(file, f"{rec[column]!r} must not contain '=' or '/'", row, column)
    strength, text_guidance, seed = float(rec["strength"]), float(rec["text_guidance"]), int(float(rec["seed"]))
    subfolder = subfolder_name(strength, text_guidance, seed)
    expected_id = sample_id(rec["class_folder"], subfolder, rec["image_stem"])
    if rec["sample_id"] != expected_id:
        raise InputError(file, f"expected {expected_id!r} (class_folder=subfolder=image_stem), got {rec['sample_id']!r}",
                         row, "sample_id")
    expected_path = synthetic_relpath(rec["class_folder"], strength, text_guidance, seed, rec["image_stem"])
    # The suffix may differ: folders in the reference's layout also hold .JPEG / .png files.
    if os.path.splitext(rec["synthetic_path"])[0] != os.path.splitext(expected_path)[0]:
        raise InputError(file, f"expected {expected_path!r}, got {rec['synthetic_path']!r}", row, "synthetic_path")


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column in ("class_id", "image_guidance", "seed", "generator_seed", "tries"):
        frame[column] = frame[column].map(_parse_int).astype("int64")
    for column in ("strength", "text_guidance", "clip_image_text", "clip_image_image"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["keep"] = frame["keep"].map(
        lambda v: None if _is_blank(v) else str(v) in ("True", "true", "1")).astype(object)
    for column in ("sample_id", "dataset", "class_name", "class_folder", "real_path", "image_stem", "prompt",
                   "synthetic_path"):
        frame[column] = frame[column].astype(str)
    return frame.reset_index(drop=True)


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate one manifest CSV."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "manifest file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise InputError(path, "file is empty (expected a header row)") from None
    except pd.errors.ParserError as err:
        raise InputError(path, f"not a valid CSV ({err})") from None
    return validate_manifest(frame, path)


def read_manifests(paths) -> pd.DataFrame:
    """Read several manifests (e.g. one per shard) into one validated table."""
    frames = [read_manifest(p) for p in paths]
    if not frames:
        return _typed(empty_manifest())
    merged = pd.concat(frames, ignore_index=True)
    duplicated = merged["sample_id"].duplicated()
    if duplicated.any():
        raise InputError(None, f"sample_id {merged['sample_id'][duplicated].iloc[0]!r} appears in two manifests")
    return merged


def write_manifest(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Validate and write a manifest atomically."""
    atomic_write_csv(path, validate_manifest(frame, path))
