"""Tiny real models under the real hub ids, loaded through the production loaders, offline."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from discl import models
from discl.seeding import make_generators
from discl.tiny import models as tiny_models

REFINER = "stabilityai/stable-diffusion-xl-refiner-1.0"
CLIP = "openai/clip-vit-base-patch32"
TEXTS = ["a photo of a white-tailed deer.", "Camera-trap photo: 2 ocelots, at night!", "naïve café — über"]


def _photo(seed: int, size: int = 64) -> Image.Image:
    rng = np.random.default_rng(seed)
    gradient = np.linspace(0, 255, size)[None, :, None] * rng.uniform(0.2, 1.0, size=(1, 1, 3))
    noise = rng.integers(0, 60, size=(size, size, 3))
    return Image.fromarray(np.clip(gradient + noise, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and OpenMP's spinning threads slow down ~10x when the
    CPU is shared with other processes (measured: batched test 1.3 s with one thread vs 27 s with two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pipe(hf_home):
    return models.load_img2img_pipeline(dtype="fp16", device="cpu")


def _safetensors_dtypes(path) -> set[str]:
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return {entry["dtype"] for key, entry in header.items() if key != "__metadata__"}


def test_clip_tokenizer_matches_open_clip_ids():
    import open_clip

    vocab, merges = tiny_models.clip_bpe_vocab()
    assert len(vocab) == 49408 and len(merges) == 48894
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    tokenizer = tiny_models.build_clip_tokenizer()
    reference = open_clip.get_tokenizer("ViT-B-16")(TEXTS)
    for text, expected in zip(TEXTS, reference):
        ids = tokenizer(text).input_ids
        assert ids == expected[: len(ids)].tolist()
        assert expected[len(ids):].eq(0).all()


def test_install_layout_and_idempotence(hf_home):
    installed = tiny_models.install_tiny_models(hf_home)
    refiner = installed[REFINER]
    repo = hf_home / "hub" / "models--stabilityai--stable-diffusion-xl-refiner-1.0"
    assert refiner.parent == repo / "snapshots" and len(refiner.name) == 40
    assert (repo / "refs" / "main").read_text() == refiner.name
    index = json.loads((refiner / "model_index.json").read_text())
    assert index["text_encoder"] == [None, None] and index["requires_aesthetics_score"] is True
    assert _safetensors_dtypes(refiner / "unet" / "diffusion_pytorch_model.fp16.safetensors") == {"F16"}
    assert _safetensors_dtypes(refiner / "unet" / "diffusion_pytorch_model.safetensors") == {"F32"}
    assert (installed[CLIP] / "vocab.json").is_file() and (refiner / "tokenizer_2" / "merges.txt").is_file()
    stamp = (refiner / "unet" / "config.json").stat().st_mtime_ns
    assert tiny_models.install_tiny_models(hf_home) == installed
    assert (refiner / "unet" / "config.json").stat().st_mtime_ns == stamp


def test_failed_install_leaves_no_snapshot_and_no_ref(tmp_path, monkeypatch):
    def half_then_fail(folder):
        (folder / "model_index.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setitem(tiny_models._SAVERS, REFINER, half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        tiny_models.install_model(tmp_path, REFINER)
    repo = tiny_models.repo_cache_dir(tmp_path, REFINER)
    assert list((repo / "snapshots").iterdir()) == [] and not (repo / "refs").exists()


def test_builders_are_deterministic_and_leave_global_rng_alone():
    tokenizer = tiny_models.build_clip_tokenizer()
    state = torch.random.get_rng_state()
    first, _ = tiny_models.build_hf_clip(tokenizer)
    second, _ = tiny_models.build_hf_clip(tokenizer)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name


def test_pipeline_loads_by_real_id_and_runs_at_several_strengths(pipe):
    assert pipe.text_encoder is None and pipe.tokenizer is None
    assert pipe.tokenizer_2.pad_token == "!" and pipe.unet.dtype == torch.float32  # fp16 upcast on CPU
    outputs = {}
    for strength in (0.1, 0.5, 1.0):
        steps = []

        def count_step(pipeline, step, timestep, callback_kwargs):
            steps.append(step)
            return callback_kwargs

        # guidance_scale 1 turns classifier-free guidance off: half the UNet work (the batched test covers CFG)
        result = pipe(prompt="a camera trap photo of a deer", image=_photo(0), strength=strength,
                      num_inference_steps=10, guidance_scale=1.0, generator=make_generators([7])[0],
                      output_type="np", callback_on_step_end=count_step)
        outputs[strength] = result.images
        assert result.images.shape == (1, 64, 64, 3)
        assert np.isfinite(result.images).all() and 0 <= result.images.min() <= result.images.max() <= 1
        # img2img runs only the last int(steps · strength) denoising steps
        assert len(steps) == int(10 * strength)
    assert np.abs(outputs[0.1] - outputs[1.0]).max() > 1e-3


def test_fp32_files_are_the_same_model_and_load_quietly(pipe, caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        full = models.load_img2img_pipeline(dtype="fp32", device="cpu", variant=None)
    assert not [r for r in caplog.records if "the Hub" in r.getMessage()]  # offline notices held back...
    assert logging.getLogger("huggingface_hub.hf_api").filters == []  # ... only while loading
    fp32 = full.unet.conv_in.weight
    from_fp16 = pipe.unet.conv_in.weight
    assert fp32.dtype == from_fp16.dtype == torch.float32 and not torch.equal(fp32, from_fp16)
    assert torch.allclose(fp32, from_fp16, rtol=1e-3, atol=1e-4)  # the variant is the fp16 rounding


def test_batched_call_with_per_sample_generators_equals_single_calls(pipe):
    prompts = ["a photo of a deer", "a photo of an ocelot", "a photo of a deer"]
    images = [_photo(1), _photo(2), _photo(3)]
    seeds = [11, 12, 13]
    kwargs = dict(strength=0.5, num_inference_steps=6, guidance_scale=5.0, output_type="np")
    batched = pipe(prompt=prompts, image=images, generator=make_generators(seeds), **kwargs).images
    singles = np.concatenate([pipe(prompt=p, image=i, generator=make_generators([s])[0], **kwargs).images
                              for p, i, s in zip(prompts, images, seeds)])
    assert batched.shape == (3, 64, 64, 3)
    assert np.abs(batched - singles).max() <= 1e-5
    assert np.abs(batched[0] - batched[2]).max() > 1e-3  # same prompt, other image and seed: other output


def test_hf_clip_loads_by_real_id(hf_home):
    model, processor = models.load_hf_clip(device="cpu")
    inputs = processor(text=TEXTS[:2], images=[_photo(4), _photo(5)], return_tensors="pt", padding=True)
    assert inputs["pixel_values"].shape == (2, 3, 32, 32)
    with torch.no_grad():
        out = model(**inputs)
    assert out.image_embeds.shape == (2, 32) and out.text_embeds.shape == (2, 32)
    assert torch.allclose(out.image_embeds.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert processor.tokenizer(TEXTS[0]).input_ids[0] == 49406


def test_tiny_open_clip_forward_and_clip_loss_step(caplog):
    import logging

    from open_clip import ClipLoss

    with caplog.at_level(logging.INFO):
        model, preprocess_train, preprocess_val, tokenizer = models.create_open_clip(
            tiny_models.TINY_OPEN_CLIP, pretrained="", device="cpu")
        assert logging.getLogger().level == logging.INFO  # restored after open_clip's chatter was held back
    assert [r.levelno for r in caplog.records if r.name == "root"] == [logging.WARNING]  # "initialized randomly"
    images = torch.stack([preprocess_train(_photo(i, size=80)) for i in range(4)])
    assert images.shape == (4, 3, 64, 64) and preprocess_val(_photo(9)).shape == (3, 64, 64)
    texts = tokenizer([f"a photo of animal {i}" for i in range(4)])
    assert texts.shape == (4, 77)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model.visual.conv1.weight.detach().clone()
    image_features, text_features, logit_scale = model(images, texts)[:3]
    assert image_features.shape == (4, 32) and text_features.shape == (4, 32)
    loss = ClipLoss()(image_features, text_features, logit_scale)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.visual.conv1.weight)


def test_cpu_falls_back_to_fp32_and_rejects_unknown_dtype(caplog):
    with caplog.at_level("INFO", logger="discl.models"):
        assert models.torch_dtype("bf16", "cpu") == torch.float32
    assert "fp32 instead of bf16" in caplog.text
    assert models.torch_dtype("fp16", "cuda") == torch.float16
    with pytest.raises(ValueError, match="fp8"):
        models.torch_dtype("fp8", "cpu")


def test_tiny_world_cli(tmp_path, capsys, hf_home, mini_iwildcam, mini_imagenet_lt, monkeypatch):
    from discl.tiny.__main__ import main

    # Point the world at the session's complete parts: the CLI must find them complete and rebuild nothing.
    for name, built in (("hf_home", hf_home), ("iwildcam", mini_iwildcam), ("imagenet_lt", mini_imagenet_lt)):
        (tmp_path / name).symlink_to(built, target_is_directory=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    stamp = (mini_imagenet_lt / "ImageNet_LT_train.txt").stat().st_mtime_ns
    assert main(["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert REFINER in printed and CLIP in printed and tiny_models.TINY_OPEN_CLIP in printed
    assert "note: export" not in printed
    iwildcam_line = next(line for line in printed.splitlines() if line.startswith("iwildcam"))
    assert "train" in iwildcam_line and "id_test" in iwildcam_line and "classes" in iwildcam_line
    lt_line = next(line for line in printed.splitlines() if line.startswith("imagenet_lt"))
    assert "many" in lt_line and "medium" in lt_line and "few" in lt_line
    assert (mini_imagenet_lt / "ImageNet_LT_train.txt").stat().st_mtime_ns == stamp


def test_tiny_world_cli_names_the_hf_home_to_export(tmp_path, capsys, hf_home, mini_iwildcam, mini_imagenet_lt,
                                                    monkeypatch):
    from discl.tiny.__main__ import main

    for name, built in (("hf_home", hf_home), ("iwildcam", mini_iwildcam), ("imagenet_lt", mini_imagenet_lt)):
        (tmp_path / name).symlink_to(built, target_is_directory=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "another_hf_home"))
    assert main(["--out", str(tmp_path)]) == 0
    assert f"export HF_HOME={tmp_path.resolve() / 'hf_home'}" in capsys.readouterr().out


def test_default_open_clip_id_loads_offline_with_quick_gelu(hf_home):
    """The production default (ViT-B-16, pretrained "openai") resolves offline through the Hub cache, loads the
    installed weights exactly, and uses QuickGELU as OpenAI's weights require (open_clip only warns otherwise)."""
    from open_clip.transformer import QuickGELU
    from safetensors.torch import load_file

    snapshot = tiny_models.install_model(hf_home, tiny_models.OPEN_CLIP_VIT_B16_OPENAI_ID)
    model, _, preprocess_val, tokenizer = models.create_open_clip("ViT-B-16", "openai", "cpu")
    saved = load_file(snapshot / "open_clip_model.safetensors")
    state = model.state_dict()
    assert saved.keys() == state.keys()
    assert all(torch.equal(state[key].half(), value) for key, value in saved.items())
    activations = {type(module) for module in model.modules() if "gelu" in type(module).__name__.lower()}
    assert activations == {QuickGELU}
    assert tokenizer(["a photo of a cheetah"]).shape == (1, 77)


def test_quick_gelu_follows_the_tag_the_weights_came_from():
    assert models.uses_quick_gelu("ViT-B-16", "openai")
    assert not models.uses_quick_gelu("ViT-B-16", "laion2b_s34b_b88k")
    assert not models.uses_quick_gelu("ViT-B-16", "") and not models.uses_quick_gelu("ViT-B-16", None)
