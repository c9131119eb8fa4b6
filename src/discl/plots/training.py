"""Training figures shared by both trainers: the curriculum timeline and per-epoch metric curves."""

from __future__ import annotations

import io
import os
from typing import Mapping

import pandas as pd

from discl.fileio import atomic_write_bytes

# colours per stage kind; probes take no training steps and are not drawn
_KIND_STYLE = {"level": ("tab:blue", None), "real_sample": ("tab:orange", "//")}


def _save(fig, path: str | os.PathLike) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def plot_curriculum_timeline(stages: pd.DataFrame, path: str | os.PathLike, title: str = "curriculum") -> None:
    """One bar per training stage: guidance level (y) over its span in epochs (``start_epoch`` → ``end_epoch``).

    ``stages`` columns: ``start_epoch``, ``end_epoch``, ``level``, and optionally ``kind`` (``level`` or
    ``real_sample``, the adaptive schedule's pass over a fresh real sample).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    for row in stages.itertuples(index=False):
        kind = getattr(row, "kind", "level")
        colour, hatch = _KIND_STYLE.get(kind, ("tab:gray", None))
        ax.barh(row.level, row.end_epoch - row.start_epoch, left=row.start_epoch, height=6, color=colour,
                hatch=hatch, edgecolor="white", linewidth=0.5)
    levels = sorted(set(int(v) for v in stages["level"])) if len(stages) else [100]
    ax.set_yticks(levels)
    ax.set_yticklabels(["real" if g == 100 else str(g) for g in levels])
    ax.set_xlabel("epoch")
    ax.set_ylabel("image guidance")
    ax.set_title(title)
    if "kind" in stages.columns and (stages["kind"] == "real_sample").any():
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color="tab:blue", label="guidance stage"),
                           Patch(facecolor="tab:orange", hatch="//", label="real sample (probe round)")],
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)  # outside: bars fill the axes
    _save(fig, path)
    plt.close(fig)


def plot_metric_curves(stats: pd.DataFrame, columns: Mapping[str, str], path: str | os.PathLike,
                       ylabel: str = "metric", best_epoch: int | None = None, title: str | None = None) -> None:
    """Per-epoch curves of ``columns`` (legend label → stats column), the selected epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, column in columns.items():
        if column in stats.columns:
            ax.plot(stats["epoch"], stats[column], marker="o", markersize=3, label=label)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    if best_epoch is not None:
        ax.axvline(best_epoch, color="gray", linestyle="--", linewidth=1, label=f"selected (epoch {best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)
