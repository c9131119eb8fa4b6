"""Shared training infrastructure: LR schedules, stats table, checkpoints with RNG states, selection, report."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from discl import checkpoint, lr, stats
from discl.errors import InputError


def test_cosine_lr_hand_computed():
    # warm-up 4 steps to 1.0, cosine over the remaining 8 of 12
    assert lr.cosine_lr(0, 1.0, 4, 12) == 0.25
    assert lr.cosine_lr(3, 1.0, 4, 12) == 1.0
    assert lr.cosine_lr(4, 1.0, 4, 12) == 1.0
    assert lr.cosine_lr(8, 1.0, 4, 12) == pytest.approx(0.5)
    assert lr.cosine_lr(12, 1.0, 4, 12) == pytest.approx(0.0)
    assert lr.cosine_lr(20, 1.0, 4, 12) == pytest.approx(0.0)
    assert lr.cosine_lr(8, 1.0, 4, 12, min_lr=0.1) == pytest.approx(0.55)
    assert lr.cosine_annealing_lr(5, 2.0, 10) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        lr.cosine_lr(-1, 1.0, 4, 12)


def test_stats_append_replaces_redone_epochs(tmp_path):
    path = tmp_path / "stats.tsv"
    stats.append_stats(path, {"epoch": 0, "f1": 0.5})
    stats.append_stats(path, {"epoch": 1, "f1": np.float32(0.75)})
    stats.append_stats(path, {"epoch": 2, "f1": 0.8})
    # a resumed run redoes epoch 1: epochs ≥ 1 are replaced
    frame = stats.append_stats(path, {"epoch": 1, "f1": 0.7})
    assert frame["epoch"].tolist() == [0, 1]
    assert stats.read_stats(path)["f1"].tolist() == [0.5, 0.7]
    stats.truncate_stats(path, 0)
    assert stats.read_stats(path)["epoch"].tolist() == [0]


def test_checkpoint_round_trip_restores_everything(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = checkpoint.training_state(model, optimizer, epoch=2, step=30, schedule_state={"name": "none"},
                                      trainer_state={"stage": [1, 2]}, args={"lr": 0.1}, best={"epoch": 1})
    checkpoint.save_checkpoint(tmp_path, state, is_best=True)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())

    loaded = checkpoint.load_checkpoint(tmp_path / checkpoint.LAST)
    other = torch.nn.Linear(3, 2)
    other_opt = torch.optim.AdamW(other.parameters(), lr=0.1)
    checkpoint.restore(loaded, other, other_opt)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert torch.equal(other.weight, model.weight)
    assert other_opt.state_dict()["state"][0]["step"] == 1
    assert loaded["trainer"] == {"stage": [1, 2]} and loaded["step"] == 30
    best = torch.load(tmp_path / checkpoint.BEST, weights_only=True)
    assert "optimizer" not in best and best["best"] == {"epoch": 1}


def test_checkpoint_missing_or_foreign_file(tmp_path):
    with pytest.raises(InputError, match="no checkpoint"):
        checkpoint.load_checkpoint(tmp_path / "last.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read checkpoint"):
        checkpoint.load_checkpoint(bad)


def test_new_run_refuses_an_existing_checkpoint(tmp_path):
    last = tmp_path / "checkpoints" / checkpoint.LAST
    checkpoint.check_fresh_output(last, resume=False)  # nothing there yet
    last.parent.mkdir()
    last.write_bytes(b"")
    checkpoint.check_fresh_output(last, resume=True)
    with pytest.raises(InputError, match="a run already lives here; pass --resume") as err:
        checkpoint.check_fresh_output(last, resume=False)
    assert str(err.value).startswith(str(last))


def test_distributed_helpers_single_process():
    from discl import distributed

    info = distributed.init_distributed("cpu")
    assert info == distributed.DistInfo() and info.is_main and not info.distributed
    assert distributed.is_main()
    assert distributed.all_gather_objects({"a": 1}) == [{"a": 1}]
    assert distributed.shard_indices(list(range(7)), rank=1, world_size=3) == [1, 4]
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap_ddp(model, info) is model
    distributed.barrier()


def test_selection_rule_and_report(tmp_path):
    from discl import metrics
    from discl.fileio import atomic_write_json
    from discl.training import outputs

    assert metrics.is_better(0.5, None) and metrics.is_better(0.6, 0.5)
    assert not metrics.is_better(0.5, 0.5)  # a tie keeps the earlier epoch
    assert not metrics.is_better(float("nan"), 0.1) and metrics.is_better(0.1, float("nan"))
    assert outputs.format_level_map({100: 91, 10: 25}) == "10:25 100:91"
    assert outputs.parse_level_map("10:25 100:91") == {10: 25.0, 100: 91.0}
    rows = [{"epoch": 0, "guidance": 50, "id_val_f1": 0.1234, "test_f1": 0.5},
            {"epoch": 1, "guidance": 100, "id_val_f1": 0.25, "test_f1": float("nan")}]
    stats.append_stats(tmp_path / "stats.tsv", rows[0])
    stats.append_stats(tmp_path / "stats.tsv", rows[1])
    run = {"selection": {"split": "id_val", "metric": "f1"}, "splits": ["id_val", "test"], "metric_names": ["f1"]}
    summary = outputs.build_summary(tmp_path, run=run, splits=["id_val", "test"], metrics=["f1"], best_epoch=1)
    assert summary["best"] == {"id_val": {"f1": 0.25}, "test": {"f1": None}}  # NaN → null: strict JSON
    assert summary["last_epoch"] == 1 and summary["epochs_done"] == 2 and summary["stages"] == []
    atomic_write_json(tmp_path / "summary.json", summary)
    table = outputs.report(tmp_path).splitlines()
    assert table[0].split() == ["epoch", "level", "id_val:f1", "test:f1"]
    assert table[1].split() == ["0", "50", "0.1234", "0.5000"]
    assert table[2].split() == ["1*", "100", "0.2500", "n/a"]
    assert table[3] == "selected epoch 1 (best id_val f1 0.2500): id_val: f1 0.2500; test: f1 n/a"
