"""The production model loaders every stage calls (diffusion pipeline, open_clip, transformers CLIP).

They take the real Hub ids and tags; tests and the demo point ``HF_HOME`` at a cache holding tiny models under
those same ids (``discl.tiny.install_tiny_models``), so nothing here knows about tiny models. open_clip model
names that open_clip does not ship are looked up as ``<name>.json`` model configs in the folders of
``$DISCL_OPEN_CLIP_CONFIGS`` (``os.pathsep``-separated) and ``$HF_HOME/open_clip_configs/`` (where the tiny
world puts its config), or given as a path to such a JSON file. Nothing is loaded at import time.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:
    import torch
    from diffusers import StableDiffusionXLImg2ImgPipeline
    from transformers import CLIPModel, CLIPProcessor

from discl.errors import InputError

log = logging.getLogger(__name__)

REFINER_ID = "stabilityai/stable-diffusion-xl-refiner-1.0"
OPEN_CLIP_CONFIG_DIR = "open_clip_configs"  # under HF_HOME: extra open_clip model configs (<name>.json)
HF_CLIP_ID = "openai/clip-vit-base-patch32"
DTYPES = ("fp16", "bf16", "fp32")


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_dtype(dtype: str, device: str) -> torch.dtype:
    """The torch dtype for ``fp16``/``bf16``/``fp32``; half precision falls back to fp32 on CPU."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype != "fp32" and str(device).startswith("cpu"):
        # Half-precision diffusion on CPU is slow or unsupported for several ops; the weights are upcast.
        log.info("device %s: using fp32 instead of %s", device, dtype)
        dtype = "fp32"
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype]


_OFFLINE_NOTICES = ("Couldn't connect to the Hub", "Could not reach the Hub")
_OFFLINE_NOTICE_LOGGERS = ("diffusers.pipelines.pipeline_utils", "huggingface_hub.hf_api")


class _DropOfflineNotices(logging.Filter):
    """Drops the 'could not reach the Hub, using the cache' warnings that every offline load logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_OFFLINE_NOTICES)


@contextlib.contextmanager
def quiet_hf_loading() -> Iterator[None]:
    """For one block: no per-file loading bars and, in offline mode, no 'Hub unreachable' notices.

    Other warnings (unused or missing weights, deprecations) still show.
    """
    from diffusers.utils import logging as diffusers_logging
    from huggingface_hub import constants
    from transformers.utils import logging as transformers_logging

    bars = (diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled())
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    notice_filter = _DropOfflineNotices()
    loggers = [logging.getLogger(name) for name in _OFFLINE_NOTICE_LOGGERS] if constants.HF_HUB_OFFLINE else []
    for logger in loggers:
        logger.addFilter(notice_filter)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(notice_filter)
        if bars[0]:
            diffusers_logging.enable_progress_bar()
        if bars[1]:
            transformers_logging.enable_progress_bar()


def load_img2img_pipeline(model_id: str = REFINER_ID, dtype: str = "fp16", device: str | None = None,
                          variant: str | None = "fp16") -> StableDiffusionXLImg2ImgPipeline:
    """``StableDiffusionXLImg2ImgPipeline.from_pretrained`` (safetensors) on ``device``, progress bar off."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    device = device or default_device()
    dtype_ = torch_dtype(dtype, device)
    with quiet_hf_loading():
        pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(
            model_id, dtype=dtype_, variant=variant or None, use_safetensors=True)
    pipe = pipe.to(device)
    # The caller shows its own progress over images; per-call denoising bars would flood the log.
    pipe.set_progress_bar_config(disable=True)
    return pipe


def uses_quick_gelu(name: str, pretrained: str | None) -> bool:
    """Whether open_clip's pretrained tag ``pretrained`` of model ``name`` was trained with QuickGELU (OpenAI's were)."""
    import open_clip

    return bool(pretrained) and bool(open_clip.pretrained.get_pretrained_cfg(name, pretrained).get("quick_gelu", False))


def create_open_clip(name: str = "ViT-B-16", pretrained: str | None = "openai", device: str | None = None,
                     quick_gelu: bool | None = None) -> tuple[torch.nn.Module, Callable, Callable, Callable]:
    """An open_clip model with its train/val transforms and tokenizer; ``pretrained`` '' or None = random init.

    ``quick_gelu`` defaults to what the pretrained tag needs; pass it when loading fine-tuned weights into a
    randomly initialised model (``uses_quick_gelu`` of the tag the weights started from).
    """
    import open_clip

    name = resolve_open_clip_name(name)
    # OpenAI's CLIP weights were trained with QuickGELU; open_clip's plain "ViT-B-16" config uses nn.GELU and only
    # warns about the mismatch, so the activation is taken from the pretrained tag's own config.
    if quick_gelu is None:
        quick_gelu = uses_quick_gelu(name, pretrained)
    # open_clip narrates each step at INFO on the root logger; keep its warnings (e.g. "initialized randomly").
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
            name, pretrained=pretrained or None, device=device or default_device(), force_quick_gelu=quick_gelu)
        tokenizer = open_clip.get_tokenizer(name)
    finally:
        root.setLevel(level)
    return model, preprocess_train, preprocess_val, tokenizer


def hf_home() -> Path:
    """The Hugging Face cache root: ``$HF_HOME``, else ``~/.cache/huggingface``."""
    return Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")


def open_clip_config_dirs() -> list[Path]:
    """Folders searched for extra open_clip model configs, in order."""
    extra = [Path(p) for p in os.environ.get("DISCL_OPEN_CLIP_CONFIGS", "").split(os.pathsep) if p]
    return extra + [hf_home() / OPEN_CLIP_CONFIG_DIR]


def resolve_open_clip_name(name: str) -> str:
    """An open_clip model name, registering a local ``<name>.json`` config (or the JSON path ``name``) when needed."""
    import open_clip

    candidate = Path(name)
    if candidate.suffix == ".json":
        if not candidate.is_file():
            raise InputError(candidate, "open_clip model config not found")
        if candidate.stem not in open_clip.list_models():
            open_clip.add_model_config(candidate)
        return candidate.stem
    if name in open_clip.list_models():
        return name
    for folder in open_clip_config_dirs():
        path = folder / f"{name}.json"
        if path.is_file():
            # the single file, not its folder: nothing else lying there is picked up
            open_clip.add_model_config(path)
            return name
    raise InputError("--model", f"unknown open_clip model {name!r}: not among open_clip's configs nor a "
                                f"{name}.json in {', '.join(str(d) for d in open_clip_config_dirs())}")


def load_hf_clip(model_id: str = HF_CLIP_ID, device: str | None = None) -> tuple[CLIPModel, CLIPProcessor]:
    """A transformers ``CLIPModel`` (eval mode) and its ``CLIPProcessor``."""
    from transformers import CLIPModel, CLIPProcessor

    with quiet_hf_loading():
        model = CLIPModel.from_pretrained(model_id).to(device or default_device()).eval()
        processor = CLIPProcessor.from_pretrained(model_id)
    return model, processor
