"""The benchmarks of docs/performance.md run on tiny sizes and print their last lines (the numbers themselves are
measured by running them, not here: no timed assertions)."""

from __future__ import annotations

import re

import pytest

from helpers import load_script

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bench_scale_times_every_step_and_prints_growth_and_ratio(hf_home, capsys):
    bench = load_script("bench/bench_scale.py")
    assert bench.main(["--sizes", "800", "1600", "--repeats", "1", "--hf-home", str(hf_home)]) == 0
    out = capsys.readouterr().out
    for name, _ in bench.STEPS:
        assert re.search(rf"^{re.escape(name)}\s+\d+\.\d+s\s+\d+\.\d+s\s+-?\d+\.\d+\s+\d+\.\d\d$", out, re.M), name
    assert re.search(r"^pandas\.read_csv\s+\d+\.\d+s\s+\d+\.\d+s\s+-?\d+\.\d+$", out, re.M)
    assert len(re.findall(r"^  pandas\.read_csv beside\s+1600 ", out, re.M)) == len(bench.STEPS)
    assert re.search(r"^peak MB\s+\d+\s+\d+", out, re.M)
    assert re.fullmatch(r"growth=-?\d+\.\d\d ratio=\d+\.\d", out.strip().splitlines()[-1])


def test_bench_decode_prints_speedup_and_difference(capsys):
    bench = load_script("bench/bench_decode.py")
    assert bench.main(["--images", "1", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"speedup=\d+\.\d\d max_diff=\d+", lines[-1])
    assert sum("full decode + resize" in line for line in lines) == 2  # both targets


def test_bench_train_prints_the_data_overhead(hf_home, capsys):
    bench = load_script("bench/bench_train.py")
    assert bench.main(["--batch-size", "4", "--steps", "2", "--warmup-steps", "1", "--workers", "1",
                       "--size", "96x54", "--wall", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"data_overhead=\d+\.\d%", lines[-1])
    assert any(line.startswith("loader capacity:") for line in lines)
    assert any(line.startswith("measured wall-time overhead") for line in lines)
