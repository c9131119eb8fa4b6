"""Training figures shared by both trainers: the curriculum timeline (with the adaptive scores as a heatmap over
stages) and metric curves, of one run or as mean ± std bands over seeds. Style and files: ``discl.plots.style``.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from discl.plots.style import COLUMN, PAGE, REAL_COLOUR, colour, level_label, paper_style, save_figure

# colours per stage kind; probes take no training steps and are not drawn
_KIND_STYLE = {"level": (colour(0), None), "real_sample": (colour(4), "////")}


def parse_scores(cell) -> dict[int, float]:
    """A ``curriculum.tsv`` scores cell (``"50:0.03;100:-0.01"``) as ``{level: score}`` (empty when blank)."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)) or not str(cell).strip():
        return {}
    return {int(g): float(s) for g, s in (item.split(":") for item in str(cell).split(";"))}


def score_matrix(stages: pd.DataFrame) -> tuple[list[int], list[tuple[float, float]], np.ndarray, list[int]]:
    """The adaptive choices as a matrix: levels (rows), each choosing stage's span in epochs (columns), the
    scores, and the chosen level per column. ``stages`` needs ``start_epoch``, ``end_epoch``, ``level``,
    ``scores``."""
    chosen = [row for row in stages.to_dict("records") if parse_scores(row.get("scores"))]
    levels = sorted({g for row in chosen for g in parse_scores(row["scores"])})
    matrix = np.full((len(levels), len(chosen)), np.nan)
    for column, row in enumerate(chosen):
        for level, score in parse_scores(row["scores"]).items():
            matrix[levels.index(level), column] = score
    spans = [(float(row["start_epoch"]), float(row["end_epoch"])) for row in chosen]
    return levels, spans, matrix, [int(row["level"]) for row in chosen]


def plot_curriculum_timeline(stages: pd.DataFrame, path: str | os.PathLike, title: str = "curriculum",
                             curriculum_epoch: float | None = None) -> None:
    """One bar per training stage over its span in epochs (``start_epoch`` → ``end_epoch``) at its guidance level;
    the curriculum epoch marked; below, when the stages carry adaptive scores, the scores as a heatmap.

    ``stages`` columns: ``start_epoch``, ``end_epoch``, ``level``, optionally ``kind`` (``level`` or
    ``real_sample``, the adaptive round's pass over a fresh real sample) and ``scores`` (``curriculum.tsv``).
    Writes ``path`` (PNG) and the PDF beside it.
    """
    has_scores = "scores" in stages.columns and any(parse_scores(s) for s in stages["scores"])
    with paper_style() as plt:
        if has_scores:
            fig, (ax, heat) = plt.subplots(2, 1, figsize=(PAGE * 0.62, 3.4), height_ratios=[1, 1.1], sharex=True,
                                           constrained_layout=True)
        else:
            fig, ax = plt.subplots(figsize=(PAGE * 0.62, 2.0), constrained_layout=True)
        levels = sorted({int(v) for v in stages["level"]}) if len(stages) else [100]
        position = {level: i for i, level in enumerate(levels)}
        for row in stages.to_dict("records"):
            kind = row.get("kind", "level")
            fill, hatch = _KIND_STYLE.get(kind, (REAL_COLOUR, None))
            ax.barh(position[int(row["level"])], row["end_epoch"] - row["start_epoch"], left=row["start_epoch"],
                    height=0.6, color=fill, hatch=hatch, edgecolor="white", linewidth=0.4)
        ax.set_yticks(range(len(levels)), [level_label(g) for g in levels])
        ax.set_ylim(-0.6, len(levels) - 0.4)
        ax.set_ylabel("image guidance")
        ax.set_title(title)
        ax.grid(axis="y", visible=False)
        for axis in (ax, heat) if has_scores else (ax,):
            if curriculum_epoch is not None:
                axis.axvline(curriculum_epoch, color="black", linestyle="--", linewidth=0.8)
        (heat if has_scores else ax).set_xlabel("epoch")
        if has_scores:
            _score_heatmap(heat, stages, fig)
        handles = _timeline_legend(stages, curriculum_epoch)
        if handles:
            fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        save_figure(fig, path)


def _timeline_legend(stages: pd.DataFrame, curriculum_epoch: float | None) -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    if "kind" in stages.columns and (stages["kind"] == "real_sample").any():
        handles += [Patch(color=_KIND_STYLE["level"][0], label="guidance stage"),
                    Patch(facecolor=_KIND_STYLE["real_sample"][0], hatch="////", label="real sample (probe round)")]
    if curriculum_epoch is not None:
        handles.append(Line2D([], [], color="black", linestyle="--", linewidth=0.8,
                              label=f"curriculum epoch ({curriculum_epoch:g})"))
    return handles


def _score_heatmap(ax, stages: pd.DataFrame, fig) -> None:
    """Adaptive scores (mean progress of p(true class)) per level over each choosing stage's span, on the
    timeline's epoch axis; the chosen level outlined."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Rectangle

    levels, spans, matrix, chosen = score_matrix(stages)
    finite = matrix[np.isfinite(matrix)]
    bound = float(np.max(np.abs(finite))) if finite.size and np.max(np.abs(finite)) > 0 else 1.0
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound)
    cmap = colormaps["RdBu_r"]
    for column, (start, end) in enumerate(spans):
        for row, level in enumerate(levels):
            value = matrix[row, column]
            face = "#DDDDDD" if np.isnan(value) else cmap(norm(value))
            ax.add_patch(Rectangle((start, row - 0.5), end - start, 1, facecolor=face, edgecolor="white",
                                   linewidth=0.4))
        if chosen[column] in levels:
            ax.add_patch(Rectangle((start, levels.index(chosen[column]) - 0.5), end - start, 1, fill=False,
                                   edgecolor="black", linewidth=1.2))
    ax.set_yticks(range(len(levels)), [level_label(g) for g in levels])
    ax.set_ylim(-0.5, len(levels) - 0.5)
    ax.set_ylabel("score per level")
    ax.set_title("adaptive rounds: mean Δp(true class) per level; outlined: chosen", fontsize=7)
    ax.grid(visible=False)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="score", shrink=0.9)


def plot_metric_curves(stats: pd.DataFrame, columns: Mapping[str, str], path: str | os.PathLike,
                       ylabel: str = "metric", best_epoch: int | None = None, title: str | None = None) -> None:
    """Per-epoch curves of one run's ``columns`` (legend label → stats column), the selected epoch marked."""
    from matplotlib.ticker import MaxNLocator

    with paper_style() as plt:
        fig, ax = plt.subplots(figsize=(COLUMN, 2.3), constrained_layout=True)
        for label, column in columns.items():
            if column in stats.columns:
                ax.plot(stats["epoch"], stats[column], marker="o", label=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        if best_epoch is not None:
            ax.axvline(best_epoch, color="gray", linestyle="--", linewidth=0.8, label=f"selected (epoch {best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        ax.legend()
        save_figure(fig, path)


def mean_std_by(runs: Sequence[pd.DataFrame], column: str, scale: float = 1.0, x: str = "epoch") -> pd.DataFrame:
    """Per value of ``x`` over the runs that have it: ``x, mean, std`` (sample std, 0 with one run), ``n``."""
    rows = [frame[[x, column]].rename(columns={column: "value"}) for frame in runs
            if column in frame.columns and x in frame.columns]
    if not rows:
        return pd.DataFrame(columns=[x, "mean", "std", "n"])
    values = pd.concat(rows).dropna()
    grouped = values.groupby(x)["value"]
    out = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1).fillna(0.0), "n": grouped.size()})
    out[["mean", "std"]] *= scale
    return out.reset_index()


def plot_metric_bands(curves: Mapping[str, Sequence[pd.DataFrame]], panels: Mapping[str, str],
                      path: str | os.PathLike, scale: float = 1.0, ylabel: str = "metric (%)", x: str = "epoch",
                      xlabel: str = "epoch", marker: float | None = None, marker_label: str = "") -> None:
    """One panel per ``panels`` entry (title → column): per method (legend label → its runs' tables), the mean
    over seeds along ``x`` with a ± std band, in ``scale`` units (100: fractions as %); ``marker`` draws a
    dashed vertical line (the curriculum epoch, a chosen α). PDF + PNG beside ``path``."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    with paper_style() as plt:
        count = max(1, len(panels))
        fig, axes = plt.subplots(1, count, figsize=(min(PAGE, COLUMN * 0.75 * count + 0.8), 2.2), squeeze=False,
                                 constrained_layout=True)
        for ax, (title, column) in zip(axes[0], panels.items()):
            for index, (method, runs) in enumerate(curves.items()):
                band = mean_std_by(runs, column, scale, x)
                if band.empty:
                    continue
                ax.plot(band[x], band["mean"], color=colour(index), label=f"{method} (n={int(band['n'].max())})")
                ax.fill_between(band[x].astype(float), band["mean"] - band["std"], band["mean"] + band["std"],
                                color=colour(index), alpha=0.2, linewidth=0)
            if marker is not None:
                ax.axvline(marker, color="black", linestyle="--", linewidth=0.8)
            if x == "epoch":
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(title)
            ax.set_xlabel(xlabel)
        axes[0][0].set_ylabel(ylabel)
        handles, labels = axes[0][0].get_legend_handles_labels()
        if marker is not None and marker_label:
            handles.append(Line2D([], [], color="black", linestyle="--", linewidth=0.8))
            labels.append(marker_label)
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(handles)))
        save_figure(fig, path)
