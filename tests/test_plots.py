"""Figures in one style, PDF + PNG: the spectrum grid at the generated resolution (rows per class, synthetic →
real), CLIPScore distributions with kept fractions, the timeline with adaptive scores, bands over seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from discl.curriculum import ALL_LEVELS
from discl.plots import style
from discl.plots.scores import kept_fractions, plot_score_distribution
from discl.plots.spectrum import LABEL_WIDTH, plot_spectrum, save_spectrum, spectrum_rows
from discl.plots.training import mean_std_by, plot_curriculum_timeline, plot_metric_bands, score_matrix


def test_every_figure_is_a_pdf_and_a_png_and_the_pdf_is_reproducible(tmp_path):
    def draw():
        with style.paper_style() as plt:
            fig, ax = plt.subplots(figsize=(style.COLUMN, 2))
            ax.plot([0, 1], [1, 0], label="a")
            return fig

    first = style.save_figure(draw(), tmp_path / "a.png")
    assert first == [tmp_path / "a.pdf", tmp_path / "a.png"]
    pdf = (tmp_path / "a.pdf").read_bytes()
    style.save_figure(draw(), tmp_path / "a.png")
    assert pdf.startswith(b"%PDF") and (tmp_path / "a.pdf").read_bytes() == pdf  # no creation date inside
    with Image.open(tmp_path / "a.png") as png:
        assert round(png.info["dpi"][0]) == style.PNG_DPI
    assert style.level_label(100) == "real" and style.level_label(ALL_LEVELS) == "all" and style.level_label(30) == "30"


# --- the spectrum grid --------------------------------------------------------------------------------------------

def checkerboard(width: int, height: int, colour: tuple[int, int, int]) -> np.ndarray:
    """A one-pixel checkerboard of ``colour`` and black: any resampling would blur it."""
    board = (np.add.outer(np.arange(height), np.arange(width)) % 2).astype(np.uint8)
    return board[..., None] * np.array(colour, dtype=np.uint8)


@pytest.fixture()
def generation(tmp_path):
    """Two classes, two source images each, strengths 0.5 and 0.9 at 40 × 24; real photos 80 × 48."""
    rows = []
    for class_id, folder in enumerate(["panthera_onca", "equus_quagga"]):
        for stem in ("img_a", "img_b"):
            real = tmp_path / "real" / f"{folder}_{stem}.png"
            real.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (80, 48), (0, 0, 255)).save(real)
            for strength, colour in ((0.5, (0, 255, 0)), (0.9, (255, 0, 0))):
                relative = f"{folder}/Strength{int(100 * strength)}_guidance100_seed10/{stem}.png"
                (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(checkerboard(40, 24, colour)).save(tmp_path / relative)
                rows.append({"class_name": folder.replace("_", " "), "class_folder": folder, "image_stem": stem,
                             "seed": 10, "strength": strength, "synthetic_path": relative, "real_path": str(real)})
    return pd.DataFrame(rows), tmp_path


def test_spectrum_rows_one_per_class(generation):
    manifest, output = generation
    seed, strengths, grid = spectrum_rows(manifest, output)
    assert (seed, strengths) == (10, [0.5, 0.9])
    assert [row.label for row in grid] == ["panthera onca", "equus quagga"]  # by name, the first image of each
    assert all(str(path).endswith("img_a.png") for row in grid for _, path in row.synthetic)
    assert len(spectrum_rows(manifest, output, rows=1)[2]) == 1


def test_spectrum_tiles_at_the_generated_resolution_synthetic_to_real(generation, tmp_path):
    manifest, output = generation
    written = save_spectrum(manifest, output, tmp_path / "fig" / "spectrum.png")
    assert [p.name for p in written] == ["spectrum.pdf", "spectrum.png"]
    png = np.asarray(Image.open(tmp_path / "fig" / "spectrum.png").convert("RGB"))
    # 40-pixel tiles are enlarged 3× (to ≥ 120 px); 3 columns, 2 rows, 4-pixel gaps, label column, title rows
    assert png.shape[:2] == (24 + 28 + 2 * 72 + 4 + 6, LABEL_WIDTH + 3 * 120 + 2 * 4 + 6)
    assert plot_spectrum(manifest, output)[:8] == b"\x89PNG\r\n\x1a\n"
    top = 24 + 28
    for column, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):  # guidance 10, 50, then real
        left = LABEL_WIDTH + column * (120 + 4)
        tile = png[top:top + 72, left:left + 120]
        if column < 2:
            # the centre of every 3 × 3 block is its source pixel: no resampling, every pixel kept
            assert np.array_equal(tile[1::3, 1::3], checkerboard(40, 24, colour))
        else:
            assert (tile[5:-5, 5:-5] == colour).all()


# --- CLIPScore distribution ---------------------------------------------------------------------------------------

def test_kept_fraction_per_level_and_the_figure(tmp_path):
    table = pd.DataFrame({"image_guidance": [10, 10, 10, 10, 50, 50, 90],
                          "clip_image_text": [0.1, 0.25, 0.3, 0.2, 0.26, 0.24, 0.5],
                          "clip_image_image": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]})
    # the threshold keeps a score equal to it (>=)
    assert kept_fractions(table, 0.25) == {10: 0.5, 50: 0.5, 90: 1.0}
    plot_score_distribution(table, tmp_path / "scores.png", 0.25)
    assert (tmp_path / "scores.pdf").is_file() and (tmp_path / "scores.png").is_file()


# --- training figures -------------------------------------------------------------------------------------------

STAGES = pd.DataFrame({
    "start_epoch": [0.0, 0.25, 1.25, 1.5, 2.0], "end_epoch": [0.25, 1.25, 1.5, 2.0, 3.0],
    "kind": ["real_sample", "level", "real_sample", "level", "level"], "level": [100, 50, 100, 70, 100],
    "scores": [None, "50:0.3;70:-0.1;100:0.2", None, "50:0.0;70:0.4", None]})


def test_adaptive_scores_as_a_matrix_over_stages(tmp_path):
    levels, spans, matrix, chosen = score_matrix(STAGES)
    assert levels == [50, 70, 100] and spans == [(0.25, 1.25), (1.5, 2.0)] and chosen == [50, 70]
    np.testing.assert_array_equal(matrix, [[0.3, 0.0], [-0.1, 0.4], [0.2, np.nan]])
    plot_curriculum_timeline(STAGES, tmp_path / "timeline.png", title="adaptive", curriculum_epoch=2)
    mixed = pd.DataFrame({"start_epoch": [0.0, 2.0], "end_epoch": [2.0, 3.0], "level": [ALL_LEVELS, 100]})
    plot_curriculum_timeline(mixed, tmp_path / "mixed.png")
    for name in ("timeline.pdf", "timeline.png", "mixed.pdf", "mixed.png"):
        assert (tmp_path / name).is_file()


def test_mean_and_std_bands_over_seeds(tmp_path):
    runs = [pd.DataFrame({"epoch": [0, 1, 2], "test_f1": [0.1, 0.2, 0.3]}),
            pd.DataFrame({"epoch": [0, 1], "test_f1": [0.3, 0.4]})]
    band = mean_std_by(runs, "test_f1", scale=100)
    assert band["epoch"].tolist() == [0, 1, 2] and band["n"].tolist() == [2, 2, 1]
    np.testing.assert_allclose(band["mean"], [20.0, 30.0, 30.0])
    np.testing.assert_allclose(band["std"], [100 * 0.2 / math.sqrt(2), 100 * 0.2 / math.sqrt(2), 0.0])
    assert mean_std_by(runs, "missing_column").empty
    plot_metric_bands({"A": runs, "B": runs[:1]}, {"OOD": "test_f1"}, tmp_path / "curves.png", scale=100)
    assert (tmp_path / "curves.pdf").is_file() and (tmp_path / "curves.png").is_file()
