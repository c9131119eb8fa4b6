"""The mini datasets load through the real readers (WILDS, list files); the dataset helpers behave as specified."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from discl.data import imagenet_lt, iwildcam
from discl.errors import InputError
from discl.tiny import datasets as mini

MINI_SPECIES = ["empty", "tayassu pecari", "dasyprocta punctata", "puma concolor", "acinonyx jubatus",
                "loxodonta africana", "panthera onca", "equus quagga"]


def _features(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB").resize((8, 8)), dtype=np.float32).ravel() / 255


def _nearest_mean_accuracy(train_x, train_y, test_x, test_y, num_classes) -> float:
    means = np.stack([train_x[train_y == c].mean(0) for c in range(num_classes)])
    pred = ((test_x[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    return float((pred == test_y).mean())


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ mini iWildCam ----

@pytest.fixture(scope="module")
def wilds_dataset(mini_iwildcam):
    return iwildcam.load_dataset(mini_iwildcam)


def test_mini_iwildcam_loads_with_wilds_and_has_five_splits(mini_iwildcam, wilds_dataset):
    import wilds

    direct = wilds.get_dataset("iwildcam", root_dir=str(mini_iwildcam), download=False)
    assert len(direct) == len(wilds_dataset) == sum(sum(c) for c in mini.MINI_IWILDCAM_COUNTS.values())
    assert wilds_dataset.n_classes == 8
    for split, counts in mini.MINI_IWILDCAM_COUNTS.items():
        subset = wilds_dataset.get_subset(split)
        assert len(subset) == sum(counts)
        assert Counter(subset.y_array.tolist()) == {y: n for y, n in enumerate(counts)}
    x, y, metadata = wilds_dataset.get_subset("train")[0]
    assert x.mode == "RGB" and x.size == (64, 36)
    assert wilds_dataset.metadata_fields[0] == "location" and metadata.shape == (len(wilds_dataset.metadata_fields),)


def test_mini_iwildcam_is_long_tailed_and_ood_locations_are_unseen(wilds_dataset):
    train_counts = mini.MINI_IWILDCAM_COUNTS["train"]
    assert list(train_counts) == sorted(train_counts, reverse=True) and train_counts[0] >= 10 * train_counts[-1]
    locations = {split: set(wilds_dataset.get_subset(split).metadata_array[:, 0].tolist())
                 for split in iwildcam.SPLITS}
    assert locations["id_val"] <= locations["train"] and locations["id_test"] <= locations["train"]
    assert not locations["val"] & locations["train"] and not locations["test"] & locations["train"]
    assert not locations["val"] & locations["test"]


def test_wilds_eval_returns_hand_computed_macro_f1(wilds_dataset):
    test = wilds_dataset.get_subset("test")
    y_true = test.y_array.clone()
    assert y_true.tolist().count(0) == 2 and y_true.tolist().count(1) == 2
    y_pred = y_true.clone()
    y_pred[int(torch.nonzero(y_true == 0)[0])] = 1  # one 'empty' frame called a peccary
    results, text = wilds_dataset.eval(y_pred, y_true, test.metadata_array)
    # class 0: P 1, R 1/2 -> F1 2/3; class 1: P 2/3, R 1 -> F1 4/5; six other classes F1 1
    assert results["F1-macro_all"] == pytest.approx((2 / 3 + 4 / 5 + 6) / 8)
    assert results["acc_avg"] == pytest.approx(10 / 11)
    assert "F1 macro" in text


def test_mini_iwildcam_metadata_and_categories_follow_the_release(mini_iwildcam):
    data_dir = mini_iwildcam / "iwildcam_v2.0"
    metadata = pd.read_csv(data_dir / "metadata.csv")
    assert list(metadata.columns) == mini.METADATA_COLUMNS
    assert metadata["filename"].tolist() == [f"{i}.jpg" for i in metadata["image_id"]]
    assert all((data_dir / "train" / name).is_file() for name in metadata["filename"])
    assert metadata["datetime"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}").all()
    categories = pd.read_csv(data_dir / "categories.csv")
    assert list(categories.columns) == ["y", "category_id", "name"] and 99999 in categories["y"].tolist()
    # the category ids are WILDS' own: the packaged table gives the same id for each species
    table = iwildcam.species_table().drop_duplicates("name").set_index("name")
    for name, category_id in zip(categories["name"], categories["category_id"]):
        assert table.loc[name, "category_id"] == category_id
    assert iwildcam.species_names(mini_iwildcam) == MINI_SPECIES
    assert iwildcam.species_names(data_dir) == MINI_SPECIES
    assert iwildcam.zeroshot_classnames(mini_iwildcam) == [
        "empty", "white-lipped peccary", "central american agouti", "cougar", "cheetah", "african bush elephant",
        "jaguar", "plains zebra"]


def test_mini_iwildcam_classes_are_learnable_in_distribution(mini_iwildcam):
    data_dir = mini_iwildcam / "iwildcam_v2.0"
    metadata = pd.read_csv(data_dir / "metadata.csv")
    feats = np.stack([_features(data_dir / "train" / name) for name in metadata["filename"]])
    labels = metadata["y"].to_numpy()
    train = (metadata["split"] == "train").to_numpy()
    id_test = (metadata["split"] == "id_test").to_numpy()
    accuracy = _nearest_mean_accuracy(feats[train], labels[train], feats[id_test], labels[id_test], 8)
    assert accuracy > 3 / 8  # chance is 1/8


def test_builders_are_deterministic_idempotent_and_repair_a_partial_build(tmp_path, mini_iwildcam,
                                                                          mini_imagenet_lt):
    root = mini.make_mini_iwildcam(tmp_path / "w")
    data_dir = root / "iwildcam_v2.0"
    assert _digest(data_dir) == _digest(mini_iwildcam / "iwildcam_v2.0")
    lt_root = mini.make_mini_imagenet_lt(tmp_path / "lt")
    assert _digest(lt_root) == _digest(mini_imagenet_lt)

    stamps = {p: p.stat().st_mtime_ns for p in (data_dir / mini.BUILD_STAMP, data_dir / "metadata.csv")}
    mini.make_mini_iwildcam(root)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # complete: left untouched

    victim, bystander = sorted((data_dir / "train").iterdir())[3:5]
    expected, bystander_time = victim.read_bytes(), bystander.stat().st_mtime_ns
    victim.unlink()
    mini.make_mini_iwildcam(root)
    assert victim.read_bytes() == expected
    assert bystander.stat().st_mtime_ns == bystander_time  # only the missing image was written again


def test_imagenet_lt_builder_with_other_counts_and_seeds(tmp_path):
    small = mini.make_mini_imagenet_lt(tmp_path / "a", train_counts=(3, 1))
    assert imagenet_lt.class_counts(imagenet_lt.read_split(small, "train")) == [3, 1]
    assert _digest(mini.make_mini_imagenet_lt(tmp_path / "b", train_counts=(3, 1))) == _digest(small)
    before = _digest(small)
    # another seed over the same root: same file names and lists, every image drawn again
    mini.make_mini_imagenet_lt(small, seed=1, train_counts=(3, 1))
    after = _digest(small)
    assert after.keys() == before.keys()
    changed = {path for path in after if after[path] != before[path]}
    assert changed == {path for path in after if path.endswith(".JPEG")} | {mini.BUILD_STAMP}
    assert not set(mini.mini_iwildcam_metadata(1)["image_id"]) & set(mini.mini_iwildcam_metadata(0)["image_id"])


# ------------------------------------------------------------------------------------ iWildCam helpers ----

def test_common_names_cover_all_182_classes():
    table = iwildcam.species_table()
    assert table["y"].tolist() == list(range(iwildcam.NUM_CLASSES))
    assert all(isinstance(iwildcam.common_name(name), str) for name in table["name"])
    assert iwildcam.common_name("acinonyx jubatus") == "cheetah"
    assert iwildcam.common_name("Acinonyx_jubatus") == "cheetah"  # class folder spelling
    assert iwildcam.common_name("tayassu pecari") == "white-lipped peccary"
    assert iwildcam.common_name("madoqua guentheri") == "günther's dik-dik"
    assert iwildcam.species_names()[58] == "acinonyx jubatus"  # the reference template's label id 58


def test_common_name_of_an_unknown_species_is_an_input_error():
    with pytest.raises(InputError, match=r"x\.csv: row 1: column 'label name': .*'Cheetah' is a common name; "
                                         r"use the scientific name 'acinonyx jubatus'"):
        iwildcam.common_name("Cheetah", file="x.csv", row=1, column="label name")
    with pytest.raises(InputError, match="did you mean 'panthera onca'"):
        iwildcam.common_name("panthera oncca")


def test_iwildcam_templates_are_the_flyp_ones():
    from discl.zeroshot import render_template

    assert [render_template(t, "cheetah") for t in iwildcam.IWILDCAM_TEMPLATES] == [
        "a photo of cheetah.", "cheetah in the wild."]


def test_load_dataset_and_categories_reject_a_bad_root(tmp_path):
    with pytest.raises(InputError, match="metadata.csv: missing"):
        iwildcam.load_dataset(tmp_path)
    data_dir = tmp_path / "iwildcam_v2.0"
    data_dir.mkdir()
    (data_dir / "categories.csv").write_text("y,name\n0,empty\n2,puma concolor\n")
    with pytest.raises(InputError, match="y values must be 0..1 without gaps"):
        iwildcam.read_categories(tmp_path)
    (data_dir / "categories.csv").write_text("y,label\n0,empty\n")
    with pytest.raises(InputError, match="column 'name': missing column"):
        iwildcam.read_categories(tmp_path)
    (data_dir / "categories.csv").write_text("y,name\n0,empty\none,puma concolor\n")
    with pytest.raises(InputError, match="row 2: column 'y': y must be an integer"):
        iwildcam.read_categories(tmp_path)


# ---------------------------------------------------------------------------------------- ImageNet-LT ----

def test_mini_imagenet_lt_lists_parse_and_images_exist(mini_imagenet_lt):
    wnids = imagenet_lt.imagenet_wnids()
    train = imagenet_lt.read_split(mini_imagenet_lt, "train")
    val = imagenet_lt.read_split(mini_imagenet_lt, "val")
    test = imagenet_lt.read_split(mini_imagenet_lt, "test")
    assert imagenet_lt.class_counts(train) == list(mini.MINI_IMAGENET_LT_TRAIN_COUNTS)
    assert imagenet_lt.class_counts(val) == [3] * 8 and imagenet_lt.class_counts(test) == [5] * 8
    assert not {e.path for e in train} & {e.path for e in val}
    for entry in train + val + test:
        path = mini_imagenet_lt / entry.path
        assert path.suffix == ".JPEG" and path.parent.name == wnids[entry.label]
        assert entry.guidance is None
    assert all(e.path.startswith("train/") for e in train + val) and all(e.path.startswith("val/") for e in test)
    with Image.open(mini_imagenet_lt / train[0].path) as image:
        assert image.format == "JPEG" and max(image.size) <= 48


def test_mini_imagenet_lt_classes_are_learnable(mini_imagenet_lt):
    train = imagenet_lt.read_split(mini_imagenet_lt, "train")
    test = imagenet_lt.read_split(mini_imagenet_lt, "test")
    train_x = np.stack([_features(mini_imagenet_lt / e.path) for e in train])
    test_x = np.stack([_features(mini_imagenet_lt / e.path) for e in test])
    accuracy = _nearest_mean_accuracy(train_x, np.array([e.label for e in train]), test_x,
                                      np.array([e.label for e in test]), 8)
    assert accuracy >= 0.75


def test_split_by_count_under_both_conventions(mini_imagenet_lt):
    counts = imagenet_lt.class_counts(imagenet_lt.read_split(mini_imagenet_lt, "train"))
    assert counts == [120, 100, 50, 20, 19, 8, 4, 2]
    assert imagenet_lt.split_by_count(counts) == [
        "many", "many", "medium", "medium", "few", "few", "few", "few"]
    assert imagenet_lt.split_by_count(counts, convention="standard") == [
        "many", "medium", "medium", "medium", "few", "few", "few", "few"]
    assert imagenet_lt.split_by_count([101, 100, 99, 21, 20, 19, 0]) == [
        "many", "many", "medium", "medium", "medium", "few", "few"]
    assert imagenet_lt.split_by_count([10, 5, 4], many_min=10, few_max=5) == ["many", "medium", "few"]
    with pytest.raises(ValueError, match="convention"):
        imagenet_lt.split_by_count(counts, convention="paper")


def test_class_counts_pads_to_num_classes_and_rejects_out_of_range():
    entries = [imagenet_lt.ListEntry("a.JPEG", 2), imagenet_lt.ListEntry("b.JPEG", 0),
               imagenet_lt.ListEntry("c.JPEG", 2)]
    assert imagenet_lt.class_counts(entries) == [1, 0, 2]
    assert imagenet_lt.class_counts(entries, num_classes=5) == [1, 0, 2, 0, 0]
    with pytest.raises(ValueError, match="out of range"):
        imagenet_lt.class_counts(entries, num_classes=2)


def test_class_names_and_wnids():
    names = imagenet_lt.class_names()
    wnids = imagenet_lt.imagenet_wnids()
    assert len(names) == len(wnids) == 1000 and len(set(wnids)) == 1000
    assert names[:3] == ["tench", "goldfish", "great white shark"] and names[999] == "toilet paper"
    assert wnids[0] == "n01440764" and wnids[999] == "n15075141"


def test_read_list_with_guidance(tmp_path):
    path = tmp_path / "curriculum.txt"
    path.write_text("train/n01440764/a.JPEG 0\n\nsyn/tench/Strength90_guidance100_seed10/a.jpg 0 10\n")
    entries = imagenet_lt.read_list(path)
    assert entries == [imagenet_lt.ListEntry("train/n01440764/a.JPEG", 0, None),
                       imagenet_lt.ListEntry("syn/tench/Strength90_guidance100_seed10/a.jpg", 0, 10)]


@pytest.mark.parametrize("text, message", [
    ("a.JPEG 0\nb.JPEG\n", r"line 2: expected 'path label \[guidance \[train_count\]\]', got 1 fields"),
    ("a.JPEG 0\nb.JPEG 1 50 7 2\n", "line 2: expected .* got 5 fields"),
    ("a.JPEG 0\nb.JPEG 1 50 -7\n", "line 2: train_count must be >= 0, got -7"),
    ("a.JPEG zero\n", "line 1: label must be an integer, got 'zero'"),
    ("a.JPEG 0\nb.JPEG 1\nc.JPEG -3\n", "line 3: label must be >= 0, got -3"),
    ("a.JPEG 0 101\n", "line 1: guidance must be in 0..100"),
    ("a.JPEG 0 1.5\n", "line 1: guidance must be an integer"),
    ("\n\n", "list file is empty"),
])
def test_read_list_rejects_bad_lines(tmp_path, text, message):
    path = tmp_path / "ImageNet_LT_train.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        imagenet_lt.read_list(path)
    assert str(info.value).startswith(str(path))


def test_read_list_rejects_a_missing_file_and_guidance_in_a_plain_list(tmp_path):
    with pytest.raises(InputError, match="nothing.txt: list file not found"):
        imagenet_lt.read_list(tmp_path / "nothing.txt")
    (tmp_path / "ImageNet_LT_train.txt").write_text("train/a.JPEG 0 50\n")
    with pytest.raises(InputError, match=r"line 1: expected 'relative/path label', got 3 fields"):
        imagenet_lt.read_split(tmp_path, "train")
