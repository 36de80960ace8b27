"""Plain-torch CNNs used by the MLS training framework and the cost model.

Every model is built only from ``nn.Conv2d``, ``nn.Linear``, ``nn.BatchNorm2d`` (plus
parameter-free ops), so ``quantize_model`` can swap in ``MLSConv2d``/``MLSLinear`` and
shape tracers can find every GEMM with ``isinstance(m, (nn.Conv2d, nn.Linear))``.
Function names (``resnet20``, ``resnet18``, ``digits_cnn``) are a stable API.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["BasicBlock", "CifarResNet", "ResNet", "resnet20", "resnet18", "digits_cnn",
           "MODELS", "build_model"]


class BasicBlock(nn.Module):
    """3x3-3x3 residual block; 1x1 conv + BN shortcut when the shape changes (option B)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al. 2016 CIFAR ResNet-(6n+2): 3 stages of n basic blocks, 16/32/64 channels."""

    def __init__(self, blocks_per_stage: int = 3, num_classes: int = 10, in_channels: int = 3,
                 width: int = 16):
        super().__init__()
        if blocks_per_stage < 1:
            raise ValueError(f"blocks_per_stage must be >= 1, got {blocks_per_stage}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers = []
        in_planes = width
        for stage, planes in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks_per_stage):
                stride = 2 if (stage > 0 and b == 0) else 1
                layers.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


class ResNet(nn.Module):
    """ImageNet-style ResNet (7x7/2 stem, 3x3/2 max-pool, 4 stages 64..512, global pool, FC)."""

    def __init__(self, blocks=(2, 2, 2, 2), num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        layers = []
        in_planes = 64
        for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
            for b in range(n):
                stride = 2 if (stage > 0 and b == 0) else 1
                layers.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        out = self.layers(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def resnet20(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """ResNet-20 for 32x32 CIFAR-10 (0.27 M parameters)."""
    return CifarResNet(3, num_classes, in_channels)


def resnet18(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-18 for 224x224 ImageNet (11.7 M parameters)."""
    return ResNet((2, 2, 2, 2), num_classes, in_channels)


class DigitsCNN(nn.Module):
    """Small CNN for the 8x8 scikit-learn digits: conv-BN-ReLU x4 with one 2x down-sample.

    Shapes: 1x8x8 -> 32x8x8 -> 32x8x8 -> 64x4x4 -> 64x4x4 -> pool -> FC(10).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        chans = [(in_channels, width, 1), (width, width, 1), (width, 2 * width, 2),
                 (2 * width, 2 * width, 1)]
        self.convs = nn.ModuleList(
            nn.Conv2d(ci, co, 3, stride=s, padding=1, bias=False) for ci, co, s in chans)
        self.bns = nn.ModuleList(nn.BatchNorm2d(co) for _, co, _ in chans)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn in zip(self.convs, self.bns):
            x = F.relu(bn(conv(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def digits_cnn(num_classes: int = 10, in_channels: int = 1) -> DigitsCNN:
    """Default model for the digits dataset (fast on CPU)."""
    return DigitsCNN(num_classes, in_channels)


MODELS = {"digits_cnn": digits_cnn, "resnet20": resnet20, "resnet18": resnet18}


def build_model(name: str, num_classes: int, in_channels: int) -> nn.Module:
    """Build a model from ``MODELS`` by name."""
    try:
        fn = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}") from None
    return fn(num_classes=num_classes, in_channels=in_channels)
