"""What a run leaves for its user on a cluster: kill-consistent checkpoints, run records, TensorBoard events,
plain progress lines in batch logs, site defaults.

Runs the generic trainer in-process (``curriculum/train.py --trainer ce``) with a 4-wide ResNet-10 on the mini
ImageNet-LT; the training table gives every second image two guidance-50 copies, so the fixed schedule's first
stage (guidance 50 for two epochs) holds more rows than an epoch and is still open when the epoch-0 checkpoint is
written.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import load_script

from discl import checkpoint as ckpt
from discl import progress as P
from discl.config import dataclass_parser
from discl.data.training_tables import write_training_table
from discl.datasets import get_dataset
from discl.errors import InputError
from discl.fileio import atomic_torch_save
from discl.runrecord import RECORDS_DIR, read_records
from discl.training.config import LoopConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def table(mini_imagenet_lt, tmp_path_factory) -> Path:
    """Real rows of every training image; every second image also has two guidance-50 rows (seeds 10, 20)."""
    images = get_dataset("imagenet_lt", mini_imagenet_lt).training_images()
    rows, hard = [], 0
    for index, (path, label) in enumerate(zip(images.paths, images.labels)):
        if index % 2:
            rows.append({"filepath": path, "label": label, "strength": 0, "guidance": 100, "seed": 100,
                         "img_id": -(index + 1)})
            continue
        for guidance, seed in ((100, 100), (50, 10), (50, 20)):
            rows.append({"filepath": path, "label": label, "strength": 100 - guidance, "guidance": guidance,
                         "seed": seed, "img_id": hard})
        hard += 1
    frame = pd.DataFrame(rows).assign(title="x")
    path = tmp_path_factory.mktemp("table") / "train.csv"
    write_training_table(frame, path)
    return path


def _args(root: Path, table: Path, out: Path, *extra: str) -> list[str]:
    return ["--trainer", "ce", "--dataset", "imagenet_lt", "--data-root", str(root), "--train-table", str(table),
            "--output-dir", str(out), "--curriculum", "fixed", "--guidance-levels", "50", "100", "--level-starts",
            "0", "2", "--curriculum-epoch", "2", "--stage-data", "replace-hard", "--epochs", "3", "--width", "4",
            "--crop-size", "32", "--resize-size", "36", "--batch-size", "16", "--eval-batch-size", "64",
            "--workers", "0", "--device", "cpu", "--no-plots", *extra]


def _train(*argv: str) -> int:
    return load_script("curriculum/train.py").main(list(argv))


@pytest.fixture(scope="module")
def whole(mini_imagenet_lt, table, tmp_path_factory) -> Path:
    """An uninterrupted 3-epoch run."""
    out = tmp_path_factory.mktemp("whole")
    assert _train(*_args(mini_imagenet_lt, table, out)) == 0
    return out


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _same_rng(a: dict, b: dict) -> bool:
    return (a["python"] == b["python"] and a["numpy"] == b["numpy"] and torch.equal(a["torch"], b["torch"])
            and len(a["cuda"]) == len(b["cuda"]))


# --- checkpoints: kill at any point -------------------------------------------------------------------------

def test_resume_after_a_kill_repairs_best_removes_temp_files_and_restores_the_whole_state(
        mini_imagenet_lt, table, whole, tmp_path):
    out = tmp_path / "split"
    assert _train(*_args(mini_imagenet_lt, table, out, "--stop-after-epoch", "0")) == 0
    checkpoints = out / "checkpoints"
    last = _load(checkpoints / "last.pt")
    assert last["epoch"] == 0 and last["best"]["epoch"] == 0 and last["trainer"]["stage"]["batches_done"] < \
        last["trainer"]["stage"]["num_batches"], "the first stage must still be open at the checkpoint"
    # as if killed after last.pt was committed but before best.pt, and during a later write of last.pt and stats.tsv
    (checkpoints / "best.pt").unlink()
    stale = [checkpoints / ".tmp-last.pt.k1ll3d", out / ".tmp-stats.tsv.x7"]
    for path in stale:
        path.write_bytes(b"partial")
    assert _train(*_args(mini_imagenet_lt, table, out, "--resume")) == 0
    assert not any(p.exists() for p in stale)
    for name in ("stats.tsv", "curriculum.tsv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / name, sep="\t"), pd.read_csv(whole / name, sep="\t"))
    mine, theirs = _load(checkpoints / "last.pt"), _load(whole / "checkpoints" / "last.pt")
    assert _same_tensors(mine["model"], theirs["model"])
    # the RNG state too: continuing either run for more epochs gives the same run
    assert _same_rng(mine["rng"], theirs["rng"])
    best, whole_best = _load(checkpoints / "best.pt"), _load(whole / "checkpoints" / "best.pt")
    assert best["epoch"] == whole_best["epoch"] and _same_tensors(best["model"], whole_best["model"])
    assert json.loads((out / "summary.json").read_text())["best_epoch"] == best["epoch"]


def test_repair_best_rewrites_only_a_best_older_than_its_last(tmp_path):
    def state(epoch: int, best_epoch: int) -> dict:
        return {"format": ckpt.FORMAT, "epoch": epoch, "step": 10 * epoch, "model": {"w": torch.full((2,), epoch)},
                "args": {}, "best": {"epoch": best_epoch, "value": 0.5}, "rng": {}}

    ckpt.save_checkpoint(tmp_path, state(0, 0), is_best=True)
    atomic_torch_save(state(1, 1), tmp_path / "last.pt")  # killed before best.pt of epoch 1
    assert ckpt.repair_best(tmp_path, _load(tmp_path / "last.pt"))
    assert _load(tmp_path / "best.pt")["epoch"] == 1 and _load(tmp_path / "best.pt")["model"]["w"][0] == 1
    assert not ckpt.repair_best(tmp_path, _load(tmp_path / "last.pt"))  # consistent now: nothing to do
    ckpt.save_checkpoint(tmp_path, state(2, 1))  # epoch 2 did not improve: best.pt stays epoch 1
    assert not ckpt.repair_best(tmp_path, _load(tmp_path / "last.pt"))
    assert _load(tmp_path / "best.pt")["epoch"] == 1


def test_checkpoint_writes_last_before_best(tmp_path, monkeypatch):
    order = []
    monkeypatch.setattr(ckpt, "atomic_torch_save", lambda obj, path: order.append(Path(path).name))
    ckpt.save_checkpoint(tmp_path, {"format": 1, "epoch": 0, "step": 1, "model": {}, "args": {}, "best": None},
                         is_best=True)
    assert order == ["last.pt", "best.pt"]


# --- run records, TensorBoard, progress ----------------------------------------------------------------------

def test_every_run_folder_records_config_command_versions_commit_times_and_a_dated_log(whole, repo_root):
    records = read_records(whole)
    assert len(records) == 1
    record = records[0]
    assert record["script"] == "train-ce" and record["status"] == "finished"
    assert record["config"]["epochs"] == 3 and record["config"]["curriculum"] == "fixed"
    assert record["config"]["trainer"] == "ce" and record["config"]["batch_size"] == 16
    assert "--guidance-levels 50 100" in record["command"] and record["argv"][:2] == ["--trainer", "ce"]
    assert record["packages"]["torch"] == torch.__version__.split("+")[0]
    assert record["packages"]["tensorboard"] and record["python"]
    checkout = subprocess.run(["git", "-C", str(repo_root), "rev-parse", "HEAD"], capture_output=True, text=True)
    if checkout.returncode == 0:  # a git checkout: its commit; a copy without .git: none
        assert record["git"]["commit"] == checkout.stdout.strip() and isinstance(record["git"]["dirty"], bool)
    else:
        assert record["git"] is None
    assert record["start"] <= record["end"] and record["seconds"] >= 0
    log = (whole / RECORDS_DIR / record["log"]).read_text()
    dated = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING) ")
    lines = log.splitlines()
    assert lines and all(dated.match(line) for line in lines)
    assert any("epoch 2: loss" in line for line in lines) and any("run record" in line for line in lines)


def _events(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / "tensorboard")).Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_has_per_step_loss_and_lr_per_epoch_metrics_and_levels(whole, mini_imagenet_lt, table,
                                                                          tmp_path):
    events = _events(whole)
    summary = json.loads((whole / "summary.json").read_text())
    steps = summary["total_steps"]
    assert [s for s, _ in events["train/loss"]] == list(range(1, steps + 1))
    assert len(events["train/lr"]) == steps and events["train/lr"][0][1] > events["train/lr"][-1][1]
    stats = pd.read_csv(whole / "stats.tsv", sep="\t")
    assert [round(v, 6) for _, v in events["epoch/loss"]] == [round(v, 6) for v in stats["loss"]]
    for split in summary["splits"]:
        for metric in summary["metric_names"]:
            assert [s for s, _ in events[f"{split}/{metric}"]] == [0, 1, 2]
    stages = pd.read_csv(whole / "curriculum.tsv", sep="\t")
    assert events["curriculum/level"] == [(s, float(g)) for s, g in zip(stages["start_step"], stages["level"])]
    assert events["curriculum/level"][0][1] == 50.0
    # a resumed run does not draw its redone steps twice
    out = tmp_path / "split"
    _train(*_args(mini_imagenet_lt, table, out, "--stop-after-epoch", "1"))
    _train(*_args(mini_imagenet_lt, table, out, "--resume"))
    resumed = _events(out)
    assert [s for s, _ in resumed["train/loss"]] == list(range(1, steps + 1))
    assert [v for _, v in resumed["train/loss"]] == pytest.approx([v for _, v in events["train/loss"]])


def test_progress_lines_in_a_batch_log(caplog, monkeypatch):
    monkeypatch.setenv(P.INTERVAL_ENV, "0")
    caplog.set_level(logging.INFO, logger="discl.progress")
    bar = P.progress(range(4), desc="epoch 0/2", unit="step")  # pytest's stderr is not a terminal
    assert isinstance(bar, P.LogProgress)
    for _ in bar:
        bar.set_postfix(loss="0.5000")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("epoch 0/2: 1/4 step (25%), ") and "left" in lines[0] and "loss=0.5000" in lines[0]
    assert lines[-1].startswith("epoch 0/2: 4/4 step (100%)")
    caplog.clear()
    for _ in P.progress(range(3), desc="rank 1", enabled=False):
        pass
    assert not caplog.records
    assert P.duration(3725) == "1h02m05s" and P.duration(65) == "1m05s" and P.duration(4.2) == "4s"


# --- site defaults ---------------------------------------------------------------------------------------------

def test_site_defaults_file_replaces_defaults_and_shows_in_help(tmp_path, monkeypatch):
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"--workers": 8, "eval-batch-size": 32, "unrelated_flag": 1}))
    monkeypatch.setenv("DISCL_DEFAULTS", str(site))
    parser = dataclass_parser(LoopConfig)
    args = parser.parse_args(["--output-dir", "x"])
    assert (args.workers, args.eval_batch_size, args.epochs) == (8, 32, 20)
    assert args.output_dir == Path("x")
    helps = {a.dest: a.help for a in parser._actions}
    assert "(default: 8)" in helps["workers"]
    site.write_text("[1, 2]")
    with pytest.raises(InputError, match="one JSON object"):
        dataclass_parser(LoopConfig)
    site.write_text("{not json")
    with pytest.raises(InputError, match="not JSON") as err:
        dataclass_parser(LoopConfig)
    assert str(site) in str(err.value)


def test_rng_state_round_trip_is_exact():
    np.random.seed(3)
    torch.manual_seed(3)
    state = ckpt.rng_state()
    first = (np.random.rand(), torch.rand(2))
    ckpt.set_rng_state(state)
    assert np.random.rand() == first[0] and torch.equal(torch.rand(2), first[1])
