"""Feature maps, filters and Grad-CAM as plain numbers (frozen dataclasses of numpy arrays)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from .hooks import capture
from .layers import ExplainError, as_batch, check_layer


@dataclass(frozen=True)
class FeatureMaps:
    """Every channel of one layer's output for one image, with per-channel statistics (all [C])."""

    layer: str
    maps: np.ndarray  # float32 [C,h,w]
    mean: np.ndarray
    max: np.ndarray
    min: np.ndarray
    frac_active: np.ndarray  # fraction of positions > 0

    def order(self, by: str = "mean", descending: bool = True) -> np.ndarray:
        """Channel indices sorted by a statistic ('mean', 'max', 'min' or 'frac_active')."""
        if by not in ("mean", "max", "min", "frac_active"):
            raise ExplainError(f"cannot sort channels by {by!r}; use mean, max, min or frac_active")
        idx = np.argsort(getattr(self, by), kind="stable")
        return idx[::-1].copy() if descending else idx


@dataclass(frozen=True)
class Filters:
    """Kernels of one conv layer as displayable tiles; `weights` keeps the raw [O,I,kh,kw] array."""

    layer: str
    weights: np.ndarray  # float32 [O,I,kh,kw]
    tiles: np.ndarray  # [O,kh,kw,3] when rgb, else [O,kh,kw] (signed)
    rgb: bool
    reduction: str  # "rgb", "mean over input channels" or "input channel k"


def feature_maps(model: nn.Module, x: torch.Tensor, layer: str) -> FeatureMaps:
    """Every channel of `layer`'s output for one image x [C,H,W] or [1,C,H,W], with per-channel statistics."""
    x = as_batch(x)[:1]
    check_layer(model, layer)
    with capture(model, [layer]) as cap, torch.no_grad():
        model(x)
    act = cap.activation(layer)
    if act.dim() != 4:
        raise ExplainError(f"layer {layer!r} outputs shape {tuple(act.shape)}, not feature maps; choose a conv layer")
    maps = act[0].float().cpu().numpy()  # [C,h,w]
    flat = maps.reshape(maps.shape[0], -1)
    return FeatureMaps(layer, maps, flat.mean(1), flat.max(1), flat.min(1), (flat > 0).mean(1).astype(np.float32))


def filters(model: nn.Module, layer: str | None = None, in_channel: int | None = None) -> Filters:
    """Kernels of a Conv2d: RGB tiles for a 3-channel first layer, else the mean over input channels
    (or the single `in_channel`), kept signed so render can use a diverging colormap."""
    modules = dict(model.named_modules())
    if layer is None:
        layer = next((n for n, m in modules.items() if isinstance(m, nn.Conv2d)), None)
        if layer is None:
            raise ExplainError("the model has no Conv2d layer")
    check_layer(model, layer)
    module = modules[layer]
    if not isinstance(module, nn.Conv2d):
        raise ExplainError(f"layer {layer!r} is a {type(module).__name__}, not a Conv2d: it has no filters to show")
    w = module.weight.detach().float().cpu().numpy()  # [O,I,kh,kw]
    if in_channel is not None:
        if not 0 <= in_channel < w.shape[1]:
            raise ExplainError(f"in_channel must be in 0..{w.shape[1] - 1}, got {in_channel}")
        return Filters(layer, w, w[:, in_channel], False, f"input channel {in_channel}")
    if w.shape[1] == 3:
        return Filters(layer, w, w.transpose(0, 2, 3, 1).copy(), True, "rgb")
    return Filters(layer, w, w.mean(1), False, "mean over input channels")


