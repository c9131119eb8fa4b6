"""The generation manifest: one CSV row per synthetic image, passed from generation to scoring to training data.

See ``docs/DESIGN.md`` for the column meanings. ``validate_manifest`` checks a table and raises
``InputError`` naming the file, the (1-based data) row and the column of the first problem.
"""

from __future__ import annotations

import functools
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from discl.bulk import gc_paused, mostly_repeated
from discl.errors import InputError, csv_error, decoding
from discl.fileio import TMP_PREFIX
from discl.guidance import strength_percent
from discl.tablecache import read_cache, write_table

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
COSINE_SLACK = 1e-6  # a stored cosine similarity may pass ±1 by float rounding
CACHE_KIND = "manifest/2"  # the validated copy's kind (discl.tablecache): change it when validation's rules change



@functools.lru_cache(maxsize=65536)  # a run has few settings (strengths × seeds) and up to ~617k images
def subfolder_name(strength: float, text_guidance: float, seed: int) -> str:
    """The reference's per-setting folder, ``Strength{int(100s)}_guidance{int(10g)}_seed{seed}``."""
    return f"Strength{strength_percent(strength)}_guidance{int(round(10 * text_guidance))}_seed{int(seed)}"


def sample_id(class_folder: str, subfolder: str, image_stem: str) -> str:
    """The reference's ``clip_score.pkl`` key, ``{class folder}={subfolder}={image stem}``."""
    return f"{class_folder}={subfolder}={image_stem}"


def synthetic_relpath(class_folder: str, strength: float, text_guidance: float, seed: int, image_stem: str,
                      suffix: str = ".jpg") -> str:
    """Output path of one synthetic image relative to the generation output root (``suffix``: the dataset's
    ``synthetic_suffix``)."""
    return f"{class_folder}/{subfolder_name(strength, text_guidance, seed)}/{image_stem}{suffix}"


# A class folder or image stem becomes a file or folder name: the longest file made from one is the temp file of a
# retry record, '.tmp-' + stem + '.json.' + 8 random characters, which must stay within the 255-byte name limit of
# common file systems.
MAX_NAME_BYTES = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a class folder or image stem (a path part of every output), or ``None``.

    The one rule for such names: the hard-sample CSV reader and manifest validation both apply it.
    """
    if "=" in name or "/" in name:  # '=' separates the parts of the reference's clip_score.pkl keys
        return "must not contain '=' or '/'"
    if "\\" in name:
        return "must not contain '\\' (a path separator)"
    if _CONTROL.search(name):
        return "must not contain control characters"
    if name in ("", ".", ".."):
        return "is not a file name"
    if name.startswith(TMP_PREFIX):
        return f"must not start with {TMP_PREFIX!r} (the prefix of unfinished files)"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        return f"is {size} bytes long, more than {MAX_NAME_BYTES} (it becomes a file name)"
    return None


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


def _python(value):
    """A NumPy scalar as the Python value a row of the frame holds (messages show ``10.5``, not ``np.float64``)."""
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------------------------------------- validation
# Whole columns at once: every check is a boolean mask over the rows, registered in the order a row is read
# (columns left to right as below, the duplicate check, then the names). The error raised is the one a row-by-row
# reading would meet first: the smallest row with any failed check, and on that row the first check registered.
# A check that needs a parsed value is masked by the parse, so a value that failed to parse only ever trips the
# check that reports it.


class _Checks:
    """Failed-row masks in reading order; ``raise_first`` raises the ``InputError`` of the first failure."""

    def __init__(self, file):
        self.file = file
        self._first: list[tuple[int, int, str, object]] = []  # (row index, order, column, message(index))

    def add(self, failed: np.ndarray, column: str, message) -> None:
        """Register a check: ``failed`` marks rows that fail; ``message(i)`` says why for row index ``i``."""
        hits = np.flatnonzero(failed)
        if hits.size:
            self._first.append((int(hits[0]), len(self._first), column, message))

    def raise_first(self) -> None:
        """Raise the error of the earliest row (first registered check among equals), if any check failed."""
        if self._first:
            index, _, column, message = min(self._first, key=lambda hit: hit[:2])
            raise InputError(self.file, message(index), index + 1, column)


def _blank_mask(values: pd.Series) -> np.ndarray:
    """Rows holding ``None``, a float NaN or ``""`` (``_is_blank``)."""
    if values.dtype.kind == "f":
        return values.isna().to_numpy()
    blank = values.to_numpy(dtype=object) == ""  # NumPy's loop: pandas' string comparison also builds a NA mask
    missing = np.flatnonzero(values.isna().to_numpy())
    if missing.size:
        gaps = values.to_numpy(dtype=object)[missing]
        # None and float NaN are blank; other missing markers (pd.NA, NaT, NumPy float32 NaN) are looked at one by one
        blank[missing] = True if set(map(type, gaps)) <= {type(None), float} else [_is_blank(v) for v in gaps]
    return blank


def _text_as(raw: np.ndarray, dtype: type) -> np.ndarray:
    """``raw.astype(dtype)`` of a column of text; each distinct text parsed once when values repeat (strengths,
    seeds, class ids: a few distinct values over ~617k rows)."""
    if not mostly_repeated(raw) or pd.api.types.infer_dtype(raw, skipna=False) != "string":
        return raw.astype(dtype)
    codes, uniques = pd.factorize(raw)
    return np.asarray(uniques, dtype=object).astype(dtype)[codes]


def _int_column(values: pd.Series, checks: _Checks, column: str, minimum: int,
                maximum: int = INT64_MAX) -> np.ndarray:
    """The column as int64 (``_parse_int`` per value, in bulk where the values allow it); failures registered."""
    raw = values.to_numpy(dtype=object)
    numbers = None
    if values.dtype.kind == "i":
        numbers = values.to_numpy(dtype=np.int64)
    elif pd.api.types.infer_dtype(values, skipna=False) in ("string", "integer", "empty"):
        try:  # int() of each value: what _parse_int does first for text and integers
            numbers = _text_as(raw, np.int64)
        except (ValueError, OverflowError, TypeError):
            numbers = None
    parsed = np.ones(len(raw), dtype=bool)
    exact: dict[int, int] = {}  # values outside int64, kept exactly for the message
    if numbers is None:
        numbers = np.zeros(len(raw), dtype=np.int64)
        for i, value in enumerate(raw):
            try:
                number = _parse_int(value)
            except (TypeError, ValueError, OverflowError):
                parsed[i] = False
                continue
            if -INT64_MAX - 1 <= number <= INT64_MAX:
                numbers[i] = number
            else:
                exact[i] = number
    checks.add(~parsed, column, lambda i: f"expected an integer, got {_python(raw[i])!r}")
    outside = parsed & ((numbers < minimum) | (numbers > maximum))
    if exact:
        outside[list(exact)] = True
    checks.add(outside, column, lambda i: f"{exact.get(i, int(numbers[i]))} outside [{minimum}, {maximum}]")
    return numbers


def _float_column(values: pd.Series, checks: _Checks, column: str, optional: bool = False) -> np.ndarray:
    """The column as float64 (``float()`` per value); unparsable and missing (NaN) values registered.

    ``optional`` columns may be blank (NaN in the result); the others report a blank as missing.
    """
    raw = values.to_numpy(dtype=object)
    blank = _blank_mask(values) if optional else np.zeros(len(raw), dtype=bool)
    numbers = np.full(len(raw), np.nan)
    parsed = np.zeros(len(raw), dtype=bool)
    todo = np.flatnonzero(~blank)
    if values.dtype.kind in "fiub":
        numbers[todo] = values.to_numpy(dtype=np.float64)[todo]
        parsed[todo] = True
    else:
        try:
            # float() of each value, except that NumPy would turn None into NaN: float(None) is an error
            if pd.api.types.infer_dtype(values.iloc[todo], skipna=False) not in _FLOAT_SAFE:
                raise TypeError("values of several kinds")
            numbers[todo] = _text_as(raw[todo], np.float64)
            parsed[todo] = True
        except (ValueError, TypeError, OverflowError):
            for i in todo:
                try:
                    numbers[i] = float(raw[i])
                    parsed[i] = True
                except (TypeError, ValueError, OverflowError):
                    pass
    checks.add(~blank & ~parsed, column, lambda i: f"expected a number, got {_python(raw[i])!r}")
    checks.add(~blank & parsed & np.isnan(numbers), column, lambda i: "value is missing")
    return numbers


_FLOAT_SAFE = ("string", "floating", "integer", "mixed-integer-float", "empty")
_TEXT_COLUMNS = ("sample_id", "dataset", "class_name", "class_folder", "real_path", "image_stem", "prompt",
                 "synthetic_path")
_KEEP_VALUES = ("True", "False", "true", "false", "1", "0")


@gc_paused
def validate_manifest(frame: pd.DataFrame, file: str | os.PathLike = "<manifest>") -> pd.DataFrame:
    """Check columns, types, ranges and internal consistency; return a copy with proper dtypes."""
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(file, f"missing column(s) {', '.join(missing)}; expected {', '.join(MANIFEST_COLUMNS)}")
    frame = frame[MANIFEST_COLUMNS].reset_index(drop=True)
    checks = _Checks(file)
    ok = np.ones(len(frame), dtype=bool)  # rows whose text columns are all present
    for column in _TEXT_COLUMNS:
        blank = _blank_mask(frame[column])
        checks.add(blank, column, lambda i: "value is missing")
        ok &= ~blank
    text = {column: frame[column].astype(str) for column in _TEXT_COLUMNS}
    names = text["dataset"]
    bad_names = {n for n in names.unique() if isinstance(n, str) and not DATASET_NAME.match(n)}
    checks.add(ok & names.isin(bad_names).to_numpy(), "dataset",
               lambda i: f"{_python(frame['dataset'].iloc[i])!r} is not a dataset name (letters, digits, '_', '.', "
                         "'-')")
    class_id = _int_column(frame["class_id"], checks, "class_id", 0)
    strength = _float_column(frame["strength"], checks, "strength")
    strength_ok = ~np.isnan(strength) & (strength > 0) & (strength <= 1)
    checks.add(~np.isnan(strength) & ~strength_ok, "strength", lambda i: f"strength {strength[i]} outside (0, 1]")
    guidance = _int_column(frame["image_guidance"], checks, "image_guidance", 0, 99)
    expected_guidance = np.where(strength_ok, 100 - np.rint(100 * np.where(strength_ok, strength, 0)), -1)
    checks.add(strength_ok & (guidance >= 0) & (guidance <= 99) & (guidance != expected_guidance), "image_guidance",
               lambda i: f"image_guidance {guidance[i]} does not match strength {strength[i]} "
                         f"(expected {int(expected_guidance[i])})")
    text_guidance = _float_column(frame["text_guidance"], checks, "text_guidance")
    checks.add(text_guidance <= 0, "text_guidance", lambda i: "text guidance must be > 0")
    seed = _int_column(frame["seed"], checks, "seed", 0)
    generator_seed = _int_column(frame["generator_seed"], checks, "generator_seed", 0)
    tries = _int_column(frame["tries"], checks, "tries", 1)
    scores = {}
    for column in ("clip_image_text", "clip_image_image"):
        score = scores[column] = _float_column(frame[column], checks, column, optional=True)
        checks.add(np.abs(score) > 1.0 + COSINE_SLACK, column,
                   lambda i, score=score: f"cosine similarity {score[i]} outside [-1, 1]")
    keep_blank = _blank_mask(frame["keep"])
    keep_text = frame["keep"].astype(str)
    checks.add(~keep_blank & ~keep_text.isin(_KEEP_VALUES).to_numpy(), "keep",
               lambda i: f"expected True/False, got {_python(frame['keep'].iloc[i])!r}")
    sample_ids = text["sample_id"]
    duplicated = (ok & sample_ids.duplicated().to_numpy())
    if duplicated.any():
        first_row = dict(zip(sample_ids[::-1], range(len(sample_ids), 0, -1)))
        checks.add(duplicated, "sample_id", lambda i: f"duplicate sample_id {sample_ids[i]!r} (first at row "
                                                      f"{first_row[sample_ids[i]]})")
    _check_names(text, strength, text_guidance, seed, ok, checks)
    checks.raise_first()
    keep = [None if blank else value in ("True", "true", "1") for blank, value in zip(keep_blank.tolist(),
                                                                                        keep_text.tolist())]
    typed = {column: text[column] for column in _TEXT_COLUMNS}
    typed.update(class_id=class_id, strength=strength, image_guidance=guidance, text_guidance=text_guidance,
                 seed=seed, generator_seed=generator_seed, tries=tries, keep=pd.Series(keep, dtype=object), **scores)
    return pd.DataFrame({column: typed[column] for column in MANIFEST_COLUMNS})


def _check_names(text: dict[str, pd.Series], strength: np.ndarray, text_guidance: np.ndarray, seed: np.ndarray,
                 ok: np.ndarray, checks: _Checks) -> None:
    """``sample_id`` and ``synthetic_path`` must follow from the class folder, settings and stem (docs/DESIGN.md).

    Few distinct class folders, stems and settings: each check and each name part is made once per distinct value
    (``pd.factorize``), and the expected names of the rows are one concatenation of a (folder, setting) prefix and
    a stem.
    """
    folder_codes, folders = pd.factorize(text["class_folder"])  # -1 marks a missing value: such a row is not ok
    stem_codes, stems = pd.factorize(text["image_stem"])
    folders, stems = folders.to_numpy(dtype=object), stems.to_numpy(dtype=object)
    for column, codes, uniques in (("class_folder", folder_codes, folders), ("image_stem", stem_codes, stems)):
        problems = [name_problem(u) for u in uniques] + [None]
        forbidden = np.array([problem is not None for problem in problems], dtype=bool)
        checks.add(ok & forbidden[codes], column,
                   lambda i, column=column, codes=codes, problems=problems:
                   f"{text[column][i]!r} {problems[codes[i]]}")
    # few distinct settings (strengths × seeds): each folder name is made once; rows that failed to parse a
    # setting get a placeholder (their parse error comes first)
    settings = pd.DataFrame({"strength": strength, "text_guidance": text_guidance, "seed": seed.astype(np.float64)})
    setting_codes = settings.groupby(list(settings.columns), sort=False, dropna=False).ngroup().to_numpy()
    subfolders = {}
    for row in np.unique(setting_codes, return_index=True)[1]:
        try:
            subfolders[setting_codes[row]] = subfolder_name(strength[row], text_guidance[row], int(float(seed[row])))
        except (ValueError, OverflowError):
            subfolders[setting_codes[row]] = ""
    pair_codes, pairs = pd.factorize(folder_codes.astype(np.int64) * (len(subfolders) + 1) + setting_codes)
    pair_folder, pair_setting = np.divmod(pairs, len(subfolders) + 1)
    id_prefix = np.array([f"{folders[f]}={subfolders[s]}=" if f >= 0 else ""
                          for f, s in zip(pair_folder.tolist(), pair_setting.tolist())] + [""], dtype=object)
    path_prefix = np.array([f"{folders[f]}/{subfolders[s]}/" if f >= 0 else ""
                            for f, s in zip(pair_folder.tolist(), pair_setting.tolist())] + [""], dtype=object)
    row_stems = np.append(stems, "")[stem_codes]
    expected_id = id_prefix[pair_codes] + row_stems
    sample_ids = text["sample_id"].to_numpy(dtype=object)
    checks.add(ok & (sample_ids != expected_id), "sample_id",
               lambda i: f"expected {expected_id[i]!r} (class_folder=subfolder=image_stem), got {sample_ids[i]!r}")
    # The suffix may differ: folders in the reference's layout also hold .JPEG / .png files.
    expected_path = path_prefix[pair_codes] + np.append(stems + ".jpg", "")[stem_codes]
    paths = text["synthetic_path"].to_numpy(dtype=object)
    differs = np.flatnonzero(ok & (paths != expected_path))
    wrong = np.zeros(len(paths), dtype=bool)
    wrong[differs] = [os.path.splitext(paths[i])[0] != path_prefix[pair_codes[i]] + row_stems[i] for i in differs]
    checks.add(wrong, "synthetic_path", lambda i: f"expected {expected_path[i]!r}, got {paths[i]!r}")


def synthetic_files(syn_root: str | os.PathLike, synthetic_paths: pd.Series) -> list[str]:
    """``os.path.join(syn_root, path)`` of every row, as one concatenation: validated synthetic paths are relative
    (``class/subfolder/stem.ext``)."""
    return (os.path.join(syn_root, "") + synthetic_paths.to_numpy(dtype=object)).tolist()


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate one manifest CSV (or take its validated copy, when one matches its bytes)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "manifest file not found")
    cached = read_cache(path, CACHE_KIND)
    if cached is not None:
        return cached
    try:
        with decoding(path):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise InputError(path, "file is empty (expected a header row)") from None
    except pd.errors.ParserError as err:
        raise csv_error(path, err) from None
    return validate_manifest(frame, path)


def read_manifests(paths, sources: bool = False) -> pd.DataFrame:
    """Read several manifests (e.g. one per shard) into one validated table; a sample listed by two is an error
    naming the second manifest and row. ``sources``: add ``source`` (the file) and ``source_row`` (its data row)."""
    paths = list(paths)
    frames = [read_manifest(p) for p in paths]
    if not frames:
        return validate_manifest(empty_manifest())
    merged = pd.concat(frames, ignore_index=True)
    files = np.repeat(np.array([str(p) for p in paths], dtype=object), [len(f) for f in frames])
    rows = np.concatenate([np.arange(1, len(f) + 1) for f in frames])
    duplicated = np.flatnonzero(merged["sample_id"].duplicated().to_numpy())
    if duplicated.size:
        second = int(duplicated[0])
        first = int(np.flatnonzero((merged["sample_id"] == merged["sample_id"].iloc[second]).to_numpy())[0])
        raise InputError(files[second], f"sample_id {merged['sample_id'].iloc[second]!r} is listed in two manifests "
                                        f"(also {files[first]} row {rows[first]})", int(rows[second]), "sample_id")
    if sources:
        merged["source"], merged["source_row"] = files, rows
    return merged


def write_manifest(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Validate and write a manifest atomically, and its validated copy for the next stage's ``read_manifest``."""
    write_table(path, validate_manifest(frame, path), CACHE_KIND)
