"""WiSE-FT for FLYP: weight-space ensembles of the zero-shot and the fine-tuned CLIP (Wortsman et al. 2022).

``θ_α = (1 − α)·θ_zero-shot + α·θ_fine-tuned`` for every floating-point weight (integer buffers are the
fine-tuned model's), written so that α = 0 and α = 1 give the two models bit for bit. Each θ_α is evaluated
like the training loop evaluates an epoch (the FLYP task's zero-shot head rebuilt from θ_α, the dataset's own
``evaluate`` on each evaluation split, ``discl.training.data.predict``); α is chosen on the dataset's
selection split (ID-val macro-F1 for iWildCam; the smallest α wins a tie), never on a test split.

Everything about the run comes from its checkpoint: dataset, root and options, model, pretrained tag, seed
(a random initialisation, ``--pretrained ''``, is rebuilt from the run's seed). Outputs in ``RUN/wiseft/``:
``wiseft.tsv`` (one row per α), ``wiseft.json`` (the chosen α and its metrics, the zero-shot and the
fine-tuned ends), ``wiseft.{pdf,png}`` (the curves). docs/experiments.md.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import torch

from discl import checkpoint as ckpt
from discl import runrecord
from discl.config import option, to_plain
from discl.errors import InputError
from discl.fileio import atomic_write_csv, atomic_write_json
from discl.metrics import is_better
from discl.config import AT_LEAST_ONE, NON_NEGATIVE, Range, check_ranges

log = logging.getLogger(__name__)

ALPHAS = [round(0.1 * i, 1) for i in range(11)]  # 0, 0.1, …, 1 as in WiSE-FT
# Every numeric flag of ``WiseFTConfig`` and the values it accepts.
WISEFT_RANGES = {"alphas": Range(0, 1), "eval_batch_size": AT_LEAST_ONE, "workers": NON_NEGATIVE}


@dataclass
class WiseFTConfig:
    """What to interpolate and where to evaluate it."""

    run_dir: Path = option(help="a FLYP run folder (curriculum/train.py --output-dir)")
    checkpoint: Path | None = option(None, "fine-tuned weights (default: RUN_DIR/checkpoints/best.pt, the epoch "
                                           "selected on the validation split)")
    alphas: list[float] = option(ALPHAS, "mixing coefficients: 0 = zero-shot, 1 = fine-tuned")
    output_dir: Path | None = option(None, "where the curve and tables go (default: RUN_DIR/wiseft)")
    data_root: Path | None = option(None, "dataset root, when it moved since training (default: the run's)")
    device: str | None = option(None, "cuda / cpu (default: cuda when available)")
    eval_batch_size: int | None = option(None, "evaluation batch (default: the run's)")
    workers: int | None = option(None, "data-loader workers (default: the run's)")
    plots: bool = option(True, "draw the curves")

    def check(self) -> None:
        """Every numeric flag in range and the output folder possible (``InputError`` naming the flag), before
        anything is read or written."""
        check_ranges(self, WISEFT_RANGES)
        if not self.alphas:
            raise InputError("--alphas", "expected at least one mixing coefficient")
        out = Path(self.output_dir) if self.output_dir else Path(self.run_dir) / "wiseft"
        if out.exists() and not out.is_dir():
            raise InputError(out, "the output folder (--output-dir) is a file, not a folder")


def interpolate(zero_shot: Mapping[str, torch.Tensor], fine_tuned: Mapping[str, torch.Tensor],
                alpha: float) -> dict[str, torch.Tensor]:
    """``(1 − α)·zero_shot + α·fine_tuned`` per floating-point tensor; other tensors from ``fine_tuned``."""
    if set(zero_shot) != set(fine_tuned):
        missing = sorted(set(zero_shot) ^ set(fine_tuned))[:5]
        raise ValueError(f"the two models have different weights (e.g. {missing})")
    mixed = {}
    for key, tuned in fine_tuned.items():
        zero = zero_shot[key]
        if zero.shape != tuned.shape:
            raise ValueError(f"weight {key}: shape {tuple(zero.shape)} vs {tuple(tuned.shape)}")
        if tuned.is_floating_point():
            # this form (not torch.lerp) keeps α = 0 and α = 1 exact: 0·x + y = y
            mixed[key] = (1.0 - alpha) * zero.to(tuned.dtype) + alpha * tuned
        else:
            mixed[key] = tuned.clone()
    return mixed


def choose_alpha(rows: Sequence[Mapping], split: str, metric: str) -> float | None:
    """The α with the best ``split`` ``metric`` (a tie keeps the smaller α; NaN never wins)."""
    best, chosen = None, None
    for row in sorted(rows, key=lambda r: r["alpha"]):
        value = row[f"{split}_{metric}"]
        if value is not None and is_better(value, best):
            best, chosen = value, float(row["alpha"])
    return chosen


def _options(cls: type, args: Mapping) -> object:
    """A task options dataclass from a checkpoint's plain ``args``."""
    return cls(**{f.name: args[f.name] for f in dataclasses.fields(cls) if f.name in args})


def run_wiseft(config: WiseFTConfig) -> dict:
    """Evaluate θ_α for every α on the run's evaluation splits, choose α on its selection split, write outputs."""
    from discl import distributed as D
    from discl.datasets import get_dataset
    from discl.flyp import FlypOptions, FlypTask
    from discl.seeding import seed_everything
    from discl.training.data import predict

    config.check()
    run_dir = Path(config.run_dir)
    path = Path(config.checkpoint) if config.checkpoint else run_dir / "checkpoints" / ckpt.BEST
    state = ckpt.load_checkpoint(path)
    args = state["args"]
    if args.get("trainer") != "flyp":
        raise InputError(path, f"WiSE-FT needs a FLYP run (CLIP's zero-shot weights); this run's trainer is "
                               f"{args.get('trainer')!r}")
    alphas = sorted({float(a) for a in config.alphas})
    root = config.data_root if config.data_root is not None else args.get("data_root")
    dataset = get_dataset(args["dataset"], root, **args.get("dataset_options", {}))
    selection = (dataset.selection_split, dataset.selection_metric)
    splits = list(args.get("eval_splits") or dataset.eval_splits)
    splits = splits if selection[0] in splits else [selection[0], *splits]
    eval_sets = {split: dataset.eval_set(split) for split in splits}

    info = D.init_distributed(config.device)
    seed_everything(int(args["seed"]))  # a random initialisation is the trainer's, from the same seed
    task = FlypTask(_options(FlypOptions, args))
    model = task.build(dataset, info.device, resume=False)
    zero_shot = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        fine_tuned = {k: v.to(info.device) for k, v in state["model"].items()}
        interpolate(zero_shot, fine_tuned, 0.0)
    except ValueError as err:
        raise InputError(path, f"does not fit the run's model {args.get('model')!r}: {err}") from None
    out = Path(config.output_dir) if config.output_dir else run_dir / "wiseft"
    runrecord.start(out, {**to_plain(config), "run_args": args})  # every input checked: the run record starts
    batch = config.eval_batch_size if config.eval_batch_size is not None else int(args.get("eval_batch_size", 256))
    workers = config.workers if config.workers is not None else int(args.get("workers", 0))

    rows = []
    for alpha in alphas:
        model.load_state_dict(interpolate(zero_shot, fine_tuned, alpha))
        model.eval()
        task.prepare_eval(model, dataset, info.device)
        row: dict = {"alpha": alpha}
        for split, eval_set in eval_sets.items():
            predictions, _ = predict(lambda images: task.logits(model, images), eval_set.paths, eval_set.labels,
                                     task.eval_transform, info, batch, workers)
            metrics = dataset.evaluate(eval_set, predictions)
            row.update({f"{split}_{name}": float(value) for name, value in metrics.items()})
        log.info("α = %.2f: %s", alpha, " | ".join(
            f"{s} {dataset.format_metrics({m: row[f'{s}_{m}'] for m in dataset.metric_names})}" for s in splits))
        rows.append(row)

    chosen = choose_alpha(rows, *selection)
    rows = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()} for row in rows]
    result = {"run_dir": str(run_dir), "checkpoint": str(path), "epoch": state.get("epoch"), "alphas": alphas,
              "selection": {"split": selection[0], "metric": selection[1]}, "splits": splits,
              "metric_names": list(dataset.metric_names), "chosen_alpha": chosen,
              "chosen": _metrics_at(rows, chosen, splits, dataset.metric_names),
              "zero_shot": _metrics_at(rows, 0.0, splits, dataset.metric_names),
              "fine_tuned": _metrics_at(rows, 1.0, splits, dataset.metric_names), "rows": rows}
    if info.is_main:
        atomic_write_csv(out / "wiseft.tsv", pd.DataFrame(rows), sep="\t")
        atomic_write_json(out / "wiseft.json", result)
        if config.plots:
            from discl.plots.training import plot_metric_bands

            titles = dict(dataset.split_titles)
            plot_metric_bands({f"seed {args['seed']}": [pd.DataFrame(rows)]},
                              {titles.get(s, s): f"{s}_{selection[1]}" for s in splits}, out / "wiseft.png",
                              ylabel=selection[1], x="alpha", xlabel="α (0: zero-shot, 1: fine-tuned)",
                              marker=chosen, marker_label=f"chosen on {titles.get(selection[0], selection[0])}")
    D.cleanup()
    return result


def _metrics_at(rows: Sequence[Mapping], alpha: float | None, splits: Sequence[str],
                metrics: Sequence[str]) -> dict | None:
    row = next((r for r in rows if alpha is not None and abs(r["alpha"] - alpha) < 1e-9), None)
    return None if row is None else {s: {m: row.get(f"{s}_{m}") for m in metrics} for s in splits}


def report(result: Mapping) -> str:
    """The α table of the selection metric per split, and the chosen α."""
    split, metric = result["selection"]["split"], result["selection"]["metric"]
    splits = result["splits"]
    lines = ["   α  " + "  ".join(f"{s + ':' + metric:>14}" for s in splits)]
    for row in result["rows"]:
        mark = "*" if result["chosen_alpha"] is not None and abs(row["alpha"] - result["chosen_alpha"]) < 1e-9 else " "
        lines.append(f"{row['alpha']:4.2f}{mark} " + "  ".join(_cell(row[f"{s}_{metric}"]) for s in splits))
    lines.append(f"chosen α = {result['chosen_alpha']} (best {split} {metric})")
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return f"{'n/a':>14}" if value is None else f"{value:14.4f}"
