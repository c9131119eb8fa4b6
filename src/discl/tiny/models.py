"""Tiny real models built from configs, installed into an offline Hugging Face cache under the real ids.

The models keep the real architectures' *layout* (the SDXL refiner's single ``text_encoder_2``, its
aesthetic-score ``text_time`` conditioning, CLIP's projection heads) and the real CLIP BPE tokenizer, at sizes
that run a 64 px, 10-step img2img batch in about a second on a CPU. Weights are random (fixed seed), so
images are noise-like: the point is that production code paths run unchanged.

Precision choice: the ``*.fp16.safetensors`` variant files hold real fp16 weights (as on the Hub) and the
non-variant files fp32; ``discl.models.load_img2img_pipeline`` upcasts to fp32 on CPU.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from discl.fileio import atomic_write_json, atomic_write_text, share_tree
from discl.generation.backend import SD15_ID
from discl.models import HF_CLIP_ID, OPEN_CLIP_CONFIG_DIR, REFINER_ID, quiet_hf_loading

if TYPE_CHECKING:
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline
    from transformers import CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPTokenizer

log = logging.getLogger(__name__)

TINY_OPEN_CLIP = "discl-tiny-clip"
# Bump when a builder changes: the snapshot hash depends on it, so stale installs are rebuilt, not reused.
BUILDER_VERSION = "3"

CLIP_VOCAB_SIZE = 49408
CLIP_CONTEXT = 77
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
BUILD_SEED = 0

# Same schema as open_clip's shipped model_configs/ViT-B-16.json, scaled down.
TINY_OPEN_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": CLIP_CONTEXT, "vocab_size": CLIP_VOCAB_SIZE, "width": 64, "heads": 2,
                 "layers": 2},
}
HF_CLIP_IMAGE_SIZE = 32


# --- the real CLIP BPE tokenizer, rebuilt from the vocabulary file open_clip ships ---------------------------

@functools.lru_cache(maxsize=1)
def clip_bpe_vocab() -> tuple[dict[str, int], tuple[str, ...]]:
    """CLIP's 49,408-entry vocabulary and its 48,894 merges, as in OpenAI's ``SimpleTokenizer``."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    # Line 0 is a header; the vocabulary uses the first 49152 - 256 - 2 merges (OpenAI's cut-off).
    merges = tuple(lines[1:49152 - 256 - 2 + 1])
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + [m.replace(" ", "") for m in merges] + [BOS, EOS]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise RuntimeError(f"rebuilt CLIP vocabulary has {len(vocab)} entries, expected {CLIP_VOCAB_SIZE}")
    return vocab, merges


def save_clip_tokenizer(directory: str | os.PathLike, pad_token: str = EOS) -> CLIPTokenizer:
    """Write the CLIP tokenizer into ``directory`` (vocab.json, merges.txt + configs) and return it loaded."""
    from transformers import CLIPTokenizer

    directory = Path(directory)
    write_bpe_files(directory)
    tokenizer = CLIPTokenizer.from_pretrained(directory, pad_token=pad_token, model_max_length=CLIP_CONTEXT)
    tokenizer.save_pretrained(directory)
    return tokenizer


def write_bpe_files(directory: str | os.PathLike) -> None:
    """Write CLIP's ``vocab.json`` and ``merges.txt`` (the files of the Hub's CLIP tokenizer folders)."""
    vocab, merges = clip_bpe_vocab()
    atomic_write_json(Path(directory) / "vocab.json", vocab, indent=None)
    atomic_write_text(Path(directory) / "merges.txt", "#version: 0.2\n" + "\n".join(merges) + "\n")


def build_clip_tokenizer(pad_token: str = EOS) -> CLIPTokenizer:
    """The CLIP tokenizer as an object (built in a throw-away folder)."""
    with tempfile.TemporaryDirectory(prefix="discl-clip-tok-") as tmp:
        return save_clip_tokenizer(tmp, pad_token=pad_token)


# --- model builders --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _seeded() -> Iterator[None]:
    """Fork the global torch RNG and seed it, so building a model neither depends on nor disturbs it."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(BUILD_SEED)
        yield


def _text_config() -> CLIPTextConfig:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE, max_position_embeddings=CLIP_CONTEXT, hidden_size=32,
        intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, projection_dim=32,
        hidden_act="gelu", layer_norm_eps=1e-5,
        # the real token ids (the Hub configs carry legacy 0/2, which selects the same pooled token)
        bos_token_id=CLIP_VOCAB_SIZE - 2, eos_token_id=CLIP_VOCAB_SIZE - 1, pad_token_id=1)


def build_refiner_components(tokenizer_2: CLIPTokenizer | None = None) -> dict:
    """Components of a tiny SDXL *refiner* (only ``text_encoder_2``; aesthetic-score ``text_time`` UNet)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModelWithProjection

    text_config = _text_config()
    time_embed_dim = 8
    with _seeded():
        unet = UNet2DConditionModel(
            # diffusers' refiner fast-test UNet with one layer per block: half the CPU time, same code paths
            sample_size=32, in_channels=4, out_channels=4, layers_per_block=1,
            block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
            use_linear_projection=True, transformer_layers_per_block=1,
            cross_attention_dim=text_config.hidden_size, addition_embed_type="text_time",
            addition_time_embed_dim=time_embed_dim,
            # refiner time ids: original size (2) + crop (2) + aesthetic score (1), plus the pooled text embedding
            projection_class_embeddings_input_dim=5 * time_embed_dim + text_config.projection_dim,
        )
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64),
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            # The refiner's scaling factor. Its VAE also sets force_upcast (fp16 overflows at 1024 px); the tiny one
            # does not need it, and the upcast logs a warning on every call.
            sample_size=64, scaling_factor=0.13025, force_upcast=False,
        )
        text_encoder_2 = CLIPTextModelWithProjection(text_config)
    # The refiner's scheduler config (Euler, scaled-linear betas, "leading" spacing).
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading", num_train_timesteps=1000)
    return {
        "vae": vae, "text_encoder": None, "tokenizer": None, "text_encoder_2": text_encoder_2,
        "tokenizer_2": tokenizer_2 if tokenizer_2 is not None else build_clip_tokenizer(pad_token="!"),
        "unet": unet, "scheduler": scheduler,
    }


def build_refiner_pipeline(tokenizer_2: CLIPTokenizer | None = None) -> StableDiffusionXLImg2ImgPipeline:
    """A tiny ``StableDiffusionXLImg2ImgPipeline`` laid out like the SDXL refiner."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    return StableDiffusionXLImg2ImgPipeline(**build_refiner_components(tokenizer_2),
                                            requires_aesthetics_score=True, force_zeros_for_empty_prompt=False)


def build_sd_img2img_components(tokenizer: CLIPTokenizer | None = None) -> dict:
    """Components of a tiny Stable Diffusion 1.5 (one ``CLIPTextModel``, PNDM), from diffusers' fast-test configs."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    text_config = _text_config()
    with _seeded():
        unet = UNet2DConditionModel(
            # diffusers' SD img2img fast-test UNet with one layer per block (as the tiny refiner's)
            sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=text_config.hidden_size)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64),
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            sample_size=64, scaling_factor=0.18215, force_upcast=False)  # SD 1.5's scaling factor
        text_encoder = CLIPTextModel(text_config)
    # SD 1.5's scheduler config (PNDM without Runge-Kutta warm-up, scaled-linear betas).
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                              steps_offset=1, set_alpha_to_one=False, num_train_timesteps=1000)
    return {"vae": vae, "text_encoder": text_encoder,
            "tokenizer": tokenizer if tokenizer is not None else build_clip_tokenizer(),
            "unet": unet, "scheduler": scheduler, "safety_checker": None, "feature_extractor": None}


def build_sd_img2img_pipeline(tokenizer: CLIPTokenizer | None = None) -> StableDiffusionImg2ImgPipeline:
    """A tiny ``StableDiffusionImg2ImgPipeline`` laid out like Stable Diffusion 1.5 (no safety checker)."""
    from diffusers import StableDiffusionImg2ImgPipeline

    return StableDiffusionImg2ImgPipeline(**build_sd_img2img_components(tokenizer), requires_safety_checker=False)


def build_hf_clip(tokenizer: CLIPTokenizer | None = None) -> tuple[CLIPModel, CLIPProcessor]:
    """A tiny transformers ``CLIPModel`` and its ``CLIPProcessor`` (real tokenizer, 32 px images)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPVisionConfig

    vision_config = CLIPVisionConfig(image_size=HF_CLIP_IMAGE_SIZE, patch_size=8, hidden_size=32,
                                     intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                                     projection_dim=32)
    config = CLIPConfig(text_config=_text_config().to_dict(), vision_config=vision_config.to_dict(),
                        projection_dim=32)
    with _seeded():
        model = CLIPModel(config).eval()
    size = HF_CLIP_IMAGE_SIZE
    image_processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor = CLIPProcessor(image_processor=image_processor,
                              tokenizer=tokenizer if tokenizer is not None else build_clip_tokenizer())
    return model, processor


def register_tiny_open_clip(config_dir: str | os.PathLike | None = None) -> Path:
    """Write ``TINY_OPEN_CLIP``'s config where ``discl.models`` finds it (``$HF_HOME/open_clip_configs``) and register it."""
    import open_clip

    from discl.models import hf_home

    folder = Path(config_dir) if config_dir else hf_home() / OPEN_CLIP_CONFIG_DIR
    path = folder / f"{TINY_OPEN_CLIP}.json"
    if not path.is_file() or json.loads(path.read_text()) != TINY_OPEN_CLIP_CONFIG:
        atomic_write_json(path, TINY_OPEN_CLIP_CONFIG)
    if TINY_OPEN_CLIP not in open_clip.list_models():
        # Register the single file (not its folder) so nothing else lying there is picked up.
        open_clip.add_model_config(path)
    return path


# --- offline HF cache install ------------------------------------------------------------------------------------

def snapshot_hash(repo_id: str) -> str:
    """A fixed 40-hex 'commit' for the tiny snapshot of ``repo_id`` (changes with ``BUILDER_VERSION``)."""
    return hashlib.sha1(f"discl-tiny:{BUILDER_VERSION}:{repo_id}".encode()).hexdigest()


def repo_cache_dir(hf_home: str | os.PathLike, repo_id: str) -> Path:
    """``$HF_HOME/hub/models--ORG--NAME``, the hub cache folder of a model repo."""
    return Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))


def _save_with_fp16_variant(pipe, folder: Path) -> None:
    """As the Hub repos: fp32 files and an fp16 variant (production code loads ``variant="fp16"``)."""
    import torch
    from diffusers.utils import logging as diffusers_logging

    with quiet_hf_loading():
        pipe.save_pretrained(folder, safe_serialization=True)
        # Casting with .to() warns about modules to keep in fp32; these tiny models have none.
        verbosity = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()
        try:
            pipe.to(torch.float16)
        finally:
            diffusers_logging.set_verbosity(verbosity)
        pipe.save_pretrained(folder, safe_serialization=True, variant="fp16")


def _save_refiner(folder: Path) -> None:
    _save_with_fp16_variant(build_refiner_pipeline(), folder)
    write_bpe_files(folder / "tokenizer_2")


def _save_sd15(folder: Path) -> None:
    _save_with_fp16_variant(build_sd_img2img_pipeline(), folder)
    write_bpe_files(folder / "tokenizer")


def _save_hf_clip(folder: Path) -> None:
    model, processor = build_hf_clip()
    with quiet_hf_loading():
        model.save_pretrained(folder, safe_serialization=True)
        processor.save_pretrained(folder)
    write_bpe_files(folder)  # the Hub repo keeps the plain BPE files beside tokenizer.json


def _save_open_clip_vit_b16(folder: Path) -> None:
    """Random full-size ViT-B/16 weights (fp16, ~300 MB) where open_clip looks for ``pretrained="openai"``."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = open_clip.create_model("ViT-B-16", pretrained=None, force_quick_gelu=True)
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors")


# open_clip resolves ("ViT-B-16", "openai") to this Hub repo (open_clip.pretrained).
OPEN_CLIP_VIT_B16_OPENAI_ID = "timm/vit_base_patch16_clip_224.openai"
_SAVERS = {REFINER_ID: _save_refiner, HF_CLIP_ID: _save_hf_clip}
# Installed only on request (install_model): full-size, so too heavy for every test session and the demo.
_OPTIONAL_SAVERS = {OPEN_CLIP_VIT_B16_OPENAI_ID: _save_open_clip_vit_b16,
                    SD15_ID: _save_sd15}  # the generation backend test's Stable Diffusion 1.5
_DONE_MARKER = ".discl-complete"


def install_model(hf_home: str | os.PathLike, repo_id: str) -> Path:
    """Install the model for ``repo_id`` into the hub cache (skipped when already there); return its snapshot.

    Every id of ``install_tiny_models``, plus ``OPEN_CLIP_VIT_B16_OPENAI_ID`` (random full-size weights) and
    ``SD15_ID`` (a tiny Stable Diffusion 1.5 img2img pipeline).
    """
    return install_snapshot(hf_home, repo_id, snapshot_hash(repo_id), {**_SAVERS, **_OPTIONAL_SAVERS}[repo_id],
                            f"built by discl.tiny v{BUILDER_VERSION}")


def install_snapshot(hf_home: str | os.PathLike, repo_id: str, commit: str, save: Callable[[Path], None],
                     origin: str) -> Path:
    """Write the snapshot ``commit`` of ``repo_id`` with ``save(folder)`` (skipped when complete); point main at it."""
    repo_dir = repo_cache_dir(hf_home, repo_id)
    snapshot = repo_dir / "snapshots" / commit
    if not (snapshot / _DONE_MARKER).is_file():
        # Build in a staging folder and rename it into place, so a killed install never leaves a half snapshot
        # that from_pretrained would half-load (save_pretrained writes its files directly).
        (repo_dir / "snapshots").mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=repo_dir / "snapshots"))
        try:
            save(staging)
            atomic_write_text(staging / _DONE_MARKER, f"{repo_id} {origin}\n")
            share_tree(staging)  # readable by lab-mates sharing the cache, as the umask allows
            # Another process may have finished the same install meanwhile: keep its (identical) snapshot.
            if not (snapshot / _DONE_MARKER).is_file():
                shutil.rmtree(snapshot, ignore_errors=True)  # an unmarked folder is not ours to trust
                try:
                    os.replace(staging, snapshot)
                except OSError:
                    if not (snapshot / _DONE_MARKER).is_file():
                        raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("installed %s (%s) at %s", repo_id, origin, snapshot)
    refs_main = repo_dir / "refs" / "main"
    if not refs_main.is_file() or refs_main.read_text().strip() != commit:
        atomic_write_text(refs_main, commit)
    return snapshot


def install_tiny_models(hf_home: str | os.PathLike) -> dict[str, Path]:
    """Install every tiny model under its real id into ``hf_home`` (idempotent); map id → snapshot folder."""
    installed = {repo_id: install_model(hf_home, repo_id) for repo_id in _SAVERS}
    installed[TINY_OPEN_CLIP] = register_tiny_open_clip(Path(hf_home) / OPEN_CLIP_CONFIG_DIR)
    return installed
