"""The bulk versions of the per-row bookkeeping give what the per-row code gave: the manifest validator (its first
error, its typed table), the CSV writer (pandas' bytes), the folder-listing existence scan (``os.path.isfile``) and
the batched generator seeds (``sample_seed``)."""

from __future__ import annotations

import io
import math
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from discl.csvwrite import write_csv
from discl.errors import InputError
from discl.data.training_tables import _int_column
from discl.filescan import existing, join_names, resolved_paths
from discl.guidance import level_from_strength
from discl.manifest import (DATASET_NAME, INT64_MAX, MANIFEST_COLUMNS, sample_id, subfolder_name, synthetic_relpath,
                            validate_manifest)
from discl.seeding import sample_seed, sample_seeds


# --- the manifest: a row-by-row reading is the specification ------------------------------------------------------

def _is_blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and value == "")


def _parse_int(value) -> int:
    if isinstance(value, (int, np.integer)):
        return int(value)
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        number = float(text)
        if not number.is_integer():
            raise ValueError(text) from None
        return int(number)


def _as_int(value, row, column, minimum, maximum=INT64_MAX):
    try:
        number = _parse_int(value)
    except (TypeError, ValueError, OverflowError):
        raise AssertionError((row, column, f"expected an integer, got {value!r}")) from None
    if number < minimum or number > maximum:
        raise AssertionError((row, column, f"{number} outside [{minimum}, {maximum}]"))


def _as_float(value, row, column) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AssertionError((row, column, f"expected a number, got {value!r}")) from None
    if math.isnan(number):
        raise AssertionError((row, column, "value is missing"))
    return number


def first_error_row_by_row(frame: pd.DataFrame):
    """(row, column, message) of the first problem, reading row by row (the validator's earlier implementation)."""
    seen: dict[str, int] = {}
    try:
        for row, record in enumerate(frame[MANIFEST_COLUMNS].to_dict("records"), start=1):
            for column in ("sample_id", "dataset", "class_name", "class_folder", "real_path", "image_stem", "prompt",
                           "synthetic_path"):
                if _is_blank(record[column]):
                    raise AssertionError((row, column, "value is missing"))
            if not DATASET_NAME.match(str(record["dataset"])):
                raise AssertionError((row, "dataset", f"{record['dataset']!r} is not a dataset name (letters, "
                                                      "digits, '_', '.', '-')"))
            _as_int(record["class_id"], row, "class_id", 0)
            strength = _as_float(record["strength"], row, "strength")
            if not 0 < strength <= 1:
                raise AssertionError((row, "strength", f"strength {strength} outside (0, 1]"))
            _as_int(record["image_guidance"], row, "image_guidance", 0, 99)
            guidance = _parse_int(record["image_guidance"])
            if guidance != level_from_strength(strength):
                raise AssertionError((row, "image_guidance", f"image_guidance {guidance} does not match strength "
                                                             f"{strength} (expected {level_from_strength(strength)})"))
            if _as_float(record["text_guidance"], row, "text_guidance") <= 0:
                raise AssertionError((row, "text_guidance", "text guidance must be > 0"))
            _as_int(record["seed"], row, "seed", 0)
            _as_int(record["generator_seed"], row, "generator_seed", 0)
            _as_int(record["tries"], row, "tries", 1)
            for column in ("clip_image_text", "clip_image_image"):
                if not _is_blank(record[column]):
                    score = _as_float(record[column], row, column)
                    if not -1.0 - 1e-6 <= score <= 1.0 + 1e-6:
                        raise AssertionError((row, column, f"cosine similarity {score} outside [-1, 1]"))
            if not _is_blank(record["keep"]) and str(record["keep"]) not in ("True", "False", "true", "false", "1",
                                                                            "0"):
                raise AssertionError((row, "keep", f"expected True/False, got {record['keep']!r}"))
            if record["sample_id"] in seen:
                raise AssertionError((row, "sample_id", f"duplicate sample_id {record['sample_id']!r} (first at row "
                                                        f"{seen[record['sample_id']]})"))
            seen[record["sample_id"]] = row
            for column in ("class_folder", "image_stem"):
                if "=" in record[column] or "/" in record[column]:
                    raise AssertionError((row, column, f"{record[column]!r} must not contain '=' or '/'"))
            strength, text_guidance = float(record["strength"]), float(record["text_guidance"])
            seed = int(float(record["seed"]))
            expected = sample_id(record["class_folder"], subfolder_name(strength, text_guidance, seed),
                                 record["image_stem"])
            if record["sample_id"] != expected:
                raise AssertionError((row, "sample_id", f"expected {expected!r} (class_folder=subfolder=image_stem), "
                                                        f"got {record['sample_id']!r}"))
            path = synthetic_relpath(record["class_folder"], strength, text_guidance, seed, record["image_stem"])
            if os.path.splitext(record["synthetic_path"])[0] != os.path.splitext(path)[0]:
                raise AssertionError((row, "synthetic_path", f"expected {path!r}, got {record['synthetic_path']!r}"))
    except AssertionError as problem:
        return problem.args[0]
    return None


def _row(stem: str, strength: float, seed: int = 10) -> dict:
    folder = "Odocoileus_virginianus"
    return {"sample_id": sample_id(folder, subfolder_name(strength, 7.5, seed), stem), "dataset": "iwildcam",
            "class_id": 3, "class_name": "Odocoileus virginianus", "class_folder": folder,
            "real_path": f"train/{stem}.jpg", "image_stem": stem, "prompt": "a photo of a white-tailed deer",
            "strength": strength, "image_guidance": level_from_strength(strength), "text_guidance": 7.5,
            "seed": seed, "generator_seed": 6628621206239858586,
            "synthetic_path": synthetic_relpath(folder, strength, 7.5, seed, stem), "tries": 1,
            "clip_image_text": "", "clip_image_image": "", "keep": ""}


BAD_VALUES = {
    "sample_id": ["", None, "x=y=z", float("nan")], "dataset": ["", "image net", "a\n", 3, None],
    "class_id": [-1, "x", "1.5", 1.5, "1e3", "99999999999999999999", None, "", " 4 ", True, float("nan")],
    "class_name": ["", None], "class_folder": ["a=b", "a/b", "", "Other"], "real_path": ["", None],
    "image_stem": ["a/b", "", "x.y", "img9"], "prompt": ["", None, "nan"],
    "strength": [0, 0.0, 1.5, "high", "", None, "nan", float("nan"), " 0.5", "5e-1", "1_0", 0.3, "0.29"],
    "image_guidance": [49, 100, -1, "x", "50.0", 50.5, "", None, "1e1"],
    "text_guidance": [0, -1, "x", "", None, "nan", 10, "1e1"],
    "seed": ["ten", 10.5, -3, "1e1", " 10.0", None, "", 20, "99999999999999999999999", "9007199254740993"],
    "generator_seed": [-1, "9223372036854775808", "9223372036854775807", 1.0, "x", None],
    "synthetic_path": ["a/b.jpg", "", None, "Odocoileus_virginianus/Strength50_guidance75_seed10/img0.png"],
    "tries": [0, "x", 2, 1.0, "2.5", None],
    "clip_image_text": [1.5, -1.01, "x", "nan", None, "", 0.3, "1.0000005", float("nan"), True],
    "clip_image_image": [1.5, "x", "", None, -0.2],
    "keep": ["maybe", "True", "false", "1", "", None, True, 1, float("nan"), "yes"],
}


def test_validation_reports_what_a_row_by_row_reading_reports():
    rng = random.Random(0)
    outcomes = {"valid": 0, "invalid": 0}
    for _ in range(600):
        rows = [_row(f"img{i}", rng.choice([0.1, 0.29, 0.5, 1.0]), rng.choice([10, 20]))
                for i in range(6)]
        frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
        if rng.random() < 0.7:
            frame = frame.astype(object)
        for _ in range(rng.choice([0, 0, 0, 1, 1, 2])):
            column = rng.choice(list(BAD_VALUES))
            frame = frame.astype(object)
            frame.loc[rng.randrange(6), column] = rng.choice(BAD_VALUES[column])
        if rng.random() < 0.05:
            frame.loc[rng.randrange(6), "sample_id"] = frame.loc[0, "sample_id"]
        if rng.random() < 0.4:  # as read back from the CSV file
            text = io.StringIO()
            frame.to_csv(text, index=False)
            frame = pd.read_csv(io.StringIO(text.getvalue()), dtype=str, keep_default_na=False)
        expected = first_error_row_by_row(frame)
        if expected is None:
            typed = validate_manifest(frame, "m.csv")
            assert list(typed.columns) == MANIFEST_COLUMNS and typed["seed"].dtype == np.int64
            assert all(v is None or type(v) is bool for v in typed["keep"])
            outcomes["valid"] += 1
            continue
        with pytest.raises(InputError) as caught:
            validate_manifest(frame, "m.csv")
        assert (caught.value.row, caught.value.column, caught.value.message) == expected
        outcomes["invalid"] += 1
    assert min(outcomes.values()) > 150  # both paths well exercised


# --- the CSV writer: pandas' bytes -------------------------------------------------------------------------------

TEXTS = ["a", "a,b", 'say "hi"', "line\nbreak", "", " lead", "tab\there", "é ü", "None", "nan", "1.0", "x\r"]


def _column(kind: str, n: int, rng: random.Random, np_rng: np.random.Generator, texts=TEXTS) -> pd.Series:
    if kind == "int":
        return pd.Series(np_rng.integers(-2 ** 62, 2 ** 62, n))
    if kind == "float":
        values = np_rng.normal(size=n) * 10.0 ** np_rng.integers(-8, 20, n)
        values[np_rng.random(n) < 0.2] = np.nan
        return pd.Series(values)
    if kind == "few-floats":  # repeated values: each distinct value formatted once
        return pd.Series(np_rng.choice([0.1, -0.0, 0.0, np.nan, 1e20, 2.5e-7], n))
    if kind == "few-ints":
        return pd.Series(np_rng.choice([0, -3, 2 ** 62, 7], n))
    if kind == "float32":
        values = np_rng.random(n).astype(np.float32)
        values[np_rng.random(n) < 0.2] = np.nan
        return pd.Series(values)
    if kind == "bool":
        return pd.Series(np_rng.random(n) < 0.5)
    if kind == "object-bool":  # the scored manifest's keep column: Python and NumPy bools in an object column
        return pd.Series([rng.choice([True, False, np.True_, np.False_]) for _ in range(n)], dtype=object)
    if kind == "object":
        return pd.Series([rng.choice(texts + [None, float("nan"), True, 0.1, 3, np.float32(0.3)]) for _ in range(n)],
                         dtype=object)
    return pd.Series([rng.choice(texts + [None]) for _ in range(n)], dtype="str")


def test_csv_writer_writes_pandas_bytes(tmp_path):
    rng, np_rng = random.Random(1), np.random.default_rng(1)
    kinds = ("int", "float", "few-floats", "few-ints", "float32", "bool", "object-bool", "object", "str")
    for trial in range(150):
        n = rng.choice([0, 1, 7, 40])
        frame = pd.DataFrame({(f"c{i}" if rng.random() < 0.9 else f'odd, "{i}"'): _column(rng.choice(kinds), n, rng,
                                                                                        np_rng)
                              for i in range(rng.randint(1, 6))})
        frame["dates"] = pd.Timestamp("2024-01-01") if trial % 10 == 0 else frame.iloc[:, 0]  # pandas' own path
        sep = rng.choice([",", "\t"])
        write_csv(tmp_path / "t.csv", frame, sep=sep)
        assert (tmp_path / "t.csv").read_bytes() == frame.to_csv(sep=sep, index=False).encode("utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # atomic: no temp file left


def test_csv_writer_quotes_like_the_csv_module_without_it(tmp_path, monkeypatch):
    """Without line breaks (every manifest) the cells are quoted and joined here: csv.writer is never called."""
    import discl.csvwrite

    def no_csv_writer(*args, **kwargs):
        raise AssertionError("the csv module was used")

    monkeypatch.setattr(discl.csvwrite, "ROWS_PER_BLOCK", 3)  # several blocks
    rng, np_rng = random.Random(2), np.random.default_rng(2)
    texts = [t for t in TEXTS if "\n" not in t and "\r" not in t]
    kinds = ("int", "float", "few-floats", "few-ints", "float32", "bool", "object-bool", "object", "str")
    for trial in range(150):
        n = rng.choice([0, 1, 7, 40])
        frame = pd.DataFrame({(f"c{i}" if rng.random() < 0.8 else f'odd, "{i}"'):
                              _column(rng.choice(kinds), n, rng, np_rng, texts) for i in range(rng.randint(2, 6))})
        sep = rng.choice([",", "\t"])
        with monkeypatch.context() as patched:  # pandas itself writes with the csv module
            patched.setattr(discl.csvwrite.csv, "writer", no_csv_writer)
            write_csv(tmp_path / "t.csv", frame, sep=sep)
        assert (tmp_path / "t.csv").read_bytes() == frame.to_csv(sep=sep, index=False).encode("utf-8")


# --- the existence scan and the seeds ----------------------------------------------------------------------------

def test_existence_scan_answers_as_isfile(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.jpg").touch()
    (tmp_path / "top.jpg").touch()
    (tmp_path / "a" / "link.jpg").symlink_to(tmp_path / "a" / "b" / "x.jpg")
    (tmp_path / "a" / "folder.jpg").mkdir()
    paths = ["a/b/x.jpg", "a/b/y.jpg", "top.jpg", "a/link.jpg", "a/folder.jpg", "missing/x.jpg", "a/./b/x.jpg",
             "a/b/../b/x.jpg", str(tmp_path / "a/b/x.jpg"), "a/b/", "a//b/x.jpg", "", "A/b/x.jpg", "top.jpg/x.jpg",
             "/", "./top.jpg"]
    assert existing(paths, tmp_path).tolist() == [os.path.isfile(os.path.join(tmp_path, p)) for p in paths]
    assert existing([str(tmp_path / p) for p in paths[:4]]).tolist() == [True, False, True, True]


def test_batched_generator_seeds_equal_the_single_ones():
    rng = random.Random(2)
    ids = [f"class/img{rng.random()}" for _ in range(300)]
    prompts = [rng.choice(["a photo of cheetah in the wild", "a 8k real photo: é ü", ""]) for _ in ids]
    strengths = [rng.choice([0.1, 0.29, 1.0, 0.123456789]) for _ in ids]
    seeds = [rng.choice([10, 42, 0, 2 ** 40]) for _ in ids]
    assert sample_seeds(ids, prompts, strengths, seeds) == [sample_seed(*a) for a in zip(ids, prompts, strengths,
                                                                                        seeds)]
    assert re.fullmatch(r"\d+", str(sample_seeds(ids[:1], prompts[:1], strengths[:1], seeds[:1])[0]))


def test_seeds_sharing_an_image_prompt_and_strength_equal_the_single_ones():
    rng = random.Random(3)
    keys = [(f"class/img{i}", rng.choice(["p", "q"]), rng.choice([0.1, 0.5])) for i in range(20)]
    rows = [(*rng.choice(keys), rng.choice([10, 20, 30, 2 ** 62])) for _ in range(400)]  # prefixes repeat, mixed
    assert sample_seeds(*zip(*rows)) == [sample_seed(*row) for row in rows]


# --- paths, integer cells and the WILDS train split in bulk ------------------------------------------------------

def test_joined_names_are_path_joins():
    for names in (["a.jpg", "b c.jpg", "é.JPEG", "..x", ".hidden"], ["a.jpg", "sub/b.jpg"], ["a.jpg", "."],
                  ["a.jpg", ""], ["a.jpg", ".."], []):
        for folder in ("/data/train", "/data/train/", "rel", Path("/x")):
            assert join_names(folder, names) == [str(Path(folder) / name) for name in names]


def test_integer_cells_parse_as_pandas_to_numeric():
    cells = [["1", "-2", "007", "9007199254740993"], ["1-2"], ["-"], ["", "1"], ["--1"], ["99999999999999999999"],
             ["1_0"], [" 5"], ["١"], ["1.0"], ["-0"], ["1e3"], ["+4"], ["3", "x"], ["inf"], ["-1e19"]]
    for column in cells:
        frame = pd.DataFrame({"c": pd.Series(column, dtype="str")})
        try:
            got = _int_column(frame, "c", "t.tsv")
        except InputError as error:
            got = (error.row, error.message)
        numbers = pd.to_numeric(frame["c"], errors="coerce").to_numpy(dtype="float64")
        bad = np.flatnonzero(~np.isfinite(numbers) | (numbers != np.round(numbers)))
        huge = np.flatnonzero(np.abs(numbers) >= 2.0 ** 63)
        if bad.size:
            expected = (int(bad[0]) + 1, f"expected an integer, got {column[bad[0]]!r}")
        elif huge.size:
            expected = (int(huge[0]) + 1, f"{int(numbers[huge[0]])} outside [{-2 ** 63}, {2 ** 63 - 1}]")
        else:
            expected = numbers.astype("int64")
        assert np.array_equal(got, expected) if not (bad.size or huge.size) else got == expected, column


def test_wilds_splits_read_from_the_metadata_equal_the_wilds_loader(mini_iwildcam, tmp_path):
    from discl.data import iwildcam as wilds_iwildcam
    from discl.datasets import get_dataset

    loaded = wilds_iwildcam.load_dataset(mini_iwildcam)
    for split, code in loaded.split_dict.items():
        rows, names, labels = wilds_iwildcam.read_split(mini_iwildcam, split)
        assert rows.tolist() == np.flatnonzero(loaded.split_array == code).tolist()
        assert names == [str(n) for n in loaded._input_array[rows]]
        assert labels.tolist() == loaded.y_array[rows].tolist()
    images = get_dataset("iwildcam", mini_iwildcam).training_images()
    train = np.flatnonzero(loaded.split_array == loaded.split_dict["train"])
    folder = (Path(loaded.data_dir) / "train").resolve()
    assert images.paths == [str(folder / str(n)) for n in loaded._input_array[train]]
    assert images.keys == [os.path.relpath(p, mini_iwildcam.resolve()) for p in images.paths]
    # a split WILDS does not know is named with its row
    root = tmp_path / "wilds"
    shutil.copytree(mini_iwildcam, root)
    metadata = pd.read_csv(root / "iwildcam_v2.0" / "metadata.csv")
    metadata.loc[3, "split"] = "training"
    metadata.to_csv(root / "iwildcam_v2.0" / "metadata.csv", index=False)
    with pytest.raises(InputError, match="unknown split 'training'") as caught:
        wilds_iwildcam.read_split(root, "train")
    assert (caught.value.row, caught.value.column) == (4, "split")


def test_resolved_paths_are_path_resolve(tmp_path, monkeypatch):
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "real" / "sub" / "a.jpg").touch()
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "link.jpg").symlink_to(tmp_path / "real" / "sub" / "a.jpg")
    monkeypatch.chdir(tmp_path)
    paths = [str(tmp_path / "linked" / "sub" / "a.jpg"), "linked/sub/a.jpg", "real/link.jpg", "real/sub/../link.jpg",
             "real/sub/missing.jpg", "a.jpg", "real/sub/.", "real/sub/..", "real/sub/", "", "linked//sub/a.jpg"]
    assert resolved_paths(paths) == [str(Path(p).resolve()) for p in paths]


def test_table_paths_relative_to_the_table_folder_absolute_as_written(tmp_path):
    from discl.data.training_tables import TABLE_COLUMNS, read_training_table

    rows = [["a photo of x.", path, 1, 50, 50, 10, 0] for path in ("rel/a.jpg", "/abs/b.jpg", "../up/c.jpg",
                                                                    "é/d.jpg", "/x/../e.jpg")]
    pd.DataFrame(rows, columns=TABLE_COLUMNS).to_csv(tmp_path / "train.csv", sep="\t", index=False)
    got = read_training_table(tmp_path / "train.csv")["filepath"].tolist()
    base = tmp_path.resolve()
    assert got == [p if os.path.isabs(p) else str(base / p) for p in (r[1] for r in rows)]


def _validation_by_groups(frame, size, random_state, levels):
    """The curriculum-validation draw as it was first written (a frame per (image, level) group): the spec."""
    from discl.training_data import validation_candidates

    frame = frame.reset_index(drop=True)
    candidates = validation_candidates(frame, levels)
    rng = np.random.RandomState(random_state)
    chosen = [candidates[i] for i in sorted(rng.choice(len(candidates), min(size, len(candidates)), replace=False))]
    rows = frame[frame["key"].isin(chosen) & frame["guidance"].isin(levels)]
    picks = [group.index[rng.randint(len(group))] for _, group in rows.groupby(["key", "guidance"], sort=True)]
    return frame.loc[sorted(picks)].reset_index(drop=True)


def test_validation_draw_equals_the_per_group_draw():
    from discl.training_data import sample_validation

    rng = np.random.default_rng(4)
    for trial in range(30):
        n = int(rng.integers(120, 400))  # most images then have every level
        keys = [f"train/{'é' if k % 3 == 0 else ''}img{k:03d}.jpg" for k in rng.integers(0, 40, n)]
        frame = pd.DataFrame({"key": keys, "guidance": rng.choice([50, 60, 100], n), "seed": rng.integers(0, 9, n),
                              "filepath": [f"f{i}" for i in range(n)]})
        frame.index = rng.permutation(n) + 1000  # the draw must not depend on the incoming index
        levels = [50, 60] if trial % 2 else [50, 60, 100]
        size = int(rng.integers(0, 12))
        pd.testing.assert_frame_equal(sample_validation(frame, size, trial, levels),
                                      _validation_by_groups(frame, size, trial, levels))
