"""The synthetic-to-real spectrum grid (the paper's Fig. 1): rows = source images, columns = real, then strengths.

Driven by the generation manifests of an output folder, so it works for any run (any strengths, seeds,
dataset) without parsing folder names.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
from PIL import Image

from discl.errors import InputError
from discl.manifest import read_manifests


@dataclass(frozen=True)
class SpectrumRow:
    """One row of the grid: a real image and its synthetic versions by strength (``None`` where missing)."""

    label: str
    real_path: str
    synthetic: tuple[tuple[float, Path | None], ...]


def read_output_manifests(output: str | os.PathLike, real_path: str | os.PathLike | None = None,
                          dataset: str | None = None) -> pd.DataFrame:
    """Every ``manifests/part*.csv`` of a generation output folder, validated and concatenated; for a folder in
    the reference's layout (no manifests), the same table recovered from the folders, given the real images."""
    paths = sorted((Path(output) / "manifests").glob("part*-of*.csv"))
    if paths:
        return read_manifests(paths)
    if real_path is None or dataset is None:
        raise InputError(Path(output) / "manifests", "no generation manifest (part*-of*.csv) found; for a folder in "
                                                     "the reference's layout give --real_path and --dataset")
    from discl.clipscore import RealImageFinder, collect_from_layout

    return collect_from_layout(output, RealImageFinder(real_path), dataset)


def spectrum_rows(manifest: pd.DataFrame, output: str | os.PathLike, seed: int | None = None, rows: int = 4,
                  classes: Sequence[str] | None = None) -> tuple[int, list[float], list[SpectrumRow]]:
    """Pick the seed (default: the smallest), up to ``rows`` source images (manifest order) and every strength."""
    if classes:
        manifest = manifest[manifest["class_name"].isin(classes) | manifest["class_folder"].isin(classes)]
    if manifest.empty:
        raise InputError(None, "no synthetic image matches the requested classes")
    seed = int(manifest["seed"].min()) if seed is None else int(seed)
    chosen = manifest[manifest["seed"] == seed]
    if chosen.empty:
        raise InputError("--seed", f"no image was generated with seed {seed}; have {sorted(manifest['seed'].unique())}")
    strengths = sorted(float(s) for s in chosen["strength"].unique())
    grid = []
    for (folder, stem), images in list(chosen.groupby(["class_folder", "image_stem"], sort=False))[:rows]:
        by_strength = {float(s): Path(output) / p for s, p in zip(images["strength"], images["synthetic_path"])}
        short = stem if len(stem) <= 14 else stem[:13] + "…"  # camera-trap stems are 36-character uuids
        grid.append(SpectrumRow(f"{images['class_name'].iloc[0]}\n{short}", images["real_path"].iloc[0],
                                tuple((s, by_strength.get(s)) for s in strengths)))
    return seed, strengths, grid


def _tile(path: str | os.PathLike | None, size: tuple[int, int] | None) -> Image.Image | None:
    if path is None or not Path(path).is_file():
        return None
    with Image.open(path) as handle:
        image = handle.convert("RGB")
    return image.resize(size) if size is not None else image


def plot_spectrum(manifest: pd.DataFrame, output: str | os.PathLike, seed: int | None = None, rows: int = 4,
                  classes: Sequence[str] | None = None, tile_inches: float = 1.8) -> bytes:
    """PNG bytes of the spectrum grid; the real image (guidance 100) first, then strength ↑ (guidance ↓)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters; must precede pyplot
    import matplotlib.pyplot as plt

    seed, strengths, grid = spectrum_rows(manifest, output, seed, rows, classes)
    columns = 1 + len(strengths)
    figure, axes = plt.subplots(len(grid), columns, squeeze=False, constrained_layout=True,
                                figsize=(tile_inches * columns, tile_inches * 0.75 * len(grid) + 0.4))
    titles = ["real (guidance 100)"] + [f"s={s:g} (guidance {100 - round(100 * s)})" for s in strengths]
    for r, row in enumerate(grid):
        first_synthetic = next((p for _, p in row.synthetic if p is not None and p.is_file()), None)
        size = Image.open(first_synthetic).size if first_synthetic else None
        tiles = [_tile(row.real_path, size)] + [_tile(p, None) for _, p in row.synthetic]
        for c, (axis, tile) in enumerate(zip(axes[r], tiles)):
            if tile is None:
                axis.text(0.5, 0.5, "missing", ha="center", va="center", transform=axis.transAxes)
            else:
                axis.imshow(tile)
            axis.set_xticks([])
            axis.set_yticks([])
            if r == 0:
                axis.set_title(titles[c], fontsize="small")
            if c == 0:
                axis.set_ylabel(row.label, fontsize="x-small")
    figure.suptitle(f"synthetic-to-real spectrum (seed {seed})", fontsize="medium")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
