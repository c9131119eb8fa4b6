"""The img2img model behind four calls: encode a prompt, encode a real image, draw its latents, generate a batch.

The spectrum generator (``discl.generation.runner``) only talks to an :class:`Img2ImgBackend`, so a new model
family is one subclass here plus one entry in ``BACKENDS`` (``--backend``). Each backend wraps a stock diffusers
img2img pipeline and feeds it precomputed prompt embeddings and image latents, drawn exactly as the pipeline
itself would draw them, so a batched call equals the pipeline's own one-image call.

| ``--backend`` | pipeline | default model |
|---|---|---|
| ``sdxl-refiner`` | ``StableDiffusionXLImg2ImgPipeline`` (``text_encoder_2`` only) | the paper's SDXL refiner |
| ``sdxl`` | ``StableDiffusionXLImg2ImgPipeline`` (both text encoders) | SDXL base 1.0 |
| ``sd`` | ``StableDiffusionImg2ImgPipeline`` (SD 1.x / 2.x) | Stable Diffusion 1.5 |

Nothing heavy is imported at module import: torch and diffusers load with the model.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from discl.errors import InputError
from discl.models import REFINER_ID

if TYPE_CHECKING:
    import torch
    from PIL import Image

log = logging.getLogger(__name__)

SDXL_BASE_ID = "stabilityai/stable-diffusion-xl-base-1.0"
SD15_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"


class Img2ImgBackend:
    """A diffusers img2img pipeline seen through the calls the generator makes (subclasses name the pipeline)."""

    name: ClassVar[str] = ""
    default_model: ClassVar[str] = ""
    pipeline_class: ClassVar[str] = ""  # the diffusers class name
    embed_names: ClassVar[tuple[str, ...]] = ()  # the pipeline keywords of encode_prompt's outputs, in order
    upcast_vae: ClassVar[bool] = False  # the pipeline encodes in fp32 when the VAE config says force_upcast

    def __init__(self, pipe: Any):
        self.pipe = pipe

    # ------------------------------------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, model: str, dtype: str, device: str, variant: str | None) -> Any:
        """The diffusers pipeline (safetensors) on ``device`` in ``dtype`` (``fp16``/``bf16``/``fp32``)."""
        import diffusers

        from discl.models import quiet_hf_loading, torch_dtype

        with quiet_hf_loading():
            pipe = getattr(diffusers, cls.pipeline_class).from_pretrained(
                model, dtype=torch_dtype(dtype, device), variant=variant or None, use_safetensors=True)
        return pipe.to(device)

    @classmethod
    def load(cls, model: str | None, dtype: str, device: str, variant: str | None) -> Img2ImgBackend:
        """Load ``model`` (default: the backend's); ``fp64`` loads fp32 weights and upcasts (exact-check mode)."""
        import torch

        pipe = cls.from_pretrained(model or cls.default_model, "fp32" if dtype == "fp64" else dtype, device, variant)
        if dtype == "fp64":
            pipe = pipe.to(torch.float64)
        # The caller shows its own progress over images; per-call denoising bars would flood the log.
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe)

    @property
    def device(self) -> torch.device:
        """Where the pipeline runs."""
        return self.pipe.device

    @property
    def dtype(self) -> torch.dtype:
        """The pipeline's compute dtype."""
        return self.pipe.dtype

    def to(self, dtype: torch.dtype) -> Img2ImgBackend:
        """Cast the pipeline (tests compare fp32 with fp64)."""
        self.pipe = self.pipe.to(dtype)
        return self

    def compile_unet(self, backend: str = "inductor") -> Img2ImgBackend:
        """``torch.compile`` the UNet's forward in place: the denoising loop is nearly all of the compute."""
        self.pipe.unet.compile(backend=backend)  # in place: the pipeline keeps its UNet object and config
        return self

    def modules(self) -> list:
        """The model parts whose forwards make up the compute (the benchmark times them)."""
        vae = self.pipe.vae
        encoders = [getattr(self.pipe, n, None) for n in ("text_encoder", "text_encoder_2")]
        return [self.pipe.unet, *[e for e in encoders if e is not None], vae.encoder, vae.quant_conv, vae.decoder,
                vae.post_quant_conv]

    # ------------------------------------------------------------------------------------------------ the calls
    def encode_prompt(self, prompt: str) -> tuple[torch.Tensor, ...]:
        """The pipeline's prompt tensors for one prompt, with the classifier-free-guidance negatives."""
        import torch

        with torch.inference_mode():
            embeds = self.pipe.encode_prompt(prompt, device=self.device, num_images_per_prompt=1,
                                             do_classifier_free_guidance=True)
        return tuple(embeds)

    def encode_image(self, image: Image.Image) -> Any:
        """The VAE's latent distribution of a real image (computed once, reused for all its seeds and strengths)."""
        import torch

        vae = self.pipe.vae
        pixels = self.pipe.image_processor.preprocess(image).to(device=self.device, dtype=self.dtype)
        with torch.inference_mode():
            if self.upcast_vae and vae.config.force_upcast:  # as the SDXL pipelines: their VAE overflows in fp16
                vae.to(dtype=torch.float32)
                dist = vae.encode(pixels.float()).latent_dist
                vae.to(dtype=self.dtype)
            else:
                dist = vae.encode(pixels).latent_dist
        return dist

    def image_latents(self, dist: Any, generator: torch.Generator) -> torch.Tensor:
        """The pipeline's ``prepare_latents`` for one image before noising: sample, cast, scale."""
        import torch

        config = self.pipe.vae.config
        latents = dist.sample(generator).to(self.dtype)
        if getattr(config, "latents_mean", None) is not None and getattr(config, "latents_std", None) is not None:
            mean = torch.tensor(config.latents_mean).view(1, -1, 1, 1).to(latents)
            std = torch.tensor(config.latents_std).view(1, -1, 1, 1).to(latents)
            return (latents - mean) * config.scaling_factor / std
        return config.scaling_factor * latents

    def generate(self, latents: torch.Tensor, embeds: Sequence[tuple[torch.Tensor, ...]], strength: float,
                 guidance_scale: float, steps: int, generators: Sequence[torch.Generator]) -> list[Image.Image]:
        """One pipeline call: sample ``i`` starts from ``latents[i]`` under prompt tensors ``embeds[i]``."""
        import torch

        stacked = {name: torch.cat([e[k] for e in embeds]) for k, name in enumerate(self.embed_names)}
        with torch.inference_mode():
            result = self.pipe(image=latents, strength=strength, guidance_scale=guidance_scale,
                               num_inference_steps=steps, generator=list(generators), **stacked)
        flagged = getattr(result, "nsfw_content_detected", None)
        if flagged and any(flagged):
            log.warning("the model's safety checker replaced %d of %d image(s) with black ones", sum(flagged),
                        len(flagged))
        return list(result.images)


class SDXLImg2ImgBackend(Img2ImgBackend):
    """SDXL img2img (base 1.0 style: ``text_encoder`` and ``text_encoder_2``, pooled embeddings, time ids)."""

    name = "sdxl"
    default_model = SDXL_BASE_ID
    pipeline_class = "StableDiffusionXLImg2ImgPipeline"
    embed_names = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
    upcast_vae = True


class SDXLRefinerBackend(SDXLImg2ImgBackend):
    """The paper's model: the SDXL refiner (``text_encoder_2`` only, aesthetic-score conditioning), fp16 variant."""

    name = "sdxl-refiner"
    default_model = REFINER_ID

    @classmethod
    def from_pretrained(cls, model: str, dtype: str, device: str, variant: str | None) -> Any:
        """The production SDXL img2img loader (``discl.models.load_img2img_pipeline``)."""
        from discl.models import load_img2img_pipeline

        return load_img2img_pipeline(model, dtype, device, variant)


class SDImg2ImgBackend(Img2ImgBackend):
    """Stable Diffusion 1.x / 2.x img2img (one CLIP text encoder; ``--model`` picks 1.5, 2.1 or a fine-tune)."""

    name = "sd"
    default_model = SD15_ID
    pipeline_class = "StableDiffusionImg2ImgPipeline"
    embed_names = ("prompt_embeds", "negative_prompt_embeds")
    upcast_vae = False  # the SD 1.x/2.x pipeline encodes in the pipeline's dtype whatever force_upcast says


BACKENDS: dict[str, type[Img2ImgBackend]] = {
    cls.name: cls for cls in (SDXLRefinerBackend, SDXLImg2ImgBackend, SDImg2ImgBackend)}
DEFAULT_BACKEND = SDXLRefinerBackend.name


def backend_class(name: str) -> type[Img2ImgBackend]:
    """The backend registered as ``name``."""
    if name not in BACKENDS:
        raise InputError("--backend", f"unknown backend {name!r}; one of {', '.join(BACKENDS)}")
    return BACKENDS[name]


def load_backend(name: str, model: str | None = None, dtype: str = "fp16", device: str = "cpu",
                 variant: str | None = "fp16") -> Img2ImgBackend:
    """Load backend ``name`` with ``model`` (default: the backend's own model)."""
    return backend_class(name).load(model, dtype, device, variant)
