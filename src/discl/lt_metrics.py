"""Long-tail metrics: top-1 accuracy overall and on the many / medium / few-shot classes.

A class's group comes from its number of *training* images (``discl.data.imagenet_lt.split_by_count``); the
reference code cuts at many ≥ 100, medium 20–99, few < 20 (our default, so numbers compare), the usual
ImageNet-LT convention at many > 100, medium 20–100 (``convention="standard"``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from discl.data.imagenet_lt import GROUPS, split_by_count

METRICS = ("overall",) + GROUPS


def class_groups(counts: Sequence[int], convention: str = "reference", many_min: int = 100,
                 few_max: int = 20) -> np.ndarray:
    """Per class, its group name (``many`` / ``medium`` / ``few``) from the training counts."""
    return np.array(split_by_count(list(counts), many_min=many_min, few_max=few_max, convention=convention),
                    dtype=object)


def group_accuracy(predictions: Sequence[int], labels: Sequence[int], groups: np.ndarray) -> dict[str, float]:
    """Top-1 accuracy in percent, overall and per group; NaN for a group with no evaluation images."""
    predictions = np.asarray(predictions, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if predictions.shape != labels.shape:
        raise ValueError(f"{predictions.shape[0]} predictions for {labels.shape[0]} labels")
    correct = predictions == labels
    result = {"overall": 100.0 * correct.mean() if len(labels) else float("nan")}
    label_groups = groups[labels] if len(labels) else np.empty(0, dtype=object)
    for name in GROUPS:
        member = label_groups == name
        result[name] = 100.0 * correct[member].mean() if member.any() else float("nan")
    return {k: float(v) for k, v in result.items()}
