"""Experiment files and the runner: validation, the real command lines, run states read from run folders, SLURM
arrays in waves, the shipped experiment files, and a tiny matrix run end to end (an interrupted run resumed,
complete runs skipped, the table aggregated)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image, ImageFilter

from helpers import REPO_ROOT, load_script

from discl.errors import InputError
from discl.experiments import runner as R
from discl.experiments.spec import Column, load_experiment, slug, waves
from discl.tiny import TINY_OPEN_CLIP

BASE = """
name = "unit"
runs_dir = "{runs}"
seeds = [0, 1]
[variables]
ROOT = "data/root"
DATA = "${{ROOT}}/tables"
[defaults]
trainer = "ce"
dataset = "imagenet_lt"
flags = {{ data-root = "${{ROOT}}", workers = 0 }}
[table]
columns = [{{ title = "overall", split = "test", metric = "overall" }}]
"""

METHODS = """
[[methods]]
name = "CE"
script = "curriculum/ImageNet_LT/train_baseline.py"
flags = {{ plots = false }}
[[methods]]
name = "CE + DisCL"
after = ["ce"]
compare = "ce"
[methods.flags]
init = "${{runs}}/ce/seed${{seed}}/checkpoints/best.pt"
guidance-levels = [10, 100]
level-starts = []
train-table = "${{DATA}}/train.txt"
"""


def write(tmp_path: Path, text: str, **values) -> Path:
    path = tmp_path / "experiment.toml"
    path.write_text(text.format(runs=tmp_path / "runs", **values))
    return path


@pytest.fixture()
def unit(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # script paths are relative to the repository root
    monkeypatch.delenv("ROOT", raising=False)
    return load_experiment(write(tmp_path, BASE + METHODS))


# --- experiment files -----------------------------------------------------------------------------------------

def test_methods_seeds_variables_and_runs(unit, tmp_path):
    assert [m.id for m in unit.methods] == ["ce", "ce-discl"] and slug("FLYP + DisCL") == "flyp-discl"
    ce, discl = unit.methods
    assert ce.seeds == discl.seeds == (0, 1) and ce.compare is None and discl.compare == "ce"
    assert discl.flags["train-table"] == "data/root/tables/train.txt"  # a variable naming another
    assert discl.flags["init"] == "${runs}/ce/seed${seed}/checkpoints/best.pt"  # built-ins wait for the run
    assert [r.id for r in unit.runs()] == ["ce/seed0", "ce/seed1", "ce-discl/seed0", "ce-discl/seed1"]
    assert unit.runs()[3].output_dir == tmp_path / "runs" / "ce-discl" / "seed1"
    assert unit.columns == [Column("overall", "test", "overall")]
    assert [[r.id for r in wave] for wave in waves(unit, unit.runs())] == [["ce/seed0", "ce/seed1"],
                                                                          ["ce-discl/seed0", "ce-discl/seed1"]]


def test_environment_and_set_override_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, BASE + METHODS)
    monkeypatch.setenv("ROOT", "/env/root")
    assert load_experiment(path).methods[0].flags["data-root"] == "/env/root"
    experiment = load_experiment(path, overrides={"ROOT": "/set/root"})
    assert experiment.methods[1].flags["train-table"] == "/set/root/tables/train.txt"


@pytest.mark.parametrize("change, message", [
    (("[table]", "[tabel]"), "unknown key\\(s\\) tabel"),
    (('name = "CE"\nscript', 'name = "CE"\ncolor = "red"\nscript'),
     "\\[\\[methods\\]\\] 1 \\(CE\\): unknown key\\(s\\) color"),
    (("${{DATA}}/train.txt", "${{NOWHERE}}/train.txt"), "unknown variable \\$\\{NOWHERE\\}.*--set NOWHERE=VALUE"),
    (('after = ["ce"]', 'after = ["cee"]'), "'cee' is not a method id"),
    (('compare = "ce"', 'compare = "x"'), "'x' is not a method id"),
    (("plots = false", "seed = 3"), "--seed is set by the runner"),
    (('trainer = "ce"', 'trainer = "svm"'), "unknown trainer 'svm'"),
    (('dataset = "imagenet_lt"', 'dataset = "mnist"'), "unknown dataset 'mnist'"),
    (('seeds = [0, 1]', 'seeds = [0, 0]'), "seeds repeat"),
    (('name = "CE"\nscript', 'name = "CE"\nafter = ["ce-discl"]\nscript'), "form a cycle"),
    (('name = "CE"\nscript', 'name = "CE"\nwiseft = true\nscript'), "trainer flyp only, not ce"),
    (('name = "CE"\nscript', 'name = "CE"\npaper = {{ OOD = 1 }}\nscript'), "'OOD' is not a column"),
    # an id names the runs' folder under runs_dir: it must not leave it
    (('name = "CE"\nscript', 'name = "CE"\nid = "../../escape"\nscript'),
     "\\[\\[methods\\]\\] 1 \\(CE\\): id '../../escape' must be letters, digits"),
    (('name = "CE"\nscript', 'name = "CE"\nid = ".."\nscript'), "id '..' must be"),
    (('name = "CE"\nscript', 'name = "CE"\nid = "a b"\nscript'), "id 'a b' must be"),
    # a column must be one the runs report
    (('split = "test"', 'split = "nosplit"'),
     "\\[table\\].columns\\[1\\] \\(overall\\): split 'nosplit' is not one the imagenet_lt runs report \\(val, "
     "test\\)"),
    (('metric = "overall"', 'metric = "auc"'), "columns\\[1\\] \\(overall\\): metric 'auc' is not one"),
    (("[table]\n", "[table]\ndecimals = -3\n"), "\\[table\\].decimals: expected an integer >= 0, got -3"),
    (("[table]\n", '[table]\ndecimals = "2"\n'), "\\[table\\].decimals: expected an integer"),
])
def test_bad_experiment_files_name_the_key(tmp_path, change, message):
    text = (BASE + METHODS).replace(*change)
    with pytest.raises(InputError, match=message) as err:
        load_experiment(write(tmp_path, text))
    assert str(err.value).startswith(str(tmp_path / "experiment.toml"))


def test_misspelt_flags_and_bad_values_fail_before_any_run(unit, tmp_path, monkeypatch):
    R.check_commands(unit)  # the scripts' own parsers accept the file
    for change, message in ((("plots = false", "plotz = false"), "method ce: unrecognized arguments: --no-plotz"),
                            (("workers = 0", 'workers = "many"'), "argument --workers: invalid int value")):
        experiment = load_experiment(write(tmp_path, (BASE + METHODS).replace(*change)))
        with pytest.raises(InputError, match=message):
            R.check_commands(experiment)


@pytest.mark.parametrize("change, message", [
    (("workers = 0", "workers = 0, epochs = -2"), "method ce: --epochs: expected"),  # the loop's check
    (("plots = false", 'train-mode = "onlyfc"'), "method ce: --train-mode onlyfc needs --init"),  # the task's
    (("plots = false", "lr = -1"), "method ce: --lr: expected"),
    (("plots = false", 'dataset-option = ["val_lst=other.txt"]'),
     "method ce: --dataset-option: the imagenet_lt dataset has no option 'val_lst'"),  # the dataset's keys
])
def test_the_pre_flight_runs_the_scripts_config_checks(unit, tmp_path, capsys, change, message):
    from discl.cli import run_cli

    path = write(tmp_path, (BASE + METHODS).replace(*change))
    with pytest.raises(InputError, match=message) as err:
        R.check_commands(load_experiment(path))
    assert str(err.value).startswith(f"{path}: ")
    for extra in (["--dry-run"], []):  # nothing launched, nothing written
        with pytest.raises(SystemExit) as info:
            run_cli(load_script("curriculum/run_experiments.py").main, [str(path), *extra])
        assert info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def flyp_with_wiseft(wiseft_flags: str) -> str:
    """BASE with FLYP as its trainer and a FLYP method followed by WiSE-FT with these flags (TOML)."""
    return BASE.replace('trainer = "ce"', 'trainer = "flyp"') + f"""
[[methods]]
name = "FLYP"
wiseft = true
wiseft_flags = {{{{ {wiseft_flags} }}}}
"""


def test_the_pre_flight_runs_wisefts_check(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    text = flyp_with_wiseft("alphas = [0, 7]")
    with pytest.raises(InputError, match="method flyp \\(wiseft_flags\\): --alphas: .*7"):
        R.check_commands(load_experiment(write(tmp_path, text)))


@pytest.mark.parametrize("flags, message", [
    (["--jobs", "0"], "error: --jobs: expected a positive number of runs at once, got 0"),
    (["--jobs", "-1"], "error: --jobs: expected a positive number of runs at once, got -1"),
    (["--seeds", "7"], "error: --seeds: no run with seed(s) 7 in "),
    (["--only", "ce", "--seeds", "0", "5"], "error: --seeds: no run with seed(s) 5 in "),
])
def test_runner_flags_that_select_nothing_or_run_nothing_are_errors(unit, capsys, flags, message):
    from discl.cli import run_cli

    for extra in (["--dry-run"], []):
        with pytest.raises(SystemExit) as info:
            run_cli(load_script("curriculum/run_experiments.py").main, [str(unit.path), *flags, *extra])
        assert info.value.code == 2 and capsys.readouterr().err.startswith(message)
    assert not unit.runs_dir.exists()


def test_default_columns_come_from_the_dataset():
    from discl.experiments.spec import default_columns

    assert default_columns("iwildcam") == [Column("ID-test", "id_test", "f1"), Column("OOD-test", "test", "f1")]
    assert default_columns("imagenet_lt") == [Column("test", "test", "overall")]


# --- command lines and run states ---------------------------------------------------------------------------

def test_flag_args():
    assert R.flag_args({"epochs": 2, "plots": False, "resume": True, "guidance-levels": [50, 100],
                        "level-starts": [], "pretrained": ""}) == [
        "--epochs", "2", "--no-plots", "--resume", "--guidance-levels", "50", "100", "--level-starts",
        "--pretrained", ""]


def test_train_commands(unit, tmp_path):
    ce, discl = unit.runs()[1], unit.runs()[2]
    assert R.train_command(unit, ce)[1:] == [
        "curriculum/ImageNet_LT/train_baseline.py", "--dataset", "imagenet_lt", "--data-root", "data/root",
        "--workers", "0", "--no-plots", "--seed", "1", "--output-dir", str(tmp_path / "runs" / "ce" / "seed1")]
    command = R.train_command(unit, discl, resume=True)
    # the generic script takes the trainer; built-ins resolved per run
    assert command[1:4] == ["curriculum/train.py", "--trainer", "ce"]
    assert command[command.index("--init") + 1] == str(tmp_path / "runs" / "ce" / "seed0" / "checkpoints" / "best.pt")
    assert command[-1] == "--resume" and "--level-starts" in command
    unit.launcher = ["torchrun", "--nproc_per_node", "2"]
    assert R.train_command(unit, discl)[:4] == ["torchrun", "--nproc_per_node", "2", "curriculum/train.py"]


def _finish(folder: Path, done: int, total: int, checkpoint: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps({"epochs_done": done, "num_epochs": total}))
    if checkpoint:
        (folder / "checkpoints").mkdir(exist_ok=True)
        (folder / "checkpoints" / "last.pt").write_bytes(b"")


def test_run_states_from_the_folders(unit):
    ce0, ce1, discl0, discl1 = unit.runs()
    _finish(ce0.output_dir, 3, 3)
    _finish(ce1.output_dir, 1, 3)
    assert [R.run_status(r) for r in unit.runs()] == ["complete", "incomplete", "missing", "missing"]
    assert R.planned_commands(unit, ce0) == []
    assert R.planned_commands(unit, ce1)[0][-1] == "--resume"
    assert R.planned_commands(unit, discl0)[0][-1] != "--resume"
    assert R.progress(ce1) == "epoch 1 of 3"
    # a run waits for the run of its after-method with the same seed
    assert R.blocked_by(unit, discl0) == [] and R.blocked_by(unit, discl1) == ["ce/seed1"]
    outcome = R.execute(unit, discl1)
    assert (outcome.result, outcome.detail) == ("blocked", "waiting for ce/seed1")
    assert R.execute(unit, ce0).result == "skipped"
    table = R.status_table(unit, unit.runs())
    assert f"{'ce/seed1':<32} {'incomplete':<10} epoch 1 of 3" in table
    assert table.splitlines()[-1] == "1 complete, 1 incomplete, 2 missing"


def test_wiseft_is_part_of_a_run(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    text = flyp_with_wiseft('alphas = [0, 0.5, 1], device = "cpu"')
    experiment = load_experiment(write(tmp_path, text))
    run = experiment.runs()[0]
    _finish(run.output_dir, 2, 2)
    assert R.run_status(run) == "trained"
    assert R.planned_commands(experiment, run) == [[
        R.python(), "curriculum/wiseft.py", "--run-dir", str(run.output_dir), "--alphas", "0", "0.5", "1",
        "--device", "cpu"]]
    (run.output_dir / "wiseft").mkdir()
    (run.output_dir / "wiseft" / "wiseft.json").write_text("{}")
    assert R.run_status(run) == "complete"


def test_slurm_arrays_in_waves_and_submission(unit, tmp_path):
    ce0 = unit.runs()[0]
    _finish(ce0.output_dir, 3, 3)
    pending = [r for r in unit.runs() if R.run_status(r) != "complete"]
    scripts = R.slurm_scripts(unit, pending, ["python", "run_experiments.py", "e.toml"], ["--partition=gpu"])
    assert len(scripts) == 2
    first, second = (s.splitlines() for s in scripts)
    assert "#SBATCH --array=1" in first and "#SBATCH --array=2,3" in second  # the complete run is left out
    assert "#SBATCH --partition=gpu" in first and "# runs: 2=ce-discl/seed0 3=ce-discl/seed1" in second
    assert first[-1] == 'exec python run_experiments.py e.toml --run-index "$SLURM_ARRAY_TASK_ID"'
    # a stand-in for sbatch that records its arguments and answers like sbatch --parsable
    fake = tmp_path / "sbatch"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls"}\necho "$(wc -l < {tmp_path / "calls"})42;cluster"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    assert R.submit_slurm(unit, scripts, [str(fake)]) == ["142", "242"]
    calls = (tmp_path / "calls").read_text().splitlines()
    folder = unit.runs_dir / "slurm"
    assert calls == [f"--parsable {folder / 'wave0.sbatch'}",
                     f"--parsable --dependency=afterany:142 {folder / 'wave1.sbatch'}"]
    assert (folder / "wave1.sbatch").read_text() == scripts[1]
    with pytest.raises(InputError, match="not found"):
        R.submit_slurm(unit, scripts, [str(tmp_path / "no-sbatch")])


def test_shipped_experiment_files(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    shapes = {}
    for path in sorted((REPO_ROOT / "experiments").glob("*.toml")):
        experiment = load_experiment(path)
        R.check_commands(experiment)
        shapes[path.stem] = (len(experiment.methods), sorted({len(m.seeds) for m in experiment.methods}))
    # the paper's two tables with 3 seeds, the ablations, the quickstart's 3 methods × 2 seeds, the digits world's
    # CE / BS table with its controls × 5 seeds (docs/digits-world.md)
    assert shapes == {"iwildcam": (3, [3]), "imagenet_lt": (4, [3]), "ablations": (9, [3]), "tiny": (3, [2]),
                      "digits": (10, [5])}
    iwildcam = load_experiment(REPO_ROOT / "experiments" / "iwildcam.toml")
    assert {m.name: m.paper for m in iwildcam.methods}["FLYP + DisCL"] == {"OOD": (38.2, 0.5), "ID": (54.3, 1.4)}
    ablations = load_experiment(REPO_ROOT / "experiments" / "ablations.toml")
    schedules = {m.flags.get("curriculum") for m in ablations.methods}
    assert schedules == {"adaptive", "fixed", "reverse", "random", "mixed", "single", "two_stage", "none"}


# --- a tiny matrix end to end ------------------------------------------------------------------------------------

TINY = """
name = "tiny"
runs_dir = "{runs}"
seeds = [0, 1]
[defaults]
trainer = "flyp"
dataset = "iwildcam"
compare = "flyp"
[defaults.flags]
data-root = "{root}"
train-table = "{table}"
model = "{model}"
pretrained = ""
device = "cpu"
workers = 0
epochs = 2
curriculum-epoch = 1
batch-size = 16
eval-batch-size = 64
lr = 1e-3
warmup = 1
plots = false
[table]
columns = [{{ title = "OOD", split = "test", metric = "f1" }}]
scale = 100
[[methods]]
id = "flyp"
name = "FLYP"
wiseft = true
flags = {{ curriculum = "none" }}
wiseft_flags = {{ alphas = [0, 1], device = "cpu", plots = false }}
[[methods]]
id = "mixed"
name = "FLYP + mixed"
flags = {{ curriculum = "mixed" }}
"""


@pytest.fixture(scope="module")
def tiny_table(mini_iwildcam, tmp_path_factory) -> Path:
    """An iWildCam train.csv whose every second non-empty image has a blurred guidance-50 version."""
    from discl.data.training_tables import write_training_table
    from discl.datasets import get_dataset

    out = tmp_path_factory.mktemp("tiny_table")
    dataset = get_dataset("iwildcam", mini_iwildcam)
    rows = []
    for index, (path, label) in enumerate(zip(*(dataset.training_images().paths, dataset.training_images().labels))):
        hard = label != 0 and index % 2 == 0
        versions = {100: path}
        if hard:
            versions[50] = str(out / f"{index}.jpg")
            with Image.open(path) as image:
                image.filter(ImageFilter.GaussianBlur(2)).save(versions[50])
        rows += [{"title": f"a photo of {dataset.text_names()[label]}.", "filepath": version, "label": label,
                  "strength": 100 - level, "guidance": level, "seed": 100 if level == 100 else 10,
                  "img_id": index if hard else -(index + 1)} for level, version in versions.items()]
    write_training_table(pd.DataFrame(rows), out / "train.csv")
    return out / "train.csv"


def test_tiny_matrix_resumes_skips_and_aggregates(hf_home, mini_iwildcam, tiny_table, tmp_path, monkeypatch,
                                                  capsys):
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    path = write(tmp_path, TINY, root=mini_iwildcam, table=tiny_table, model=TINY_OPEN_CLIP)
    experiment = load_experiment(path)
    script = load_script("curriculum/run_experiments.py")
    # one run was interrupted after its first epoch (as a preemption would leave it)
    interrupted = experiment.run("flyp/seed1")
    R.subprocess.run(R.train_command(experiment, interrupted) + ["--stop-after-epoch", "0"], check=True,
                     capture_output=True)
    assert R.run_status(interrupted) == "incomplete"

    assert script.main([str(path), "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "4 of 4 runs complete (0 already were)" in printed
    assert all(R.run_status(run) == "complete" for run in experiment.runs())
    log = (interrupted.output_dir / R.LOG).read_text()
    assert "--resume" in log and "curriculum/wiseft.py" in log
    record = json.loads((interrupted.output_dir / R.RECORD).read_text())
    assert record["train"] == R.train_command(experiment, interrupted)
    # the mixed baseline's first epoch trained on guidance 50 and real rows together
    stats = pd.read_csv(experiment.run("mixed/seed0").output_dir / "stats.tsv", sep="\t")
    assert stats["guidance_rows"][0].split()[0].startswith("50:") and stats["guidance"].tolist() == [-1, 100]

    # again: nothing left to do
    assert script.main([str(path)]) == 0
    again = capsys.readouterr().out
    assert again.count("skipped") == 4 and "4 of 4 runs complete (4 already were)" in again

    assert load_script("curriculum/aggregate.py").main([str(path), "--no-figures"]) == 0
    table = (experiment.runs_dir / "results" / "table.md").read_text()
    assert "| FLYP | " in table and "| FLYP + WiSE-FT (α = " in table and "2/2" in table and "†" not in table
    assert "| FLYP + mixed | FLYP |" in table  # a paired difference over both seeds
    summary = json.loads((interrupted.output_dir / "summary.json").read_text())
    assert summary["epochs_done"] == 2 and summary["seed"] == 1 and summary["curriculum_epoch"] == 1
    # a changed flag is reported, and a failing run fails the command
    changed = load_experiment(write(tmp_path, TINY.replace("lr = 1e-3", "lr = 1e-2"), root=mini_iwildcam,
                                    table=tiny_table, model=TINY_OPEN_CLIP))
    assert R.stale_record(changed, changed.run("flyp/seed1")) and not R.stale_record(experiment, interrupted)
    assert "(launched with other flags)" in R.status_table(changed, changed.runs())
    broken = write(tmp_path, TINY.replace('curriculum = "none"', 'curriculum = "none", train-table = "/no/table.csv"')
                   .replace("seeds = [0, 1]", "seeds = [7]"), root=mini_iwildcam, table=tiny_table,
                   model=TINY_OPEN_CLIP)
    assert script.main([str(broken), "--only", "flyp"]) == 1
    assert "flyp/seed7" in capsys.readouterr().out
    assert os.path.isfile(experiment.runs_dir / "flyp" / "seed7" / R.LOG)
