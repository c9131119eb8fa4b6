"""The training loop's settings: one dataclass whose fields (default, help, paper reference) drive the parser.

The defaults are the paper's for FLYP on iWildCam (docs/train-iwildcam.md); a task adapter overrides the
few that differ for its trainer (``Task.loop_defaults``, e.g. the CE trainer's 65 epochs and tail-topup stage
data, docs/train-imagenet-lt.md), once, in its own module.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from discl.config import AT_LEAST_ONE, NON_NEGATIVE, Range, check_ranges, option
from discl.curriculum import ADAPTIVE_CHOICES, SCHEDULES
from discl.errors import InputError
from discl.training.stage_data import STAGE_DATA
from discl.training.precision import COMPILE_BACKENDS, PRECISIONS

SPLIT_CONVENTIONS = ("reference", "standard")
# Where a default comes from (shown in --help as "[paper: ...]").
FLYP = "FLYP on iWildCam"
LT = "ImageNet-LT after LDMLR"
PER_TRAINER = "FLYP on iWildCam; --trainer ce defaults to ImageNet-LT's"


@dataclass
class LoopConfig:
    """Every setting of the training loop (both trainers); stored in checkpoints as a plain dict."""

    output_dir: Path = option(help="run folder: stats.tsv, curriculum.tsv, summary.json, checkpoints/, figures")
    train_table: Path | None = option(
        None, "training table: the builder's train.csv (or ImageNet-LT's train.txt list); default: the dataset's "
              "real training images", aliases=("--train-list",))
    val_table: Path | None = option(
        None, "curriculum-validation table (validate.csv / validate.txt): the adaptive schedule's probe rows",
        aliases=("--curriculum-val-list",))
    synthetic_root: Path | None = option(
        None, "root of the synthetic paths of a .txt list (default: data_roots.json beside the list)")

    epochs: int = option(20, "training epochs; an epoch is ⌊rows of a real-only epoch / batch⌋ steps",
                         paper=PER_TRAINER)
    batch_size: int = option(256, "global batch over all processes", paper=PER_TRAINER)
    eval_batch_size: int = option(256, "batch of evaluation and probe passes (per process)")
    workers: int = option(4, "data-loader worker processes per rank")
    seed: int = option(0, "seed of the stage data, shuffling, augmentation and initialisation")
    device: str | None = option(None, "cuda / cpu (default: cuda when available)")

    curriculum: str = option("none", "guidance schedule (none: the FLYP baseline; the paper's iWildCam runs use "
                                     "adaptive, --trainer ce defaults to ImageNet-LT's fixed; mixed: every level "
                                     "at once, single: one level, then real)", choices=SCHEDULES)
    guidance_levels: list[int] | None = option(
        None, "guidance levels of the schedule, 100 = real (default: every level in the training table)")
    level_starts: list[int] | None = option(
        None, "fixed schedule: start epoch of each level in ascending order (default or no values: equal shares "
              "of the curriculum)")
    curriculum_epoch: int = option(15, "real data only from this epoch on", paper=PER_TRAINER)
    adaptive_choice: str = option("argmax", "adaptive: largest mean progress (paper) or a random level (ablation)",
                                  choices=ADAPTIVE_CHOICES, paper=FLYP)
    real_sample_size: int = option(30000, "adaptive: real rows drawn afresh for each round's real pass",
                                   paper=FLYP)
    stage_data: str = option("replace-hard", "stage-data recipe: synthetic rows replace the hard images' real "
                                             "rows, a down-sampled epoch with the tail topped up, or text-only: "
                                             "guidance-0 images added to the real data (the ALIA-style baseline)",
                             choices=STAGE_DATA, paper=PER_TRAINER)
    downsample_ratio: float = option(0.3, "tail-topup: share of the real non-tail rows drawn afresh each pass",
                                     paper=LT)
    tail_fraction: float | None = option(
        0.136, "tail-topup: the tail's share of a pass, topped up with synthetic (or repeated real) tail rows; "
               "'none' keeps the real tail as it is", paper=LT)

    eval_splits: list[str] | None = option(None, "evaluation splits (default: the dataset's; its selection split "
                                                 "is always evaluated)")
    split_convention: str = option("reference", "many/medium/few cut: reference ≥100 / 20–99 / <20, standard "
                                                ">100 / 20–100 / <20", choices=SPLIT_CONVENTIONS, paper=LT)
    resume: bool = option(False, "continue from OUTPUT_DIR/checkpoints/last.pt (same settings)")
    stop_after_epoch: int | None = option(None, "leave after finishing this epoch (0-based); continue with --resume")
    plots: bool = option(True, "write the figures at the end of the run")
    tensorboard: bool = option(True, "log per-step loss and lr, per-epoch metrics, the chosen guidance levels and "
                                     "adaptive scores to OUTPUT_DIR/tensorboard/")
    wandb_project: str | None = option(None, "also log to this Weights & Biases project, when wandb is installed")
    jpeg_draft: bool = option(True, "decode training JPEGs at reduced size (≥ the model input) where the task "
                                    "allows it; --no-jpeg-draft decodes them fully")
    precision: str = option("fp32", "training step precision: fp32, or autocast to bf16 / fp16 (fp16 with a gradient "
                                    "scaler); weights, optimiser state and evaluation stay fp32 (docs/performance.md)",
                            choices=PRECISIONS)
    accum_steps: int = option(1, "cut each process's share of the global batch into this many micro-batches whose "
                                 "gradients add up (same global batch and data order, less memory; "
                                 "docs/performance.md)")
    compile: bool = option(False, "torch.compile the trained model's forward in place (the first steps compile, "
                                   "checkpoints keep their keys)")
    compile_backend: str = option("inductor", "torch.compile backend of --compile: inductor generates kernels "
                                              "(Triton on GPUs); aot_eager captures the graph and its backward "
                                              "without generating code (docs/performance.md)",
                                  choices=COMPILE_BACKENDS)

    def check(self) -> None:
        """Values the parser cannot check alone (``InputError`` naming the flag), before anything is written."""
        check_ranges(self, LOOP_RANGES)
        if self.stage_data == "text-only" and self.curriculum != "none":
            raise InputError("--stage-data", "text-only adds guidance-0 images to the real data in every pass; it "
                                             f"runs with --curriculum none, not {self.curriculum}")
        if Path(self.output_dir).exists() and not Path(self.output_dir).is_dir():
            raise InputError(self.output_dir, "--output-dir is a file, not a folder")
        # the baseline never switches, so its curriculum epoch does not matter
        if self.curriculum != "none" and self.curriculum_epoch > self.epochs:
            raise InputError(None, f"--curriculum-epoch {self.curriculum_epoch} is larger than --epochs {self.epochs}")
        if self.batch_size % self.accum_steps:  # the processes' share is checked when their number is known
            raise InputError("--accum-steps", f"--batch-size {self.batch_size} is not divisible into 1 process(es) × "
                                              f"{self.accum_steps} equal micro-batches")


# The numeric flags of the loop (every one of them) and their ranges.
LOOP_RANGES = {"epochs": AT_LEAST_ONE, "batch_size": AT_LEAST_ONE, "eval_batch_size": AT_LEAST_ONE,
               "workers": NON_NEGATIVE, "seed": Range(0, 2 ** 63, high_open=True, text="in [0, 2**63)"),
               "guidance_levels": Range(0, 100), "level_starts": NON_NEGATIVE, "curriculum_epoch": NON_NEGATIVE,
               "real_sample_size": AT_LEAST_ONE,
               "downsample_ratio": Range(0, 1, low_open=True), "tail_fraction": Range(0, 1, high_open=True),
               "stop_after_epoch": NON_NEGATIVE, "accum_steps": AT_LEAST_ONE}


# Settings a resumed run must share with its checkpoint, or it would not continue the same run.
RESUME_KEYS = ("train_table", "val_table", "synthetic_root", "epochs", "batch_size", "seed", "curriculum",
               "guidance_levels", "level_starts", "curriculum_epoch", "adaptive_choice", "real_sample_size",
               "stage_data", "downsample_ratio", "tail_fraction", "eval_splits", "split_convention", "jpeg_draft",
               "precision", "train_table_sha256", "val_table_sha256")
# Keys a checkpoint written before they were recorded lacks: such a checkpoint resumes without comparing them.
LATER_RESUME_KEYS = ("precision", "train_table_sha256", "val_table_sha256")


def fraction_or_none(text: str) -> float | None:
    """``--tail-fraction``: a float, or ``none``."""
    return None if text.lower() == "none" else float(text)


# Flags whose values need more than the field's plain type.
FLAG_TYPES: dict[str, Callable[[str], object]] = {"tail_fraction": fraction_or_none}


def set_flag_types(parser: argparse.ArgumentParser) -> None:
    """Give the flags of ``FLAG_TYPES`` their parsing functions (``discl.config`` knows plain types only)."""
    for action in parser._actions:  # argparse has no public way to change an added flag's type
        if action.dest in FLAG_TYPES:
            action.type = FLAG_TYPES[action.dest]
