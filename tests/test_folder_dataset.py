"""The ``folder`` dataset kind: both layouts, class names, held-out val, every input error, hand-checked metrics."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import f1_score

from discl.datasets import dataset_class, dataset_parser, from_args, get_dataset, names
from discl.datasets import folder as fd
from discl.errors import InputError
from discl.tiny import datasets as mini

SORTED_CLASSES = ["astronaut", "coffee_mug", "rocket", "sunflower", "tabby_cat"]
SORTED_COUNTS = [10, 24, 6, 3, 16]  # MINI_FOLDER_TRAIN_COUNTS in sorted-folder order
READABLE = ["astronaut in orbit", "coffee mug", "rocket at night", "sunflower", "tabby kitten"]


@pytest.fixture(scope="module")
def mini_folder(tmp_path_factory) -> Path:
    return mini.make_mini_folder(tmp_path_factory.mktemp("folder"))


def _image(path: Path, colour=(120, 30, 200), size=(8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}[path.suffix.lower()]
    Image.new("RGB", size, colour).save(path, format=fmt)
    return path


def _names_file(path: Path, lines) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def _error(call) -> InputError:
    with pytest.raises(InputError) as info:
        call()
    return info.value


# ------------------------------------------------------------------------------------------------ layouts ----

def test_mini_folder_is_a_long_tailed_image_folder(mini_folder):
    for split in ("train", "val", "test"):
        assert sorted(p.name for p in (mini_folder / split).iterdir()) == SORTED_CLASSES
    counts = [len(list((mini_folder / "train" / name).glob("*.jpg"))) for name, _, _ in mini.MINI_FOLDER_CLASSES]
    assert counts == list(mini.MINI_FOLDER_TRAIN_COUNTS)
    assert len(list((mini_folder / "val").rglob("*.jpg"))) == 3 * 5
    with Image.open(next((mini_folder / "test").rglob("*.jpg"))) as image:
        assert image.size == mini.MINI_FOLDER_SIZE and image.mode == "RGB"
    stems = [p.stem for p in mini_folder.rglob("*.jpg")]
    assert len(stems) == len(set(stems)) == 59 + 15 + 15


def test_mini_folder_build_is_idempotent(mini_folder):
    image = next((mini_folder / "train").rglob("*.jpg"))
    before = image.stat().st_mtime_ns, image.read_bytes()
    assert mini.make_mini_folder(mini_folder) == mini_folder
    assert (image.stat().st_mtime_ns, image.read_bytes()) == before


def test_registry_finds_the_folder_kind(mini_folder):
    assert "folder" in names()
    assert dataset_class("folder") is fd.FolderDataset
    dataset = get_dataset("folder", mini_folder)
    assert isinstance(dataset, fd.FolderDataset) and dataset.root == mini_folder
    args = dataset_parser().parse_args(["--dataset", "folder", "--root", str(mini_folder),
                                        "--prompt-template", "a {} on my desk"])
    parsed = from_args(args)
    assert parsed.generation_prompt("coffee_mug") == "a coffee mug on my desk"


def test_image_folder_layout(mini_folder):
    dataset = get_dataset("folder", mini_folder)
    assert dataset.class_names() == SORTED_CLASSES  # torchvision's ImageFolder order
    assert dataset.text_names() == ["astronaut", "coffee mug", "rocket", "sunflower", "tabby cat"]
    assert dataset.class_counts() == SORTED_COUNTS
    assert list(dataset.class_groups()) == ["few", "medium", "few", "few", "few"]
    assert dataset.eval_splits == ("val", "test") and not dataset.val_held_out
    images = dataset.training_images()
    assert len(images.paths) == 59 and all(os.path.isabs(p) and os.path.isfile(p) for p in images.paths)
    assert images.keys[0].startswith("train/astronaut/IMG_") and images.keys == sorted(images.keys)
    for path, label in zip(images.paths, images.labels):
        assert Path(path).parent.name == SORTED_CLASSES[label]
    test = dataset.eval_set("test")
    assert test.name == "test" and len(test.paths) == 15 and test.labels.tolist() == sorted(list(range(5)) * 3)
    assert set(test.paths).isdisjoint(images.paths) and set(test.paths).isdisjoint(dataset.eval_set("val").paths)
    assert dataset.selection_split == "val" and dataset.selection_metric == "top1"
    assert dataset.metric_names == ("top1", "macro_f1", "many", "medium", "few")
    assert dataset.csv_layout.columns == ("filepath", "image_name", "label", "classname")


def test_defaults_of_every_stage(mini_folder):
    dataset = get_dataset("folder", mini_folder)
    assert dataset.generation_prompt("tabby_cat") == "a photo of a tabby cat"
    assert dataset.class_text("tabby_cat") == "a photo of a tabby cat"  # scored against its own prompt
    assert dataset.clip_threshold == 0.25 and dataset.generation_resolution is None and dataset.clip_resize is None
    assert dataset.table_min_guidance == 0 and dataset.table_guidance_levels is None
    assert dataset.caption_templates() == ("a photo of a {}.",) == tuple(dataset.zeroshot_templates())
    assert dataset.supports_tail_rule and not dataset.never_regenerated
    assert not dataset.uses_prompt_json and not dataset.quality_retry
    info = dataset.describe_class("Tabby_Cat")
    assert (info.class_id, info.class_name, info.text) == (4, "tabby_cat", "a photo of a tabby cat")


def test_csv_layout_matches_the_image_folder(mini_folder, tmp_path):
    listing = mini.write_mini_folder_csv(mini_folder, tmp_path / "lists" / "all.csv")
    from_csv, from_folders = get_dataset("folder", listing), get_dataset("folder", mini_folder)
    assert from_csv.class_names() == from_folders.class_names()
    assert from_csv.class_counts() == from_folders.class_counts()
    csv_images, folder_images = from_csv.training_images(), from_folders.training_images()
    assert sorted(zip(csv_images.paths, csv_images.labels)) == sorted(zip(folder_images.paths, folder_images.labels))
    assert csv_images.keys[0].startswith("../") and csv_images.source == listing and csv_images.rows[0] == 1
    for split in ("val", "test"):
        a, b = from_csv.eval_set(split), from_folders.eval_set(split)
        assert sorted(zip(a.paths, a.labels.tolist())) == sorted(zip(b.paths, b.labels.tolist()))


def test_csv_absolute_paths_and_default_split(mini_folder, tmp_path):
    listing = tmp_path / "absolute.csv"
    files = [p for name in ("rocket", "astronaut") for p in sorted((mini_folder / "train" / name).glob("*.jpg"))]
    listing.write_text("filepath,label\n" + "".join(f"{p},{p.parent.name}\n" for p in files), encoding="utf-8")
    dataset = get_dataset("folder", listing)
    assert dataset.class_names() == ["astronaut", "rocket"]
    assert sum(dataset.class_counts()) + len(dataset.eval_set("val").paths) == 16  # no split column: all train
    assert dataset.eval_splits == ("val",)


def test_csv_integer_labels_with_class_names(mini_folder, tmp_path):
    listing = mini.write_mini_folder_csv(mini_folder, tmp_path / "int.csv", integer_labels=True)
    names_file = _names_file(tmp_path / "names.txt", READABLE + [""])  # a trailing blank line is fine
    dataset = get_dataset("folder", listing, class_names=str(names_file))
    assert dataset.class_names() == dataset.text_names() == READABLE
    assert dataset.class_counts() == SORTED_COUNTS
    assert dataset.class_folder("tabby kitten") == "tabby_kitten"
    assert dataset.generation_prompt("tabby kitten") == "a photo of a tabby kitten"
    assert dataset.canonical_class_name("Tabby Kitten") == "tabby kitten"


def test_class_names_file_names_the_folders_in_text(mini_folder, tmp_path):
    names_file = _names_file(tmp_path / "names.txt", READABLE)
    dataset = get_dataset("folder", mini_folder, class_names=names_file, prompt_template="{}, 35mm photo")
    assert dataset.class_names() == SORTED_CLASSES and dataset.text_names() == READABLE
    assert dataset.generation_prompt("tabby_cat") == "tabby kitten, 35mm photo" == dataset.class_text("tabby_cat")
    assert dataset.class_folder("tabby_cat") == "tabby_cat"
    assert dataset.canonical_class_name("tabby kitten") == dataset.canonical_class_name("tabby_cat") == "tabby_cat"


def test_without_a_root_names_are_taken_as_written():
    dataset = get_dataset("folder", None, prompt_template="{} at dusk")
    assert dataset.canonical_class_name(" tabby_cat ") == "tabby_cat"
    assert dataset.generation_prompt("tabby_cat") == "tabby cat at dusk" == dataset.class_text("tabby_cat")
    assert "needs its root" in _error(dataset.class_names).message


def test_suffixes_are_case_insensitive_and_hidden_folders_skipped(tmp_path):
    root = tmp_path / "data"
    for name in ("a.JPG", "b.jpeg", "c.PNG", "d.bmp", "e.webp", "nested/f.Jpg"):
        _image(root / "train" / "cats" / name)
    _image(root / "train" / "dogs" / "g.jpg")
    _image(root / "train" / "dogs" / "h.png")
    (root / "train" / "cats" / "notes.txt").write_text("not an image", encoding="utf-8")
    _image(root / "train" / ".ipynb_checkpoints" / "x.jpg")
    dataset = get_dataset("folder", root)
    assert dataset.class_names() == ["cats", "dogs"]
    assert sum(dataset.class_counts()) + len(dataset.eval_set("val").paths) == 8
    assert "train/cats/nested/f.Jpg" in dataset.training_images().keys + [
        str(Path(p).relative_to(root)) for p in dataset.eval_set("val").paths]


# ------------------------------------------------------------------------------------------- held-out val ----

def test_held_out_val_is_stratified_seeded_and_deterministic(mini_folder, tmp_path):
    listing = mini.write_mini_folder_csv(mini_folder, tmp_path / "no_val.csv", splits=("train", "test"))
    dataset = get_dataset("folder", listing)
    assert dataset.val_held_out and dataset.eval_splits == ("val", "test")
    val = dataset.eval_set("val")
    # per class round(10 %), at least one, never the last image: 10->1, 24->2, 6->1, 3->1, 16->2
    assert np.bincount(val.labels, minlength=5).tolist() == [1, 2, 1, 1, 2]
    assert dataset.class_counts() == [9, 22, 5, 2, 14]
    train = dataset.training_images()
    assert set(val.paths).isdisjoint(train.paths)
    assert sorted(val.paths + train.paths) == sorted(get_dataset("folder", mini_folder).training_images().paths)
    again = get_dataset("folder", listing)
    assert again.eval_set("val").paths == val.paths and again.training_images().paths == train.paths
    other_seed = get_dataset("folder", listing, val_seed=1).eval_set("val")
    assert np.bincount(other_seed.labels, minlength=5).tolist() == [1, 2, 1, 1, 2]
    assert other_seed.paths != val.paths
    larger = get_dataset("folder", listing, val_fraction=0.5).eval_set("val")
    assert np.bincount(larger.labels, minlength=5).tolist() == [5, 12, 3, 2, 8]


def test_held_out_val_of_a_class_ignores_the_other_classes():
    keys = [f"train/a/{i}.jpg" for i in range(10)] + [f"train/b/{i}.jpg" for i in range(5)]
    labels = [0] * 10 + [1] * 5
    held = fd.held_out_val(keys, labels, ["a", "b"])
    fewer_b = fd.held_out_val(keys[:12], labels[:12], ["a", "b"])
    assert [keys[i] for i in held if labels[i] == 0] == [keys[i] for i in fewer_b if labels[i] == 0]
    assert fd.held_out_val(keys, labels, ["a", "b"]) == held
    assert fd.held_out_val(["x"], [0], ["a"]) == []  # a class with one image keeps it for training


def test_held_out_val_without_any_class_of_two_images_is_an_error(tmp_path):
    root = tmp_path / "data"
    _image(root / "train" / "cats" / "a.jpg")
    _image(root / "train" / "dogs" / "b.jpg")
    err = _error(lambda: get_dataset("folder", root).eval_splits)
    assert "hold one out" in err.message and err.file == str(root / "train")


def test_no_test_split_evaluates_val_only(tmp_path):
    root = tmp_path / "data"
    for i in range(3):
        _image(root / "train" / "cats" / f"c{i}.jpg")
        _image(root / "val" / "cats" / f"v{i}.jpg")
    dataset = get_dataset("folder", root)
    assert dataset.eval_splits == ("val",) and not dataset.val_held_out
    assert dataset.class_counts() == [3]
    assert "no 'test' split" in _error(lambda: dataset.eval_set("test")).message


# ------------------------------------------------------------------------------------------- input errors ----

def test_missing_root_and_missing_train_folder(tmp_path):
    assert "no such folder" in _error(lambda: get_dataset("folder", tmp_path / "nope").class_names()).message
    (tmp_path / "val" / "cats").mkdir(parents=True)
    err = _error(lambda: get_dataset("folder", tmp_path).class_names())
    assert err.file == str(tmp_path) and "no train/ folder" in err.message
    assert "needs its root" in _error(lambda: get_dataset("folder").class_names()).message


def test_empty_class_folder_set_and_empty_class(tmp_path):
    (tmp_path / "train" / ".hidden").mkdir(parents=True)
    err = _error(lambda: get_dataset("folder", tmp_path).class_names())
    assert "no class folders" in err.message and err.file == str(tmp_path / "train")
    (tmp_path / "train" / "cats").mkdir()
    (tmp_path / "train" / "cats" / "readme.txt").write_text("x", encoding="utf-8")
    err = _error(lambda: get_dataset("folder", tmp_path).class_names())
    assert "no images" in err.message and err.file == str(tmp_path / "train" / "cats")


def test_eval_class_folder_unknown_to_train(tmp_path):
    _image(tmp_path / "train" / "cats" / "a.jpg")
    _image(tmp_path / "test" / "dogs" / "b.jpg")
    err = _error(lambda: get_dataset("folder", tmp_path).class_names())
    assert err.file == str(tmp_path / "test" / "dogs") and "not in train/" in err.message


def test_csv_without_required_columns(tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("path,class\na.jpg,cat\n", encoding="utf-8")
    err = _error(lambda: get_dataset("folder", listing).class_names())
    assert err.file == str(listing) and "missing column(s) filepath, label" in err.message


def test_csv_row_with_missing_image_names_file_and_row(tmp_path):
    _image(tmp_path / "a.jpg")
    listing = tmp_path / "list.csv"
    listing.write_text("filepath,label\na.jpg,cat\nmissing.jpg,cat\n", encoding="utf-8")
    err = _error(lambda: get_dataset("folder", listing).class_names())
    assert (err.file, err.row, err.column) == (str(listing), 2, "filepath") and "missing.jpg" in err.message
    assert str(err).startswith(f"{listing}: row 2: column 'filepath': image not found")


def test_csv_unknown_split_and_duplicate_image(tmp_path):
    _image(tmp_path / "a.jpg")
    _image(tmp_path / "b.jpg")
    listing = tmp_path / "list.csv"
    listing.write_text("filepath,label,split\na.jpg,cat,train\nb.jpg,cat,validation\n", encoding="utf-8")
    err = _error(lambda: get_dataset("folder", listing).class_names())
    assert (err.row, err.column) == (2, "split") and "'validation'" in err.message
    listing.write_text("filepath,label,split\na.jpg,cat,train\nb.jpg,cat,\na.jpg,cat,test\n", encoding="utf-8")
    err = _error(lambda: get_dataset("folder", listing).class_names())
    assert (err.row, err.column) == (3, "filepath") and "listed twice (first at row 1)" in err.message


def test_csv_eval_label_without_training_rows(tmp_path):
    _image(tmp_path / "a.jpg")
    _image(tmp_path / "b.jpg")
    listing = tmp_path / "list.csv"
    listing.write_text("filepath,label,split\na.jpg,cat,train\nb.jpg,dog,test\n", encoding="utf-8")
    err = _error(lambda: get_dataset("folder", listing).class_names())
    assert (err.row, err.column) == (2, "label") and "'dog' has no training rows" in err.message


def test_class_names_file_with_the_wrong_number_of_lines(mini_folder, tmp_path):
    names_file = _names_file(tmp_path / "names.txt", READABLE[:4])
    err = _error(lambda: get_dataset("folder", mini_folder, class_names=names_file).class_names())
    assert err.file == str(names_file) and "4 class names for 5 classes" in err.message
    _names_file(names_file, ["cat", "", "dog"])
    err = _error(lambda: get_dataset("folder", mini_folder, class_names=names_file).class_names())
    assert err.row == 2 and "empty class name" in err.message


def test_label_index_out_of_range_and_integer_labels_without_names(mini_folder, tmp_path):
    listing = mini.write_mini_folder_csv(mini_folder, tmp_path / "int.csv", integer_labels=True)
    err = _error(lambda: get_dataset("folder", listing).class_names())
    assert err.column == "label" and "give --class-names" in err.message
    names_file = _names_file(tmp_path / "names.txt", READABLE[:4] + ["x"])
    lines = listing.read_text(encoding="utf-8").splitlines()
    row = next(i for i, line in enumerate(lines) if line.split(",")[1] == "4")  # header is line 0: data row i
    lines[row] = lines[row].replace(",4,", ",7,")
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    err = _error(lambda: get_dataset("folder", listing, class_names=names_file).class_names())
    assert (err.row, err.column) == (row, "label") and "label index 7 out of range" in err.message


def test_unknown_class_name_and_bad_prompt_template(mini_folder):
    dataset = get_dataset("folder", mini_folder)
    err = _error(lambda: dataset.canonical_class_name("zebra", "hard.csv", row=3, column="classname"))
    assert (err.file, err.row, err.column) == ("hard.csv", 3, "classname") and "unknown class 'zebra'" in err.message
    for template in ("a photo", "a {name} photo", "{} and {}"):
        bad = get_dataset("folder", mini_folder, prompt_template=template)
        assert "exactly one {}" in _error(lambda: bad.generation_prompt("rocket")).message


def test_training_images_from_a_subset_list(mini_folder, tmp_path):
    listing = tmp_path / "subset.csv"
    files = sorted((mini_folder / "train" / "sunflower").glob("*.jpg"))
    listing.write_text("filepath,label\n" + "".join(f"{p},sunflower\n" for p in files), encoding="utf-8")
    images = get_dataset("folder", mini_folder).training_images(listing)
    assert images.labels == [3, 3, 3] and images.rows == [1, 2, 3] and images.source == listing


# ------------------------------------------------------------------------------------------------ metrics ----

def test_metrics_on_hand_made_predictions():
    labels = [0, 0, 1, 1, 2]
    predictions = [0, 1, 1, 1, 0]
    assert fd.top1_accuracy(predictions, labels) == pytest.approx(60.0)
    # class 0: tp 1 fp 1 fn 1 -> 1/2; class 1: tp 2 fp 1 -> 4/5; class 2: tp 0 fn 1 -> 0
    assert fd.macro_f1(predictions, labels) == pytest.approx(100 * (0.5 + 0.8 + 0.0) / 3)
    assert fd.macro_f1(predictions, labels) == pytest.approx(100 * f1_score(labels, predictions, average="macro"))
    # a class predicted but absent from the split's labels is not averaged (WILDS' macro-F1)
    labels, predictions = [0, 0, 1], [0, 3, 1]
    assert fd.macro_f1(predictions, labels) == pytest.approx(100 * (2 / 3 + 1) / 2)
    assert fd.macro_f1(predictions, labels) == pytest.approx(
        100 * f1_score(labels, predictions, average="macro", labels=np.unique(labels)))
    assert math.isnan(fd.top1_accuracy([], [])) and math.isnan(fd.macro_f1([], []))
    with pytest.raises(ValueError):
        fd.top1_accuracy([0, 1], [0])


def test_metrics_per_group():
    groups = ["many", "medium", "few"]
    metrics = fd.folder_metrics([0, 1, 1, 2, 0, 2], [0, 0, 1, 1, 2, 2], groups)
    assert list(metrics) == ["top1", "macro_f1", "many", "medium", "few"]
    assert metrics["top1"] == pytest.approx(50.0)
    assert (metrics["many"], metrics["medium"], metrics["few"]) == pytest.approx((50.0, 50.0, 50.0))
    only_many = fd.folder_metrics([0, 0], [0, 0], groups)
    assert only_many["many"] == 100.0 and math.isnan(only_many["medium"]) and math.isnan(only_many["few"])


def test_group_cut_follows_training_counts_and_convention(tmp_path):
    root = tmp_path / "data"
    for name, count in (("big", 101), ("edge", 100), ("mid", 20), ("tail", 19)):
        for i in range(count):
            path = root / "train" / name / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")  # listing never decodes images
        _image(root / "val" / name / "v.png")
    assert list(get_dataset("folder", root).class_groups()) == ["many", "many", "medium", "few"]
    assert list(get_dataset("folder", root, split_convention="standard").class_groups()) == [
        "many", "medium", "medium", "few"]


def test_dataset_evaluate_on_its_test_split(mini_folder):
    dataset = get_dataset("folder", mini_folder)
    test = dataset.eval_set("test")
    perfect = dataset.evaluate(test, test.labels.copy())
    assert list(perfect) == list(dataset.metric_names)
    assert perfect["top1"] == perfect["macro_f1"] == perfect["medium"] == perfect["few"] == 100.0
    assert math.isnan(perfect["many"])  # no class of the mini dataset has 100 training images
    always_mug = dataset.evaluate(test, np.ones_like(test.labels))  # label 1 = coffee_mug, the medium class
    assert always_mug["top1"] == pytest.approx(20.0) and always_mug["medium"] == 100.0 and always_mug["few"] == 0.0
    assert always_mug["macro_f1"] == pytest.approx(100 * f1_score(test.labels, np.ones_like(test.labels),
                                                                  average="macro"))
    assert dataset.format_metrics(always_mug).startswith("top1 20.0%, macro-F1 6.7%")


def test_hard_sample_csv_round_trip_through_the_folder_dataset(mini_folder, tmp_path):
    from discl.data.hard_sample_csv import read_hard_sample_csv, write_hard_sample_csv

    dataset = get_dataset("folder", mini_folder, class_names=_names_file(tmp_path / "names.txt", READABLE))
    images = dataset.training_images()
    picked = [i for i, label in enumerate(images.labels) if label in (3, 4)][:5]
    frame = pd.DataFrame({"class_id": [images.labels[i] for i in picked],
                          "class_name": [dataset.class_names()[images.labels[i]] for i in picked],
                          "real_path": [images.paths[i] for i in picked],
                          "image_stem": [Path(images.paths[i]).stem for i in picked]})
    write_hard_sample_csv(frame, tmp_path / "hard.csv", dataset)
    assert (tmp_path / "hard.csv").read_text(encoding="utf-8").splitlines()[0] == "filepath,image_name,label,classname"
    back = read_hard_sample_csv(tmp_path / "hard.csv", dataset)
    assert back["class_name"].tolist() == frame["class_name"].tolist()
    assert set(back["class_folder"]) <= {"sunflower", "tabby_cat"}
    assert back["image_stem"].tolist() == frame["image_stem"].tolist()
    assert back["real_path"].tolist() == frame["real_path"].tolist()
