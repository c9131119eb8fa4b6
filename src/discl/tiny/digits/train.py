"""Training the digits world's models on CPU, deterministically: CLIP, then the VAE, then the UNet.

Every trainer seeds its own generator, uses only in-memory tensors (no worker processes) and deterministic
kernels, so the same config and torch thread count give the same bytes. The UNet learns on the refiner
pipeline's own conditioning: ``encode_prompt`` of each caption (penultimate hidden state + pooled projection)
and ``_get_add_time_ids`` (size, crop, aesthetic score 6.0); 10 % of the captions are dropped to the empty
prompt with aesthetic score 2.5, which is what the pipeline feeds the unconditional branch of guidance.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from discl.config import option
from discl.tiny.digits.architectures import (AESTHETIC_SCORE, NEGATIVE_AESTHETIC_SCORE, build_clip, build_pipeline,
                                             build_unet, build_vae)
from discl.tiny.digits.data import CAPTION_TEMPLATES, DIGIT_NAMES, IMAGE_SIZE, digit_images, split_indices

if TYPE_CHECKING:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPModel

log = logging.getLogger(__name__)

# CLIP's image normalisation (CLIPImageProcessor's and open_clip's defaults)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
ZEROSHOT_TEMPLATE = "a photo of a {}."  # the folder dataset's zero-shot template


@dataclass
class WorldConfig:
    """Hyper-parameters of the three trainers (the committed weights were trained with these defaults)."""

    seed: int = option(0, "seed of every trainer's generator")
    threads: int = option(1, "torch threads (the same count gives the same bytes; one is fastest on busy cores)")
    clip_steps: int = option(600, "CLIP optimiser steps")
    clip_groups: int = option(8, "CLIP batch: groups of one pool image per class")
    clip_lr: float = option(1e-3, "CLIP AdamW learning rate (cosine, 5% warm-up)")
    vae_steps: int = option(400, "VAE optimiser steps")
    vae_batch: int = option(64, "VAE batch size")
    vae_lr: float = option(1e-3, "VAE AdamW learning rate (cosine)")
    vae_kl: float = option(1e-6, "VAE KL weight")
    unet_steps: int = option(1200, "UNet optimiser steps")
    unet_batch: int = option(64, "UNet batch size")
    unet_lr: float = option(1e-3, "UNet AdamW learning rate (cosine, 5% warm-up)")
    unet_ema: float = option(0.995, "UNet EMA decay (the EMA weights are saved)")
    caption_dropout: float = option(0.1, "share of UNet captions replaced by the empty prompt")


# ------------------------------------------------------------------------------------------------- data ----

def pool_pixels() -> tuple[torch.Tensor, torch.Tensor]:
    """The pool digits as float RGB in [0, 1], ``(N, 3, 16, 16)``, and their labels."""
    import torch

    images, labels = digit_images()
    index = split_indices()["pool"]
    pixels = torch.from_numpy(images[index]).float().div(255).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    return pixels, torch.from_numpy(labels[index])


def split_pixels(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A held-out split (``val`` / ``test``) as float RGB in [0, 1] and its labels."""
    import torch

    images, labels = digit_images()
    index = split_indices()[split]
    pixels = torch.from_numpy(images[index]).float().div(255).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    return pixels, torch.from_numpy(labels[index])


def random_shift(pixels: torch.Tensor, generator: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Each image moved by up to ``max_shift`` px in x and y, the border filled with white paper."""
    import torch
    import torch.nn.functional as F

    padded = F.pad(pixels, (max_shift,) * 4, value=1.0)
    offsets = torch.randint(0, 2 * max_shift + 1, (len(pixels), 2), generator=generator)
    size = pixels.shape[-1]
    return torch.stack([padded[i, :, y:y + size, x:x + size] for i, (y, x) in enumerate(offsets.tolist())])


def clip_normalise(pixels: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB → CLIP's normalised input."""
    import torch

    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def _cosine_lr(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _progress(name: str, step: int, total: int, loss: torch.Tensor, started: float) -> None:
    """A log line at every tenth of a trainer's steps."""
    if (step + 1) % max(1, total // 10) == 0:
        log.info("%s step %d/%d: loss %.4f (%.0f s)", name, step + 1, total, float(loss.detach()),
                 time.perf_counter() - started)


def _features(output: Any) -> torch.Tensor:
    """``get_*_features`` returns a tensor or (transformers >= 5) an output with ``pooler_output``."""
    return output if not hasattr(output, "pooler_output") else output.pooler_output


# ------------------------------------------------------------------------------------------------- CLIP ----

def tokenize(texts: list[str]) -> dict[str, torch.Tensor]:
    """CLIP tokens padded to 77 (the real tokenizer)."""
    from discl.tiny.models import build_clip_tokenizer

    return dict(build_clip_tokenizer()(texts, padding="max_length", max_length=77, truncation=True,
                                       return_tensors="pt"))


def zeroshot_accuracy(clip: CLIPModel, split: str = "test", template: str = ZEROSHOT_TEMPLATE) -> float:
    """Top-1 accuracy of the CLIP's zero-shot head (``template`` per class) on held-out digits."""
    import torch

    pixels, labels = split_pixels(split)
    clip.eval()
    with torch.no_grad():
        text = _features(clip.get_text_features(**tokenize([template.format(n) for n in DIGIT_NAMES])))
        image = _features(clip.get_image_features(pixel_values=clip_normalise(pixels)))
        predictions = (image / image.norm(dim=-1, keepdim=True)) @ (text / text.norm(dim=-1, keepdim=True)).T
    return float((predictions.argmax(-1) == labels).float().mean())


def train_clip(config: WorldConfig) -> tuple[CLIPModel, dict]:
    """Contrastive training on the pool: each batch ``clip_groups`` × one image per class, one caption per class.

    One image per class per group keeps the contrastive targets free of false negatives; the loss is the
    symmetric CLIP loss within each group (image→caption over the 10 captions, caption→image over the group).
    """
    import torch
    import torch.nn.functional as F

    torch.manual_seed(config.seed)
    clip = build_clip().train()
    generator = torch.Generator().manual_seed(config.seed)
    pixels, labels = pool_pixels()
    by_class = [torch.nonzero(labels == label).flatten() for label in range(len(DIGIT_NAMES))]
    captions = [template.format(name) for name in DIGIT_NAMES for template in CAPTION_TEMPLATES]
    tokens = tokenize(captions)  # class c, template t at row c * T + t
    optimizer = torch.optim.AdamW(clip.parameters(), lr=config.clip_lr, weight_decay=0.1)
    warmup = max(1, config.clip_steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _cosine_lr(s, config.clip_steps, warmup))
    classes, templates = len(DIGIT_NAMES), len(CAPTION_TEMPLATES)
    started = time.perf_counter()
    for step in tqdm(range(config.clip_steps), desc="CLIP", leave=False):
        picks = torch.stack([members[torch.randint(len(members), (config.clip_groups,), generator=generator)]
                             for members in by_class], dim=1).flatten()  # group-major: group g = rows g*10..
        images = clip_normalise(random_shift(pixels[picks], generator))
        rows = torch.arange(classes) * templates + torch.randint(templates, (classes,), generator=generator)
        image_features = F.normalize(_features(clip.get_image_features(pixel_values=images)), dim=-1)
        text_features = F.normalize(_features(clip.get_text_features(
            input_ids=tokens["input_ids"][rows], attention_mask=tokens["attention_mask"][rows])), dim=-1)
        logits = clip.logit_scale.exp() * image_features @ text_features.T  # (groups·10, 10)
        target = torch.arange(classes).repeat(config.clip_groups)
        per_group = logits.view(config.clip_groups, classes, classes)  # [g, image class, caption class]
        loss = (F.cross_entropy(logits, target)
                + F.cross_entropy(per_group.transpose(1, 2).reshape(-1, classes), target)) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            clip.logit_scale.clamp_(0, math.log(100))
        _progress("CLIP", step, config.clip_steps, loss, started)
    clip.eval()
    report = {"seconds": round(time.perf_counter() - started, 1), "final_loss": round(float(loss.detach()), 4),
              "zeroshot_val": zeroshot_accuracy(clip, "val"), "zeroshot_test": zeroshot_accuracy(clip, "test"),
              "logit_scale": round(float(clip.logit_scale.detach().exp()), 2)}
    log.info("CLIP: %s", report)
    return clip, report


# -------------------------------------------------------------------------------------------------- VAE ----

def train_vae(config: WorldConfig) -> tuple[AutoencoderKL, dict]:
    """Reconstruction (MSE in [-1, 1]) + a small KL term on shifted pool digits; scaling factor = 1 / latent std."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(config.seed + 1)
    vae = build_vae().train()
    generator = torch.Generator().manual_seed(config.seed + 1)
    pixels, _ = pool_pixels()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _cosine_lr(s, config.vae_steps, 1))
    started = time.perf_counter()
    for step in tqdm(range(config.vae_steps), desc="VAE", leave=False):
        batch = random_shift(pixels[torch.randint(len(pixels), (config.vae_batch,), generator=generator)],
                             generator) * 2 - 1
        posterior = vae.encode(batch).latent_dist
        latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        reconstruction = vae.decode(latents).sample
        loss = F.mse_loss(reconstruction, batch) + config.vae_kl * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        _progress("VAE", step, config.vae_steps, loss, started)
    vae.eval()
    with torch.no_grad():
        posterior = vae.encode(pixels * 2 - 1).latent_dist
        latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        scaling = float(1 / latents.std())
        test, _ = split_pixels("test")
        test_mse = float(F.mse_loss(vae.decode(vae.encode(test * 2 - 1).latent_dist.mean).sample, test * 2 - 1))
    vae.register_to_config(scaling_factor=round(scaling, 5))
    report = {"seconds": round(time.perf_counter() - started, 1), "final_loss": round(float(loss.detach()), 6),
              "test_mse": round(test_mse, 6), "scaling_factor": vae.config.scaling_factor}
    log.info("VAE: %s", report)
    return vae, report


# ------------------------------------------------------------------------------------------------- UNet ----

def pipeline_conditioning(pipe, prompts: list[str], aesthetic_score: float) -> dict[str, torch.Tensor]:
    """What the refiner pipeline feeds its UNet for ``prompts``: hidden states, pooled embeddings and time ids."""
    import torch

    with torch.no_grad():
        embeds, _, pooled, _ = pipe.encode_prompt(prompts, device="cpu", num_images_per_prompt=1,
                                                  do_classifier_free_guidance=False)
        time_ids, _ = pipe._get_add_time_ids(
            (IMAGE_SIZE, IMAGE_SIZE), (0, 0), (IMAGE_SIZE, IMAGE_SIZE), aesthetic_score, NEGATIVE_AESTHETIC_SCORE,
            (IMAGE_SIZE, IMAGE_SIZE), (0, 0), (IMAGE_SIZE, IMAGE_SIZE), dtype=embeds.dtype,
            text_encoder_projection_dim=pipe.text_encoder_2.config.projection_dim)
    return {"embeds": embeds, "pooled": pooled, "time_ids": time_ids.repeat(len(prompts), 1)}


def _shifted_latent_stats(vae: AutoencoderKL, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every pool digit at each of the 9 one-pixel shifts: ``(9·N, 4, 8, 8)`` each."""
    import torch
    import torch.nn.functional as F

    padded = F.pad(pixels, (1,) * 4, value=1.0)
    shifted = torch.cat([padded[:, :, y:y + IMAGE_SIZE, x:x + IMAGE_SIZE] for y in range(3) for x in range(3)])
    means, stds = [], []
    with torch.no_grad():
        for chunk in shifted.split(512):
            posterior = vae.encode(chunk * 2 - 1).latent_dist
            means.append(posterior.mean)
            stds.append(posterior.std)
    return torch.cat(means), torch.cat(stds)


def train_unet(config: WorldConfig, clip: CLIPModel, vae: AutoencoderKL) -> tuple[UNet2DConditionModel, dict]:
    """ε-prediction on (shifted) pool latents under the pipeline's conditioning; returns the EMA weights."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(config.seed + 2)
    unet = build_unet().train()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    pipe = build_pipeline(clip, vae, unet)
    scheduler = pipe.scheduler
    generator = torch.Generator().manual_seed(config.seed + 2)
    pixels, labels = pool_pixels()
    means, stds = _shifted_latent_stats(vae, pixels)
    labels = labels.repeat(9)
    scaling = vae.config.scaling_factor
    templates = len(CAPTION_TEMPLATES)
    conditioned = pipeline_conditioning(
        pipe, [template.format(name) for name in DIGIT_NAMES for template in CAPTION_TEMPLATES], AESTHETIC_SCORE)
    empty = pipeline_conditioning(pipe, [""], NEGATIVE_AESTHETIC_SCORE)
    alphas = scheduler.alphas_cumprod.float()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.unet_lr, weight_decay=0.01)
    warmup = max(1, config.unet_steps // 20)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _cosine_lr(s, config.unet_steps, warmup))
    started = time.perf_counter()
    for step in tqdm(range(config.unet_steps), desc="UNet", leave=False):
        batch = torch.randint(len(means), (config.unet_batch,), generator=generator)
        latents = (means[batch] + stds[batch] * torch.randn(means[batch].shape, generator=generator)) * scaling
        rows = labels[batch] * templates + torch.randint(templates, (config.unet_batch,), generator=generator)
        dropped = torch.rand(config.unet_batch, generator=generator) < config.caption_dropout
        condition = {key: torch.where(dropped.view(-1, *[1] * (value.dim() - 1)), empty[key], value[rows])
                     for key, value in conditioned.items()}
        timesteps = torch.randint(len(alphas), (config.unet_batch,), generator=generator)
        noise = torch.randn(latents.shape, generator=generator)
        alpha = alphas[timesteps].view(-1, 1, 1, 1)
        noisy = alpha.sqrt() * latents + (1 - alpha).sqrt() * noise
        prediction = unet(noisy, timesteps, encoder_hidden_states=condition["embeds"],
                          added_cond_kwargs={"text_embeds": condition["pooled"],
                                             "time_ids": condition["time_ids"]}).sample
        loss = F.mse_loss(prediction, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lr_schedule.step()
        with torch.no_grad():
            for average, current in zip(ema.parameters(), unet.parameters()):
                average.lerp_(current, 1 - config.unet_ema)
        _progress("UNet", step, config.unet_steps, loss, started)
    report = {"seconds": round(time.perf_counter() - started, 1), "final_loss": round(float(loss.detach()), 5)}
    log.info("UNet: %s", report)
    return ema, report


def train_world(config: WorldConfig) -> tuple[dict[str, Any], dict]:
    """All three models (``{"clip", "vae", "unet"}``) and the training report, deterministically on CPU."""
    import torch

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    try:
        clip, clip_report = train_clip(config)
        vae, vae_report = train_vae(config)
        unet, unet_report = train_unet(config, clip, vae)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    return {"clip": clip, "vae": vae, "unet": unet}, {"clip": clip_report, "vae": vae_report, "unet": unet_report}

