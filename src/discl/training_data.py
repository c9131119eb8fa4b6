"""Curriculum training data (spec §4): real training list + scored synthetic spectrum → training and
curriculum-validation tables.

One code path for both datasets: ``build_curriculum`` works on a generic frame (``key, path, filepath, label,
strength, guidance, seed``); iWildCam and ImageNet-LT differ only in where the real list comes from and how
the result is written (captioned TSV vs. ``relative/path label guidance`` lists).
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from discl.clipscore import SCORES_FILE, check_threshold, read_scores
from discl.data.training_tables import (IMAGENET_LT_GUIDANCE_LEVELS, REAL_GUIDANCE, REAL_SEED, REAL_STRENGTH,
                                        write_data_roots, write_imagenet_lt_list, write_iwildcam_table)
from discl.errors import InputError
from discl.fileio import atomic_write_csv

log = logging.getLogger(__name__)

FRAME_COLUMNS = ["key", "path", "filepath", "label", "strength", "guidance", "seed"]
DEFAULT_RANDOM_STATE = 42  # the reference's fixed random state for the validation sample


@dataclass
class CurriculumTables:
    """Training rows and curriculum-validation rows (generic columns + ``img_id``), and the guidance levels."""

    train: pd.DataFrame
    validation: pd.DataFrame
    levels: list[int]


# ---------------------------------------------------------------------------------------------------------
# Rows


def real_rows(paths: Sequence[str], filepaths: Sequence[str], labels: Sequence[int]) -> pd.DataFrame:
    """Real training images: strength 0, guidance 100, seed 100; keyed by their (unique) relative path."""
    frame = pd.DataFrame({"key": list(paths), "path": list(paths), "filepath": list(filepaths),
                          "label": np.asarray(labels, dtype="int64")})
    frame["strength"], frame["guidance"], frame["seed"] = REAL_STRENGTH, REAL_GUIDANCE, REAL_SEED
    duplicated = frame["key"].duplicated()
    if duplicated.any():
        raise InputError(None, f"real image {frame['key'][duplicated].iloc[0]!r} is listed twice in the training list")
    return frame[FRAME_COLUMNS]


def synthetic_rows(scores: pd.DataFrame, real: pd.DataFrame, syn_root: str | os.PathLike,
                   scores_file: str | os.PathLike = SCORES_FILE, threshold: float | None = None,
                   min_guidance: int = 0, levels: Sequence[int] | None = None) -> pd.DataFrame:
    """Kept synthetic images as rows keyed by their real source; ``strength = 100·s``, ``guidance = 100 − strength``.

    ``threshold`` re-filters on the image–text similarity (default: the ``keep`` column of the scores);
    only guidance ≥ ``min_guidance`` and, when given, guidance in ``levels`` are kept.
    """
    if threshold is None:
        keep = scores["keep"].astype(bool)
    else:
        keep = scores["clip_image_text"] >= check_threshold(threshold)
    by_stem = _real_by_stem(real)
    keys = []
    for row, (stem, class_id) in enumerate(zip(scores["image_stem"], scores["class_id"]), start=1):
        match = by_stem.get(stem)
        if match is None:
            raise InputError(scores_file, f"real image {stem!r} is not in the training list", row, "image_stem")
        if match == "":
            raise InputError(scores_file, f"stem {stem!r} names several images of the training list", row,
                             "image_stem")
        key, label = match
        if label != class_id:
            raise InputError(scores_file, f"class_id {class_id} but the training list labels {key!r} {label}", row,
                             "class_id")
        keys.append(key)
    frame = pd.DataFrame({
        "key": keys, "path": scores["synthetic_path"].to_numpy(),
        "filepath": [str(Path(syn_root) / p) for p in scores["synthetic_path"]],
        "label": scores["class_id"].to_numpy(dtype="int64"),
        "strength": 100 - scores["image_guidance"].to_numpy(dtype="int64"),
        "guidance": scores["image_guidance"].to_numpy(dtype="int64"),
        "seed": scores["seed"].to_numpy(dtype="int64"),
    })
    selected = keep.to_numpy() & (frame["guidance"] >= min_guidance).to_numpy()
    if levels is not None:
        selected &= frame["guidance"].isin(list(levels)).to_numpy()
    log.info("synthetic images: %d scored, %d kept by CLIPScore, %d kept after the guidance filter",
             len(frame), int(keep.sum()), int(selected.sum()))
    return frame[selected].reset_index(drop=True)


def _real_by_stem(real: pd.DataFrame) -> dict[str, tuple[str, int] | str]:
    """File stem → (key, label); ``""`` marks a stem shared by several real images (ambiguous)."""
    index: dict[str, tuple[str, int] | str] = {}
    for key, label in zip(real["key"], real["label"]):
        stem = Path(key).stem
        index[stem] = "" if stem in index else (key, int(label))
    return index


# ---------------------------------------------------------------------------------------------------------
# Pure steps


def assign_image_ids(frame: pd.DataFrame) -> pd.Series:
    """``img_id`` per row: 0, 1, 2, … for images with synthetic rows, −1, −2, … for the others.

    Ids follow the first appearance of each image in ``frame`` (the real list's order).
    """
    is_synthetic = frame["guidance"] != REAL_GUIDANCE
    hard = set(frame.loc[is_synthetic, "key"])
    ids: dict[str, int] = {}
    next_hard, next_other = 0, -1
    for key in frame["key"]:
        if key in ids:
            continue
        if key in hard:
            ids[key], next_hard = next_hard, next_hard + 1
        else:
            ids[key], next_other = next_other, next_other - 1
    return frame["key"].map(ids).astype("int64")


def guidance_levels(frame: pd.DataFrame) -> list[int]:
    """The guidance levels present, real (100) included, ascending."""
    return sorted(set(int(g) for g in frame["guidance"]) | {REAL_GUIDANCE})


def validation_candidates(frame: pd.DataFrame, levels: Sequence[int]) -> list[str]:
    """Images (keys, in frame order) that have a row at every level in ``levels``."""
    wanted = set(levels)
    have = frame.groupby("key", sort=False)["guidance"].agg(lambda g: set(int(x) for x in g))
    return [key for key, present in have.items() if wanted <= present]


def sample_validation(frame: pd.DataFrame, size: int, random_state: int = DEFAULT_RANDOM_STATE,
                      levels: Sequence[int] | None = None) -> pd.DataFrame:
    """The curriculum-validation rows: ``size`` images having every level, one row per (image, level)."""
    frame = frame.reset_index(drop=True)
    levels = guidance_levels(frame) if levels is None else list(levels)
    candidates = validation_candidates(frame, levels)
    if len(candidates) < size:
        log.warning("only %d images have every guidance level %s; the validation set uses all of them "
                    "(asked for %d)", len(candidates), levels, size)
    rng = np.random.RandomState(random_state)
    chosen = [candidates[i] for i in sorted(rng.choice(len(candidates), min(size, len(candidates)), replace=False))]
    rows = frame[frame["key"].isin(chosen) & frame["guidance"].isin(levels)]
    # one row per (image, level): among that level's seeds, a random one
    picks = [group.index[rng.randint(len(group))] for _, group in rows.groupby(["key", "guidance"], sort=True)]
    return frame.loc[sorted(picks)].reset_index(drop=True)


def build_curriculum(real: pd.DataFrame, synthetic: pd.DataFrame, val_size: int,
                     random_state: int = DEFAULT_RANDOM_STATE) -> CurriculumTables:
    """Real + synthetic rows → training rows (validation images removed) and curriculum-validation rows."""
    if val_size < 0:
        raise InputError(None, f"validation size must be >= 0, got {val_size}", column="--val-size")
    frame = pd.concat([real, synthetic], ignore_index=True)
    # grouped per image in the real list's order, then by guidance and seed: a stable order for ids and sampling
    frame = frame.sort_values(["key", "guidance", "seed"], kind="stable", key=_real_order(real)).reset_index(drop=True)
    frame["img_id"] = assign_image_ids(frame)
    levels = guidance_levels(frame)
    validation = sample_validation(frame[frame["img_id"] >= 0], val_size, random_state, levels)
    train = frame[~frame["key"].isin(set(validation["key"]))].reset_index(drop=True)
    return CurriculumTables(train, validation, levels)


def _real_order(real: pd.DataFrame):
    position = {key: i for i, key in enumerate(real["key"])}

    def sort_key(column: pd.Series) -> pd.Series:
        return column.map(position) if column.name == "key" else column

    return sort_key


def level_counts(tables: CurriculumTables) -> pd.DataFrame:
    """Rows and distinct images per guidance level in the training and validation tables."""
    parts = []
    for name, frame in (("train", tables.train), ("validation", tables.validation)):
        counts = frame.groupby("guidance").agg(rows=("key", "size"), images=("key", "nunique")).reset_index()
        parts.append(counts.assign(table=name))
    return pd.concat(parts, ignore_index=True)[["table", "guidance", "rows", "images"]]


# ---------------------------------------------------------------------------------------------------------
# The two datasets: where the real list comes from, how the tables are written


def iwildcam_real_rows(root: str | os.PathLike) -> pd.DataFrame:
    """The WILDS iWildCam train split as real rows (labels from WILDS, file names from its ``metadata.csv``)."""
    from discl.data.iwildcam import data_dir, load_dataset

    dataset = load_dataset(root)
    train = dataset.get_subset("train").indices
    # WILDS reads metadata.csv in file order, so its row i is example i
    filenames = pd.read_csv(data_dir(root) / "metadata.csv", usecols=["filename"])["filename"].to_numpy()[train]
    images = (data_dir(root) / "train").resolve()
    return real_rows(filenames.tolist(), [str(images / f) for f in filenames], dataset.y_array[train].tolist())


def imagenet_lt_real_rows(root: str | os.PathLike) -> pd.DataFrame:
    """``ImageNet_LT_train.txt`` under the ImageNet-LT root as real rows."""
    from discl.data.imagenet_lt import read_split

    entries = read_split(root, "train")
    base = Path(root).resolve()
    return real_rows([e.path for e in entries], [str(base / e.path) for e in entries], [e.label for e in entries])


def iwildcam_titled(frame: pd.DataFrame, english_names: Sequence[str], templates: Sequence[str]) -> pd.DataFrame:
    """The spec §4 iWildCam table: one copy of every row per caption template (all rows of template 1 first)."""
    parts = []
    for template in templates:
        titled = frame.assign(title=[template.format(english_names[label]) for label in frame["label"]])
        parts.append(titled)
    out = pd.concat(parts, ignore_index=True) if parts else frame.assign(title=[])
    return out[["title", "filepath", "label", "strength", "guidance", "seed", "img_id"]]


@dataclass(frozen=True)
class DatasetBuild:
    """Per-dataset defaults and hooks of the data builder."""

    name: str
    min_guidance: int
    guidance_levels: tuple[int, ...] | None  # synthetic levels kept; None = every level >= min_guidance
    val_size: int


BUILDS = {
    "iwildcam": DatasetBuild("iwildcam", min_guidance=50, guidance_levels=None, val_size=2000),
    # The reference's ImageNet-LT builder samples 100 curriculum-validation images.
    "imagenet_lt": DatasetBuild("imagenet_lt", min_guidance=0,
                                guidance_levels=tuple(g for g in IMAGENET_LT_GUIDANCE_LEVELS if g != REAL_GUIDANCE),
                                val_size=100),
}
OUTPUT_FILES = {"iwildcam": ("train.csv", "validate.csv"), "imagenet_lt": ("train.txt", "validate.txt")}


def add_build_args(parser: argparse.ArgumentParser, dataset: str) -> None:
    """The flags of ``curriculum/<Dataset>/build_data.py`` with the dataset's defaults."""
    spec = BUILDS[dataset]
    root_help = ("WILDS root dir (holding iwildcam_v2.0/)" if dataset == "iwildcam"
                 else "ImageNet-LT root (ImageNet_LT_train.txt and the images it lists)")
    parser.add_argument("--syn_path", required=True, help="generation output folder, scored by comp_clip_scores.py")
    parser.add_argument("--scores", help=f"scored manifest (default: SYN_PATH/{SCORES_FILE})")
    parser.add_argument("--data-root", required=True, help=root_help)
    parser.add_argument("--save_folder", required=True, help="where the training tables are written")
    parser.add_argument("--threshold", type=float, default=None,
                        help="re-filter on the image–text similarity (default: the scorer's keep column)")
    parser.add_argument("--min-guidance", type=int, default=spec.min_guidance,
                        help="drop synthetic images below this guidance (default %(default)s)")
    parser.add_argument("--guidance-levels", type=int, nargs="+", default=spec.guidance_levels,
                        help="synthetic guidance levels kept (default: %(default)s; None = all >= --min-guidance)")
    parser.add_argument("--val-size", type=int, default=spec.val_size,
                        help="curriculum-validation images (default %(default)s)")
    parser.add_argument("--random-state", type=int, default=DEFAULT_RANDOM_STATE,
                        help="seed of the validation sample (default %(default)s)")


def run_build(args: argparse.Namespace, dataset: str) -> tuple[CurriculumTables, dict[str, Path]]:
    """Read the scores and the real list, build the tables, write them into ``args.save_folder``."""
    syn_root = Path(args.syn_path).resolve()
    scores_path = Path(args.scores) if args.scores else syn_root / SCORES_FILE
    scores = read_scores(scores_path)
    other = np.flatnonzero(scores["dataset"].to_numpy() != dataset)
    if other.size:
        raise InputError(scores_path, f"dataset {scores['dataset'].iloc[other[0]]!r} given to the {dataset} builder",
                         int(other[0]) + 1, "dataset")
    if dataset == "iwildcam":
        real = iwildcam_real_rows(args.data_root)
    else:
        real = imagenet_lt_real_rows(args.data_root)
    levels = None if args.guidance_levels is None else [g for g in args.guidance_levels if g != REAL_GUIDANCE]
    synthetic = synthetic_rows(scores, real, syn_root, scores_path, args.threshold, args.min_guidance, levels)
    tables = build_curriculum(real, synthetic, args.val_size, args.random_state)
    out = Path(args.save_folder)
    train_name, val_name = OUTPUT_FILES[dataset]
    paths = {"train": out / train_name, "validation": out / val_name, "levels": out / "levels.csv"}
    if dataset == "iwildcam":
        from discl.data.iwildcam import IWILDCAM_TEMPLATES, zeroshot_classnames

        english = zeroshot_classnames(args.data_root)
        write_iwildcam_table(iwildcam_titled(tables.train, english, IWILDCAM_TEMPLATES), paths["train"])
        write_iwildcam_table(iwildcam_titled(tables.validation, english, IWILDCAM_TEMPLATES[:1]), paths["validation"])
    else:
        write_imagenet_lt_list(tables.train, paths["train"])
        write_imagenet_lt_list(tables.validation, paths["validation"])
        paths["roots"] = write_data_roots(out, args.data_root, syn_root)
    atomic_write_csv(paths["levels"], level_counts(tables))
    return tables, paths


def get_args_parser(dataset: str, description: str | None = None) -> argparse.ArgumentParser:
    """The builder's flags with the dataset's defaults (``build_data.py`` of either dataset)."""
    parser = argparse.ArgumentParser(description=(description or "").split("\n\n")[0])
    add_build_args(parser, dataset)
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None, dataset: str, description: str | None = None) -> int:
    """Build and write the training and curriculum-validation tables, print rows per guidance level."""
    from discl.cli import setup_logging

    args = get_args_parser(dataset, description).parse_args(argv)
    setup_logging(args.verbose)
    tables, paths = run_build(args, dataset)
    print(level_counts(tables).to_string(index=False))
    print(f"levels {tables.levels}; {tables.validation['key'].nunique()} validation images; "
          f"wrote {paths['train']} and {paths['validation']}")
    return 0
