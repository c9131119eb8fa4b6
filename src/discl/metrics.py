"""iWildCam evaluation with WILDS' own metrics, and the rule that picks the selected epoch.

Macro-F1 is WILDS' ``F1-macro_all``: averaged over the classes present in the split, not over all 182.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch


def wilds_split_metrics(dataset, split_indices: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    """``dataset.eval`` on the rows ``split_indices`` of a WILDS dataset → ``{acc, recall, f1}`` in [0, 1]."""
    indices = torch.as_tensor(np.asarray(split_indices, dtype=np.int64))
    y_pred = torch.as_tensor(np.asarray(predictions, dtype=np.int64))
    if y_pred.shape != indices.shape:
        raise ValueError(f"{y_pred.shape[0]} predictions for {indices.shape[0]} rows")
    results, _ = dataset.eval(y_pred, dataset.y_array[indices], dataset.metadata_array[indices])
    return {"acc": float(results["acc_avg"]), "recall": float(results["recall-macro_all"]),
            "f1": float(results["F1-macro_all"])}


def is_better(value: float, best: float | None) -> bool:
    """A strictly larger selection metric wins; the earliest epoch keeps a tie; NaN never wins."""
    if math.isnan(value):
        return False
    return best is None or math.isnan(best) or value > best
