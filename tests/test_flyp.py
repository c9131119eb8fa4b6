"""FLYP on the tiny open_clip model and the mini iWildCam: curriculum stages, loss, resume, DDP, bad input."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image, ImageFilter

from helpers import REPO_ROOT, load_script

from discl import curriculum as C
from discl.cli import run_cli
from discl.datasets import get_dataset
from discl.data.iwildcam import IWILDCAM_TEMPLATES, zeroshot_classnames
from discl.data.training_tables import write_training_table
from discl.errors import InputError
from discl.flyp import FlypOptions, FlypTask
from discl.stats import append_stats
from discl.tiny import TINY_OPEN_CLIP
from discl.training import cli
from discl.training.config import LoopConfig
from discl.training.data import TableImages
from discl.training.loop import Trainer
from discl.training.outputs import ScalarLoggers

TRAIN_SCRIPT_PATH = "curriculum/iWildCam/train.py"
TRAIN_SCRIPT = REPO_ROOT / TRAIN_SCRIPT_PATH
SYNTHETIC_LEVELS = (50, 70)
TINY = ["--model", TINY_OPEN_CLIP, "--pretrained", "", "--workers", "0", "--eval-batch-size", "64",
        "--lr", "1e-3", "--wd", "0.0", "--warmup", "2", "--device", "cpu"]


def _rows(path, label, name, guidance, img_id, templates=IWILDCAM_TEMPLATES):
    return [{"title": t.format(name), "filepath": str(path), "label": label, "strength": 100 - guidance,
             "guidance": guidance, "seed": 100 if guidance == 100 else 10, "img_id": img_id} for t in templates]


@pytest.fixture(scope="module")
def tables(mini_iwildcam, tmp_path_factory) -> dict:
    """Canonical training tables over the mini iWildCam: every 2nd non-empty image is hard and gets guidance 50 and 70
    versions (blurred / greyed stand-ins for diffusion outputs); 4 hard images form the validation table."""
    out = tmp_path_factory.mktemp("tables")
    data = mini_iwildcam / "iwildcam_v2.0"
    metadata = pd.read_csv(data / "metadata.csv")
    train = metadata[metadata["split"] == "train"].reset_index(drop=True)
    names = zeroshot_classnames(mini_iwildcam)
    train_rows, val_rows = [], []
    hard_count, easy_count = 0, 0
    for index, row in train.iterrows():
        real = data / "train" / row["filename"]
        name = names[row["y"]]
        if row["y"] == 0 or index % 2:
            easy_count += 1
            train_rows += _rows(real, row["y"], name, 100, -easy_count)
            continue
        image_id = hard_count
        hard_count += 1
        versions = {100: real}
        with Image.open(real) as image:
            for level in SYNTHETIC_LEVELS:
                synthetic = image.convert("L").convert("RGB").filter(ImageFilter.GaussianBlur((100 - level) / 20))
                versions[level] = out / "synthetic" / f"g{level}" / row["filename"]
                versions[level].parent.mkdir(parents=True, exist_ok=True)
                synthetic.save(versions[level])
        into_val = image_id < 4
        for level, path in versions.items():
            if into_val:
                val_rows += _rows(path, row["y"], name, level, image_id, templates=IWILDCAM_TEMPLATES[:1])
            else:
                train_rows += _rows(path, row["y"], name, level, image_id)
    write_training_table(pd.DataFrame(train_rows), out / "train.tsv")
    write_training_table(pd.DataFrame(val_rows), out / "val.tsv")
    return {"train": str(out / "train.tsv"), "val": str(out / "val.tsv"), "root": str(mini_iwildcam),
            "frame": pd.DataFrame(train_rows)}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _args(tables, out, *extra):
    return ["--train-table", tables["train"], "--val-table", tables["val"], "--wilds-root", tables["root"],
            "--output-dir", str(out), *TINY, *extra]



def _run(tables, out, *extra):
    return load_script(TRAIN_SCRIPT_PATH).main(_args(tables, out, *extra))


@pytest.fixture(autouse=True)
def tiny_models(hf_home):
    """The tiny open_clip config lives in the offline HF cache."""
    return hf_home


# --- training runs ------------------------------------------------------------------------------------------

FIXED_RUN = ("--curriculum", "fixed", "--epochs", "3", "--curriculum-epoch", "3", "--batch-size", "32",
             "--eval-splits", "id_val")


@pytest.fixture(scope="module")
def fixed_run(tables, tmp_path_factory) -> Path:
    """An uninterrupted run of the fixed schedule (3 levels over 3 epochs)."""
    out = tmp_path_factory.mktemp("fixed")
    _run(tables, out, *FIXED_RUN)
    return out


def test_fixed_schedule_loads_the_scheduled_guidance(fixed_run):
    # 3 levels (50, 70, real) over curriculum_epoch 3: one level per epoch.
    stats = pd.read_csv(fixed_run / "stats.tsv", sep="\t")
    # the guidance of the hard-image rows that the batches really contained, epoch by epoch
    assert stats["hard_guidance"].astype(str).tolist() == ["50", "70", "100"]
    assert (stats["non_hard_rows"] > 0).all()  # non-hard real rows are in every stage (the reference lost them)
    stages = pd.read_csv(fixed_run / "curriculum.tsv", sep="\t")
    assert stages["level"].tolist()[:3] == [50, 70, 100]
    for name in ("summary.json", "curriculum_timeline.png", "f1_curves.png", "checkpoints/last.pt"):
        assert (fixed_run / name).is_file(), name


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tables, fixed_run, tmp_path):
    # A child process trains and is SIGKILLed (no clean-up at all) as soon as epoch 0's checkpoint lands, i.e.
    # inside epoch 1; the resumed run ends with the logs of the uninterrupted one. The child is forked, not
    # started afresh: importing torch + open_clip again would cost seconds (one thread: fork-safe).
    last = tmp_path / "checkpoints" / "last.pt"
    pid = os.fork()
    if pid == 0:  # the child: train until killed (reaching os._exit means it was not)
        try:
            _run(tables, tmp_path, *FIXED_RUN)
        finally:
            os._exit(1)
    deadline = time.monotonic() + 120
    while not last.exists():
        assert os.waitpid(pid, os.WNOHANG) == (0, 0), "the child ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert torch.load(last, weights_only=True)["epoch"] == 0
    assert len(pd.read_csv(tmp_path / "stats.tsv", sep="\t")) == 1
    # the summary of the finished epochs follows each checkpoint (the kill may have come before it)
    summary = tmp_path / "summary.json"
    assert not summary.exists() or json.loads(summary.read_text())["epochs_done"] == 1
    # as if the kill had come between epoch 1's log rows and its checkpoint: the resume must forget them
    stats_row = pd.read_csv(tmp_path / "stats.tsv", sep="\t").to_dict("records")[0]
    append_stats(tmp_path / "stats.tsv", {**stats_row, "epoch": 1, "loss": 99.0})
    stage_row = pd.read_csv(tmp_path / "curriculum.tsv", sep="\t").to_dict("records")[0]
    append_stats(tmp_path / "curriculum.tsv", {**stage_row, "stage": 5, "start_step": 99}, key="stage")
    args = load_script(TRAIN_SCRIPT_PATH).get_args_parser().parse_args(_args(tables, tmp_path, *FIXED_RUN,
                                                                              "--resume"))
    trainer = Trainer(*cli.objects_from_args(args, "flyp"))
    assert pd.read_csv(tmp_path / "stats.tsv", sep="\t")["epoch"].tolist() == [0]
    assert pd.read_csv(tmp_path / "curriculum.tsv", sep="\t")["stage"].max() < 5
    trainer.train()
    trainer.close()
    for name in ("stats.tsv", "curriculum.tsv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / name, sep="\t"),
                                      pd.read_csv(fixed_run / name, sep="\t"), obj=name)
    resumed, whole = (torch.load(p / "checkpoints" / "last.pt", weights_only=True)["model"]
                      for p in (tmp_path, fixed_run))
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)


def test_loss_falls_when_overfitting(tables, tmp_path):
    config = LoopConfig(output_dir=tmp_path, train_table=Path(tables["train"]), workers=0, batch_size=8, epochs=10,
                        curriculum_epoch=0, eval_splits=[], device="cpu")
    task = FlypTask(FlypOptions(model=TINY_OPEN_CLIP, pretrained="", lr=3e-4, wd=0.0, warmup=1))
    trainer = Trainer(get_dataset("iwildcam", tables["root"]), config, task)
    # eight different captions (a repeated caption is a false negative that keeps the loss up)
    rows = trainer.table[trainer.table["guidance"] == 100].drop_duplicates("title").iloc[:8]
    dataset = TableImages(rows["filepath"].tolist(), task.targets(rows), task.eval_transform)
    images = torch.stack([dataset[i][0] for i in range(8)])
    tokens = torch.stack([dataset[i][1] for i in range(8)])
    losses = [trainer.train_step(images, tokens) for _ in range(25)]
    trainer.close()
    assert losses[-1] < 0.5 * losses[0], losses


def test_adaptive_resume_equals_uninterrupted(tables, tmp_path):
    # 4 steps per epoch; a round = probe, 1 real-sample step, probe, ~4 level steps: epoch 0 ends inside a
    # level stage, so the resume rebuilds a stage mid-way; the second round is cut at curriculum_epoch.
    common = ["--curriculum", "adaptive", "--epochs", "3", "--curriculum-epoch", "2", "--batch-size", "32",
              "--real-sample-size", "32", "--eval-splits", "id_val", "test"]
    _run(tables, tmp_path / "full", *common)
    _run(tables, tmp_path / "split", *common, "--stop-after-epoch", "0")
    assert len(pd.read_csv(tmp_path / "split" / "stats.tsv", sep="\t")) == 1
    _run(tables, tmp_path / "split", *common, "--resume")
    full = pd.read_csv(tmp_path / "full" / "stats.tsv", sep="\t")
    split = pd.read_csv(tmp_path / "split" / "stats.tsv", sep="\t")
    pd.testing.assert_frame_equal(full, split)
    full_stages = pd.read_csv(tmp_path / "full" / "curriculum.tsv", sep="\t")
    pd.testing.assert_frame_equal(full_stages, pd.read_csv(tmp_path / "split" / "curriculum.tsv", sep="\t"))
    # the adaptive round ran: real-sample passes, then levels chosen from the probe scores; real from epoch 2
    assert "real_sample" in full_stages["kind"].tolist()
    steps_per_epoch = json.loads((tmp_path / "full" / "summary.json").read_text())["steps_per_epoch"]
    assert steps_per_epoch not in full_stages["start_step"].tolist()  # the checkpoint fell inside a stage
    choices = _check_adaptive_logs(tmp_path / "full", curriculum_epoch=2)
    assert len(choices) == 2 and all(set(scores) == {50, 70, 100} for _, scores in choices)
    assert full_stages["level"].iloc[-1] == 100
    summary = json.loads((tmp_path / "split" / "summary.json").read_text())
    assert summary["best_epoch"] in (0, 1, 2) and summary["selection"] == {"split": "id_val", "metric": "f1"}
    with pytest.raises(InputError, match="other settings.*seed=0 \\(now 1\\)"):
        _run(tables, tmp_path / "split", *common, "--resume", "--seed", "1")
    with pytest.raises(InputError, match="other settings.*eval_splits="):
        _run(tables, tmp_path / "split", *common, "--resume", "--eval-splits", "id_val")
    # a new run never overwrites a finished one
    with pytest.raises(InputError, match="a run already lives here; pass --resume") as err:
        _run(tables, tmp_path / "full", *common)
    assert str(tmp_path / "full" / "checkpoints" / "last.pt") in str(err.value)


def _parse_scores(cell) -> dict[int, float]:
    return {int(g): float(s) for g, s in (item.split(":") for item in str(cell).split(";"))}


def _check_adaptive_logs(out: Path, curriculum_epoch: int) -> list[tuple[int, dict[int, float]]]:
    """Every adaptive choice is the argmax of its logged scores, and each epoch's batches held the hard-image
    guidance of exactly the stages that ran in it; returns the (level, scores) of the choices."""
    stages = pd.read_csv(out / "curriculum.tsv", sep="\t")
    stats = pd.read_csv(out / "stats.tsv", sep="\t", dtype={"hard_guidance": str})
    steps_per_epoch = json.loads((out / "summary.json").read_text())["steps_per_epoch"]
    chosen = stages[(stages["kind"] == "level") & (stages["start_epoch"] < curriculum_epoch)]
    choices = []
    for _, stage in chosen.iterrows():
        scores = _parse_scores(stage["scores"])
        assert stage["level"] == C.argmax_level(scores), (stage["level"], scores)
        choices.append((int(stage["level"]), scores))
    ends = stages["start_step"].tolist()[1:] + [int(stats["step"].iloc[-1])]
    for _, epoch in stats.iterrows():
        first, last = epoch["epoch"] * steps_per_epoch, (epoch["epoch"] + 1) * steps_per_epoch
        ran = [stage for (_, stage), end in zip(stages.iterrows(), ends) if stage["start_step"] < last and end > first]
        synthetic = {int(s["level"]) for s in ran if s["kind"] == "level" and s["level"] != 100}
        loaded = {int(g) for g in str(epoch["hard_guidance"]).split(";")}
        assert loaded - {100} == synthetic, (epoch["epoch"], loaded, [dict(s) for s in ran])
    return choices


def test_adaptive_chooses_the_synthetic_level_that_alone_has_validation_rows(tables, tmp_path, caplog):
    # Only guidance-50 rows in the curriculum-validation table: 70 and 100 score NaN (a warning), so every
    # round must choose 50 and its epochs must load the guidance-50 images of the hard images.
    val = pd.read_csv(tables["val"], sep="\t")
    only_50 = tmp_path / "val50.tsv"
    write_training_table(val[val["guidance"] == 50], only_50)
    caplog.set_level(logging.WARNING, logger="discl.training.loop")
    _run(dict(tables, val=str(only_50)), tmp_path / "out", "--curriculum", "adaptive", "--epochs", "2",
         "--curriculum-epoch", "2", "--batch-size", "32", "--real-sample-size", "32", "--eval-splits", "id_val")
    assert "no curriculum-validation rows for guidance level(s) [70, 100]" in caplog.text
    choices = _check_adaptive_logs(tmp_path / "out", curriculum_epoch=2)
    assert [level for level, _ in choices] == [50, 50]
    assert all(math.isnan(s[70]) and math.isnan(s[100]) and not math.isnan(s[50]) for _, s in choices)
    stats = pd.read_csv(tmp_path / "out" / "stats.tsv", sep="\t", dtype={"hard_guidance": str})
    assert all("50" in str(g).split(";") for g in stats["hard_guidance"])


def test_adaptive_without_validation_rows_for_any_level(tables, tmp_path):
    val = pd.read_csv(tables["val"], sep="\t")
    only_70 = tmp_path / "val70.tsv"
    write_training_table(val[val["guidance"] == 70], only_70)
    with pytest.raises(InputError, match="no curriculum-validation rows for any scheduled guidance level") as err:
        _run(dict(tables, val=str(only_70)), tmp_path / "out", "--curriculum", "adaptive",
             "--guidance-levels", "50", "100", "--epochs", "2", "--curriculum-epoch", "1")
    assert str(only_70) in str(err.value) and "column 'guidance'" in str(err.value)


def test_ddp_two_processes_match_one_process(tables, tmp_path, script_env):
    # Same global batch (64) on 1 process and on 2 gloo processes: same losses; only rank 0 writes.
    # (--curriculum-epoch keeps its default 15 > --epochs: the baseline never switches, so that is allowed)
    args = ["--curriculum", "none", "--epochs", "1", "--batch-size", "64",
            "--eval-splits", "id_val", "--stop-after-epoch", "0"]
    env = dict(script_env, OMP_NUM_THREADS="1")
    _run(tables, tmp_path / "one", *args)
    torchrun = Path(sys.executable).with_name("torchrun")
    # a short monitor interval: torchrun otherwise notices the finished workers only seconds later
    launcher = [str(torchrun), "--monitor-interval", "0.2", "--nproc_per_node", "2",
                "--master_port", str(_free_port())]
    double = subprocess.run([*launcher, str(TRAIN_SCRIPT), *_args(tables, tmp_path / "two", *args)],
                            env=env, capture_output=True, text=True, timeout=180)
    assert double.returncode == 0, double.stderr[-3000:]
    one = pd.read_csv(tmp_path / "one" / "stats.tsv", sep="\t")
    two = pd.read_csv(tmp_path / "two" / "stats.tsv", sep="\t")
    assert len(two) == 1
    assert two["loss"].iloc[0] == pytest.approx(one["loss"].iloc[0], rel=1e-4)
    assert two["id_val_f1"].iloc[0] == pytest.approx(one["id_val_f1"].iloc[0], abs=1e-6)
    # both ranks log; only rank 0 saved a checkpoint, and the same files exist as in the 1-process run
    assert double.stderr.count("checkpoint: epoch 0") == 1
    assert double.stderr.count("process group: rank") == 2
    written = {name: sorted(p.name for p in (tmp_path / name).iterdir()) for name in ("one", "two")}
    assert written["two"] == written["one"]
    # the gradient of the gathered loss is the 1-process gradient: the weights after 2 steps agree
    weights = [torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)["model"]
               for name in ("one", "two")]
    for key, value in weights[0].items():
        other = weights[1][key]
        if key.endswith("attn.in_proj_bias"):
            # The key bias has an exactly-zero gradient (softmax ignores a shift shared by all keys); Adam
            # turns its rounding noise into lr-sized steps, so compare only the query and value biases.
            value, other = value.view(3, -1)[[0, 2]], other.view(3, -1)[[0, 2]]
        # Adam divides each gradient by its own running scale: where a gradient is ~0, the two ranks' summation
        # order moves a rare element by a small fraction of the learning rate (1e-3); a wrong gradient moves most
        far = ~torch.isclose(other, value, rtol=1e-4, atol=1e-6)
        assert int(far.sum()) <= value.numel() // 1000, f"{key}: {int(far.sum())} of {value.numel()} differ"
        assert float((other - value).abs().max()) <= 1e-5, key


# --- bad input ------------------------------------------------------------------------------------------------

def test_table_missing_columns_is_a_clear_error(tables, tmp_path):
    bad = tmp_path / "bad.tsv"
    tables["frame"].drop(columns=["img_id"]).to_csv(bad, sep="\t", index=False)
    with pytest.raises(InputError, match="missing column.*img_id") as err:
        _run(dict(tables, train=str(bad)), tmp_path / "out", "--curriculum", "fixed")
    assert str(bad) in str(err.value)
    assert not (tmp_path / "out" / "stats.tsv").exists()


def test_scheduled_level_without_images(tables, tmp_path):
    with pytest.raises(InputError, match="guidance level 60 is scheduled"):
        _run(tables, tmp_path, "--curriculum", "fixed", "--guidance-levels", "50", "60", "100")


def test_curriculum_epoch_beyond_epochs(tables, tmp_path):
    with pytest.raises(InputError, match="--curriculum-epoch 5 is larger than --epochs 2"):
        _run(tables, tmp_path, "--curriculum", "fixed", "--epochs", "2", "--curriculum-epoch", "5")


def test_cli_exit_code_and_one_line_error(tables, tmp_path, capsys):
    script = load_script(TRAIN_SCRIPT_PATH)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(script.main, _args(tables, tmp_path, "--curriculum", "fixed", "--guidance-levels", "60"))
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: {tables['train']}: column 'guidance': guidance level 60")


def test_adaptive_needs_the_validation_table(tables, tmp_path):
    config = LoopConfig(output_dir=tmp_path, train_table=Path(tables["train"]), curriculum="adaptive", epochs=2,
                        curriculum_epoch=1, device="cpu")
    task = FlypTask(FlypOptions(model=TINY_OPEN_CLIP, pretrained=""))
    with pytest.raises(InputError, match="needs --val-table"):
        Trainer(get_dataset("iwildcam", tables["root"]), config, task)


def test_optional_loggers_are_skipped_when_not_installed(tmp_path, caplog):
    loggers = ScalarLoggers(tmp_path, tensorboard=True, wandb_project="discl", config={"lr": 1e-5})
    installed = {name: importlib.util.find_spec(name) is not None for name in ("tensorboard", "wandb")}
    assert (loggers.tensorboard is not None) == installed["tensorboard"]
    assert (loggers.wandb is not None) == installed["wandb"]
    for name, present in installed.items():
        assert (f"the {name} package is not installed" in caplog.text) != present
    loggers.log({"epoch": 0, "loss": 1.5, "hard_guidance": "50"}, 0)
    loggers.close()
