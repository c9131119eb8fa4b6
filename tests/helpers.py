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
