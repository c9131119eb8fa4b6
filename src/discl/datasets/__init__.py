"""The dataset registry: name → :class:`~discl.datasets.base.Dataset` subclass, one module per dataset.

Every module in this package that defines a dataset decorates it with :func:`register`; the registry imports
them on first use, so a new dataset is one new file here (or, outside the package, ``--dataset
my_package.my_module``: a module that registers one dataset). See ``docs/own-dataset.md``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from typing import Any, Sequence

from discl.datasets.base import (ClassInfo, CsvLayout, Dataset, EvalSet, RealImages,  # noqa: F401
                                 class_folder_name, frame_of, render)
from discl.errors import InputError

_REGISTRY: dict[str, type[Dataset]] = {}
_DISCOVERED = False
_NOT_DATASETS = {"base"}


def register(cls: type[Dataset]) -> type[Dataset]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"dataset name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _NOT_DATASETS:
            importlib.import_module(f"{__name__}.{module.name}")
    _DISCOVERED = True


def names() -> list[str]:
    """Registered dataset names, sorted."""
    _discover()
    return sorted(_REGISTRY)


def dataset_class(name: str) -> type[Dataset]:
    """The class registered as ``name``; a dotted name imports that module first (a user's own dataset)."""
    _discover()
    if name not in _REGISTRY and "." in name:
        before = set(_REGISTRY)
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise InputError("--dataset", f"cannot import dataset module {name!r}: {err}") from None
        added = set(_REGISTRY) - before
        if len(added) == 1:
            return _REGISTRY[added.pop()]
        defined = [cls for cls in _REGISTRY.values() if cls.__module__ == name]
        if len(defined) == 1:  # imported by an earlier lookup
            return defined[0]
    if name not in _REGISTRY:
        raise InputError("--dataset", f"unknown dataset {name!r}; registered: {', '.join(names())} "
                                      "(or a module path that registers one)")
    return _REGISTRY[name]


def get_dataset(name: str, root=None, **options: Any) -> Dataset:
    """The dataset ``name`` bound to ``root`` (a folder, or a CSV for the folder kind) with its options."""
    from pathlib import Path

    cls = dataset_class(name)
    return cls(root=None if root in (None, "") else Path(root), options=dict(options))


def dataset_parser(required_root: bool = True, default: str | None = None) -> argparse.ArgumentParser:
    """Parent parser of the dataset flags every entry script shares."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("dataset")
    group.add_argument("--dataset", default=default, required=default is None,
                       help="registered dataset name or a module that registers one" +
                            (f" (default: {default})" if default else " (required)"))
    group.add_argument("--data-root", "--root", dest="data_root", required=required_root, default=None,
                       help="dataset root: WILDS root holding iwildcam_v2.0/, ImageNet-LT root with its lists, "
                            "or an ImageFolder root / CSV for the folder kind"
                            + (" (required)" if required_root else " (default: none)"))
    group.add_argument("--prompt-template", default=None,
                       help="folder kind: generation prompt with one {} for the class name "
                            "(default: 'a photo of a {}')")
    group.add_argument("--class-names", default=None,
                       help="folder kind: text file with one readable class name per line, in label order "
                            "(default: the folder / CSV label names)")
    group.add_argument("--dataset-option", dest="dataset_options", action="append", default=[],
                       metavar="KEY=VALUE",
                       help="any other option of the dataset, repeatable (folder kind: val_fraction=0.1, "
                            "val_seed=0; docs/own-dataset.md) (default: none)")
    return parser


def dataset_options(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """The options of ``dataset_parser``'s flags (``--dataset-option KEY=VALUE`` as strings) plus ``extra``."""
    options: dict[str, Any] = {}
    for item in getattr(args, "dataset_options", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError("--dataset-option", f"expected KEY=VALUE, got {item!r}")
        options[key.strip().replace("-", "_")] = value.strip()
    options.update(prompt_template=getattr(args, "prompt_template", None),
                   class_names=getattr(args, "class_names", None))
    options.update({k: v for k, v in extra.items() if v is not None})
    return options


def from_args(args: argparse.Namespace, **extra: Any) -> Dataset:
    """The dataset described by ``dataset_parser``'s flags (``extra``: options set by the calling stage)."""
    options = dataset_options(args, **extra)  # KEY=VALUE form first
    check_user_options(args.dataset, getattr(args, "dataset_options", None) or [])
    dataset = get_dataset(args.dataset, getattr(args, "data_root", None), **options)
    dataset.check_options()
    return dataset


def check_user_options(name: str, items: Sequence[str]) -> None:
    """Every ``--dataset-option KEY=VALUE`` names an option the dataset declares (``Dataset.user_options``)."""
    known = dataset_class(name).user_options
    for item in items:
        key = item.partition("=")[0].strip().replace("-", "_")
        if key and key not in known:
            takes = ("it takes " + ", ".join(f"{k} ({v})" for k, v in known.items())) if known else "it takes none"
            raise InputError("--dataset-option", f"the {name} dataset has no option {key!r}; {takes}")
