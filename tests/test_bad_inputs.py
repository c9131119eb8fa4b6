"""Bad input everywhere: one line naming the file / row / flag, an exit code other than 0, nothing written.

A battery over every entry script (in-process through ``run_cli``, as the scripts run), then a few real processes
for the exit code and the flow scripts (bash: their checks run before any Python starts). Each case points its
outputs into a folder of its own that must not exist afterwards; no case may leave a run record anywhere.
Also: every flag of every entry script has help text and shows its default (or says it is required).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from helpers import REPO_ROOT, load_script

from discl.cli import run_cli
from discl.data.hard_sample_csv import write_hard_sample_csv
from discl.data.training_tables import BUILD_RECORD, write_training_table
from discl.datasets import get_dataset
from discl.runrecord import RECORDS_DIR
from discl.tiny import TINY_OPEN_CLIP

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HARD = "data_generation/make_hard_samples.py"
PROMPTS = "data_generation/ImageNet_LT/get_text_prompt.py"
GENE = "data_generation/gene_img.py"
SCORE = "data_generation/comp_clip_scores.py"
PLOT = "data_generation/plot_spectrum.py"
VIEW = "data_generation/reference_view.py"
BUILD = "curriculum/build_data.py"
TRAIN = "curriculum/train.py"
ENTRY_SCRIPTS = (HARD, PROMPTS, GENE, SCORE, PLOT, BUILD, TRAIN, "data_generation/iWildCam/gene_img.py",
                 "data_generation/ImageNet_LT/gene_img.py", "data_generation/iWildCam/comp_clip_scores.py",
                 "data_generation/ImageNet_LT/comp_clip_scores.py", "curriculum/iWildCam/build_data.py",
                 "curriculum/ImageNet_LT/build_data.py", "curriculum/iWildCam/train.py",
                 "curriculum/ImageNet_LT/train.py", "curriculum/ImageNet_LT/train_baseline.py", VIEW)
GEN_TINY = ["--device", "cpu", "--strengths", "0.5", "--seeds", "10", "--steps", "2", "--resolution", "32x20"]


@pytest.fixture(scope="module")
def world(hf_home, mini_iwildcam, mini_imagenet_lt, tmp_path_factory) -> SimpleNamespace:
    """Good inputs to spoil: a hard-sample CSV, a generated and scored spectrum, a training table, a prompt JSON."""
    base = tmp_path_factory.mktemp("bad_inputs")
    wilds = get_dataset("iwildcam", mini_iwildcam)
    images = wilds.training_images()
    names = wilds.class_names()
    rows = [(p, y) for p, y in zip(images.paths, images.labels) if y in (1, 2)][:2]
    hard = base / "hard.csv"
    write_hard_sample_csv(pd.DataFrame({"class_id": [y for _, y in rows], "class_name": [names[y] for _, y in rows],
                                        "real_path": [p for p, _ in rows],
                                        "image_stem": [Path(p).stem for p, _ in rows]}), hard, wilds)
    syn = base / "syn"
    common = ["--dataset", "iwildcam", "--data-root", str(mini_iwildcam)]
    assert load_script(GENE).main([*common, "--data-csv", str(hard), "--output-dir", str(syn), *GEN_TINY]) == 0
    assert load_script(SCORE).main([*common, "--syn-path", str(syn), "--device", "cpu", "--workers", "0",
                                    "--threshold", "-1"]) == 0
    lt = get_dataset("imagenet_lt", mini_imagenet_lt).training_images()
    table = base / "tables" / "train.csv"
    write_training_table(pd.DataFrame({"title": "x", "filepath": lt.paths, "label": lt.labels, "strength": 0,
                                       "guidance": 100, "seed": 100, "img_id": range(-1, -len(lt.paths) - 1, -1)}),
                         table)
    prompts = base / "prompts.json"
    prompts.write_text(json.dumps({"goldfish": ["a goldfish in a bowl"] * 10}))
    return SimpleNamespace(base=base, wilds=mini_iwildcam, lt=mini_imagenet_lt, hard=hard, syn=syn, table=table,
                           prompts=prompts)


def _records(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(RECORDS_DIR) if p.is_dir()]


def _fails(script: str, argv: list[str], capsys) -> tuple[int, str]:
    """Run an entry script as ``python script ...`` would (``run_cli``): its exit code and its last stderr line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        run_cli(load_script(script).main, argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "no message"
    return stop.value.code, lines[-1]


def _spoiled_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(RECORDS_DIR))
    return target


# (case id, script, arguments given the world w and the case's output folder o, words the error line must say)
CASES = [
    # --- make_hard_samples.py ----------------------------------------------------------------------------------
    ("hard: root is not a WILDS root", HARD, lambda w, o: ["--dataset", "iwildcam", "--data-root", str(w.base),
                                                           "--output", str(o / "h.csv")], ["not a WILDS"]),
    ("hard: output is a folder", HARD, lambda w, o: ["--dataset", "iwildcam", "--data-root", str(w.wilds),
                                                     "--output", str(w.base)], ["--output is a folder"]),
    ("hard: checkpoint missing", HARD, lambda w, o: ["--dataset", "iwildcam", "--data-root", str(w.wilds),
                                                     "--checkpoint", str(o / "nope.pt"), "--output", str(o / "h.csv")],
     ["nope.pt", "--checkpoint"]),
    ("hard: batch size 0", HARD, lambda w, o: ["--dataset", "iwildcam", "--data-root", str(w.wilds), "--batch-size",
                                               "0", "--output", str(o / "h.csv")], ["--batch-size"]),
    ("hard: max prob above 1", HARD, lambda w, o: ["--dataset", "iwildcam", "--data-root", str(w.wilds),
                                                   "--max-prob", "1.5", "--output", str(o / "h.csv")], ["--max-prob"]),
    ("hard: criterion none alone", HARD, lambda w, o: ["--dataset", "imagenet_lt", "--data-root", str(w.lt),
                                                       "--criterion", "none", "--output", str(o / "h.csv")],
     ["--criterion none"]),
    ("hard: no tail rule on iwildcam", HARD, lambda w, o: ["--dataset", "iwildcam", "--data-root", str(w.wilds),
                                                           "--tail-classes", "--output", str(o / "h.csv")],
     ["--tail-classes"]),
    ("hard: negative cap", HARD, lambda w, o: ["--dataset", "iwildcam", "--data-root", str(w.wilds),
                                               "--per-class-cap", "-1", "--output", str(o / "h.csv")],
     ["--per-class-cap"]),
    ("hard: unknown open_clip model", HARD, lambda w, o: ["--dataset", "iwildcam", "--data-root", str(w.wilds),
                                                          "--model", "ViT-Nope", "--pretrained", "", "--device",
                                                          "cpu", "--output", str(o / "h.csv")], ["ViT-Nope"]),
    ("hard: unknown dataset", HARD, lambda w, o: ["--dataset", "nope", "--data-root", str(w.wilds), "--output",
                                                  str(o / "h.csv")], ["--dataset", "nope"]),
    ("hard: negative workers", HARD, lambda w, o: ["--dataset", "iwildcam", "--data-root", str(w.wilds),
                                                   "--workers", "-1", "--output", str(o / "h.csv")], ["--workers"]),
    ("hard: train list missing", HARD, lambda w, o: ["--dataset", "imagenet_lt", "--data-root", str(w.lt),
                                                     "--train-list", "nope.txt", "--output", str(o / "h.csv")],
     ["nope.txt"]),
    ("hard: unknown criterion", HARD, lambda w, o: ["--dataset", "iwildcam", "--data-root", str(w.wilds),
                                                    "--criterion", "hardest", "--output", str(o / "h.csv")],
     ["--criterion", "invalid choice"]),
    ("hard: output missing", HARD, lambda w, o: ["--dataset", "iwildcam", "--data-root", str(w.wilds)],
     ["--output", "required"]),
    # --- get_text_prompt.py ------------------------------------------------------------------------------------
    ("prompts: no classes", PROMPTS, lambda w, o: ["--prompt-json", str(o / "p.json"), "--backend", "template"],
     ["--data-csv", "--classes"]),
    ("prompts: zero prompts", PROMPTS, lambda w, o: ["--classes", "goldfish", "--num-prompts", "0", "--prompt-json",
                                                     str(o / "p.json"), "--backend", "template"], ["--num-prompts"]),
    ("prompts: openai without a key", PROMPTS, lambda w, o: ["--classes", "goldfish", "--prompt-json",
                                                             str(o / "p.json")], ["OPENAI_API_KEY"]),
    ("prompts: hard CSV missing", PROMPTS, lambda w, o: ["--data-csv", str(o / "nope.csv"), "--prompt-json",
                                                         str(o / "p.json"), "--backend", "template"],
     ["nope.csv", "not found"]),
    ("prompts: JSON is a folder", PROMPTS, lambda w, o: ["--classes", "goldfish", "--prompt-json", str(w.base),
                                                         "--backend", "template"], ["--prompt-json is a folder"]),
    ("prompts: damaged JSON to resume", PROMPTS, lambda w, o: ["--classes", "goldfish", "--prompt-json",
                                                               str(_text(o.parent / "bad.json", "{not json")),
                                                               "--backend", "template"], ["bad.json", "not valid JSON"]),
    ("prompts: zero timeout", PROMPTS, lambda w, o: ["--classes", "goldfish", "--prompt-json", str(o / "p.json"),
                                                     "--timeout", "0"], ["--timeout"]),
    # --- gene_img.py -------------------------------------------------------------------------------------------
    ("gene: hard CSV missing", GENE, lambda w, o: _gene(w, o, csv=o.parent / "nope.csv"), ["nope.csv", "not found"]),
    ("gene: header-only hard CSV", GENE, lambda w, o: _gene(w, o, csv=_text(o.parent / "head.csv",
                                                                            w.hard.read_text().splitlines()[0] + "\n")),
     ["head.csv", "no rows"]),
    ("gene: a row's image is missing", GENE, lambda w, o: _gene(w, o, csv=_missing_image(w, o.parent)),
     ["gone.csv", "row 2", "image not found"]),
    ("gene: absurd resolution", GENE, lambda w, o: _gene(w, o, "--resolution", "100000x100000"), ["--resolution"]),
    ("gene: resolution not WxH", GENE, lambda w, o: _gene(w, o, "--resolution", "big"), ["--resolution", "big"]),
    ("gene: batch size 0", GENE, lambda w, o: _gene(w, o, "--batch-size", "0"), ["--batch-size"]),
    ("gene: zero steps", GENE, lambda w, o: _gene(w, o, "--steps", "0"), ["--steps"]),
    ("gene: strength above 1", GENE, lambda w, o: _gene(w, o, "--strengths", "1.5"), ["--strengths", "1.5"]),
    ("gene: negative seed", GENE, lambda w, o: _gene(w, o, "--seeds", "-1"), ["--seeds"]),
    ("gene: part beyond the parts", GENE, lambda w, o: _gene(w, o, "--part", "3", "--total-parts", "2"), ["--part"]),
    ("gene: output is a file", GENE, lambda w, o: _gene(w, o, out=w.hard), ["--output-dir is a file"]),
    ("gene: diffusion model path missing", GENE, lambda w, o: _gene(w, o, "--diffusion-model", str(o / "no-model")),
     ["--diffusion-model", "no-model"]),
    ("gene: LLM prompts missing", GENE, lambda w, o: ["--dataset", "imagenet_lt", "--data-root", str(w.lt),
                                                      "--data-csv", str(REPO_ROOT / "data_generation/ImageNet_LT/"
                                                                                    "sample.csv"),
                                                      "--output-dir", str(o), *GEN_TINY], ["--prompt-json"]),
    ("gene: GPU that is not there", GENE, lambda w, o: _gene(w, o, "--device", "cuda:64"), ["--device", "cuda:64"]),
    ("gene: JPEG quality 0", GENE, lambda w, o: _gene(w, o, "--jpeg-quality", "0"), ["--jpeg-quality"]),
    ("gene: dry run at 0 s per image", GENE, lambda w, o: _gene(w, o, "--dry-run", "--seconds-per-image", "0"),
     ["--seconds-per-image"]),
    ("gene: negative retries", GENE, lambda w, o: _gene(w, o, "--max-retries", "-1"), ["--max-retries"]),
    ("gene: a folder split into other parts", GENE, lambda w, o: _gene(w, o, "--part", "1", "--total-parts", "2",
                                                                       out=_copy(w, o)),
     ["part001-of001.csv", "--total-parts"]),
    # --- comp_clip_scores.py -----------------------------------------------------------------------------------
    ("score: folder missing", SCORE, lambda w, o: _score(w, o), ["not a folder"]),
    ("score: header-only manifest", SCORE, lambda w, o: _score(w, _header_only(w, o)), ["manifests", "header only"]),
    ("score: a synthetic image is missing", SCORE, lambda w, o: _score(w, _one_image_gone(w, o)),
     ["part001-of001.csv", "row 1"]),
    ("score: image root missing", SCORE, lambda w, o: _score(w, _copy(w, o), "--image-root", str(o.parent / "no")),
     ["--image-root"]),
    ("score: threshold above 1", SCORE, lambda w, o: _score(w, _copy(w, o), "--threshold", "2"), ["threshold"]),
    ("score: resize not WxH", SCORE, lambda w, o: _score(w, _copy(w, o), "--resize", "huge"), ["--resize"]),
    ("score: batch size 0", SCORE, lambda w, o: _score(w, _copy(w, o), "--batch-size", "0"), ["--batch-size"]),
    ("score: CLIP model path missing", SCORE, lambda w, o: _score(w, _copy(w, o), "--clip-model", str(o / "x")),
     ["--clip-model"]),
    ("score: another dataset's manifests", SCORE, lambda w, o: ["--dataset", "imagenet_lt", "--syn-path",
                                                                str(_copy(w, o)), "--device", "cpu"],
     ["dataset", "imagenet_lt"]),
    # --- build_data.py -----------------------------------------------------------------------------------------
    ("build: no scores", BUILD, lambda w, o: _build(w, o, syn=w.base / "tables"), ["clip_scores.csv", "not found"]),
    ("build: output is a file", BUILD, lambda w, o: _build(w, o, out=w.hard), ["--output-dir is a file"]),
    ("build: negative validation size", BUILD, lambda w, o: _build(w, o, "--val-size", "-1"), ["--val-size"]),
    ("build: validation fraction 2", BUILD, lambda w, o: _build(w, o, "--max-val-fraction", "2"),
     ["--max-val-fraction"]),
    ("build: threshold 5", BUILD, lambda w, o: _build(w, o, "--threshold", "5"), ["threshold"]),
    ("build: nothing kept", BUILD, lambda w, o: _build(w, o, "--threshold", "0.99"), ["no synthetic image is kept"]),
    # --- train.py ----------------------------------------------------------------------------------------------
    ("train: zero epochs", TRAIN, lambda w, o: _train(w, o, "--epochs", "0"), ["--epochs"]),
    ("train: negative batch", TRAIN, lambda w, o: _train(w, o, "--batch-size", "-4"), ["--batch-size"]),
    ("train: output is a file", TRAIN, lambda w, o: _train(w, w.hard), ["--output-dir is a file"]),
    ("train: a row's image is missing", TRAIN, lambda w, o: _train(w, o, table=_gone_row(w, o.parent)),
     ["gone.csv", "row 3"]),
    ("train: table missing", TRAIN, lambda w, o: _train(w, o, table=o.parent / "nope.csv"), ["nope.csv"]),
    ("train: init checkpoint missing", TRAIN, lambda w, o: _train(w, o, "--init", str(o.parent / "nope.pt")),
     ["nope.pt"]),
    ("train: learning rate not a number", TRAIN, lambda w, o: _train(w, o, "--lr", "nan"), ["--lr", "nan"]),
    ("train: adaptive without validation table", TRAIN, lambda w, o: _train(w, o, "--curriculum", "adaptive",
                                                                            "--curriculum-epoch", "1",
                                                                            "--guidance-levels", "100"),
     ["--val-table"]),
    ("train: table of an unfinished build", TRAIN, lambda w, o: _train(w, o, table=_unfinished(w, o.parent)),
     ["did not finish"]),
    ("train: curriculum epoch beyond epochs", TRAIN, lambda w, o: _train(w, o, "--curriculum", "fixed",
                                                                         "--curriculum-epoch", "5"),
     ["--curriculum-epoch"]),
    ("train: GPU that is not there", TRAIN, lambda w, o: _train(w, o, "--device", "cuda:64"), ["--device"]),
    ("train: negative workers", TRAIN, lambda w, o: _train(w, o, "--workers", "-1"), ["--workers"]),
    ("train: tail fraction 1.5", TRAIN, lambda w, o: _train(w, o, "--tail-fraction", "1.5"), ["--tail-fraction"]),
    ("train: unknown open_clip model", TRAIN, lambda w, o: ["--trainer", "flyp", "--dataset", "iwildcam",
                                                            "--data-root", str(w.wilds), "--output-dir", str(o),
                                                            "--model", "ViT-Nope", "--device", "cpu"], ["ViT-Nope"]),
    # --- plot_spectrum.py --------------------------------------------------------------------------------------
    ("plot: no manifests", PLOT, lambda w, o: ["--syn-path", str(w.base / "tables"), "--figure", str(o / "f.png")],
     ["manifest"]),
    ("plot: zero rows", PLOT, lambda w, o: ["--syn-path", str(w.syn), "--rows", "0", "--figure", str(o / "f.png")],
     ["--rows"]),
]


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _gene(w, o, *extra, csv=None, out=None) -> list[str]:
    return ["--dataset", "iwildcam", "--data-root", str(w.wilds), "--data-csv", str(csv or w.hard), "--output-dir",
            str(out or o), *GEN_TINY, *extra]


def _missing_image(w, folder: Path) -> Path:
    frame = pd.read_csv(w.hard)
    frame.loc[1, "filepath"] = str(folder / "gone.jpg")
    frame.to_csv(folder / "gone.csv", index=False)
    return folder / "gone.csv"


def _score(w, syn: Path, *extra) -> list[str]:
    return ["--dataset", "iwildcam", "--syn-path", str(syn), "--device", "cpu", "--workers", "0", *extra]


def _copy(w, o: Path) -> Path:
    return _spoiled_copy(w.syn, o.parent / "syn")


def _header_only(w, o: Path) -> Path:
    syn = _copy(w, o)
    manifest = syn / "manifests" / "part001-of001.csv"
    manifest.write_text(manifest.read_text().splitlines()[0] + "\n")
    return syn


def _one_image_gone(w, o: Path) -> Path:
    syn = _copy(w, o)
    first = pd.read_csv(syn / "manifests" / "part001-of001.csv")["synthetic_path"].iloc[0]
    (syn / first).unlink()
    return syn


def _build(w, o, *extra, syn=None, out=None) -> list[str]:
    return ["--dataset", "iwildcam", "--data-root", str(w.wilds), "--syn-path", str(syn or w.syn), "--output-dir",
            str(out or o), *extra]


def _train(w, o, *extra, table=None) -> list[str]:
    return ["--trainer", "ce", "--dataset", "imagenet_lt", "--data-root", str(w.lt), "--train-table",
            str(table or w.table), "--output-dir", str(o), "--curriculum", "none", "--epochs", "1", "--width", "4",
            "--crop-size", "32", "--resize-size", "36", "--batch-size", "16", "--workers", "0", "--device", "cpu",
            *extra]


def _gone_row(w, folder: Path) -> Path:
    frame = pd.read_csv(w.table, sep="\t")
    frame.loc[2, "filepath"] = str(folder / "gone.jpg")
    write_training_table(frame, folder / "gone.csv")
    return folder / "gone.csv"


def _unfinished(w, folder: Path) -> Path:
    (folder / "data").mkdir()
    shutil.copy(w.table, folder / "data" / "train.csv")
    (folder / "data" / BUILD_RECORD).write_text(json.dumps({"complete": False}))
    return folder / "data" / "train.csv"


def test_the_battery_is_large_enough():
    assert len(CASES) + len(PROCESS_CASES) >= 40
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_one_line_nonzero_and_writes_nothing(case, world, tmp_path, capsys, monkeypatch):
    _, script, argv, says = case
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "out"  # where the case's outputs would go: it must not appear
    args = argv(world, out)
    before = sorted(p.relative_to(world.base) for p in world.base.rglob("*"))
    code, line = _fails(script, args, capsys)
    assert code != 0 and "error:" in line
    for word in says:
        assert word in line, (word, line)
    assert not out.exists(), sorted(out.rglob("*"))
    assert not _records(tmp_path)
    assert sorted(p.relative_to(world.base) for p in world.base.rglob("*")) == before  # no record there either


def test_a_site_defaults_file_that_is_not_json(world, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DISCL_DEFAULTS", str(_text(tmp_path / "site.json", "{workers: 8")))
    code, line = _fails(TRAIN, _train(world, tmp_path / "out"), capsys)
    assert code == 2 and "site.json" in line and "DISCL_DEFAULTS" in line
    assert not (tmp_path / "out").exists()


# --- real processes: the exit code, and the flow scripts' checks before any Python starts ---------------------

PROCESS_CASES = [
    ("gene_img.py process: CSV missing", [sys.executable, str(REPO_ROOT / GENE), "--dataset", "iwildcam",
                                          "--data-csv", "{tmp}/nope.csv", "--output-dir", "{tmp}/out"], {},
     ["nope.csv"]),
    ("train.py process: zero epochs", [sys.executable, str(REPO_ROOT / TRAIN), "--trainer", "ce", "--dataset",
                                       "imagenet_lt", "--data-root", "{lt}", "--output-dir", "{tmp}/out", "--epochs",
                                       "0"], {}, ["--epochs"]),
    ("flow: DATA_ROOT unset", ["bash", str(REPO_ROOT / "scripts/data_generation_wilds.sh")], {"SYN": "{tmp}/out"},
     ["DATA_ROOT"]),
    ("flow: DATA_ROOT without iwildcam_v2.0", ["bash", str(REPO_ROOT / "scripts/data_generation_wilds.sh")],
     {"DATA_ROOT": "{tmp}", "SYN": "{tmp}/out"}, ["iwildcam_v2.0"]),
    ("flow: LLM without a key", ["bash", str(REPO_ROOT / "scripts/data_generation_inlt.sh")],
     {"DATA_ROOT": "{lt}", "SYN": "{tmp}/out"}, ["OPENAI_API_KEY"]),
    ("flow: a part beyond the parts", ["bash", str(REPO_ROOT / "scripts/data_generation.sh")],
     {"DATASET": "iwildcam", "DATA_ROOT": "{wilds}", "SYN": "{tmp}/out", "TOTAL_PARTS": "2", "PARTS": "1 5"},
     ["PARTS", "5"]),
    ("flow: training without scores", ["bash", str(REPO_ROOT / "scripts/train_iwildcam.sh")],
     {"DATA_ROOT": "{wilds}", "SYN": "{tmp}", "OUT": "{tmp}/out"}, ["clip_scores.csv"]),
    ("flow: unknown loss", ["bash", str(REPO_ROOT / "scripts/train_imagenet_lt.sh")],
     {"DATA_ROOT": "{lt}", "SYN": "{syn}", "OUT": "{tmp}/out", "LOSS": "focal"}, ["LOSS=focal"]),
    ("flow: more processes than GPUs", ["bash", str(REPO_ROOT / "scripts/train_imagenet_lt.sh")],
     {"DATA_ROOT": "{lt}", "SYN": "{syn}", "OUT": "{tmp}/out", "NPROC": "4", "CUDA_VISIBLE_DEVICES": ""},
     ["NPROC=4", "0 GPU"]),
    ("sbatch: no GPU in the job", ["bash", str(REPO_ROOT / "scripts/slurm/gene_img_array.sbatch")],
     {"DATASET": "iwildcam", "DATA_ROOT": "{wilds}", "SYN": "{tmp}/out", "HARD_CSV": "{hard}",
      "CUDA_VISIBLE_DEVICES": "", "SLURM_SUBMIT_DIR": str(REPO_ROOT)}, ["no GPU visible", "DEVICE=cpu"]),
    ("sbatch: unknown flow", ["bash", str(REPO_ROOT / "scripts/slurm/train.sbatch")],
     {"FLOW": "train_mnist", "SLURM_SUBMIT_DIR": str(REPO_ROOT)}, ["FLOW=train_mnist"]),
]


@pytest.mark.parametrize("case", PROCESS_CASES, ids=[case[0] for case in PROCESS_CASES])
def test_bad_input_to_a_process_or_flow(case, world, tmp_path, script_env):
    _, command, variables, says = case
    fill = {"tmp": str(tmp_path), "lt": str(world.lt), "wilds": str(world.wilds), "syn": str(world.syn),
            "hard": str(world.hard)}
    env = {k: v for k, v in script_env.items() if k not in ("OPENAI_API_KEY", "DATA_ROOT", "SYN", "DISCL_DEFAULTS")}
    env.update({k: v.format(**fill) for k, v in variables.items()})
    done = subprocess.run([part.format(**fill) for part in command], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0 and lines, done
    assert "Traceback" not in done.stderr and "error" in lines[-1], done.stderr
    for word in says:
        assert word in lines[-1], (word, lines[-1])
    assert not (tmp_path / "out").exists() and not _records(tmp_path)


# --- the command line itself -----------------------------------------------------------------------------------

def _parser(script: str):
    module = load_script(script)
    if hasattr(module, "get_args_parser"):
        try:
            return module.get_args_parser()
        except TypeError:
            pass
    from discl import clipscore, hard_samples, prompts, training_data
    from discl.generation import runner
    from discl.training import cli

    if script.endswith("gene_img.py"):
        import argparse

        return argparse.ArgumentParser(parents=[runner.get_args_parser(getattr(module, "DATASET", "iwildcam"))])
    if script.endswith("comp_clip_scores.py"):
        return clipscore.get_args_parser(getattr(module, "DATASET", "iwildcam"))
    if script.endswith("build_data.py"):
        return training_data.get_args_parser(getattr(module, "DATASET", "iwildcam"))
    if script == HARD:
        return hard_samples.get_args_parser("iwildcam")
    if script == PROMPTS:
        return prompts.get_args_parser()
    return cli.get_args_parser("flyp", "iwildcam")


@pytest.mark.parametrize("script", ENTRY_SCRIPTS)
def test_every_flag_has_help_and_shows_its_default(script):
    parser = _parser(script)
    for action in parser._actions:
        if not action.option_strings or action.help == "==SUPPRESS==" or "--help" in action.option_strings:
            continue
        flag = action.option_strings[-1]
        assert action.help and len(action.help) > 10, flag
        text = action.help % {"default": action.default} if "%(default)" in action.help else action.help
        if action.nargs == 0 and action.const is True:  # --verbose, --dry-run: off unless given
            continue
        assert "default" in text or "required" in text or action.required, (script, flag, text)


@pytest.mark.parametrize("script", ENTRY_SCRIPTS)
def test_flags_are_kebab_case_and_cite_nothing_outside_the_repo(script):
    parser = _parser(script)
    for action in parser._actions:
        canonical = action.option_strings[0] if action.option_strings else None
        if canonical and canonical.startswith("--"):
            assert "_" not in canonical, canonical
        assert "spec" not in (action.help or "").lower().split(), (canonical, action.help)
    assert "shared/" not in (parser.description or "")


def test_one_name_per_concept_across_scripts():
    """Canonical spellings: the dataset root --data-root, an output folder --output-dir, the generation output read
    back --syn-path, the folder relative image paths resolve against --image-root; no --model that means another
    model than open_clip's, no --max-retries that means HTTP retries."""
    canonical = {}
    for script in ENTRY_SCRIPTS:
        first = canonical.setdefault(script, {})
        for action in _parser(script)._actions:  # a hidden alias (--wilds-root) comes as a second action
            if action.option_strings:
                first.setdefault(action.dest, action.option_strings[0])
    flags = {script: {o for a in _parser(script)._actions for o in a.option_strings} for script in ENTRY_SCRIPTS}
    for script, names in canonical.items():
        if script not in (PLOT, VIEW):  # they read a generation output only
            assert names["data_root"] == "--data-root", script
    assert canonical[GENE]["output_dir"] == canonical[BUILD]["save_folder"] == canonical[TRAIN]["output_dir"] \
        == "--output-dir"
    assert canonical[SCORE]["syn_path"] == canonical[BUILD]["syn_path"] == canonical[PLOT]["output_path"] \
        == canonical[VIEW]["syn_path"] == "--syn-path"
    assert canonical[GENE]["image_root"] == canonical[SCORE]["image_root"] == canonical[PLOT]["real_path"] \
        == "--image-root"
    assert canonical[GENE]["clip_model"] == canonical[SCORE]["clip_model"] == "--clip-model"
    assert not {"--model"} & (flags[GENE] | flags[SCORE] | flags[PROMPTS])
    assert "--max-retries" not in flags[PROMPTS] and "--max-retries" in flags[GENE]
    # the reference's snake_case spellings still work
    assert {"--output_path", "--data_csv", "--total_parts", "--prompt_json"} <= flags[GENE]
    assert {"--syn_path", "--real_path"} <= flags[SCORE] and {"--syn_path", "--save_folder"} <= flags[BUILD]


def test_console_commands_are_declared_and_callable():
    import importlib
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert "pytest" not in " ".join(project["dependencies"])  # test-only packages stay out of the runtime list
    assert project["requires-python"] == ">=3.11"
    commands = project["scripts"]
    assert {"discl-hard-samples", "discl-prompts", "discl-generate", "discl-clipscore", "discl-build-data",
            "discl-train", "discl-tiny-world"} <= set(commands)
    for target in commands.values():
        module, name = target.split(":")
        assert callable(getattr(importlib.import_module(module), name)), target
    assert (REPO_ROOT / "LICENSE").read_text().startswith("MIT License")
    pins = {line.split("==")[0] for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
            if "==" in line}
    assert "tensorboard" in pins


HELP_SCRIPTS = sorted(str(p.relative_to(REPO_ROOT)) for folder in ("data_generation", "curriculum", "scripts")
                      for p in (REPO_ROOT / folder).rglob("*.py") if "def main" in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("script", HELP_SCRIPTS)
def test_every_script_prints_its_help(script, capsys):
    """--help works everywhere (argparse formats help text: a bare '%' in one used to crash it)."""
    with pytest.raises(SystemExit) as info:
        load_script(script).main(["--help"])
    assert info.value.code == 0 and "usage:" in capsys.readouterr().out
