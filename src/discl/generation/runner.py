"""Running one part of the spectrum (DisCL Phase 1, step 2): load, generate the missing groups, save, record.

Reads the dataset from the registry (``discl.datasets``) and asks it everything dataset-specific: the classes it
never regenerates, its input size, whether prompts come from an LLM prompt JSON, whether the CLIP quality retry is
on, its prompt and class text. Each sample's ``torch.Generator`` is seeded with ``discl.seeding.sample_seed``;
each prompt is encoded once and passed as embeddings; each real image is read, resized and VAE-encoded once per
block (``discl.generation.backend``). Every image is written atomically (``discl.fileio``) and the part's
manifest is rebuilt from the files on disk, so it never lists a missing image. JPEGs are byte-identical whatever
the shard count, rank count, kill/resume history or ``PYTHONHASHSEED`` (``discl.generation.plan`` says why).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from discl import runrecord
from discl.errors import InputError
from discl.fileio import atomic_save_image, atomic_write_csv, atomic_write_json
from discl.generation.backend import Img2ImgBackend, backend_class
from discl.generation.config import (GenerationConfig, RetryPolicy, check_inputs_kept, generation_parser,
                                     parse_resolution, retry_policy)
from discl.generation.plan import (FAILURE_COLUMNS, Group, Plan, PromptSource, SourceImage, WorkItem, batches,
                                   build_manifest, failure_record, failures_path, generator_seed, load_prompt_source,
                                   make_plan, manifest_path, part_sources, rank_world, read_sources,
                                   retry_record_path, stale_temp_files)
from discl.manifest import write_manifest
from discl.progress import progress
from discl.seeding import make_generators

if TYPE_CHECKING:
    from discl.datasets.base import Dataset

log = logging.getLogger(__name__)


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
    """Runs groups through an img2img backend: prompt embeddings cached, one generator per sample, batched."""

    def __init__(self, backend: Img2ImgBackend, *, guidance_scale: float, steps: int, batch_size: int,
                 prompts: PromptSource, retry: RetryPolicy | None = None, embedder=None):
        self.backend = backend
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
        """The backend's prompt tensors for one prompt (cached: each prompt is encoded once)."""
        if prompt not in self._prompt_embeds:
            if len(self._prompt_embeds) >= 1024:  # bound memory on long runs with LLM prompts
                self._prompt_embeds.clear()
            self._prompt_embeds[prompt] = self.backend.encode_prompt(prompt)
        return self._prompt_embeds[prompt]

    def generate(self, dists: Sequence, prompts: Sequence[str], strength: float,
                 seeds: Sequence[int]) -> list[Image.Image]:
        """One pipeline call; sample i: latent distribution ``dists[i]``, prompt ``prompts[i]``, seed ``seeds[i]``.

        The pipeline would re-encode the real image for every sample; each sample instead draws its latents from
        the image's distribution (encoded once) with its own generator before the pipeline draws the noise from the
        same generator — the generators are consumed in the pipeline's own order, so the images do not change.
        """
        import torch

        # CPU generators: the same noise on any device (the pipeline moves it to the GPU).
        generators = make_generators(seeds, "cpu")
        embeds = [self.encode(p) for p in prompts]
        with torch.inference_mode():
            latents = torch.cat([self.backend.image_latents(d, g) for d, g in zip(dists, generators)])
        return self.backend.generate(latents, embeds, strength, self.guidance_scale, self.steps, generators)

    def run_group(self, group: Group, pixels: dict[str, Image.Image],
                  on_final: Callable[[Outcome], None]) -> None:
        """Generate every item of ``group`` (with the quality retry if set); hand each final outcome to ``on_final``."""
        pending = [(item, None) for item in group.items if item.source.image_id in pixels]
        if set(self._dists) != {item.source.image_id for item, _ in pending}:
            self._dists = {item.source.image_id: self.backend.encode_image(pixels[item.source.image_id])
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


# ------------------------------------------------------------------------------------------------ source images

def load_source(path: str | os.PathLike, size: tuple[int, int] | None, draft: bool = False) -> Image.Image:
    """Decode a real image as RGB, resized to ``size`` (PIL's default resampling, as the reference) if given; with
    ``draft`` a JPEG is decoded at a reduced scale first (``discl.imageio``)."""
    from discl.imageio import load_rgb

    return load_rgb(path, size, draft=draft)


def probe_size(path: str | os.PathLike) -> tuple[int, int]:
    """An image's size from its header (cheap: the pixels are not decoded)."""
    from discl.imageio import image_size

    return image_size(path)


def preflight(sources: Sequence[SourceImage], data_csv: Path, size: tuple[int, int] | None, skip_bad: bool,
              path_column: str = "filepath") -> tuple[list[SourceImage], list[dict]]:
    """Check every source image opens; set its pipeline input size. Unreadable: ``InputError`` or a failure record."""
    usable, failures = [], []
    for source in progress(sources, desc="checking source images", unit="img",
                           enabled=len(sources) >= 1000 and rank_world()[0] == 0):
        try:
            native = probe_size(source.real_path)
        except (OSError, ValueError) as err:
            reason = "image not found" if not os.path.exists(source.real_path) else f"cannot read image ({err})"
            if not skip_bad:
                raise InputError(data_csv, f"{reason}: {source.real_path}", row=source.csv_row,
                                 column=path_column) from None
            failures.append(failure_record(source, reason))
            continue
        usable.append(replace(source, size=size or native))
    return usable, failures


def input_size(config: GenerationConfig, dataset: Dataset) -> tuple[int, int] | None:
    """The pipeline's input size: ``--resolution``, else the dataset's (``None``: each image's native size)."""
    if config.resolution is None:
        return dataset.generation_resolution
    return parse_resolution(config.resolution)


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


def _join_process_group(world: int) -> bool:
    """A gloo group used only for barriers (when the launcher gave a rendezvous address)."""
    if world <= 1 or "MASTER_ADDR" not in os.environ:
        return False
    import datetime

    import torch.distributed as dist

    if not dist.is_initialized():
        # Ranks may finish hours apart on a long part: the barrier must not time out.
        dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))
    return True


def _barrier() -> None:
    import torch.distributed as dist

    dist.barrier()


@dataclass(frozen=True)
class Prepared:
    """A part's checked inputs and plan: what ``run`` generates and ``estimate`` counts."""

    dataset: Dataset
    retry: RetryPolicy | None
    prompts: PromptSource
    part_classes: set[str]
    sources: list[SourceImage]
    failures: list[dict]
    plan: Plan


def prepare(config: GenerationConfig, dataset: Dataset, rank: int = 0, world: int = 1) -> Prepared:
    """Check every input (CSV, prompts, source images) and plan the part; nothing is written, no model loaded."""
    check_part_count(config)
    outputs = [manifest_path(config.output_dir, config.part, config.total_parts),
               failures_path(config.output_dir, config.part, config.total_parts, rank, world)]
    check_inputs_kept([("--output-dir", path) for path in outputs],
                      [("--data-csv", config.data_csv), ("--prompt-json", config.prompt_json)])
    retry = retry_policy(config, dataset.quality_retry)
    prompts = load_prompt_source(dataset, config.prompt_json, retry.text if retry else "prompt")
    sources = part_sources(read_sources(config.data_csv, dataset, config.image_root), config.part, config.total_parts)
    part_classes = {s.class_folder for s in sources}
    for source in sources:
        prompts.check(source, config.data_csv)
    sources, failures = preflight(sources, config.data_csv, input_size(config, dataset), config.skip_bad,
                                  dataset.csv_layout.path)
    plan = make_plan(sources, config.strengths, config.seeds, config.batch_size, config.guidance_scale,
                     config.output_dir, retry is not None, rank, world)
    return Prepared(dataset, retry, prompts, part_classes, sources, failures, plan)


def check_part_count(config: GenerationConfig) -> None:
    """An output folder keeps one ``--total-parts``: manifests of another split would list images twice."""
    folder = manifest_path(config.output_dir, config.part, config.total_parts).parent
    mine = f"-of{config.total_parts:03d}.csv"
    others = sorted(p.name for p in folder.glob("part*-of*.csv") if not p.name.endswith(mine))
    if others:
        raise InputError(folder, f"holds the manifest of a run split into other parts ({others[0]}); a folder keeps "
                                 f"one --total-parts: use that split, or another --output-dir")


def run(config: GenerationConfig, dataset: Dataset | None = None) -> GenerationResult:
    """Generate the missing images of one part (this rank's share), then refresh the manifest and failures CSV."""
    from discl.config import to_plain
    from discl.datasets import get_dataset

    start = time.perf_counter()
    dataset = dataset if dataset is not None else get_dataset(config.dataset)
    rank, world, local_rank = rank_world()
    # Every input is checked before anything is created or a model loaded: bad input leaves nothing behind.
    device = _device(config, local_rank)
    prepared = prepare(config, dataset, rank, world)
    retry, prompts, part_classes, failures, plan = (prepared.retry, prepared.prompts, prepared.part_classes,
                                                    prepared.failures, prepared.plan)
    sources = prepared.sources
    output = config.output_dir
    # the models too: one that cannot be loaded is bad input, and bad input leaves nothing behind
    engine = load_engine(config, device, prompts, retry) if plan.todo else None
    runrecord.start(output, {**to_plain(config), "data_root": None if dataset.root is None else str(dataset.root)})
    log.info("%s part %d/%d, rank %d/%d: %d classes, %d images, %d synthetic planned; this rank: %d done, %d to make",
             dataset.name, config.part, config.total_parts, rank, world, len(part_classes), len(sources),
             plan.planned, plan.done_count, plan.missing)
    if world > 1 and rank != 0:
        failures = []  # the preflight is the same on every rank: rank 0 reports it
    grouped = _join_process_group(world)
    manifest = manifest_path(output, config.part, config.total_parts)
    if world == 1 or (grouped and rank == 0):
        # With several ranks, rank 0 clears what a killed run left while the others wait at the barrier below.
        stale = stale_temp_files(output, part_classes, manifest)
        for path in stale:
            path.unlink(missing_ok=True)
        if stale:
            log.info("removed %d temp file(s) left by an interrupted run", len(stale))
    if grouped:
        _barrier()

    def refresh() -> None:
        write_manifest(build_manifest(plan.part_groups, output, config.guidance_scale, dataset.name, prompts,
                                      retry is not None), manifest)

    written = 0
    if plan.todo:
        if rank == 0:
            refresh()  # on resume the manifest is rebuilt from the files on disk before any new work
        written = _generate(config, plan.todo, plan.done, engine, failures, refresh if rank == 0 else None)
    if grouped:
        _barrier()
    if rank == 0 or not grouped:
        refresh()
    failures_csv = _write_failures(failures, failures_path(output, config.part, config.total_parts, rank, world))
    return GenerationResult(plan.planned, plan.done_count, written, len(failures),
                            time.perf_counter() - start, manifest, failures_csv)


def _device(config: GenerationConfig, local_rank: int) -> str:
    from discl.distributed import check_device

    device = check_device(config.device)
    return f"cuda:{local_rank}" if device == "cuda" else device  # one GPU per torchrun / accelerate process


def load_engine(config: GenerationConfig, device: str, prompts: PromptSource,
                retry: RetryPolicy | None) -> SpectrumGenerator:
    """The img2img backend (and the retry's CLIP); a model that cannot be loaded is an ``InputError``."""
    embedder = None
    if retry is not None:
        from discl.clipscore import ClipEmbedder

        with _model_flag("--clip-model", retry.clip_model):
            embedder = ClipEmbedder(retry.clip_model, device, batch_size=max(config.batch_size, 8))
    with _model_flag("--diffusion-model", config.model_id):
        backend = backend_class(config.backend).load(config.diffusion_model, config.dtype, device, config.variant)
    if config.compile:
        backend.compile_unet()
    return SpectrumGenerator(backend, guidance_scale=config.guidance_scale, steps=config.steps,
                             batch_size=config.batch_size, prompts=prompts, retry=retry, embedder=embedder)


@contextlib.contextmanager
def _model_flag(flag: str, model: str):
    """Turn a loader's error about a missing or unreadable model into a one-line ``InputError`` naming ``flag``."""
    try:
        yield
    except (OSError, ValueError) as err:  # diffusers / transformers / huggingface_hub: not found, not cached, bad id
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(flag, f"cannot load {model!r}: {first}") from None


def _generate(config: GenerationConfig, todo: Sequence[Group], done: set[str], engine: SpectrumGenerator,
              failures: list[dict], refresh: Callable[[], None] | None) -> int:
    retry = engine.retry
    output = config.output_dir
    total = sum(1 for g in todo for i in g.items if i.relpath(config.guidance_scale) not in done)
    rank, world, _ = rank_world()
    # one display per job: rank 0's share stands for the others'
    desc = f"part {config.part}/{config.total_parts}" + (f" (rank 0 of {world})" if world > 1 else "")
    bar = progress(total=total, unit="img", desc=desc, enabled=rank == 0)
    written = 0

    def save(outcome: Outcome) -> None:
        nonlocal written
        relpath = outcome.item.relpath(config.guidance_scale)
        if relpath in done:
            return  # an unfinished group is recomputed whole; its finished files stay as they are
        if retry is not None:
            # The record goes first: an image on disk always has its record (kill-safe order).
            atomic_write_json(retry_record_path(output, relpath), {
                "prompt": outcome.prompt, "tries": outcome.tries, "generator_seed": outcome.generator_seed,
                "clip_image_text": outcome.score, "attempts": outcome.attempts})
        atomic_save_image(outcome.image, output / relpath, quality=config.jpeg_quality)
        done.add(relpath)
        written += 1
        bar.update(1)

    block, pixels = None, {}
    last_refresh = time.monotonic()
    for group in todo:
        if group.images != block:
            block, pixels = group.images, {}
            for source in block:
                try:
                    pixels[source.image_id] = load_source(source.real_path, source.size, config.jpeg_draft)
                except (OSError, ValueError) as err:
                    log.error("cannot read %s (CSV row %d): %s", source.real_path, source.csv_row, err)
                    failures.append(failure_record(source, f"cannot read image ({err})"))
        engine.run_group(group, pixels, save)
        if refresh is not None and time.monotonic() - last_refresh > config.manifest_interval:
            refresh()
            last_refresh = time.monotonic()
    bar.close()
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
    rate = f" ({result.seconds / result.written:.2f} s per image)" if result.written else ""
    line = (f"{result.written} images written, {result.existing} already there, {result.planned} planned in this "
            f"part; {result.seconds:.1f} s{rate}; manifest {result.manifest}")
    if result.failures:
        line += f"; {result.failures} unreadable source image(s) listed in {result.failures_csv}"
    return line


# ------------------------------------------------------------------------------------------------ --dry-run

JPEG_BYTES_PER_PIXEL = 0.25  # about 2 bits per pixel: a photograph as JPEG at quality 75


@dataclass(frozen=True)
class Estimate:
    """What one part still takes (``--dry-run``); ``*_max`` counts every quality retry as used."""

    planned: int
    existing: int
    images: int
    unet_evals: int
    unet_evals_max: int
    disk_bytes: int
    gpu_hours: float
    gpu_hours_max: float


def estimate(config: GenerationConfig, dataset: Dataset | None = None) -> Estimate:
    """Count the missing images of the part, their UNet evaluations (×2 with classifier-free guidance), their disk
    space (``JPEG_BYTES_PER_PIXEL``) and GPU-hours at ``config.seconds_per_image``; loads no model."""
    from discl.datasets import get_dataset
    from discl.generation.config import denoising_steps

    dataset = dataset if dataset is not None else get_dataset(config.dataset)
    prepared = prepare(config, dataset)  # as one process: the whole part
    plan = prepared.plan
    todo = [item for group in plan.todo for item in group.items
            if item.relpath(config.guidance_scale) not in plan.done]
    guided = 2 if config.guidance_scale > 1 else 1  # diffusers runs the UNet on a doubled batch when scale > 1
    evals = sum(denoising_steps(config.steps, item.strength) for item in todo) * guided
    tries = 1 + prepared.retry.max_retries if prepared.retry is not None else 1
    pixels = sum(item.source.size[0] * item.source.size[1] for item in todo)
    hours = len(todo) * config.seconds_per_image / 3600
    return Estimate(planned=plan.planned, existing=plan.done_count, images=len(todo), unet_evals=evals,
                    unet_evals_max=evals * tries, disk_bytes=int(pixels * JPEG_BYTES_PER_PIXEL), gpu_hours=hours,
                    gpu_hours_max=hours * tries)


def size_text(size: float) -> str:
    """``2.5e10`` → ``25.0 GB`` (decimal units)."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1000
    return f"{size:.1f} TB"


def estimate_lines(result: Estimate, config: GenerationConfig) -> str:
    """The ``--dry-run`` report."""
    retry = result.unet_evals_max != result.unet_evals
    lines = [f"part {config.part}/{config.total_parts}: {result.planned} synthetic images planned "
             f"({len(config.strengths)} strengths x {len(config.seeds)} seeds per hard image), {result.existing} "
             f"already there, {result.images} to make",
             f"UNet evaluations: {result.unet_evals:,} (int(steps x strength) steps per image, x2 for classifier-free "
             f"guidance at scale {config.guidance_scale:g})"
             + (f"; up to {result.unet_evals_max:,} if every quality retry is used" if retry else ""),
             f"disk: about {size_text(result.disk_bytes)} of JPEGs (~{JPEG_BYTES_PER_PIXEL} bytes per pixel)",
             f"GPU time: {result.gpu_hours:.2f} GPU-hours at {config.seconds_per_image:g} s per image "
             "(--seconds-per-image)" + (f"; up to {result.gpu_hours_max:.2f} with every retry" if retry else "")]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ entry point

def get_args_parser(default_dataset: str | None = None) -> argparse.ArgumentParser:
    """The parent parser of every ``gene_img.py``: the dataset flags and the generation flags."""
    from discl.datasets import dataset_parser

    return argparse.ArgumentParser(add_help=False, parents=[dataset_parser(required_root=False,
                                                                           default=default_dataset),
                                                            generation_parser()])


def config_from_args(args: argparse.Namespace) -> GenerationConfig:
    """The typed run configuration of parsed flags (bad values raise ``InputError``); image root: --data-root."""
    from discl.config import from_args

    image_root = args.image_root if args.image_root is not None else args.data_root
    return from_args(GenerationConfig, args, image_root=image_root)


def main(argv: Sequence[str] | None = None, default_dataset: str | None = None,
         description: str | None = None) -> int:
    """Generate one part (this process's share of it), print a one-line summary; 1 if a source was unreadable."""
    from discl.cli import setup_logging
    from discl.datasets import from_args as dataset_from_args

    parser = argparse.ArgumentParser(description=(description or __doc__).split("\n\n")[0],
                                     parents=[get_args_parser(default_dataset)])
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    config = config_from_args(args)
    if config.dry_run:
        print(estimate_lines(estimate(config, dataset_from_args(args)), config))
        return 0
    with runrecord.RunRecord("gene_img", argv):
        result = run(config, dataset_from_args(args))
    print(summary_line(result))
    return 1 if result.failures and not config.skip_bad else 0
