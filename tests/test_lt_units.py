"""Pure parts of the ImageNet-LT trainer: losses, the data of one epoch, the metrics, the backbone."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from discl import lt, lt_metrics, resnet
from discl.errors import InputError


def test_balanced_softmax_is_ce_on_logits_plus_log_prior():
    # two classes with 3 and 1 training images, logits (1, 0), true class 1:
    # p = n1·e^0 / (n0·e^1 + n1·e^0) = 1 / (3e + 1), so the loss is log(3e + 1) = 2.21428…
    log_prior = lt.log_class_prior([3, 1])
    assert log_prior.tolist() == pytest.approx([math.log(0.75), math.log(0.25)])
    loss = lt.training_loss("balanced_softmax", torch.tensor([[1.0, 0.0]]), torch.tensor([1]), log_prior)
    assert loss.item() == pytest.approx(math.log(3 * math.e + 1), rel=1e-6)
    # plain CE on the same logits: -log(1 / (e + 1))
    ce = lt.training_loss("ce", torch.tensor([[1.0, 0.0]]), torch.tensor([1]), log_prior)
    assert ce.item() == pytest.approx(math.log(math.e + 1), rel=1e-6)


def test_log_prior_counts_an_empty_class_as_one():
    assert lt.log_class_prior([3, 0]).tolist() == pytest.approx([math.log(0.75), math.log(0.25)])


def _table():
    real = [lt.Row(f"r/c{c}/{i}.jpg", c, 100) for c in (0, 1) for i in range(10)]
    real += [lt.Row(f"r/c2/{i}.jpg", 2, 100) for i in range(2)]
    synthetic = [lt.Row(f"s/c2/g10_{i}.jpg", 2, 10) for i in range(5)]
    synthetic += [lt.Row("s/c2/g30_0.jpg", 2, 30), lt.Row("s/c1/g10_0.jpg", 1, 10)]
    return real, synthetic


def test_tail_target_makes_the_tail_the_given_fraction():
    assert lt.tail_target(10, 0.5) == 10
    assert lt.tail_target(10, 0.3) == 4  # 0.3 / 0.7 · 10 = 4.29, floored
    assert lt.tail_target(1000, 0.136) == 157  # 157 / 1157 = 13.6 %


def test_epoch_size_matches_the_rows_built():
    real, synthetic = _table()
    for ratio, fraction in ((0.5, 0.3), (0.5, 0.5), (1.0, None), (0.3, 0.136)):
        rows = lt.build_epoch_rows(real, synthetic, {2}, 10, np.random.default_rng(0), ratio, fraction)
        assert len(rows) == lt.epoch_size(20, 2, ratio, fraction)
    assert lt.epoch_size(1000, 20, 0.3, 0.136) == 300 + 47  # int(0.136 / 0.864 · 300) = 47 tail images
    assert lt.epoch_size(1000, 50, 0.3, 0.136) == 300 + 50  # more real tail than that: no top-up


def test_real_sample_draws_distinct_rows_and_is_capped():
    real, _ = _table()  # 22 real rows
    sample = lt.real_sample_rows(real, 5, np.random.default_rng(1))
    assert len(sample) == len(set(sample)) == 5 and set(sample) <= set(real)
    assert sample == lt.real_sample_rows(real, 5, np.random.default_rng(1))  # same seed, same rows
    assert sample != lt.real_sample_rows(real, 5, np.random.default_rng(2))
    assert lt.real_sample_rows(real, 30000, np.random.default_rng(1)) == real  # capped at the real rows


def test_steps_per_pass_counts_each_ranks_padded_share():
    assert lt.steps_per_pass(116, 32, 1) == 4  # 32, 32, 32, 20
    assert lt.steps_per_pass(116, 32, 2) == 4  # 58 per rank in batches of 16
    assert lt.steps_per_pass(117, 32, 2) == 4  # 59 per rank (one padded row): still 16, 16, 16, 11
    assert lt.steps_per_pass(40, 32, 1) == 2


def test_ddp_shares_are_equal_and_cover_every_row():
    shares = [lt.shuffled_share(7, seed=5, rank=r, world_size=2) for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 4  # 7 rows padded to 8
    assert set(shares[0]) | set(shares[1]) == set(range(7))
    assert shares == [lt.shuffled_share(7, seed=5, rank=r, world_size=2) for r in (0, 1)]


def test_epoch_rows_synthetic_stage_without_replacement():
    real, synthetic = _table()
    rows = lt.build_epoch_rows(real, synthetic, {2}, 10, np.random.default_rng(0), 0.5, 0.3)
    non_tail = [r for r in rows if r.label != 2]
    tail = [r for r in rows if r.label == 2]
    assert len(non_tail) == 10 and len(set(non_tail)) == 10  # half of the 20 non-tail images, no repeats
    assert len(tail) == 4  # int(0.3 / 0.7 · 10)
    assert sorted(r.path for r in tail if r.guidance == 100) == ["r/c2/0.jpg", "r/c2/1.jpg"]
    drawn = [r for r in tail if r.guidance != 100]
    assert len(drawn) == 2 and len(set(drawn)) == 2 and all(r.guidance == 10 for r in drawn)


def test_epoch_rows_synthetic_stage_with_replacement_and_only_tail_classes():
    real, synthetic = _table()
    rows = lt.build_epoch_rows(real, synthetic, {2}, 30, np.random.default_rng(0), 0.5, 0.5)
    drawn = [r for r in rows if r.guidance != 100]
    # 10 tail images wanted, 2 real, 8 drawn from the single guidance-30 image; the class-1 synthetic is ignored
    assert drawn == [lt.Row("s/c2/g30_0.jpg", 2, 30)] * 8


def test_epoch_rows_real_stage_upsamples_the_real_tail():
    real, synthetic = _table()
    rows = lt.build_epoch_rows(real, synthetic, {2}, 100, np.random.default_rng(0), 0.5, 0.5)
    tail = [r for r in rows if r.label == 2]
    assert len(tail) == 10 and all(r.guidance == 100 for r in tail)
    assert {r.path for r in tail} == {"r/c2/0.jpg", "r/c2/1.jpg"}


def test_epoch_rows_depend_only_on_the_seed():
    real, synthetic = _table()
    first = lt.build_epoch_rows(real, synthetic, {2}, 10, np.random.default_rng(7), 0.3, 0.136)
    again = lt.build_epoch_rows(real, synthetic, {2}, 10, np.random.default_rng(7), 0.3, 0.136)
    other = lt.build_epoch_rows(real, synthetic, {2}, 10, np.random.default_rng(8), 0.3, 0.136)
    assert first == again and first != other


def test_epoch_rows_missing_level_is_an_error():
    real, synthetic = _table()
    with pytest.raises(ValueError, match="guidance 50"):
        lt.build_epoch_rows(real, synthetic, {2}, 50, np.random.default_rng(0), 0.5, 0.5)


def test_group_accuracy_on_a_known_table():
    # counts: class 0 many (100 ≥ 100 in the reference cut), 1 medium, 2 few
    groups = lt_metrics.class_groups([100, 20, 19])
    assert list(groups) == ["many", "medium", "few"]
    assert list(lt_metrics.class_groups([100, 20, 19], convention="standard")) == ["medium", "medium", "few"]
    result = lt_metrics.group_accuracy([0, 0, 1, 2, 0], [0, 0, 1, 2, 2], groups)
    assert result == pytest.approx({"overall": 80.0, "many": 100.0, "medium": 100.0, "few": 50.0})
    empty = lt_metrics.group_accuracy([0], [0], groups)
    assert math.isnan(empty["few"]) and empty["many"] == 100.0


def test_resnet10_shape_and_onlyfc():
    model = resnet.build_model("resnet10", 7, width=4)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
    trainable = resnet.set_train_mode(model, "onlyfc")
    assert {id(p) for p in trainable} == {id(model.fc.weight), id(model.fc.bias)}
    # the paper's width: one basic block per stage, 512-d features, ~5.4M parameters with 1000 classes
    full = resnet.build_model("resnet10", 1000)
    assert full.fc.in_features == 512
    assert sum(p.numel() for p in full.parameters()) == 5418792


def test_load_weights_rejects_a_mismatched_checkpoint(tmp_path):
    from discl.fileio import atomic_torch_save

    atomic_torch_save({"model": resnet.build_model("resnet10", 5, width=4).state_dict()}, tmp_path / "w.pt")
    with pytest.raises(InputError, match="fc.weight"):
        resnet.load_weights(resnet.build_model("resnet10", 6, width=4), tmp_path / "w.pt")
    with pytest.raises(InputError, match="not found"):
        resnet.load_weights(resnet.build_model("resnet10", 5, width=4), tmp_path / "missing.pt")
