"""The generation plan, pure: which synthetic images a part (and a rank of it) makes, in which groups, and which
are done already. No torch and no diffusers here (tested), so plans are unit-tested with hand-computed numbers.

How the work is cut, and why (every choice keeps a synthetic image a function of what it is, never of when,
where or next to what else it was made):

* **Part** (``--part k --total-parts n``): classes sorted by name, split into ``n`` contiguous near-equal chunks.
* **Block**: ``ceil(batch_size / len(seeds))`` consecutive images of one class with the same input size, in CSV
  order. Blocks never span classes, so the blocks of a class do not depend on the shard count.
* **Group**: one block at one strength — ``images × seeds`` work items, cut into pipeline calls of
  ``batch_size`` in a fixed order; a group is also the unit of the CLIP quality retry. Floating-point kernels
  round differently for different batch compositions (≈1e-6, enough to flip a pixel by one grey level), so a
  group always runs whole: on resume an unfinished group is recomputed and only its missing files are written.
* **Ranks** (``torchrun`` / ``accelerate launch``): rank ``r`` of ``w`` takes blocks ``r::w`` of the part.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import pandas as pd

from discl.bulk import gc_paused
from discl.errors import InputError
from discl.guidance import level_from_strength
from discl.manifest import MANIFEST_COLUMNS, sample_id, subfolder_name, synthetic_relpath
from discl.seeding import sample_seed

if TYPE_CHECKING:
    from discl.datasets.base import Dataset

log = logging.getLogger(__name__)

MANIFEST_DIR = "manifests"
RETRY_DIR = "retries"  # per-image JSON records of the quality retry, under MANIFEST_DIR
FAILURES_DIR = "failures"
FAILURE_COLUMNS = ["class_folder", "real_path", "image_stem", "csv_row", "error"]


# ------------------------------------------------------------------------------------------------ work units

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
    suffix: str = ".jpg"  # of its synthetic images' files (the dataset's ``synthetic_suffix``)

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
                                 self.source.image_stem, self.source.suffix)


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


# ------------------------------------------------------------------------------------------------ cutting the work

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


def part_sources(sources: Sequence[SourceImage], part: int, total_parts: int) -> list[SourceImage]:
    """The sources of one part, by class name (as the reference, so a part holds its classes); CSV order within."""
    names = set(shard_classes({s.class_name for s in sources}, part, total_parts))
    return sorted((s for s in sources if s.class_name in names), key=lambda s: (s.class_name, s.class_folder))


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


def group_relpaths(group: Group, guidance_scale: float) -> list[str]:
    """``item.relpath(guidance_scale)`` of every item of ``group``, in item order (the folder names computed once)."""
    subfolders = [subfolder_name(group.strength, guidance_scale, seed) for seed in group.seeds]
    return [f"{image.class_folder}/{subfolder}/{image.image_stem}{image.suffix}" for image in group.images
            for subfolder in subfolders]


def generator_seed(item: WorkItem, prompt: str, attempt: int = 0) -> int:
    """The torch seed of an item's attempt (attempt > 0: a quality retry, which must not repeat attempt 0)."""
    image_id = item.source.image_id if attempt == 0 else f"{item.source.image_id}#retry{attempt}"
    return sample_seed(image_id, prompt, item.strength, item.seed)


@dataclass(frozen=True)
class Plan:
    """One rank's work in one part: every group of the part, this rank's groups, what is left, what is done."""

    part_groups: list[Group]
    groups: list[Group]
    done: set[str]  # the outputs already on disk among the groups left to do (the generator skips them)
    todo: list[Group]  # this rank's groups with an output still missing
    done_count: int  # outputs of this rank's groups already on disk

    @property
    def planned(self) -> int:
        """Synthetic images of the whole part."""
        return sum(len(g.images) * len(g.seeds) for g in self.part_groups)

    @property
    def missing(self) -> int:
        """Synthetic images this rank still has to write."""
        return sum(len(g.items) for g in self.groups) - self.done_count


@gc_paused
def make_plan(sources: Sequence[SourceImage], strengths: Sequence[float], seeds: Sequence[int], batch_size: int,
              guidance_scale: float, output: Path, with_record: bool, rank: int = 0, world_size: int = 1) -> Plan:
    """Cut one part's (preflighted) sources into groups, take this rank's share, scan ``output`` for done images."""
    part_groups = make_groups(make_blocks(sources, images_per_block(batch_size, len(seeds))), strengths, seeds)
    mine = set(rank_share(list(dict.fromkeys(g.images for g in part_groups)), rank, world_size))
    groups = [g for g in part_groups if g.images in mine]
    relpaths = [group_relpaths(g, guidance_scale) for g in groups]
    done = outputs_done(output, [rel for rels in relpaths for rel in rels], with_record)
    # per group, its outputs done (a running count, no set of every output: the usual resume has most of them)
    sizes = np.array([len(rels) for rels in relpaths], dtype=np.int64)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    done_before = np.concatenate([np.zeros(1, np.int64), np.cumsum(done, dtype=np.int64)])
    left = np.flatnonzero(done_before[ends] - done_before[starts] < sizes).tolist()
    done_left = {rel for i in left for rel, ok in zip(relpaths[i], done[starts[i]:ends[i]].tolist()) if ok}
    return Plan(part_groups, groups, done_left, [groups[i] for i in left], int(done.sum()))


# ------------------------------------------------------------------------------------------------ prompts

class PromptSource:
    """The prompt of a work item's attempt, and the text its image is scored against in the quality retry.

    With a prompt JSON (required where ``dataset.uses_prompt_json``, optional elsewhere) the prompt is
    ``a 8k real photo: {p}`` with ``p`` drawn per (class, seed, attempt) from the class's list; otherwise it is the
    dataset's ``generation_prompt(class name)``.
    """

    def __init__(self, dataset: Dataset, prompts: dict[str, list[str]] | None = None,
                 prompt_file: Path | None = None, retry_text: str = "prompt"):
        self.dataset = dataset
        self.prompts = prompts
        self.prompt_file = prompt_file
        self.retry_text = retry_text
        self._drawn: dict[tuple[str, int, int], str] = {}  # (class, seed, attempt) → prompt

    def check(self, source: SourceImage, csv_path: Path) -> None:
        """Fail early (naming the CSV row) for a class the prompts cannot serve."""
        if self.prompts is not None and source.class_name not in self.prompts:
            raise InputError(self.prompt_file, f"no prompts for class {source.class_name!r} "
                                               f"(used in {csv_path} row {source.csv_row})")

    def prompt(self, item: WorkItem, attempt: int = 0) -> str:
        """The diffusion prompt of ``item``'s attempt ``attempt``."""
        return self.class_prompt(item.source.class_name, item.seed, attempt)

    def class_prompt(self, class_name: str, seed: int, attempt: int = 0) -> str:
        """The prompt of an image of ``class_name`` generated with ``seed`` (drawn once per class, seed, attempt)."""
        key = (class_name, seed, attempt)
        if key not in self._drawn:
            from discl import prompts

            self._drawn[key] = (self.dataset.generation_prompt(class_name) if self.prompts is None else
                                prompts.imagenet_lt_prompt(prompts.draw_prompt(self.prompts, class_name, seed, attempt,
                                                                               source=self.prompt_file)))
        return self._drawn[key]

    def score_text(self, item: WorkItem, prompt: str) -> str:
        """The text the retry compares the image with."""
        return prompt if self.retry_text == "prompt" else self.dataset.class_text(item.source.class_name)


def load_prompt_source(dataset: Dataset, prompt_json: Path | None, retry_text: str = "prompt") -> PromptSource:
    """The run's prompt source; a dataset that draws prompts from an LLM prompt JSON needs ``--prompt-json``."""
    if prompt_json is None:
        if dataset.uses_prompt_json:
            raise InputError("--prompt-json", f"the {dataset.name} dataset draws its prompts from an LLM prompt "
                                              "JSON (get_text_prompt.py): give --prompt-json")
        return PromptSource(dataset, retry_text=retry_text)
    from discl.prompts import load_prompt_json

    return PromptSource(dataset, load_prompt_json(prompt_json), prompt_json, retry_text)


# ------------------------------------------------------------------------------------------------ reading inputs

def read_sources(data_csv: Path, dataset: Dataset, image_root: Path | None = None) -> list[SourceImage]:
    """The hard-sample CSV as source images; classes the dataset never regenerates and duplicate rows dropped."""
    from discl.data.hard_sample_csv import read_hard_sample_csv

    frame = read_hard_sample_csv(data_csv, dataset, root=image_root)
    sources: list[SourceImage] = []
    first_row: dict[tuple[str, str], SourceImage] = {}
    skipped: dict[str, int] = {}
    for row, record in enumerate(frame.itertuples(index=False), start=1):
        source = SourceImage(row, int(record.class_id), record.class_name, record.class_folder, record.real_path,
                             record.image_stem, suffix=dataset.synthetic_suffix)
        if source.class_name in dataset.never_regenerated:
            skipped[source.class_name] = skipped.get(source.class_name, 0) + 1
            continue
        key = (source.class_folder, source.image_stem)
        if key in first_row:
            if first_row[key].real_path != source.real_path:
                raise InputError(data_csv, f"image name {source.image_stem!r} of class {source.class_name!r} "
                                 f"also names a different file in row {first_row[key].csv_row}: outputs would collide",
                                 row=row, column=dataset.csv_layout.path)
            continue
        first_row[key] = source
        sources.append(source)
    for name, count in sorted(skipped.items()):
        log.info("skipped %d row(s) of class '%s' (the %s dataset never regenerates it)", count, name, dataset.name)
    return sources


# ------------------------------------------------------------------------------------------------ files and resume

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


def outputs_done(output: Path, relpaths: Sequence[str], with_record: bool) -> np.ndarray:
    """Per output, whether it counts as done (``is_done``): its folder listed once instead of one ``stat`` each."""
    from discl.filescan import existing

    done = existing(relpaths, output)
    if with_record:
        on_disk = np.flatnonzero(done)
        records = retry_records(output, [relpaths[i] for i in on_disk.tolist()])
        done[on_disk[np.array([record is None for record in records], dtype=bool)]] = False
    return done


def retry_records(output: Path, relpaths: Sequence[str]) -> list[dict | None]:
    """``read_retry_record`` of each output; only the records that exist are opened."""
    from discl.filescan import existing

    if not (output / MANIFEST_DIR / RETRY_DIR).is_dir():
        return [None] * len(relpaths)
    names = [f"{MANIFEST_DIR}/{RETRY_DIR}/{os.path.splitext(rel)[0]}.json" for rel in relpaths]
    return [read_retry_record(output, rel) if exists else None
            for rel, exists in zip(relpaths, existing(names, output))]


def is_done(output: Path, relpath: str, with_record: bool) -> bool:
    """An output counts as done when its image exists (and, with the quality retry, its record parses)."""
    if not (output / relpath).is_file():
        return False
    return not with_record or read_retry_record(output, relpath) is not None


def read_retry_record(output: Path, relpath: str) -> dict | None:
    """The retry record of an output image, or ``None`` when it is missing, unreadable or damaged (then: not done,
    and the image is made again, which rewrites the record).

    Damaged: not a JSON object, or a value of the wrong type or range (``prompt`` a non-empty string, ``tries`` an
    integer >= 1, ``generator_seed`` an integer in [0, 2**63)). A record is written by the generator alone, so a
    damaged one is treated as a missing one (a crash or a stray edit), never trusted and never a stop.
    """
    try:
        record = json.loads(retry_record_path(output, relpath).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("prompt"), str) or not record["prompt"]:
        return None
    return record if _count(record.get("tries"), 1) and _count(record.get("generator_seed"), 0) else None


def _count(value, low: int) -> bool:
    """``value`` is an integer (not a bool, not a float) in [low, 2**63)."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < 2 ** 63


def failure_record(source: SourceImage, error: str) -> dict:
    """One row of the failures CSV."""
    return {"class_folder": source.class_folder, "real_path": source.real_path, "image_stem": source.image_stem,
            "csv_row": source.csv_row, "error": error}


@gc_paused
def build_manifest(groups: Sequence[Group], output: Path, guidance_scale: float, dataset_name: str,
                   prompts: PromptSource, with_record: bool) -> pd.DataFrame:
    """Manifest rows (docs/DESIGN.md) for every item of ``groups`` whose output is on disk, in plan order."""
    from discl.filescan import existing
    from discl.seeding import sample_seeds

    # one entry per item in plan order (group, image, seed), as plain lists: no object per item; number columns as
    # NumPy arrays (pandas infers the type of a list of 617k ints in ~0.15 s, ten times NumPy's conversion)
    sources = [image for group in groups for image in group.images for _ in group.seeds]
    strengths = [group.strength for group in groups for _ in range(len(group.images) * len(group.seeds))]
    seeds = [seed for group in groups for _ in group.images for seed in group.seeds]
    relpaths = [rel for group in groups for rel in group_relpaths(group, guidance_scale)]
    on_disk = np.flatnonzero(existing(relpaths, output))
    # A retry record wins even when this run has the retry off: it says how the image on disk was made.
    records = retry_records(output, [relpaths[i] for i in on_disk])
    if with_record:  # an image without its record is not finished (it is remade)
        on_disk, records = on_disk[[r is not None for r in records]], [r for r in records if r is not None]
    sources, relpaths = [sources[i] for i in on_disk], [relpaths[i] for i in on_disk]
    strengths, seeds = [strengths[i] for i in on_disk], [seeds[i] for i in on_disk]
    prompt = [prompts.class_prompt(src.class_name, seed) if record is None else record["prompt"]
              for src, seed, record in zip(sources, seeds, records)]
    derived = sample_seeds([src.image_id for src in sources], prompt, strengths, seeds)
    subfolders = {key: subfolder_name(key[0], guidance_scale, key[1]) for key in set(zip(strengths, seeds))}
    levels = {s: level_from_strength(s) for s in set(strengths)}
    columns = {
        "sample_id": [sample_id(src.class_folder, subfolders[key], src.image_stem)
                      for src, key in zip(sources, zip(strengths, seeds))],
        "dataset": [dataset_name] * len(sources),
        "class_id": np.array([src.class_id for src in sources], dtype=np.int64),
        "class_name": [src.class_name for src in sources],
        "class_folder": [src.class_folder for src in sources],
        "real_path": [src.real_path for src in sources],
        "image_stem": [src.image_stem for src in sources],
        "prompt": prompt,
        "strength": np.array(strengths, dtype=np.float64),
        "image_guidance": np.array([levels[s] for s in strengths], dtype=np.int64),
        "text_guidance": np.full(len(sources), guidance_scale, dtype=np.float64),
        "seed": np.array(seeds, dtype=np.int64),
        "generator_seed": np.array([seed if record is None else record["generator_seed"]
                                    for seed, record in zip(derived, records)], dtype=np.int64),
        "synthetic_path": relpaths,
        "tries": np.array([1 if record is None else record["tries"] for record in records], dtype=np.int64),
        "clip_image_text": [None] * len(sources),
        "clip_image_image": [None] * len(sources),
        "keep": [None] * len(sources),
    }
    return pd.DataFrame(columns, columns=MANIFEST_COLUMNS)


def stale_temp_files(output: Path, class_folders: Iterable[str], manifest: Path) -> list[Path]:
    """The temp files a killed run left in this part's folders and beside its manifest (never complete images)."""
    from discl.fileio import is_temp_file

    folders = [output / c for c in class_folders] + [output / MANIFEST_DIR / RETRY_DIR / c for c in class_folders]
    stale = [p for folder in folders if folder.is_dir() for p in folder.rglob(".tmp-*") if is_temp_file(p)]
    return stale + list(manifest.parent.glob(f".tmp-{manifest.name}.*"))


def rank_world(environ: dict | None = None) -> tuple[int, int, int]:
    """(rank, world size, local rank) from ``torchrun`` / ``accelerate launch`` environment variables."""
    env = os.environ if environ is None else environ
    world = int(env.get("WORLD_SIZE", "1"))
    local_rank = int(env.get("LOCAL_RANK", "0"))
    rank = int(env.get("RANK", str(local_rank)))
    return rank, world, local_rank
