"""Console entry points (``pyproject.toml``'s ``[project.scripts]``): the generic entry scripts as commands.

``discl-hard-samples``, ``discl-prompts``, ``discl-generate``, ``discl-clipscore``, ``discl-build-data`` and
``discl-train`` take the flags of ``data_generation/make_hard_samples.py``, ``…/ImageNet_LT/get_text_prompt.py``,
``data_generation/gene_img.py``, ``data_generation/comp_clip_scores.py``, ``curriculum/build_data.py`` and
``curriculum/train.py`` (``--dataset`` names the dataset; ``--help`` lists the rest). ``discl-tiny-world`` is
``python -m discl.tiny`` (declared in ``pyproject.toml`` only: production code never imports ``discl.tiny``).
"""

from __future__ import annotations

from discl.cli import run_cli


def hard_samples() -> None:
    """``discl-hard-samples``: score a training split and write the hard-sample CSV."""
    from discl import hard_samples as module

    run_cli(lambda argv: module.main(argv, default_dataset=None))


def prompts() -> None:
    """``discl-prompts``: LLM (or template) prompts per hard class."""
    from discl import prompts as module

    run_cli(lambda argv: module.main(argv, default_dataset="imagenet_lt"))


def generate() -> None:
    """``discl-generate``: one part of the synthetic-to-real spectrum."""
    from discl.generation import runner

    run_cli(lambda argv: runner.main(argv, None))


def clipscore() -> None:
    """``discl-clipscore``: CLIPScore filtering of a generation output folder."""
    from discl import clipscore as module

    run_cli(lambda argv: module.main(argv, default_dataset=None))


def build_data() -> None:
    """``discl-build-data``: the training and curriculum-validation tables."""
    from discl import training_data

    run_cli(lambda argv: training_data.main(argv, default_dataset=None))


def train() -> None:
    """``discl-train``: either trainer (``--trainer flyp|ce``) on any dataset."""
    from discl.training import cli

    run_cli(cli.main)

