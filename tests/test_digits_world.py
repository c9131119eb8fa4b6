"""The digits world: committed weights of small models trained on real handwritten digits (docs/digits-world.md).

The models are loaded from the committed fp16 weights and installed under the real ids in a folder of their own
(never into the session's HF cache, which holds the random tiny models other tests use); nothing is retrained
here except a few steps of each trainer to check that training is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from discl.tiny.digits import DIGITS_OPEN_CLIP, digits_open_clip_weights, install_digits_models, make_digits_lt
from discl.tiny.digits.data import (DIGIT_NAMES, LT_TRAIN_COUNTS, TEST_PER_CLASS, VAL_PER_CLASS, digit_images,
                                    split_indices)
from discl.tiny.digits.evaluate import (class_scores, held_out_sources, img2img, own_class_share,
                                        spectrum_table)
from discl.tiny.digits.install import MODEL_FILES, WEIGHTS_DIR, load_weights, training_report

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits_hf_home(tmp_path_factory):
    """A HF cache of its own with the digits models under the real ids."""
    hf_home = tmp_path_factory.mktemp("digits_hf_home")
    return hf_home, install_digits_models(hf_home)


@pytest.fixture(scope="module")
def refiner(digits_hf_home):
    """The installed refiner, through the production loader (fp16 variant upcast on CPU)."""
    from discl.models import REFINER_ID, load_img2img_pipeline

    return load_img2img_pipeline(str(digits_hf_home[1][REFINER_ID]), dtype="fp16", device="cpu", variant="fp16")


@pytest.fixture(scope="module")
def hf_clip(digits_hf_home):
    """The installed transformers CLIP and its processor, through the production loader."""
    from discl.models import HF_CLIP_ID, load_hf_clip

    return load_hf_clip(str(digits_hf_home[1][HF_CLIP_ID]), device="cpu")


def test_committed_weights_are_small_fp16_and_load():
    sizes = {name: (WEIGHTS_DIR / file).stat().st_size for name, file in MODEL_FILES.items()}
    assert sum(sizes.values()) <= 20 * 2**20
    from safetensors import safe_open

    for file in MODEL_FILES.values():
        with safe_open(WEIGHTS_DIR / file, framework="pt") as handle:
            assert {handle.get_slice(key).get_dtype() for key in handle.keys()} == {"F16"}
    models = load_weights()
    assert models["vae"].config.scaling_factor != 1.0  # 1 / std of the latents, set after training
    report = training_report()
    assert report["clip"]["zeroshot_test"] >= 0.9


def test_splits_are_disjoint_and_the_models_never_saw_val_or_test():
    splits = split_indices()
    _, labels = digit_images()
    assert len(labels) == 1797
    seen = set()
    for name, indices in splits.items():
        assert not seen & set(indices.tolist()), name
        seen |= set(indices.tolist())
    assert seen == set(range(1797))
    assert np.bincount(labels[splits["val"]]).tolist() == [VAL_PER_CLASS] * 10
    assert np.bincount(labels[splits["test"]]).tolist() == [TEST_PER_CLASS] * 10


def test_long_tailed_folder_dataset(tmp_path):
    from discl.datasets import get_dataset

    root = make_digits_lt(tmp_path / "lt")
    dataset = get_dataset("folder", root)
    names = dataset.class_names()
    assert sorted(names) == sorted(DIGIT_NAMES)
    assert dict(zip(names, dataset.class_counts())) == LT_TRAIN_COUNTS
    groups = dict(zip(names, dataset.class_groups()))
    assert sorted(groups.values()).count("many") == 5
    assert sorted(groups.values()).count("medium") == 3
    assert [name for name, group in groups.items() if group == "few"] == ["eight", "three"]
    assert dataset.eval_splits == ("val", "test")
    assert len(dataset.eval_set("val").paths) == 10 * VAL_PER_CLASS
    assert len(dataset.eval_set("test").paths) == 10 * TEST_PER_CLASS
    # training images come from the pool the models were trained on, never from val / test
    pool = set(split_indices()["pool"].tolist())
    assert all(int(path.rsplit("digit", 1)[1][:4]) in pool for path in dataset.training_images().paths)
    assert make_digits_lt(tmp_path / "lt") == root  # a complete root is kept


def test_open_clip_format_is_the_same_clip(digits_hf_home, hf_clip):
    from discl.models import create_open_clip
    from discl.zeroshot import build_zeroshot_head, zeroshot_logits

    hf_home, installed = digits_hf_home
    assert installed[DIGITS_OPEN_CLIP] == digits_open_clip_weights(hf_home)
    model, _, preprocess, tokenizer = create_open_clip(
        str(hf_home / "open_clip_configs" / f"{DIGITS_OPEN_CLIP}.json"), str(installed[DIGITS_OPEN_CLIP]), "cpu")
    model.eval()
    sources, labels = held_out_sources(5)
    pixels = torch.stack([preprocess(image) for image in sources])
    texts = [f"a photo of a {name}" for name in DIGIT_NAMES]
    clip, processor = hf_clip
    with torch.no_grad():
        hf = clip(**processor(text=texts, images=sources, return_tensors="pt", padding=True))  # normalised
        assert torch.allclose(model.encode_image(pixels, normalize=True), hf.image_embeds, atol=1e-5)
        assert torch.allclose(model.encode_text(tokenizer(texts), normalize=True), hf.text_embeds, atol=1e-5)
        # the hard-sample scorer's and FLYP's zero-shot head classifies held-out digits
        head = build_zeroshot_head(model, tokenizer, DIGIT_NAMES, ["a photo of a {}."])
        accuracy = (zeroshot_logits(model, pixels, head).argmax(-1).numpy() == labels).mean()
    assert accuracy >= 0.9


def test_refiner_is_conditioned_by_the_clip_text_tower(refiner, hf_clip):
    clip, processor = hf_clip
    assert refiner.config.requires_aesthetics_score and not refiner.config.force_zeros_for_empty_prompt
    assert refiner.text_encoder is None and refiner.unet.config.addition_embed_type == "text_time"
    text = "a photo of a three"
    with torch.no_grad():
        _, _, pooled, _ = refiner.encode_prompt(text, device="cpu", do_classifier_free_guidance=False)
        expected = clip.get_text_features(**processor.tokenizer([text], return_tensors="pt"))
    expected = getattr(expected, "pooler_output", expected)
    assert torch.allclose(pooled, expected, atol=1e-2)  # the refiner's copy was saved in fp16


def test_high_strength_images_score_highest_on_their_prompts_class(refiner, hf_clip):
    """Most digits regenerated at high strength with another class's prompt are that class for the CLIP."""
    clip, processor = hf_clip
    sources, labels = held_out_sources(3)
    prompts = (labels + 5) % 10
    for strength in (0.9, 1.0):
        images = img2img(refiner, sources, prompts, strength)
        assert own_class_share(class_scores(clip, processor, images), prompts) >= 0.7, strength
    # and with their own class's prompt (what DisCL does with a hard image)
    images = img2img(refiner, sources, labels, 1.0)
    assert own_class_share(class_scores(clip, processor, images), labels) >= 0.8


def test_spectrum_moves_from_the_real_digit_to_the_prompt(refiner, hf_clip):
    clip, processor = hf_clip
    rows = {row["strength"]: row for row in spectrum_table(refiner, clip, processor, per_class=2,
                                                              strengths=(0.1, 0.5, 1.0))}
    assert rows[0.0]["source_class"] >= 0.9  # the real digits themselves
    # low strength: the real digit, a few grey levels away
    assert rows[0.1]["source_class"] >= 0.8 and rows[0.1]["pixel_rmse"] < 0.1
    # high strength: the prompt's digit, far from the source in pixels
    assert rows[1.0]["prompt_class"] >= 0.7 and rows[1.0]["source_class"] <= 0.2
    assert rows[0.1]["pixel_rmse"] < rows[0.5]["pixel_rmse"] < rows[1.0]["pixel_rmse"]
    assert rows[0.1]["prompt_class"] < rows[0.5]["prompt_class"] <= rows[1.0]["prompt_class"] + 0.1


def test_training_is_deterministic():
    from discl.tiny.digits.train import WorldConfig, train_world

    config = WorldConfig(clip_steps=2, clip_groups=1, vae_steps=2, vae_batch=4, unet_steps=2, unet_batch=4)
    first, report = train_world(config)
    second, _ = train_world(config)
    for name in ("clip", "vae", "unet"):
        a, b = first[name].state_dict(), second[name].state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[key], b[key]) for key in a), name
    assert set(report) == {"clip", "vae", "unet"}
