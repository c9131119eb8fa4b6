"""The CLIPScore figures of a scored manifest: histograms (the scorer's check) and, for the paper, the
distribution per guidance level as violins with the fraction each level keeps above the threshold, beside
their ECDFs."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from discl.plots.style import PAGE, colour, figure_bytes, paper_style, save_figure

PANELS = (("clip_image_text", "image–text similarity (vs. prompt)"),
          ("clip_image_image", "image–image similarity (vs. real source)"))


def plot_score_histograms(table: pd.DataFrame, threshold: float | None = None, bins: int = 40) -> bytes:
    """PNG bytes: image–text and image–image similarity histograms per guidance level, threshold marked."""
    levels = sorted(table["image_guidance"].unique())
    with paper_style() as plt:
        colours = plt.get_cmap("viridis")(np.linspace(0, 1, max(len(levels), 2)))
        figure, axes = plt.subplots(1, 2, figsize=(PAGE, 2.4), constrained_layout=True)
        for axis, (column, title) in zip(axes, PANELS):
            values = table[column].to_numpy(dtype=float)
            low, high = (values.min(), values.max()) if len(values) else (-1.0, 1.0)
            if threshold is not None and column == "clip_image_text":
                low, high = min(low, threshold), max(high, threshold)
            edges = np.linspace(low - 1e-3, high + 1e-3, bins + 1)
            for level_colour, level in zip(colours, levels):
                subset = table.loc[table["image_guidance"] == level, column].to_numpy(dtype=float)
                axis.hist(subset, bins=edges, histtype="step", color=level_colour, linewidth=1.2,
                          label=f"guidance {level} (n={len(subset)})")
            axis.set_title(title)
            axis.set_xlabel("cosine similarity")
            axis.set_ylabel("synthetic images")
        if threshold is not None:
            axes[0].axvline(threshold, color="crimson", linestyle="--", label=f"threshold {threshold:g}")
        axes[0].legend()
        data = figure_bytes(figure, "png", dpi=150)
        plt.close(figure)
    return data


def kept_fractions(table: pd.DataFrame, threshold: float) -> dict[int, float]:
    """Per guidance level, the fraction of images whose image–text similarity is at least ``threshold``."""
    scores = table["clip_image_text"].astype(float)
    return {int(level): float((scores[table["image_guidance"] == level] >= threshold).mean())
            for level in sorted(table["image_guidance"].unique())}


def plot_score_distribution(table: pd.DataFrame, path: str | os.PathLike, threshold: float | None = None) -> None:
    """The image–text similarity per guidance level as violins (kept fraction above the threshold written over
    each), its ECDF per level, and the image–image similarity as violins; PDF + PNG beside ``path``."""
    levels = sorted(int(g) for g in table["image_guidance"].unique())
    with paper_style() as plt:
        fig, (violin, ecdf, image) = plt.subplots(1, 3, figsize=(PAGE, 2.3), constrained_layout=True,
                                                  width_ratios=[1.3, 1, 1.3])
        for axis, column in ((violin, "clip_image_text"), (image, "clip_image_image")):
            values = [table.loc[table["image_guidance"] == g, column].to_numpy(dtype=float) for g in levels]
            shown = [i for i, v in enumerate(values) if len(v) > 1]  # a violin needs two values
            if shown:
                parts = axis.violinplot([values[i] for i in shown], positions=shown, showmedians=True, widths=0.8)
                for body in parts["bodies"]:
                    body.set_facecolor(colour(0))
                    body.set_alpha(0.35)
            for i, v in enumerate(values):
                if len(v) == 1:
                    axis.plot([i], v, "o", color=colour(0))
            axis.set_xticks(range(len(levels)), [str(g) for g in levels])
            axis.set_xlabel("image guidance")
            axis.set_ylabel("cosine similarity")
            axis.grid(axis="x", visible=False)
        violin.set_title("image–text (vs. prompt)")
        image.set_title("image–image (vs. real source)")
        if threshold is not None:
            violin.axhline(threshold, color=colour(1), linestyle="--", linewidth=0.8)
            top = violin.get_ylim()[1]
            for i, fraction in enumerate(kept_fractions(table, threshold).values()):
                violin.text(i, top, f"kept {100 * fraction:.0f}%", ha="center", va="bottom", fontsize=6)
            violin.set_title(f"image–text (vs. prompt); kept ≥ {threshold:g}", pad=10)
        cmap = plt.get_cmap("viridis")
        for i, level in enumerate(levels):
            values = np.sort(table.loc[table["image_guidance"] == level, "clip_image_text"].to_numpy(dtype=float))
            ecdf.step(values, np.arange(1, len(values) + 1) / max(len(values), 1), where="post",
                      color=cmap(0.85 * i / max(len(levels) - 1, 1)), label=str(level))  # no pale yellow
        if threshold is not None:
            ecdf.axvline(threshold, color=colour(1), linestyle="--", linewidth=0.8, label=f"threshold {threshold:g}")
        ecdf.set_title("image–text ECDF")
        ecdf.set_xlabel("cosine similarity")
        ecdf.set_ylabel("fraction of images")
        ecdf.legend(title="guidance", fontsize=6, title_fontsize=6)
        save_figure(fig, path)

