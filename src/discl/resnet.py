"""Backbones for ImageNet-LT: the LDMLR ResNet-10 and a selector over torchvision ResNets.

ResNet-10 is the usual ImageNet ResNet (7×7/2 stem, 3×3/2 max-pool, four stages of basic blocks at widths
64, 128, 256, 512, global average pool, linear classifier) with one basic block per stage, as in the
long-tail recognition code (LDMLR) the paper's ImageNet-LT experiments build on. ``width`` scales the stage
widths so tests can run a tiny copy of the same architecture.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from discl.errors import InputError

logger = logging.getLogger(__name__)

ARCHS = ("resnet10", "resnet18", "resnet50")
TRAIN_MODES = ("full", "onlyfc")


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and an identity (or 1×1 projection) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet10(nn.Module):
    """ResNet-10: one basic block per stage; ``width`` is the first stage's width (64 in the paper)."""

    def __init__(self, num_classes: int, width: int = 64):
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, in_planes = [], width
        for index, planes in enumerate(widths):
            stages.append(nn.Sequential(BasicBlock(in_planes, planes, stride=1 if index == 0 else 2)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        # The initialisation torchvision and LDMLR use: He-normal convolutions, unit batch-norm scale.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the classifier."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def build_model(arch: str, num_classes: int, width: int = 64, torchvision_weights: str | None = None) -> nn.Module:
    """A classifier with a ``.fc`` head: ``resnet10`` (ours, any width) or torchvision ``resnet18``/``resnet50``."""
    if arch == "resnet10":
        if torchvision_weights:
            raise InputError(None, "torchvision weights exist only for resnet18/resnet50, not resnet10")
        return ResNet10(num_classes, width=width)
    if arch not in ARCHS:
        raise InputError(None, f"unknown architecture {arch!r}; expected one of {', '.join(ARCHS)}")
    if width != 64:
        raise InputError(None, f"--width applies to resnet10 only (got {width} for {arch})")
    import torchvision

    constructor = getattr(torchvision.models, arch)
    if not torchvision_weights:
        return constructor(weights=None, num_classes=num_classes)
    # Pretrained torchvision weights have a 1000-way head; keep the trunk and put a fresh head on top.
    model = constructor(weights=torchvision_weights)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def set_train_mode(model: nn.Module, mode: str) -> list[nn.Parameter]:
    """Freeze everything but ``fc`` for ``onlyfc``; return the parameters to optimise."""
    if mode not in TRAIN_MODES:
        raise InputError(None, f"unknown train mode {mode!r}; expected one of {', '.join(TRAIN_MODES)}")
    for name, parameter in model.named_parameters():
        parameter.requires_grad = mode == "full" or name.startswith("fc.")
    return [p for p in model.parameters() if p.requires_grad]


def model_config(arch: str, num_classes: int, width: int) -> dict:
    """The plain dict stored next to the weights, enough to rebuild the model."""
    return {"arch": arch, "num_classes": int(num_classes), "width": int(width)}


def read_model_state(path: str | os.PathLike) -> tuple[dict, dict | None]:
    """(state dict, model config or None) from a checkpoint of ours or a plain state dict."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a file that is not a checkpoint
        raise InputError(path, f"not a readable torch checkpoint ({type(err).__name__}: {err})") from None
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        saved = payload.get("args") or {}
        state = payload["model"]
        config = model_config(saved["arch"], saved["num_classes"], saved["width"]) if all(
            saved.get(k) is not None for k in ("arch", "num_classes", "width")) else None
    elif isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        state, config = payload, None
    else:
        raise InputError(path, "expected a DisCL checkpoint (with a 'model' entry) or a plain state dict")
    # Weights saved from a DistributedDataParallel wrapper carry a 'module.' prefix.
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return state, config


def load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load ``--init`` weights into ``model``; shapes must match exactly."""
    state, _ = read_model_state(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise InputError(path, f"weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]} "
                               "(check --arch and --width)")
    for key, value in state.items():
        if expected[key].shape != value.shape:
            raise InputError(path, f"shape of {key} is {tuple(value.shape)}, the model expects "
                                   f"{tuple(expected[key].shape)} (check --arch, --width and the number of classes)")
    model.load_state_dict(state)


def load_classifier(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a trained classifier from one of our checkpoints (e.g. to score hard samples)."""
    state, config = read_model_state(path)
    if config is None:
        raise InputError(path, "checkpoint does not say its arch / width / num_classes; use build_model + load_weights")
    model = build_model(config["arch"], config["num_classes"], config["width"])
    load_weights(model, path)
    return model.to(device).eval()
