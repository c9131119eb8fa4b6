"""The CE trainer end to end on the mini ImageNet-LT: baseline → curriculum, schedules, resume, errors.

Runs the real entry scripts in-process (``main([...])``) with a 4-wide ResNet-10 on 32 px crops.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageEnhance

from helpers import load_script

from discl import curriculum as C
from discl import lt, resnet
from discl.data.imagenet_lt import class_counts, read_split, split_by_count
from discl.data.training_tables import write_data_roots, write_imagenet_lt_list
from discl.datasets import get_dataset
from discl.fileio import atomic_save_image, atomic_torch_save, atomic_write_text
from discl.training.config import LoopConfig
from discl.training.data import read_table
from discl.training.loop import tail_classes
from discl.training.outputs import parse_level_map
from discl.training.stage_data import StageData

REPO = Path(__file__).resolve().parents[1]
LEVELS = (10, 30, 50)


def _script(name: str):
    return load_script(f"curriculum/ImageNet_LT/{name}.py")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lt_world(mini_imagenet_lt, tmp_path_factory):
    """The mini ImageNet-LT plus what the curriculum builder writes: train.txt (real + synthetic tail rows at
    guidance 10/30/50), validate.txt (probe rows at every level) and data_roots.json."""
    root = mini_imagenet_lt
    folder = tmp_path_factory.mktemp("lt_data")
    synthetic_root = folder / "synthetic"
    entries = read_split(root, "train")
    groups = split_by_count(class_counts(entries))
    tail = [e for e in entries if groups[e.label] == "few"]
    train = [(e.path, e.label, 100) for e in entries]
    probe = []
    for level in LEVELS:
        for index, entry in enumerate(tail):
            relative = f"{Path(entry.path).parent.name}/g{level}/{Path(entry.path).stem}.jpg"
            with Image.open(root / entry.path) as image:
                # lower guidance = further from the photo: wash the colours out
                washed = ImageEnhance.Color(image.convert("RGB")).enhance(level / 100)
            atomic_save_image(washed, synthetic_root / relative)
            (probe if index % 8 == 0 else train).append((relative, entry.label, level))
    probe += [(e.path, e.label, 100) for e in tail[::8]]
    columns = ["path", "label", "guidance"]
    write_imagenet_lt_list(pd.DataFrame(train, columns=columns), folder / "train.txt")
    write_imagenet_lt_list(pd.DataFrame(probe, columns=columns), folder / "validate.txt")
    write_data_roots(folder, root, synthetic_root)
    return SimpleNamespace(root=root, train=folder / "train.txt", validate=folder / "validate.txt",
                           tail={e.label for e in tail})


def _tiny(world) -> list[str]:
    return ["--data-root", str(world.root), "--width", "4", "--crop-size", "32", "--resize-size", "36",
            "--workers", "0", "--batch-size", "32", "--eval-batch-size", "64", "--downsample-ratio", "0.2",
            "--tail-fraction", "0.5"]


def _curriculum(world, output: Path, *extra: str) -> list[str]:
    return _tiny(world) + ["--train-table", str(world.train), "--output-dir", str(output), "--no-plots",
                           "--epochs", "3", "--guidance-levels", "10", "30", "100", "--level-starts", "0", "1", "2",
                           "--curriculum-epoch", "3", *extra]


def _stats(output: Path) -> pd.DataFrame:
    return pd.read_csv(output / "stats.tsv", sep="\t")


@pytest.fixture(scope="module")
def baseline(lt_world, tmp_path_factory):
    """One epoch of the plain baseline: the ``--init`` of the curriculum runs."""
    output = tmp_path_factory.mktemp("lt_runs") / "baseline"
    _script("train_baseline").main(_tiny(lt_world) + ["--output-dir", str(output), "--epochs", "1",
                                                      "--tail-fraction", "none", "--downsample-ratio", "1"])
    return output


def test_baseline_trains_on_the_plain_long_tailed_list(baseline, lt_world, capsys):
    stats = _stats(baseline)
    assert list(stats["epoch"]) == [0] and list(stats["guidance"]) == [100]
    # real training images only: 323 in the mini ImageNet-LT, 10 full batches of 32 in an epoch
    assert parse_level_map(stats["guidance_rows"][0]) == {100: 320}
    summary = json.loads((baseline / "summary.json").read_text())
    assert summary["best_epoch"] == 0 and summary["selection"] == {"split": "val", "metric": "overall"}
    assert summary["steps_per_epoch"] == 10 and summary["stage_data"] == "tail-topup"
    assert set(summary["best"]["test"]) == {"overall", "many", "medium", "few"}
    for name in ("checkpoints/best.pt", "checkpoints/last.pt", "metrics_val.png", "metrics_test.png",
                 "overall_curves.png", "curriculum_timeline.png"):
        assert (baseline / name).is_file(), name
    state = torch.load(baseline / "checkpoints" / "best.pt", weights_only=True)
    assert state["args"]["arch"] == "resnet10" and state["args"]["num_classes"] == 8
    # the checkpoint rebuilds its classifier on its own (e.g. to score hard samples)
    model = resnet.load_classifier(baseline / "checkpoints" / "best.pt")
    assert model.fc.out_features == 8 and not model.training


def test_fixed_curriculum_loads_the_scheduled_level_each_epoch(baseline, lt_world, tmp_path, capsys):
    output = tmp_path / "fixed"
    _script("train").main(_curriculum(lt_world, output, "--init", str(baseline / "checkpoints" / "best.pt")))
    printed = capsys.readouterr().out
    stats = _stats(output)
    assert list(stats["guidance"]) == [10, 30, 100]
    counts = [parse_level_map(c) for c in stats["guidance_rows"]]
    # a pass: 290 non-tail images · 0.2 = 58 real; the tail topped up to 58 (50 %): 33 real tail + 25 synthetic;
    # an epoch is 116 // 32 = 3 batches of it
    assert [set(c) for c in counts] == [{10, 100}, {30, 100}, {100}]
    assert all(sum(c.values()) == 96 for c in counts)
    stages = pd.read_csv(output / "curriculum.tsv", sep="\t")
    assert list(stages["level"]) == [10, 30, 100] and list(stages["rows"]) == [116] * 3
    assert "test:few" in printed and "selected epoch" in printed
    assert len(printed.strip().splitlines()) == 5  # header, three epochs, the selected one


def test_onlyfc_changes_the_classifier_and_nothing_else(baseline, lt_world, tmp_path):
    init = baseline / "checkpoints" / "best.pt"
    output = tmp_path / "onlyfc"
    _script("train").main(_curriculum(lt_world, output, "--init", str(init), "--train-mode", "onlyfc",
                                      "--epochs", "1", "--curriculum-epoch", "1", "--guidance-levels", "10", "100",
                                      "--level-starts", "0", "1"))
    before = torch.load(init, weights_only=True)["model"]
    after = torch.load(output / "checkpoints" / "last.pt", weights_only=True)["model"]
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"fc.weight", "fc.bias"}  # batch-norm running statistics included


def test_resume_after_a_stop_equals_an_uninterrupted_run(baseline, lt_world, tmp_path):
    train = _script("train").main
    common = ["--init", str(baseline / "checkpoints" / "best.pt"), "--loss", "balanced_softmax"]
    train(_curriculum(lt_world, tmp_path / "whole", *common))
    train(_curriculum(lt_world, tmp_path / "split", *common, "--stop-after-epoch", "1"))
    assert list(_stats(tmp_path / "split")["epoch"]) == [0, 1]
    train(_curriculum(lt_world, tmp_path / "split", *common, "--resume"))
    pd.testing.assert_frame_equal(_stats(tmp_path / "whole"), _stats(tmp_path / "split"))
    a = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def _adaptive(world, baseline, output: Path, *extra: str) -> list[str]:
    return _tiny(world) + [
        "--train-list", str(world.train), "--curriculum-val-list", str(world.validate), "--output-dir",  # old spellings
        str(output), "--no-plots", "--epochs", "3", "--curriculum", "adaptive", "--guidance-levels", "10", "30", "50",
        "100", "--curriculum-epoch", "2", "--real-sample-size", "40", "--init",
        str(baseline / "checkpoints" / "best.pt"), *extra]


def test_adaptive_round_probes_then_trains_on_the_chosen_level(baseline, lt_world, tmp_path):
    train = _script("train").main
    output = tmp_path / "adaptive"
    train(_adaptive(lt_world, baseline, output))
    stages = pd.read_csv(output / "curriculum.tsv", sep="\t")
    # an epoch is 116 // 32 = 3 steps, the curriculum ends at step 6. A round: probe, one batch of a fresh
    # sample of 40 real rows, probe, one pass (3 steps) of the chosen level; the second round is cut at step 6.
    assert list(stages["kind"]) == ["real_sample", "level", "real_sample", "level", "level"]
    assert list(stages["start_step"]) == [0, 1, 4, 5, 6] and list(stages["rows"])[::2] == [40, 40, 116]
    for _, stage in stages[stages["scores"].notna()].iterrows():
        scores = {int(g): float(v) for g, v in (item.split(":") for item in stage["scores"].split(";"))}
        assert set(scores) == {10, 30, 50, 100} and stage["level"] == C.argmax_level(scores)
    assert stages["scores"].notna().sum() == 2 and stages["level"].iloc[-1] == 100
    state = torch.load(output / "checkpoints" / "last.pt", weights_only=True)
    assert state["schedule"]["round"] == 2 and state["trainer"]["total_steps"] == 9
    # the stages are seeded by their index: a resumed run draws the same real samples and passes
    train(_adaptive(lt_world, baseline, tmp_path / "split", "--stop-after-epoch", "0"))
    train(_adaptive(lt_world, baseline, tmp_path / "split", "--resume"))
    pd.testing.assert_frame_equal(_stats(output), _stats(tmp_path / "split"))
    pd.testing.assert_frame_equal(stages, pd.read_csv(tmp_path / "split" / "curriculum.tsv", sep="\t"))
    resumed = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(state["model"][k], resumed[k]) for k in resumed)


def _fails(capsys, argv: list[str], script: str = "train") -> str:
    from discl.cli import run_cli

    with pytest.raises(SystemExit) as exit_info:
        run_cli(_script(script).main, argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip()


def test_bad_inputs_give_one_line_errors_and_write_nothing(lt_world, tmp_path, capsys):
    lists = tmp_path / "lists"
    bad_label = lists / "train_bad_label.txt"
    atomic_write_text(bad_label, (lt_world.root / "ImageNet_LT_train.txt").read_text() + "train/x/y.JPEG 8\n")
    empty = lists / "empty.txt"
    atomic_write_text(empty, "\n")
    output = tmp_path / "out"
    base = _tiny(lt_world) + ["--output-dir", str(output), "--curriculum", "none", "--guidance-levels", "100"]

    error = _fails(capsys, base + ["--train-table", str(bad_label)])
    assert error.startswith(f"error: {bad_label}: row 324: column 'label': label 8 outside the class range 0..7")
    missing_image = lists / "train_missing_image.txt"
    atomic_write_text(missing_image, (lt_world.root / "ImageNet_LT_train.txt").read_text() + "train/x/y.JPEG 7\n")
    error = _fails(capsys, base + ["--train-table", str(missing_image)])
    assert error.startswith(f"error: {missing_image}: row 324: column 'filepath': image ")
    assert error.endswith("train/x/y.JPEG not found")
    error = _fails(capsys, base + ["--train-table", str(lists / "missing.txt")])
    assert error == f"error: {lists / 'missing.txt'}: list file not found"
    error = _fails(capsys, base + ["--train-table", str(empty)])
    assert error.startswith(f"error: {empty}: list file is empty")
    # the curriculum needs synthetic rows of its levels
    error = _fails(capsys, _tiny(lt_world) + ["--output-dir", str(output), "--guidance-levels", "10", "100",
                                              "--level-starts", "0", "1"])
    assert "guidance level 10 is scheduled but the table has no synthetic rows of tail classes" in error
    assert len(error.splitlines()) == 1
    assert not output.exists()


def test_an_existing_run_is_not_overwritten_without_resume(baseline, lt_world, capsys):
    error = _fails(capsys, _tiny(lt_world) + ["--output-dir", str(baseline), "--epochs", "1"], "train_baseline")
    assert "pass --resume" in error
    same = _tiny(lt_world) + ["--output-dir", str(baseline), "--epochs", "1", "--resume", "--tail-fraction", "none",
                              "--downsample-ratio", "1"]
    error = _fails(capsys, same + ["--lr", "0.5"], "train_baseline")
    assert "lr=0.001 (now 0.5)" in error
    # the data, its interpretation and the starting weights are settings of the run too
    error = _fails(capsys, same + ["--train-table", str(lt_world.train), "--split-convention", "standard",
                                   "--init", str(baseline / "checkpoints" / "best.pt")], "train_baseline")
    assert f"train_table=None (now '{lt_world.train}')" in error
    assert "split_convention='reference' (now 'standard')" in error and "init=None (now " in error


def test_resume_checks_the_number_of_steps(baseline, lt_world, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(baseline, run)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state["trainer"]["total_steps"] += 1
    atomic_torch_save(state, run / "checkpoints" / "last.pt")
    error = _fails(capsys, _tiny(lt_world) + ["--output-dir", str(run), "--epochs", "1", "--resume",
                                              "--tail-fraction", "none", "--downsample-ratio", "1"], "train_baseline")
    assert error.startswith(f"error: {run / 'checkpoints' / 'last.pt'}: the run has 10 steps (10 per epoch), the "
                            "checkpoint's had 11 (10 per epoch)")


def test_level_starting_at_the_curriculum_epoch_is_an_error(lt_world, tmp_path, capsys):
    # levels 10, 30, real at epochs 0, 1, 2: with --curriculum-epoch 1 level 30 would never run
    error = _fails(capsys, _curriculum(lt_world, tmp_path / "cut", "--curriculum-epoch", "1"))
    assert "--level-starts 0 1 2: guidance level(s) 30 (start 1) would never run before --curriculum-epoch 1" in error
    assert not (tmp_path / "cut").exists()


def test_onlyfc_needs_starting_weights(lt_world, tmp_path, capsys, caplog):
    error = _fails(capsys, _curriculum(lt_world, tmp_path / "fc", "--train-mode", "onlyfc"))
    assert "--train-mode onlyfc needs --init" in error
    assert not (tmp_path / "fc").exists()
    loop = LoopConfig(output_dir=tmp_path, curriculum="fixed")
    lt.CETask(lt.CEOptions()).check(loop)
    assert "fine-tuning from RANDOM weights" in caplog.text
    caplog.clear()
    lt.CETask(lt.CEOptions(init=Path("some/checkpoint.pt"))).check(loop)
    lt.CETask(lt.CEOptions()).check(LoopConfig(output_dir=tmp_path, curriculum="none"))  # the baseline
    assert not caplog.records


def test_init_with_the_wrong_width_is_an_input_error(baseline, lt_world, tmp_path, capsys):
    init = baseline / "checkpoints" / "best.pt"
    error = _fails(capsys, _curriculum(lt_world, tmp_path / "w", "--init", str(init), "--width", "8"))
    assert error.startswith(f"error: {init}: shape of conv1.weight")
    assert not (tmp_path / "w").exists()


def test_epoch_data_from_the_builders_lists(lt_world):
    dataset = get_dataset("imagenet_lt", lt_world.root)
    table = lt.CETask(lt.CEOptions()).prepare_table(read_table(lt_world.train, real_root=lt_world.root), dataset)
    assert tail_classes(dataset) == frozenset(lt_world.tail)
    assert sorted(set(table["guidance"])) == [10, 30, 50, 100]
    data = StageData("tail-topup", table, tail_classes(dataset), 0.2, 0.5)
    rows = data.rows(10, np.random.default_rng(3))
    assert len(rows) == data.epoch_rows == 116 and (rows["guidance"] == 10).sum() == 25
    assert all(Path(p).is_file() for p in rows["filepath"])


def test_ddp_two_processes_match_one_process(baseline, lt_world, tmp_path):
    """Two gloo ranks on CPU, the same global batch as one process: the same loss and weights; only rank 0 writes.

    ``onlyfc`` keeps batch norm in eval mode, so a forward pass does not depend on how the batch is split
    (DDP's batch-norm statistics are per rank); the augmentation is seeded per image, not per process."""
    args = _tiny(lt_world) + ["--epochs", "1", "--curriculum", "none", "--guidance-levels", "100",
                              "--curriculum-epoch", "0", "--train-mode", "onlyfc", "--no-plots", "--device", "cpu",
                              "--init", str(baseline / "checkpoints" / "best.pt")]
    _script("train").main(args + ["--output-dir", str(tmp_path / "one")])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # a short monitor interval: torchrun otherwise notices the finished workers only seconds later
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--monitor-interval", "0.2",
               "--nproc_per_node", "2", str(REPO / "curriculum" / "ImageNet_LT" / "train.py"), *args,
               "--output-dir", str(tmp_path / "two")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = _stats(tmp_path / "one"), _stats(tmp_path / "two")
    # 58 non-tail + 58 tail images: 3 global batches of 32, 16 per rank, as 3 batches of 32 on one process
    assert list(two["epoch"]) == [0] and two["step"][0] == one["step"][0] == 3
    assert two["guidance_rows"][0] == one["guidance_rows"][0] == "100:96"
    assert two["loss"][0] == pytest.approx(one["loss"][0], rel=1e-5)
    for split in ("val", "test"):
        assert two[f"{split}_overall"][0] == pytest.approx(one[f"{split}_overall"][0], abs=1e-9)
    weights = [torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)["model"]
               for name in ("one", "two")]
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key], value, rtol=1e-4, atol=1e-6, msg=key)
    assert done.stdout.count("selected epoch 0") == 1  # one report, from rank 0


def test_default_schedule_is_the_papers_10_30_50_real(lt_world):
    args = _script("train").get_args_parser().parse_args(["--data-root", str(lt_world.root), "--output-dir", "x"])
    assert (args.epochs, args.batch_size, args.curriculum_epoch, args.stage_data) == (65, 128, 60, "tail-topup")
    assert (args.lr, args.wd, args.downsample_ratio, args.tail_fraction) == (1e-3, 1e-5, 0.3, 0.136)
    schedule = C.make_schedule(args.curriculum, args.guidance_levels, args.curriculum_epoch, starts=args.level_starts)
    levels = [schedule.next_stage(epoch, 1).level for epoch in range(65)]
    assert levels == [10] * 14 + [30] * 15 + [50] * 15 + [100] * 21  # starts 0, 14, 29, 44; 65 epochs
    baseline = _script("train_baseline").get_args_parser().parse_args(["--data-root", "r", "--output-dir", "x"])
    assert (baseline.curriculum, baseline.downsample_ratio, baseline.tail_fraction) == ("none", 1.0, None)


def test_split_convention_moves_the_class_with_exactly_100_images(lt_world):
    # mini ImageNet-LT training counts: 120, 100, 50, 20, 19, 8, 4, 2
    reference = get_dataset("imagenet_lt", lt_world.root)
    standard = get_dataset("imagenet_lt", lt_world.root, split_convention="standard")
    assert reference.class_counts() == [120, 100, 50, 20, 19, 8, 4, 2]
    assert list(reference.class_groups()) == ["many", "many", "medium", "medium", "few", "few", "few", "few"]
    assert list(standard.class_groups()) == ["many", "medium", "medium", "medium", "few", "few", "few", "few"]
    assert tail_classes(reference) == tail_classes(standard) == frozenset({4, 5, 6, 7})


def test_baseline_checkpoint_finds_hard_samples(baseline, lt_world, tmp_path):
    """The ImageNet-LT baseline is a classifier trained on the real data: make_hard_samples scores with it."""
    output = tmp_path / "hard.csv"
    load_script("data_generation/make_hard_samples.py").main([
        "--dataset", "imagenet_lt", "--root", str(lt_world.root), "--list", "ImageNet_LT_train.txt",
        "--checkpoint", str(baseline / "checkpoints" / "best.pt"), "--device", "cpu", "--workers", "0",
        "--criterion", "misclassified", "--output", str(output)])
    scores = pd.read_csv(tmp_path / "hard_scores.csv")
    model = resnet.load_classifier(baseline / "checkpoints" / "best.pt")
    _, test_transform = lt.make_transforms(32, 36)
    first = scores.iloc[0]
    with Image.open(first["real_path"]) as image, torch.no_grad():
        probs = model(test_transform(image.convert("RGB"))[None]).softmax(-1)[0]
    assert first["true_prob"] == pytest.approx(float(probs[int(first["class_id"])]), abs=1e-5)
    hard = pd.read_csv(output)
    assert len(scores) == len(read_split(lt_world.root, "train"))
    assert len(hard) == int(scores["misclassified"].sum())
