"""WiSE-FT: exact interpolation ends, α chosen on the validation split, and a real tiny FLYP run whose α = 0 is the
zero-shot model and α = 1 the fine-tuned one, metric for metric."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from helpers import load_script

from discl.errors import InputError
from discl.tiny import TINY_OPEN_CLIP
from discl.wiseft import ALPHAS, choose_alpha, interpolate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_alphas_are_wiseft_grid():
    assert ALPHAS == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def test_interpolation_is_exact_at_both_ends():
    generator = torch.Generator().manual_seed(0)
    zero = {"w": torch.randn(64, generator=generator) * 1e3, "steps": torch.tensor([3]), "h": torch.randn(2, 2)}
    tuned = {"w": torch.randn(64, generator=generator) * 1e-3, "steps": torch.tensor([9]), "h": torch.randn(2, 2)}
    assert all(torch.equal(interpolate(zero, tuned, 0.0)[k], zero[k]) for k in ("w", "h"))
    assert all(torch.equal(interpolate(zero, tuned, 1.0)[k], tuned[k]) for k in ("w", "h"))
    assert torch.allclose(interpolate(zero, tuned, 0.25)["w"], 0.75 * zero["w"] + 0.25 * tuned["w"])
    # integer buffers are not averaged: they come from the fine-tuned model
    assert interpolate(zero, tuned, 0.0)["steps"].item() == 9
    with pytest.raises(ValueError, match="different weights"):
        interpolate(zero, {"w": tuned["w"]}, 0.5)
    with pytest.raises(ValueError, match="shape"):
        interpolate(zero, {**tuned, "h": torch.zeros(3)}, 0.5)


def test_alpha_is_chosen_on_the_selection_split():
    rows = [{"alpha": 0.0, "val_f1": 0.2, "test_f1": 0.9}, {"alpha": 0.5, "val_f1": 0.4, "test_f1": 0.1},
            {"alpha": 0.7, "val_f1": 0.4, "test_f1": 0.2}, {"alpha": 1.0, "val_f1": math.nan, "test_f1": 0.0}]
    assert choose_alpha(rows, "val", "f1") == 0.5  # a tie keeps the smaller α; NaN never wins; test is not read
    assert choose_alpha([{"alpha": 0.0, "val_f1": None}], "val", "f1") is None


@pytest.fixture(scope="module")
def flyp_run(hf_home, mini_iwildcam, tmp_path_factory):
    """A 2-epoch tiny FLYP run from saved 'pretrained' weights (a file, so the zero-shot model is fixed)."""
    from discl.models import create_open_clip

    folder = tmp_path_factory.mktemp("wiseft")
    torch.manual_seed(11)
    model, *_ = create_open_clip(TINY_OPEN_CLIP, "", device="cpu")
    torch.save(model.state_dict(), folder / "zero_shot.pt")
    load_script("curriculum/train.py").main([
        "--trainer", "flyp", "--dataset", "iwildcam", "--data-root", str(mini_iwildcam), "--output-dir",
        str(folder / "run"), "--model", TINY_OPEN_CLIP, "--pretrained", str(folder / "zero_shot.pt"),
        "--workers", "0", "--eval-batch-size", "64", "--batch-size", "16", "--epochs", "2", "--lr", "1e-3",
        "--wd", "0.0", "--warmup", "1", "--device", "cpu", "--no-plots"])
    return folder


def test_wiseft_ends_are_the_zero_shot_and_the_fine_tuned_model(flyp_run, mini_iwildcam, capsys):
    from discl.datasets import get_dataset
    from discl.distributed import init_distributed
    from discl.models import create_open_clip
    from discl.training.data import predict
    from discl.zeroshot import build_zeroshot_head, zeroshot_logits

    run = flyp_run / "run"
    assert load_script("curriculum/wiseft.py").main(["--run-dir", str(run), "--device", "cpu", "--alphas", "0",
                                                      "0.5", "1"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((run / "wiseft" / "wiseft.json").read_text())
    assert result["alphas"] == [0.0, 0.5, 1.0] and result["selection"] == {"split": "id_val", "metric": "f1"}
    assert f"chosen α = {result['chosen_alpha']}" in printed
    for name in ("wiseft.tsv", "wiseft.pdf", "wiseft.png"):
        assert (run / "wiseft" / name).is_file()

    # α = 1: the selected epoch's checkpoint, scored exactly as the training loop scored it
    summary = json.loads((run / "summary.json").read_text())
    assert result["fine_tuned"] == summary["best"]

    # α = 0: the pretrained weights, evaluated here without any WiSE-FT code
    dataset = get_dataset("iwildcam", mini_iwildcam)
    model, _, transform, tokenizer = create_open_clip(TINY_OPEN_CLIP, str(flyp_run / "zero_shot.pt"), device="cpu")
    model.eval()
    head = build_zeroshot_head(model, tokenizer, dataset.text_names(), list(dataset.zeroshot_templates()), "cpu")
    info = init_distributed("cpu")
    for split in ("id_val", "id_test", "test"):
        eval_set = dataset.eval_set(split)
        predictions, _ = predict(lambda images: zeroshot_logits(model, images, head), eval_set.paths,
                                 eval_set.labels, transform, info, 64)
        assert result["zero_shot"][split] == pytest.approx(dataset.evaluate(eval_set, predictions), abs=0)
    # the chosen α is the best on ID-val among the three
    by_alpha = {row["alpha"]: row["id_val_f1"] for row in result["rows"]}
    assert by_alpha[result["chosen_alpha"]] == max(by_alpha.values())
    assert np.isclose(result["chosen"]["id_val"]["f1"], max(by_alpha.values()))


def test_wiseft_needs_a_flyp_run(mini_imagenet_lt, tmp_path):
    out = tmp_path / "ce"
    load_script("curriculum/train.py").main([
        "--trainer", "ce", "--dataset", "imagenet_lt", "--data-root", str(mini_imagenet_lt), "--output-dir",
        str(out), "--width", "8", "--crop-size", "32", "--resize-size", "36", "--workers", "0", "--device", "cpu",
        "--no-plots", "--epochs", "1", "--curriculum", "none", "--stage-data", "replace-hard", "--batch-size", "64",
        "--eval-batch-size", "64"])
    with pytest.raises(InputError, match="needs a FLYP run .* trainer is 'ce'"):
        load_script("curriculum/wiseft.py").main(["--run-dir", str(out), "--device", "cpu"])
    with pytest.raises(InputError, match="no checkpoint"):
        load_script("curriculum/wiseft.py").main(["--run-dir", str(tmp_path / "nowhere"), "--device", "cpu"])
