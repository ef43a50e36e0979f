"""AlexNet (Krizhevsky et al. 2012) in the two forms the classic tutorials use."""
from __future__ import annotations

import torch.nn as nn

from .common import FeaturesClassifier, flat_features
from .registry import register_model

_META = dict(family="AlexNet", paper="Krizhevsky, Sutskever, Hinton, ImageNet classification with deep CNNs", year=2012)


def scaled(channels: int, width: float) -> int:
    """A layer's channel count at `width` (a fraction of the paper's), at least 1."""
    return max(1, round(channels * width))


def _alexnet(in_channels: int, num_classes: int, width: float) -> nn.Module:
    # torchvision's layout (inplace ReLU right after each conv) with a smaller 4096-1024 head; every width x `width`.
    c1, c2, c3, c4, h1, h2 = (scaled(n, width) for n in (64, 192, 384, 256, 4096, 1024))
    features = nn.Sequential(
        nn.Conv2d(in_channels, c1, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(c1, c2, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(c2, c3, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c3, c4, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c4, c4, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.AdaptiveAvgPool2d((6, 6)),
    )
    classifier = nn.Sequential(
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(c4 * 6 * 6, h1), nn.ReLU(inplace=True),
        nn.Dropout(0.5), nn.Linear(h1, h2), nn.ReLU(inplace=True), nn.Linear(h2, num_classes),
    )
    return FeaturesClassifier(features, classifier)


_CIFAR = dict(input_size=96, cam_layer="features.10", min_size=64, **_META)
_CIFAR_TEXT = ("Five convolutions (11x11 stride 4, then 5x5 and three 3x3) with max-pooling and a large fully "
               "connected head, as torchvision builds it; inputs are resized to 96 px.")


@register_model("alexnet", title="AlexNet (CIFAR-10 tutorial, 96 px)",
                description=_CIFAR_TEXT + " The network that started the deep-learning era.", **_CIFAR)
def alexnet(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    return _alexnet(in_channels, num_classes, 1.0)


# At 1/4 width the 2304-1024 head alone is 2.4 M weights (10 MB); 1/8 keeps the checkpoint near 3 MB.
@register_model("alexnet_eighth", title="AlexNet at 1/8 width (CIFAR-10 tutorial, 96 px)", width=1 / 8,
                full_width="alexnet",
                description="AlexNet at 1/8 width: the same layers, kernel sizes and strides as the CIFAR-10 tutorial "
                "form, with 1/8 of its channels and head units (8-24-48-32-32 filters, a 512-128 head), so it trains "
                "on a laptop CPU in minutes. " + _CIFAR_TEXT, **_CIFAR)
def alexnet_eighth(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    return _alexnet(in_channels, num_classes, 1 / 8)


@register_model("alexnet_d2l", title="AlexNet (d2l.ai, 224 px)", input_size=224, cam_layer="features.10", min_size=224,
                description="AlexNet as d2l.ai trains it on Fashion-MNIST: 96 11x11 filters at stride 4, 256 5x5, three 3x3 "
                "layers (384-384-256) and a 4096-4096 head with dropout; images are upscaled to 224 px.",
                **_META)
def alexnet_d2l(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    features = nn.Sequential(
        nn.Conv2d(in_channels, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )
    n = flat_features(features, in_channels, input_size)  # 256*5*5 at 224 px
    classifier = nn.Sequential(
        nn.Flatten(), nn.Linear(n, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, num_classes),
    )
    return FeaturesClassifier(features, classifier)
