"""Curriculum training on ImageNet-LT (spec §6): losses, the data of one epoch, and the training loop.

The loop is shared by the curriculum trainer and the plain baseline (``--curriculum none`` on the real list,
no down-sampling, no tail top-up): one code path, different arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from discl import checkpoint, curriculum, distributed, lt_metrics, resnet, stats
from discl.data import imagenet_lt, training_tables
from discl.errors import InputError
from discl.fileio import atomic_write_json
from discl.lr import cosine_annealing_lr, set_lr
from discl.seeding import derived_rng, seed_everything, stable_seed

logger = logging.getLogger(__name__)

REAL_GUIDANCE = 100
LOSSES = ("ce", "balanced_softmax")
CHECKPOINTS = "checkpoints"  # OUTPUT/checkpoints/{last,best}.pt, as the iWildCam trainer writes them


class Row(NamedTuple):
    """One training image: where it is, its class and its image guidance (100 = the real photo)."""

    path: str
    label: int
    guidance: int


@dataclass
class LTConfig:
    """A run's settings: the trainer's flags (defaults live in ``add_arguments``)."""

    data_root: Path
    train_list: Path | None
    val_list: Path | None
    test_list: Path | None
    synthetic_root: Path | None
    curriculum_val_list: Path | None
    num_classes: int | None
    downsample_ratio: float
    tail_fraction: float | None
    crop_size: int
    resize_size: int
    workers: int
    arch: str
    width: int
    init: Path | None
    torchvision_weights: str | None
    train_mode: str
    loss: str
    lr: float
    wd: float
    epochs: int
    batch_size: int
    eval_batch_size: int
    seed: int
    curriculum: str
    guidance_levels: list[int]
    level_starts: list[int]
    curriculum_epoch: int
    adaptive_choice: str
    real_sample_size: int
    split_convention: str
    output_dir: Path
    resume: bool
    stop_after_epoch: int | None
    device: str | None
    plots: bool


# ---------------------------------------------------------------------------------------------------- losses
def log_class_prior(class_counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """``log(n_c / Σ n)`` per class; a class without training images counts as one (keeps the log finite)."""
    counts = torch.as_tensor(class_counts, dtype=torch.float64).clamp(min=1.0)
    return torch.log(counts / counts.sum()).float()


def balanced_softmax_loss(logits: torch.Tensor, labels: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
    """Balanced Softmax (Ren et al. 2020): cross-entropy on ``logits + log prior``; test time uses plain logits."""
    return F.cross_entropy(logits + log_prior.to(logits.device, logits.dtype), labels)


def training_loss(name: str, logits: torch.Tensor, labels: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
    """The training loss ``name`` (``ce`` or ``balanced_softmax``) of one batch."""
    if name == "ce":
        return F.cross_entropy(logits, labels)
    if name == "balanced_softmax":
        return balanced_softmax_loss(logits, labels, log_prior)
    raise ValueError(f"unknown loss {name!r}; expected one of {LOSSES}")


# ------------------------------------------------------------------------------------------ data of one epoch
def _draw(rows: Sequence[Row], count: int, rng: np.random.Generator) -> list[Row]:
    """``count`` rows drawn at random: without replacement when there are enough, else with replacement."""
    if count <= 0:
        return []
    if not rows:
        raise ValueError("cannot draw from an empty set of rows")
    index = rng.choice(len(rows), size=count, replace=len(rows) < count)
    return [rows[i] for i in index]


def tail_target(num_non_tail: int, tail_fraction: float) -> int:
    """How many tail images make them ``tail_fraction`` of an epoch with ``num_non_tail`` other images."""
    # x / (x + y) = f  ⇒  x = f / (1 − f) · y; floored as in the reference (0.136 → 13.6 % of the epoch)
    return int(tail_fraction / (1.0 - tail_fraction) * num_non_tail)


def build_epoch_rows(real_rows: Sequence[Row], synthetic_rows: Sequence[Row], tail_classes: set[int] | frozenset[int],
                     level: int, rng: np.random.Generator, downsample_ratio: float = 0.3,
                     tail_fraction: float | None = 0.136) -> list[Row]:
    """The training images of one epoch at guidance ``level`` (spec §6), in no particular order.

    A fresh ``downsample_ratio`` share of the real non-tail images; then every real tail image, topped up to
    ``tail_fraction`` of the epoch with synthetic tail images of guidance ``level`` or, when ``level`` is 100
    (a real-only stage), with more copies of real tail images. ``tail_fraction=None`` keeps the real data as
    it is (no top-up).
    """
    non_tail = [r for r in real_rows if r.label not in tail_classes]
    real_tail = [r for r in real_rows if r.label in tail_classes]
    kept = _draw(non_tail, int(downsample_ratio * len(non_tail)), rng) if downsample_ratio < 1 else list(non_tail)
    if tail_fraction is None:  # the plain long-tailed data (baseline): no top-up
        return kept + list(real_tail)
    top_up = tail_target(len(kept), tail_fraction) - len(real_tail)
    if level == REAL_GUIDANCE:
        pool = real_tail
        if not pool and top_up > 0:
            raise ValueError("no real tail images to up-sample (no few-shot class has training images)")
    else:
        pool = [r for r in synthetic_rows if r.guidance == level and r.label in tail_classes]
        if not pool and top_up > 0:
            raise ValueError(f"no synthetic tail images of guidance {level}")
    if top_up < 0:
        logger.debug("the %d real tail images already exceed %.1f%% of the epoch; no top-up",
                     len(real_tail), 100 * tail_fraction)
    return kept + list(real_tail) + _draw(pool, top_up, rng)


def real_sample_rows(real_rows: Sequence[Row], size: int, rng: np.random.Generator) -> list[Row]:
    """The adaptive round's real pass (spec §5): ``size`` real rows drawn without replacement (all when fewer)."""
    if size >= len(real_rows):
        return list(real_rows)
    return [real_rows[i] for i in np.sort(rng.choice(len(real_rows), size=size, replace=False))]


# ------------------------------------------------------------------------------------------------ arguments
def _ratio(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a ratio in (0, 1], got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _fraction_or_none(text: str) -> float | None:
    if text.lower() == "none":
        return None
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1) or 'none', got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The trainer's flags with the paper's defaults (spec §6); the baseline script overrides a few."""
    data = parser.add_argument_group("data")
    data.add_argument("--data-root", required=True, type=Path,
                      help="ImageNet-LT root: the real images and ImageNet_LT_{train,val,test}.txt")
    data.add_argument("--train-list", type=Path,
                      help="training list: real 'path label' (default ROOT/ImageNet_LT_train.txt) or the curriculum "
                           "builder's train.txt, 'path label guidance' with the synthetic rows")
    data.add_argument("--val-list", type=Path,
                      help="validation list, selects the checkpoint (default: ROOT/ImageNet_LT_val.txt)")
    data.add_argument("--test-list", type=Path, help="test list, reported only (default: ROOT/ImageNet_LT_test.txt)")
    data.add_argument("--synthetic-root", type=Path,
                      help="root of the synthetic paths (default: data_roots.json beside the training list)")
    data.add_argument("--curriculum-val-list", type=Path,
                      help="curriculum-validation list with guidance per row (adaptive schedule's probe)")
    data.add_argument("--num-classes", type=int, help="default: largest label in ROOT/ImageNet_LT_train.txt + 1")
    data.add_argument("--downsample-ratio", type=_ratio, default=0.3,
                      help="share of the real non-tail images drawn afresh each epoch")
    data.add_argument("--tail-fraction", type=_fraction_or_none, default=0.136,
                      help="the tail's share of an epoch, topped up with synthetic (or repeated real) tail images; "
                           "'none' keeps the real tail as it is")
    data.add_argument("--crop-size", type=int, default=224, help="RandomResizedCrop / CenterCrop size")
    data.add_argument("--resize-size", type=int, default=256, help="test-time Resize before the centre crop")
    data.add_argument("--workers", type=int, default=4, help="data-loader worker processes")

    model = parser.add_argument_group("model")
    model.add_argument("--arch", choices=resnet.ARCHS, default="resnet10")
    model.add_argument("--width", type=int, default=64, help="ResNet-10 first-stage width (64 in the paper)")
    model.add_argument("--init", type=Path, help="checkpoint trained on the real long-tailed data (train_baseline.py)")
    model.add_argument("--torchvision-weights", help="torchvision weights for resnet18/50, e.g. DEFAULT (downloads)")
    model.add_argument("--train-mode", choices=resnet.TRAIN_MODES, default="full",
                       help="full fine-tuning or classifier only (frozen backbone, batch-norm statistics included)")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--loss", choices=LOSSES, default="ce")
    optim.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, cosine-annealed over all steps")
    optim.add_argument("--wd", type=float, default=1e-5)
    optim.add_argument("--epochs", type=int, default=65)
    optim.add_argument("--batch-size", type=int, default=128, help="global batch (split over DDP ranks)")
    optim.add_argument("--eval-batch-size", type=int, default=256)
    optim.add_argument("--seed", type=int, default=0)

    schedule = parser.add_argument_group("curriculum")
    schedule.add_argument("--curriculum", choices=curriculum.SCHEDULES, default="fixed")
    schedule.add_argument("--guidance-levels", type=int, nargs="+", default=[10, 30, 50, 100],
                          help="guidance levels of the curriculum (100 = real)")
    schedule.add_argument("--level-starts", type=int, nargs="*", default=[0, 14, 29, 44],
                          help="fixed schedule: start epoch of each level in ascending order; "
                               "given with no values, equal shares of the curriculum")
    schedule.add_argument("--curriculum-epoch", type=int, default=60, help="real data only from this epoch on")
    schedule.add_argument("--adaptive-choice", choices=curriculum.ADAPTIVE_CHOICES, default="argmax",
                          help="adaptive schedule: best progress or the random-level ablation")
    schedule.add_argument("--real-sample-size", type=_positive_int, default=30000,
                          help="adaptive schedule: real rows drawn afresh for each round's real pass "
                               "(all of them when there are fewer)")

    evaluation = parser.add_argument_group("evaluation and output")
    evaluation.add_argument("--split-convention", choices=imagenet_lt.CONVENTIONS, default="reference",
                            help="many/medium/few cut: reference ≥100 / 20–99 / <20, "
                                 "standard >100 / 20–100 / <20")
    evaluation.add_argument("--output-dir", required=True, type=Path, help="run folder (checkpoints, stats, figures)")
    evaluation.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoints/last.pt")
    evaluation.add_argument("--stop-after-epoch", type=int,
                            help="leave after finishing this epoch (0-based), e.g. to fit a job time limit")
    evaluation.add_argument("--device", help="default: cuda when available, else cpu")
    evaluation.add_argument("--no-plots", dest="plots", action="store_false")
    evaluation.add_argument("--verbose", action="store_true")
    return parser


# ----------------------------------------------------------------------------------------------------- data
@dataclass
class LTData:
    """Everything the loop reads from disk, validated: real and synthetic rows, evaluation rows, class facts."""

    train: list[Row]
    val: list[Row]
    test: list[Row]
    synthetic: list[Row]
    curriculum_val: list[Row]
    num_classes: int
    counts: list[int]
    groups: np.ndarray
    tail_classes: frozenset[int]


def _check_rows(rows: Sequence[Row], path: Path, num_classes: int) -> None:
    """Labels inside the class range and image files present; the error names the list file and row."""
    for number, row in enumerate(rows, start=1):
        if not 0 <= row.label < num_classes:
            raise InputError(path, f"label {row.label} outside the class range 0..{num_classes - 1}", number, "label")
        if not os.path.isfile(row.path):
            raise InputError(path, f"image {row.path} not found", number, "path")


def read_rows(path: Path, root: Path, synthetic_root: Path | None, num_classes: int) -> list[Row]:
    """A list file as rows with absolute paths: ``relative/path label`` (real, under ``root``) or the
    curriculum builder's ``relative/path label guidance`` (synthetic rows under ``synthetic_root``, by default
    the one recorded in ``data_roots.json`` beside the list)."""
    entries = imagenet_lt.read_list(path)
    if all(e.guidance is None for e in entries):
        rows = [Row(str(root / e.path), e.label, REAL_GUIDANCE) for e in entries]
    else:
        if synthetic_root is None and all(e.guidance in (None, REAL_GUIDANCE) for e in entries):
            synthetic_root = root  # no synthetic rows: no data_roots.json needed
        table = training_tables.read_imagenet_lt_list(path, real_root=root, synthetic_root=synthetic_root)
        rows = [Row(f, int(label), int(g))
                for f, label, g in zip(table["filepath"], table["label"], table["guidance"])]
    _check_rows(rows, path, num_classes)
    return rows


def load_data(config: LTConfig) -> LTData:
    """Read and check every list the run needs (``InputError`` naming the file and row of a bad entry)."""
    root = Path(config.data_root)
    # Class counts (Balanced Softmax prior, many / medium / few) come from the canonical long-tailed list, so
    # they do not move when the curriculum builder holds some images out for its validation set.
    canonical = imagenet_lt.read_split(root, "train")
    num_classes = config.num_classes or max(e.label for e in canonical) + 1
    lists = {split: Path(getattr(config, f"{split}_list") or root / imagenet_lt.LIST_FILES[split])
             for split in ("train", "val", "test")}
    rows = read_rows(lists["train"], root, config.synthetic_root, num_classes)
    train = [r for r in rows if r.guidance == REAL_GUIDANCE]
    synthetic = [r for r in rows if r.guidance != REAL_GUIDANCE]
    val = read_rows(lists["val"], root, None, num_classes)
    test = read_rows(lists["test"], root, None, num_classes)
    if not train:
        raise InputError(lists["train"], "no real (guidance 100) training rows")

    wanted = sorted(g for g in config.guidance_levels if g != REAL_GUIDANCE)
    missing = sorted(set(wanted) - {r.guidance for r in synthetic}) if config.curriculum != "none" else []
    if missing:
        raise InputError(lists["train"], f"no synthetic rows of guidance {missing} (--guidance-levels "
                                         f"{config.guidance_levels}); pass the curriculum builder's train.txt")
    curriculum_val: list[Row] = []
    if config.curriculum == "adaptive" and config.adaptive_choice == "argmax":
        if config.curriculum_val_list is None:
            raise InputError(None, "--curriculum adaptive needs --curriculum-val-list (the probe rows)")
        curriculum_val = read_rows(Path(config.curriculum_val_list), root, config.synthetic_root, num_classes)

    try:
        counts = imagenet_lt.class_counts(canonical, num_classes)
    except ValueError as err:
        raise InputError(root / imagenet_lt.LIST_FILES["train"], f"{err} (see --num-classes)") from None
    groups = lt_metrics.class_groups(counts, config.split_convention)
    tail = frozenset(c for c in range(num_classes) if groups[c] == "few" and counts[c] > 0)
    outside = sum(r.label not in tail for r in synthetic)
    if outside:
        logger.warning("%d synthetic rows belong to non-tail classes and are not used", outside)
    logger.info("data: %d real training images (%d tail classes, %d tail images), %d synthetic, %d val, %d test, "
                "%d classes", len(train), len(tail), sum(r.label in tail for r in train), len(synthetic), len(val),
                len(test), num_classes)
    return LTData(train, val, test, synthetic, curriculum_val, num_classes, counts, groups, tail)


class RowDataset(torch.utils.data.Dataset):
    """Images of a list of rows, as (image tensor, label, guidance); ``seeds``: one augmentation seed per row."""

    def __init__(self, rows: Sequence[Row], transform, seeds: Sequence[int] | None = None):
        self.rows = list(rows)
        self.transform = transform
        self.seeds = None if seeds is None else list(seeds)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        row = self.rows[index]
        with Image.open(row.path) as image:
            image = image.convert("RGB")
        if self.seeds is None:
            return self.transform(image), row.label, row.guidance
        # torchvision's random transforms draw from torch's global generator: seeding it per image makes the
        # augmentation independent of the process, worker and batch the image lands in
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seeds[index])
            return self.transform(image), row.label, row.guidance


def make_transforms(crop_size: int = 224, resize_size: int = 256):
    """(train, test) transforms of spec §6 (LDMLR's): random crop + flip + colour jitter; resize + centre crop."""
    from torchvision import transforms

    normalize = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    train = transforms.Compose([transforms.RandomResizedCrop(crop_size), transforms.RandomHorizontalFlip(),
                                transforms.ColorJitter(0.4, 0.4, 0.4, 0), transforms.ToTensor(), normalize])
    test = transforms.Compose([transforms.Resize(resize_size), transforms.CenterCrop(crop_size),
                               transforms.ToTensor(), normalize])
    return train, test


# ----------------------------------------------------------------------------------------------------- loop
# Settings that shape the run: a resumed run must match the checkpoint on every one of them (compared as
# strings, so a path given the same way matches and None matches None).
RESUME_KEYS = ("arch", "width", "num_classes", "init", "train_mode", "loss", "lr", "wd", "epochs", "batch_size",
               "seed", "curriculum", "guidance_levels", "level_starts", "curriculum_epoch", "adaptive_choice",
               "real_sample_size", "downsample_ratio", "tail_fraction", "crop_size", "resize_size", "train_list",
               "synthetic_root", "curriculum_val_list", "split_convention")


def config_from_args(args: argparse.Namespace) -> LTConfig:
    """The run's settings from parsed flags."""
    return LTConfig(**{f.name: getattr(args, f.name) for f in fields(LTConfig)})


def _plain_config(config: LTConfig, num_classes: int) -> dict:
    """The settings as plain data for the checkpoint (``weights_only`` loading), with the resolved class count."""
    plain = {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
             for k, v in asdict(config).items()}
    plain["num_classes"] = num_classes
    return plain


def warn_if_random_start(config: LTConfig) -> None:
    """The curriculum fine-tunes a trained model (spec §6): say so loudly when no starting weights are given."""
    if config.init is None and config.torchvision_weights is None and not config.resume:
        logger.warning("no --init: fine-tuning from RANDOM weights. The curriculum starts from a model trained "
                       "on the real long-tailed data; pass --init BASELINE/checkpoints/best.pt "
                       "(curriculum/ImageNet_LT/train_baseline.py)")


def make_schedule(config: LTConfig) -> curriculum.Schedule:
    """The run's ``discl.curriculum`` schedule; explicit start epochs apply to ``fixed`` only."""
    starts = config.level_starts if config.curriculum == "fixed" and config.level_starts else None
    if starts is not None:
        # the fixed schedule runs the levels in ascending order; one starting at or after the curriculum
        # epoch would be cut to zero length without a word (real data follows the curriculum anyway)
        order = sorted(set(config.guidance_levels))
        cut = [f"{level} (start {start})" for level, start in zip(order, starts)
               if level != REAL_GUIDANCE and start >= config.curriculum_epoch]
        if cut:
            raise InputError(None, f"--level-starts {' '.join(map(str, starts))}: guidance level(s) "
                                   f"{', '.join(cut)} would never run before --curriculum-epoch "
                                   f"{config.curriculum_epoch}; start them earlier or raise --curriculum-epoch")
    try:
        return curriculum.make_schedule(config.curriculum, config.guidance_levels, config.curriculum_epoch,
                                        seed=config.seed, choose=config.adaptive_choice, starts=starts)
    except ValueError as err:
        raise InputError(None, f"curriculum: {err} (see --guidance-levels, --level-starts, "
                               "--curriculum-epoch)") from None


def _loader(rows: Sequence[Row], transform, batch_size: int, config: LTConfig, seeds: Sequence[int] | None = None):
    """A loader over ``rows`` in their order; ``seeds``: per-row augmentation seeds (training)."""
    return torch.utils.data.DataLoader(RowDataset(rows, transform, seeds), batch_size=batch_size, shuffle=False,
                                       num_workers=config.workers, pin_memory=torch.cuda.is_available())


def shuffled_share(num_rows: int, seed: int, rank: int, world_size: int) -> list[int]:
    """This rank's indices of a seeded permutation, padded so every rank gets as many (DDP steps in lockstep)."""
    order = torch.randperm(num_rows, generator=torch.Generator().manual_seed(seed)).tolist()
    padding = (-num_rows) % world_size
    order += order[:padding]
    return distributed.shard_indices(order, rank, world_size)


def _enter_training(model: torch.nn.Module, train_mode: str) -> None:
    model.train()
    if train_mode == "onlyfc":
        # a frozen backbone keeps its batch-norm statistics too
        for name, module in checkpoint.unwrap(model).named_children():
            if name != "fc":
                module.eval()


def train_pass(model, optimizer, rows: Sequence[Row], transform, log_prior: torch.Tensor, config: LTConfig,
               info: distributed.DistInfo, step: int, total_steps: int, seed: int, desc: str) -> tuple[int, dict]:
    """One pass over ``rows`` (this rank's share, shuffled by ``seed``); returns the new step and loss/accuracy."""
    share = [rows[i] for i in shuffled_share(len(rows), seed, info.rank, info.world_size)]
    # one augmentation seed per position in the (padded) global order, so N processes see the same images,
    # augmented the same way, in the same global batches as one process
    positions = distributed.shard_indices(list(range(len(rows) + (-len(rows)) % info.world_size)), info.rank,
                                          info.world_size)
    augment_seeds = [stable_seed("discl-lt-augment", seed, p) for p in positions]
    loader = _loader(share, transform, config.batch_size // info.world_size, config, augment_seeds)
    _enter_training(model, config.train_mode)
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels, _ in tqdm(loader, desc=desc, disable=not info.is_main, leave=False):
        images, labels = images.to(info.device), labels.to(info.device)
        set_lr(optimizer, cosine_annealing_lr(step, config.lr, total_steps))
        logits = model(images)
        loss = training_loss(config.loss, logits, labels, log_prior)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        total_loss += loss.item() * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
    totals = np.sum(distributed.all_gather_objects([total_loss, correct, seen]), axis=0)
    return step, {"loss": totals[0] / max(totals[2], 1), "accuracy": 100.0 * totals[1] / max(totals[2], 1)}


@torch.no_grad()
def predict(model, rows: Sequence[Row], transform, config: LTConfig,
            info: distributed.DistInfo) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and softmax probability of the true class for every row (all ranks' shares gathered)."""
    mine = distributed.shard_indices(list(range(len(rows))), info.rank, info.world_size)
    # the bare model: ranks hold different numbers of batches, and a DDP forward would wait for the others
    model = checkpoint.unwrap(model)
    model.eval()
    predictions, true_probs = [], []
    loader = _loader([rows[i] for i in mine], transform, config.eval_batch_size, config)
    for images, labels, _ in loader:
        probs = torch.softmax(model(images.to(info.device)).float(), dim=1).cpu()
        predictions.append(probs.argmax(1))
        true_probs.append(probs.gather(1, labels.view(-1, 1)).squeeze(1))
    local = (mine, torch.cat(predictions).tolist() if mine else [], torch.cat(true_probs).tolist() if mine else [])
    pred, prob = np.empty(len(rows), np.int64), np.empty(len(rows))
    for indices, p, q in distributed.all_gather_objects(local):
        pred[indices], prob[indices] = p, q
    return pred, prob


def run_epoch(model, optimizer, schedule: curriculum.Schedule, data: LTData, transforms_, log_prior, config: LTConfig,
              info: distributed.DistInfo, epoch: int, step: int, total_steps: int) -> tuple[int, int, dict]:
    """Drive the schedule through one epoch (a probe/real-sample/probe round first when adaptive)."""
    train_tf, test_tf = transforms_
    while True:
        stage = schedule.next_stage(epoch, 1)
        if stage.kind == curriculum.PROBE:
            _, probs = predict(model, data.curriculum_val, test_tf, config, info)
            schedule.observe_probe(probs, [r.guidance for r in data.curriculum_val])
            continue
        rng = derived_rng("discl-lt-epoch", config.seed, epoch, stage.kind)
        if stage.kind == curriculum.REAL_SAMPLE:
            rows = real_sample_rows(data.train, config.real_sample_size, rng)
        else:
            try:
                rows = build_epoch_rows(data.train, data.synthetic, data.tail_classes, stage.level, rng,
                                        config.downsample_ratio, config.tail_fraction)
            except ValueError as err:
                raise InputError(config.train_list or Path(config.data_root) / imagenet_lt.LIST_FILES["train"],
                                 str(err)) from None
        seed = stable_seed("discl-lt-shuffle", config.seed, epoch, stage.kind)
        step, result = train_pass(model, optimizer, rows, train_tf, log_prior, config, info, step, total_steps,
                                  seed, f"epoch {epoch} {stage.kind} g{stage.level}")
        if stage.kind == curriculum.LEVEL:
            per_level = Counter(r.guidance for r in rows)
            result.update(level=stage.level, images=len(rows),
                          guidance_counts=format_level_map(per_level))
            return stage.level, step, result


def format_level_map(values: dict) -> str:
    """``{10: 25, 100: 91}`` → ``"10:25 100:91"`` (a stats.tsv cell without quoting)."""
    return " ".join(f"{int(g)}:{values[g]}" for g in sorted(values))


def parse_level_map(text: str) -> dict[int, float]:
    """Inverse of ``format_level_map``."""
    return {int(g): float(v) for g, v in (item.split(":") for item in str(text).split())}


def steps_per_pass(num_rows: int, batch_size: int, world_size: int) -> int:
    """Optimiser steps of one pass over ``num_rows`` rows: each rank's padded share in per-rank batches."""
    return math.ceil(math.ceil(num_rows / world_size) / (batch_size // world_size))


def epoch_size(num_non_tail: int, num_tail: int, downsample_ratio: float, tail_fraction: float | None) -> int:
    """Images per epoch of ``build_epoch_rows``: the same at every level (the tail is topped up to one count)."""
    kept = int(downsample_ratio * num_non_tail) if downsample_ratio < 1 else num_non_tail
    if tail_fraction is None:
        return kept + num_tail
    return kept + max(num_tail, tail_target(kept, tail_fraction))


def _nan_to_none(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def train(config: LTConfig) -> dict | None:
    """Train (or resume) one run; the main process returns the summary written to ``OUTPUT/summary.json``."""
    info = distributed.init_distributed(config.device)
    try:
        return _train(config, info)
    finally:
        distributed.cleanup()


def _train(config: LTConfig, info: distributed.DistInfo) -> dict:
    output = Path(config.output_dir)
    last = output / CHECKPOINTS / checkpoint.LAST
    checkpoint.check_fresh_output(last, config.resume)
    # the baseline never switches, so its curriculum epoch does not matter
    if config.curriculum != "none" and config.curriculum_epoch > config.epochs:
        raise InputError(None, f"--curriculum-epoch {config.curriculum_epoch} is larger than --epochs {config.epochs}")
    if config.batch_size % info.world_size:
        raise InputError(None, f"--batch-size {config.batch_size} is not divisible by {info.world_size} processes")
    if config.train_mode == "onlyfc" and config.init is None and config.torchvision_weights is None:
        raise InputError(None, "--train-mode onlyfc needs --init (or --torchvision-weights): training only the "
                               "classifier on a randomly initialised, frozen backbone is never intended")
    seed_everything(config.seed)
    data = load_data(config)
    schedule = make_schedule(config)
    model = resnet.build_model(config.arch, data.num_classes, config.width, config.torchvision_weights)
    if config.init is not None and not config.resume:  # a resumed run takes its weights from the checkpoint
        resnet.load_weights(model, config.init)
    parameters = resnet.set_train_mode(model, config.train_mode)
    model = distributed.wrap_ddp(model.to(info.device), info)
    optimizer = torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.wd)
    log_prior = log_class_prior(data.counts).to(info.device)
    transforms_ = make_transforms(config.crop_size, config.resize_size)
    plain = _plain_config(config, data.num_classes)

    num_tail = sum(r.label in data.tail_classes for r in data.train)
    size = epoch_size(len(data.train) - num_tail, num_tail, config.downsample_ratio, config.tail_fraction)
    # the adaptive schedule adds one pass over a real sample to each curriculum epoch
    rounds = min(config.curriculum_epoch, config.epochs) if schedule.is_adaptive else 0
    sample = min(config.real_sample_size, len(data.train))
    total_steps = (steps_per_pass(size, config.batch_size, info.world_size) * config.epochs
                   + steps_per_pass(sample, config.batch_size, info.world_size) * rounds)
    start_epoch, step, best = 0, 0, None
    if config.resume:
        state = checkpoint.load_checkpoint(last)
        changed = [k for k in RESUME_KEYS if str(state["args"].get(k)) != str(plain[k])]
        if changed:
            raise InputError(last, "settings differ from the checkpoint's: " + ", ".join(
                f"{k} {state['args'].get(k)!r} → {plain[k]!r}" for k in changed))
        saved_steps = state.get("trainer", {}).get("total_steps")
        if saved_steps != total_steps:
            raise InputError(last, f"the run has {total_steps} steps, the checkpoint's had {saved_steps}: the "
                                   "training data changed (number of real rows) or the number of processes did")
        checkpoint.restore(state, model, optimizer, schedule)
        start_epoch, step, best = state["epoch"] + 1, state["step"], state["best"]
        if info.is_main:
            stats.truncate_stats(output / "stats.tsv", state["epoch"])
        logger.info("resumed from %s after epoch %d (step %d)", last, state["epoch"], step)

    summary = _read_summary(output) if config.resume else {}
    for epoch in range(start_epoch, config.epochs):
        started = time.time()
        level, step, trained = run_epoch(model, optimizer, schedule, data, transforms_, log_prior, config, info,
                                         epoch, step, total_steps)
        row = {"epoch": epoch, "level": level, "lr": optimizer.param_groups[0]["lr"], "step": step,
               "train_images": trained["images"], "train_guidance_counts": trained["guidance_counts"],
               "train_loss": trained["loss"], "train_accuracy": trained["accuracy"]}
        for split in ("val", "test"):
            rows = getattr(data, split)
            predictions, _ = predict(model, rows, transforms_[1], config, info)
            for name, value in lt_metrics.group_accuracy(predictions, [r.label for r in rows], data.groups).items():
                row[f"{split}_{name}"] = value
        if schedule.is_adaptive and epoch < config.curriculum_epoch and schedule.last_scores:
            row["adaptive_scores"] = format_level_map({g: round(v, 6) for g, v in schedule.last_scores.items()})
        row["seconds"] = round(time.time() - started, 2)
        is_best = best is None or row["val_overall"] > best["val_overall"]
        if is_best:
            best = {k: v for k, v in row.items() if k == "epoch" or k.startswith(("val_", "test_"))}
        if info.is_main:
            logger.info("epoch %d (guidance %d): train loss %.4f | val %.2f (many %.2f, medium %.2f, few %.2f) | "
                        "test %.2f", epoch, level, row["train_loss"], row["val_overall"], row["val_many"],
                        row["val_medium"], row["val_few"], row["test_overall"])
            frame = stats.append_stats(output / "stats.tsv", row)
            state = checkpoint.training_state(model, optimizer, epoch=epoch, step=step,
                                              schedule_state=schedule.state_dict(),
                                              trainer_state={"total_steps": total_steps}, args=plain, best=best)
            checkpoint.save_checkpoint(output / CHECKPOINTS, state, is_best)
            summary = _summary(frame, best, config)
            atomic_write_json(output / "summary.json", summary)
            if config.plots:
                _plot(frame, output, config)
        distributed.barrier()
        if config.stop_after_epoch is not None and epoch >= config.stop_after_epoch:
            logger.info("stopping after epoch %d as asked; continue with --resume", epoch)
            break
    return summary if info.is_main else None


def _summary(frame, best: dict, config: LTConfig) -> dict:
    """Best epoch by validation top-1 with its test numbers, plus the last epoch's."""
    def split_metrics(record: dict, split: str) -> dict:
        return {m: _nan_to_none(float(record[f"{split}_{m}"])) for m in lt_metrics.METRICS}

    final = frame.iloc[-1].to_dict()
    return {"selection": "val_overall", "split_convention": config.split_convention,
            "epochs_done": int(final["epoch"]) + 1, "epochs": config.epochs,
            "best_epoch": int(best["epoch"]), "best_val": split_metrics(best, "val"),
            "best_test": split_metrics(best, "test"), "last_epoch": int(final["epoch"]),
            "last_val": split_metrics(final, "val"), "last_test": split_metrics(final, "test")}


def _read_summary(output: Path) -> dict:
    path = output / "summary.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _plot(frame, output: Path, config: LTConfig) -> None:
    """Per-split accuracy curves (many / medium / few / overall) and the curriculum timeline."""
    from discl.plots import training as plots

    best = int(frame.loc[frame["val_overall"].idxmax(), "epoch"])
    for split in ("val", "test"):
        columns = {m: f"{split}_{m}" for m in lt_metrics.METRICS}
        plots.plot_metric_curves(frame, columns, output / f"accuracy_{split}.png", ylabel="top-1 accuracy (%)",
                                 best_epoch=best, title=f"ImageNet-LT {split} ({config.curriculum}, {config.loss})")
    stages = []
    for epoch, level in zip(frame["epoch"], frame["level"]):
        if config.curriculum == "adaptive" and epoch < config.curriculum_epoch:
            # an adaptive epoch is a round: a pass over a real sample, then one over the chosen level
            stages += [(epoch, epoch + 0.5, REAL_GUIDANCE, curriculum.REAL_SAMPLE),
                       (epoch + 0.5, epoch + 1, level, curriculum.LEVEL)]
        else:
            stages.append((epoch, epoch + 1, level, curriculum.LEVEL))
    plots.plot_curriculum_timeline(pd.DataFrame(stages, columns=["start_epoch", "end_epoch", "level", "kind"]),
                                   output / "curriculum.png", title=f"curriculum: {config.curriculum}")


def read_epoch_table(output: str | os.PathLike) -> list[dict]:
    """The rows of ``OUTPUT/stats.tsv`` as dicts (for printing)."""
    return stats.read_stats(Path(output) / "stats.tsv").to_dict("records")


def report(output: str | os.PathLike) -> str:
    """The per-epoch many / medium / few / overall table and the selected epoch, as printed by the scripts."""
    summary = _read_summary(Path(output))
    return lt_metrics.format_table(read_epoch_table(output), ("val", "test")) + "\n" + lt_metrics.format_best(summary)
