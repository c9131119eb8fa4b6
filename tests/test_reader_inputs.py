"""Bad input files and flags of the readers: text that is not UTF-8, a ragged table row, lines of a header-less
list after blank lines, the builder's numeric flags: each a one-line ``InputError`` naming the file (or flag) and
the line or data row, never a traceback, nothing written."""

from __future__ import annotations

import pytest

from helpers import load_script

from discl.cli import run_cli
from discl.data import imagenet_lt as lists
from discl.data.training_tables import TABLE_COLUMNS, read_data_roots, read_training_table
from discl.errors import InputError
from discl.experiments.spec import load_experiment

HEADER = "\t".join(TABLE_COLUMNS) + "\n"


def table_row(index: int, title: str = "a photo of a puma.") -> str:
    return "\t".join([title, f"img/{index}.jpg", "1", "0", "100", "100", str(-index - 1)]) + "\n"


# ------------------------------------------------------------------------------------------------ tables
@pytest.mark.parametrize("name", ["train.csv", "validate.csv"])  # a training and a curriculum-validation table
def test_a_table_that_is_not_utf8_names_the_file_and_line(tmp_path, name):
    path = tmp_path / name
    path.write_bytes((HEADER + table_row(0)).encode() + table_row(1, "caf\xe9").encode("latin-1"))
    with pytest.raises(InputError) as err:
        read_training_table(path)
    assert str(err.value).startswith(f"{path}: line 3: not UTF-8 text")


def test_a_row_with_a_cell_too_many_names_its_data_row(tmp_path):
    path = tmp_path / "train.csv"
    ragged = table_row(3).replace("\n", "\textra\n")
    path.write_text(HEADER + table_row(0) + "\n" + table_row(1) + table_row(2) + ragged + table_row(4))
    with pytest.raises(InputError) as err:
        read_training_table(path)  # the blank line is skipped, as pandas skips it: the 4th data row
    assert str(err.value) == f"{path}: row 4: 8 fields, the header has 7 (a separator too many or unquoted?)"
    assert err.value.row == 4


# ------------------------------------------------------------------------------------------ ImageNet-LT lists
def test_a_list_error_names_the_line_blank_lines_counted(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("a.JPEG 0 100\nb.JPEG 0 100\nc.JPEG 0 100\n\n\nd.JPEG -1 100\n")
    with pytest.raises(InputError) as err:
        read_training_table(path, "/real", "/syn")
    assert str(err.value) == f"{path}: line 6: label must be >= 0, got -1"
    path.write_text("a.JPEG 0 100\n\n/abs/b.JPEG 0 100\n")
    with pytest.raises(InputError, match="^" + str(path) + ": line 3: path '/abs/b.JPEG' of a real image must be "
                                                           "relative to the ImageNet root$"):
        read_training_table(path, "/real", "/syn")
    path.write_text("\na.JPEG 0 100\nb.JPEG 0 100 7 1\n")
    with pytest.raises(InputError, match="line 3: expected 'path label \\[guidance \\[train_count\\]\\]', got 5 fields"):
        lists.read_list(path)
    path.write_text("\n\na.JPEG 0\nb.JPEG 0\n")
    assert [entry.line for entry in lists.read_list(path)] == [3, 4]


def test_a_dataset_list_label_error_names_the_line(tmp_path):
    from discl.datasets import get_dataset

    (tmp_path / "ImageNet_LT_train.txt").write_text("train/a.JPEG 0\n\ntrain/b.JPEG 5000\n")
    with pytest.raises(InputError) as err:
        get_dataset("imagenet_lt", tmp_path).training_images()
    assert str(err.value) == f"{tmp_path / 'ImageNet_LT_train.txt'}: line 3: label 5000 outside 0..999"


def test_a_list_or_its_data_roots_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(b"a.JPEG 0 100\nb\xff.JPEG 0 100\n")
    with pytest.raises(InputError, match="^" + str(path) + ": line 2: not UTF-8 text"):
        read_training_table(path, "/real", "/syn")
    with pytest.raises(InputError, match="^" + str(path) + ": line 2: not UTF-8 text"):
        lists.read_list(path)
    path.write_text("a.JPEG 0 100\nsyn/b.jpg 0 50\n")
    roots = tmp_path / "data_roots.json"
    roots.write_bytes(b'{"real_root": "/r\xe9al", "synthetic_root": "/s"}')
    for read in (lambda: read_training_table(path), lambda: read_data_roots(tmp_path)):
        with pytest.raises(InputError, match="^" + str(roots) + ": line 1: not UTF-8 text"):
            read()


# ------------------------------------------------------------------------------------------ experiment files
@pytest.mark.parametrize("script", ["curriculum/run_experiments.py", "curriculum/aggregate.py"])
def test_an_experiment_file_that_is_not_utf8_is_one_line(tmp_path, capsys, script):
    path = tmp_path / "e.toml"
    path.write_bytes(b'name = "e"\n# caf\xe9\n')
    with pytest.raises(InputError, match="^" + str(path) + ": line 2: not UTF-8 text"):
        load_experiment(path)
    with pytest.raises(SystemExit) as info:
        run_cli(load_script(script).main, [str(path), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err == f"error: {path}: line 2: not UTF-8 text (invalid continuation byte); " \
                                           "save it as UTF-8\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.toml"]


# ---------------------------------------------------------------------------------------------- build_data.py
@pytest.mark.parametrize("flags, message", [
    ({"random_state": -1}, "column '--random-state': expected a seed in 0..4294967295, got -1"),
    ({"random_state": 2 ** 32}, "column '--random-state'"),
    ({"min_guidance": 150}, "column '--min-guidance': guidance levels lie in 0..100, got 150"),
    ({"guidance_levels": [10, 101]}, "column '--guidance-levels': guidance levels lie in 0..100, got 101"),
    ({"val_size": -1}, "column '--val-size': validation size must be >= 0"),
    ({"max_val_fraction": 1.5}, "column '--max-val-fraction': must be in [0, 1], got 1.5"),
    ({"max_val_fraction": float("nan")}, "column '--max-val-fraction'"),
    ({"threshold": float("nan")}, "column '--threshold'"),
])
def test_build_config_checks_its_numeric_flags(flags, message):
    from discl.training_data import BuildConfig

    BuildConfig(syn_path="s", save_folder="o").check()  # the defaults pass
    with pytest.raises(InputError) as err:
        BuildConfig(syn_path="s", save_folder="o", **flags).check()
    assert str(err.value).startswith(message)


def test_build_data_refuses_a_bad_random_state_up_front(tmp_path, capsys, mini_iwildcam):
    with pytest.raises(SystemExit) as info:
        run_cli(load_script("curriculum/build_data.py").main,
                ["--dataset", "iwildcam", "--data-root", str(mini_iwildcam), "--syn-path", str(tmp_path / "gen"),
                 "--output-dir", str(tmp_path / "data"), "--random-state", "-1"])
    assert info.value.code == 2
    assert capsys.readouterr().err == "error: column '--random-state': expected a seed in 0..4294967295, got -1\n"
    assert not (tmp_path / "data").exists()
