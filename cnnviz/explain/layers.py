"""Feature maps, filters and Grad-CAM as plain numbers (frozen dataclasses of numpy arrays)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn

from .hooks import output_shapes


class ExplainError(ValueError):
    """A request that cannot be explained (unknown layer, target out of range, ...); the message says why."""


def as_batch(x: torch.Tensor) -> torch.Tensor:
    """[C,H,W] or [B,C,H,W] -> a detached float batch [B,C,H,W]; anything else is an ExplainError."""
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ExplainError(f"expected an image tensor [C,H,W] or a batch [B,C,H,W], got shape {tuple(x.shape)}")
    return x.detach().float()


def normalize01(a: np.ndarray) -> np.ndarray:
    """Min-max scale to [0,1]; a constant (or non-finite) map gives zeros, never NaN."""
    a = np.nan_to_num(np.asarray(a, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if a.size == 0:
        return a
    lo, hi = float(a.min()), float(a.max())
    if not hi - lo > 1e-12:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)


def conv_layers(model: nn.Module, input_shape: Sequence[int]) -> list[str]:
    """Names of every module whose output is 4-D [B,C,h,w] (convs, ReLUs, pools, blocks), in `named_modules` order."""
    shape = tuple(input_shape)
    x = torch.zeros((1, *shape) if len(shape) == 3 else shape)
    shapes = output_shapes(model, x)
    return [name for name, _ in model.named_modules() if len(shapes.get(name, ())) == 4]


def default_layer(model: nn.Module, arch_name: str | None = None) -> str:
    """The registry's Grad-CAM layer for `arch_name` when the model has it, else the last Conv2d."""
    names = dict(model.named_modules())
    if arch_name:
        from ..models import get_model_info  # local: explain must not require the registry for plain models

        try:
            layer = get_model_info(arch_name).cam_layer
        except KeyError:
            layer = ""
        if layer and layer in names:
            return layer
    convs = [name for name, m in names.items() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ExplainError("the model has no Conv2d layer; name a layer explicitly")
    return convs[-1]


def check_layer(model: nn.Module, layer: str) -> None:
    """Raise ExplainError, listing valid names, unless `layer` is a named_modules() name of `model`."""
    names = [n for n, _ in model.named_modules() if n]
    if layer not in names:
        raise ExplainError(f"unknown layer {layer!r}; choose one of: {', '.join(names[:20])}"
                           + (" ..." if len(names) > 20 else ""))


