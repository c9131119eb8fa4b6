"""Hard samples: selection rules on hand-made tables, then make_hard_samples.py end to end on the mini datasets."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import load_script

from discl import hard_samples
from discl.cli import run_cli
from discl.data.hard_sample_csv import read_hard_sample_csv
from discl.data.imagenet_lt import read_list
from discl.datasets import get_dataset
from discl.errors import InputError
from discl.tiny import TINY_OPEN_CLIP

# ---- pure selection rules --------------------------------------------------------------------------------

# 8 images of 3 classes; class 0 plays iWildCam's `empty`
TABLE = pd.DataFrame({
    "class_id":      [0,    1,    1,    1,    1,    2,    2,    2],
    "class_name":    ["empty", "a", "a", "a", "a", "b", "b", "b"],
    "true_prob":     [0.10, 0.90, 0.20, 0.45, 0.20, 0.60, 0.30, 0.05],
    "misclassified": [True, False, True, False, True, True, False, True],
})


@pytest.mark.parametrize("criterion, expected", [
    ("misclassified", [1, 0, 1, 0, 1, 1, 0, 1]),
    ("low-prob",      [1, 0, 1, 1, 1, 0, 1, 1]),  # p < 0.5
    ("both",          [1, 0, 1, 0, 1, 0, 0, 1]),
    ("either",        [1, 0, 1, 1, 1, 1, 1, 1]),
    ("none",          [0, 0, 0, 0, 0, 0, 0, 0]),
])
def test_hard_mask(criterion, expected):
    mask = hard_samples.hard_mask(TABLE["misclassified"], TABLE["true_prob"], criterion, max_prob=0.5)
    assert mask.astype(int).tolist() == expected


def test_hard_mask_threshold_is_strict():
    assert hard_samples.hard_mask([False], [0.5], "low-prob", 0.5).tolist() == [False]
    with pytest.raises(ValueError, match="unknown criterion"):
        hard_samples.hard_mask([False], [0.5], "wrong", 0.5)


def test_cap_keeps_lowest_probability_then_earliest():
    labels = np.array([1, 1, 1, 1, 2, 2])
    prob = np.array([0.3, 0.1, 0.1, 0.05, 0.9, 0.2])
    selected = np.array([True, True, True, False, True, True])
    # class 1 selected: rows 0 (0.3), 1 (0.1), 2 (0.1) -> cap 1 keeps row 1 (tie with row 2, earlier wins)
    assert hard_samples.cap_per_class(labels, prob, selected, 1).tolist() == [False, True, False, False, False, True]
    assert hard_samples.cap_per_class(labels, prob, selected, 2).tolist() == [False, True, True, False, True, True]
    assert hard_samples.cap_per_class(labels, prob, selected, None).tolist() == selected.tolist()
    assert not hard_samples.cap_per_class(labels, prob, selected, 0).any()


def test_select_hard_adds_tail_drops_never_hard_then_caps():
    mask = hard_samples.select_hard(TABLE, "misclassified", tail_class_ids=[2], never_hard=[0])
    assert mask.astype(int).tolist() == [0, 0, 1, 0, 1, 1, 1, 1]
    capped = hard_samples.select_hard(TABLE, "misclassified", tail_class_ids=[2], never_hard=[0], per_class_cap=2)
    # class 1: rows 2 and 4 (both 0.2); class 2: the two lowest, rows 7 (0.05) and 6 (0.30)
    assert capped.astype(int).tolist() == [0, 0, 1, 0, 1, 0, 1, 1]


def test_tail_class_ids_use_the_reference_cut():
    labels = [0] * 100 + [1] * 20 + [2] * 19 + [4] * 1  # label 3 absent
    assert hard_samples.tail_class_ids(labels) == [2, 4]
    assert hard_samples.tail_class_ids(labels, few_max=21) == [1, 2, 4]


def test_per_class_summary_and_table():
    mask = np.array([0, 0, 1, 0, 1, 1, 1, 1], dtype=bool)
    summary = hard_samples.per_class_summary(TABLE, mask)
    assert summary["images"].tolist() == [1, 4, 3]
    assert summary["misclassified"].tolist() == [1, 2, 2]
    assert summary["hard"].tolist() == [0, 2, 3]
    np.testing.assert_allclose(summary["mean_true_prob"], [0.10, 0.4375, 0.95 / 3])
    text = hard_samples.format_summary(summary)
    assert text.splitlines()[2].split() == ["1", "a", "4", "2", "0.438", "2"]
    assert text.splitlines()[-1].split() == ["total", "8", "5", "5"]
    top = hard_samples.format_summary(summary, max_rows=1)
    assert top.splitlines()[1].split()[:2] == ["2", "b"] and "... 2 more classes" in top


# ---- end to end on the mini datasets with the tiny open_clip --------------------------------------------

@pytest.fixture(scope="module")
def script():
    return load_script("data_generation/make_hard_samples.py")


TINY = ["--model", TINY_OPEN_CLIP, "--pretrained", "", "--workers", "0", "--device", "cpu"]


def test_iwildcam_end_to_end(script, mini_iwildcam, tmp_path, capsys):
    out = tmp_path / "hard.csv"
    assert script.main(["--dataset", "iwildcam", "--data-root", str(mini_iwildcam), "--output", str(out),
                        "--criterion", "either", "--max-prob", "0.3", "--batch-size", "16"] + TINY) == 0
    scores = pd.read_csv(tmp_path / "hard_scores.csv")
    metadata = pd.read_csv(mini_iwildcam / "iwildcam_v2.0" / "metadata.csv")
    assert len(scores) == (metadata["split"] == "train").sum()
    np.testing.assert_allclose(scores.groupby("real_path")["true_prob"].size().values, 1)  # every image once
    assert ((scores["pred_id"] != scores["class_id"]) == scores["misclassified"]).all()
    expected = (scores["misclassified"] | (scores["true_prob"] < 0.3)) & (scores["class_name"] != "empty")
    assert (scores["hard"] == expected).all()

    hard = read_hard_sample_csv(out, get_dataset("iwildcam"))  # readable by the generation stage; species are known
    assert sorted(hard["real_path"]) == sorted(scores.loc[scores["hard"], "real_path"])
    assert "empty" not in set(hard["class_name"])
    assert all(p.endswith(f"{stem}.jpg") for p, stem in zip(hard["real_path"], hard["image_stem"]))
    assert pd.read_csv(out).columns.tolist() == ["Unnamed: 0", "label id", "label name", "filepath", "img_name"]
    printed = capsys.readouterr().out
    assert "acinonyx jubatus" in printed and f"{expected.sum()} hard of {len(scores)} images" in printed


def test_imagenet_lt_tail_rule_and_cap(script, mini_imagenet_lt, tmp_path):
    out = tmp_path / "hard.csv"
    assert script.main(["--dataset", "imagenet_lt", "--root", str(mini_imagenet_lt), "--output", str(out),
                        "--criterion", "none", "--tail-classes", "--per-class-cap", "5",
                        "--batch-size", "128"] + TINY) == 0
    counts = pd.Series([e.label for e in read_list(mini_imagenet_lt / "ImageNet_LT_train.txt")]).value_counts()
    few = set(counts[counts < 20].index)
    hard = read_hard_sample_csv(out, get_dataset("imagenet_lt"))
    assert set(hard["class_id"]) == few
    assert hard.groupby("class_id").size().to_dict() == {label: min(5, counts[label]) for label in few}
    scores = pd.read_csv(tmp_path / "hard_scores.csv")
    for label, group in scores[scores["class_id"].isin(few)].groupby("class_id"):
        kept = group[group["hard"]]
        # the cap keeps the lowest true-class probabilities
        assert kept["true_prob"].max() <= np.min(group.loc[~group["hard"], "true_prob"].to_numpy(), initial=1.0)
    raw = pd.read_csv(out)
    assert raw.columns.tolist() == ["filepath", "image_name", "label", "classname"]
    assert raw["image_name"].str.endswith(".JPEG").all()


def test_checkpoint_gives_the_same_scores_as_its_weights(script, mini_imagenet_lt, tmp_path):
    from discl.models import create_open_clip

    torch.manual_seed(7)
    model = create_open_clip(TINY_OPEN_CLIP, "", "cpu")[0]
    # saved the way a DistributedDataParallel-wrapped trainer would, with the model name in args
    state = {f"module.{key}": value for key, value in model.state_dict().items()}
    torch.save({"model": state, "args": {"model": TINY_OPEN_CLIP, "lr": 1e-5}}, tmp_path / "ckpt.pt")
    common = ["--dataset", "imagenet_lt", "--root", str(mini_imagenet_lt), "--criterion", "misclassified",
              "--workers", "0", "--device", "cpu", "--batch-size", "400"]
    script.main(common + ["--checkpoint", str(tmp_path / "ckpt.pt"), "--output", str(tmp_path / "a.csv")])
    script.main(common + ["--model", TINY_OPEN_CLIP, "--pretrained", "", "--seed", "7",
                          "--output", str(tmp_path / "b.csv")])
    a, b = pd.read_csv(tmp_path / "a_scores.csv"), pd.read_csv(tmp_path / "b_scores.csv")
    np.testing.assert_allclose(a["true_prob"], b["true_prob"], rtol=1e-5)
    assert (a["pred_id"] == b["pred_id"]).all()


# ---- bad input: one clear error, nothing written ---------------------------------------------------------

def run_expecting_error(script, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(script.main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # earlier lines: progress bars
    assert err.startswith("error: ")
    return err


def test_missing_list_file(script, mini_imagenet_lt, tmp_path, capsys):
    err = run_expecting_error(script, ["--dataset", "imagenet_lt", "--root", str(mini_imagenet_lt),
                                       "--list", "nope.txt", "--output", str(tmp_path / "h.csv")] + TINY, capsys)
    assert "nope.txt: list file not found" in err
    assert not list(tmp_path.iterdir())


def test_label_outside_the_classes_names_row(script, mini_imagenet_lt, tmp_path, capsys):
    listing = tmp_path / "list.txt"
    listing.write_text("train/a.JPEG 3\ntrain/b.JPEG 1000\n")
    err = run_expecting_error(script, ["--dataset", "imagenet_lt", "--root", str(mini_imagenet_lt),
                                       "--list", str(listing), "--output", str(tmp_path / "h.csv")] + TINY, capsys)
    assert err == f"error: {listing}: line 2: label 1000 outside 0..999"
    assert not (tmp_path / "h.csv").exists()


def test_corrupt_image_is_named(script, mini_imagenet_lt, tmp_path, capsys):
    good = read_list(mini_imagenet_lt / "ImageNet_LT_train.txt")[0]
    (tmp_path / "train").mkdir()
    shutil.copy(mini_imagenet_lt / good.path, tmp_path / "train" / "good.JPEG")
    (tmp_path / "train" / "bad.JPEG").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "ImageNet_LT_train.txt").write_text("train/good.JPEG 0\ntrain/bad.JPEG 1\n")
    err = run_expecting_error(script, ["--dataset", "imagenet_lt", "--root", str(tmp_path),
                                       "--output", str(tmp_path / "out" / "h.csv")] + TINY, capsys)
    bad = (tmp_path / 'train' / 'bad.JPEG').resolve()
    assert err.startswith(f"error: {tmp_path / 'ImageNet_LT_train.txt'}: row 2: cannot read image {bad} (")
    assert "\n" not in err.strip()
    assert not (tmp_path / "out").exists()


def test_checkpoint_that_does_not_fit(script, mini_imagenet_lt, tmp_path, capsys):
    torch.save({"model": {"visual.proj": torch.zeros(3, 3)}, "args": {}}, tmp_path / "wrong.pt")
    err = run_expecting_error(script, ["--dataset", "imagenet_lt", "--root", str(mini_imagenet_lt),
                                       "--checkpoint", str(tmp_path / "wrong.pt"), "--model", TINY_OPEN_CLIP,
                                       "--output", str(tmp_path / "h.csv"), "--workers", "0"], capsys)
    assert f"{tmp_path / 'wrong.pt'}: weights do not fit open_clip model '{TINY_OPEN_CLIP}'" in err


@pytest.mark.parametrize("flags, message", [
    (["--max-prob", "1.5"], "--max-prob must be in [0, 1]"),
    (["--per-class-cap", "-1"], "--per-class-cap must be >= 0"),
    (["--criterion", "none"], "--criterion none selects nothing without --tail-classes"),
    (["--tail-classes"], "--tail-classes: the iwildcam dataset has no tail-classes rule"),
])
def test_bad_flags(script, tmp_path, capsys, flags, message):
    err = run_expecting_error(script, ["--dataset", "iwildcam", "--root", str(tmp_path),
                                       "--output", str(tmp_path / "h.csv")] + flags, capsys)
    assert message in err


def test_not_a_wilds_root(script, tmp_path, capsys):
    err = run_expecting_error(script, ["--dataset", "iwildcam", "--root", str(tmp_path),
                                       "--output", str(tmp_path / "h.csv")] + TINY, capsys)
    assert "metadata.csv: missing: not a WILDS iWildCam v2.0 root" in err


def test_sample_templates_read_back(repo_root):
    iwildcam = read_hard_sample_csv(repo_root / "data_generation/iWildCam/sample.csv", "iwildcam")
    assert "acinonyx jubatus" in set(iwildcam["class_name"])
    assert set(iwildcam["class_folder"]) >= {"acinonyx_jubatus"}
    imagenet = read_hard_sample_csv(repo_root / "data_generation/ImageNet_LT/sample.csv", "imagenet_lt")
    from discl.data.imagenet_lt import class_names

    assert all(class_names()[i] == name for i, name in zip(imagenet["class_id"], imagenet["class_name"]))


def test_reference_template_row_fails_loudly(tmp_path):
    csv = tmp_path / "ref.csv"
    csv.write_text(",label id,label name,filepath,img_name\n0,58,Cheetah,x/8b5d.jpg,8b5d\n")
    with pytest.raises(InputError, match="row 1: column 'label name': unknown iWildCam species 'Cheetah'"):
        read_hard_sample_csv(csv, "iwildcam")
