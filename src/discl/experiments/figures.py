"""An experiment's figures, in one style (``discl.plots.style``), each as PDF + PNG: metric curves per table
column as mean ± std over seeds, the curriculum timeline of one seed of every curriculum method (adaptive
scores as a heatmap), WiSE-FT curves, and, given the generation output, the spectrum grid and the CLIPScore
distribution per guidance level."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import pandas as pd

from discl.experiments.aggregate import WISEFT_SUFFIX, Row
from discl.experiments.runner import json_object
from discl.experiments.spec import Experiment

log = logging.getLogger(__name__)


def _summary(run_dir: Path) -> dict:
    return json_object(run_dir / "summary.json")


def stage_spans(summary: dict) -> pd.DataFrame:
    """The summary's stages with their end in epochs (the next stage's start; the run's last step)."""
    stages = pd.DataFrame(summary.get("stages") or [])
    if stages.empty:
        return stages
    per_epoch = summary["steps_per_epoch"]
    ends = list(stages["start_step"].iloc[1:]) + [summary["steps"]]
    return stages.assign(end_epoch=[e / per_epoch for e in ends])


def axis_label(experiment: Experiment, frames: Sequence[pd.DataFrame]) -> str:
    """The metrics of the table's columns, in % when scaled to it or already there (a value above 1)."""
    names = ", ".join(dict.fromkeys(c.metric for c in experiment.columns))
    columns = [f"{c.split}_{c.metric}" for c in experiment.columns]
    scaled = [frame[c].abs().max() * experiment.scale for frame in frames for c in columns if c in frame.columns]
    percent = experiment.scale == 100 or any(value > 1 for value in scaled)
    return f"{names} (%)" if percent else names


def write_figures(experiment: Experiment, rows: Sequence[Row], folder: Path) -> list[Path]:
    """Every figure the experiment's runs (and generation output) allow; returns the PNG paths."""
    from discl.plots.training import plot_curriculum_timeline, plot_metric_bands

    written: list[Path] = []
    panels = {c.title: f"{c.split}_{c.metric}" for c in experiment.columns}
    training = [row for row in rows if not row.id.endswith(WISEFT_SUFFIX)]
    curves = {row.name: [pd.DataFrame(_summary(r.run.output_dir).get("epochs") or []) for r in row.runs if r.used]
              for row in training}
    curves = {name: frames for name, frames in curves.items() if frames}
    ylabel = axis_label(experiment, [f for frames in curves.values() for f in frames])
    if curves:
        path = folder / "curves.png"
        plot_metric_bands(curves, panels, path, scale=experiment.scale, ylabel=ylabel)
        written.append(path)
    for row in training:
        used = [r for r in row.runs if r.used]
        summary = _summary(used[0].run.output_dir) if used else {}
        if summary.get("curriculum", "none") == "none" or not summary.get("stages"):
            continue
        path = folder / f"timeline_{row.id}.png"
        plot_curriculum_timeline(stage_spans(summary), path, title=f"{row.name} (seed {used[0].run.seed})",
                                 curriculum_epoch=summary.get("curriculum_epoch"))
        written.append(path)
    for row in rows:
        if not row.id.endswith(WISEFT_SUFFIX):
            continue
        frames = [pd.DataFrame(json_object(r.run.output_dir / "wiseft" / "wiseft.json").get("rows") or [])
                  for r in row.runs if r.used]
        if frames:
            path = folder / f"wiseft_{row.id.removesuffix(WISEFT_SUFFIX)}.png"
            alpha = row.alpha.mean if row.alpha else None
            plot_metric_bands({row.name.removesuffix(" + WiSE-FT"): frames}, panels, path, scale=experiment.scale,
                              ylabel=ylabel, x="alpha", xlabel="α (0: zero-shot, 1: fine-tuned)", marker=alpha,
                              marker_label="mean chosen α" if alpha is not None else "")
            written.append(path)
    if experiment.generation is not None:
        written += generation_figures(experiment, folder)
    return written


def generation_figures(experiment: Experiment, folder: Path) -> list[Path]:
    """The spectrum grid and the CLIPScore distribution of the experiment's generation output folder."""
    from discl.plots.scores import plot_score_distribution
    from discl.plots.spectrum import read_output_manifests, save_spectrum

    output = experiment.generation
    if not (output / "manifests").is_dir():
        log.warning("%s has no generation manifests (gene_img.py output): no spectrum or CLIPScore figure", output)
        return []
    written = []
    manifest = read_output_manifests(output)
    save_spectrum(manifest, output, folder / "spectrum.png", rows=experiment.spectrum_rows)
    written.append(folder / "spectrum.png")
    scores = output / "clip_scores.csv"
    if scores.is_file():
        threshold = experiment.threshold
        if threshold is None:
            from discl.datasets import dataset_class

            threshold = dataset_class(experiment.methods[0].dataset).clip_threshold
        plot_score_distribution(pd.read_csv(scores), folder / "clip_scores.png", threshold)
        written.append(folder / "clip_scores.png")
    else:
        log.warning("%s not found (written by comp_clip_scores.py): no CLIPScore figure", scores)
    return written
