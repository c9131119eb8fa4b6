"""The settings of one ``gene_img.py`` run: each default written once, in the dataclass that drives the parser.

Flags are kebab-case; the reference's snake_case spellings (``--data_csv``, ``--output_path``,
``--total_parts``, ``--prompt_json``) stay as aliases (the output folder is ``--output-dir`` as in every script). Dataset-specific defaults (input size, the CLIP quality
retry, where prompts come from) are not written here: a field left at ``None`` means "the dataset's setting"
(``discl.datasets``), resolved by the runner. ``GenerationConfig`` checks and normalises its values itself, so a
config built in code is as safe as one built from the command line.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from discl.config import Range, add_arguments, option
from discl.errors import InputError
from discl.generation.backend import BACKENDS, DEFAULT_BACKEND
from discl.models import HF_CLIP_ID

PAPER = "DisCL"  # a default that is the paper's (or its reference code's) setting
DEFAULT_STRENGTHS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
DEFAULT_SEEDS = (10, 20, 30, 40, 42, 50, 60, 70)
DTYPES = ("fp16", "bf16", "fp32", "fp64")
RETRY_TEXTS = ("prompt", "class")
MAX_SIDE = 4096  # --resolution limit: SDXL works at <= 1024 px; beyond this a batch alone exhausts memory
MAX_STEPS = 1000  # diffusers' schedulers are trained on 1000 timesteps: an img2img call cannot run more
MAX_RETRIES = 100  # quality retry: extra tries per image
SEED_LIMIT = 2 ** 63  # seeds are stored as int64 (manifest)
_LIST_FIELDS = ("strengths", "seeds")  # accept "0.1,0.2" as well as "0.1 0.2"


@dataclass(frozen=True)
class GenerationConfig:
    """Everything one generation run needs besides the dataset object."""

    dataset: str = option(help="registered dataset name (from --dataset)", cli=False)
    data_csv: Path = option(help="hard-sample CSV in the dataset's template columns (make_hard_samples.py)",
                            aliases=("--data_csv",))
    output_dir: Path = option(Path("data/train_new"), "output root of the synthetic images (the reference's "
                                                      "default)", aliases=("--output-path", "--output_path"))
    part: int = option(1, "which shard of the classes to generate (1-based)")
    total_parts: int = option(1, "number of shards the classes (sorted by name) are split into",
                              aliases=("--total_parts",))
    image_root: Path | None = option(None, "folder that relative image paths of the CSV are relative to; "
                                           "none: --data-root when given, else the working directory")
    prompt_json: Path | None = option(None, "class name -> list of LLM prompts (get_text_prompt.py); required by "
                                            "datasets whose prompts come from one (ImageNet-LT)",
                                      aliases=("--prompt_json",))
    backend: str = option(DEFAULT_BACKEND, "img2img model family", choices=tuple(BACKENDS), paper=PAPER)
    diffusion_model: str | None = option(None, "diffusers model id or folder; none: the backend's ("
                                               + ", ".join(f"{n}: {c.default_model}" for n, c in BACKENDS.items())
                                               + ")")
    variant: str | None = option("fp16", "weight variant to load ('' = the default files)", paper=PAPER)
    dtype: str = option("fp16", "compute precision (half precision becomes fp32 on CPU; fp64 = exact check mode)",
                        choices=DTYPES, paper=PAPER)
    device: str | None = option(None, "device; none: cuda:<LOCAL_RANK> if a GPU is visible, else cpu")
    strengths: tuple[float, ...] = option(DEFAULT_STRENGTHS, "img2img strengths in (0, 1] (image guidance = "
                                                             "1 - strength); '0.1 0.2' or '0.1,0.2'", paper=PAPER)
    seeds: tuple[int, ...] = option(DEFAULT_SEEDS, "user-facing seeds (folder names)", paper=PAPER)
    guidance_scale: float = option(10.0, "text (classifier-free) guidance scale", paper=PAPER)
    steps: int = option(50, "sampler steps (img2img runs int(steps * strength) of them)", paper=PAPER)
    batch_size: int = option(8, "images per pipeline call")
    resolution: str | None = option(None, "input size WIDTHxHEIGHT, or 'native' (each image's own size, batched by "
                                          "equal size); none: the dataset's (iwildcam 480x270, imagenet_lt and "
                                          "folder native)",
                                    aliases=("--resize",), metavar="WxH|native")
    jpeg_quality: int = option(75, "fixed JPEG quality of the outputs (PIL's default, what the reference wrote)")
    quality_retry: bool | None = option(None, "regenerate an image while CLIP(image, text) <= --retry-threshold "
                                              "(--no-quality-retry: never); none: the dataset's setting (on for "
                                              "imagenet_lt)")
    clip_model: str = option(HF_CLIP_ID, "transformers CLIP model scoring the quality retry", paper=PAPER)
    retry_threshold: float = option(0.3, "quality retry: regenerate while image-text similarity <= this",
                                    paper=PAPER)
    max_retries: int = option(5, "quality retry: extra tries per image (0 turns the retry off)", paper=PAPER)
    retry_text: str = option("prompt", "quality retry scores against the prompt used (paper) or the dataset's "
                                       "class text, e.g. 'a photo of {class}' (the reference's code)",
                             choices=RETRY_TEXTS)
    skip_bad: bool = option(False, "skip unreadable source images (listed in failures/) instead of failing")
    manifest_interval: float = option(300.0, "seconds between manifest refreshes during a run")
    jpeg_draft: bool = option(False, "decode JPEG sources at 1/2, 1/4 or 1/8 scale (still >= the input size) before "
                                     "the resize: ~5x less decoding for 1920x1080 frames at 480x270, pixels within "
                                     "a few grey levels of the full decode (docs/performance.md)")
    compile: bool = option(False, "torch.compile the UNet (inductor; the first calls of each batch shape compile)")
    dry_run: bool = option(False, "print the images, UNet evaluations, disk space and GPU-hours this part would "
                                  "take (resume-aware); load no model, write nothing")
    seconds_per_image: float = option(1.0, "--dry-run: GPU seconds per synthetic image for the GPU-hours "
                                           "estimate; the default is a planning figure for the SDXL refiner at "
                                           "480x270 on an A100-class GPU: measure yours with a short run "
                                           "(docs/generation.md)")

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        set_("data_csv", Path(self.data_csv))
        set_("output_dir", Path(self.output_dir))
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise InputError(self.output_dir, "--output-dir is a file, not a folder")
        for name in ("image_root", "prompt_json"):
            value = getattr(self, name)
            set_(name, Path(value) if value not in (None, "") else None)
        set_("variant", self.variant or None)
        if self.total_parts < 1 or not 1 <= self.part <= self.total_parts:
            raise InputError("--part", f"need 1 <= part <= total_parts, got part {self.part} of {self.total_parts}")
        check_number("--batch-size", self.batch_size, 1)
        check_number("--steps", self.steps, 1, MAX_STEPS)
        check_number("--guidance-scale", self.guidance_scale, 0, low_open=True)
        set_("strengths", parse_strengths(self.strengths))
        set_("seeds", parse_seeds(self.seeds))
        idle = [s for s in self.strengths if denoising_steps(self.steps, s) < 1]
        if idle:
            raise InputError("--steps", f"{self.steps} steps at strength {idle[0]:g} run no denoising step (img2img "
                                        f"runs int(steps * strength)); use --steps {math.ceil(1 / idle[0])} or more")
        check_number("--jpeg-quality", self.jpeg_quality, 1, 95)
        if self.resolution is not None:
            parse_resolution(self.resolution)  # syntax checked now, resolved against the dataset by the runner
        check_number("--retry-threshold", self.retry_threshold, -1, 1)  # a cosine similarity
        check_number("--max-retries", self.max_retries, 0, MAX_RETRIES)
        check_number("--seconds-per-image", self.seconds_per_image, 0, low_open=True)
        check_number("--manifest-interval", self.manifest_interval, 0)
        if self.backend not in BACKENDS:
            raise InputError("--backend", f"unknown backend {self.backend!r}; one of {', '.join(BACKENDS)}")
        if self.dtype not in DTYPES:
            raise InputError("--dtype", f"must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.retry_text not in RETRY_TEXTS:
            raise InputError("--retry-text", f"must be one of {', '.join(RETRY_TEXTS)}, got {self.retry_text!r}")

    @property
    def model_id(self) -> str:
        """The model to load: ``--diffusion-model``, else the backend's default."""
        return self.diffusion_model or BACKENDS[self.backend].default_model


@dataclass(frozen=True)
class RetryPolicy:
    """The CLIP quality retry: CLIP model, threshold, extra tries and which text the image is scored against."""

    clip_model: str = HF_CLIP_ID
    threshold: float = 0.3
    max_retries: int = 5
    text: str = "prompt"  # "prompt": the prompt used (paper); "class": the dataset's class text (reference code)


def retry_policy(config: GenerationConfig, dataset_default: bool) -> RetryPolicy | None:
    """The run's quality retry: on when the dataset asks for it (or ``--quality-retry``) and ``--max-retries`` > 0."""
    wanted = dataset_default if config.quality_retry is None else config.quality_retry
    if not wanted or config.max_retries == 0:
        return None
    return RetryPolicy(config.clip_model, config.retry_threshold, config.max_retries, config.retry_text)


def generation_parser() -> argparse.ArgumentParser:
    """Parent parser of every ``gene_img.py``: one flag per ``GenerationConfig`` field, plus ``-v``."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser.add_argument_group("generation"), GenerationConfig)
    for action in parser._actions:
        if action.dest in _LIST_FIELDS:
            action.type = None  # kept as text: the config splits "0.1,0.2" and checks each value
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


# ------------------------------------------------------------------------------------------------ value parsing

def parse_strengths(values: Iterable) -> tuple[float, ...]:
    """Strengths from ``0.1 0.2`` or ``0.1,0.2``; each in (0, 1], distinct output folders, sorted."""
    from discl.guidance import strength_percent

    strengths: list[float] = []
    for text in _split_list(values):
        try:
            strength = float(text)
        except ValueError:
            raise InputError("--strengths", f"not a number: {text!r}") from None
        if not 0 < strength <= 1:
            raise InputError("--strengths", f"strength {text} is outside (0, 1]")
        strengths.append(strength)
    folders = [strength_percent(s) for s in strengths]
    if len(set(folders)) != len(folders):
        raise InputError("--strengths", f"two strengths share an output folder (Strength{{int(100·s)}}): {strengths}")
    if not strengths:
        raise InputError("--strengths", "no strength given")
    return tuple(sorted(strengths))


def parse_seeds(values: Iterable) -> tuple[int, ...]:
    """Seeds from ``10 20`` or ``10,20``: distinct integers ≥ 0, sorted (so batches do not depend on the order)."""
    seeds: list[int] = []
    for text in _split_list(values):
        try:
            seed = int(text)
        except ValueError:
            raise InputError("--seeds", f"not an integer: {text!r}") from None
        if not 0 <= seed < SEED_LIMIT or seed in seeds:
            raise InputError("--seeds", f"seeds must be distinct integers in [0, 2**63), got {text}")
        seeds.append(seed)
    if not seeds:
        raise InputError("--seeds", "no seed given")
    return tuple(sorted(seeds))


def parse_resolution(text: str | None, flag: str = "--resolution", min_side: int = 8) -> tuple[int, int] | None:
    """``WIDTHxHEIGHT`` → ``(w, h)``, each side in [``min_side``, ``MAX_SIDE``]; ``native`` / ``none`` / empty →
    ``None`` (keep each image's own size). The one size parser of gene_img.py and comp_clip_scores.py."""
    if text is None or str(text).strip().lower() in ("", "native", "none"):
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if match is None:
        raise InputError(flag, f"expected WIDTHxHEIGHT (e.g. 480x270) or 'native', got {text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if width < min_side or height < min_side:
        raise InputError(flag, f"sizes below {min_side} px make no image, got {text!r}")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise InputError(flag, f"at most {MAX_SIDE} px a side (an image that size alone needs gigabytes), "
                               f"got {text!r}")
    return width, height


def denoising_steps(steps: int, strength: float) -> int:
    """Sampler steps img2img actually runs at ``strength`` (diffusers: ``min(int(steps · strength), steps)``)."""
    return min(int(steps * strength), steps)


def _split_list(values: Iterable) -> list[str]:
    if isinstance(values, (str, int, float)):
        values = [values]
    return [part for value in values for part in str(value).replace(",", " ").split()]


# ------------------------------------------------------------------------------------------------ flag checks
# Shared by the Phase 1 scripts (gene_img.py, comp_clip_scores.py, make_hard_samples.py, get_text_prompt.py).

def check_number(flag: str, value, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False) -> None:
    """``value`` is a finite number between the bounds (``None``: unbounded), or an ``InputError`` naming ``flag``."""
    Range(low, high, low_open, high_open).check(flag, value)


def check_inputs_kept(outputs: Iterable[tuple[str, str | os.PathLike | None]],
                      inputs: Iterable[tuple[str, str | os.PathLike | None]]) -> None:
    """No output file (``(flag, path)`` pairs) is, or resolves to, another output or an input: writing it would
    overwrite that file. The ``InputError`` names both flags."""
    outputs, inputs = [o for o in outputs if o[1] is not None], [i for i in inputs if i[1] is not None]
    for index, (out_flag, output) in enumerate(outputs):
        for other_flag, other in outputs[:index] + inputs:
            if _same_file(output, other):
                role = "output" if (other_flag, other) in outputs else "input"
                raise InputError(out_flag, f"{output} is also the {role} {other_flag}: writing it would overwrite "
                                           "that file; name another one")


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        return os.path.samefile(a, b)  # hard links, case-insensitive file systems
    except OSError:
        return False
