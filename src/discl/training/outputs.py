"""What a run leaves behind besides checkpoints: the summary, the printed report, figures, optional trackers.

``stats.tsv`` (one row per epoch) and ``curriculum.tsv`` (one row per stage) are written by the loop through
``discl.stats``; everything here is derived from them.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from discl.errors import InputError, decoding
from discl.stats import read_stats

log = logging.getLogger(__name__)


# The run's own logs and the integer column their rows are keyed by.
RUN_TABLES = {"stats.tsv": "epoch", "curriculum.tsv": "stage"}


def read_run_table(path: str | os.PathLike, key: str) -> pd.DataFrame:
    """``stats.tsv`` / ``curriculum.tsv`` so far; one that is not such a log is a one-line ``InputError``."""
    try:
        with decoding(path):
            frame = read_stats(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise InputError(path, f"not a tab-separated log of this run ({reason}); restore or delete it") from None
    if not isinstance(frame.index, pd.RangeIndex):  # pandas makes an index of the cells beyond the header's
        raise InputError(path, "not a tab-separated log of this run (rows have more cells than the header); "
                               "restore or delete it")
    if not frame.empty and (key not in frame.columns or not pd.api.types.is_integer_dtype(frame[key])):
        raise InputError(path, "not a log of this run (no whole numbers in its key column); restore or delete it",
                         column=key)
    return frame


def check_run_tables(out: str | os.PathLike, last_epoch: int | None = None) -> None:
    """The run's logs can be read and appended to, and ``stats.tsv`` has a row for every epoch up to a resumed
    checkpoint's ``last_epoch`` (checked before a run writes anything)."""
    for name, key in RUN_TABLES.items():
        frame = read_run_table(Path(out) / name, key)
        if name == "stats.tsv" and last_epoch is not None:
            done = set(frame[key].tolist()) if not frame.empty else set()
            missing = sorted(set(range(last_epoch + 1)) - done)
            if missing:
                raise InputError(Path(out) / name, f"has no row for epoch {missing[0]}, which the checkpoint "
                                                   f"finished (epochs 0..{last_epoch}); restore it", column=key)


def format_level_map(values: dict) -> str:
    """``{10: 25, 100: 91}`` → ``"10:25 100:91"`` (a stats.tsv cell without quoting)."""
    return " ".join(f"{int(g)}:{values[g]}" for g in sorted(values))


def parse_level_map(text: str) -> dict[int, float]:
    """Inverse of ``format_level_map``."""
    return {int(g): float(v) for g, v in (item.split(":") for item in str(text).split())}


def _plain(value: Any) -> Any:
    """NaN → None (``summary.json`` stays strict JSON), numpy scalars → Python numbers."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def records(frame: pd.DataFrame) -> list[dict]:
    """A stats table as JSON-ready records."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def split_metrics(row: dict, splits: Sequence[str], metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{split: {metric: value}}`` from a stats row's ``{split}_{metric}`` columns."""
    return {s: {m: _plain(row.get(f"{s}_{m}", math.nan)) for m in metrics} for s in splits}


def build_summary(out: Path, *, run: dict, splits: Sequence[str], metrics: Sequence[str],
                  best_epoch: int | None) -> dict:
    """The run in one JSON object: the epoch selected on the validation split with its metrics on every split,
    the last epoch's, every epoch's row and every stage."""
    stats, stages = (read_run_table(out / name, key) for name, key in RUN_TABLES.items())
    rows = records(stats)
    by_epoch = {int(r["epoch"]): r for r in rows}
    last = rows[-1] if rows else None
    return {**run,
            "best_epoch": best_epoch,
            "best": None if best_epoch is None else split_metrics(by_epoch[best_epoch], splits, metrics),
            "last_epoch": None if last is None else int(last["epoch"]),
            "last": None if last is None else split_metrics(last, splits, metrics),
            "epochs_done": len(rows), "epochs": rows, "stages": records(stages)}


def read_summary(out: str | os.PathLike) -> dict:
    """``OUT/summary.json`` (empty when the run has not finished an epoch)."""
    path = Path(out) / "summary.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _formats(rows: Sequence[dict], splits: Sequence[str], metrics: Sequence[str]) -> dict[str, str]:
    """Four decimals for a dataset's fractions (WILDS' metrics), two for its percentages (any value above 1)."""
    percent = any(abs(row.get(f"{s}_{m}") or 0) > 1 for row in rows for s in splits for m in metrics)
    return {m: ".2f" if percent else ".4f" for m in metrics}


def _cell(value: Any, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt) if isinstance(value, float) else str(value)


def report(out: str | os.PathLike) -> str:
    """The per-epoch metrics of every split, the adaptive choices, and the selected epoch, as scripts print them."""
    summary = read_summary(out)
    if not summary:
        return "no finished epoch yet"
    splits, metrics = summary["splits"], summary["metric_names"]
    formats = _formats(summary["epochs"], splits, metrics)
    header = ["epoch", "level"] + [f"{s}:{m}" for s in splits for m in metrics]
    lines = ["  ".join(f"{h:>12}" if i > 1 else f"{h:>6}" for i, h in enumerate(header))]
    for row in summary["epochs"]:
        mark = "*" if row["epoch"] == summary["best_epoch"] else " "
        cells = [f"{row['epoch']:>5}{mark}", f"{row['guidance']:>6}"]
        cells += [f"{_cell(row.get(f'{s}_{m}'), formats[m]):>12}" for s in splits for m in metrics]
        lines.append("  ".join(cells))
    chosen = [s for s in summary["stages"] if s.get("scores")]
    if chosen:
        lines.append("adaptive choices (mean progress of p(true class) per guidance level → chosen level):")
        lines += [f"  epoch {s['start_epoch']:7.2f}: guidance {s['level']:>3}   {s['scores'].replace(';', '  ')}"
                  for s in chosen]
    selection = summary["selection"]
    if summary["best_epoch"] is None:
        lines.append(f"no epoch selected ({selection['split']} {selection['metric']} was never a number)")
    else:
        best = summary["best"]
        value = _cell(best[selection["split"]][selection["metric"]], formats[selection["metric"]])
        others = "; ".join(f"{s}: " + ", ".join(f"{m} {_cell(v, formats[m])}" for m, v in best[s].items())
                           for s in splits)
        lines.append(f"selected epoch {summary['best_epoch']} (best {selection['split']} {selection['metric']} "
                     f"{value}): {others}")
    return "\n".join(lines)


def write_figures(out: Path, *, steps_per_epoch: int, last_step: int, splits: Sequence[str],
                  metrics: Sequence[str], selection_metric: str, titles: dict[str, str], best_epoch: int | None,
                  curriculum: str) -> None:
    """Curriculum timeline, the selection metric of every split, and every metric of each split, per epoch."""
    from discl.plots.training import plot_curriculum_timeline, plot_metric_curves

    stages = read_run_table(out / "curriculum.tsv", "stage")
    if len(stages):
        ends = list(stages["start_step"].iloc[1:]) + [last_step]
        stages = stages.assign(end_epoch=[e / steps_per_epoch for e in ends])
        plot_curriculum_timeline(stages, out / "curriculum_timeline.png", title=f"curriculum: {curriculum}")
    stats = read_run_table(out / "stats.tsv", "epoch")
    if stats.empty:
        return
    plot_metric_curves(stats, {titles.get(s, s): f"{s}_{selection_metric}" for s in splits},
                       out / f"{selection_metric}_curves.png", ylabel=selection_metric, best_epoch=best_epoch)
    for split in splits:
        plot_metric_curves(stats, {m: f"{split}_{m}" for m in metrics}, out / f"metrics_{split}.png",
                           ylabel="metric", best_epoch=best_epoch, title=titles.get(split, split))


def remove_old_events(out: str | os.PathLike) -> list[Path]:
    """Delete the TensorBoard event files a killed run left before its first checkpoint (a fresh start over it):
    its curves would be drawn beside the new run's. Returns what was removed."""
    removed = sorted((Path(out) / "tensorboard").glob("events.out.tfevents.*"))
    for path in removed:
        path.unlink()
    if removed:
        log.info("a fresh start: removed %d TensorBoard event file(s) of the earlier run in %s", len(removed),
                 Path(out) / "tensorboard")
    return removed


class ScalarLoggers:
    """TensorBoard (``OUT/tensorboard``) and optional Weights & Biases logging, on rank 0.

    Per step (x = optimiser step): ``train/loss``, ``train/lr``, ``train/guidance``; per stage: ``curriculum/level``
    and, for an adaptive choice, ``curriculum/score_<level>``; per epoch (x = epoch): every number of the
    ``stats.tsv`` row under ``epoch/…`` and ``<split>/<metric>``. A resumed run drops the events after its
    checkpoint's step (``purge_step``), so redone steps are not drawn twice (epoch numbers stay below any step
    after the checkpoint, so the per-epoch events survive). A missing package is a warning.
    """

    def __init__(self, out: Path, tensorboard: bool, wandb_project: str | None, config: dict,
                 enabled: bool = True, purge_step: int | None = None):
        self.tensorboard = self.wandb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(out / "tensorboard"), purge_step=purge_step)
            except ImportError:
                log.warning("--tensorboard: the tensorboard package is not installed; logging to stats.tsv only")
        if enabled and wandb_project:
            try:
                import wandb

                self.wandb = wandb.init(project=wandb_project, config=config, dir=str(out))
            except ImportError:
                log.warning("--wandb-project: the wandb package is not installed; logging to stats.tsv only")

    def log_step(self, step: int, loss: float, lr: float, guidance: int) -> None:
        """One optimiser step's loss, learning rate and guidance level."""
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("train/loss", loss, step)
            self.tensorboard.add_scalar("train/lr", lr, step)
            self.tensorboard.add_scalar("train/guidance", guidance, step)

    def log_stage(self, step: int, level: int, scores: dict[int, float]) -> None:
        """A stage's guidance level from ``step`` on, and the adaptive scores it was chosen by."""
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("curriculum/level", level, step)
            for guidance, score in sorted(scores.items()):
                self.tensorboard.add_scalar(f"curriculum/score_{int(guidance)}", score, step)
        if self.wandb is not None:
            self.wandb.log({"curriculum/level": level,
                            **{f"curriculum/score_{int(g)}": v for g, v in scores.items()}})

    def log(self, row: dict, epoch: int, splits: Sequence[str] = ()) -> None:
        """Log the numbers of a ``stats.tsv`` row at ``epoch`` (``<split>_<metric>`` as ``<split>/<metric>``)."""
        numbers = {_tag(k, splits): v for k, v in row.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch"}
        if self.tensorboard is not None:
            for key, value in numbers.items():
                self.tensorboard.add_scalar(key, value, epoch)
            self.tensorboard.flush()
        if self.wandb is not None:
            self.wandb.log({**numbers, "epoch": epoch})

    def close(self) -> None:
        """Flush and close whatever was opened."""
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


def _tag(key: str, splits: Sequence[str]) -> str:
    """``id_val_f1`` → ``id_val/f1`` for an evaluation split; ``loss`` → ``epoch/loss``."""
    for split in sorted(splits, key=len, reverse=True):
        if key.startswith(split + "_"):
            return f"{split}/{key[len(split) + 1:]}"
    return f"epoch/{key}"
