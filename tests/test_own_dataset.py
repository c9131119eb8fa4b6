"""A user's own data through every phase with the generic scripts: ``--dataset folder``, nothing dataset-specific.

The mini folder dataset is given in its hardest form: a CSV list with integer labels and a ``--class-names``
file, and no val split (the dataset holds out a seeded share of train). Tiny models throughout: the tiny
open_clip for hard samples and FLYP, the tiny SDXL refiner at 32 px / 4 steps / 1 seed / 2 strengths, the tiny
CLIP for CLIPScore, an 8-wide ResNet-10 for CE. The quickstart runs the ImageFolder layout of the same data
(``scripts/quickstart.d/60-own-dataset.sh``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import load_script

from discl.data.hard_sample_csv import read_hard_sample_csv
from discl.data.training_tables import read_training_table
from discl.datasets import get_dataset
from discl.manifest import read_manifest
from discl.tiny import TINY_OPEN_CLIP
from discl.tiny.datasets import make_mini_folder, write_mini_folder_csv

# label order = the sorted folder names; "space rocket" differs from its folder so the file is visibly used
NAMES = ["astronaut", "coffee mug", "space rocket", "sunflower", "tabby cat"]
TAIL = {0, 2, 3, 4}  # fewer than 20 training images: every class but the coffee mugs (22 after the hold-out)
HARD_PER_CLASS = 2
STRENGTHS = (0.5, 0.9)  # guidance levels 50 and 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run(hf_home, tmp_path_factory) -> dict:
    """Every phase once, in-process through the generic entry scripts; returns the paths they wrote."""
    out = tmp_path_factory.mktemp("own")
    photos = make_mini_folder(out / "photos")
    listing = write_mini_folder_csv(photos, out / "lists" / "my_data.csv", integer_labels=True,
                                    splits=("train", "test"))
    names = out / "lists" / "names.txt"
    names.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    dataset = ["--dataset", "folder", "--data-root", str(listing), "--class-names", str(names)]
    paths = {"listing": listing, "names": names, "hard": out / "hard.csv", "gen": out / "gen",
             "data": out / "data", "flyp": out / "flyp", "ce": out / "ce"}

    assert load_script("data_generation/make_hard_samples.py").main([
        *dataset, "--criterion", "none", "--tail-classes", "--per-class-cap", str(HARD_PER_CLASS),
        "--model", TINY_OPEN_CLIP, "--pretrained", "", "--workers", "0", "--device", "cpu",
        "--output", str(paths["hard"])]) == 0
    assert load_script("data_generation/gene_img.py").main([
        *dataset, "--data-csv", str(paths["hard"]), "--output-path", str(paths["gen"]),
        "--strengths", *map(str, STRENGTHS), "--seeds", "10", "--steps", "4", "--resolution", "32x32",
        "--batch-size", "16", "--dtype", "fp32", "--device", "cpu"]) == 0
    assert load_script("data_generation/comp_clip_scores.py").main([
        *dataset, "--syn-path", str(paths["gen"]), "--real-path", str(photos), "--device", "cpu",
        "--workers", "0"]) == 0
    # a random tiny CLIP scores every image below 0.25: keep them all (-1) so training sees synthetic rows
    assert load_script("curriculum/build_data.py").main([
        *dataset, "--syn-path", str(paths["gen"]), "--save-folder", str(paths["data"]), "--threshold", "-1"]) == 0
    train = load_script("curriculum/train.py")
    tables = ["--train-table", str(paths["data"] / "train.csv"), "--val-table", str(paths["data"] / "validate.csv")]
    common = ["--epochs", "1", "--batch-size", "16", "--curriculum-epoch", "1", "--workers", "0",
              "--device", "cpu", "--eval-batch-size", "64", "--no-plots"]
    assert train.main(["--trainer", "flyp", *dataset, *tables, *common, "--output-dir", str(paths["flyp"]),
                       "--curriculum", "adaptive", "--real-sample-size", "16", "--model", TINY_OPEN_CLIP,
                       "--pretrained", "", "--lr", "1e-3", "--wd", "0", "--warmup", "1"]) == 0
    assert train.main(["--trainer", "ce", *dataset, *tables, *common, "--output-dir", str(paths["ce"]),
                       "--curriculum", "fixed", "--guidance-levels", "10", "50", "100", "--level-starts",
                       "--stage-data", "replace-hard", "--loss", "balanced_softmax", "--width", "8",
                       "--crop-size", "32", "--resize-size", "36"]) == 0
    return paths


@pytest.fixture(scope="module")
def data(run):
    return get_dataset("folder", run["listing"], class_names=str(run["names"]))


def test_the_dataset_holds_out_val_from_train(data):
    assert data.class_names() == data.text_names() == NAMES
    assert data.val_held_out and data.eval_splits == ("val", "test")
    assert data.class_counts() == [9, 22, 5, 2, 14]  # 10/24/6/3/16 less 1/2/1/1/2 held out
    assert len(data.eval_set("val").paths) == 7 and len(data.eval_set("test").paths) == 15


def test_hard_samples_are_the_tail_classes_capped(run, data):
    hard = read_hard_sample_csv(run["hard"], data)
    assert pd.read_csv(run["hard"]).columns.tolist() == ["filepath", "image_name", "label", "classname"]
    assert hard.groupby("class_id").size().to_dict() == {label: HARD_PER_CLASS for label in sorted(TAIL)}
    assert set(hard["class_folder"]) == {"astronaut", "space_rocket", "sunflower", "tabby_cat"}
    val_paths = set(data.eval_set("val").paths)
    assert set(hard["real_path"]) <= set(data.training_images().paths) and not set(hard["real_path"]) & val_paths


def test_generation_writes_the_spectrum_with_the_readable_prompts(run):
    manifest = pd.concat([read_manifest(p) for p in sorted((run["gen"] / "manifests").glob("*.csv"))])
    assert len(manifest) == len(TAIL) * HARD_PER_CLASS * len(STRENGTHS)
    assert sorted(manifest["image_guidance"].unique()) == [10, 50]
    assert set(manifest["dataset"]) == {"folder"}
    assert set(manifest["prompt"]) == {f"a photo of a {NAMES[label]}" for label in TAIL}
    for relative in manifest["synthetic_path"]:
        with Image.open(run["gen"] / relative) as image:
            assert image.size == (32, 32)
    assert (run["gen"] / "tabby_cat" / "Strength90_guidance100_seed10").is_dir()


def test_clip_scores_cover_every_synthetic_image(run):
    scores = read_manifest(run["gen"] / "clip_scores.csv")
    assert len(scores) == len(TAIL) * HARD_PER_CLASS * len(STRENGTHS)
    for column in ("clip_image_text", "clip_image_image"):
        values = scores[column].astype(float)
        assert values.between(-1.0, 1.0).all() and values.notna().all()
    assert (scores["keep"].astype(str) == (scores["clip_image_text"].astype(float) >= 0.25).astype(str)).all()


def test_training_tables(run):
    train = read_training_table(run["data"] / "train.csv")
    validation = read_training_table(run["data"] / "validate.csv")
    hard_images = len(TAIL) * HARD_PER_CLASS
    held = hard_images // 2  # the default hold-out (100) is capped at half of the hard images
    assert validation.groupby("guidance")["img_id"].nunique().to_dict() == {10: held, 50: held, 100: held}
    real = train[train["guidance"] == 100]
    assert len(real) == 52 - held  # every training image once (one caption), less the probe images
    assert train[train["guidance"] < 100].groupby("guidance").size().to_dict() == {10: held, 50: held}
    assert (real["img_id"] < 0).sum() == 52 - hard_images and (train.loc[train["guidance"] < 100, "img_id"] >= 0).all()
    assert set(train["title"]) == {f"a photo of a {name}." for name in NAMES}
    assert not (run["data"] / "train.txt").exists()


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("trainer", ["flyp", "ce"])
def test_both_trainers_select_on_val_and_report_the_folder_metrics(run, trainer):
    summary = _summary(run[trainer])
    assert summary["trainer"] == trainer and summary["dataset"] == "folder"
    assert summary["selection"] == {"split": "val", "metric": "top1"} and summary["splits"] == ["val", "test"]
    assert summary["best_epoch"] == 0 and (run[trainer] / "checkpoints" / "last.pt").is_file()
    for split, size in (("val", 7), ("test", 15)):
        metrics = summary["best"][split]
        assert set(metrics) == {"top1", "macro_f1", "many", "medium", "few"}
        assert metrics["many"] is None  # no class has 100 training images: NaN, written as null
        assert 0.0 <= metrics["top1"] <= 100.0 and 0.0 <= metrics["macro_f1"] <= 100.0
        assert math.isclose(metrics["top1"] * size / 100, round(metrics["top1"] * size / 100), abs_tol=1e-6)
    stats = pd.read_csv(run[trainer] / "stats.tsv", sep="\t")
    assert len(stats) == 1 and stats["val_top1"].iloc[0] == pytest.approx(summary["best"]["val"]["top1"])


def test_flyp_adaptive_probe_runs_on_the_folder_validation_table(run):
    stages = pd.read_csv(run["flyp"] / "curriculum.tsv", sep="\t", keep_default_na=False)
    chosen = stages[stages["scores"] != ""]
    assert len(chosen) >= 1
    for _, stage in chosen.iterrows():
        scores = {int(k): float(v) for k, v in (item.split(":") for item in stage["scores"].split(";"))}
        assert set(scores) == {10, 50, 100} and stage["level"] == max(scores, key=scores.get)


def test_ce_fixed_curriculum_walks_synthetic_to_real(run):
    stages = pd.read_csv(run["ce"] / "curriculum.tsv", sep="\t")
    assert stages["level"].tolist() == [10, 50, 100]
    assert np.allclose(stages["start_epoch"], [0, 1 / 3, 2 / 3], atol=1e-3)
    # a synthetic stage = the non-hard images' real rows + the hard training images' synthetic rows: 48 rows
    assert stages["rows"].tolist() == [48, 48, 48]
