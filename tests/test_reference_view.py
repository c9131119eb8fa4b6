"""data_generation/reference_view.py: a folder of links to the class folders only, which the reference's
ImageNet-LT scripts can walk (they take every entry of their --syn_path for a class folder)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import load_script
from PIL import Image

from discl.cli import run_cli


def _output(root: Path, classes=("tench", "goldfish")) -> Path:
    """A generation output: class folders and everything our stages keep beside them."""
    for name in classes:
        folder = root / name / "Strength50_guidance100_seed10"
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(folder / f"n0144_{name}.JPEG", format="JPEG")
    for bookkeeping in ("manifests", "run_records", "clip_cache", "failures", ".tmp-killed"):
        (root / bookkeeping).mkdir(exist_ok=True)
        (root / bookkeeping / "x.csv").write_text("a\n")
    (root / "clip_score.pkl").write_bytes(b"")
    return root


def _reference_walk(syn_path: Path) -> list[str]:
    """The reference scorer's walk of --syn_path: every entry a class folder, every entry of it a setting folder."""
    seen = []
    for class_name in os.listdir(syn_path):
        for setting in os.listdir(os.path.join(syn_path, class_name)):
            for image in os.listdir(os.path.join(syn_path, class_name, setting)):
                Image.open(os.path.join(syn_path, class_name, setting, image)).convert("RGB")
                seen.append(f"{class_name}/{setting}/{image}")
    return sorted(seen)


def test_the_view_holds_the_class_folders_only(tmp_path, capsys):
    script = load_script("data_generation/reference_view.py")
    output = _output(tmp_path / "gen")
    with pytest.raises(NotADirectoryError):  # the reference's walk on the output itself
        _reference_walk(output)
    assert script.main(["--syn-path", str(output), "--view", str(tmp_path / "view")]) == 0
    assert "2 class folder link(s)" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "view")) == ["goldfish", "tench"]
    assert _reference_walk(tmp_path / "view") == ["goldfish/Strength50_guidance100_seed10/n0144_goldfish.JPEG",
                                                  "tench/Strength50_guidance100_seed10/n0144_tench.JPEG"]
    # asked again after more classes were made: the view is remade, the class folders stay
    _output(output, ("tench", "goldfish", "carp"))
    assert script.main(["--syn-path", str(output), "--view", str(tmp_path / "view")]) == 0
    assert sorted(os.listdir(tmp_path / "view")) == ["carp", "goldfish", "tench"]
    assert (output / "tench" / "Strength50_guidance100_seed10" / "n0144_tench.JPEG").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("case, message", [
    ("not a view", "view: exists and holds more than links: choose a new --view folder"),
    ("inside", "--view must lie outside --syn-path"),
    ("no output", "nowhere: --syn-path is not a folder"),
    ("no classes", "holds no class folder"),
])
def test_bad_views_are_refused_and_nothing_is_deleted(tmp_path, capsys, case, message):
    output = _output(tmp_path / "gen") if case != "no classes" else tmp_path / "gen"
    output.mkdir(exist_ok=True)
    view = {"inside": output / "view", "no output": tmp_path / "view"}.get(case, tmp_path / "view")
    syn = tmp_path / "nowhere" if case == "no output" else output
    if case == "not a view":
        view.mkdir()
        (view / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(load_script("data_generation/reference_view.py").main, ["--syn-path", str(syn), "--view", str(view)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and "\n" not in error
    if case == "not a view":
        assert (view / "notes.txt").read_text() == "mine"
    if case == "inside":
        assert not view.exists()
