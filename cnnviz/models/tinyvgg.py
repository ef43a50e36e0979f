"""TinyVGG: the small network CNN Explainer visualises (Wang et al. 2020)."""
from __future__ import annotations

import torch.nn as nn

from .common import FeaturesClassifier, flat_features
from .registry import register_model


@register_model("tinyvgg", family="TinyVGG", title="TinyVGG (CNN Explainer)", paper="Wang et al., CNN Explainer", year=2020,
                input_size=None, cam_layer="features.7", min_size=16,
                description="Two blocks of (3x3 conv, ReLU, 3x3 conv, ReLU, max-pool) with 10 channels each, then one linear "
                "layer: the network CNN Explainer shows, small enough to see every channel.")
def tinyvgg(in_channels: int, num_classes: int, input_size: int, width: int = 10) -> nn.Module:
    features = nn.Sequential(
        nn.Conv2d(in_channels, width, 3), nn.ReLU(), nn.Conv2d(width, width, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, width, 3), nn.ReLU(), nn.Conv2d(width, width, 3), nn.ReLU(), nn.MaxPool2d(2),
    )
    n = flat_features(features, in_channels, input_size)  # 10*13*13 at 64 px, 10*4*4 at 28 px
    return FeaturesClassifier(features, nn.Sequential(nn.Flatten(), nn.Linear(n, num_classes)))
