"""Production model loading: open_clip configs found by name or path, never through the test harness."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from discl.errors import InputError
from discl.models import create_open_clip, open_clip_config_dirs, resolve_open_clip_name

SRC = Path(__file__).resolve().parents[1] / "src" / "discl"


def _imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_production_code_never_imports_the_test_harness():
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if "tiny" not in p.relative_to(SRC).parts
                 and any(name == "discl.tiny" or name.startswith("discl.tiny.") for name in _imports_of(p))]
    assert offenders == []


def test_open_clip_config_by_json_path(tmp_path):
    from discl.tiny.models import TINY_OPEN_CLIP_CONFIG

    path = tmp_path / "my-small-clip.json"
    path.write_text(json.dumps(TINY_OPEN_CLIP_CONFIG))
    assert resolve_open_clip_name(str(path)) == "my-small-clip"
    model, _, _, tokenizer = create_open_clip(str(path), "", device="cpu")
    size = TINY_OPEN_CLIP_CONFIG["vision_cfg"]["image_size"]
    assert tuple(model.visual.image_size) == (size, size)
    assert tokenizer(["a cat"]).shape[-1] == TINY_OPEN_CLIP_CONFIG["text_cfg"]["context_length"]


def test_open_clip_config_from_env_folder(tmp_path, monkeypatch):
    from discl.tiny.models import TINY_OPEN_CLIP_CONFIG

    (tmp_path / "env-clip.json").write_text(json.dumps(TINY_OPEN_CLIP_CONFIG))
    monkeypatch.setenv("DISCL_OPEN_CLIP_CONFIGS", str(tmp_path))
    assert open_clip_config_dirs()[0] == tmp_path
    assert resolve_open_clip_name("env-clip") == "env-clip"


def test_unknown_open_clip_model_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="unknown open_clip model 'no-such-clip'"):
        resolve_open_clip_name("no-such-clip")
    with pytest.raises(InputError, match="model config not found"):
        resolve_open_clip_name(str(tmp_path / "missing.json"))
