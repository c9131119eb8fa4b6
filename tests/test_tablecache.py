"""Validated binary copies of the stage tables (discl.tablecache): the same table as parsing and validating the CSV,
and never taken for a CSV whose bytes changed."""

from __future__ import annotations

import logging
import os
import random
import shutil

import numpy as np
import pandas as pd
import pytest

from discl.csvwrite import write_csv
from discl.data.training_tables import CACHE_KIND as TABLE_KIND
from discl.data.training_tables import read_training_table, validate_training_table, write_training_table
from discl.errors import InputError
from discl.guidance import level_from_strength
from discl.manifest import CACHE_KIND as MANIFEST_KIND
from discl.manifest import (MANIFEST_COLUMNS, read_manifest, sample_id, subfolder_name, synthetic_relpath,
                            validate_manifest, write_manifest)
import discl.tablecache
from discl.tablecache import cache_path, read_cache, write_cache

TEXTS = ["a photo of a deer", "deer, \"white-tailed\"", "ünïcødé ☃ text", " leading and trailing ", "NA", "nan",
         "None", "line\nbreak", "tab\there", "semi;colon", "'quoted'", "0", "1e5", "True"]


def random_manifest(rng: random.Random, rows: int) -> pd.DataFrame:
    """A valid manifest whose text and numbers reach the CSV's edge cases."""
    records = []
    for i in range(rows):
        folder = rng.choice(["Odocoileus_virginianus", "Tayassu pecari", "Ünïcode_folder", "a,b"])
        stem = f"img{i}" + rng.choice(["", "_x", " y", "-ä"])
        strength = rng.choice([0.1, 0.29, 0.5, 0.9, 1.0])
        guidance = rng.choice([7.5, 10.0, 0.5])
        seed = rng.choice([0, 10, 42, 2 ** 40])
        scored = rng.random() < 0.6
        score = float(np.float32(rng.uniform(-1, 1))) if scored else np.nan
        records.append({
            "sample_id": sample_id(folder, subfolder_name(strength, guidance, seed), stem),
            "dataset": rng.choice(["iwildcam", "my-data.v2"]), "class_id": rng.randrange(0, 200),
            "class_name": rng.choice(TEXTS), "class_folder": folder, "real_path": f"train/{stem}.jpg",
            "image_stem": stem, "prompt": rng.choice(TEXTS), "strength": strength,
            "image_guidance": level_from_strength(strength), "text_guidance": guidance, "seed": seed,
            "generator_seed": rng.randrange(0, 2 ** 63), "synthetic_path": synthetic_relpath(folder, strength, guidance,
                                                                                             seed, stem),
            "tries": rng.randrange(1, 4), "clip_image_text": score if rng.random() < 0.9 else -0.0,
            "clip_image_image": score, "keep": rng.choice([True, False]) if scored else None,
        })
    return pd.DataFrame(records, columns=MANIFEST_COLUMNS)


def parsed(path) -> pd.DataFrame:
    """What reading the CSV without a copy gives."""
    return validate_manifest(pd.read_csv(path, dtype=str, keep_default_na=False), path)


@pytest.mark.parametrize("seed", range(8))
def test_copy_gives_what_parsing_the_csv_gives(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / "manifest.csv"
    write_manifest(random_manifest(rng, rng.choice([0, 1, 7, 60])), path)
    cached = read_cache(path, MANIFEST_KIND)
    assert cached is not None
    pd.testing.assert_frame_equal(cached, parsed(path), check_exact=True)
    pd.testing.assert_frame_equal(read_manifest(path), parsed(path), check_exact=True)
    np.testing.assert_array_equal(np.signbit(cached["clip_image_text"]), np.signbit(parsed(path)["clip_image_text"]))


def test_edited_csv_of_the_same_size_is_parsed_and_validated(tmp_path):
    path = tmp_path / "manifest.csv"
    write_manifest(random_manifest(random.Random(1), 5).assign(prompt="plain", class_name="plain"), path)
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    cells = lines[2].split(",")
    assert MANIFEST_COLUMNS[-4] == "tries" and cells[-4] in ("1", "2", "3")
    cells[-4] = "x"  # same size: only the bytes tell
    path.write_text("\n".join(lines[:2] + [",".join(cells)] + lines[3:]), encoding="utf-8")
    assert os.path.getsize(path) == len(text.encode("utf-8"))
    assert read_cache(path, MANIFEST_KIND) is None
    with pytest.raises(InputError, match=r"row 2.*tries"):
        read_manifest(path)


def test_a_valid_edit_is_read_from_the_csv(tmp_path):
    path = tmp_path / "manifest.csv"
    frame = random_manifest(random.Random(2), 4)
    write_manifest(frame, path)
    frame.loc[1, "prompt"] = "an edited prompt"
    write_csv(path, validate_manifest(frame))  # the CSV rewritten alone: a kill before the copy, or another tool
    assert read_manifest(path)["prompt"][1] == "an edited prompt"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "directory"])
def test_unreadable_copy_falls_back_to_the_csv(tmp_path, damage, caplog):
    path = tmp_path / "manifest.csv"
    write_manifest(random_manifest(random.Random(3), 6), path)
    copy = cache_path(path, MANIFEST_KIND)
    if damage == "garbage":
        copy.write_bytes(b"PK\x03\x04 not a zip file")
    elif damage == "truncated":
        copy.write_bytes(copy.read_bytes()[:200])
    elif damage == "empty":
        copy.write_bytes(b"")
    else:
        copy.unlink()
        copy.mkdir()
    with caplog.at_level(logging.WARNING):
        pd.testing.assert_frame_equal(read_manifest(path), parsed(path), check_exact=True)
    assert damage == "directory" or "ignoring unreadable table copy" in caplog.text


def test_copy_of_another_kind_or_format_is_ignored(tmp_path):
    path = tmp_path / "manifest.csv"
    frame = validate_manifest(random_manifest(random.Random(4), 3))
    write_csv(path, frame)
    assert write_cache(path, frame, "manifest/0")  # older rules
    assert read_cache(path, MANIFEST_KIND) is None and read_cache(path, "manifest/0") is not None
    assert read_cache(path, TABLE_KIND) is None


def test_copy_is_bound_to_its_own_csv(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    write_manifest(random_manifest(random.Random(5), 3), first)
    write_manifest(random_manifest(random.Random(6), 3), second)
    shutil.copy(cache_path(first, MANIFEST_KIND), cache_path(second, MANIFEST_KIND))
    assert read_cache(second, MANIFEST_KIND) is None
    pd.testing.assert_frame_equal(read_manifest(second), parsed(second), check_exact=True)


def test_table_the_copy_cannot_hold_gets_none(tmp_path):
    path = tmp_path / "t.csv"
    frame = pd.DataFrame({"a": ["x\x00y", "z"], "b": [1, 2]})
    write_csv(path, frame)
    cache_path(path, "any/1").write_bytes(b"stale")
    assert not write_cache(path, frame, "any/1") and not cache_path(path, "any/1").exists()
    mixed = pd.DataFrame({"a": ["x", 3]})
    assert not write_cache(path, mixed, "any/1")
    assert not write_cache(path, pd.DataFrame([[1, 2]], columns=["a", "a"]), "any/1")
    assert not write_cache(path, pd.DataFrame({"a": ["lone \udc80 surrogate"]}), "any/1")
    assert not write_cache(path, pd.DataFrame({"a": pd.Series([[1], [2]], dtype=object)}), "any/1")  # unhashable


def test_invalid_manifest_leaves_no_copy(tmp_path):
    path = tmp_path / "manifest.csv"
    frame = random_manifest(random.Random(7), 3)
    frame.loc[2, "tries"] = 0
    with pytest.raises(InputError):
        write_manifest(frame, path)
    assert not path.exists() and not cache_path(path, MANIFEST_KIND).exists()


def test_training_table_copy_keeps_relative_paths_relative(tmp_path):
    rng = np.random.default_rng(0)
    guidance = rng.choice([100, 90, 50, 10], 40)
    frame = pd.DataFrame({"title": [f"a photo of {TEXTS[i % len(TEXTS)]}" for i in range(40)],
                          "filepath": [f"images/{i}.jpg" for i in range(40)], "label": rng.integers(0, 5, 40),
                          "strength": 100 - guidance, "guidance": guidance, "seed": rng.integers(0, 100, 40),
                          "img_id": np.arange(-5, 35)})
    write_training_table(frame, tmp_path / "build" / "train.csv")
    assert read_cache(tmp_path / "build" / "train.csv", TABLE_KIND) is not None
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "build", moved)
    table = read_training_table(moved / "train.csv")
    text = validate_training_table(pd.read_csv(moved / "train.csv", sep="\t", dtype=str, keep_default_na=False))
    assert table["filepath"].tolist() == [str(moved.resolve() / p) for p in text["filepath"]]
    pd.testing.assert_frame_equal(table.drop(columns="filepath"), text.drop(columns="filepath"), check_exact=True)


def test_outputs_folder_holds_only_the_csv(tmp_path):
    write_manifest(random_manifest(random.Random(8), 3), tmp_path / "manifest.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.csv"]
    assert read_cache(tmp_path / "manifest.csv", MANIFEST_KIND) is not None


@pytest.mark.parametrize("setting", ["off", "unwritable"])
def test_without_a_usable_cache_folder_tables_are_parsed(tmp_path, monkeypatch, setting):
    if setting == "off":
        monkeypatch.setenv("DISCL_TABLE_CACHE", "off")
    else:
        (tmp_path / "file").write_text("a file, not a folder")
        monkeypatch.setenv("DISCL_TABLE_CACHE", str(tmp_path / "file" / "cache"))
    path = tmp_path / "manifest.csv"
    write_manifest(random_manifest(random.Random(9), 3), path)
    assert read_cache(path, MANIFEST_KIND) is None
    pd.testing.assert_frame_equal(read_manifest(path), parsed(path), check_exact=True)


def test_least_recently_used_copies_are_pruned(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCL_TABLE_CACHE", str(tmp_path / "cache"))
    paths = [tmp_path / f"m{i}.csv" for i in range(3)]
    for i, path in enumerate(paths):
        write_manifest(random_manifest(random.Random(0), 20), path)  # copies of one size
        os.utime(cache_path(path, MANIFEST_KIND), ns=(10 ** 18 + i, 10 ** 18 + i))
    assert read_cache(paths[0], MANIFEST_KIND) is not None  # used now: the most recent
    size = cache_path(paths[0], MANIFEST_KIND).stat().st_size
    monkeypatch.setattr(discl.tablecache, "MAX_BYTES", 3 * size)
    write_manifest(random_manifest(random.Random(0), 20), tmp_path / "m3.csv")
    kept = [cache_path(p, MANIFEST_KIND).exists() for p in paths + [tmp_path / "m3.csv"]]
    assert kept == [True, False, True, True]


def test_cache_folder_follows_xdg_and_survives_a_missing_home(tmp_path, monkeypatch):
    from pathlib import Path

    from discl.tablecache import cache_folder

    monkeypatch.delenv("DISCL_TABLE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder() == tmp_path / "xdg" / "discl" / "tables"
    write_manifest(random_manifest(random.Random(10), 3), tmp_path / "m.csv")
    assert list((tmp_path / "xdg" / "discl" / "tables").iterdir())

    def no_home(cls):
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setattr(Path, "home", classmethod(no_home))
    assert cache_folder() is None
    write_manifest(random_manifest(random.Random(11), 3), tmp_path / "n.csv")
    pd.testing.assert_frame_equal(read_manifest(tmp_path / "n.csv"), parsed(tmp_path / "n.csv"), check_exact=True)
