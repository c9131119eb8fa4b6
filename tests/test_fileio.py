"""Atomic writes: a failed or killed write never leaves a truncated target."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from discl import fileio

# A child that replaces TARGET with 20 MB through atomic_write, announces it is half way, then waits to be killed.
_SLOW_WRITER = """
import sys, time
from discl.fileio import atomic_write
with atomic_write(sys.argv[1], "wb") as handle:
    for chunk in range(20):
        handle.write(bytes([65 + chunk % 26]) * 1_000_000)
        if chunk == 10:
            handle.flush()
            print("half", flush=True)
            time.sleep(60)
"""


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writes_create_folders_and_leave_no_temp_files(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    fileio.atomic_write_text(target, "héllo\n")
    assert target.read_text(encoding="utf-8") == "héllo\n"
    fileio.atomic_write_text(target, "second")
    assert target.read_text() == "second" and _names(target.parent) == ["out.txt"]


def test_exception_midway_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "table.csv"
    fileio.atomic_write_text(target, "old,content\n")
    with pytest.raises(RuntimeError, match="boom"):
        with fileio.atomic_write(target) as handle:
            handle.write("new,partial\n" * 1000)
            raise RuntimeError("boom")
    assert target.read_text() == "old,content\n"
    assert _names(tmp_path) == ["table.csv"]


def test_interrupt_before_first_write_creates_nothing(tmp_path):
    target = tmp_path / "never.json"
    with pytest.raises(KeyboardInterrupt):
        with fileio.atomic_write(target):
            raise KeyboardInterrupt
    assert _names(tmp_path) == []


def test_sigkill_mid_write_never_truncates_the_target(tmp_path):
    target = tmp_path / "big.bin"
    fileio.atomic_write_bytes(target, b"old bytes")
    child = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "half"
        stray = [p for p in tmp_path.iterdir() if fileio.is_temp_file(p)]
        assert len(stray) == 1 and stray[0].stat().st_size >= 11_000_000  # the data really was being written
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"old bytes"
    # the killed write's temp file stays behind, but it is recognisable and never mistaken for the target
    leftovers = [p for p in tmp_path.iterdir() if p != target]
    assert leftovers and all(fileio.is_temp_file(p) for p in leftovers)


def test_json_csv_bytes_image_and_torch_round_trip(tmp_path):
    fileio.atomic_write_json(tmp_path / "x.json", {"strength": 0.5, "name": "café"})
    assert json.loads((tmp_path / "x.json").read_text(encoding="utf-8")) == {"strength": 0.5, "name": "café"}

    frame = pd.DataFrame({"title": ["a", "b"], "label": [1, 2]})
    fileio.atomic_write_csv(tmp_path / "t.tsv", frame, sep="\t")
    assert (tmp_path / "t.tsv").read_text() == "title\tlabel\na\t1\nb\t2\n"

    fileio.atomic_write_bytes(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"

    pixels = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    fileio.atomic_save_image(Image.fromarray(pixels), tmp_path / "img.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "img.png")), pixels)
    fileio.atomic_save_image(Image.fromarray(pixels), tmp_path / "img.jpg", quality=95)
    assert Image.open(tmp_path / "img.jpg").format == "JPEG"

    state = {"epoch": 3, "weights": torch.arange(4.0)}
    fileio.atomic_torch_save(state, tmp_path / "ckpt.pt")
    loaded = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(loaded["weights"], state["weights"])
    assert not any(fileio.is_temp_file(p) for p in tmp_path.iterdir())


def test_unserialisable_json_leaves_the_old_file(tmp_path):
    target = tmp_path / "state.json"
    fileio.atomic_write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        fileio.atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": 1} and _names(tmp_path) == ["state.json"]


def test_written_files_follow_the_umask(tmp_path):
    """mkstemp makes 0600 files; ours get the mode a plain open() would: readable by the group under umask 022."""
    import stat

    previous = os.umask(0o022)
    try:
        fileio.atomic_write_text(tmp_path / "shared.txt", "x")
        assert stat.S_IMODE((tmp_path / "shared.txt").stat().st_mode) == 0o644
        os.umask(0o077)
        fileio.atomic_write_text(tmp_path / "private.txt", "x")
        assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600
    finally:
        os.umask(previous)


def test_installed_snapshots_follow_the_umask(tmp_path):
    """A model snapshot is built in a mkdtemp folder (0700) by libraries that may rename 0600 temp files into it:
    installed, every folder and file has the umask's mode, so a lab sharing one cache can read it."""
    import stat

    from discl.tiny.models import install_snapshot

    def save(folder):
        (folder / "vae").mkdir()
        os.close(os.open(folder / "vae" / "weights.safetensors", os.O_CREAT | os.O_WRONLY, 0o600))

    previous = os.umask(0o022)
    try:
        snapshot = install_snapshot(tmp_path, "org/model", "0" * 40, save, "a test")
    finally:
        os.umask(previous)
    modes = {path.relative_to(snapshot).as_posix(): stat.S_IMODE(path.stat().st_mode)
             for path in [snapshot, *snapshot.rglob("*")]}
    assert modes["."] == modes["vae"] == 0o755 and modes["vae/weights.safetensors"] == 0o644
    assert {mode for name, mode in modes.items() if (snapshot / name).is_file()} == {0o644}  # the marker too
