"""The command line of every training script: dataset flags + the loop's flags + the task's flags, then train.

``curriculum/train.py`` takes ``--trainer flyp|ce --dataset NAME``; the per-dataset scripts
(``curriculum/iWildCam/train.py``, ``curriculum/ImageNet_LT/train.py`` …) call :func:`main` with their
trainer and dataset as defaults. Each default is written once: the loop's in ``LoopConfig``, a trainer's
differences in its ``Task.loop_defaults``, a script's own differences in the ``defaults`` it passes.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from typing import Any, Sequence

from discl.cli import setup_logging
from discl.config import add_arguments, from_args
from discl.datasets import Dataset, dataset_parser
from discl.datasets import from_args as dataset_from_args
from discl.runrecord import RunRecord
from discl.training.config import LoopConfig, set_flag_types
from discl.training.task import Task

TASKS = {"flyp": "discl.flyp:FlypTask", "ce": "discl.lt:CETask"}
TRAINERS = tuple(TASKS)


def task_class(trainer: str) -> type[Task]:
    """The task adapter of ``--trainer``."""
    module, name = TASKS[trainer].split(":")
    return getattr(importlib.import_module(module), name)


def get_args_parser(trainer: str, default_dataset: str | None = None, defaults: dict[str, Any] | None = None,
                    description: str | None = None, root_aliases: Sequence[str] = (),
                    trainer_flag: bool = False) -> argparse.ArgumentParser:
    """All flags of a training run with ``trainer``'s defaults (``defaults`` overrides loop or task defaults)."""
    task = task_class(trainer)
    defaults = {**task.loop_defaults, **(defaults or {})}
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[dataset_parser(required_root=False, default=default_dataset)])
    if trainer_flag:
        parser.add_argument("--trainer", choices=TRAINERS, required=True,
                            help="flyp: CLIP contrastive fine-tuning, zero-shot head; ce: a classifier with CE or "
                                 "Balanced Softmax")
    for alias in root_aliases:  # a per-dataset script's old spelling of --data-root
        parser.add_argument(alias, dest="data_root", help=argparse.SUPPRESS)
    add_arguments(parser.add_argument_group("training loop"), LoopConfig, defaults=defaults)
    add_arguments(parser.add_argument_group(f"{trainer} task"), task.options_class, defaults=defaults)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, third-party INFO messages too")
    set_flag_types(parser)
    return parser


def _trainer_of(argv: Sequence[str] | None, description: str | None) -> str:
    """``--trainer`` read ahead of the full parser (its defaults depend on it)."""
    ahead = argparse.ArgumentParser(add_help=False)
    ahead.add_argument("--trainer", choices=TRAINERS)
    known, _ = ahead.parse_known_args(argv)
    if known.trainer is None:  # prints the usage (or the help with -h) and exits
        parser = argparse.ArgumentParser(description=description,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--trainer", choices=TRAINERS, required=True,
                            help="the task; see --trainer NAME --help for all flags")
        parser.parse_args(argv)
    return known.trainer


def objects_from_args(args: argparse.Namespace, trainer: str) -> tuple[Dataset, LoopConfig, Task]:
    """The dataset, loop settings and task of parsed flags (what ``train`` takes)."""
    dataset = dataset_from_args(args, split_convention=args.split_convention)
    task = task_class(trainer)
    return dataset, from_args(LoopConfig, args), task(from_args(task.options_class, args))


def main(argv: Sequence[str] | None = None, default_dataset: str | None = None, trainer: str | None = None,
         defaults: dict[str, Any] | None = None, description: str | None = None,
         root_aliases: Sequence[str] = ()) -> int:
    """Parse, train (or resume), and print the per-epoch report (rank 0)."""
    from discl.training.loop import train
    from discl.training.outputs import report

    trainer_flag = trainer is None
    trainer = trainer or _trainer_of(argv, description)
    parser = get_args_parser(trainer, default_dataset, defaults, description, root_aliases, trainer_flag)
    args = parser.parse_args(argv)
    if args.data_root is None:
        parser.error("the following arguments are required: --data-root")
    setup_logging(args.verbose)
    logging.getLogger("PIL").setLevel(logging.WARNING)
    with RunRecord(f"train-{trainer}", argv):
        summary = train(*objects_from_args(args, trainer))
    if summary is not None:  # rank 0 reports
        print(report(args.output_dir))
    return 0
