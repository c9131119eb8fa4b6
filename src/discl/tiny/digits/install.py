"""The committed digits weights (fp16 safetensors, package data) and their installation under the real ids.

``install_digits_models(hf_home)`` writes, like ``discl.tiny.install_tiny_models``:

* ``stabilityai/stable-diffusion-xl-refiner-1.0``: the digits VAE + UNet + the CLIP's text tower as
  ``text_encoder_2``, a ``StableDiffusionXLImg2ImgPipeline`` with fp32 files and the fp16 variant;
* ``openai/clip-vit-base-patch32``: the digits ``CLIPModel`` and its ``CLIPProcessor`` (16 px images);
* the same CLIP in open_clip's format: the model config ``$HF_HOME/open_clip_configs/discl-digits-clip.json``
  and its weights ``$HF_HOME/open_clip_weights/discl-digits-clip.safetensors`` (``--model discl-digits-clip
  --pretrained <that file>``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from discl.fileio import atomic_write_bytes, atomic_write_json
from discl.models import HF_CLIP_ID, OPEN_CLIP_CONFIG_DIR, REFINER_ID, quiet_hf_loading
from discl.tiny.digits.architectures import (OPEN_CLIP_CONFIG, build_clip, build_pipeline, build_unet, build_vae,
                                             open_clip_state_dict)
from discl.tiny.digits.data import IMAGE_SIZE

if TYPE_CHECKING:
    import torch

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MODEL_FILES = {"clip": "clip.safetensors", "vae": "vae.safetensors", "unet": "unet.safetensors"}
REPORT_FILE = "training.json"
DIGITS_OPEN_CLIP = "discl-digits-clip"
OPEN_CLIP_WEIGHTS_DIR = "open_clip_weights"  # under HF_HOME


def save_weights(models: dict[str, Any], report: dict, folder: str | os.PathLike = WEIGHTS_DIR) -> dict[str, Path]:
    """Write the three models as fp16 safetensors (the VAE's scaling factor in its metadata) and the report."""
    from safetensors.torch import save

    folder = Path(folder)
    written = {}
    for name, file in MODEL_FILES.items():
        model = models[name]
        state = {key: value.detach().half().contiguous() for key, value in model.state_dict().items()
                 if value.is_floating_point()}
        metadata = {"scaling_factor": repr(float(model.config.scaling_factor))} if name == "vae" else None
        atomic_write_bytes(folder / file, save(state, metadata=metadata))
        written[name] = folder / file
    atomic_write_json(folder / REPORT_FILE, report)
    return written


def load_weights(folder: str | os.PathLike = WEIGHTS_DIR) -> dict[str, Any]:
    """The committed models in fp32 and eval mode: ``{"clip": CLIPModel, "vae": AutoencoderKL, "unet": UNet}``."""
    from safetensors import safe_open

    folder = Path(folder)
    models = {"clip": build_clip(), "vae": build_vae(), "unet": build_unet()}
    for name, model in models.items():
        with safe_open(folder / MODEL_FILES[name], framework="pt") as handle:
            state = {key: handle.get_tensor(key).float() for key in handle.keys()}
            metadata = handle.metadata() or {}
        # strict: every parameter is in the file (buffers such as position_ids are rebuilt by the constructor)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [key for key in missing if key in dict(model.named_parameters())]
        if missing or unexpected:
            raise RuntimeError(f"{folder / MODEL_FILES[name]} does not fit the {name} architecture: "
                               f"missing {missing[:3]}, unexpected {unexpected[:3]}")
        if "scaling_factor" in metadata:
            model.register_to_config(scaling_factor=float(metadata["scaling_factor"]))
        model.eval()
    return models


def training_report(folder: str | os.PathLike = WEIGHTS_DIR) -> dict:
    """What the training script measured when it wrote the committed weights."""
    return json.loads((Path(folder) / REPORT_FILE).read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=4)
def weights_digest(folder: str | os.PathLike = WEIGHTS_DIR) -> str:
    """SHA-256 over the weight files: the installed snapshots are named after it."""
    digest = hashlib.sha256()
    for file in MODEL_FILES.values():
        digest.update((Path(folder) / file).read_bytes())
    return digest.hexdigest()


def digits_open_clip_weights(hf_home: str | os.PathLike) -> Path:
    """Where ``install_digits_models`` puts the open_clip weights (the ``--pretrained`` of FLYP / hard samples)."""
    return Path(hf_home) / OPEN_CLIP_WEIGHTS_DIR / f"{DIGITS_OPEN_CLIP}.safetensors"


def _clip_processor():
    from transformers import CLIPImageProcessor, CLIPProcessor

    from discl.tiny.models import build_clip_tokenizer

    image_processor = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                         crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    return CLIPProcessor(image_processor=image_processor, tokenizer=build_clip_tokenizer())


def _save_refiner(models: dict[str, Any], folder: Path) -> None:
    from discl.tiny.models import _save_with_fp16_variant, write_bpe_files

    _save_with_fp16_variant(build_pipeline(models["clip"], models["vae"], models["unet"]), folder)
    write_bpe_files(folder / "tokenizer_2")


def _save_hf_clip(models: dict[str, Any], folder: Path) -> None:
    from discl.tiny.models import write_bpe_files

    with quiet_hf_loading():
        models["clip"].save_pretrained(folder, safe_serialization=True)
        _clip_processor().save_pretrained(folder)
    write_bpe_files(folder)


def _file_digest(path: Path) -> str | None:
    """The ``weights_sha256`` a file of ours records in its safetensors metadata (None: no such file)."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as handle:
            return (handle.metadata() or {}).get("weights_sha256")
    except (OSError, ValueError, RuntimeError):
        return None


def _install_open_clip(hf_home: Path, digest: str, models: Callable[[], dict[str, Any]]) -> Path:
    """The open_clip config (by name, where ``discl.models`` looks) and the weights (``--pretrained`` file)."""
    from safetensors.torch import save

    config = hf_home / OPEN_CLIP_CONFIG_DIR / f"{DIGITS_OPEN_CLIP}.json"
    if not config.is_file() or json.loads(config.read_text()) != OPEN_CLIP_CONFIG:
        atomic_write_json(config, OPEN_CLIP_CONFIG)
    weights = digits_open_clip_weights(hf_home)
    if _file_digest(weights) != digest:
        state: dict[str, torch.Tensor] = open_clip_state_dict(models()["clip"])
        atomic_write_bytes(weights, save(state, metadata={"weights_sha256": digest}))
    return weights


def install_digits_models(hf_home: str | os.PathLike, weights: str | os.PathLike = WEIGHTS_DIR) -> dict[str, Path]:
    """Install the digits models under the real ids into ``hf_home`` (idempotent); map id → where it lies."""
    from discl.tiny.models import install_snapshot

    hf_home = Path(hf_home)
    digest = weights_digest(str(weights))
    loaded: dict[str, Any] = {}

    def models() -> dict[str, Any]:  # loaded once, and only when something is missing
        if not loaded:
            loaded.update(load_weights(weights))
        return loaded

    installed = {}
    for repo_id, save in ((REFINER_ID, _save_refiner), (HF_CLIP_ID, _save_hf_clip)):
        commit = hashlib.sha1(f"discl-digits:{digest}:{repo_id}".encode()).hexdigest()
        installed[repo_id] = install_snapshot(hf_home, repo_id, commit,
                                              lambda folder, save=save: save(models(), folder),
                                              f"digits world, weights sha256 {digest[:12]}")
    installed[DIGITS_OPEN_CLIP] = _install_open_clip(hf_home, digest, models)
    return installed
