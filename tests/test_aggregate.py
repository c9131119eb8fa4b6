"""Aggregation on hand-made run folders: mean ± std and paired t intervals checked by hand, missing and unfinished
runs, WiSE-FT rows, the paper's numbers, and the Markdown / CSV / LaTeX tables."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from helpers import load_script

from discl.experiments import aggregate as A
from discl.experiments.spec import load_experiment

EXPERIMENT = """
name = "hand"
runs_dir = "{runs}"
seeds = [0, 1, 2]
[defaults]
trainer = "flyp"
dataset = "iwildcam"
compare = "base"
[table]
title = "hand-made"
columns = [{{ title = "OOD", split = "test", metric = "f1" }}, {{ title = "ID", split = "id_test", metric = "f1" }}]
scale = 100
decimals = 2
[[methods]]
id = "base"
name = "Base"
paper = {{ OOD = [35.5, 1.1], ID = 52.2 }}
[[methods]]
id = "ours"
name = "Ours"
wiseft = {wiseft}
paper = {{ OOD = [38.2, 0.5] }}
"""

# per method and seed: (OOD f1, ID f1) of the selected epoch
BASE = {0: (0.30, 0.50), 1: (0.32, 0.52), 2: (0.34, 0.57)}
OURS = {0: (0.33, 0.50), 1: (0.36, 0.55), 2: (0.36, 0.60)}


def write_summary(folder: Path, ood: float, ind: float, epochs_done: int = 3, num_epochs: int = 3) -> None:
    """A summary.json as the training loop writes it (only what aggregation reads, plus the curves)."""
    folder.mkdir(parents=True, exist_ok=True)
    best = {"id_val": {"f1": 0.9}, "id_test": {"f1": ind}, "test": {"f1": ood}}
    epochs = [{"epoch": e, "test_f1": ood * (e + 1) / epochs_done, "id_test_f1": ind} for e in range(epochs_done)]
    (folder / "summary.json").write_text(json.dumps({
        "curriculum": "none", "num_epochs": num_epochs, "epochs_done": epochs_done, "best_epoch": epochs_done - 1,
        "best": best, "epochs": epochs, "stages": [], "steps": 3, "steps_per_epoch": 1}))


def write_wiseft(folder: Path, alpha: float, ood: float, ind: float) -> None:
    (folder / "wiseft").mkdir(parents=True, exist_ok=True)
    (folder / "wiseft" / "wiseft.json").write_text(json.dumps({
        "chosen_alpha": alpha, "chosen": {"id_test": {"f1": ind}, "test": {"f1": ood}},
        "rows": [{"alpha": 0.0, "test_f1": 0.1, "id_test_f1": 0.2},
                 {"alpha": 1.0, "test_f1": ood, "id_test_f1": ind}]}))


def make_experiment(tmp_path: Path, wiseft: bool = False):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "hand.toml"
    path.write_text(EXPERIMENT.format(runs=tmp_path / "runs", wiseft=str(wiseft).lower()))
    return load_experiment(path)


def fill(tmp_path: Path, skip: tuple = ()) -> None:
    for method, values in (("base", BASE), ("ours", OURS)):
        for seed, (ood, ind) in values.items():
            if (method, seed) not in skip:
                write_summary(tmp_path / "runs" / method / f"seed{seed}", ood, ind)


# --- the arithmetic -------------------------------------------------------------------------------------------

def test_mean_and_sample_std_by_hand():
    stat = A.mean_std([30.0, 32.0, 34.0])
    assert stat.mean == pytest.approx(32.0) and stat.std == pytest.approx(2.0) and stat.n == 3  # ddof = 1
    assert A.mean_std([5.0]) == A.Stat(5.0, None, 1)
    assert A.mean_std([]) == A.Stat(None, None, 0)


def test_paired_difference_t_interval_by_hand():
    # differences 3, 4, 2: mean 3, sd 1, n 3; t(0.975, 2) = 4.303 → half width 4.303 / √3 = 2.484
    difference = A.paired_difference({0: 33.0, 1: 36.0, 2: 36.0}, {0: 30.0, 1: 32.0, 2: 34.0})
    assert difference.mean == pytest.approx(3.0)
    assert difference.low == pytest.approx(3.0 - 2.4841, abs=1e-3)
    assert difference.high == pytest.approx(3.0 + 2.4841, abs=1e-3)
    assert difference.seeds == (0, 1, 2)
    # a 90% interval: t(0.95, 2) = 2.920 → half width 1.686
    narrower = A.paired_difference({0: 33.0, 1: 36.0, 2: 36.0}, {0: 30.0, 1: 32.0, 2: 34.0}, confidence=0.9)
    assert narrower.high - narrower.mean == pytest.approx(2.920 / math.sqrt(3), abs=1e-3)
    # only the seeds both have are paired; one pair gives a difference without an interval
    single = A.paired_difference({0: 33.0, 5: 99.0}, {0: 30.0, 1: 32.0})
    assert (single.mean, single.low, single.high, single.seeds) == (pytest.approx(3.0), None, None, (0,))
    assert A.paired_difference({1: 1.0}, {0: 1.0}).mean is None


# --- collecting run folders -----------------------------------------------------------------------------------

def test_table_of_complete_runs(tmp_path):
    experiment = make_experiment(tmp_path)
    fill(tmp_path)
    base, ours = A.build_rows(experiment)
    # OOD ×100: base 30, 32, 34 → 32.00 ± 2.00; ours 33, 36, 36 → 35.00 ± 1.73
    assert base.cells["OOD"].mean == pytest.approx(32.0) and base.cells["OOD"].std == pytest.approx(2.0)
    assert ours.cells["OOD"].mean == pytest.approx(35.0) and ours.cells["OOD"].std == pytest.approx(math.sqrt(3))
    # ID: base 50, 52, 57 → 53.00 ± 3.61
    assert base.cells["ID"].mean == pytest.approx(53.0) and base.cells["ID"].std == pytest.approx(math.sqrt(13))
    assert base.compare is None and ours.compare == "base" and not base.differences
    ood = ours.differences["OOD"]
    assert (ood.mean, ood.seeds) == (pytest.approx(3.0), (0, 1, 2))
    assert ood.low == pytest.approx(0.5159, abs=1e-3) and ood.high == pytest.approx(5.4841, abs=1e-3)
    # ID differences 0, 3, 3: mean 2, sd √3 → half width 4.303 · √3 / √3 = 4.303
    assert ours.differences["ID"].low == pytest.approx(2.0 - 4.3027, abs=1e-3)

    markdown = A.to_markdown(experiment, [base, ours])
    assert "| Base | 32.00 ± 2.00 | 53.00 ± 3.61 | 3/3 | 35.50 ± 1.10 | 52.20 |" in markdown
    assert "| Ours | 35.00 ± 1.73 | 55.00 ± 5.00 | 3/3 | 38.20 ± 0.50 | — |" in markdown
    assert "| Ours | Base | +3.00 [+0.52, +5.48] | +2.00 [-2.30, +6.30] | 3 |" in markdown
    assert "†" not in markdown

    rows = list(csv.DictReader(io.StringIO(A.to_csv(experiment, [base, ours]))))
    assert [r["column"] for r in rows] == ["OOD", "ID", "OOD", "ID"]
    assert float(rows[2]["mean"]) == pytest.approx(35.0) and float(rows[2]["ci_low"]) == pytest.approx(0.5159, abs=1e-3)
    assert rows[0]["paper_mean"] == "35.5" and rows[1]["paper_std"] == "" and rows[2]["paired_seeds"] == "0 1 2"

    latex = A.to_latex(experiment, [base, ours])
    assert r"Base & $32.00 \pm 2.00$ & $53.00 \pm 3.61$ & $35.50 \pm 1.10$ & $52.20$ \\" in latex
    assert latex.startswith(r"\begin{tabular}{lcccc}") and r"\bottomrule" in latex


def test_missing_and_unfinished_runs_are_marked_not_counted(tmp_path):
    experiment = make_experiment(tmp_path)
    fill(tmp_path, skip=(("ours", 2), ("base", 1)))
    # ours seed 2 stopped after 1 of 3 epochs (its checkpoint exists); base seed 1 never started
    unfinished = tmp_path / "runs" / "ours" / "seed2"
    write_summary(unfinished, 0.99, 0.99, epochs_done=1, num_epochs=3)
    (unfinished / "checkpoints").mkdir()
    (unfinished / "checkpoints" / "last.pt").write_bytes(b"")
    base, ours = A.build_rows(experiment)
    assert ours.cells["OOD"].n == 2 and ours.cells["OOD"].mean == pytest.approx(34.5)  # 33, 36
    assert base.cells["OOD"].n == 2 and base.cells["OOD"].mean == pytest.approx(32.0)  # 30, 34
    assert [(r.run.seed, r.status) for r in ours.incomplete] == [(2, "incomplete")]
    assert [(r.run.seed, r.status) for r in base.incomplete] == [(1, "missing")]
    # only seed 0 is complete in both: a difference without an interval
    assert ours.differences["OOD"] == A.Difference(pytest.approx(3.0), None, None, (0,))
    markdown = A.to_markdown(experiment, [base, ours])
    assert "| Ours † | 34.50 ± 2.12 |" in markdown and "| 2/3 |" in markdown
    assert "† Base: seed 1 missing" in markdown
    assert "† Ours: seed 2 incomplete (epoch 1 of 3)" in markdown
    assert "| Ours | Base | +3.00 | +0.00 | 1 |" in markdown
    # --include-incomplete counts the unfinished run at its best epoch so far, still marked
    base, ours = A.build_rows(experiment, include_incomplete=True)
    assert ours.cells["OOD"].n == 3 and ours.cells["OOD"].mean == pytest.approx((33 + 36 + 99) / 3)
    assert "seed 2 incomplete (epoch 1 of 3), counted" in A.to_markdown(experiment, [base, ours])
    # a method without any finished run
    empty = make_experiment(tmp_path / "empty")
    rows = A.build_rows(empty)
    assert all(row.cells["OOD"] == A.Stat(None, None, 0) for row in rows)
    assert "| Base † | — | — | 0/3 |" in A.to_markdown(empty, rows)


def test_wiseft_rows_and_runs_csv(tmp_path):
    experiment = make_experiment(tmp_path, wiseft=True)
    fill(tmp_path)
    for seed, alpha in ((0, 0.4), (1, 0.6)):  # seed 2 has not run WiSE-FT yet
        ood, ind = OURS[seed]
        write_wiseft(tmp_path / "runs" / "ours" / f"seed{seed}", alpha, ood + 0.01, ind + 0.02)
    rows = A.build_rows(experiment)
    assert [r.id for r in rows] == ["base", "ours", "ours+wiseft"]
    ours, wise = rows[1], rows[2]
    assert wise.cells["OOD"].mean == pytest.approx(35.5) and wise.cells["OOD"].n == 2  # 34, 37
    assert wise.alpha.mean == pytest.approx(0.5)
    # the WiSE-FT row is compared with its method (the baseline has no WiSE-FT): +1 on OOD for both seeds
    assert wise.compare == "ours" and wise.differences["OOD"].mean == pytest.approx(1.0)
    assert wise.differences["OOD"].low == pytest.approx(1.0) and wise.differences["OOD"].high == pytest.approx(1.0)
    assert [r.status for r in ours.runs] == ["complete"] * 3  # training finished; only WiSE-FT is left
    markdown = A.to_markdown(experiment, rows)
    assert "| Ours + WiSE-FT (α = 0.50 ± 0.14) † | 35.50 ± 2.12 |" in markdown
    runs = list(csv.DictReader(io.StringIO(A.runs_csv(experiment, rows))))
    assert [(r["method_id"], r["seed"], r["counted"], r["alpha"]) for r in runs[-3:]] == [
        ("ours+wiseft", "0", "1", "0.4"), ("ours+wiseft", "1", "1", "0.6"), ("ours+wiseft", "2", "0", "")]


def test_aggregate_script_writes_tables_and_figures(tmp_path, capsys):
    experiment = make_experiment(tmp_path, wiseft=True)
    fill(tmp_path)
    write_wiseft(tmp_path / "runs" / "ours" / "seed0", 0.5, 0.4, 0.6)
    assert load_script("curriculum/aggregate.py").main([str(experiment.path), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "| Base | 32.00 ± 2.00 |" in printed
    for name in ("table.md", "table.csv", "table.tex", "runs.csv", "curves.pdf", "curves.png",
                 "wiseft_ours.pdf", "wiseft_ours.png"):
        assert (tmp_path / "out" / name).is_file(), name
    assert (tmp_path / "out" / "table.md").read_text() in printed


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.write_text(f.read_text()[:40]), "summary.json: not valid JSON"),
    (lambda f: f.write_text("[]"), "summary.json: expected a JSON object, got list"),
    (lambda f: f.write_bytes(b'{"best": "\xff"}'), "summary.json: line 1: not UTF-8 text"),
    (lambda f: (f.parent / "wiseft" / "wiseft.json").write_text('{"chosen_alpha": 0.5, "cho'),
     "wiseft.json: not valid JSON"),
    (lambda f: (f.parent / "wiseft" / "wiseft.json").write_text('"text"'),
     "wiseft.json: expected a JSON object, got str"),
])
def test_a_damaged_run_file_is_an_error_naming_it_and_nothing_is_written(tmp_path, capsys, damage, message):
    from discl.cli import run_cli

    experiment = make_experiment(tmp_path, wiseft=True)
    fill(tmp_path)
    folder = tmp_path / "runs" / "ours" / "seed1"
    write_wiseft(folder, 0.5, 0.4, 0.6)
    damage(folder / "summary.json")
    with pytest.raises(SystemExit) as info:
        run_cli(load_script("curriculum/aggregate.py").main, [str(experiment.path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {folder}") and message in err
    assert not (tmp_path / "out").exists()
