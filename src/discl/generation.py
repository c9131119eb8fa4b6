"""The spectrum generator (spec §2): image-guided img2img over strengths × seeds — sharded, batched, resumable.

How the work is cut, and why (every choice keeps a synthetic image a function of what it is, never of when,
where or next to what else it was made):

* **Part** (``--part k --total_parts n``): classes sorted by name, split into ``n`` contiguous near-equal chunks.
* **Block**: ``ceil(batch_size / len(seeds))`` consecutive images of one class with the same input size, in CSV
  order. Blocks never span classes, so the blocks of a class do not depend on the shard count.
* **Group**: one block at one strength — ``images × seeds`` work items, cut into pipeline calls of
  ``batch_size`` in a fixed order; a group is also the unit of the ImageNet-LT quality retry. Floating-point
  kernels round differently for different batch compositions (≈1e-6, enough to flip a pixel by one grey level),
  so a group always runs whole: on resume an unfinished group is recomputed and only its missing files are
  written. That makes the JPEGs byte-identical whatever the shard count, rank count, kill/resume history or
  ``PYTHONHASHSEED``. Across *batch sizes* they are equal up to that rounding (byte-identical in ``fp64``).
* **Ranks** (``torchrun`` / ``accelerate launch``): rank ``r`` of ``w`` takes blocks ``r::w`` of the part.

Each sample's ``torch.Generator`` is seeded with ``discl.seeding.sample_seed``; each prompt is encoded once and
passed as embeddings; each real image is read, resized and VAE-encoded once per block. Every image is written atomically
(``discl.fileio``) and the part's manifest is rebuilt from the files on disk, so it never lists a missing image.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from discl.errors import InputError
from discl.fileio import atomic_save_image, atomic_write_csv, atomic_write_json, is_temp_file
from discl.manifest import (MANIFEST_COLUMNS, guidance_from_strength, sample_id, subfolder_name,
                            synthetic_relpath, write_manifest)
from discl.models import HF_CLIP_ID, REFINER_ID
from discl.seeding import make_generators, sample_seed

log = logging.getLogger(__name__)

DATASETS = ("iwildcam", "imagenet_lt")
DEFAULT_STRENGTHS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
DEFAULT_SEEDS = (10, 20, 30, 40, 42, 50, 60, 70)
DEFAULT_GUIDANCE = 10.0
DEFAULT_STEPS = 50  # the pipeline default; img2img runs int(50 · strength) of them
IWILDCAM_RESOLUTION = (480, 270)
RETRY_THRESHOLD = 0.3  # ImageNet-LT: regenerate while image–text similarity ≤ 0.3 ...
MAX_RETRIES = 5  # ... at most 5 extra tries (spec §2)
JPEG_QUALITY = 75  # PIL's default, what the reference's ``image.save(path)`` wrote
MANIFEST_DIR = "manifests"
RETRY_DIR = "retries"  # per-image JSON records of the quality retry, under MANIFEST_DIR
FAILURES_DIR = "failures"
FAILURE_COLUMNS = ["class_folder", "real_path", "image_stem", "csv_row", "error"]


# ------------------------------------------------------------------------------------------------ configuration

@dataclass(frozen=True)
class RetryPolicy:
    """The ImageNet-LT quality retry: CLIP model, threshold, extra tries and which text the image is scored against."""

    clip_model: str = HF_CLIP_ID
    threshold: float = RETRY_THRESHOLD
    max_retries: int = MAX_RETRIES
    text: str = "prompt"  # "prompt": the prompt used (spec); "class": "a photo of {class}" (the reference's code)


@dataclass(frozen=True)
class GenerationConfig:
    """Everything one ``gene_img.py`` run needs; built from the command line by ``config_from_args``."""

    dataset: str
    data_csv: Path
    output_path: Path
    part: int = 1
    total_parts: int = 1
    image_root: Path | None = None
    prompt_json: Path | None = None
    model: str = REFINER_ID
    variant: str | None = "fp16"
    dtype: str = "fp16"
    device: str | None = None
    strengths: tuple[float, ...] = DEFAULT_STRENGTHS
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    guidance_scale: float = DEFAULT_GUIDANCE
    steps: int = DEFAULT_STEPS
    batch_size: int = 8
    resolution: tuple[int, int] | None = IWILDCAM_RESOLUTION  # None: keep native sizes (batched by equal size)
    jpeg_quality: int = JPEG_QUALITY
    retry: RetryPolicy | None = None
    skip_bad: bool = False
    manifest_interval: float = 300.0


# ------------------------------------------------------------------------------------------------ argument parsing

def parse_strengths(values: Iterable[str]) -> tuple[float, ...]:
    """Strengths from ``0.1 0.2`` or ``0.1,0.2``; each in (0, 1], distinct output folders, sorted."""
    strengths: list[float] = []
    for text in _split_list(values):
        try:
            strength = float(text)
        except ValueError:
            raise InputError("--strengths", f"not a number: {text!r}") from None
        if not 0 < strength <= 1:
            raise InputError("--strengths", f"strength {text} is outside (0, 1]")
        strengths.append(strength)
    folders = [int(round(100 * s)) for s in strengths]
    if len(set(folders)) != len(folders):
        raise InputError("--strengths", f"two strengths share an output folder (Strength{{int(100·s)}}): {strengths}")
    if not strengths:
        raise InputError("--strengths", "no strength given")
    return tuple(sorted(strengths))


def parse_seeds(values: Iterable[str]) -> tuple[int, ...]:
    """Seeds from ``10 20`` or ``10,20``: distinct integers ≥ 0, sorted (so batches do not depend on the order)."""
    seeds: list[int] = []
    for text in _split_list(values):
        try:
            seed = int(text)
        except ValueError:
            raise InputError("--seeds", f"not an integer: {text!r}") from None
        if seed < 0 or seed in seeds:
            raise InputError("--seeds", f"seeds must be distinct integers >= 0, got {text}")
        seeds.append(seed)
    if not seeds:
        raise InputError("--seeds", "no seed given")
    return tuple(sorted(seeds))


def parse_resolution(text: str | None) -> tuple[int, int] | None:
    """``WIDTHxHEIGHT`` → ``(w, h)``; ``native`` (or empty) → ``None`` (keep each image's own size)."""
    if text is None or text.strip().lower() in ("", "native", "none"):
        return None
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError("--resolution", f"expected WIDTHxHEIGHT or 'native', got {text!r}") from None
    if width < 8 or height < 8:
        raise InputError("--resolution", f"sizes below 8 px make no image, got {text!r}")
    return width, height


def denoising_steps(steps: int, strength: float) -> int:
    """Sampler steps img2img actually runs at ``strength`` (diffusers: ``min(int(steps · strength), steps)``)."""
    return min(int(steps * strength), steps)


def _split_list(values: Iterable[str]) -> list[str]:
    return [part for value in values for part in str(value).replace(",", " ").split()]


def get_args_parser(dataset: str) -> argparse.ArgumentParser:
    """The parent parser of both ``gene_img.py`` scripts: the reference's flags and ours, ``dataset``'s defaults."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    parser = argparse.ArgumentParser(add_help=False)
    ref = parser.add_argument_group("reference flags")
    ref.add_argument("--data_csv", required=True, help="hard-sample CSV (the reference's template columns)")
    ref.add_argument("--output_path", default="data/train_new", help="output root of the synthetic images")
    ref.add_argument("--part", type=int, default=1, help="which shard to generate (1-based)")
    ref.add_argument("--total_parts", type=int, default=1, help="number of shards the classes are split into")
    if dataset == "imagenet_lt":
        ref.add_argument("--prompt_json", required=True, help="class name -> list of LLM prompts (get_text_prompt.py)")
    gen = parser.add_argument_group("generation")
    gen.add_argument("--model", default=REFINER_ID, help="diffusers SDXL img2img model id or folder")
    gen.add_argument("--variant", default="fp16", help="weight variant to load ('' = default files)")
    gen.add_argument("--dtype", default="fp16", choices=("fp16", "bf16", "fp32", "fp64"),
                     help="compute precision (half precision becomes fp32 on CPU; fp64 = exact check mode)")
    gen.add_argument("--device", default=None, help="default: cuda:<LOCAL_RANK> if a GPU is visible, else cpu")
    gen.add_argument("--strengths", nargs="+", default=[str(s) for s in DEFAULT_STRENGTHS],
                     help="img2img strengths in (0, 1] (image guidance = 1 - strength)")
    gen.add_argument("--seeds", nargs="+", default=[str(s) for s in DEFAULT_SEEDS], help="user-facing seeds")
    gen.add_argument("--guidance-scale", type=float, default=DEFAULT_GUIDANCE, help="text (classifier-free) guidance")
    gen.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="sampler steps (img2img runs steps·strength)")
    gen.add_argument("--batch-size", type=int, default=8, help="images per pipeline call")
    native = dataset == "imagenet_lt"
    gen.add_argument("--resolution", "--resize", dest="resolution",
                     default="native" if native else "x".join(map(str, IWILDCAM_RESOLUTION)),
                     help="input size WIDTHxHEIGHT, or 'native' (keep each image's size; batched by equal size)")
    gen.add_argument("--jpeg-quality", type=int, default=JPEG_QUALITY, help="fixed JPEG quality of the outputs")
    gen.add_argument("--image-root", default=None, help="folder that relative CSV filepaths are relative to")
    if dataset == "imagenet_lt":
        retry = parser.add_argument_group("quality retry (ImageNet-LT)")
        retry.add_argument("--clip-model", default=HF_CLIP_ID, help="transformers CLIP model scoring the retry")
        retry.add_argument("--retry-threshold", type=float, default=RETRY_THRESHOLD,
                           help="regenerate while image-text similarity <= this")
        retry.add_argument("--max-retries", type=int, default=MAX_RETRIES, help="extra tries (0 disables the retry)")
        retry.add_argument("--retry-text", choices=("prompt", "class"), default="prompt",
                           help="score against the prompt used (spec) or 'a photo of {class}' (reference code)")
    run = parser.add_argument_group("run")
    run.add_argument("--skip-bad", action="store_true",
                     help="skip unreadable source images (listed in failures/) instead of failing")
    run.add_argument("--manifest-interval", type=float, default=300.0, help="seconds between manifest refreshes")
    run.add_argument("-v", "--verbose", action="store_true")
    return parser


def config_from_args(args: argparse.Namespace, dataset: str) -> GenerationConfig:
    """Validate parsed flags (bad values raise ``InputError``) and build the run configuration."""
    if args.total_parts < 1 or not 1 <= args.part <= args.total_parts:
        raise InputError("--part", f"need 1 <= part <= total_parts, got part {args.part} of {args.total_parts}")
    for flag, value in (("--batch-size", args.batch_size), ("--steps", args.steps)):
        if value < 1:
            raise InputError(flag, f"must be >= 1, got {value}")
    if args.guidance_scale <= 0:
        raise InputError("--guidance-scale", f"must be > 0, got {args.guidance_scale}")
    strengths = parse_strengths(args.strengths)
    idle = [s for s in strengths if denoising_steps(args.steps, s) < 1]
    if idle:
        raise InputError("--steps", f"{args.steps} steps at strength {idle[0]:g} run no denoising step (img2img "
                                    f"runs int(steps * strength)); use --steps {math.ceil(1 / idle[0])} or more")
    if not 1 <= args.jpeg_quality <= 95:
        raise InputError("--jpeg-quality", f"must be in [1, 95], got {args.jpeg_quality}")
    retry = None
    if dataset == "imagenet_lt" and args.max_retries > 0:
        retry = RetryPolicy(args.clip_model, args.retry_threshold, args.max_retries, args.retry_text)
    return GenerationConfig(
        dataset=dataset, data_csv=Path(args.data_csv), output_path=Path(args.output_path), part=args.part,
        total_parts=args.total_parts, image_root=Path(args.image_root) if args.image_root else None,
        prompt_json=Path(args.prompt_json) if getattr(args, "prompt_json", None) else None, model=args.model,
        variant=args.variant or None, dtype=args.dtype, device=args.device,
        strengths=strengths, seeds=parse_seeds(args.seeds),
        guidance_scale=args.guidance_scale, steps=args.steps, batch_size=args.batch_size,
        resolution=parse_resolution(args.resolution), jpeg_quality=args.jpeg_quality, retry=retry,
        skip_bad=args.skip_bad, manifest_interval=args.manifest_interval)


# ------------------------------------------------------------------------------------------------ the plan (pure)

@dataclass(frozen=True)
class SourceImage:
    """One real hard image to regenerate (``csv_row`` is its 1-based data row, for error messages)."""

    csv_row: int
    class_id: int
    class_name: str
    class_folder: str
    real_path: str
    image_stem: str
    size: tuple[int, int] = (0, 0)  # the size the pipeline gets (after --resolution); filled by the preflight

    @property
    def image_id(self) -> str:
        """Identity of the source image in seeds: its output class folder and stem."""
        return f"{self.class_folder}/{self.image_stem}"


@dataclass(frozen=True)
class WorkItem:
    """One synthetic image to make: a source image at one strength and seed."""

    source: SourceImage
    strength: float
    seed: int

    def relpath(self, guidance_scale: float) -> str:
        """Output path relative to the output root (the reference's layout)."""
        return synthetic_relpath(self.source.class_folder, self.strength, guidance_scale, self.seed,
                                 self.source.image_stem)


@dataclass(frozen=True)
class Group:
    """One block of images at one strength: the unit that is generated (and retried) in one go."""

    images: tuple[SourceImage, ...]
    strength: float
    seeds: tuple[int, ...]

    @property
    def items(self) -> list[WorkItem]:
        """Work items in canonical order: image-major, then seed."""
        return [WorkItem(image, self.strength, seed) for image in self.images for seed in self.seeds]


def split_parts(count: int, total_parts: int) -> list[range]:
    """``count`` positions cut into ``total_parts`` contiguous ranges whose sizes differ by at most one."""
    if total_parts < 1:
        raise ValueError(f"total_parts must be >= 1, got {total_parts}")
    size, extra = divmod(count, total_parts)
    bounds = [k * size + min(k, extra) for k in range(total_parts + 1)]
    return [range(bounds[k], bounds[k + 1]) for k in range(total_parts)]


def shard_classes(class_names: Iterable[str], part: int, total_parts: int) -> list[str]:
    """The classes of part ``part`` (1-based): names sorted, split into ``total_parts`` near-equal chunks."""
    if not 1 <= part <= total_parts:
        raise ValueError(f"need 1 <= part <= total_parts, got {part} of {total_parts}")
    names = sorted(set(class_names))
    return [names[i] for i in split_parts(len(names), total_parts)[part - 1]]


def images_per_block(batch_size: int, n_seeds: int) -> int:
    """Images per block: enough that one strength fills at least one batch."""
    return max(1, math.ceil(batch_size / n_seeds))


def make_blocks(sources: Sequence[SourceImage], per_block: int) -> list[tuple[SourceImage, ...]]:
    """Consecutive chunks of ``per_block`` images of one class and one size; order: as given (class, CSV order)."""
    blocks: list[tuple[SourceImage, ...]] = []
    by_key: dict[tuple[str, tuple[int, int]], list[SourceImage]] = {}
    for source in sources:
        by_key.setdefault((source.class_folder, source.size), []).append(source)
    for members in by_key.values():
        blocks.extend(tuple(members[i:i + per_block]) for i in range(0, len(members), per_block))
    return blocks


def make_groups(blocks: Sequence[tuple[SourceImage, ...]], strengths: Sequence[float],
                seeds: Sequence[int]) -> list[Group]:
    """Every (block, strength) group, block-major so a block's images are loaded once."""
    return [Group(block, strength, tuple(seeds)) for block in blocks for strength in strengths]


def rank_share(items: Sequence, rank: int, world_size: int) -> list:
    """Rank ``rank``'s fixed slice ``items[rank::world_size]`` (no coordination, no duplicates)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got {rank} of {world_size}")
    return list(items[rank::world_size])


def batches(items: Sequence, batch_size: int) -> list[list]:
    """``items`` cut into consecutive lists of at most ``batch_size``."""
    return [list(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]


def generator_seed(item: WorkItem, prompt: str, attempt: int = 0) -> int:
    """The torch seed of an item's attempt (attempt > 0: a quality retry, which must not repeat attempt 0)."""
    image_id = item.source.image_id if attempt == 0 else f"{item.source.image_id}#retry{attempt}"
    return sample_seed(image_id, prompt, item.strength, item.seed)


# ------------------------------------------------------------------------------------------------ prompts

class PromptSource:
    """The prompt of a work item's attempt, and the text its image is scored against in the quality retry."""

    def __init__(self, dataset: str, prompts: dict[str, list[str]] | None = None,
                 prompt_file: Path | None = None, retry_text: str = "prompt"):
        self.dataset = dataset
        self.prompts = prompts
        self.prompt_file = prompt_file
        self.retry_text = retry_text

    def check(self, source: SourceImage, csv_path: Path) -> None:
        """Fail early (naming the CSV row) for a class the prompts cannot serve."""
        if self.dataset == "imagenet_lt" and source.class_name not in self.prompts:
            raise InputError(self.prompt_file, f"no prompts for class {source.class_name!r} "
                                               f"(used in {csv_path} row {source.csv_row})")

    def prompt(self, item: WorkItem, attempt: int = 0) -> str:
        """iWildCam: ``a photo of {common name} in the wild``; ImageNet-LT: an LLM prompt per (class, seed, try)."""
        from discl import prompts

        if self.dataset == "iwildcam":
            from discl.data.iwildcam import common_name

            return prompts.iwildcam_prompt(common_name(item.source.class_name))
        return prompts.imagenet_lt_prompt(prompts.draw_prompt(self.prompts, item.source.class_name, item.seed,
                                                              attempt, source=self.prompt_file))

    def score_text(self, item: WorkItem, prompt: str) -> str:
        """The text the retry compares the image with."""
        return prompt if self.retry_text == "prompt" else f"a photo of {item.source.class_name}"


# ------------------------------------------------------------------------------------------------ the engine

@dataclass
class Outcome:
    """The kept attempt of one work item."""

    item: WorkItem
    image: Image.Image
    prompt: str
    generator_seed: int
    tries: int = 1
    score: float | None = None
    attempts: list[dict] = field(default_factory=list)


class SpectrumGenerator:
    """Runs groups through an img2img pipeline: prompt embeddings cached, one generator per sample, batched."""

    def __init__(self, pipe, *, guidance_scale: float, steps: int, batch_size: int, prompts: PromptSource,
                 retry: RetryPolicy | None = None, embedder=None):
        self.pipe = pipe
        self.guidance_scale = guidance_scale
        self.steps = steps
        self.batch_size = batch_size
        self.prompts = prompts
        self.retry = retry
        self.embedder = embedder
        self._prompt_embeds: dict[str, tuple] = {}
        self._text_embeds: dict[str, object] = {}
        self._dists: dict[str, object] = {}  # latent distributions of the current block's real images

    def encode(self, prompt: str) -> tuple:
        """The pipeline's four prompt tensors for one prompt (cached: each prompt is encoded once)."""
        if prompt not in self._prompt_embeds:
            import torch

            if len(self._prompt_embeds) >= 1024:  # bound memory on long ImageNet-LT runs
                self._prompt_embeds.clear()
            with torch.inference_mode():
                self._prompt_embeds[prompt] = self.pipe.encode_prompt(
                    prompt, device=self.pipe.device, num_images_per_prompt=1, do_classifier_free_guidance=True)
        return self._prompt_embeds[prompt]

    def encode_image(self, image: Image.Image):
        """The VAE's latent distribution of a real image, computed once and reused for all its seeds and strengths.

        The pipeline would re-encode the image for every sample; encoding it once and drawing each sample's
        latents from it with that sample's generator (before the pipeline draws the noise from the same
        generator) consumes the generators in the pipeline's own order, so the images do not change.
        """
        import torch

        vae = self.pipe.vae
        pixels = self.pipe.image_processor.preprocess(image).to(device=self.pipe.device, dtype=self.pipe.dtype)
        with torch.inference_mode():
            if vae.config.force_upcast:  # as the pipeline: the SDXL VAE overflows in fp16
                vae.to(dtype=torch.float32)
                dist = vae.encode(pixels.float()).latent_dist
                vae.to(dtype=self.pipe.dtype)
            else:
                dist = vae.encode(pixels).latent_dist
        return dist

    def _image_latents(self, dist, generator) -> "torch.Tensor":  # noqa: F821
        # The pipeline's prepare_latents for one image: sample, cast, scale (mean/std-normalised VAEs included).
        import torch

        config = self.pipe.vae.config
        latents = dist.sample(generator).to(self.pipe.dtype)
        if getattr(config, "latents_mean", None) is not None and getattr(config, "latents_std", None) is not None:
            mean = torch.tensor(config.latents_mean).view(1, -1, 1, 1).to(latents)
            std = torch.tensor(config.latents_std).view(1, -1, 1, 1).to(latents)
            return (latents - mean) * config.scaling_factor / std
        return config.scaling_factor * latents

    def generate(self, dists: Sequence, prompts: Sequence[str], strength: float,
                 seeds: Sequence[int]) -> list[Image.Image]:
        """One pipeline call; sample i: latent distribution ``dists[i]``, prompt ``prompts[i]``, seed ``seeds[i]``."""
        import torch

        # CPU generators: the same noise on any device (the pipeline moves it to the GPU).
        generators = make_generators(seeds, "cpu")
        embeds = [self.encode(p) for p in prompts]
        stacked = [torch.cat([e[k] for e in embeds]) for k in range(4)]
        with torch.inference_mode():
            latents = torch.cat([self._image_latents(d, g) for d, g in zip(dists, generators)])
            result = self.pipe(
                image=latents, strength=strength, guidance_scale=self.guidance_scale,
                num_inference_steps=self.steps, generator=generators,
                prompt_embeds=stacked[0], negative_prompt_embeds=stacked[1], pooled_prompt_embeds=stacked[2],
                negative_pooled_prompt_embeds=stacked[3])
        return list(result.images)

    def run_group(self, group: Group, pixels: dict[str, Image.Image],
                  on_final: Callable[[Outcome], None]) -> None:
        """Generate every item of ``group`` (with the quality retry if set); hand each final outcome to ``on_final``."""
        pending = [(item, None) for item in group.items if item.source.image_id in pixels]
        if set(self._dists) != {item.source.image_id for item, _ in pending}:
            self._dists = {item.source.image_id: self.encode_image(pixels[item.source.image_id])
                           for item, _ in pending}
        attempt = 0
        while pending:
            fresh: list[tuple[WorkItem, Outcome | None, Outcome]] = []
            for batch in batches(pending, self.batch_size):
                prompts = [self.prompts.prompt(item, attempt) for item, _ in batch]
                seeds = [generator_seed(item, prompt, attempt) for (item, _), prompt in zip(batch, prompts)]
                images = self.generate([self._dists[item.source.image_id] for item, _ in batch], prompts,
                                       group.strength, seeds)
                fresh.extend((item, best, Outcome(item, image, prompt, seed, tries=attempt + 1))
                             for (item, best), image, prompt, seed in zip(batch, images, prompts, seeds))
            if self.retry is None:
                for _, _, outcome in fresh:
                    on_final(outcome)
                return
            self._score([outcome for _, _, outcome in fresh])
            pending = []
            for item, best, outcome in fresh:
                history = (best.attempts if best else []) + [
                    {"prompt": outcome.prompt, "generator_seed": outcome.generator_seed, "score": outcome.score}]
                # Keep the attempt with the highest similarity; ties keep the earlier one.
                if best is None or outcome.score > best.score:
                    best = outcome
                best.tries, best.attempts = attempt + 1, history
                if best.score > self.retry.threshold or attempt >= self.retry.max_retries:
                    on_final(best)
                else:
                    pending.append((item, best))
            attempt += 1

    def _score(self, outcomes: Sequence[Outcome]) -> None:
        from discl.clipscore import cosine

        texts = [self.prompts.score_text(o.item, o.prompt) for o in outcomes]
        missing = sorted({t for t in texts if t not in self._text_embeds})
        if missing:
            for text, embedding in zip(missing, self.embedder.embed_texts(missing)):
                self._text_embeds[text] = embedding
        image_embeds = self.embedder.embed_images([o.image for o in outcomes])
        scores = cosine(image_embeds, np.stack([self._text_embeds[t] for t in texts]))
        for outcome, score in zip(outcomes, scores):
            outcome.score = round(float(score), 6)


# ------------------------------------------------------------------------------------------------ files

def manifest_path(output: Path, part: int, total_parts: int) -> Path:
    """``<output>/manifests/part{k:03d}-of{n:03d}.csv``."""
    return output / MANIFEST_DIR / f"part{part:03d}-of{total_parts:03d}.csv"


def failures_path(output: Path, part: int, total_parts: int, rank: int = 0, world_size: int = 1) -> Path:
    """``<output>/failures/part{k:03d}-of{n:03d}.csv`` (``-rank{r}`` appended when several processes share a part)."""
    suffix = f"-rank{rank}" if world_size > 1 else ""
    return output / FAILURES_DIR / f"part{part:03d}-of{total_parts:03d}{suffix}.csv"


def retry_record_path(output: Path, relpath: str) -> Path:
    """Where the quality-retry record (tries, chosen prompt, scores) of one output image lives."""
    return output / MANIFEST_DIR / RETRY_DIR / Path(relpath).with_suffix(".json")


def load_source(path: str | os.PathLike, size: tuple[int, int] | None) -> Image.Image:
    """Decode a real image as RGB, resized to ``size`` (PIL's default resampling, as the reference) if given."""
    with Image.open(path) as handle:
        image = handle.convert("RGB")
    return image.resize(size) if size is not None and image.size != size else image


def probe_size(path: str | os.PathLike) -> tuple[int, int]:
    """An image's size from its header (cheap: the pixels are not decoded)."""
    with Image.open(path) as handle:
        return handle.size


def is_done(output: Path, relpath: str, with_record: bool) -> bool:
    """An output counts as done when its image exists (and, with the quality retry, its record parses)."""
    if not (output / relpath).is_file():
        return False
    return not with_record or read_retry_record(output, relpath) is not None


def read_retry_record(output: Path, relpath: str) -> dict | None:
    """The retry record of an output image, or ``None`` when it is missing or unreadable (then: not done)."""
    try:
        record = json.loads(retry_record_path(output, relpath).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    keys = ("prompt", "tries", "generator_seed")
    return record if isinstance(record, dict) and all(k in record for k in keys) else None


# ------------------------------------------------------------------------------------------------ reading inputs

def read_sources(config: GenerationConfig) -> list[SourceImage]:
    """The hard-sample CSV as source images (``empty`` skipped for iWildCam); duplicate rows dropped."""
    from discl.data.hard_sample_csv import read_hard_sample_csv
    from discl.data.iwildcam import EMPTY_CLASS

    frame = read_hard_sample_csv(config.data_csv, config.dataset, root=config.image_root)
    sources: list[SourceImage] = []
    first_row: dict[tuple[str, str], SourceImage] = {}
    skipped_empty = 0
    for row, record in enumerate(frame.itertuples(index=False), start=1):
        source = SourceImage(row, int(record.class_id), record.class_name, record.class_folder, record.real_path,
                             record.image_stem)
        if config.dataset == "iwildcam" and source.class_name == EMPTY_CLASS:
            skipped_empty += 1  # spec §1: the empty class is never regenerated
            continue
        key = (source.class_folder, source.image_stem)
        if key in first_row:
            if first_row[key].real_path != source.real_path:
                raise InputError(config.data_csv, f"image name {source.image_stem!r} of class {source.class_name!r} "
                                 f"also names a different file in row {first_row[key].csv_row}: outputs would collide",
                                 row=row, column="filepath")
            continue
        first_row[key] = source
        sources.append(source)
    if skipped_empty:
        log.info("skipped %d row(s) of class '%s' (never regenerated)", skipped_empty, EMPTY_CLASS)
    return sources


def preflight(sources: Sequence[SourceImage], config: GenerationConfig) -> tuple[list[SourceImage], list[dict]]:
    """Check every source image opens; set its pipeline input size. Unreadable: ``InputError`` or a failure record."""
    usable, failures = [], []
    for source in tqdm(sources, desc="checking source images", unit="img", disable=len(sources) < 1000):
        try:
            size = probe_size(source.real_path)
        except (OSError, ValueError) as err:
            reason = "image not found" if not os.path.exists(source.real_path) else f"cannot read image ({err})"
            if not config.skip_bad:
                raise InputError(config.data_csv, f"{reason}: {source.real_path}", row=source.csv_row,
                                 column="filepath") from None
            failures.append(_failure(source, reason))
            continue
        usable.append(replace(source, size=config.resolution or size))
    return usable, failures


def _failure(source: SourceImage, error: str) -> dict:
    return {"class_folder": source.class_folder, "real_path": source.real_path, "image_stem": source.image_stem,
            "csv_row": source.csv_row, "error": error}


def load_prompt_source(config: GenerationConfig) -> PromptSource:
    """The dataset's prompt source (ImageNet-LT reads and validates ``--prompt_json``)."""
    if config.dataset == "iwildcam":
        return PromptSource("iwildcam")
    from discl.prompts import load_prompt_json

    if config.prompt_json is None:
        raise InputError("--prompt_json", "ImageNet-LT generation needs a prompt JSON")
    retry_text = config.retry.text if config.retry else "prompt"
    return PromptSource("imagenet_lt", load_prompt_json(config.prompt_json), config.prompt_json, retry_text)


# ------------------------------------------------------------------------------------------------ running a part

@dataclass(frozen=True)
class GenerationResult:
    """What one run did (counts are work items, i.e. synthetic images)."""

    planned: int
    existing: int
    written: int
    failures: int
    seconds: float
    manifest: Path | None
    failures_csv: Path | None


def build_manifest(groups: Sequence[Group], config: GenerationConfig, prompts: PromptSource) -> pd.DataFrame:
    """Manifest rows (docs/DESIGN.md) for every item of ``groups`` whose output is on disk, in plan order."""
    rows = []
    output = config.output_path
    for group in groups:
        for item in group.items:
            relpath = item.relpath(config.guidance_scale)
            if not (output / relpath).is_file():
                continue
            # A retry record wins even when this run has the retry off: it says how the image on disk was made.
            record = read_retry_record(output, relpath)
            if record is not None:
                prompt, tries, seed = record["prompt"], int(record["tries"]), int(record["generator_seed"])
            elif config.retry is not None:
                continue  # an image without its record is not finished (it is remade)
            else:
                prompt, tries = prompts.prompt(item), 1
                seed = generator_seed(item, prompt)
            source = item.source
            rows.append({
                "sample_id": sample_id(source.class_folder, subfolder_name(item.strength, config.guidance_scale,
                                                                          item.seed), source.image_stem),
                "dataset": config.dataset, "class_id": source.class_id, "class_name": source.class_name,
                "class_folder": source.class_folder, "real_path": source.real_path, "image_stem": source.image_stem,
                "prompt": prompt, "strength": item.strength, "image_guidance": guidance_from_strength(item.strength),
                "text_guidance": config.guidance_scale, "seed": item.seed, "generator_seed": seed,
                "synthetic_path": relpath, "tries": tries, "clip_image_text": None, "clip_image_image": None,
                "keep": None})
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def _rank_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from ``torchrun`` / ``accelerate launch`` environment variables."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    rank = int(os.environ.get("RANK", str(local_rank)))
    return rank, world, local_rank


def _join_process_group(world: int) -> bool:
    """A gloo group used only for the final barrier (when the launcher gave a rendezvous address)."""
    if world <= 1 or "MASTER_ADDR" not in os.environ:
        return False
    import datetime

    import torch.distributed as dist

    if not dist.is_initialized():
        # Ranks may finish hours apart on a long part: the barrier must not time out.
        dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))
    return True


def load_pipeline(config: GenerationConfig, device: str):
    """The img2img pipeline; ``fp64`` loads fp32 weights and upcasts (exact-comparison mode)."""
    from discl.models import load_img2img_pipeline

    pipe = load_img2img_pipeline(config.model, "fp32" if config.dtype == "fp64" else config.dtype, device,
                                 config.variant)
    if config.dtype == "fp64":
        import torch

        pipe = pipe.to(torch.float64)
    return pipe


def run(config: GenerationConfig) -> GenerationResult:
    """Generate the missing images of one part (this rank's share), then refresh the manifest and failures CSV."""
    start = time.perf_counter()
    rank, world, local_rank = _rank_world()
    # Every input is checked before anything is created or a model loaded: bad input leaves nothing behind.
    prompts = load_prompt_source(config)
    sources = read_sources(config)
    # Sharded by class *name*, as the reference, so a part holds the same classes as the reference's part.
    part_names = set(shard_classes({s.class_name for s in sources}, config.part, config.total_parts))
    sources = [s for s in sources if s.class_name in part_names]
    sources.sort(key=lambda s: (s.class_name, s.class_folder))  # stable: CSV order within a class
    part_classes = {s.class_folder for s in sources}
    for source in sources:
        prompts.check(source, config.data_csv)
    sources, failures = preflight(sources, config)
    part_groups = make_groups(make_blocks(sources, images_per_block(config.batch_size, len(config.seeds))),
                              config.strengths, config.seeds)
    blocks_of_rank = rank_share(list(dict.fromkeys(g.images for g in part_groups)), rank, world)
    mine = set(blocks_of_rank)
    groups = [g for g in part_groups if g.images in mine]

    output = config.output_path
    with_record = config.retry is not None
    done = {rel for g in groups for rel in (i.relpath(config.guidance_scale) for i in g.items)
            if is_done(output, rel, with_record)}
    todo = [g for g in groups if any(i.relpath(config.guidance_scale) not in done for i in g.items)]
    planned = sum(len(g.images) * len(g.seeds) for g in part_groups)
    missing = sum(len(g.items) for g in groups) - len(done)
    log.info("part %d/%d, rank %d/%d: %d classes, %d images, %d synthetic planned; this rank: %d done, %d to make",
             config.part, config.total_parts, rank, world, len(part_classes), len(sources), planned, len(done), missing)
    if world > 1 and rank != 0:
        failures = []  # the preflight is the same on every rank: rank 0 reports it
    grouped = _join_process_group(world)
    manifest = manifest_path(output, config.part, config.total_parts)
    if world == 1:
        remove_stale_temp_files(output, part_classes, manifest)
    elif grouped:
        import torch.distributed as dist

        # Rank 0 clears what a killed run left while every rank waits, so no rank is mid-write yet.
        if rank == 0:
            remove_stale_temp_files(output, part_classes, manifest)
        dist.barrier()
    def refresh() -> None:
        write_manifest(build_manifest(part_groups, config, prompts), manifest)

    written = 0
    if todo:
        if rank == 0:
            refresh()  # on resume the manifest is rebuilt from the files on disk before any new work
        written = _generate(config, todo, done, prompts, local_rank, failures, refresh if rank == 0 else None)
    if grouped:
        import torch.distributed as dist

        dist.barrier()
    if rank == 0 or not grouped:
        refresh()
    failures_csv = _write_failures(failures, failures_path(output, config.part, config.total_parts, rank, world))
    return GenerationResult(planned, len(done) - written, written, len(failures), time.perf_counter() - start,
                            manifest, failures_csv)


def remove_stale_temp_files(output: Path, class_folders: Iterable[str], manifest: Path) -> int:
    """Delete the temp files a killed run left in this part's folders (never complete images); return how many."""
    folders = [output / c for c in class_folders] + [output / MANIFEST_DIR / RETRY_DIR / c for c in class_folders]
    stale = [p for folder in folders if folder.is_dir() for p in folder.rglob(".tmp-*") if is_temp_file(p)]
    stale += [p for p in manifest.parent.glob(f".tmp-{manifest.name}.*")]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d temp file(s) left by an interrupted run", len(stale))
    return len(stale)


def _generate(config: GenerationConfig, todo: Sequence[Group], done: set[str], prompts: PromptSource,
              local_rank: int, failures: list[dict], refresh: Callable[[], None] | None) -> int:
    import torch

    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda":
        device = f"cuda:{local_rank}"  # one GPU per torchrun / accelerate process
    embedder = None
    if config.retry is not None:
        from discl.clipscore import ClipEmbedder

        embedder = ClipEmbedder(config.retry.clip_model, device, batch_size=max(config.batch_size, 8))
    engine = SpectrumGenerator(load_pipeline(config, device), guidance_scale=config.guidance_scale,
                               steps=config.steps, batch_size=config.batch_size, prompts=prompts,
                               retry=config.retry, embedder=embedder)
    output = config.output_path
    total = sum(1 for g in todo for i in g.items if i.relpath(config.guidance_scale) not in done)
    progress = tqdm(total=total, unit="img", desc=f"part {config.part}/{config.total_parts}", smoothing=0.05)
    written = 0

    def save(outcome: Outcome) -> None:
        nonlocal written
        relpath = outcome.item.relpath(config.guidance_scale)
        if relpath in done:
            return  # an unfinished group is recomputed whole; its finished files stay as they are
        if config.retry is not None:
            # The record goes first: an image on disk always has its record (kill-safe order).
            atomic_write_json(retry_record_path(output, relpath), {
                "prompt": outcome.prompt, "tries": outcome.tries, "generator_seed": outcome.generator_seed,
                "clip_image_text": outcome.score, "attempts": outcome.attempts})
        atomic_save_image(outcome.image, output / relpath, quality=config.jpeg_quality)
        done.add(relpath)
        written += 1
        progress.update(1)

    block, pixels = None, {}
    last_refresh = time.monotonic()
    for group in todo:
        if group.images != block:
            block, pixels = group.images, {}
            for source in block:
                try:
                    pixels[source.image_id] = load_source(source.real_path, config.resolution)
                except (OSError, ValueError) as err:
                    log.error("cannot read %s (CSV row %d): %s", source.real_path, source.csv_row, err)
                    failures.append(_failure(source, f"cannot read image ({err})"))
        engine.run_group(group, pixels, save)
        if refresh is not None and time.monotonic() - last_refresh > config.manifest_interval:
            refresh()
            last_refresh = time.monotonic()
    progress.close()
    return written


def _write_failures(failures: list[dict], path: Path) -> Path | None:
    if not failures:
        if path.is_file():
            path.unlink()  # a stale list from an earlier run would misreport this one
        return None
    unique = pd.DataFrame(failures, columns=FAILURE_COLUMNS).drop_duplicates(subset=["class_folder", "image_stem"])
    atomic_write_csv(path, unique)
    return path


def summary_line(result: GenerationResult) -> str:
    """One human-readable line about a run."""
    line = (f"{result.written} images written, {result.existing} already there, {result.planned} planned in this "
            f"part; {result.seconds:.1f} s; manifest {result.manifest}")
    if result.failures:
        line += f"; {result.failures} unreadable source image(s) listed in {result.failures_csv}"
    return line


def main(argv: Sequence[str] | None, dataset: str, description: str | None = None) -> int:
    """Generate one part (this process's share of it), print a one-line summary; 1 if a source was unreadable."""
    from discl.cli import setup_logging

    parser = argparse.ArgumentParser(description=(description or "").split("\n\n")[0],
                                     parents=[get_args_parser(dataset)])
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    result = run(config_from_args(args, dataset))
    print(summary_line(result))
    return 1 if result.failures and not args.skip_bad else 0
