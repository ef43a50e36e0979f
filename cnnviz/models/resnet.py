"""ResNet (He et al. 2015) in CIFAR form: 3x3 stem, no initial max-pool, BasicBlocks 64-128-256-512."""
from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 convs plus a shortcut (1x1 conv when the shape changes)."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class CifarResNet(nn.Module):
    """torchvision's ResNet names (conv1, layer1..4, fc) so checkpoints and layer names read the same."""

    def __init__(self, blocks: list[int], in_channels: int, num_classes: int, width: float = 1.0):
        super().__init__()
        widths = [max(1, round(w * width)) for w in (64, 128, 256, 512)]  # width-scaled: fewer channels, same blocks
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        layers, in_planes = [], widths[0]
        for i, (planes, n) in enumerate(zip(widths, blocks)):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(*[BasicBlock(in_planes if j == 0 else planes, planes, stride if j == 0 else 1) for j in range(n)]))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


_META = dict(family="ResNet", paper="He, Zhang, Ren, Sun, Deep residual learning for image recognition", year=2015,
             input_size=None, min_size=8)


@register_model("resnet18", reference_params=(3, 10, 32, 11_173_962), title="ResNet-18 (CIFAR form)", cam_layer="layer4",
                description="Eight residual blocks of two 3x3 convolutions, each adding its input back to its output, so "
                "gradients flow through very deep stacks. CIFAR form: 3x3 stem and no early max-pool.", **_META)
def resnet18(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    return CifarResNet([2, 2, 2, 2], in_channels, num_classes)


@register_model("resnet18_quarter", title="ResNet-18 at 1/4 width (CIFAR form)", cam_layer="layer4", width=1 / 4,
                full_width="resnet18",
                description="ResNet-18 at 1/4 width: the same eight residual blocks, 3x3 kernels, strides and shortcuts as "
                "the CIFAR form of ResNet-18, with a quarter of its channels (16-32-64-128), so it trains on a laptop "
                "CPU in minutes. Each block adds its input back to its output, so gradients flow through deep stacks.",
                **_META)
def resnet18_quarter(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    return CifarResNet([2, 2, 2, 2], in_channels, num_classes, width=1 / 4)


@register_model("resnet34", title="ResNet-34 (CIFAR form)", cam_layer="layer4",
                description="Sixteen residual blocks (3-4-6-3) of two 3x3 convolutions with identity shortcuts; the "
                "same idea as ResNet-18, twice as deep.", **_META)
def resnet34(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    return CifarResNet([3, 4, 6, 3], in_channels, num_classes)
