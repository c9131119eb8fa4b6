"""Pure parts of the CE trainer: losses, the task's table and modes, the long-tail metrics, the backbone."""

from __future__ import annotations

import math

import pandas as pd
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


def test_ce_task_trains_on_one_row_per_image_and_freezes_the_backbone_for_onlyfc():
    table = pd.DataFrame({"title": ["a photo of a cat.", "a cat in the wild.", "a photo of a cat.", "x"],
                          "filepath": ["r/1.jpg", "r/1.jpg", "s/1.jpg", "r/2.jpg"], "label": [0, 0, 0, 1],
                          "strength": [0, 0, 90, 0], "guidance": [100, 100, 10, 100], "seed": [100, 100, 10, 100],
                          "img_id": [0, 0, 0, -1]})
    task = lt.CETask(lt.CEOptions(train_mode="onlyfc"))
    kept = task.prepare_table(table, dataset=None)
    assert kept.index.tolist() == [0, 2, 3] and task.targets(kept).tolist() == [0, 0, 1]
    model = resnet.build_model("resnet10", 3, width=4)
    task.enter_training(model)
    assert model.fc.training and not model.bn1.training and not model.layer1.training


def test_ce_learning_rate_is_cosine_annealing_without_warm_up():
    task = lt.CETask(lt.CEOptions(lr=2.0))
    assert task.lr(0, 10) == 2.0 and task.lr(5, 10) == pytest.approx(1.0) and task.lr(10, 10) == pytest.approx(0.0)


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


def test_resnet10_matches_torchvisions_resnet_with_one_basic_block_per_stage():
    # the same parameters and state-dict keys as torchvision's ResNet(BasicBlock, [1, 1, 1, 1]) at width 64; ours
    # is kept because its width scales (tests and the demo use a 4- or 8-wide copy)
    from torchvision.models.resnet import BasicBlock, ResNet

    ours = resnet.build_model("resnet10", 10).state_dict()
    theirs = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10).state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_load_weights_rejects_a_mismatched_checkpoint(tmp_path):
    from discl.fileio import atomic_torch_save

    atomic_torch_save({"model": resnet.build_model("resnet10", 5, width=4).state_dict()}, tmp_path / "w.pt")
    with pytest.raises(InputError, match="fc.weight"):
        resnet.load_weights(resnet.build_model("resnet10", 6, width=4), tmp_path / "w.pt")
    with pytest.raises(InputError, match="not found"):
        resnet.load_weights(resnet.build_model("resnet10", 5, width=4), tmp_path / "missing.pt")
