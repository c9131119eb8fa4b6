"""The synthetic-to-real spectrum grid (the paper's Fig. 1): one row per class, labelled by its name; columns
from the most synthetic image (lowest image guidance) to the real photo, as the title reads.

Tiles are drawn at the generated resolution (an integer enlargement for tiny images, never a resampling), the
real photo resized to it as the generator resized its input. Driven by the generation manifests of an output
folder, so it works for any run (any strengths, seeds, dataset) without parsing folder names.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from discl.errors import InputError
from discl.guidance import REAL, level_from_strength
from discl.imageio import decode, image_size
from discl.manifest import read_manifests
from discl.plots.style import FORMATS, figure_bytes, paper_style, pyplot, save_figure

# Geometry in pixels of the PNG (100 dpi, so a tile of w × h pixels is w × h pixels in the file).
DPI = 100
MIN_TILE = 120  # tiles narrower than this are enlarged by an integer factor (nearest neighbour)
GAP, LABEL_WIDTH, HEADER, TITLE, MARGIN = 4, 110, 28, 24, 6


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
        return read_manifests(paths, sources=True)
    if real_path is None or dataset is None:
        raise InputError(Path(output) / "manifests", "no generation manifest (part*-of*.csv) found; for a folder in "
                                                     "the reference's layout give --real_path and --dataset")
    from discl.clipscore import RealImageFinder, collect_from_layout

    return collect_from_layout(output, RealImageFinder(real_path), dataset)


def spectrum_rows(manifest: pd.DataFrame, output: str | os.PathLike, seed: int | None = None, rows: int = 4,
                  classes: Sequence[str] | None = None) -> tuple[int, list[float], list[SpectrumRow]]:
    """Pick the seed (default: the smallest), the first source image of each class (manifest order) for up to
    ``rows`` classes, and every strength (ascending)."""
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
    for folder, images in list(chosen.groupby("class_folder", sort=False))[:rows]:
        stem = images["image_stem"].iloc[0]
        images = images[images["image_stem"] == stem]
        by_strength = {float(s): Path(output) / p for s, p in zip(images["strength"], images["synthetic_path"])}
        label = str(images["class_name"].iloc[0]).replace("_", " ")
        grid.append(SpectrumRow(label, images["real_path"].iloc[0], tuple((s, by_strength.get(s)) for s in strengths)))
    return seed, strengths, grid


def _tile(path: str | os.PathLike | None, size: tuple[int, int] | None) -> Image.Image | None:
    if path is None or not Path(path).is_file():
        return None
    image = decode(path)
    return image.resize(size, Image.LANCZOS) if size is not None and image.size != size else image


def _tile_size(grid: list[SpectrumRow]) -> tuple[int, int]:
    """The generated resolution: the size of the first synthetic image on disk (64 × 64 when none is)."""
    for row in grid:
        for _, path in row.synthetic:
            if path is not None and path.is_file():
                return image_size(path)
    return 64, 64


@contextlib.contextmanager
def _naming_row(manifest: pd.DataFrame, output: str | os.PathLike, path) -> Iterator[None]:
    """An image that cannot be read becomes an ``InputError`` naming it, and the manifest row that lists it when
    the table came from manifests (``source``, ``source_row``)."""
    try:
        yield
    except OSError as err:
        reason = str(err) if err.errno is None else err.strerror  # a decoder's reason (discl.imageio), or errno's
        if "source_row" in manifest:
            files = {"synthetic_path": [str(Path(output) / p) for p in manifest["synthetic_path"]],
                     "real_path": manifest["real_path"].astype(str).tolist()}
            for column, values in files.items():
                row = values.index(str(path)) if str(path) in values else None
                if row is not None and pd.notna(manifest["source_row"].iloc[row]):
                    raise InputError(manifest["source"].iloc[row], f"cannot read image {path} ({reason})",
                                     int(manifest["source_row"].iloc[row]), column) from None
        raise InputError(path, f"cannot read image ({reason})") from None


def _wrap(text: str, width: int = 16) -> str:
    """A row label broken into lines that fit the label column."""
    import textwrap

    return textwrap.fill(text, width) or text


def spectrum_figure(manifest: pd.DataFrame, output: str | os.PathLike, seed: int | None = None, rows: int = 4,
                    classes: Sequence[str] | None = None):
    """The grid as a matplotlib figure whose PNG at ``DPI`` has every tile at its generated pixel size."""
    seed, strengths, grid = spectrum_rows(manifest, output, seed, rows, classes)
    first = next((path for row in grid for _, path in row.synthetic if path is not None and path.is_file()), None)
    with _naming_row(manifest, output, first):
        width, height = _tile_size(grid)
    scale = max(1, math.ceil(MIN_TILE / width))
    tile_w, tile_h = width * scale, height * scale
    # columns: synthetic → real, i.e. strength ↓ (guidance ↑), the real photo last
    order = sorted(strengths, reverse=True)
    columns = len(order) + 1
    fig_w = LABEL_WIDTH + columns * tile_w + (columns - 1) * GAP + MARGIN
    fig_h = TITLE + HEADER + len(grid) * tile_h + (len(grid) - 1) * GAP + MARGIN
    titles = [f"guidance {level_from_strength(s)}" for s in order] + [f"real ({REAL})"]
    with paper_style() as plt:
        fig = plt.figure(figsize=(fig_w / DPI, fig_h / DPI), dpi=DPI)
        for r, row in enumerate(grid):
            by_strength = dict(row.synthetic)
            tiles = []
            for path, size in [(by_strength.get(s), None) for s in order] + [(row.real_path, (width, height))]:
                with _naming_row(manifest, output, path):
                    tiles.append(_tile(path, size))
            top = TITLE + HEADER + r * (tile_h + GAP)
            for c, tile in enumerate(tiles):
                left = LABEL_WIDTH + c * (tile_w + GAP)
                axis = fig.add_axes((left / fig_w, 1 - (top + tile_h) / fig_h, tile_w / fig_w, tile_h / fig_h))
                axis.set_axis_off()
                if tile is None:
                    axis.text(0.5, 0.5, "missing", ha="center", va="center", transform=axis.transAxes)
                else:
                    axis.imshow(np.asarray(tile), interpolation="nearest", aspect="auto")
                if r == 0:
                    axis.set_title(titles[c], fontsize=7, pad=3)
            fig.text((LABEL_WIDTH - 6) / fig_w, 1 - (top + tile_h / 2) / fig_h, _wrap(row.label), ha="right",
                     va="center", fontsize=7)
        fig.text(0.5, 1 - (TITLE / 2) / fig_h, f"synthetic → real: image guidance ↑ (seed {seed})", ha="center",
                 va="center", fontsize=8)
    return fig


def plot_spectrum(manifest: pd.DataFrame, output: str | os.PathLike, seed: int | None = None, rows: int = 4,
                  classes: Sequence[str] | None = None) -> bytes:
    """PNG bytes of the spectrum grid (tiles at the generated resolution)."""
    fig = spectrum_figure(manifest, output, seed, rows, classes)
    try:
        return figure_bytes(fig, "png", dpi=DPI, bbox_inches=None)
    finally:
        pyplot().close(fig)


def save_spectrum(manifest: pd.DataFrame, output: str | os.PathLike, path: str | os.PathLike,
                  seed: int | None = None, rows: int = 4, classes: Sequence[str] | None = None) -> list[Path]:
    """Write the grid as PDF (images embedded at their pixel size) and PNG beside ``path`` (neither may be one of
    the images drawn)."""
    from discl.generation.config import check_inputs_kept

    grid = spectrum_rows(manifest, output, seed, rows, classes)[2]
    drawn = [file for row in grid for file in [row.real_path] + [p for _, p in row.synthetic] if file is not None]
    check_inputs_kept([("--figure", Path(path).with_suffix(f".{fmt}")) for fmt in FORMATS],
                      [("image", file) for file in drawn])
    fig = spectrum_figure(manifest, output, seed, rows, classes)
    return save_figure(fig, path, dpi=DPI, bbox_inches=None)
