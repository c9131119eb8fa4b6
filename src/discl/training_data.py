"""Curriculum training data (docs/filtering-and-training-data.md): real training images + scored synthetic
spectrum → training and curriculum-validation tables, for any registered dataset.

One code path: ``build_curriculum`` works on a generic frame (``key, path, filepath, label, strength, guidance,
seed``). Real rows come from ``dataset.training_images()`` (keys = paths relative to the dataset root),
synthetic rows from the scored manifest; the minimum guidance, the kept levels and the validation size default
to the dataset's class attributes. Every dataset gets the canonical ``train.csv`` / ``validate.csv``;
``dataset.write_reference_tables`` adds the reference's own format where it has one (ImageNet-LT's lists).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from discl import runrecord
from discl.bulk import gc_paused
from discl.clipscore import SCORES_FILE, check_threshold, peek_dataset, read_scores
from discl.config import add_arguments, option, to_plain
from discl.data.training_tables import (BUILD_RECORD, TABLE_COLUMNS, build_record, finish_build, read_training_table,
                                        start_build, write_training_table)
from discl.datasets.base import Dataset, RealImages, frame_of, render
from discl.errors import InputError
from discl.fileio import atomic_write_csv
from discl.guidance import REAL, REAL_SEED, REAL_STRENGTH
from discl.manifest import synthetic_files

log = logging.getLogger(__name__)

FRAME_COLUMNS = ["key", "path", "filepath", "label", "strength", "guidance", "seed"]
DEFAULT_RANDOM_STATE = 42  # the reference's fixed random state for the validation sample
OUTPUT_FILES = ("train.csv", "validate.csv")


@dataclass
class CurriculumTables:
    """Training rows and curriculum-validation rows (generic columns + ``img_id``), and the guidance levels."""

    train: pd.DataFrame
    validation: pd.DataFrame
    levels: list[int]


@dataclass
class BuildConfig:
    """The flags of build_data.py; ``min_guidance``, ``guidance_levels`` and ``val_size`` default to the dataset's."""

    syn_path: str = option("", "generation output folder, scored by comp_clip_scores.py", aliases=("--syn_path",),
                           required=True)
    save_folder: str = option("", "where the training tables are written (tables.json marks a complete set)",
                              flag="--output-dir", aliases=("--save-folder", "--save_folder"), required=True)
    scores: str | None = option(None, f"scored manifest; none = SYN_PATH/{SCORES_FILE}")
    threshold: float | None = option(None, "re-filter on the image–text similarity; none = the scorer's keep "
                                           "column")
    min_guidance: int | None = option(None, "drop synthetic images below this guidance (the dataset's "
                                            "table_min_guidance)", paper="iWildCam 50")
    guidance_levels: list[int] | None = option(None, "synthetic guidance levels kept (the dataset's "
                                                     "table_guidance_levels); none or no value = every level >= "
                                                     "--min-guidance", paper="ImageNet-LT 10 30 50")
    val_size: int | None = option(None, "curriculum-validation images (the dataset's curriculum_val_size)",
                                  paper="iWildCam 2000")
    max_val_fraction: float = option(0.5, "the validation hold-out takes at most this fraction of the hard "
                                          "images, so training keeps synthetic rows of every level")
    random_state: int = option(DEFAULT_RANDOM_STATE, "seed of the validation sample")
    holdout_from: str | None = option(None, "hold out the curriculum-validation images of the build_data.py output "
                                            "in this folder (its validate.csv) instead of sampling --val-size new "
                                            "ones: two tables whose real rows are the same (the text-only table "
                                            "beside DisCL's)")

    def check(self) -> None:
        """The numeric flags' ranges (``InputError`` naming the flag), before anything is read or written."""
        if self.threshold is not None:
            check_threshold(self.threshold)
        levels = ([] if self.min_guidance is None else [("--min-guidance", self.min_guidance)]) + [
            ("--guidance-levels", g) for g in self.guidance_levels or ()]
        for flag, level in levels:
            if not 0 <= level <= REAL:
                raise InputError(None, f"guidance levels lie in 0..{REAL}, got {level}", column=flag)
        if self.val_size is not None and self.val_size < 0:
            raise InputError(None, f"validation size must be >= 0, got {self.val_size}", column="--val-size")
        if not 0 <= self.max_val_fraction <= 1:  # NaN fails too
            raise InputError(None, f"must be in [0, 1], got {self.max_val_fraction}", column="--max-val-fraction")
        if self.holdout_from is not None and Path(self.holdout_from).resolve() == Path(self.save_folder).resolve():
            raise InputError(None, "is the output folder: a build killed while rewriting it would lose the hold-out; "
                                   "write the new tables to another folder", column="--holdout-from")
        if not 0 <= self.random_state < 2 ** 32:
            raise InputError(None, f"expected a seed in 0..{2 ** 32 - 1}, got {self.random_state}",
                             column="--random-state")


# ---------------------------------------------------------------------------------------------------------
# Rows


def real_rows(paths: Sequence[str], filepaths: Sequence[str], labels: Sequence[int]) -> pd.DataFrame:
    """Real training images: strength 0, guidance 100, seed 100; keyed by their (unique) relative path."""
    frame = pd.DataFrame({"key": list(paths), "path": list(paths), "filepath": list(filepaths),
                          "label": np.asarray(labels, dtype="int64")})
    frame["strength"], frame["guidance"], frame["seed"] = REAL_STRENGTH, REAL, REAL_SEED
    duplicated = frame["key"].duplicated()
    if duplicated.any():
        raise InputError(None, f"real image {frame['key'][duplicated].iloc[0]!r} is listed twice in the training list")
    return frame[FRAME_COLUMNS]


def dataset_real_rows(images: RealImages) -> pd.DataFrame:
    """A dataset's training images (``dataset.training_images()``) as real rows keyed by their relative path."""
    frame = frame_of(images)
    return real_rows(frame["key"].tolist(), frame["filepath"].tolist(), frame["label"].tolist())


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
    stems = scores["image_stem"].astype(str).to_numpy(dtype=object)
    class_ids = scores["class_id"].to_numpy(dtype="int64")
    stem_codes, unique_stems = pd.factorize(stems)  # ~80 rows per real image: each looked up once
    matches = [by_stem.get(stem) for stem in unique_stems]
    missing = np.array([m is None for m in matches] or [False])[stem_codes]
    ambiguous = np.array([m == "" for m in matches] or [False])[stem_codes]
    labels = np.array([m[1] if isinstance(m, tuple) else -1 for m in matches] or [-1], dtype="int64")[stem_codes]
    wrong = ~missing & ~ambiguous & (labels != class_ids)
    bad = np.flatnonzero(missing | ambiguous | wrong)
    if bad.size:
        row = int(bad[0])
        stem = stems[row]
        if missing[row]:
            raise InputError(scores_file, f"real image {stem!r} is not in the training list", row + 1, "image_stem")
        if ambiguous[row]:
            raise InputError(scores_file, f"stem {stem!r} names several images of the training list", row + 1,
                             "image_stem")
        key, label = by_stem[stem]
        raise InputError(scores_file, f"class_id {class_ids[row]} but the training list labels {key!r} {label}",
                         row + 1, "class_id")
    keys = np.array([m[0] for m in matches], dtype=object)[stem_codes].tolist() if len(stems) else []
    frame = pd.DataFrame({
        "key": keys, "path": scores["synthetic_path"].to_numpy(),
        "filepath": synthetic_files(syn_root, scores["synthetic_path"]),
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
    for key, label in zip(real["key"].tolist(), real["label"].tolist()):
        stem = _stem(key)
        index[stem] = "" if stem in index else (key, label)
    return index


def _stem(path: str) -> str:
    """``Path(path).stem`` without building a path object (the real list has ~130k images)."""
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 else name


# ---------------------------------------------------------------------------------------------------------
# Pure steps


def assign_image_ids(frame: pd.DataFrame) -> pd.Series:
    """``img_id`` per row: 0, 1, 2, … for images with synthetic rows, −1, −2, … for the others.

    Ids follow the first appearance of each image in ``frame`` (the real list's order).
    """
    codes, keys = pd.factorize(frame["key"])  # images in order of first appearance
    hard = pd.Index(keys).isin(frame.loc[frame["guidance"] != REAL, "key"].unique())
    ids = np.where(hard, np.cumsum(hard) - 1, -np.cumsum(~hard))
    return pd.Series(ids[codes], index=frame.index, dtype="int64")


def guidance_levels(frame: pd.DataFrame) -> list[int]:
    """The guidance levels present, real (100) included, ascending."""
    return sorted(set(int(g) for g in frame["guidance"]) | {REAL})


def validation_candidates(frame: pd.DataFrame, levels: Sequence[int]) -> list[str]:
    """Images (keys, in frame order) that have a row at every level in ``levels``."""
    wanted = sorted({int(g) for g in levels})
    codes, keys = pd.factorize(frame["key"])  # images in order of first appearance
    present = pd.DataFrame({"image": codes, "guidance": frame["guidance"].to_numpy()})
    present = present[present["guidance"].isin(wanted)].drop_duplicates()
    count = np.bincount(present["image"].to_numpy(), minlength=len(keys))
    return [str(key) for key in np.asarray(keys)[count == len(wanted)]]


def sample_validation(frame: pd.DataFrame, size: int, random_state: int = DEFAULT_RANDOM_STATE,
                      levels: Sequence[int] | None = None) -> pd.DataFrame:
    """The curriculum-validation rows: ``size`` images having every level, one row per (image, level)."""
    levels = guidance_levels(frame) if levels is None else list(levels)
    candidates = validation_candidates(frame, levels)
    if len(candidates) < size:
        log.warning("only %d images have every guidance level %s; the validation set uses all of them "
                    "(asked for %d)", len(candidates), levels, size)
    rng = np.random.RandomState(random_state)
    chosen = [candidates[i] for i in sorted(rng.choice(len(candidates), min(size, len(candidates)), replace=False))]
    return validation_rows(frame, chosen, levels, rng)


def validation_rows(frame: pd.DataFrame, images: Sequence[str], levels: Sequence[int],
                    rng: np.random.RandomState) -> pd.DataFrame:
    """One row per (image, level) of ``images`` (keys) at ``levels``: among that level's seeds (in frame order), a
    random one; in frame order. A pair without rows gives none."""
    frame = frame.reset_index(drop=True)
    rows = frame[frame["key"].isin(list(images)) & frame["guidance"].isin(list(levels))]
    # the groups in sorted (image, level) order, found by one sort instead of a frame per group
    rows = rows.assign(position=np.arange(len(rows))).sort_values(["key", "guidance", "position"])
    keys, guidance, index = (rows["key"].to_numpy(dtype=object), rows["guidance"].to_numpy(),
                             rows.index.to_numpy())
    starts = np.flatnonzero(np.r_[len(rows) > 0, (keys[1:] != keys[:-1]) | (guidance[1:] != guidance[:-1])])
    sizes = np.diff(np.r_[starts, len(rows)])
    picks = [index[start + rng.randint(size)] for start, size in zip(starts.tolist(), sizes.tolist())]
    return frame.loc[sorted(picks)].reset_index(drop=True)


def held_out_images(folder: str | os.PathLike, real: pd.DataFrame, dataset_name: str) -> list[str]:
    """The real images (keys of ``real``) that the build in ``folder`` held out: the real rows of its
    ``validate.csv``, in its order."""
    path = Path(folder) / OUTPUT_FILES[1]
    if not path.is_file():
        raise InputError(path, "not found (an output folder of build_data.py has one)",
                         column="--holdout-from")
    table = read_training_table(path)  # a build that did not finish is refused here
    built_for = (build_record(folder) or {}).get("dataset")
    if built_for not in (None, dataset_name):
        raise InputError(Path(folder) / BUILD_RECORD, f"was built for dataset {built_for!r}, not {dataset_name!r}",
                         column="--holdout-from")
    key_of = dict(zip(real["filepath"].tolist(), real["key"].tolist()))
    filepaths = table["filepath"].tolist()
    keys = []
    for row in np.flatnonzero(table["guidance"].to_numpy() == REAL).tolist():
        key = key_of.get(filepaths[row])
        if key is None:
            raise InputError(path, f"real image {filepaths[row]!r} is not a training image of this {dataset_name} "
                                   "data root (built from another --data-root?)", row + 1, "filepath")
        keys.append(key)
    if not keys:
        raise InputError(path, "holds no real rows: no curriculum-validation image to hold out",
                         column="--holdout-from")
    return list(dict.fromkeys(keys))


def capped_val_size(val_size: int, hard_images: int, max_fraction: float = 0.5) -> int:
    """The validation hold-out: at most ``max_fraction`` of the hard images (a warning says when it is cut)."""
    if val_size < 0:
        raise InputError(None, f"validation size must be >= 0, got {val_size}", column="--val-size")
    if not 0.0 <= max_fraction <= 1.0:
        raise InputError(None, f"must be in [0, 1], got {max_fraction}", column="--max-val-fraction")
    cap = int(np.floor(max_fraction * hard_images))
    if val_size > cap:
        log.warning("curriculum validation: %d images asked for, but at most %.0f%% of the %d hard images (%d) are "
                    "held out so that training keeps synthetic rows of every level", val_size, 100 * max_fraction,
                    hard_images, cap)
    return min(val_size, cap)


def build_curriculum(real: pd.DataFrame, synthetic: pd.DataFrame, val_size: int,
                     random_state: int = DEFAULT_RANDOM_STATE, max_val_fraction: float = 0.5,
                     holdout: Sequence[str] | None = None) -> CurriculumTables:
    """Real + synthetic rows → training rows (validation images removed) and curriculum-validation rows.

    The hold-out is ``val_size`` images sampled among the hard images having every level, at most
    ``max_val_fraction`` of them; or, given ``holdout`` (keys), those images, with a row at each of this build's
    levels they have. A level left without training rows is an ``InputError`` (the schedule would stage it with
    nothing to train on).
    """
    if val_size < 0:
        raise InputError(None, f"validation size must be >= 0, got {val_size}", column="--val-size")
    frame = pd.concat([real, synthetic], ignore_index=True)
    # grouped per image in the real list's order, then by guidance and seed: a stable order for ids and sampling
    frame = frame.sort_values(["key", "guidance", "seed"], kind="stable", key=_real_order(real)).reset_index(drop=True)
    frame["img_id"] = assign_image_ids(frame)
    levels = guidance_levels(frame)
    if holdout is None:
        hard = frame[frame["img_id"] >= 0]
        size = capped_val_size(val_size, int(hard["key"].nunique()), max_val_fraction)
        validation = sample_validation(hard, size, random_state, levels)
    else:
        validation = validation_rows(frame, holdout, levels, np.random.RandomState(random_state))
        missing = len(holdout) * len(levels) - len(validation)
        if missing:
            log.warning("curriculum validation: the %d held-out images lack %d of their (image, level) rows at "
                        "levels %s in this build", len(holdout), missing, levels)
    train = frame[~frame["key"].isin(set(validation["key"]))].reset_index(drop=True)
    empty = [level for level in levels if not (train["guidance"] == level).any()]
    if empty:
        flag = "--val-size" if holdout is None else "--holdout-from"
        remedy = "lower --val-size" if holdout is None else "only the held-out images have them"
        raise InputError(None, f"guidance level(s) {empty} have no training rows left after holding out "
                               f"{validation['key'].nunique()} curriculum-validation images; {remedy}", column=flag)
    if validation.empty:
        log.warning("the curriculum-validation table is empty: the adaptive schedule cannot probe")
    return CurriculumTables(train, validation, levels)


def _real_order(real: pd.DataFrame):
    position = dict(zip(real["key"].tolist(), range(len(real))))

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
# Writing the tables, the whole step


def titled_rows(frame: pd.DataFrame, text_names: Sequence[str], templates: Sequence) -> pd.DataFrame:
    """The canonical table: one copy of every row per caption template (all rows of template 1 first)."""
    labels = frame["label"].to_numpy()
    parts = []
    for template in templates:
        title = {label: render(template, text_names[label]) for label in np.unique(labels).tolist()}
        parts.append(frame.assign(title=[title[label] for label in labels.tolist()]))
    out = pd.concat(parts, ignore_index=True) if parts else frame.assign(title=[])
    return out[TABLE_COLUMNS]


def write_tables(tables: CurriculumTables, dataset: Dataset, folder: str | os.PathLike,
                 synthetic_root: str | os.PathLike, holdout_from: str | os.PathLike | None = None) -> dict[str, Path]:
    """``train.csv`` (every caption template), ``validate.csv`` (the first template), the dataset's reference
    tables, and ``levels.csv``; returns the written paths. ``tables.json`` names the build whose hold-out was
    reused (``holdout_from``), if any."""
    folder = Path(folder)
    names, templates = dataset.text_names(), list(dataset.caption_templates())
    paths = {"train": folder / OUTPUT_FILES[0], "validation": folder / OUTPUT_FILES[1], "levels": folder / "levels.csv"}
    start_build(folder)  # a kill from here on leaves the folder marked incomplete: no table of it is read
    write_training_table(titled_rows(tables.train, names, templates), paths["train"])
    write_training_table(titled_rows(tables.validation, names, templates[:1]), paths["validation"])
    paths.update(dataset.write_reference_tables(tables, folder, Path(synthetic_root)))
    atomic_write_csv(paths["levels"], level_counts(tables))
    finish_build(folder, {"dataset": dataset.name, "synthetic_root": str(synthetic_root), "levels": tables.levels,
                          "train_rows": len(tables.train), "validation_images": int(tables.validation["key"].nunique()),
                          "files": sorted(p.name for p in paths.values()),
                          **({} if holdout_from is None else {"holdout_from": str(Path(holdout_from).resolve())})})
    return paths


@gc_paused
def run_build(config: BuildConfig, dataset: Dataset) -> tuple[CurriculumTables, dict[str, Path]]:
    """Read the scores and the real training images, build the tables, write them into ``config.save_folder``."""
    config.check()
    syn_root = Path(config.syn_path).resolve()
    scores_path = Path(config.scores) if config.scores else syn_root / SCORES_FILE
    scores = read_scores(scores_path)
    other = np.flatnonzero(scores["dataset"].to_numpy() != dataset.name)
    if other.size:
        raise InputError(scores_path, f"dataset {scores['dataset'].iloc[other[0]]!r} given to the {dataset.name} "
                                      "builder", int(other[0]) + 1, "dataset")
    min_guidance = dataset.table_min_guidance if config.min_guidance is None else config.min_guidance
    levels = dataset.table_guidance_levels if config.guidance_levels is None else config.guidance_levels
    levels = [g for g in levels if g != REAL] if levels else None  # empty: every level
    val_size = dataset.curriculum_val_size if config.val_size is None else config.val_size
    real = dataset_real_rows(dataset.training_images())
    synthetic = synthetic_rows(scores, real, syn_root, scores_path, config.threshold, min_guidance, levels)
    if synthetic.empty:
        raise InputError(scores_path, f"no synthetic image is kept ({len(scores)} scored; threshold, --min-guidance "
                                      f"{min_guidance} and --guidance-levels leave none): a curriculum needs some")
    holdout = None if config.holdout_from is None else held_out_images(config.holdout_from, real, dataset.name)
    tables = build_curriculum(real, synthetic, val_size, config.random_state, config.max_val_fraction, holdout)
    runrecord.start(config.save_folder, {**to_plain(config), "dataset": dataset.name,
                                         "data_root": None if dataset.root is None else str(dataset.root)})
    return tables, write_tables(tables, dataset, config.save_folder, syn_root, config.holdout_from)


def dataset_defaults(cls: type[Dataset] | None) -> dict:
    """The builder's flag defaults that come from the dataset class."""
    if cls is None:
        return {}
    levels = None if cls.table_guidance_levels is None else list(cls.table_guidance_levels)
    return {"min_guidance": cls.table_min_guidance, "guidance_levels": levels, "val_size": cls.curriculum_val_size}


def get_args_parser(default_dataset: str | None = None, argv: Sequence[str] | None = None,
                    description: str | None = None) -> argparse.ArgumentParser:
    """The builder's flags with the defaults of the dataset named in ``argv`` (or ``default_dataset``)."""
    from discl.datasets import dataset_parser

    parser = argparse.ArgumentParser(description=(description or __doc__).split("\n\n")[0],
                                     parents=[dataset_parser(required_root=True, default=default_dataset)])
    add_arguments(parser.add_argument_group("training tables"), BuildConfig,
                  defaults=dataset_defaults(peek_dataset(argv, default_dataset)))
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def parse_args(argv: Sequence[str] | None, default_dataset: str | None = None,
               description: str | None = None) -> tuple[BuildConfig, Dataset, argparse.Namespace]:
    """``argv`` → (typed build config, dataset, namespace)."""
    from discl.config import from_args
    from discl.datasets import from_args as dataset_from_args

    argv = sys.argv[1:] if argv is None else list(argv)
    args = get_args_parser(default_dataset, argv, description).parse_args(argv)
    return from_args(BuildConfig, args), dataset_from_args(args), args


def main(argv: Sequence[str] | None = None, default_dataset: str | None = None,
         description: str | None = None) -> int:
    """Build and write the training and curriculum-validation tables, print rows per guidance level."""
    from discl.cli import setup_logging

    config, dataset, args = parse_args(argv, default_dataset, description)
    setup_logging(args.verbose)
    config.check()
    if Path(config.save_folder).exists() and not Path(config.save_folder).is_dir():
        raise InputError(config.save_folder, "--output-dir is a file, not a folder")
    with runrecord.RunRecord("build_data", argv):
        tables, paths = run_build(config, dataset)
    print(level_counts(tables).to_string(index=False))
    print(f"levels {tables.levels}; {tables.validation['key'].nunique()} validation images; "
          f"wrote {paths['train']} and {paths['validation']}")
    return 0
