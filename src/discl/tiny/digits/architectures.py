"""The digits world's models in the production architectures, and the conversions between their formats.

* a small CLIP (transformers ``CLIPModel``; the same weights in open_clip's format for FLYP and hard samples),
* an ``AutoencoderKL`` (16 px RGB → 4×8×8 latents),
* a ``text_time`` ``UNet2DConditionModel`` conditioned as the SDXL refiner's (penultimate hidden state of the
  CLIP text tower + its pooled projection; time ids = size, crop and aesthetic score),
assembled into a ``StableDiffusionXLImg2ImgPipeline`` with the refiner's Euler scheduler and its options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discl.tiny.digits.data import IMAGE_SIZE
from discl.tiny.models import CLIP_CONTEXT, CLIP_VOCAB_SIZE

if TYPE_CHECKING:
    import torch
    from diffusers import AutoencoderKL, StableDiffusionXLImg2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPModel, CLIPTextModelWithProjection

CLIP_WIDTH = 64
CLIP_EMBED_DIM = 64
CLIP_HEADS = 4
TEXT_LAYERS = 2
VISION_LAYERS = 3
PATCH_SIZE = 4
TIME_EMBED_DIM = 8  # per time id (the refiner: 256)
AESTHETIC_SCORE, NEGATIVE_AESTHETIC_SCORE = 6.0, 2.5  # the refiner pipeline's defaults

# open_clip's schema (as its shipped model_configs/*.json): the same network as clip_config()
OPEN_CLIP_CONFIG = {
    "embed_dim": CLIP_EMBED_DIM,
    "vision_cfg": {"image_size": IMAGE_SIZE, "layers": VISION_LAYERS, "width": CLIP_WIDTH,
                   "head_width": CLIP_WIDTH // CLIP_HEADS, "patch_size": PATCH_SIZE},
    "text_cfg": {"context_length": CLIP_CONTEXT, "vocab_size": CLIP_VOCAB_SIZE, "width": CLIP_WIDTH,
                 "heads": CLIP_HEADS, "layers": TEXT_LAYERS},
}


def clip_config():
    """The transformers ``CLIPConfig`` (exact GELU and LayerNorm eps 1e-5, as open_clip's defaults)."""
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

    common = {"hidden_size": CLIP_WIDTH, "intermediate_size": 4 * CLIP_WIDTH, "num_attention_heads": CLIP_HEADS,
              "projection_dim": CLIP_EMBED_DIM, "hidden_act": "gelu", "layer_norm_eps": 1e-5}
    text = CLIPTextConfig(vocab_size=CLIP_VOCAB_SIZE, max_position_embeddings=CLIP_CONTEXT,
                          num_hidden_layers=TEXT_LAYERS, bos_token_id=CLIP_VOCAB_SIZE - 2,
                          eos_token_id=CLIP_VOCAB_SIZE - 1, pad_token_id=1, **common)
    vision = CLIPVisionConfig(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, num_hidden_layers=VISION_LAYERS,
                              **common)
    return CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=CLIP_EMBED_DIM)


def build_clip() -> CLIPModel:
    """A freshly initialised ``CLIPModel`` (seed the torch RNG first)."""
    from transformers import CLIPModel

    return CLIPModel(clip_config())


def build_vae() -> AutoencoderKL:
    """The 2×-down ``AutoencoderKL`` (channels 32, 64; 4 latent channels); its scaling factor is set after training."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, sample_size=IMAGE_SIZE, scaling_factor=1.0, force_upcast=False)


def build_unet() -> UNet2DConditionModel:
    """The refiner-layout UNet: cross-attention on the text tower's width, ``text_time`` added embedding."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 2, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(64, 128), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(4, 8),
        use_linear_projection=True, transformer_layers_per_block=1, cross_attention_dim=CLIP_WIDTH,
        addition_embed_type="text_time", addition_time_embed_dim=TIME_EMBED_DIM,
        # refiner time ids: original size (2) + crop (2) + aesthetic score (1), plus the pooled text embedding
        projection_class_embeddings_input_dim=5 * TIME_EMBED_DIM + CLIP_EMBED_DIM)


def build_scheduler():
    """The SDXL refiner's scheduler config (Euler, scaled-linear betas, "leading" spacing)."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  steps_offset=1, timestep_spacing="leading", num_train_timesteps=1000)


def text_encoder_from_clip(clip: CLIPModel) -> CLIPTextModelWithProjection:
    """The CLIP's text tower + projection as the refiner's ``text_encoder_2`` (same weights)."""
    from transformers import CLIPTextModelWithProjection

    encoder = CLIPTextModelWithProjection(clip.config.text_config)
    state = {key: value for key, value in clip.state_dict().items() if key.startswith("text_model.")}
    state["text_projection.weight"] = clip.text_projection.weight.detach()
    encoder.load_state_dict(state)
    return encoder.eval()


def build_pipeline(clip: CLIPModel, vae: AutoencoderKL, unet: UNet2DConditionModel) -> StableDiffusionXLImg2ImgPipeline:
    """A ``StableDiffusionXLImg2ImgPipeline`` laid out and configured as the SDXL refiner."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    from discl.tiny.models import build_clip_tokenizer

    # The refiner's tokenizer_2 pads with "!" and its pipeline encodes the empty prompt (no zeroed negative).
    return StableDiffusionXLImg2ImgPipeline(
        vae=vae, text_encoder=None, tokenizer=None, text_encoder_2=text_encoder_from_clip(clip),
        tokenizer_2=build_clip_tokenizer(pad_token="!"), unet=unet, scheduler=build_scheduler(),
        requires_aesthetics_score=True, force_zeros_for_empty_prompt=False)


def open_clip_state_dict(clip: CLIPModel) -> dict[str, torch.Tensor]:
    """The CLIP's weights under open_clip's names (``OPEN_CLIP_CONFIG``; q/k/v stacked into ``in_proj``)."""
    import torch

    hf = {key: value.detach() for key, value in clip.state_dict().items()}
    out: dict[str, torch.Tensor] = {"logit_scale": hf["logit_scale"]}

    def blocks(hf_prefix: str, oc_prefix: str, layers: int) -> None:
        for i in range(layers):
            src, dst = f"{hf_prefix}.encoder.layers.{i}", f"{oc_prefix}.transformer.resblocks.{i}"
            for part in ("weight", "bias"):
                out[f"{dst}.attn.in_proj_{part}"] = torch.cat(
                    [hf[f"{src}.self_attn.{p}_proj.{part}"] for p in ("q", "k", "v")])
                out[f"{dst}.attn.out_proj.{part}"] = hf[f"{src}.self_attn.out_proj.{part}"]
                out[f"{dst}.ln_1.{part}"] = hf[f"{src}.layer_norm1.{part}"]
                out[f"{dst}.ln_2.{part}"] = hf[f"{src}.layer_norm2.{part}"]
                out[f"{dst}.mlp.c_fc.{part}"] = hf[f"{src}.mlp.fc1.{part}"]
                out[f"{dst}.mlp.c_proj.{part}"] = hf[f"{src}.mlp.fc2.{part}"]

    out["visual.conv1.weight"] = hf["vision_model.embeddings.patch_embedding.weight"]
    out["visual.class_embedding"] = hf["vision_model.embeddings.class_embedding"]
    out["visual.positional_embedding"] = hf["vision_model.embeddings.position_embedding.weight"]
    for part in ("weight", "bias"):
        out[f"visual.ln_pre.{part}"] = hf[f"vision_model.pre_layrnorm.{part}"]
        out[f"visual.ln_post.{part}"] = hf[f"vision_model.post_layernorm.{part}"]
        out[f"ln_final.{part}"] = hf[f"text_model.final_layer_norm.{part}"]
    out["visual.proj"] = hf["visual_projection.weight"].t()
    blocks("vision_model", "visual", VISION_LAYERS)
    out["token_embedding.weight"] = hf["text_model.embeddings.token_embedding.weight"]
    out["positional_embedding"] = hf["text_model.embeddings.position_embedding.weight"]
    out["text_projection"] = hf["text_projection.weight"].t()
    blocks("text_model", "", TEXT_LAYERS)
    return {key.lstrip("."): value.contiguous() for key, value in out.items()}
