"""What every stage asks of a dataset: the :class:`Dataset` interface of the registry.

One subclass per dataset, in its own module of ``discl.datasets``; every stage (hard samples, generation,
CLIPScore, training tables, both trainers, evaluation) reads a dataset only through this interface, so adding a
dataset is one new module and no ``if dataset == ...`` anywhere else.

A ``Dataset`` is bound to its root folder (``None`` where a stage needs no images, e.g. generation from a
hard-sample CSV); methods that need the root raise ``InputError`` when it is missing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd

from discl.errors import InputError

Template = Any  # a format string with one ``{}`` or a callable ``name -> text`` (open_clip's templates)

HARD_RULES = ("misclassified", "low-prob", "both", "either", "none")
# suffixes (compared lower-cased) of the real images a dataset may list: stems are cut at these everywhere
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class CsvLayout:
    """Column names of a dataset's hard-sample CSV (the reference's template for that dataset)."""

    label: str
    name: str
    path: str
    image: str
    columns: tuple[str, ...]  # in the order the template writes them
    index: bool = False  # the template carries an unnamed index column
    image_has_suffix: bool = False  # the image column keeps the file extension


# The layout every dataset without a reference template uses (ImageNet-LT's: path first, readable by pandas).
GENERIC_CSV_LAYOUT = CsvLayout("label", "classname", "filepath", "image_name",
                               ("filepath", "image_name", "label", "classname"), index=False, image_has_suffix=True)


@dataclass
class RealImages:
    """Labelled real training images: absolute paths, labels, and a unique key per image.

    ``keys`` identify an image across stages (the training tables' join key): a path relative to the
    dataset root. ``rows`` maps each image to the 1-based data row of the file that listed it (errors).
    """

    paths: list[str]
    labels: list[int]
    keys: list[str]
    source: Path | None = None  # the file that listed the images (for error messages)
    rows: list[int] | None = None

    def __post_init__(self) -> None:
        if not (len(self.paths) == len(self.labels) == len(self.keys)):
            raise ValueError("paths, labels and keys must have the same length")


@dataclass
class EvalSet:
    """One evaluation split: images and labels, plus what the dataset's own ``evaluate`` needs (``context``)."""

    name: str
    paths: list[str]
    labels: np.ndarray
    context: Any = None


@dataclass(frozen=True)
class ClassInfo:
    """A class as the scorer's folder walk recovers it: label, name, and the text its images are scored against."""

    class_id: int
    class_name: str
    text: str


def class_folder_name(class_name: str) -> str:
    """The output folder of a class: the name with spaces and path separators as ``_`` (the reference's layout)."""
    return re.sub(r"[\s/\\]+", "_", str(class_name).strip())


def render(template: Template, name: str) -> str:
    """A template applied to a class name (format string or callable)."""
    return template(name) if callable(template) else template.format(name)


@dataclass
class Dataset:
    """A registered dataset bound to ``root``: subclasses set the class attributes and implement the methods.

    Class attributes are the dataset's paper defaults for every stage; the docstring of each says which stage
    reads it.
    """

    root: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)

    # -- identity --
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    root_help: ClassVar[str] = "dataset root folder"
    # what a user may set with --dataset-option KEY=VALUE (key -> what it is); any other key is refused
    user_options: ClassVar[dict[str, str]] = {}

    # -- hard samples (make_hard_samples.py) --
    csv_layout: ClassVar[CsvLayout] = GENERIC_CSV_LAYOUT
    hard_rules: ClassVar[tuple[str, ...]] = HARD_RULES
    supports_tail_rule: ClassVar[bool] = True  # "every image of the few-shot classes" makes sense
    never_regenerated: ClassVar[frozenset[str]] = frozenset()  # class names never hard (iWildCam's 'empty')

    # -- generation (gene_img.py) --
    generation_resolution: ClassVar[tuple[int, int] | None] = None  # None: each image's native size
    synthetic_suffix: ClassVar[str] = ".jpg"  # a synthetic image's file is <stem><suffix> (JPEG data)
    uses_prompt_json: ClassVar[bool] = False  # prompts drawn from an LLM prompt JSON (get_text_prompt.py)
    quality_retry: ClassVar[bool] = False  # regenerate while CLIP(image, prompt) <= threshold

    # -- CLIPScore filtering (comp_clip_scores.py) --
    clip_threshold: ClassVar[float] = 0.25
    clip_resize: ClassVar[tuple[int, int] | None] = None  # resize before embedding; None: native size

    # -- training tables (build_data.py) --
    table_min_guidance: ClassVar[int] = 0
    table_guidance_levels: ClassVar[tuple[int, ...] | None] = None  # synthetic levels kept; None: every level
    curriculum_val_size: ClassVar[int] = 100  # images held out for the adaptive schedule's probe

    # -- training and evaluation (both trainers) --
    eval_splits: ClassVar[tuple[str, ...]] = ("val", "test")
    split_titles: ClassVar[dict[str, str]] = {}  # how the paper's tables call a split
    selection_split: ClassVar[str] = "val"  # the epoch is chosen on this split, never on a test split
    selection_metric: ClassVar[str] = "acc"
    metric_names: ClassVar[tuple[str, ...]] = ("acc",)

    # ------------------------------------------------------------------------------------------------ helpers
    def require_root(self) -> Path:
        """The root folder, or an ``InputError`` saying this step needs one."""
        if self.root is None:
            raise InputError("--data-root", f"the {self.name} dataset needs its root folder here")
        return Path(self.root)

    def check_options(self) -> None:
        """Raise ``InputError`` for an option value the dataset cannot use (called before any stage starts)."""

    def option(self, key: str, default: Any = None) -> Any:
        """A dataset option (``--prompt-template``, ``--class-names`` ...) or ``default``."""
        value = self.options.get(key)
        return default if value is None else value

    # ------------------------------------------------------------------------------------------------ classes
    def class_names(self) -> list[str]:
        """Per label id, the name written to hard-sample CSVs and class folders."""
        raise NotImplementedError

    def text_names(self) -> list[str]:
        """Per label id, the name put into text (prompts, captions, zero-shot heads); default the class names."""
        return self.class_names()

    def canonical_class_name(self, name: str, file: str | os.PathLike | None = None, row: int | None = None,
                             column: str | None = None) -> str:
        """The one spelling of a class name read from a CSV (unknown names raise ``InputError``)."""
        return str(name).strip()

    def class_folder(self, class_name: str) -> str:
        """The output folder of a class."""
        return class_folder_name(class_name)

    def text_name(self, class_name: str) -> str:
        """The text name of a class given by its CSV name."""
        names = self.class_names()
        if class_name in names:
            return self.text_names()[names.index(class_name)]
        return class_name

    # ------------------------------------------------------------------------------------------ hard samples
    def training_images(self, list_file: str | os.PathLike | None = None) -> RealImages:
        """The labelled real training images (``list_file``: another list where the dataset has lists)."""
        raise NotImplementedError

    def zeroshot_templates(self) -> Sequence[Template]:
        """Templates of the zero-shot head (hard-sample scoring with CLIP, the FLYP evaluation head)."""
        return ("a photo of a {}.",)

    # -------------------------------------------------------------------------------------------- generation
    def generation_prompt(self, class_name: str) -> str:
        """The img2img prompt of a class (datasets without an LLM prompt JSON)."""
        raise NotImplementedError

    # --------------------------------------------------------------------------------------------- filtering
    def class_text(self, class_name: str) -> str:
        """``--text class`` of the scorer: the text a class's images are scored against."""
        return f"a photo of {self.text_name(class_name)}"

    def describe_class(self, class_folder: str, real_root: str | os.PathLike | None = None) -> ClassInfo:
        """Label, name and scoring text of a class folder of a generation output without manifests."""
        names = self.class_names()
        folders = {self.class_folder(n).lower(): i for i, n in enumerate(names)}
        if class_folder.lower() not in folders:
            raise InputError(class_folder, f"not a class folder of the {self.name} dataset")
        label = folders[class_folder.lower()]
        return ClassInfo(label, names[label], self.class_text(names[label]))

    # ---------------------------------------------------------------------------------------- training tables
    def caption_templates(self) -> Sequence[str]:
        """Caption templates of the training table: every row is written once per template (docs/filtering-and-training-data.md)."""
        return ("a photo of a {}.",)

    def write_reference_tables(self, tables, folder: Path, synthetic_root: Path) -> dict[str, Path]:
        """Extra copies of the training tables in the reference's own format, when it has one (default none)."""
        return {}

    # ----------------------------------------------------------------------------------- training, evaluation
    def class_counts(self) -> list[int]:
        """Real training images per label (Balanced Softmax prior, many / medium / few groups)."""
        images = self.training_images()
        counts = np.bincount(np.asarray(images.labels, dtype=np.int64), minlength=len(self.class_names()))
        return counts.tolist()

    def class_groups(self) -> Sequence[str]:
        """Per label ``many`` / ``medium`` / ``few`` by training count (option ``split_convention``, the
        reference's cut by default): the tail of the ``tail-topup`` stage data is the ``few`` group."""
        from discl.lt_metrics import class_groups

        return class_groups(self.class_counts(), self.option("split_convention", "reference"))

    def eval_set(self, split: str) -> EvalSet:
        """The images and labels of evaluation split ``split``."""
        raise NotImplementedError

    def evaluate(self, eval_set: EvalSet, predictions: np.ndarray) -> dict[str, float]:
        """The dataset's metrics of ``predictions`` on ``eval_set``: ``{metric name: value}``."""
        raise NotImplementedError

    def format_metrics(self, metrics: dict[str, float]) -> str:
        """One short human-readable line of a split's metrics."""
        return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())


def frame_of(images: RealImages) -> pd.DataFrame:
    """``key, path, filepath, label`` rows of real images (the training-table builder's input)."""
    return pd.DataFrame({"key": images.keys, "path": images.keys, "filepath": images.paths,
                         "label": np.asarray(images.labels, dtype="int64")})
