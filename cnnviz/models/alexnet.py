"""AlexNet (Krizhevsky et al. 2012) in the two forms the classic tutorials use."""
from __future__ import annotations

import torch.nn as nn

from .common import FeaturesClassifier, flat_features
from .registry import register_model

_META = dict(family="AlexNet", paper="Krizhevsky, Sutskever, Hinton, ImageNet classification with deep CNNs", year=2012)


@register_model("alexnet", title="AlexNet (CIFAR-10 tutorial, 96 px)", input_size=96, cam_layer="features.10", min_size=64,
                description="Five convolutions (11x11 stride 4, then 5x5 and three 3x3) with max-pooling and a large fully "
                "connected head, as torchvision builds it; inputs are resized to 96 px. The network that started the deep-learning era.",
                **_META)
def alexnet(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    # torchvision's layout (inplace ReLU right after each conv) with a smaller 4096-1024 head.
    features = nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.AdaptiveAvgPool2d((6, 6)),
    )
    classifier = nn.Sequential(
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
        nn.Dropout(0.5), nn.Linear(4096, 1024), nn.ReLU(inplace=True), nn.Linear(1024, num_classes),
    )
    return FeaturesClassifier(features, classifier)


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
