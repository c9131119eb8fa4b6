"""Bad input to the trainers and WiSE-FT: every numeric flag checked up front, unreadable images named by their
table row, resumes that refuse changed data or precision, unreadable run logs, duplicate rows, and the one
command that starts or resumes a run.

Runs ``curriculum/train.py`` in-process on the mini ImageNet-LT with a 4-wide ResNet-10 on 32 px crops.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import shutil
import typing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers import load_script

from discl.cli import run_cli
from discl.data.imagenet_lt import read_split
from discl.data.training_tables import write_training_table
from discl.errors import InputError
from discl.flyp import FlypOptions, FlypTask
from discl.lt import CEOptions, CETask
from discl.tiny import TINY_OPEN_CLIP
from discl.config import NON_NEGATIVE, POSITIVE, Range
from discl.training import config as loop_config
from discl.training.data import ImageSource, TableImages, UnreadableImage, make_loader
from discl.wiseft import WISEFT_RANGES, WiseFTConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROWS = 64  # training rows: 2 steps of 32 per epoch


# --- helpers ---------------------------------------------------------------------------------------------------

def _frame(root: Path, rows: int = ROWS) -> pd.DataFrame:
    """A canonical training table of the first ``rows`` real training images of the mini ImageNet-LT."""
    entries = read_split(root, "train")[:rows]
    return pd.DataFrame({"title": [f"a photo of class {e.label}." for e in entries],
                         "filepath": [str(root / e.path) for e in entries], "label": [e.label for e in entries],
                         "strength": 0, "guidance": 100, "seed": 100,
                         "img_id": [-(i + 1) for i in range(len(entries))]})


@pytest.fixture(scope="module")
def table(mini_imagenet_lt, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("table") / "train.tsv"
    write_training_table(_frame(mini_imagenet_lt), path)
    return path


def _ce(root: Path, table: Path, out: Path, *extra: str) -> list[str]:
    return ["--trainer", "ce", "--dataset", "imagenet_lt", "--data-root", str(root), "--train-table", str(table),
            "--output-dir", str(out), "--width", "4", "--crop-size", "32", "--resize-size", "36", "--workers", "0",
            "--batch-size", "32", "--eval-batch-size", "128", "--device", "cpu", "--no-plots", "--no-tensorboard",
            "--epochs", "1", "--curriculum", "none", "--stage-data", "replace-hard", *extra]


def _flyp(root: Path, table: Path, out: Path, *extra: str) -> list[str]:
    return ["--trainer", "flyp", "--dataset", "imagenet_lt", "--data-root", str(root), "--train-table", str(table),
            "--output-dir", str(out), "--model", TINY_OPEN_CLIP, "--pretrained", "", "--workers", "0",
            "--batch-size", "32", "--eval-batch-size", "128", "--device", "cpu", "--no-plots", "--no-tensorboard",
            "--epochs", "1", "--warmup", "1", *extra]


def _cli(capsys, argv: list[str], script: str = "curriculum/train.py") -> tuple[int, str]:
    """Run a script as its command line does: the exit code and stderr."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(load_script(script).main, argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.err.strip()


def _fails(capsys, argv: list[str], script: str = "curriculum/train.py") -> str:
    """The one-line error of a command that must fail with exit 2 and no traceback."""
    code, err = _cli(capsys, argv, script)
    assert code == 2 and "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    return err


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- D1: every numeric flag is checked before anything is written ---------------------------------------------

def _numeric_fields(cls) -> set[str]:
    """Fields of a dataclass whose values are numbers (or lists of numbers, or optional numbers)."""
    hints = typing.get_type_hints(cls)
    numeric = set()
    for field in dataclasses.fields(cls):
        if field.metadata.get("cli", True) is False:
            continue
        parts = {hints[field.name]}
        while parts:
            tp = parts.pop()
            if tp in (int, float):
                numeric.add(field.name)
            parts |= {a for a in typing.get_args(tp) if a is not type(None)}
    return numeric


@pytest.mark.parametrize("cls, ranges", [(loop_config.LoopConfig, loop_config.LOOP_RANGES),
                                         (FlypOptions, FlypTask.option_ranges), (CEOptions, CETask.option_ranges),
                                         (WiseFTConfig, WISEFT_RANGES)])
def test_every_numeric_flag_has_a_range(cls, ranges):
    assert _numeric_fields(cls) == set(ranges)


def _bad_values(allowed: Range, integer: bool) -> list[str]:
    """Values just outside ``allowed`` (and NaN / inf for a float flag)."""
    values = []
    if allowed.low is not None:
        values.append(allowed.low if allowed.low_open else allowed.low - 1)
    if allowed.high is not None:
        values.append(allowed.high if allowed.high_open else allowed.high + 1)
    values = [str(int(v)) if integer else str(float(v)) for v in values]
    return values if integer else values + ["nan", "inf"]


def _cases(trainer: str, ranges: dict, cls) -> list:
    hints = typing.get_type_hints(cls)
    cases = []
    for name, allowed in ranges.items():
        integer = "int" in str(hints[name])
        cases += [pytest.param(trainer, name, value, id=f"{trainer}-{name}={value}")
                  for value in _bad_values(allowed, integer)]
    return cases


@pytest.mark.parametrize("trainer, name, value", _cases("ce", loop_config.LOOP_RANGES, loop_config.LoopConfig)
                         + _cases("ce", CETask.option_ranges, CEOptions)
                         + _cases("flyp", FlypTask.option_ranges, FlypOptions))
def test_a_numeric_flag_out_of_range_is_a_one_line_error(trainer, name, value, hf_home, mini_imagenet_lt, table,
                                                          tmp_path, capsys):
    flag = "--" + name.replace("_", "-")
    out = tmp_path / "out"
    make = _ce if trainer == "ce" else _flyp
    error = _fails(capsys, make(mini_imagenet_lt, table, out, flag, value))
    assert error.startswith(f"error: {flag}: expected "), error
    assert not out.exists()


def test_the_flyp_learning_rate_never_decays_upwards(hf_home, mini_imagenet_lt, table, tmp_path, capsys):
    error = _fails(capsys, _flyp(mini_imagenet_lt, table, tmp_path / "out", "--lr", "1e-4", "--min-lr", "1e-3"))
    assert error.startswith("error: --min-lr: ") and "--lr 0.0001" in error
    assert not (tmp_path / "out").exists()


def test_range_messages():
    assert Range(0, 1, low_open=True).describe() == "in (0, 1]"
    assert not POSITIVE.admits(0.0) and POSITIVE.admits(1e-9)
    assert not NON_NEGATIVE.admits(math.nan) and not NON_NEGATIVE.admits(math.inf)
    with pytest.raises(InputError, match=r"^--level-starts: expected an integer ≥ 0, got -1$"):
        loop_config.check_ranges(loop_config.LoopConfig(output_dir=Path("o"), level_starts=[0, -1]),
                                 loop_config.LOOP_RANGES)


@pytest.mark.parametrize("argv, flag", [(["--workers", "-1"], "--workers"),
                                        (["--eval-batch-size", "0"], "--eval-batch-size"),
                                        (["--alphas", "0", "nan"], "--alphas"),
                                        (["--alphas", "1.5"], "--alphas")])
def test_wiseft_flags_are_checked_before_anything_is_read_or_written(argv, flag, tmp_path, capsys):
    run = tmp_path / "run"  # checked before the run's checkpoint is even looked for
    error = _fails(capsys, ["--run-dir", str(run), "--device", "cpu", *argv], "curriculum/wiseft.py")
    assert error.startswith(f"error: {flag}: expected ")
    assert not run.exists()


# --- D3: an image that does not decode is named by its table row ----------------------------------------------

def _spoil(kind: str, good: Path, bad: Path) -> Path:
    if kind == "truncated":
        data = good.read_bytes()
        bad.write_bytes(data[:len(data) // 2])
    elif kind == "empty":
        bad.write_bytes(b"")
    else:
        bad.write_text("not an image\n")
    return bad


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kind", ["truncated", "empty", "text"])
def test_an_unreadable_image_names_its_table_row_in_the_main_process(kind, workers, tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    bad = _spoil(kind, good, tmp_path / f"{kind}.jpg")
    from torchvision import transforms

    images = TableImages([str(good), str(bad), str(good)], torch.tensor([0, 1, 2]), transforms.ToTensor(),
                         source=ImageSource(tmp_path / "train.tsv", [4, 9, 12]))
    with pytest.raises(UnreadableImage) as err:
        list(make_loader(images, batch_size=3, workers=workers))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'train.tsv'}: row 9: column 'filepath': cannot read image {bad} (")
    assert len(message.splitlines()) == 1
    # without a table (an evaluation split of the dataset) the image itself is named
    alone = TableImages([str(bad)], torch.tensor([0]), transforms.ToTensor())
    with pytest.raises(UnreadableImage, match=rf"^{re.escape(str(bad))}: cannot read image \("):
        alone[0]


@pytest.mark.parametrize("workers", ["0", "1"])
def test_training_on_an_unreadable_image_exits_with_one_line(workers, mini_imagenet_lt, tmp_path, capsys):
    frame = _frame(mini_imagenet_lt)
    bad = _spoil("truncated", Path(frame["filepath"][4]), tmp_path / "truncated.jpg")
    frame.loc[4, "filepath"] = str(bad)
    path = tmp_path / "train.tsv"
    write_training_table(frame, path)
    argv = _ce(mini_imagenet_lt, path, tmp_path / "out", "--workers", workers)
    code, err = _cli(capsys, argv)
    assert code == 2 and "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith(f"error: {path}: row 5: column 'filepath': cannot read image {bad} ("), last


# --- D4 / D5: what a resume compares, and the logs it reads ----------------------------------------------------

@pytest.fixture(scope="module")
def stopped(mini_imagenet_lt, table, tmp_path_factory) -> Path:
    """A CE run stopped after epoch 0 of 2."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    train = load_script("curriculum/train.py").main
    assert train(_ce(mini_imagenet_lt, table, out, "--epochs", "2", "--stop-after-epoch", "0")) == 0
    return out


def _copy(run: Path, folder: Path) -> Path:
    shutil.copytree(run, folder / "run")
    return folder / "run"


def test_resume_refuses_a_relabelled_table_and_another_precision(stopped, mini_imagenet_lt, table, tmp_path,
                                                                  capsys):
    run = _copy(stopped, tmp_path)
    relabelled = tmp_path / "train.tsv"
    shutil.copy(table, relabelled)
    argv = _ce(mini_imagenet_lt, relabelled, run, "--epochs", "2", "--resume")
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state["args"]["train_table"] = str(relabelled)  # the same path as the run's table …
    torch.save(state, run / "checkpoints" / "last.pt")
    frame = pd.read_csv(relabelled, sep="\t")
    frame.loc[3, "label"] = (frame.loc[3, "label"] + 1) % 8  # … with one row relabelled: same rows, new contents
    frame.to_csv(relabelled, sep="\t", index=False)
    before = _files(run)
    error = _fails(capsys, argv)
    assert error.startswith(f"error: {run / 'checkpoints' / 'last.pt'}: was written by a run with other settings")
    assert f"the contents of --train-table {relabelled} changed" in error
    shutil.copy(table, relabelled)  # the original contents again: only the precision differs now
    error = _fails(capsys, argv + ["--precision", "bf16"])
    assert error.endswith("cannot resume: precision='fp32' (now 'bf16')")
    assert _files(run) == before  # nothing written
    assert load_script("curriculum/train.py").main(argv) == 0  # the same table and settings resume


def test_a_checkpoint_from_before_the_fingerprints_still_resumes(stopped, mini_imagenet_lt, table, tmp_path,
                                                                 caplog):
    run = _copy(stopped, tmp_path)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    for key in loop_config.LATER_RESUME_KEYS:
        del state["args"][key]
    torch.save(state, run / "checkpoints" / "last.pt")
    with caplog.at_level(logging.WARNING):
        assert load_script("curriculum/train.py").main(_ce(mini_imagenet_lt, table, run, "--epochs", "2",
                                                           "--resume", "--precision", "bf16")) == 0
    assert "predates the recording of precision, train_table_sha256, val_table_sha256" in caplog.text
    assert list(pd.read_csv(run / "stats.tsv", sep="\t")["epoch"]) == [0, 1]


@pytest.mark.parametrize("name, content, expected", [
    ("stats.tsv", b"epoch\tloss\n0\t1.0\t7\t8\n", "not a tab-separated log of this run (rows have more cells"),
    ("stats.tsv", b"epoch\tloss\n0\t1.0\n1\t2.0\t3\n", "not a tab-separated log of this run (Error tokenizing"),
    ("stats.tsv", b"epoch\tloss\n", "has no row for epoch 0, which the checkpoint finished"),
    ("stats.tsv", b"when\tloss\nmonday\t1.0\n", "column 'epoch': not a log of this run"),
    ("curriculum.tsv", b"stage\tkind\n0\tlev\xe9l\n", "line 2: not UTF-8 text"),
])
def test_resume_with_an_unreadable_log_is_a_one_line_error(name, content, expected, stopped, mini_imagenet_lt,
                                                           table, tmp_path, capsys):
    run = _copy(stopped, tmp_path)
    (run / name).write_bytes(content)
    (run / "checkpoints" / ".tmp-last.pt.abc123").write_bytes(b"left by a kill")
    before = _files(run)
    error = _fails(capsys, _ce(mini_imagenet_lt, table, run, "--epochs", "2", "--resume"))
    assert error.startswith(f"error: {run / name}: ") and expected in error, error
    assert _files(run) == before  # nothing written, nothing removed


# --- D9: a row listed twice ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [_ce, _flyp], ids=["ce", "flyp"])
def test_both_trainers_refuse_a_repeated_row(make, hf_home, mini_imagenet_lt, tmp_path, capsys):
    frame = _frame(mini_imagenet_lt)
    frame = pd.concat([frame.iloc[:6], frame.iloc[[2]], frame.iloc[6:]], ignore_index=True)
    path = tmp_path / "train.tsv"
    write_training_table(frame, path)
    error = _fails(capsys, make(mini_imagenet_lt, path, tmp_path / "out"))
    assert error.startswith(f"error: {path}: row 7: repeats row 3 (same title, filepath, label, guidance, seed): ")
    assert not (tmp_path / "out").exists()


def test_a_list_file_with_a_repeated_line_is_refused(mini_imagenet_lt, tmp_path, capsys):
    lines = (mini_imagenet_lt / "ImageNet_LT_train.txt").read_text().splitlines()[:ROWS]
    path = tmp_path / "train.txt"
    path.write_text("\n".join(lines[:10] + [lines[4]] + lines[10:]) + "\n")
    error = _fails(capsys, _ce(mini_imagenet_lt, path, tmp_path / "out"))
    assert error.startswith(f"error: {path}: row 11: repeats row 5 ")


# --- D10: one command starts or resumes a run; stale temp files go on every start --------------------------------

@pytest.mark.parametrize("resume", [True, False], ids=["resume", "fresh"])
def test_a_run_killed_before_its_first_checkpoint_starts_again(resume, mini_imagenet_lt, table, tmp_path, caplog):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    # what a kill during the first checkpoint's write leaves: a temp file, and the epoch's log rows
    (out / "checkpoints" / ".tmp-last.pt.x1y2z3").write_bytes(b"\0" * 1000)
    (out / ".tmp-summary.json.q9").write_text("{")
    (out / "stats.tsv").write_text("epoch\tloss\n0\t9.5\n")
    (out / "tensorboard").mkdir()
    old_events = out / "tensorboard" / "events.out.tfevents.1.killed-run"
    old_events.write_bytes(b"curves of the killed run")
    with caplog.at_level(logging.INFO):
        assert load_script("curriculum/train.py").main(
            _ce(mini_imagenet_lt, table, out, "--tensorboard", *(["--resume"] if resume else []))) == 0
    assert ("starting a fresh run" in caplog.text) == resume
    assert not list(out.rglob(".tmp-*"))
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))  # only the new run's curves
    assert not old_events.exists() and len(events) == 1 and events[0].stat().st_size > 0
    assert (out / "checkpoints" / "last.pt").is_file()
    assert pd.read_csv(out / "stats.tsv", sep="\t")["loss"].tolist() != [9.5]  # the old row was redone


def test_a_resumed_run_keeps_the_curves_before_its_checkpoint(mini_imagenet_lt, table, tmp_path):
    out = tmp_path / "run"
    train = load_script("curriculum/train.py").main
    assert train(_ce(mini_imagenet_lt, table, out, "--tensorboard", "--epochs", "2", "--stop-after-epoch", "0")) == 0
    first = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert train(_ce(mini_imagenet_lt, table, out, "--tensorboard", "--epochs", "2", "--resume")) == 0
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert len(first) == 1 and first[0] in events and len(events) == 2  # TensorBoard's purge_step drops the rest


def test_a_fresh_run_over_an_existing_one_is_still_refused(stopped, mini_imagenet_lt, table, capsys):
    error = _fails(capsys, _ce(mini_imagenet_lt, table, stopped, "--epochs", "2"))
    assert "a run already lives here; pass --resume" in error
