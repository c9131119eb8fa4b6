"""The dataset registry: lookup, errors, plugins by module path, the built-in datasets' paper defaults, and their
evaluation numbers on hand-made predictions."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from PIL import Image

from discl import datasets
from discl.datasets import Dataset, EvalSet, dataset_class, dataset_parser, from_args, get_dataset
from discl.datasets.imagenet_lt import ImageNetLT
from discl.datasets.iwildcam import IWildCam
from discl.errors import InputError


# ------------------------------------------------------------------------------------------------- lookup
def test_builtin_datasets_are_registered_by_name():
    assert {"iwildcam", "imagenet_lt"} <= set(datasets.names())
    assert dataset_class("iwildcam") is IWildCam and dataset_class("imagenet_lt") is ImageNetLT
    bound = get_dataset("imagenet_lt", "/data/lt", split_convention="standard")
    assert isinstance(bound, ImageNetLT) and str(bound.root) == "/data/lt"
    assert bound.option("split_convention") == "standard" and bound.option("absent", 3) == 3
    assert get_dataset("iwildcam", "").root is None


def test_unknown_dataset_is_an_input_error():
    with pytest.raises(InputError, match=r"--dataset: unknown dataset 'imagenet'; registered: .*imagenet_lt.*iwildcam"):
        dataset_class("imagenet")
    with pytest.raises(InputError, match="cannot import dataset module 'no_such_pkg.datasets'"):
        dataset_class("no_such_pkg.datasets")


def test_a_module_path_registers_a_users_dataset(tmp_path, monkeypatch):
    package = tmp_path / "my_plugins"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "birds.py").write_text(textwrap.dedent("""
        from discl.datasets import Dataset, register

        @register
        class Birds(Dataset):
            name = "my_birds"
            clip_threshold = 0.28

            def class_names(self):
                return ["robin", "wren"]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = dataset_class("my_plugins.birds")
    assert cls.name == "my_birds" and "my_birds" in datasets.names()
    assert dataset_class("my_plugins.birds") is cls  # a second lookup by module path (scripts look up twice)
    birds = get_dataset("my_birds", None)
    assert isinstance(birds, cls) and birds.clip_threshold == 0.28 and birds.text_names() == ["robin", "wren"]
    assert birds.class_text("wren") == "a photo of wren"


def test_dataset_parser_and_from_args():
    import argparse

    parser = argparse.ArgumentParser(parents=[dataset_parser(required_root=False, default="iwildcam")])
    dataset = from_args(parser.parse_args([]))
    assert isinstance(dataset, IWildCam) and dataset.root is None
    dataset = from_args(parser.parse_args(["--dataset", "imagenet_lt", "--root", "/r"]))
    assert isinstance(dataset, ImageNetLT) and str(dataset.root) == "/r"


# ----------------------------------------------------------------------------------------- paper defaults
def test_iwildcam_paper_defaults():
    d = IWildCam()
    assert d.clip_threshold == 0.25 and d.clip_resize == (480, 270)
    assert d.generation_resolution == (480, 270) and d.synthetic_suffix == ".jpg"
    assert not d.uses_prompt_json and not d.quality_retry
    assert d.table_min_guidance == 50 and d.table_guidance_levels is None and d.curriculum_val_size == 2000
    assert d.never_regenerated == {"empty"} and not d.supports_tail_rule
    assert tuple(d.caption_templates()) == ("a photo of {}.", "{} in the wild.")
    assert tuple(d.zeroshot_templates()) == ("a photo of {}.", "{} in the wild.")
    assert d.eval_splits == ("id_val", "id_test", "test")
    assert d.split_titles == {"id_val": "ID-val", "id_test": "ID-test", "test": "OOD-test"}
    assert (d.selection_split, d.selection_metric) == ("id_val", "f1")
    assert d.metric_names == ("acc", "recall", "f1")
    assert d.csv_layout.columns == ("label id", "label name", "filepath", "img_name") and d.csv_layout.index
    assert not d.csv_layout.image_has_suffix
    assert d.generation_prompt("acinonyx jubatus") == "a photo of cheetah in the wild"
    assert d.class_text("puma concolor") == "a photo of cougar in the wild"
    names = d.class_names()  # no root: the packaged 182-class list
    assert len(names) == 182 and names[58] == "acinonyx jubatus" and d.text_names()[58] == "cheetah"


def test_imagenet_lt_paper_defaults():
    d = ImageNetLT()
    assert d.clip_threshold == 0.30 and d.clip_resize is None and d.generation_resolution is None
    assert d.synthetic_suffix == ".JPEG"  # the reference names a synthetic image as its real one
    assert d.uses_prompt_json and d.quality_retry and d.supports_tail_rule
    assert d.table_min_guidance == 0 and d.table_guidance_levels == (10, 30, 50) and d.curriculum_val_size == 100
    assert tuple(d.caption_templates()) == ("a photo of a {}.",)
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

    assert tuple(d.zeroshot_templates()) == tuple(SIMPLE_IMAGENET_TEMPLATES)
    assert d.eval_splits == ("val", "test") and (d.selection_split, d.selection_metric) == ("val", "overall")
    assert d.metric_names == ("overall", "many", "medium", "few")
    assert d.csv_layout.columns == ("filepath", "image_name", "label", "classname")
    assert d.csv_layout.image_has_suffix and not d.csv_layout.index
    assert len(d.class_names()) == 1000 and d.class_names()[:2] == ["tench", "goldfish"]
    assert d.class_text("tench") == "a photo of tench"


@pytest.mark.parametrize("cls", [IWildCam, ImageNetLT])
def test_selection_is_on_a_validation_split_with_a_reported_metric(cls):
    assert cls.selection_split in cls.eval_splits and "test" not in cls.selection_split
    assert cls.selection_metric in cls.metric_names
    assert set(cls.split_titles) == set(cls.eval_splits)


# -------------------------------------------------------------------------------------------- iWildCam
@pytest.fixture(scope="module")
def iwildcam(mini_iwildcam) -> IWildCam:
    return get_dataset("iwildcam", mini_iwildcam)


def test_iwildcam_classes_and_training_images(iwildcam, mini_iwildcam):
    import pandas as pd

    assert iwildcam.class_names()[4] == "acinonyx jubatus" and iwildcam.text_names()[4] == "cheetah"
    metadata = pd.read_csv(mini_iwildcam / "iwildcam_v2.0" / "metadata.csv")
    train = metadata[metadata["split"] == "train"]
    images = iwildcam.training_images()
    assert images.keys == [f"iwildcam_v2.0/train/{name}" for name in train["filename"]]
    assert images.labels == train["y"].tolist()
    assert all(path.endswith(key) for path, key in zip(images.paths, images.keys))
    assert iwildcam.class_counts() == [24, 16, 10, 7, 5, 3, 2, 2]
    with pytest.raises(InputError, match="no list files"):
        iwildcam.training_images("ImageNet_LT_train.txt")
    with pytest.raises(InputError, match="'Cheetah' is a common name"):
        iwildcam.canonical_class_name("Cheetah", file="hard.csv", row=1, column="label name")
    assert iwildcam.canonical_class_name("Puma_Concolor") == "puma concolor"
    info = iwildcam.describe_class("acinonyx_jubatus")
    assert (info.class_id, info.class_name, info.text) == (4, "acinonyx jubatus", "a photo of cheetah in the wild")


def test_iwildcam_evaluate_is_wilds_macro_f1_over_present_classes(iwildcam):
    test = iwildcam.eval_set("test")
    assert test.name == "test" and len(test.paths) == len(test.labels) == 11
    predictions = test.labels.copy()
    predictions[int(np.flatnonzero(test.labels == 0)[0])] = 1  # one 'empty' frame called a peccary
    metrics = iwildcam.evaluate(test, predictions)
    # class 0: P 1, R 1/2 -> F1 2/3; class 1: P 2/3, R 1 -> F1 4/5; six other classes F1 1 (8 present)
    assert metrics["f1"] == pytest.approx((2 / 3 + 4 / 5 + 6) / 8)
    assert metrics["recall"] == pytest.approx((1 / 2 + 7) / 8)
    assert metrics["acc"] == pytest.approx(10 / 11)
    assert set(metrics) == set(iwildcam.metric_names)
    # a split without class 7's images: macro-F1 averages over the classes present there only
    id_val = iwildcam.eval_set("id_val")
    keep = id_val.labels != 7
    partial = EvalSet("id_val", [p for p, k in zip(id_val.paths, keep) if k], id_val.labels[keep],
                      context=(id_val.context[0], id_val.context[1][keep]))
    wrong = partial.labels.copy()
    wrong[partial.labels == 6] = 5  # class 6 (1 image) called class 5 (1 image)
    # class 5: P 1/2, R 1 -> 2/3; class 6: 0; five others 1; 7 classes present
    assert iwildcam.evaluate(partial, wrong)["f1"] == pytest.approx((2 / 3 + 0 + 5) / 7)
    with pytest.raises(InputError, match="unknown iWildCam split 'ood'"):
        iwildcam.eval_set("ood")


def test_a_dataset_without_root_says_so():
    with pytest.raises(InputError, match="--data-root: the iwildcam dataset needs its root folder"):
        IWildCam().training_images()


# ------------------------------------------------------------------------------------------ ImageNet-LT
@pytest.fixture(scope="module")
def imagenet_lt(mini_imagenet_lt) -> ImageNetLT:
    return get_dataset("imagenet_lt", mini_imagenet_lt)


def test_imagenet_lt_classes_and_training_images(imagenet_lt, mini_imagenet_lt, tmp_path):
    assert imagenet_lt.class_names() == ["tench", "goldfish", "great white shark", "tiger shark",
                                         "hammerhead shark", "electric ray", "stingray", "rooster"]
    assert imagenet_lt.class_counts() == [120, 100, 50, 20, 19, 8, 4, 2]
    images = imagenet_lt.training_images()
    assert len(images.paths) == 323 and images.keys[0].startswith("train/n01440764/")
    assert images.paths[0] == str((mini_imagenet_lt / images.keys[0]).resolve())
    other = tmp_path / "list.txt"
    other.write_text("train/a.JPEG 3\ntrain/b.JPEG 1000\n")
    with pytest.raises(InputError, match=r"list.txt: line 2: label 1000 outside 0..999"):
        imagenet_lt.training_images(other)
    assert imagenet_lt.describe_class("n01443537").class_id == 1
    assert imagenet_lt.describe_class("great_white_shark").text == "a photo of great white shark"
    assert imagenet_lt.describe_class("missile_744").class_id == 744
    with pytest.raises(InputError, match="not an ImageNet class folder"):
        imagenet_lt.describe_class("acinonyx_jubatus")


def test_imagenet_lt_evaluate_many_medium_few_in_percent(mini_imagenet_lt):
    # counts 120, 100, 50, 20, 19, 8, 4, 2 -> reference: many {0, 1}, medium {2, 3}, few {4..7}
    reference = get_dataset("imagenet_lt", mini_imagenet_lt)
    test = reference.eval_set("test")
    assert len(test.labels) == 40 and (np.bincount(test.labels) == 5).all()
    predictions = test.labels.copy()
    for label, wrong in ((1, 3), (3, 1), (7, 2)):
        predictions[np.flatnonzero(test.labels == label)[:wrong]] = (label + 1) % 8
    metrics = reference.evaluate(test, predictions)
    assert metrics == pytest.approx({"overall": 100 * 34 / 40, "many": 100 * 7 / 10, "medium": 100 * 9 / 10,
                                     "few": 100 * 18 / 20})
    # the standard cut moves class 1 (exactly 100 images) to medium
    standard = get_dataset("imagenet_lt", mini_imagenet_lt, split_convention="standard")
    assert standard.evaluate(test, predictions) == pytest.approx(
        {"overall": 85.0, "many": 100.0, "medium": 100 * 11 / 15, "few": 90.0})
    with pytest.raises(InputError, match="--split-convention"):
        get_dataset("imagenet_lt", mini_imagenet_lt, split_convention="paper").evaluate(test, predictions)
    assert reference.selection_metric in metrics


def test_imagenet_lt_evaluation_lists_can_be_replaced(mini_imagenet_lt, tmp_path):
    lines = (mini_imagenet_lt / "ImageNet_LT_test.txt").read_text().splitlines()[:3]
    (tmp_path / "my_val.txt").write_text("\n".join(lines) + "\n")
    dataset = get_dataset("imagenet_lt", mini_imagenet_lt, val_list=str(tmp_path / "my_val.txt"))
    val = dataset.eval_set("val")
    assert val.labels.tolist() == [int(line.split()[1]) for line in lines]
    assert val.paths[0] == str((mini_imagenet_lt / lines[0].split()[0]).resolve())
    assert len(dataset.eval_set("test").labels) == 40  # the other split keeps its canonical list


def test_dataset_interface_defaults_need_the_hooks():
    class Bare(Dataset):
        name = "bare_for_test"

    with pytest.raises(NotImplementedError):
        Bare().class_names()


def test_dataset_options_pass_through_the_parser():
    import argparse

    parser = argparse.ArgumentParser(parents=[dataset_parser(required_root=False, default="folder")])
    args = parser.parse_args(["--dataset-option", "val_fraction=0.2", "--dataset-option", "val-seed=3"])
    dataset = from_args(args, split_convention="standard")
    assert dataset.option("val_fraction") == "0.2" and dataset.option("val_seed") == "3"
    assert dataset.option("split_convention") == "standard"
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        from_args(parser.parse_args(["--dataset-option", "oops"]))


@pytest.mark.parametrize("dataset, option, message", [
    ("folder", "val_fracton=0.2", "--dataset-option: the folder dataset has no option 'val_fracton'; it takes "
                                  "val_fraction \\(share"),
    ("iwildcam", "val_fraction=0.2", "the iwildcam dataset has no option 'val_fraction'; it takes none"),
    ("imagenet_lt", "val_fraction=0.2", "no option 'val_fraction'; it takes val_list .*, test_list"),
    ("folder", "val_fraction=abc", "--dataset-option val_fraction: expected a number in \\(0, 1\\), got 'abc'"),
    ("folder", "val_fraction=1", "--dataset-option val_fraction: expected a number in \\(0, 1\\), got 1.0"),
    ("folder", "val_fraction=nan", "val_fraction: expected a number in \\(0, 1\\), got nan"),
    ("folder", "val_seed=-1", "--dataset-option val_seed: expected an integer ≥ 0, got -1"),
    ("folder", "val_seed=2.5", "--dataset-option val_seed: expected an integer ≥ 0, got '2.5'"),
])
def test_dataset_options_are_checked_before_any_stage(dataset, option, message):
    import argparse

    parser = argparse.ArgumentParser(parents=[dataset_parser(required_root=False)])
    with pytest.raises(InputError, match=message):  # no root needed: nothing is read yet
        from_args(parser.parse_args(["--dataset", dataset, "--dataset-option", option]))


def test_folder_options_given_as_numbers(tmp_path):
    root = tmp_path / "data"
    for index in range(10):
        (root / "train" / "cat").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), (index, 0, 0)).save(root / "train" / "cat" / f"{index}.png")
        (root / "train" / "dog").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), (0, index, 0)).save(root / "train" / "dog" / f"{index}.png")
    held = [len(get_dataset("folder", root, val_fraction=fraction).eval_set("val").paths)
            for fraction in (0.2, "0.2", 0.5)]
    assert held == [4, 4, 10]
    with pytest.raises(InputError, match="val_seed: expected an integer"):
        get_dataset("folder", root, val_seed=1.5).eval_set("val")
