"""What a user can pick when explaining an image: a layer (with its output shape), a target class, and the convolution
whose filters a layer shows. Menus are (label, value) pairs, the form every front end can show."""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from .hooks import output_shapes
from .targets import parse_target

if TYPE_CHECKING:
    from ..store.checkpoints import LoadedModel

PREDICTED = "predicted"  # the target menu's value for "whatever the model predicts"


@functools.lru_cache(maxsize=8)
def layer_choices(loaded: LoadedModel) -> list[tuple[str, str]]:
    """(label, name) for every layer with a [C,h,w] output, e.g. 'features.0 · Conv2d · 6×28×28'."""
    spec = loaded.meta.spec
    shapes = output_shapes(loaded.model, torch.zeros(1, spec.channels, spec.size, spec.size))
    out = []
    for name, module in loaded.model.named_modules():
        shape = shapes.get(name, ())
        if name and len(shape) == 4:
            out.append((f"{name} · {type(module).__name__} · {'×'.join(map(str, shape[1:]))}", name))
    return out


def target_choices(class_names: tuple[str, ...]) -> list[tuple[str, str]]:
    """'the predicted class', then every class as 'index: name'."""
    return [("the predicted class", PREDICTED)] + [(f"{i}: {n}", str(i)) for i, n in enumerate(class_names)]


def resolve_target(target: int | str | None, class_names: tuple[str, ...] | list[str]) -> int | None:
    """A target as a menu or a command line gives it -> class index; None, '' and 'predicted' mean the prediction."""
    if target is None or target in ("", PREDICTED):
        return None
    return parse_target(str(target), class_names)


def nearest_conv(model: nn.Module, layer: str) -> str | None:
    """`layer` itself if it is a Conv2d, else the last Conv2d before it (a ReLU or pool shows its conv's filters)."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            last = name
        if name == layer:
            return last
    return None


__all__ = ["PREDICTED", "layer_choices", "nearest_conv", "resolve_target", "target_choices"]
