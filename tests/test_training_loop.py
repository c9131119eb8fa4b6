"""The one training loop: stage-data recipes on hand-made tables, data order and seeding, any dataset with
either trainer, and model selection on the validation split only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageFilter

from helpers import load_script

from discl.data.training_tables import write_data_roots, write_imagenet_lt_list, write_training_table
from discl.datasets import get_dataset
from discl.datasets.imagenet_lt import ImageNetLT
from discl.errors import InputError
from discl.lt import CEOptions, CETask
from discl.tiny import TINY_OPEN_CLIP
from discl.training import stage_data as S
from discl.training.config import LoopConfig
from discl.training.data import GlobalBatchSampler, Lookup, TableImages, read_table
from discl.training.loop import tail_classes, train

COLUMNS = ["title", "filepath", "label", "strength", "guidance", "seed", "img_id"]
CE_TINY = ["--width", "8", "--crop-size", "32", "--resize-size", "36", "--workers", "0", "--eval-batch-size", "64",
           "--device", "cpu", "--no-plots"]
FLYP_TINY = ["--model", TINY_OPEN_CLIP, "--pretrained", "", "--workers", "0", "--eval-batch-size", "64",
             "--lr", "1e-3", "--wd", "0.0", "--warmup", "2", "--device", "cpu", "--no-plots"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _table(rows: list[tuple]) -> pd.DataFrame:
    """``(path, label, guidance, img_id)`` tuples as a canonical table."""
    return pd.DataFrame([{"title": f"c{label}", "filepath": path, "label": label, "strength": 100 - guidance,
                          "guidance": guidance, "seed": 100 if guidance == 100 else 10, "img_id": img_id}
                         for path, label, guidance, img_id in rows], columns=COLUMNS)


def _long_tail() -> pd.DataFrame:
    """Classes 0 and 1 with 10 real images each, class 2 (the tail) with 2; synthetic rows for class 2 at
    guidance 10 (five) and 30 (one), and one synthetic class-1 row that tail-topup must never use."""
    rows = [(f"r/c{c}/{i}.jpg", c, 100, -(10 * c + i + 1)) for c in (0, 1) for i in range(10)]
    rows += [(f"r/c2/{i}.jpg", 2, 100, i) for i in range(2)]
    rows += [(f"s/c2/g10_{i}.jpg", 2, 10, i % 2) for i in range(5)]
    rows += [("s/c2/g30_0.jpg", 2, 30, 0), ("s/c1/g10_0.jpg", 1, 10, 7)]
    return _table(rows)


# --- the paper's settings ------------------------------------------------------------------------------------

def test_paper_defaults_of_the_loop_and_both_trainers():
    from discl.config import paper_defaults
    from discl.flyp import FlypOptions, FlypTask

    # FLYP on iWildCam: ViT-B/16 from OpenAI, AdamW lr 1e-5 wd 0.2, 500 warm-up steps, batch 256, 20 epochs,
    # curriculum epoch 15, adaptive rounds over 30,000 real rows, hard images' rows replaced by synthetic ones
    assert paper_defaults(FlypOptions) == {"model": "ViT-B-16", "pretrained": "openai", "lr": 1e-5, "wd": 0.2,
                                           "warmup": 500}
    assert paper_defaults(LoopConfig) == {
        "epochs": 20, "batch_size": 256, "curriculum_epoch": 15, "adaptive_choice": "argmax",
        "real_sample_size": 30000, "stage_data": "replace-hard", "downsample_ratio": 0.3, "tail_fraction": 0.136,
        "split_convention": "reference"}
    assert FlypTask.loop_defaults == {}
    # CE on ImageNet-LT (LDMLR): ResNet-10, Adam lr 1e-3 wd 1e-5, 224 crops; 65 epochs of batch 128, guidance
    # 10 → 30 → 50 → real at epochs 0, 14, 29, 44, real only from epoch 60, 30 % of the non-tail + tail to 13.6 %
    assert paper_defaults(CEOptions) == {"arch": "resnet10", "width": 64, "train_mode": "full", "loss": "ce",
                                         "lr": 1e-3, "wd": 1e-5, "crop_size": 224, "resize_size": 256}
    assert CETask.loop_defaults == {"epochs": 65, "batch_size": 128, "curriculum": "fixed", "curriculum_epoch": 60,
                                    "guidance_levels": [10, 30, 50, 100], "level_starts": [0, 14, 29, 44],
                                    "stage_data": "tail-topup"}


# --- stage-data recipes ------------------------------------------------------------------------------------

def test_replace_hard_merges_synthetic_hard_rows_with_real_non_hard_rows():
    table = _table([("a", 0, 100, 0), ("b", 0, 100, -1), ("a50", 0, 50, 0), ("a70", 0, 70, 0), ("c", 1, 100, 1),
                    ("c50", 1, 50, 1)])
    assert S.replace_hard(table, 50).index.tolist() == [1, 2, 5]
    assert S.replace_hard(table, 70).index.tolist() == [1, 3]
    assert S.replace_hard(table, 100).index.tolist() == [0, 1, 4]
    data = S.StageData("replace-hard", table)
    assert data.epoch_rows == 3  # the real rows: an epoch's steps are cut from them
    assert data.rows(50, np.random.default_rng(0)).index.tolist() == [1, 2, 5]


def test_tail_target_makes_the_tail_the_given_fraction():
    assert S.tail_target(10, 0.5) == 10
    assert S.tail_target(10, 0.3) == 4  # 0.3 / 0.7 · 10 = 4.29, floored
    assert S.tail_target(1000, 0.136) == 157  # 157 / 1157 = 13.6 %


def test_tail_topup_synthetic_stage_without_replacement():
    rows = S.tail_topup(_long_tail(), 10, {2}, np.random.default_rng(0), 0.5, 0.3)
    non_tail, tail = rows[rows["label"] != 2], rows[rows["label"] == 2]
    assert len(non_tail) == 10 and non_tail["filepath"].is_unique  # half of the 20 non-tail images
    assert len(tail) == 4  # int(0.3 / 0.7 · 10)
    assert sorted(tail.loc[tail["guidance"] == 100, "filepath"]) == ["r/c2/0.jpg", "r/c2/1.jpg"]
    drawn = tail[tail["guidance"] != 100]
    assert len(drawn) == 2 and drawn["filepath"].is_unique and (drawn["guidance"] == 10).all()


def test_tail_topup_with_replacement_and_only_tail_classes():
    rows = S.tail_topup(_long_tail(), 30, {2}, np.random.default_rng(0), 0.5, 0.5)
    drawn = rows[rows["guidance"] != 100]
    # 10 tail rows wanted, 2 real, 8 drawn from the single guidance-30 image; the class-1 synthetic is ignored
    assert drawn["filepath"].tolist() == ["s/c2/g30_0.jpg"] * 8


def test_tail_topup_real_stage_repeats_the_real_tail():
    rows = S.tail_topup(_long_tail(), 100, {2}, np.random.default_rng(0), 0.5, 0.5)
    tail = rows[rows["label"] == 2]
    assert len(tail) == 10 and (tail["guidance"] == 100).all()
    assert set(tail["filepath"]) == {"r/c2/0.jpg", "r/c2/1.jpg"}


def test_tail_topup_depends_only_on_the_generator_and_its_size_on_nothing():
    table = _long_tail()
    first = S.tail_topup(table, 10, {2}, np.random.default_rng(7), 0.3, 0.136)
    again = S.tail_topup(table, 10, {2}, np.random.default_rng(7), 0.3, 0.136)
    other = S.tail_topup(table, 10, {2}, np.random.default_rng(8), 0.3, 0.136)
    pd.testing.assert_frame_equal(first, again)
    assert first["filepath"].tolist() != other["filepath"].tolist()
    for ratio, fraction in ((0.5, 0.3), (0.5, 0.5), (1.0, None), (0.3, 0.136)):
        data = S.StageData("tail-topup", table, frozenset({2}), ratio, fraction)
        for level in (10, 100):
            assert len(data.rows(level, np.random.default_rng(0))) == data.epoch_rows
    assert S.tail_epoch_size(1000, 20, 0.3, 0.136) == 300 + 47  # int(0.136 / 0.864 · 300) = 47 tail images
    assert S.tail_epoch_size(1000, 50, 0.3, 0.136) == 300 + 50  # more real tail than that: no top-up
    assert len(S.tail_topup(table, 10, {2}, np.random.default_rng(0), 1.0, None)) == 22  # the real rows as they are


def test_tail_topup_missing_level_is_an_error():
    with pytest.raises(ValueError, match="guidance 50"):
        S.tail_topup(_long_tail(), 50, {2}, np.random.default_rng(0), 0.5, 0.5)
    data = S.StageData("tail-topup", _long_tail(), frozenset({2}), 0.5, 0.5)
    with pytest.raises(InputError, match="guidance level 50 is scheduled but the table has no synthetic rows of "
                                         "tail classes") as err:
        data.check_levels([10, 50, 100], "train.csv")
    assert str(err.value).startswith("train.csv: column 'guidance'")
    S.StageData("tail-topup", _long_tail(), frozenset({2}), 1.0, None).check_levels([50], "t")  # no top-up
    with pytest.raises(InputError, match="no synthetic rows of hard images \\(guidance 50"):
        S.StageData("replace-hard", _long_tail()).check_levels([10, 50], "t")


def test_real_sample_draws_distinct_real_rows_and_is_capped():
    table = _long_tail()  # 22 real rows
    sample = S.real_sample(table, 5, np.random.default_rng(1))
    assert len(sample) == 5 and sample.index.is_unique and (sample["guidance"] == 100).all()
    assert sample.index.tolist() == S.real_sample(table, 5, np.random.default_rng(1)).index.tolist()
    assert sample.index.tolist() != S.real_sample(table, 5, np.random.default_rng(2)).index.tolist()
    assert len(S.real_sample(table, 30000, np.random.default_rng(1))) == 22


# --- data order and seeding ----------------------------------------------------------------------------------

def test_global_batch_sampler_splits_batches_over_ranks_and_resumes():
    whole = list(GlobalBatchSampler(10, 4, seed=3))
    assert len(whole) == 2 and all(len(b) == 4 for b in whole)  # the partial batch is dropped
    rank0 = list(GlobalBatchSampler(10, 4, seed=3, rank=0, world_size=2))
    rank1 = list(GlobalBatchSampler(10, 4, seed=3, rank=1, world_size=2))
    assert [a + b for a, b in zip(rank0, rank1)] == whole
    assert list(GlobalBatchSampler(10, 4, seed=3, start=1)) == whole[1:]
    # fewer rows than a batch: the permutation is cycled to fill one batch
    small = list(GlobalBatchSampler(3, 4, seed=0))
    assert len(small) == 1 and sorted(set(small[0])) == [0, 1, 2]


def test_shuffled_rows_is_a_uniform_permutation_over_buckets():
    from collections import Counter
    from itertools import permutations

    from discl.training.data import shuffled_rows

    # several buckets at once: still every row exactly once, and the same rows for the same seed
    rows = shuffled_rows(1000, np.random.default_rng(5), bucket=64)
    assert sorted(rows.tolist()) == list(range(1000))
    assert rows.tolist() == shuffled_rows(1000, np.random.default_rng(5), bucket=64).tolist()
    assert rows.tolist() != shuffled_rows(1000, np.random.default_rng(6), bucket=64).tolist()
    # 4 rows in 2 buckets: all 24 orders equally likely (chi-square, 23 degrees of freedom; 55 is p ≈ 2e-4), which
    # a bucket per block of rows, or buckets kept in a fixed order, would fail by far
    rng = np.random.default_rng(0)
    draws = 12_000
    counts = Counter(tuple(shuffled_rows(4, rng, bucket=2).tolist()) for _ in range(draws))
    assert set(counts) == set(permutations(range(4)))
    expected = draws / 24
    assert sum((c - expected) ** 2 / expected for c in counts.values()) < 55


def test_item_augmentation_is_seeded_per_item(tmp_path):
    from torchvision import transforms

    paths = []
    for index in range(3):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(np.random.default_rng(index).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(paths[-1])
    augment = transforms.Compose([transforms.RandomResizedCrop(32, scale=(0.3, 1.0)), transforms.ToTensor()])
    tokens = Lookup(torch.arange(8).view(2, 4), np.array([1, 0, 1]))
    first, again, other = (TableImages(paths, tokens, augment, seed=s) for s in (1, 1, 2))
    torch.manual_seed(123)  # the global RNG plays no part and is left alone
    state = torch.get_rng_state()
    assert torch.equal(first[2][0], again[2][0])
    assert not torch.equal(first[2][0], other[2][0])
    assert torch.equal(torch.get_rng_state(), state)
    assert first[2][2] == 2 and torch.equal(first[0][1], torch.arange(4, 8))


def test_read_table_of_a_list_file(tmp_path):
    write_imagenet_lt_list(pd.DataFrame({"path": ["train/a.jpg", "c/g10/a.jpg", "train/b.jpg"], "label": [0, 0, 1],
                                         "guidance": [100, 10, 100]}), tmp_path / "train.txt")
    write_data_roots(tmp_path, tmp_path / "real", tmp_path / "syn")
    table = read_table(tmp_path / "train.txt", real_root=tmp_path / "moved")
    assert table.columns.tolist() == COLUMNS
    assert table["filepath"].tolist() == [str(tmp_path / "moved" / "train/a.jpg"),
                                          str((tmp_path / "syn").resolve() / "c/g10/a.jpg"),
                                          str(tmp_path / "moved" / "train/b.jpg")]
    assert table["img_id"].tolist() == [-1, 0, -2] and table["strength"].tolist() == [0, 90, 0]
    assert (table["title"] == "").all()


# --- any dataset with either trainer --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lt_list(mini_imagenet_lt, tmp_path_factory) -> Path:
    """A builder-style ImageNet-LT train.txt: the real list plus guidance-10 versions of every tail image."""
    from discl.data.imagenet_lt import read_split

    folder = tmp_path_factory.mktemp("lt_list")
    dataset = get_dataset("imagenet_lt", mini_imagenet_lt)
    groups, entries = dataset.class_groups(), read_split(mini_imagenet_lt, "train")
    rows = [(e.path, e.label, 100) for e in entries]
    for entry in entries:
        if groups[entry.label] == "few":
            relative = f"{Path(entry.path).parent.name}/g10/{Path(entry.path).stem}.jpg"
            (folder / "syn" / relative).parent.mkdir(parents=True, exist_ok=True)
            with Image.open(mini_imagenet_lt / entry.path) as image:
                image.convert("L").convert("RGB").save(folder / "syn" / relative)
            rows.append((relative, entry.label, 10))
    write_imagenet_lt_list(pd.DataFrame(rows, columns=["path", "label", "guidance"]), folder / "train.txt")
    write_data_roots(folder, mini_imagenet_lt, folder / "syn")
    return folder / "train.txt"


def test_flyp_on_imagenet_lt_with_a_list_file(hf_home, mini_imagenet_lt, lt_list, tmp_path, capsys):
    out = tmp_path / "flyp_lt"
    load_script("curriculum/train.py").main([
        "--trainer", "flyp", "--dataset", "imagenet_lt", "--data-root", str(mini_imagenet_lt),
        "--train-table", str(lt_list), "--output-dir", str(out), *FLYP_TINY, "--batch-size", "64", "--epochs", "2",
        "--curriculum", "fixed", "--guidance-levels", "10", "100", "--curriculum-epoch", "2"])
    stats = pd.read_csv(out / "stats.tsv", sep="\t", dtype={"hard_guidance": str})
    # epoch 0 trains on the guidance-10 versions of the tail images, epoch 1 on real data only
    assert stats["hard_guidance"][0] == "10" and pd.isna(stats["hard_guidance"][1])  # list rows: real = non-hard
    assert _levels(stats["guidance_rows"][0]) == [10, 100] and _levels(stats["guidance_rows"][1]) == [100]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trainer"] == "flyp" and summary["selection"] == {"split": "val", "metric": "overall"}
    assert set(summary["best"]) == {"val", "test"} and set(summary["best"]["test"]) == {"overall", "many", "medium",
                                                                                          "few"}
    # one real row per image: the list's empty titles became the dataset's single caption template
    assert summary["steps_per_epoch"] == 323 // 64
    assert "test:few" in capsys.readouterr().out


def _levels(cell: str) -> list[int]:
    return sorted(int(item.split(":")[0]) for item in str(cell).split())


def test_flyp_captions_of_a_list_file(mini_imagenet_lt, lt_list):
    from discl.flyp import with_captions

    dataset = get_dataset("imagenet_lt", mini_imagenet_lt)
    table = read_table(lt_list, real_root=mini_imagenet_lt)
    captioned = with_captions(table, dataset)
    names = dataset.text_names()
    assert len(captioned) == len(table)  # one caption template
    assert captioned["title"].tolist() == [f"a photo of a {names[label]}." for label in table["label"]]
    pd.testing.assert_frame_equal(captioned.drop(columns="title"), table.drop(columns="title"))


@pytest.fixture(scope="module")
def iwildcam_table(mini_iwildcam, tmp_path_factory) -> Path:
    """An iWildCam train.csv: every second non-empty image is hard, with a blurred guidance-50 version."""
    from discl.data.iwildcam import IWILDCAM_TEMPLATES

    out = tmp_path_factory.mktemp("iwildcam_table")
    dataset = get_dataset("iwildcam", mini_iwildcam)
    images, names = dataset.training_images(), dataset.text_names()
    rows = []
    for index, (path, label) in enumerate(zip(images.paths, images.labels)):
        versions = {100: path}
        hard = label != 0 and index % 2 == 0
        if hard:
            versions[50] = str(out / "syn" / f"{index}.jpg")
            (out / "syn").mkdir(exist_ok=True)
            with Image.open(path) as image:
                image.filter(ImageFilter.GaussianBlur(2)).save(versions[50])
        for level, version in versions.items():
            rows += [{"title": t.format(names[label]), "filepath": version, "label": label, "strength": 100 - level,
                      "guidance": level, "seed": 100 if level == 100 else 10,
                      "img_id": index if hard else -(index + 1)} for t in IWILDCAM_TEMPLATES]
    write_training_table(pd.DataFrame(rows), out / "train.csv")
    return out / "train.csv"


def test_ce_on_iwildcam_with_replace_hard(mini_iwildcam, iwildcam_table, tmp_path, capsys):
    out = tmp_path / "ce_iwildcam"
    load_script("curriculum/train.py").main([
        "--trainer", "ce", "--dataset", "iwildcam", "--data-root", str(mini_iwildcam), "--train-table",
        str(iwildcam_table), "--output-dir", str(out), *CE_TINY, "--batch-size", "16", "--epochs", "2",
        "--stage-data", "replace-hard", "--guidance-levels", "50", "100", "--level-starts", "0", "1",
        "--curriculum-epoch", "2"])
    stats = pd.read_csv(out / "stats.tsv", sep="\t", dtype={"hard_guidance": str})
    assert stats["hard_guidance"].tolist() == ["50", "100"]
    # CE trains on one row per image: the table's two caption rows of an image are one training image
    summary = json.loads((out / "summary.json").read_text())
    real_images = len(get_dataset("iwildcam", mini_iwildcam).training_images().paths)
    assert summary["steps_per_epoch"] == real_images // 16
    assert summary["selection"] == {"split": "id_val", "metric": "f1"} and set(summary["best"]) == {
        "id_val", "id_test", "test"}
    checkpoint = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["args"]["arch"] == "resnet10" and checkpoint["args"]["num_classes"] == 8
    assert checkpoint["args"]["dataset"] == "iwildcam" and checkpoint["args"]["trainer"] == "ce"
    assert "id_val:f1" in capsys.readouterr().out
    # with --stage-data tail-topup the tail would be the few-shot classes: every class but 'empty' (24 images)
    assert tail_classes(get_dataset("iwildcam", mini_iwildcam)) == frozenset(range(1, 8))


class ScriptedImageNetLT(ImageNetLT):
    """The mini ImageNet-LT whose ``evaluate`` returns scripted numbers: the validation split is best at epoch 1,
    the test split at epoch 0 (a loop that selected on test would pick epoch 0)."""

    SCRIPT = {"val": [10.0, 90.0, 50.0], "test": [99.0, 1.0, 2.0]}

    def evaluate(self, eval_set, predictions):
        calls = self.__dict__.setdefault("calls", {})
        epoch = calls[eval_set.name] = calls.get(eval_set.name, -1) + 1
        return {metric: self.SCRIPT[eval_set.name][epoch] for metric in self.metric_names}


def test_selection_reads_the_validation_split_only(mini_imagenet_lt, tmp_path):
    dataset = ScriptedImageNetLT(root=mini_imagenet_lt)
    config = LoopConfig(output_dir=tmp_path, epochs=3, batch_size=64, eval_batch_size=64, workers=0, device="cpu",
                        curriculum="none", stage_data="tail-topup", downsample_ratio=1.0, tail_fraction=None,
                        eval_splits=["test"], plots=False)
    summary = train(dataset, config, CETask(CEOptions(width=8, crop_size=32, resize_size=36)))
    # the selection split is evaluated although --eval-splits named only test
    assert summary["splits"] == ["val", "test"]
    assert summary["best_epoch"] == 1 and summary["best"]["test"]["overall"] == 1.0
    assert torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True)["epoch"] == 1
