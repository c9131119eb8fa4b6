"""iWildCam evaluation: WILDS' own metrics per split, model selection on ID-val macro-F1, result tables.

Macro-F1 is WILDS' ``F1-macro_all``: averaged over the classes present in the split, not over all 182.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

# WILDS split name → how the paper's tables call it ("test" is the OOD test set: unseen camera locations)
IWILDCAM_EVAL_SPLITS = {"id_val": "ID-val", "id_test": "ID-test", "test": "OOD-test"}
SELECTION_SPLIT = "id_val"


def wilds_split_metrics(dataset, split_indices: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    """``dataset.eval`` on the rows ``split_indices`` of a WILDS dataset → ``{acc, recall, f1}`` in [0, 1]."""
    indices = torch.as_tensor(np.asarray(split_indices, dtype=np.int64))
    y_pred = torch.as_tensor(np.asarray(predictions, dtype=np.int64))
    if y_pred.shape != indices.shape:
        raise ValueError(f"{y_pred.shape[0]} predictions for {indices.shape[0]} rows")
    results, _ = dataset.eval(y_pred, dataset.y_array[indices], dataset.metadata_array[indices])
    return {"acc": float(results["acc_avg"]), "recall": float(results["recall-macro_all"]),
            "f1": float(results["F1-macro_all"])}


def metric_columns(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """Flatten ``{split: {metric: v}}`` into stats columns ``{split}_{metric}``."""
    return {f"{split}_{name}": value for split, values in metrics.items() for name, value in values.items()}


def is_better(value: float, best: float | None) -> bool:
    """A strictly larger selection metric wins; the earliest epoch keeps a tie; NaN never wins."""
    if math.isnan(value):
        return False
    return best is None or math.isnan(best) or value > best


def f1_table(rows: Sequence[dict], splits: Sequence[str] = tuple(IWILDCAM_EVAL_SPLITS),
             best_epoch: int | None = None) -> str:
    """Per-epoch macro-F1 (percent) of each split as a plain-text table; the best epoch is starred."""
    header = f"{'epoch':>5}  {'guidance':>8}  " + "  ".join(f"{IWILDCAM_EVAL_SPLITS.get(s, s):>9}" for s in splits)
    lines = [header]
    for row in rows:
        mark = "*" if best_epoch is not None and int(row["epoch"]) == best_epoch else " "
        cells = "  ".join(f"{100 * float(row.get(f'{s}_f1', math.nan)):>9.2f}" for s in splits)
        lines.append(f"{int(row['epoch']):>4}{mark}  {str(row.get('guidance', '')):>8}  {cells}")
    return "\n".join(lines)
