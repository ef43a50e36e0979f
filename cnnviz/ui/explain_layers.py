"""Layer menus and the feature-map / filter pictures of the Explain tab (no gradio here)."""
from __future__ import annotations

import functools

import PIL.Image
import torch
import torch.nn as nn

from ..explain.hooks import output_shapes
from ..explain.layers import ExplainError
from ..explain.maps import feature_maps, filters
from ..render.pictures import feature_grid, filter_grid
from ..store.checkpoints import LoadedModel

SORT_LABELS = {"mean": "strongest mean activation first", "max": "strongest peak first",
               "frac_active": "largest active area first", "none": "in channel order"}


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


def nearest_conv(model: nn.Module, layer: str) -> str | None:
    """`layer` itself if it is a Conv2d, else the last Conv2d before it (a ReLU or pool shows its conv's filters)."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            last = name
        if name == layer:
            return last
    return None


def fm_view(model: nn.Module, x: torch.Tensor, layer: str, sort: str | None, max_maps: float | None
            ) -> tuple[PIL.Image.Image, str]:
    """Grid of `layer`'s channels for input x [1,C,S,S], and a caption saying what is shown."""
    fm = feature_maps(model, x, layer)
    c, h, w = fm.maps.shape
    order = None if sort in (None, "", "none") else sort
    if order not in (None, *SORT_LABELS):
        raise ExplainError(f"cannot sort by {sort!r}; use one of {', '.join(SORT_LABELS)}")
    shown = min(c, int(max_maps or c))
    grid = feature_grid(fm, order=order, max_channels=shown)
    caption = (f"`{layer}`: {shown} of {c} channels, each {h}×{w}, {SORT_LABELS[order or 'none']}. Each tile has its "
               "own colour scale (bright = strongest in that channel); the label is the channel number and its mean.")
    return grid, caption


def filters_view(model: nn.Module, layer: str) -> tuple[PIL.Image.Image | None, str]:
    """The kernels of the convolution at (or just before) `layer`, and a caption."""
    conv = nearest_conv(model, layer)
    if conv is None:
        return None, "No convolution at or before this layer, so there are no filters to show."
    flt = filters(model, conv)
    o, i, kh, kw = flt.weights.shape
    how = ("shown in colour (one RGB kernel per filter)" if flt.rgb else
           f"averaged over their {i} input channels; red positive, blue negative, white zero")
    where = "" if conv == layer else f" (the convolution feeding `{layer}`)"
    return filter_grid(flt), f"`{conv}`{where}: {o} filters of {kh}×{kw}, {how}."
