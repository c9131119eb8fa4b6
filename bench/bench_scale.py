"""How the bookkeeping grows to the real volume: every step whose cost grows with the synthetic images, timed at
10k, 100k and 617k synthetic images (iWildCam: ≈ 7.7k hard images × 10 strengths × 8 seeds).

No model runs and no pixel is decoded: each size gets a WILDS-layout iWildCam root with ``129.8k / 7.7k`` real
training images per hard image (metadata.csv and *empty* image files: only existence is ever checked here), the
empty synthetic files of every (hard image, strength, seed) in the reference's layout, and a CLIP embedding cache
already holding an embedding for every image (a rerun of the scorer: what is left is bookkeeping). The steps are
the library's own calls, in the pipeline's order:

======================  ==================================================================================
plan + resume scan       ``generation.make_plan``: blocks, groups, this rank's share, which outputs exist
manifest refresh         ``generation.build_manifest`` + ``write_manifest`` (one part holding everything)
manifest validation      ``manifest.validate_manifest`` of the manifest as read from disk (text)
merging parts            ``clipscore.collect_from_manifests``: the part files (one per class group, at most 16)
                         read, validated, merged, resolved
CLIPScore bookkeeping    ``ClipScorer`` on a warm cache (fingerprints, look-ups, cosines) + ``write_outputs``
training-table build     ``training_data.run_build`` (scores read, tables built and written)
trainer table set-up     the loop's table read, label, file and duplicate checks, FLYP captions
stage data               ``StageData.rows`` of every level + the FLYP targets (caption tokens) of each
epoch sampling           ``GlobalBatchSampler`` batches of one pass over the largest stage
======================  ==================================================================================

All worlds are built first, then each step is timed on every size in turn, ``--repeats`` rounds of that (a machine
whose speed drifts over a run moves the sizes of a step alike). Each step is timed in CPU time (the best of its
rounds; a short step runs several times a round, until a second was timed at the largest size, and as many times
at every size, since the best of more runs is lower and would tilt the slope; CPU time hardly moves when other
processes share the cores) and its peak Python/NumPy allocation measured (tracemalloc, one more run). The stage
tables are written with their validated copies (``discl.tablecache``, in a temporary cache folder), as the stages leave them. Steps that
only shuffle or look up (a permutation, a hash set) grow a little faster than linearly once their arrays outgrow the
CPU caches; ``pandas.read_csv`` itself shows the machine's share. Last line: ``growth=<g> ratio=<r>``: ``g`` is the
largest log-log slope of any step between the two largest sizes (1 = linear), ``r`` is all the steps together at the
largest size ÷ ``pandas.read_csv`` of that size's manifest, each step divided by the ``read_csv`` time measured
beside it (after each of its rounds): the machine's speed moves both alike, where one ``read_csv`` at the end of a
quarter-hour run was seen 1.3 s in one run and 2.0 s in the next.

    python bench/bench_scale.py                       # 10k, 100k, 617k (several minutes, ~1.5 GB of inodes-only files)
    python bench/bench_scale.py --sizes 2000 20000    # a quick look
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import shutil
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

STRENGTHS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SEEDS = (10, 20, 30, 40, 42, 50, 60, 70)
TEXT_GUIDANCE = 10.0
REAL_PER_HARD = 129_800 / 7_700  # iWildCam: training images per hard image
PARTS = 16


def get_args_parser() -> argparse.ArgumentParser:
    """Sizes and repeats."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 617_000],
                        help="synthetic images per world (80 per hard image)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds over the sizes per step (the best run of each size is kept)")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc run (peak memory)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--hf-home", help="an HF cache holding the tiny models (default: built in a temp folder)")
    return parser


# ------------------------------------------------------------------------------------------------ the world
@dataclass
class World:
    """One size: the files on disk and what the steps hand each other."""

    folder: Path
    hard: int
    real: int
    wilds_root: Path = field(init=False)
    syn: Path = field(init=False)
    state: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.wilds_root = self.folder / "wilds"
        self.syn = self.folder / "syn"

    @property
    def data_dir(self) -> Path:
        """The iwildcam_v2.0 folder."""
        return self.wilds_root / "iwildcam_v2.0"


def _touch(paths: Sequence[Path]) -> None:
    """Empty files (existence is all the steps check)."""
    for parent in {p.parent for p in paths}:
        parent.mkdir(parents=True, exist_ok=True)
    for path in paths:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def build_world(folder: Path, synthetic: int) -> World:
    """An iWildCam root scaled to ``synthetic`` images: metadata, empty real and synthetic files."""
    from discl.tiny import make_mini_iwildcam

    hard = max(1, synthetic // (len(STRENGTHS) * len(SEEDS)))
    world = World(folder, hard, max(hard, round(hard * REAL_PER_HARD)))
    make_mini_iwildcam(world.wilds_root)
    mini = pd.read_csv(world.data_dir / "metadata.csv")
    train = mini[mini["split"] == "train"]
    species = sorted(int(y) for y in train["y"].unique() if y != 0)  # y 0 is 'empty': never regenerated
    rng = np.random.default_rng(0)
    labels = np.where(np.arange(world.real) < world.hard, np.array(species)[np.arange(world.real) % len(species)],
                      rng.choice(sorted(train["y"].unique()), world.real))
    template = train.iloc[np.arange(world.real) % len(train)].reset_index(drop=True)  # every sequence kept
    names = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(world.real)]
    scaled = template.assign(y=labels, filename=[f"{n}.jpg" for n in names], image_id=names,
                             category_id=labels)
    scaled = pd.concat([scaled, mini[mini["split"] != "train"]], ignore_index=True)
    scaled.to_csv(world.data_dir / "metadata.csv", index=False)
    _touch([world.data_dir / "train" / f for f in scaled["filename"][:world.real]])
    world.state["labels"] = labels
    world.state["filenames"] = scaled["filename"][:world.real].tolist()
    return world


def hard_sources(world: World) -> list:
    """The hard images as the generator's preflighted sources (first ``hard`` training rows, 480×270)."""
    from discl.datasets import get_dataset
    from discl.generation import SourceImage

    dataset = get_dataset("iwildcam", world.wilds_root)
    names = dataset.class_names()
    sources = []
    for row in range(world.hard):
        name = names[int(world.state["labels"][row])]
        filename = world.state["filenames"][row]
        sources.append(SourceImage(row + 1, int(world.state["labels"][row]), name, dataset.class_folder(name),
                                   filename, filename[:-4], (480, 270)))
    world.state["dataset"] = dataset
    return sources


def write_synthetic_files(world: World, sources: Sequence) -> None:
    """An empty file for every (source, strength, seed) in the reference's layout, and the warm CLIP cache."""
    from discl.generation import WorkItem

    paths = [world.syn / WorkItem(s, strength, seed).relpath(TEXT_GUIDANCE)
             for s in sources for strength in STRENGTHS for seed in SEEDS]
    _touch(paths)


def warm_cache(world: World, embedder) -> None:
    """Embeddings of every prompt, real and synthetic image, as a finished scoring run leaves them."""
    from discl.clipscore import CACHE_DIR, ClipScorer, file_fingerprint, parse_resize

    table = world.state["collected"]
    scorer = ClipScorer(embedder, world.syn / CACHE_DIR, parse_resize("480x270"))
    rng = np.random.default_rng(0)

    def unit(n: int) -> np.ndarray:
        vectors = rng.normal(size=(n, embedder.dim)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    prompts = sorted(table["prompt"].unique())
    scorer.texts.put(prompts, [""] * len(prompts), unit(len(prompts)))
    real = sorted(table["real_file"].unique())
    scorer.real.put([str(Path(f).resolve()) for f in real], [file_fingerprint(f) for f in real], unit(len(real)))
    scorer.synthetic.put(table["synthetic_path"].tolist(), [file_fingerprint(f) for f in table["synthetic_file"]],
                         unit(len(table)))
    for cache in (scorer.texts, scorer.real, scorer.synthetic):
        cache.save()


# ------------------------------------------------------------------------------------------------ the steps
def step_plan(world: World) -> None:
    from discl.generation import make_plan

    plan = make_plan(world.state["sources"], STRENGTHS, SEEDS, 8, TEXT_GUIDANCE, world.syn, False)
    assert not plan.todo and plan.done_count == world.hard * len(STRENGTHS) * len(SEEDS)
    world.state["plan"] = plan


def step_refresh(world: World) -> None:
    from discl.generation import PromptSource, build_manifest, manifest_path
    from discl.manifest import write_manifest

    frame = build_manifest(world.state["plan"].part_groups, world.syn, TEXT_GUIDANCE, "iwildcam",
                           PromptSource(world.state["dataset"]), False)
    path = manifest_path(world.folder / "whole", 1, 1)
    write_manifest(frame, path)
    world.state["manifest"] = path


def step_validate(world: World) -> None:
    from discl.manifest import validate_manifest

    validate_manifest(world.state["manifest_text"], world.state["manifest"])


def step_merge(world: World) -> None:
    from discl.clipscore import RealImageFinder, collect_from_manifests

    world.state["collected"] = collect_from_manifests(world.syn, RealImageFinder(world.data_dir / "train"))


def step_score(world: World) -> None:
    from discl.clipscore import CACHE_DIR, ClipScorer, parse_resize, write_outputs

    table = world.state["collected"].copy()
    table["text"] = table["prompt"]
    scorer = ClipScorer(world.state["embedder"], world.syn / CACHE_DIR, parse_resize("480x270"))
    scored, stats = scorer.score(table, text_column="text")
    assert stats.synthetic_encoded == stats.real_encoded == stats.texts_encoded == 0
    write_outputs(scored, world.syn, 0.0)  # every image kept: the tables then hold every level


def step_tables(world: World) -> None:
    from discl.training_data import BuildConfig, run_build

    # iWildCam's 2000 curriculum-validation images of 7.7k hard images, scaled with the world
    val_size = max(1, round(2000 * world.hard / 7700))
    config = BuildConfig(syn_path=str(world.syn), save_folder=str(world.folder / "tables"), val_size=val_size)
    tables, paths = run_build(config, world.state["dataset"])
    world.state["train_csv"] = paths["train"]


def step_trainer_table(world: World) -> None:
    from discl.flyp import with_captions
    from discl.training.data import check_duplicates, check_files, check_labels, read_table

    table = read_table(world.state["train_csv"], world.wilds_root)
    check_labels(table, len(world.state["dataset"].class_names()), world.state["train_csv"])
    check_files(table, world.state["train_csv"])
    check_duplicates(table, world.state["train_csv"])
    world.state["table"] = with_captions(table, world.state["dataset"]).reset_index(drop=True)


def step_stage_data(world: World) -> None:
    from discl.flyp import FlypOptions, FlypTask
    from discl.training.stage_data import StageData

    table = world.state["table"]
    stage_data = StageData("replace-hard", table)
    levels = sorted({int(g) for g in table["guidance"]})
    stage_data.check_levels(levels, world.state["train_csv"])
    largest = 0
    rng = np.random.default_rng(0)
    task = FlypTask(FlypOptions())
    task.tokenizer = world.state["tokenizer"]  # what FlypTask.build sets, without loading a model
    for level in levels:
        rows = stage_data.rows(level, rng).reset_index(drop=True)
        task.targets(rows)  # the caption tokens of the stage (each distinct caption tokenised once)
        rows["filepath"].tolist(), rows["guidance"].to_numpy(), rows["img_id"].to_numpy() >= 0
        largest = max(largest, len(rows))
    world.state["stage_rows"] = largest


def step_sampling(world: World) -> None:
    from discl.training.data import GlobalBatchSampler

    for batch in GlobalBatchSampler(world.state["stage_rows"], 256, seed=0):
        pass


STEPS: list[tuple[str, Callable[[World], None]]] = [
    ("plan + resume scan", step_plan),
    ("manifest refresh", step_refresh),
    ("manifest validation", step_validate),
    ("merging parts", step_merge),
    ("CLIPScore bookkeeping", step_score),
    ("training-table build", step_tables),
    ("trainer table set-up", step_trainer_table),
    ("stage data", step_stage_data),
    ("epoch sampling", step_sampling),
]


def split_parts(world: World) -> None:
    """The one manifest as ``PARTS`` part files, by class, as ``--total-parts`` would have written them (with their
    validated copies)."""
    from discl.generation import manifest_path
    from discl.manifest import read_manifest, write_manifest

    world.state["manifest_text"] = pd.read_csv(world.state["manifest"], dtype=str, keep_default_na=False)
    frame = read_manifest(world.state["manifest"])
    folders = sorted(frame["class_folder"].unique())
    parts = np.array_split(np.arange(len(folders)), min(PARTS, len(folders)))
    for k, members in enumerate(parts, start=1):
        chosen = frame[frame["class_folder"].isin([folders[i] for i in members])]
        write_manifest(chosen, manifest_path(world.syn, k, len(parts)))


def timed(fn: Callable[[], None], repeats: int, at_least: float = 1.0, most: int = 50) -> float:
    """Best CPU time (user + system, this process) of ``repeats`` runs, more for a short step until ``at_least``
    seconds were timed (at most ``most`` runs): CPU time hardly moves when other processes share the cores, wall
    time does."""
    gc.collect()
    best, spent, runs = math.inf, 0.0, 0
    while runs < repeats or (spent < at_least and runs < most):
        start = time.process_time()
        fn()
        elapsed = time.process_time() - start
        best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
    return best


def peak_memory(fn: Callable[[], None]) -> float:
    """Peak traced allocation (MB) of one run."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2 ** 20
    finally:
        tracemalloc.stop()


def build_worlds(top: Path, sizes: Sequence[int], embedder, tokenizer) -> dict[int, World]:
    """Every size's world, built before any step is timed."""
    worlds = {}
    for size in sizes:
        start = time.perf_counter()
        world = worlds[size] = build_world(top / f"n{size}", size)
        world.state["sources"] = hard_sources(world)
        write_synthetic_files(world, world.state["sources"])
        world.state.update(embedder=embedder, tokenizer=tokenizer)
        print(f"{size} synthetic images: {world.hard} hard images, {world.real} real, {world.hard * 80} synthetic "
              f"files ({time.perf_counter() - start:.0f} s to build)", flush=True)
    return worlds


def measure(worlds: dict[int, World], embedder, args) -> tuple[dict[int, dict[str, tuple[float, float]]],
                                                                 dict[str, float]]:
    """Every step on every size, the sizes of one step measured in turn, ``--repeats`` rounds (a machine whose
    speed drifts over the minutes of a run then moves all sizes of a step alike); ``read_csv`` of the largest
    manifest after each round (the step's denominator, measured beside it); ``read_csv`` of each manifest."""
    results: dict[int, dict[str, tuple[float, float]]] = {size: {} for size in worlds}
    beside: dict[str, float] = {}
    largest = worlds[max(worlds)]
    for world in worlds.values():  # the manifests read_csv is timed on, before any step is
        step_plan(world)
        step_refresh(world)
    for name, step in STEPS:
        best = dict.fromkeys(worlds, math.inf)
        beside[name] = math.inf
        for world in worlds.values():
            if name == "manifest validation" and "manifest_text" not in world.state:
                split_parts(world)
        # every size is run the same number of times: the best of more runs is lower, so a small size timed
        # more often than a large one would tilt the slope upwards; short steps repeat until 1 s was timed
        once = timed(lambda: step(largest), 1, at_least=0)
        runs = max(1, min(50, math.ceil(1.0 / args.repeats / max(once, 1e-6))))
        for _ in range(args.repeats):
            for size, world in worlds.items():
                best[size] = min(best[size], timed(lambda: step(world), runs, at_least=0))
            beside[name] = min(beside[name], timed(lambda: pd.read_csv(largest.state["manifest"]), 1, at_least=0))
        for size, world in worlds.items():
            if name == "merging parts" and "warm" not in world.state:
                warm_cache(world, embedder)
                world.state["warm"] = True
            memory = math.nan if args.no_memory else peak_memory(lambda: step(world))
            results[size][name] = (best[size], memory)
            print(f"  {name:24s} {size:>8d} {best[size]:8.3f} s  {memory:8.1f} MB", flush=True)
        print(f"  {'pandas.read_csv beside':24s} {max(worlds):>8d} {beside[name]:8.3f} s", flush=True)
    for size, world in worlds.items():
        results[size]["pandas.read_csv"] = (timed(lambda: pd.read_csv(world.state["manifest"]), args.repeats),
                                            math.nan)
        print(f"  {'pandas.read_csv':24s} {size:>8d} {results[size]['pandas.read_csv'][0]:8.3f} s", flush=True)
    return results, beside


def main(argv: Sequence[str] | None = None) -> int:
    """Measure each size, print the table of times, slopes and the last line."""
    args = get_args_parser().parse_args(argv)
    sizes = sorted(args.sizes)
    logging.basicConfig(level=logging.WARNING)
    top = Path(tempfile.mkdtemp(prefix="discl-bench-scale-"))
    # before any Hugging Face import: their cache constants are read at import time
    os.environ.update(HF_HOME=args.hf_home or str(top / "hf_home"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                      DISCL_TABLE_CACHE=str(top / "table_cache"))
    try:
        import open_clip

        from discl.clipscore import ClipEmbedder
        from discl.tiny import install_tiny_models

        if not args.hf_home:
            install_tiny_models(top / "hf_home")
        embedder = ClipEmbedder(device="cpu")  # the tiny CLIP under the real id: only its signature is used
        tokenizer = open_clip.get_tokenizer("ViT-B-16")
        results, beside = measure(build_worlds(top, sizes, embedder, tokenizer), embedder, args)
    finally:
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)
    names = [name for name, _ in STEPS]
    print(f"\n{'step':24s}" + "".join(f"{s:>12d}" for s in sizes) + "   slope (last two sizes)   ÷ read_csv beside")
    slopes, ratios = {}, {}
    for name in names + ["pandas.read_csv"]:
        times = [results[s][name][0] for s in sizes]
        slope = math.log(times[-1] / times[-2]) / math.log(sizes[-1] / sizes[-2]) if len(sizes) > 1 else math.nan
        shares = ""
        if name in names:
            slopes[name], ratios[name] = slope, times[-1] / beside[name]
            shares = f"{ratios[name]:22.2f}"
        print(f"{name:24s}" + "".join(f"{t:11.3f}s" for t in times) + f"   {slope:5.2f}" + shares)
    if not any(math.isnan(results[sizes[-1]][n][1]) for n in names):
        print(f"{'peak MB':24s}" + "".join(f"{max(results[s][n][1] for n in names):11.0f} " for s in sizes))
    total = sum(results[sizes[-1]][name][0] for name in names)
    worst = max(slopes, key=slopes.get) if slopes else "-"
    print(f"all bookkeeping at {sizes[-1]}: {total:.2f} s; steepest step: {worst}; "
          f"÷ the run's last read_csv: {total / results[sizes[-1]]['pandas.read_csv'][0]:.1f}; "
          f"each step ÷ read_csv measured beside it, summed: {sum(ratios.values()):.1f}")
    print(f"growth={max(slopes.values()) if slopes else math.nan:.2f} ratio={sum(ratios.values()):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
