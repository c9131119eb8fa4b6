"""More of the paper's definitions, pinned on small hand-computed examples: hard-sample scoring and defaults, the
adaptive rule's mean progress on true-class probabilities, FLYP's symmetric contrastive loss at CLIP's learned
temperature, iWildCam's selection on ID-val macro-F1, the SDXL refiner, and the quality retry's ``<=`` rule."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import load_script, one_hard_imagenet_lt_image
from PIL import Image

from discl import curriculum
from discl.datasets import get_dataset

# Per image (a grey level k·40), the classifier's softmax output; the labels are below.
PROBS = np.array([[0.6, 0.3, 0.1],   # label 1: wrong, p(true) 0.3
                  [0.2, 0.5, 0.3],   # label 1: right, p(true) 0.5
                  [0.4, 0.3, 0.3],   # label 0: right, yet p(true) 0.4 < 0.5
                  [0.1, 0.1, 0.8]])  # label 0: wrong, p(true) 0.1
LABELS = [1, 1, 0, 0]


def _grey_images(folder: Path) -> list[str]:
    paths = []
    for k in range(len(PROBS)):
        path = folder / f"img{k}.png"
        Image.new("RGB", (8, 8), (40 * k,) * 3).save(path)
        paths.append(str(path))
    return paths


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)


def _lookup_logits(images: torch.Tensor) -> torch.Tensor:
    """Logits whose softmax is the row of ``PROBS`` of each grey image."""
    rows = torch.round(images.mean(dim=(1, 2, 3)) * 255 / 40).long()
    return torch.log(torch.as_tensor(PROBS, dtype=torch.float32))[rows]


def test_hard_sample_scores_are_true_class_probability_and_a_wrong_prediction(tmp_path):
    from discl.datasets.base import RealImages
    from discl.hard_samples import Classifier, score_images, select_hard

    paths = _grey_images(tmp_path)
    images = RealImages(paths, LABELS, [Path(p).name for p in paths])
    scores = score_images(Classifier(_lookup_logits, _to_tensor, "lookup"), images, ["a", "b", "c"])
    assert scores["true_prob"].to_numpy() == pytest.approx([0.3, 0.5, 0.4, 0.1], abs=1e-6)
    assert scores["pred_id"].tolist() == [0, 1, 0, 2]
    # misclassified = the prediction is not the true class (image 2 is right although p(true) < 0.5)
    assert scores["misclassified"].tolist() == [True, False, False, True]
    assert select_hard(scores).tolist() == [True, False, False, True]
    assert select_hard(scores, "low-prob").tolist() == [True, False, True, True]


def test_hard_sample_defaults_are_the_papers():
    from discl.hard_samples import get_args_parser

    args = get_args_parser("iwildcam").parse_args(["--data-root", "root", "--output", "hard.csv"])
    assert (args.criterion, args.max_prob, args.per_class_cap, args.tail_classes) == ("misclassified", 0.5, None,
                                                                                     False)
    assert (args.few_max, args.many_min, args.split_convention) == (20, 100, "reference")


def test_the_probe_reads_the_true_class_probability(tmp_path):
    from discl.distributed import DistInfo
    from discl.training.data import predict

    paths = _grey_images(tmp_path)
    predictions, true_probs = predict(_lookup_logits, paths, LABELS, _to_tensor, DistInfo(), batch_size=3)
    assert predictions.tolist() == [0, 1, 0, 2]
    assert true_probs == pytest.approx([0.3, 0.5, 0.4, 0.1], abs=1e-6)  # not the top probability


def test_adaptive_progress_is_the_mean_not_the_median():
    # deltas [0, 0, 0.3]: Q1 0, Q3 0.15, IQR 0.15, upper fence 0.375 keeps 0.3; mean 0.1 (median would be 0)
    scores = curriculum.progress_scores([0.2, 0.2, 0.2], [0.2, 0.2, 0.5], [10, 10, 10])
    assert scores == {10: pytest.approx(0.1)}
    # level 30's mean progress 0.1 beats level 10's 0.05 although level 10 has the larger median (0.05 vs 0)
    scores = curriculum.progress_scores([0.0] * 6, [0.05, 0.05, 0.05, 0.0, 0.0, 0.3], [10, 10, 10, 30, 30, 30])
    assert scores[10] == pytest.approx(0.05) and scores[30] == pytest.approx(0.1)
    assert curriculum.argmax_level(scores) == 30


@pytest.mark.usefixtures("one_torch_thread")
def test_flyp_loss_is_symmetric_clip_loss_at_the_learned_temperature():
    from discl.flyp import FlypOptions, FlypTask
    from discl.tiny.models import TINY_OPEN_CLIP

    torch.manual_seed(0)
    task = FlypTask(FlypOptions(model=TINY_OPEN_CLIP, pretrained=""))
    model = task.build(None, "cpu", resume=False).eval()
    images = torch.randn(3, 3, 64, 64)
    tokens = task.tokenizer(["a photo of cheetah.", "impala in the wild.", "a photo of a red fox."])
    with torch.no_grad():
        loss = task.loss(model, images, tokens)
        image = F.normalize(model.encode_image(images), dim=-1)
        text = F.normalize(model.encode_text(tokens), dim=-1)
        scale = model.logit_scale.exp()
        target = torch.arange(3)
        logits = scale * image @ text.T
        image_to_text, text_to_image = F.cross_entropy(logits, target), F.cross_entropy(logits.T, target)
        symmetric = lambda s: (F.cross_entropy(s * image @ text.T, target)  # noqa: E731
                               + F.cross_entropy(s * text @ image.T, target)) / 2
    torch.testing.assert_close(loss, (image_to_text + text_to_image) / 2, rtol=1e-5, atol=1e-6)
    assert scale.item() == pytest.approx(1 / 0.07, rel=1e-5)  # CLIP's initial temperature 0.07, learned
    # the example tells the two directions and other temperatures apart
    assert abs(image_to_text - text_to_image) > 1e-3
    assert abs(loss - symmetric(1.0)) > 1e-3 and abs(loss - symmetric(scale.log())) > 1e-3


def test_iwildcam_selects_on_id_val_macro_f1_and_imagenet_lt_on_val_overall():
    iwildcam, imagenet_lt = get_dataset("iwildcam"), get_dataset("imagenet_lt")
    assert (iwildcam.selection_split, iwildcam.selection_metric) == ("id_val", "f1")
    assert iwildcam.eval_splits == ("id_val", "id_test", "test")
    assert (imagenet_lt.selection_split, imagenet_lt.selection_metric) == ("val", "overall")


def test_the_diffusion_model_is_the_sdxl_refiner():
    from discl.generation.backend import BACKENDS, DEFAULT_BACKEND
    from discl.generation.runner import config_from_args, get_args_parser
    from discl.models import REFINER_ID

    assert REFINER_ID == "stabilityai/stable-diffusion-xl-refiner-1.0"
    assert DEFAULT_BACKEND == "sdxl-refiner" and BACKENDS[DEFAULT_BACKEND].default_model == REFINER_ID
    args = argparse.ArgumentParser(parents=[get_args_parser("imagenet_lt")]).parse_args(
        ["--data-csv", "hard.csv", "--prompt-json", "p.json"])
    config = config_from_args(args)
    assert config.retry_text == "prompt"  # the paper scores the image against the prompt it was made from


# ------------------------------------------------------------------------------- the quality retry's rule

@pytest.fixture(scope="module")
def one_hard_image(mini_imagenet_lt, tmp_path_factory) -> tuple[Path, Path]:
    """Hard-sample CSV with one ImageNet-LT training image, and a prompt JSON for its class."""
    return one_hard_imagenet_lt_image(mini_imagenet_lt, tmp_path_factory.mktemp("retry"),
                                      [f"a {{}} photographed in daylight, scene {k}" for k in range(3)])


def _generate(script, inputs, root: Path, output: Path, threshold: str) -> dict:
    from discl import generation
    from discl.manifest import read_manifest

    csv, prompts = inputs
    assert script.main(["--data_csv", str(csv), "--prompt_json", str(prompts), "--image-root", str(root),
                        "--output_path", str(output), "--strengths", "0.5", "--seeds", "10", "--steps", "2",
                        "--dtype", "fp32", "--resize", "32x32", "--max-retries", "1",
                        "--retry-threshold", threshold]) == 0
    row = read_manifest(output / "manifests" / "part001-of001.csv").iloc[0]
    return json.loads(generation.retry_record_path(output, row["synthetic_path"]).read_text())


@pytest.mark.usefixtures("one_torch_thread")
def test_quality_retry_regenerates_while_the_score_is_at_most_the_threshold(hf_home, one_hard_image,
                                                                            mini_imagenet_lt, tmp_path):
    script = load_script("data_generation/ImageNet_LT/gene_img.py")
    first = _generate(script, one_hard_image, mini_imagenet_lt, tmp_path / "a", "-1")
    assert first["tries"] == 1  # above the threshold: kept at once
    score = first["attempts"][0]["score"]
    # the same first attempt, its score now exactly at the threshold: regenerated (the paper's "while <= 0.3")
    again = _generate(script, one_hard_image, mini_imagenet_lt, tmp_path / "b", repr(score))
    assert again["attempts"][0] == first["attempts"][0]
    assert again["tries"] == 2
