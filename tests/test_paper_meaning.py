"""The paper's definitions, pinned where users meet them: the defaults every entry script parses, and the rules
whose change would silently change what DisCL means (thresholds kept at equality, the adaptive rule's outlier
factor and argmax, selection on a validation split, metric names). Numbers are the paper's (docs/*.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import load_script

from discl import curriculum
from discl.clipscore import apply_threshold
from discl.datasets import get_dataset, names
from discl.guidance import REAL, level_from_strength, strength_from_level, strength_percent

REQUIRED_TRAIN = ["--output-dir", "out", "--data-root", "root"]


def _parse(script: str, argv: list[str]):
    return load_script(script).get_args_parser().parse_args(argv)


def test_flyp_defaults_are_the_papers():
    args = _parse("curriculum/iWildCam/train.py", REQUIRED_TRAIN)
    assert (args.model, args.pretrained) == ("ViT-B-16", "openai")
    assert (args.lr, args.wd, args.warmup, args.min_lr) == (1e-5, 0.2, 500, 0.0)
    assert (args.epochs, args.batch_size, args.curriculum_epoch) == (20, 256, 15)
    assert (args.real_sample_size, args.adaptive_choice, args.stage_data) == (30000, "argmax", "replace-hard")
    assert args.dataset == "iwildcam" and args.seed == 0


def test_imagenet_lt_defaults_are_the_papers():
    args = _parse("curriculum/ImageNet_LT/train.py", REQUIRED_TRAIN)
    assert (args.arch, args.width, args.loss, args.train_mode) == ("resnet10", 64, "ce", "full")
    assert (args.lr, args.wd, args.epochs, args.batch_size) == (1e-3, 1e-5, 65, 128)
    assert (args.curriculum, args.curriculum_epoch) == ("fixed", 60)
    assert list(args.guidance_levels) == [10, 30, 50, 100] and list(args.level_starts) == [0, 14, 29, 44]
    assert (args.stage_data, args.downsample_ratio, args.tail_fraction) == ("tail-topup", 0.3, 0.136)
    assert (args.crop_size, args.resize_size, args.split_convention) == (224, 256, "reference")
    assert args.dataset == "imagenet_lt"


def test_the_baseline_trains_on_the_real_long_tailed_data():
    args = _parse("curriculum/ImageNet_LT/train_baseline.py", REQUIRED_TRAIN)
    assert args.curriculum == "none" and args.downsample_ratio == 1.0 and args.tail_fraction is None


@pytest.mark.parametrize("script, dataset", [("data_generation/iWildCam/gene_img.py", "iwildcam"),
                                             ("data_generation/ImageNet_LT/gene_img.py", "imagenet_lt")])
def test_generation_defaults_are_the_papers(script, dataset):
    import argparse

    from discl.generation.runner import config_from_args, get_args_parser
    from discl.models import REFINER_ID

    args = argparse.ArgumentParser(parents=[get_args_parser(dataset)]).parse_args(
        ["--data-csv", "hard.csv"] + (["--prompt-json", "p.json"] if dataset == "imagenet_lt" else []))
    config = config_from_args(args)
    assert config.strengths == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert config.seeds == (10, 20, 30, 40, 42, 50, 60, 70)
    assert (config.guidance_scale, config.steps, config.backend) == (10.0, 50, "sdxl-refiner")
    assert config.model_id == REFINER_ID and config.variant == "fp16"
    assert (config.retry_threshold, config.max_retries) == (0.3, 5)
    assert config.clip_model == "openai/clip-vit-base-patch32"
    ds = get_dataset(dataset)
    if dataset == "iwildcam":
        assert ds.generation_resolution == (480, 270) and not ds.quality_retry and not ds.uses_prompt_json
        assert ds.generation_prompt("acinonyx jubatus") == "a photo of cheetah in the wild"
    else:
        assert ds.generation_resolution is None and ds.quality_retry and ds.uses_prompt_json


@pytest.mark.parametrize("dataset, threshold, resize", [("iwildcam", 0.25, "480x270"), ("imagenet_lt", 0.30, "none")])
def test_clipscore_defaults_are_the_papers(dataset, threshold, resize):
    from discl.clipscore import parse_args

    config, _, _ = parse_args(["--syn-path", "s", "--real-path", "r"], dataset)
    assert config.threshold == pytest.approx(threshold) and config.resize == resize
    assert config.clip_model == "openai/clip-vit-base-patch32"


@pytest.mark.parametrize("dataset, min_guidance, levels, val_size",
                         [("iwildcam", 50, None, 2000), ("imagenet_lt", 0, [10, 30, 50], 100)])
def test_training_table_defaults_are_the_papers(dataset, min_guidance, levels, val_size):
    from discl.training_data import dataset_defaults

    defaults = dataset_defaults(get_dataset(dataset).__class__)
    assert defaults["min_guidance"] == min_guidance and defaults["val_size"] == val_size
    assert (None if defaults["guidance_levels"] is None else list(defaults["guidance_levels"])) == levels


def test_guidance_is_one_minus_strength_in_integer_percent():
    assert [level_from_strength(s / 10) for s in range(1, 11)] == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert level_from_strength(0.29) == 71 and strength_percent(0.29) == 29  # int(100 * 0.29) would be 28
    assert strength_from_level(30) == pytest.approx(0.7) and REAL == 100


def test_a_score_exactly_at_the_threshold_is_kept():
    table = pd.DataFrame({"clip_image_text": [0.2499, 0.25, 0.2501], "clip_image_image": [0.9, 0.9, 0.9]})
    assert apply_threshold(table, 0.25)["keep"].tolist() == [False, True, True]


def test_adaptive_rule_drops_values_outside_1_5_iqr_then_takes_the_mean():
    # quartiles of [0, 1, 2, 3, 100] (linear): Q1 = 1, Q3 = 3, IQR = 2 -> keep [-2, 6]; 100 is an outlier
    assert curriculum.remove_outliers(np.array([0.0, 1, 2, 3, 100])).tolist() == [0, 1, 2, 3]
    # 6.0 sits exactly on Q3 + 1.5 IQR of [0, 1, 2, 3, 6] (Q1 1, Q3 3) and is kept; a factor of 1.4 would drop it
    assert curriculum.remove_outliers(np.array([0.0, 1, 2, 3, 6])).tolist() == [0, 1, 2, 3, 6]
    # 6.5 lies past Q3 + 1.5 IQR (6) but inside Q3 + 2 IQR (7): dropped by the paper's factor only
    assert curriculum.remove_outliers(np.array([0.0, 1, 2, 3, 6.5])).tolist() == [0, 1, 2, 3]
    p0 = [0.1, 0.1, 0.1, 0.5, 0.5]
    p1 = [0.3, 0.4, 0.2, 0.4, 0.6]
    scores = curriculum.progress_scores(p0, p1, [10, 10, 10, 100, 100])
    assert scores[10] == pytest.approx(0.2) and scores[100] == pytest.approx(0.0)
    assert curriculum.argmax_level(scores) == 10  # the largest mean progress wins, not the smallest
    assert curriculum.argmax_level({10: 0.1, 30: 0.3, 50: -0.2, 100: 0.0}) == 30


@pytest.mark.parametrize("name", ["iwildcam", "imagenet_lt", "folder"])
def test_every_dataset_selects_on_a_validation_split(name):
    dataset = get_dataset(name)
    assert "test" not in dataset.selection_split and "val" in dataset.selection_split
    assert dataset.selection_metric in dataset.metric_names
    assert name in names()


def test_the_headline_metrics_have_their_papers_names():
    assert get_dataset("iwildcam").metric_names == ("acc", "recall", "f1")
    assert get_dataset("iwildcam").split_titles == {"id_val": "ID-val", "id_test": "ID-test", "test": "OOD-test"}
    assert set(get_dataset("imagenet_lt").metric_names) == {"overall", "many", "medium", "few"}
