"""Small helpers shared by the model files."""
from __future__ import annotations

import torch
import torch.nn as nn


def flat_features(features: nn.Module, in_channels: int, input_size: int) -> int:
    """Number of features `features` outputs for one image (a dry run on zeros, no grad)."""
    with torch.no_grad():
        was_training = features.training
        features.eval()
        out = features(torch.zeros(1, in_channels, input_size, input_size))
        features.train(was_training)
    return out.numel()


class FeaturesClassifier(nn.Module):
    """`features` then `classifier`, so layers get readable names like `features.3`."""

    def __init__(self, features: nn.Module, classifier: nn.Module):
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
