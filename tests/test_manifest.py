"""The generation manifest: column contract, helpers, and a validator whose errors name file, row and column."""

from __future__ import annotations

import pandas as pd
import pytest

from discl.cli import run_cli
from discl.errors import InputError
from discl.fileio import atomic_write_text
from discl.guidance import level_from_strength
from discl.manifest import (MANIFEST_COLUMNS, read_manifest, read_manifests, sample_id,
                            subfolder_name, synthetic_relpath, write_manifest)


def _row(stem: str, strength: float, **overrides) -> dict:
    folder = "Odocoileus_virginianus"
    row = {
        "sample_id": sample_id(folder, subfolder_name(strength, 7.5, 10), stem),
        "dataset": "iwildcam", "class_id": 3, "class_name": "Odocoileus virginianus", "class_folder": folder,
        "real_path": f"train/{stem}.jpg", "image_stem": stem, "prompt": "a photo of a white-tailed deer",
        "strength": strength, "image_guidance": level_from_strength(strength), "text_guidance": 7.5,
        "seed": 10, "generator_seed": 6628621206239858586, "synthetic_path": synthetic_relpath(folder, strength, 7.5, 10, stem),
        "tries": 1, "clip_image_text": "", "clip_image_image": "", "keep": "",
    }
    row.update(overrides)
    return row


def _frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=MANIFEST_COLUMNS)


def _valid() -> pd.DataFrame:
    return _frame(_row("img1", 0.5), _row("img2", 0.29, clip_image_text=0.31, clip_image_image=-0.2, keep="True"))


def test_pure_helpers_by_hand():
    assert [level_from_strength(s) for s in (0.1, 0.29, 0.5, 0.9, 1.0)] == [90, 71, 50, 10, 0]
    assert subfolder_name(0.29, 7.5, 10) == "Strength29_guidance75_seed10"  # int(100*0.29) would give 28
    assert sample_id("Tayassu_pecari", "Strength10_guidance75_seed20", "abc") == \
        "Tayassu_pecari=Strength10_guidance75_seed20=abc"
    assert synthetic_relpath("Tayassu_pecari", 1.0, 10.0, 30, "abc") == "Tayassu_pecari/Strength100_guidance100_seed30/abc.jpg"


def test_round_trip_keeps_values_and_types(tmp_path):
    path = tmp_path / "manifests" / "part000-of001.csv"
    write_manifest(_valid(), path)
    back = read_manifest(path)
    assert list(back.columns) == MANIFEST_COLUMNS and len(back) == 2
    assert back["image_guidance"].tolist() == [50, 71] and back["strength"].tolist() == [0.5, 0.29]
    assert back["generator_seed"].iloc[0] == 6628621206239858586  # 63-bit seeds survive the CSV
    assert pd.isna(back["clip_image_text"].iloc[0]) and back["clip_image_image"].iloc[1] == -0.2
    assert back["keep"].tolist() == [None, True]


def test_integral_text_is_read_exactly(tmp_path):
    path = tmp_path / "ints.csv"
    frame = _edit(_edit(_valid(), 1, "seed", "1e1"), 2, "seed", " 10.0")
    _edit(frame, 2, "generator_seed", "9223372036854775807").to_csv(path, index=False)
    back = read_manifest(path)
    assert back["seed"].tolist() == [10, 10] and back["generator_seed"].iloc[1] == 2 ** 63 - 1


def test_header_only_file_is_an_empty_manifest(tmp_path):
    path = tmp_path / "empty.csv"
    atomic_write_text(path, ",".join(MANIFEST_COLUMNS) + "\n")
    assert read_manifest(path).empty


def _edit(frame: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    frame = frame.astype(object)
    frame.loc[row - 1, column] = value
    return frame


BAD_CELLS = [  # (data row, column, value, words the message must contain)
    (2, "strength", 0.0, "outside (0, 1]"),
    (1, "strength", 1.5, "outside (0, 1]"),
    (2, "strength", "high", "expected a number"),
    (1, "image_guidance", 49, "does not match strength"),
    (2, "seed", "ten", "expected an integer"),
    (1, "seed", 10.5, "expected an integer"),
    (2, "generator_seed", -1, "outside"),
    (1, "generator_seed", "9223372036854775808", "outside [0, 9223372036854775807]"),  # beyond int64
    (2, "clip_image_text", 1.5, "outside [-1, 1]"),
    (1, "clip_image_image", -1.01, "outside [-1, 1]"),
    (1, "dataset", "image net", "not a dataset name"),
    (2, "class_id", -3, "outside"),
    (2, "text_guidance", 0, "must be > 0"),
    (1, "tries", 0, "outside"),
    (2, "keep", "maybe", "True/False"),
    (1, "prompt", "", "missing"),
    (1, "sample_id", "Odocoileus_virginianus=Strength50_guidance75_seed20=img1", "class_folder=subfolder=image_stem"),
    (2, "synthetic_path", "Odocoileus_virginianus/img2.jpg", "expected 'Odocoileus_virginianus/Strength29"),
    (1, "image_stem", "a=b", "must not contain '='"),
]


def test_duplicate_sample_id_is_named(tmp_path):
    path = tmp_path / "dup.csv"
    _frame(_row("img1", 0.5), _row("img1", 0.5, generator_seed=1)).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"dup.csv: row 2: column 'sample_id': duplicate sample_id"):
        read_manifest(path)


@pytest.mark.parametrize("row, column, value, words", BAD_CELLS, ids=[f"{c}={v!r}" for _, c, v, _ in BAD_CELLS])
def test_bad_cells_are_named_by_file_row_and_column(tmp_path, row, column, value, words):
    path = tmp_path / "bad.csv"
    _edit(_valid(), row, column, value).to_csv(path, index=False)
    with pytest.raises(InputError) as caught:
        read_manifest(path)
    err = caught.value
    assert (err.file, err.row, err.column) == (str(path), row, column)
    assert words in err.message
    assert str(err).startswith(f"{path}: row {row}: column '{column}': ")


def test_duplicate_names_the_first_occurrence(tmp_path):
    path = tmp_path / "dup.csv"
    _frame(_row("a", 0.5), _row("b", 0.5), _row("a", 0.5)).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"row 3: column 'sample_id': duplicate .*first at row 1"):
        read_manifest(path)


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "missing.csv"
    _valid().drop(columns=["prompt"]).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"missing column\(s\) prompt;") as caught:
        read_manifest(path)
    assert caught.value.file == str(path)


@pytest.mark.parametrize("text, words", [("", "file is empty"),
                                         ('a,b\n"unclosed,1\n', "row 1: a quoted field starts in this row and never")])
def test_empty_or_broken_file(tmp_path, text, words):
    path = tmp_path / "broken.csv"
    atomic_write_text(path, text)
    with pytest.raises(InputError, match=words):
        read_manifest(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_manifest(tmp_path / "nope.csv")


def test_same_sample_in_two_shards(tmp_path):
    first, second = tmp_path / "part000-of002.csv", tmp_path / "part001-of002.csv"
    write_manifest(_frame(_row("a", 0.5)), first)
    write_manifest(_frame(_row("a", 0.5)), second)
    assert len(read_manifests([first])) == 1
    with pytest.raises(InputError, match=r"part001-of002.csv: row 1: column 'sample_id': .* is listed in two "
                                         r"manifests \(also .*part000-of002.csv row 1\)"):
        read_manifests([first, second])


def test_invalid_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "part000-of001.csv"
    write_manifest(_valid(), path)
    before = path.read_bytes()
    with pytest.raises(InputError, match="row 1: column 'strength'"):
        write_manifest(_edit(_valid(), 1, "strength", 2.0), path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_cli_reports_one_line_and_exit_code_2(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    _edit(_valid(), 2, "strength", 0.0).to_csv(path, index=False)
    with pytest.raises(SystemExit) as caught:
        run_cli(lambda argv: read_manifest(path), [])
    assert caught.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr == f"error: {path}: row 2: column 'strength': strength 0.0 outside (0, 1]\n"


def test_any_registered_dataset_name_is_accepted(tmp_path):
    frame = _frame(_row("img1", 0.5, dataset="folder"), _row("img2", 0.5, dataset="my_birds"))
    write_manifest(frame, tmp_path / "m.csv")
    assert read_manifest(tmp_path / "m.csv")["dataset"].tolist() == ["folder", "my_birds"]
    with pytest.raises(InputError, match="row 1: column 'dataset': value is missing"):
        write_manifest(_frame(_row("img1", 0.5, dataset="")), tmp_path / "bad.csv")
