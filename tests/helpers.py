"""Helpers shared by the test modules (pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str):
    """Import an entry script (a file, not a package module) so a test can call its ``main([...])`` in-process."""
    name = "script_" + relative_path.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    # registered like an imported module, so dataclasses defined in the script can resolve their annotations
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def one_hard_imagenet_lt_image(root: Path, folder: Path, prompts: list[str]) -> tuple[Path, Path]:
    """A hard-sample CSV holding the last training image of the ImageNet-LT ``root``, and a prompt JSON giving its
    class ``prompts`` (``{}``: the class name), both written into ``folder``."""
    import json

    import pandas as pd

    from discl.data.hard_sample_csv import write_hard_sample_csv
    from discl.data.imagenet_lt import class_names, read_split

    entry = read_split(root, "train")[-1]
    name = class_names()[entry.label]
    frame = pd.DataFrame({"class_id": [entry.label], "class_name": [name], "real_path": [entry.path],
                          "image_stem": [Path(entry.path).stem]})
    write_hard_sample_csv(frame, folder / "hard.csv", "imagenet_lt")
    (folder / "prompts.json").write_text(json.dumps({name: [prompt.format(name) for prompt in prompts]}))
    return folder / "hard.csv", folder / "prompts.json"
