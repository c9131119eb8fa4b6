"""Histograms of the two CLIP similarities of synthetic images, one curve per image-guidance level."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd


def plot_score_histograms(table: pd.DataFrame, threshold: float | None = None, bins: int = 40) -> bytes:
    """PNG bytes: image–text and image–image similarity histograms per guidance level, threshold marked."""
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters; must precede pyplot
    import matplotlib.pyplot as plt

    levels = sorted(table["image_guidance"].unique())
    colours = plt.get_cmap("viridis")(np.linspace(0, 1, max(len(levels), 2)))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    panels = (("clip_image_text", "image–text similarity (vs. prompt)"),
              ("clip_image_image", "image–image similarity (vs. real source)"))
    for axis, (column, title) in zip(axes, panels):
        values = table[column].to_numpy(dtype=float)
        low, high = (values.min(), values.max()) if len(values) else (-1.0, 1.0)
        if threshold is not None and column == "clip_image_text":
            low, high = min(low, threshold), max(high, threshold)
        edges = np.linspace(low - 1e-3, high + 1e-3, bins + 1)
        for colour, level in zip(colours, levels):
            subset = table.loc[table["image_guidance"] == level, column].to_numpy(dtype=float)
            axis.hist(subset, bins=edges, histtype="step", color=colour, linewidth=1.5,
                      label=f"guidance {level} (n={len(subset)})")
        axis.set_title(title)
        axis.set_xlabel("cosine similarity")
        axis.set_ylabel("synthetic images")
    if threshold is not None:
        axes[0].axvline(threshold, color="crimson", linestyle="--", label=f"threshold {threshold:g}")
    axes[0].legend(fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
