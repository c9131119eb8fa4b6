"""WILDS iWildCam v2.0 as a registered dataset: the paper's iWildCam defaults for every stage.

Class names are the scientific species names (hard-sample CSVs, class folders); text names are the English
common names (prompts, captions, zero-shot heads). Evaluation is WILDS' own (``dataset.eval``) on ID-val,
ID-test and the OOD test split; the epoch is selected on ID-val macro-F1. The low-level readers live in
``discl.data.iwildcam``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from discl.data import iwildcam as wilds_iwildcam
from discl.datasets import register
from discl.datasets.base import ClassInfo, CsvLayout, Dataset, EvalSet, RealImages
from discl.errors import InputError
from discl.filescan import join_names

IWILDCAM_CSV_LAYOUT = CsvLayout("label id", "label name", "filepath", "img_name",
                                ("label id", "label name", "filepath", "img_name"), index=True,
                                image_has_suffix=False)


@register
class IWildCam(Dataset):
    """WILDS iWildCam v2.0 (182 camera-trap classes incl. ``empty``); root = the WILDS root holding iwildcam_v2.0/."""

    name = "iwildcam"
    description = "WILDS iWildCam v2.0 camera traps (FLYP curriculum, macro-F1)"
    root_help = "WILDS root dir (holding iwildcam_v2.0/)"

    csv_layout = IWILDCAM_CSV_LAYOUT
    supports_tail_rule = False  # the paper's iWildCam hard set is the classifier's mistakes, not whole classes
    never_regenerated = frozenset({wilds_iwildcam.EMPTY_CLASS})

    generation_resolution = (480, 270)  # the paper: input resized to 480×270
    clip_threshold = 0.25  # the paper
    clip_resize = (480, 270)  # the reference resizes before embedding

    table_min_guidance = 50  # the paper: only guidance >= 50 (strength <= 0.5) enters the tables
    table_guidance_levels = None
    curriculum_val_size = 2000  # the paper

    eval_splits = ("id_val", "id_test", "test")  # "test" is WILDS' OOD test split (unseen camera locations)
    split_titles = {"id_val": "ID-val", "id_test": "ID-test", "test": "OOD-test"}
    selection_split = "id_val"
    selection_metric = "f1"  # WILDS' F1-macro_all, over the classes present in the split
    metric_names = ("acc", "recall", "f1")

    # ------------------------------------------------------------------------------------------------ data
    def wilds(self):
        """The WILDS dataset of the root (loaded once)."""
        if getattr(self, "_wilds", None) is None:
            self._wilds = wilds_iwildcam.load_dataset(self.require_root())
        return self._wilds

    def _image_folder(self) -> Path:
        # WILDS keeps every image under <data dir>/train/ and the file names in _input_array (see get_input).
        return (wilds_iwildcam.data_dir(self.require_root()) / "train").resolve()

    def _image_paths(self, indices: np.ndarray) -> list[str]:
        return join_names(self._image_folder(), [str(name) for name in self.wilds()._input_array[indices]])

    def _split_indices(self, split: str) -> np.ndarray:
        dataset = self.wilds()
        if split not in dataset.split_dict:
            raise InputError("--eval-splits", f"unknown iWildCam split {split!r}; WILDS has {sorted(dataset.split_dict)}")
        return np.flatnonzero(dataset.split_array == dataset.split_dict[split])

    # --------------------------------------------------------------------------------------------- classes
    def class_names(self) -> list[str]:
        """Scientific species names by label: the root's categories.csv, or the packaged 182-class list."""
        if getattr(self, "_class_names", None) is None:
            self._class_names = wilds_iwildcam.species_names(self.root)
        return list(self._class_names)

    def text_names(self) -> list[str]:
        """Lower-case English common names by label (``acinonyx jubatus`` → ``cheetah``)."""
        path = None if self.root is None else wilds_iwildcam.data_dir(self.root) / "categories.csv"
        return [wilds_iwildcam.common_name(name, file=path, column="name") for name in self.class_names()]

    def canonical_class_name(self, name: str, file: str | os.PathLike | None = None, row: int | None = None,
                             column: str | None = None) -> str:
        """The species table's spelling (``Puma_Concolor`` → ``puma concolor``); a common name such as
        ``Cheetah`` (the reference template's row) raises ``InputError`` instead of being skipped."""
        return wilds_iwildcam.canonical_species(name, file=file, row=row, column=column)

    def text_name(self, class_name: str) -> str:
        """The common name of a species (any of the 182, also outside the root's categories)."""
        return wilds_iwildcam.common_name(class_name)

    # ------------------------------------------------------------------------------------------ hard samples
    def training_images(self, list_file: str | os.PathLike | None = None) -> RealImages:
        """The WILDS train split: absolute paths, labels ``y``, keys relative to the WILDS root."""
        if list_file is not None:
            raise InputError("--list", "the iwildcam dataset has no list files: its training images are the "
                                       "WILDS train split")
        rows, names, labels = wilds_iwildcam.read_split(self.require_root(), "train")  # WILDS' train split
        metadata = wilds_iwildcam.data_dir(self.require_root()) / "metadata.csv"
        if not names:
            raise InputError(metadata, "no training images")
        num_classes = len(self.class_names())
        bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
        if bad.size:
            raise InputError(metadata, f"label {labels[bad[0]]} outside 0..{num_classes - 1}", row=int(rows[bad[0]]) + 1,
                             column="y")
        folder = self._image_folder()
        keys = join_names(os.path.relpath(folder, self.require_root().resolve()), names)  # iwildcam_v2.0/train/…
        return RealImages(join_names(folder, names), labels.tolist(), keys, source=metadata, rows=(rows + 1).tolist())

    def zeroshot_templates(self) -> Sequence[str]:
        """FLYP / WiSE-FT's iWildCam templates."""
        return wilds_iwildcam.IWILDCAM_TEMPLATES

    # -------------------------------------------------------------------------------------------- generation
    def generation_prompt(self, class_name: str) -> str:
        """``a photo of {common name} in the wild``."""
        from discl.prompts import iwildcam_prompt

        return iwildcam_prompt(wilds_iwildcam.common_name(class_name))

    # --------------------------------------------------------------------------------------------- filtering
    def class_text(self, class_name: str) -> str:
        """``--text class``: the class's generation prompt (iWildCam prompts depend on the class only)."""
        return self.generation_prompt(class_name)

    def describe_class(self, class_folder: str, real_root: str | os.PathLike | None = None) -> ClassInfo:
        """Label, scientific name and prompt of a class folder (``acinonyx_jubatus``).

        Labels come from the release's ``categories.csv`` next to ``real_root`` (``iwildcam_v2.0/train``) when
        there is one, else from the dataset root's, else from the packaged 182-class list.
        """
        scientific = class_folder.replace("_", " ")
        release = None if real_root is None else Path(real_root).parent
        if release is not None and (release / "categories.csv").is_file():
            names = wilds_iwildcam.species_names(release)
        else:
            names = self.class_names()
        if scientific not in names:
            wilds_iwildcam.common_name(scientific, file=class_folder)  # unknown species: "did you mean" hint
            raise InputError(class_folder, f"species {scientific!r} is not among the dataset's classes")
        return ClassInfo(names.index(scientific), scientific, self.generation_prompt(scientific))

    # ---------------------------------------------------------------------------------------- training tables
    def caption_templates(self) -> Sequence[str]:
        """Every training row twice: ``a photo of {}.`` and ``{} in the wild.``."""
        return wilds_iwildcam.IWILDCAM_TEMPLATES

    # ----------------------------------------------------------------------------------- training, evaluation
    def class_counts(self) -> list[int]:
        """Training images per label (the WILDS train split)."""
        labels = wilds_iwildcam.read_split(self.require_root(), "train")[2]
        return np.bincount(labels, minlength=len(self.class_names())).tolist()

    def eval_set(self, split: str) -> EvalSet:
        """A WILDS split's images and labels; ``context`` = (WILDS dataset, row indices) for ``evaluate``."""
        indices = self._split_indices(split)
        labels = np.asarray(self.wilds().y_array[indices], dtype=np.int64)
        return EvalSet(split, self._image_paths(indices), labels, context=(self.wilds(), indices))

    def evaluate(self, eval_set: EvalSet, predictions: np.ndarray) -> dict[str, float]:
        """WILDS' evaluation: ``acc`` (acc_avg), ``recall`` (recall-macro_all), ``f1`` (F1-macro_all), in [0, 1]."""
        from discl.metrics import wilds_split_metrics

        context: Any = eval_set.context
        if context is None:
            context = (self.wilds(), self._split_indices(eval_set.name))
        dataset, indices = context
        return wilds_split_metrics(dataset, indices, predictions)

    def format_metrics(self, metrics: dict[str, float]) -> str:
        """``acc 91.2, F1 54.3`` (percent)."""
        return f"acc {100 * metrics['acc']:.2f}, macro-F1 {100 * metrics['f1']:.2f}"
