"""Model registry: one frozen ModelInfo per architecture, built by name."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch.nn as nn


@dataclass(frozen=True)
class ModelInfo:
    """What the UI and the engine need to know about an architecture before building it."""

    name: str
    family: str
    title: str
    paper: str
    year: int
    input_size: int | None  # native input side in px; None = use the dataset's own size
    cam_layer: str  # default Grad-CAM layer (a named_modules() name)
    description: str
    builder: Callable[..., nn.Module] = field(repr=False, compare=False)
    imagenet: bool = False  # torchvision ImageNet model: fixed 3 channels, 1000 classes
    min_size: int = 8  # smallest input side the network accepts
    # Published parameter count as (in_channels, num_classes, input_size, params), checked by the tests.
    reference_params: tuple[int, int, int, int] | None = None
    # Width-scaled variants: the fraction of the paper's channels, and the full-width model it scales (for full-vs-scaled
    # counts). Same layer sequence, kernels, strides, depth and shortcuts; only the channel counts differ.
    width: float = 1.0
    full_width: str | None = None


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, **meta) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register `builder(in_channels, num_classes, input_size, **kw)` under `name`."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = ModelInfo(name=name, builder=builder, **meta)
        return builder

    return wrap


def width_label(width: float) -> str:
    """0.25 -> '1/4 width'; 1.0 -> 'full width'."""
    return "full width" if width == 1 else f"1/{round(1 / width)} width"


def scaled_variants(full: str) -> list[str]:
    """Names of the registered width-scaled variants of the model `full`."""
    return [n for n, i in _REGISTRY.items() if i.full_width == full]


def list_models() -> list[str]:
    """Names of every registered model, in registration order."""
    return list(_REGISTRY)


def get_model_info(name: str) -> ModelInfo:
    """Metadata of one model; a clear KeyError lists the valid names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}") from None


def model_input_size(name: str, dataset_size: int) -> int:
    """Input side the model is fed: its native size if it has one, else the dataset's (at least min_size)."""
    info = get_model_info(name)
    return info.input_size if info.input_size is not None else max(dataset_size, info.min_size)


def get_model(name: str, in_channels: int = 3, num_classes: int = 10, input_size: int | None = None, **kwargs) -> nn.Module:
    """Build a fresh model. `input_size` defaults to the model's native size (or 32)."""
    info = get_model_info(name)
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    size = input_size or info.input_size or 32
    if size < info.min_size:
        raise ValueError(f"{name} needs inputs of at least {info.min_size} px, got {size}")
    return info.builder(in_channels=in_channels, num_classes=num_classes, input_size=size, **kwargs)


@dataclass(frozen=True)
class InputShape:
    """What a model built for a dataset takes and returns: channels, square side, classes."""

    channels: int
    size: int
    num_classes: int


def input_shape(arch: str, dataset: str, input_size: int | None = None) -> InputShape:
    """The one rule for (architecture, dataset) -> model shape: ImageNet models as published (3x224, 1000 classes),
    others with the dataset's channels and classes at `input_size`, else the model's native size, else the dataset's."""
    from ..data import get_dataset_info  # late: the model zoo does not need the data registry to build a model

    if get_model_info(arch).imagenet:
        return InputShape(3, input_size or 224, 1000)
    d = get_dataset_info(dataset)
    return InputShape(d.channels, input_size or model_input_size(arch, d.size), d.num_classes)
