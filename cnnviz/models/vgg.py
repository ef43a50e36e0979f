"""VGG (Simonyan & Zisserman 2014) in CIFAR form: the paper's table as data, built by make_layers."""
from __future__ import annotations

import torch.nn as nn

from .common import FeaturesClassifier, flat_features
from .registry import register_model

# Numbers are 3x3 conv widths, "M" a 2x2 max-pool: the columns of the paper's Table 1.
CFGS: dict[str, list[int | str]] = {
    "vgg10": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def make_layers(cfg: list[int | str], in_channels: int, batch_norm: bool) -> nn.Sequential:
    """conv3x3 [+BN] + ReLU for each number, max-pool for each "M"."""
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(v)))
        layers.append(nn.ReLU(inplace=True))
        in_channels = int(v)
    return nn.Sequential(*layers)


def last_conv_name(cfg: list[int | str], batch_norm: bool) -> str:
    """named_modules() name of the last conv in make_layers(cfg): the usual Grad-CAM layer."""
    index, last = 0, 0
    for v in cfg:
        if v != "M":
            last = index
        index += 1 if v == "M" else (3 if batch_norm else 2)
    return f"features.{last}"


def scale_cfg(cfg: list[int | str], width: float) -> list[int | str]:
    """The same column with every conv width times `width` (pools unchanged)."""
    return [v if v == "M" else max(1, round(int(v) * width)) for v in cfg]


def _vgg(cfg_name: str, in_channels: int, num_classes: int, input_size: int, batch_norm: bool,
         width: float = 1.0) -> nn.Module:
    cfg = scale_cfg(CFGS[cfg_name], width)
    features = make_layers(cfg, in_channels, batch_norm)
    # CIFAR form: after five pools a 32 px image is 512x1x1; pool larger inputs down to that.
    features.append(nn.AdaptiveAvgPool2d(1))
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(int(cfg[-2]), num_classes))
    return FeaturesClassifier(features, classifier)


_META = dict(family="VGG", paper="Simonyan & Zisserman, Very deep convolutional networks for large-scale image recognition",
             year=2014, input_size=None, min_size=32)

for _name, _depth in (("vgg11", 11), ("vgg13", 13), ("vgg16", 16)):
    register_model(
        _name, title=f"VGG-{_depth} (CIFAR form, batch norm)", cam_layer=last_conv_name(CFGS[_name], True),
        description=f"VGG-{_depth}: stacks of 3x3 convolutions doubling in width after each of five max-pools, "
        "then one linear layer (the CIFAR form of the paper's network, with batch norm). Small kernels, great depth.",
        reference_params=(3, 10, 32, 14_728_266) if _name == "vgg16" else None,
        **_META,
    )(lambda in_channels, num_classes, input_size, batch_norm=True, _n=_name: _vgg(_n, in_channels, num_classes, input_size, batch_norm))


@register_model("vgg11_quarter", title="VGG-11 at 1/4 width (CIFAR form, batch norm)", width=1 / 4, full_width="vgg11",
                cam_layer=last_conv_name(CFGS["vgg11"], True),
                description="VGG-11 at 1/4 width: the same eight 3x3 convolutions, five max-pools and batch norm as the "
                "CIFAR form of VGG-11, with a quarter of its channels (16-32-64-64-128-128-128-128), so it trains on a "
                "laptop CPU in minutes. Small kernels, great depth.", **_META)
def vgg11_quarter(in_channels: int, num_classes: int, input_size: int, batch_norm: bool = True) -> nn.Module:
    return _vgg("vgg11", in_channels, num_classes, input_size, batch_norm, width=1 / 4)


@register_model("vgg10", title="VGG 10-conv (CIFAR-100 tutorial)", cam_layer=last_conv_name(CFGS["vgg10"], False),
                description="The 10-convolution VGG of the CIFAR-100 tutorial (64-64-M-128-128-M-256-256-M-512-512-M-512-512-M) "
                "with a 256-128 fully connected head and no batch norm.",
                **_META)
def vgg10(in_channels: int, num_classes: int, input_size: int, batch_norm: bool = False) -> nn.Module:
    features = make_layers(CFGS["vgg10"], in_channels, batch_norm)
    n = flat_features(features, in_channels, input_size)  # 512 at 32 px
    classifier = nn.Sequential(
        nn.Flatten(), nn.Linear(n, 256), nn.ReLU(inplace=True), nn.Linear(256, 128), nn.ReLU(inplace=True),
        nn.Linear(128, num_classes),
    )
    return FeaturesClassifier(features, classifier)
