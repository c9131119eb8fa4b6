"""ImageNet-LT as a registered dataset: the paper's ImageNet-LT defaults for every stage.

The root holds ``ImageNet_LT_{train,val,test}.txt`` (``relative/path label``) and the images they list. Class
names are the 1000 ImageNet names (open_clip's); prompts are LLM scene descriptions from a prompt JSON with
CLIP quality retries; metrics are top-1 overall and on many / medium / few classes, in percent, with the
groups cut from the canonical training counts (option ``split_convention``: ``reference`` default or
``standard``). The low-level list readers live in ``discl.data.imagenet_lt``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from discl.data import imagenet_lt as lists
from discl.datasets import register
from discl.datasets.base import GENERIC_CSV_LAYOUT, ClassInfo, Dataset, EvalSet, RealImages, class_folder_name
from discl.errors import InputError
from discl.guidance import REAL

IMAGENET_LT_CSV_LAYOUT = GENERIC_CSV_LAYOUT  # the reference's ImageNet-LT template is the generic layout

log = logging.getLogger(__name__)


@register
class ImageNetLT(Dataset):
    """ImageNet-LT (1000 classes, long-tailed training list); root = the folder with the three list files."""

    name = "imagenet_lt"
    description = "ImageNet-LT (ResNet-10 with CE / Balanced Softmax, many / medium / few top-1)"
    root_help = "ImageNet-LT root (ImageNet_LT_{train,val,test}.txt and the images they list)"
    user_options = {"val_list": "another val list (a file in the ImageNet-LT list format)",
                    "test_list": "another test list (a file in the ImageNet-LT list format)"}

    csv_layout = IMAGENET_LT_CSV_LAYOUT
    supports_tail_rule = True  # the reference's hard set is every image of the few-shot classes

    generation_resolution = None  # the reference keeps the native size
    synthetic_suffix = ".JPEG"  # the reference names a synthetic image as its real one (ImageNet's .JPEG)
    uses_prompt_json = True  # LLM scene descriptions per class
    quality_retry = True  # regenerate while CLIP(image, prompt) <= 0.3

    clip_threshold = 0.30  # the paper
    clip_resize = None  # the reference scores ImageNet-LT images at their native size

    table_min_guidance = 0
    table_guidance_levels = (10, 30, 50)  # candidates 10, 30, 50 and real (100)
    curriculum_val_size = 100  # the reference's ImageNet-LT builder samples 100 images

    eval_splits = ("val", "test")
    split_titles = {"val": "val", "test": "test"}
    selection_split = "val"  # the reference selects on test; we never do
    selection_metric = "overall"
    metric_names = ("overall", "many", "medium", "few")

    # ------------------------------------------------------------------------------------------------ lists
    def list_path(self, list_file: str | os.PathLike | None = None) -> Path:
        """A list file: ``list_file`` as given or under the root; by default ``ImageNet_LT_train.txt``."""
        if list_file is None:
            return self.require_root() / lists.LIST_FILES["train"]
        path = Path(list_file)
        if path.is_absolute() or path.is_file() or self.root is None:
            return path
        return Path(self.root) / path

    def _canonical_train(self) -> list[lists.ListEntry]:
        if getattr(self, "_train_entries", None) is None:
            self._train_entries = lists.read_split(self.require_root(), "train")
        return self._train_entries

    # --------------------------------------------------------------------------------------------- classes
    def class_names(self) -> list[str]:
        """The ImageNet names of labels 0..max label of the root's training list (all 1000 without one).

        A mini list with labels 0..7 gets 8 classes, so its zero-shot head and metrics are 8-way.
        """
        names = lists.class_names()
        if self.root is None or not (Path(self.root) / lists.LIST_FILES["train"]).is_file():
            return list(names)
        return list(names[:max(entry.label for entry in self._canonical_train()) + 1])

    def describe_class(self, class_folder: str, real_root: str | os.PathLike | None = None) -> ClassInfo:
        """Label, name and scoring text of a class folder: a WordNet id, or the class name as folders are named.

        The LLM prompt of an image is not recoverable from the layout; like the reference's scorer, the text is
        then ``a photo of {class name}``.
        """
        names = lists.class_names()
        wnids = lists.imagenet_wnids()
        if class_folder in wnids:
            label = wnids.index(class_folder)
        else:
            # the class name with spaces and '/' as '_', and '_<label>' appended for names that two labels share
            # ('missile', 'sunglasses'), as discl.data.hard_sample_csv names folders
            candidates: dict[str, int] = {}
            for index, name in enumerate(names):
                candidates.setdefault(class_folder_name(name).lower(), index)
                candidates[f"{class_folder_name(name)}_{index}".lower()] = index
            if class_folder.lower() not in candidates:
                raise InputError(class_folder, "not an ImageNet class folder (expected a WordNet id or a class name)")
            label = candidates[class_folder.lower()]
        return ClassInfo(label, names[label], self.class_text(names[label]))

    def class_text(self, class_name: str) -> str:
        """``--text class``: ``a photo of {class name}`` (the reference's ImageNet-LT scorer)."""
        return f"a photo of {class_name}"

    # ------------------------------------------------------------------------------------------ hard samples
    def training_images(self, list_file: str | os.PathLike | None = None) -> RealImages:
        """The images of ``ImageNet_LT_train.txt`` (or another list), keyed by their path relative to the root."""
        path = self.list_path(list_file)
        entries = lists.read_list(path, allow_guidance=False)
        labels = [entry.label for entry in entries]
        bad = next((i for i, label in enumerate(labels) if not 0 <= label < lists.NUM_CLASSES), None)
        if bad is not None:
            raise lists.line_error(path, entries[bad].line, f"label {labels[bad]} outside 0..{lists.NUM_CLASSES - 1}")
        root = self.require_root()
        paths = [str((root / entry.path).resolve()) for entry in entries]
        # a list has no header: a row is its line (blank lines counted), what an editor shows
        return RealImages(paths, labels, [entry.path for entry in entries], source=path,
                          rows=[entry.line for entry in entries])

    def zeroshot_templates(self) -> Sequence:
        """open_clip's SIMPLE_IMAGENET_TEMPLATES (callables)."""
        from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

        return SIMPLE_IMAGENET_TEMPLATES

    # -------------------------------------------------------------------------------------------- generation
    def generation_prompt(self, class_name: str) -> str:
        """``a 8k real photo: {class name}``: the prompt without an LLM prompt JSON (the paper uses one)."""
        from discl.prompts import imagenet_lt_prompt

        return imagenet_lt_prompt(class_name)

    # ---------------------------------------------------------------------------------------- training tables
    def caption_templates(self) -> Sequence[str]:
        """One caption per row (the trainer is a classifier; the title is informative only)."""
        return ("a photo of a {}.",)

    def write_reference_tables(self, tables, folder: Path, synthetic_root: Path) -> dict[str, Path]:
        """The lists the reference's loader (``LT_Dataset_MIX``) reads, ``path label guidance train_cnt`` per line:
        ``train.txt``, and ``validate.txt`` with its copy ``train_curri.txt`` (the name the loader derives from
        ``--train_file train``); ``data_roots.json``. Real rows are relative to the ImageNet root, synthetic rows
        absolute, so the loader's one ``--datapath`` (the ImageNet root) finds both; ``train_cnt`` is the class's
        count in ``ImageNet_LT_train.txt`` (the loader's tail rule)."""
        from discl.data.training_tables import TRAIN_COUNT, write_data_roots, write_imagenet_lt_list

        folder = Path(folder)
        counts = np.asarray(self.class_counts(), dtype=np.int64)
        paths = {"train_list": folder / "train.txt", "validation_list": folder / "validate.txt",
                 "curriculum_list": folder / "train_curri.txt"}
        # a space would split the line: such a root keeps its rows relative to it (data_roots.json names it)
        absolute = not any(character.isspace() for character in str(synthetic_root))
        if not absolute:
            log.warning("%s contains whitespace: the synthetic rows of %s stay relative to it (data_roots.json); "
                        "the reference's loader, which joins every row to one root, cannot read them", synthetic_root,
                        paths["train_list"])
        tables_and_names = ((tables.train, ["train_list"]), (tables.validation, ["validation_list", "curriculum_list"]))
        for table, names in tables_and_names:
            real = (table["guidance"].to_numpy() == REAL) | (not absolute)
            rows = pd.DataFrame({"path": np.where(real, table["path"].to_numpy(dtype=object),
                                                  table["filepath"].to_numpy(dtype=object)),
                                 "label": table["label"].to_numpy(), "guidance": table["guidance"].to_numpy(),
                                 TRAIN_COUNT: counts[table["label"].to_numpy(dtype=np.int64)]})
            for name in names:
                write_imagenet_lt_list(rows, paths[name])
        paths["roots"] = write_data_roots(folder, self.require_root(), synthetic_root)
        return paths

    # ----------------------------------------------------------------------------------- training, evaluation
    def class_counts(self) -> list[int]:
        """Images per label of the canonical ``ImageNet_LT_train.txt`` (not of a curriculum table)."""
        try:
            return lists.class_counts(self._canonical_train(), len(self.class_names()))
        except ValueError as err:
            raise InputError(self.require_root() / lists.LIST_FILES["train"], str(err)) from None

    def class_groups(self) -> np.ndarray:
        """Per label ``many`` / ``medium`` / ``few`` under the option ``split_convention``."""
        from discl.lt_metrics import class_groups

        convention = self.option("split_convention", "reference")
        if convention not in lists.CONVENTIONS:
            raise InputError("--split-convention", f"expected one of {lists.CONVENTIONS}, got {convention!r}")
        return class_groups(self.class_counts(), convention)

    def eval_set(self, split: str) -> EvalSet:
        """``ImageNet_LT_{split}.txt`` (split = val | test), or the list of option ``{split}_list``."""
        if split not in self.eval_splits:
            raise InputError("--eval-splits", f"unknown ImageNet-LT split {split!r}; expected {self.eval_splits}")
        root = self.require_root()
        other = self.option(f"{split}_list")
        entries = (lists.read_list(self.list_path(other), allow_guidance=False) if other
                   else lists.read_split(root, split))
        return EvalSet(split, [str((root / e.path).resolve()) for e in entries],
                       np.asarray([e.label for e in entries], dtype=np.int64))

    def evaluate(self, eval_set: EvalSet, predictions: np.ndarray) -> dict[str, float]:
        """Top-1 in percent: ``overall`` and per group (NaN for a group without evaluation images)."""
        from discl.lt_metrics import group_accuracy

        groups = self.class_groups()
        labels = np.asarray(eval_set.labels, dtype=np.int64)
        if labels.size and labels.max() >= len(groups):
            raise InputError(eval_set.name, f"label {int(labels.max())} has no training count "
                                            f"({len(groups)} classes in the training list)")
        return group_accuracy(predictions, labels, groups)

    def format_metrics(self, metrics: dict[str, float]) -> str:
        """``overall 39.8 (many 56.8, medium 30.7, few 23.6)``."""
        return (f"overall {metrics['overall']:.2f} (many {metrics['many']:.2f}, medium {metrics['medium']:.2f}, "
                f"few {metrics['few']:.2f})")
