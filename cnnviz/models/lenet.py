"""LeNet-5 (LeCun et al. 1998), as d2l.ai writes it for 28x28 inputs."""
from __future__ import annotations

import torch.nn as nn

from .common import FeaturesClassifier, flat_features
from .registry import register_model


def _lenet(in_channels: int, num_classes: int, input_size: int, classic: bool) -> nn.Module:
    act = nn.Sigmoid if classic else nn.ReLU
    pool = nn.AvgPool2d if classic else nn.MaxPool2d
    # padding=2 keeps a 28x28 input at 28x28, as the paper's 32x32 input without padding would.
    features = nn.Sequential(
        nn.Conv2d(in_channels, 6, kernel_size=5, padding=2), act(), pool(2, 2),
        nn.Conv2d(6, 16, kernel_size=5), act(), pool(2, 2),
    )
    n = flat_features(features, in_channels, input_size)  # 16*5*5 = 400 at 28 px
    classifier = nn.Sequential(
        nn.Flatten(), nn.Linear(n, 120), act(), nn.Linear(120, 84), act(), nn.Linear(84, num_classes)
    )
    return FeaturesClassifier(features, classifier)


_META = dict(family="LeNet", paper="LeCun et al., Gradient-based learning applied to document recognition", year=1998,
             input_size=None, cam_layer="features.3", min_size=16)


@register_model("lenet5", reference_params=(1, 10, 28, 61_706), title="LeNet-5 (ReLU, max-pool)",
                description="Two 5x5 convolutions with pooling, then three fully connected layers: the network that read "
                "cheques in the 1990s. This modern variant uses ReLU and max-pooling, which train much faster than the original.",
                **_META)
def lenet5(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    return _lenet(in_channels, num_classes, input_size, classic=False)


@register_model("lenet5_classic", title="LeNet-5 (original: sigmoid, average-pool)",
                description="LeNet-5 as in the paper and d2l.ai: sigmoid activations and average pooling. It learns slowly "
                "at first, a good contrast with the ReLU variant.",
                **_META)
def lenet5_classic(in_channels: int, num_classes: int, input_size: int) -> nn.Module:
    return _lenet(in_channels, num_classes, input_size, classic=True)
