"""The pictures of an explanation, with the captions that say what they show: the Grad-CAM overlay, the attribution
methods side by side, and one layer's feature maps and filters."""
from __future__ import annotations

from typing import TYPE_CHECKING

import PIL.Image
import torch
import torch.nn as nn

from ..explain.choices import nearest_conv
from ..explain.layers import ExplainError
from ..explain.maps import feature_maps, filters
from .figures import figure_to_image, figure_to_png, methods_figure
from .pictures import feature_grid, filter_grid, overlay

if TYPE_CHECKING:
    from ..explain.pipeline import Explanation

SORT_LABELS = {"mean": "strongest mean activation first", "max": "strongest peak first",
               "frac_active": "largest active area first", "none": "in channel order"}


def cam_overlay(exp: Explanation, opacity: float = 0.5) -> PIL.Image.Image:
    """The Grad-CAM heat map blended over the model's view of the image."""
    return overlay(exp.view, exp.cam.upsampled, float(opacity))


def methods_picture(exp: Explanation, opacity: float = 0.5, dpi: int = 100) -> PIL.Image.Image | None:
    """The input and every attribution map side by side (None when no method was asked for)."""
    if not exp.attributions:
        return None
    return figure_to_image(methods_figure(exp.view, exp.attributions, exp.class_names, alpha=float(opacity)), dpi=dpi)


def explanation_png(exp: Explanation, title: str | None = None, dpi: int = 120) -> bytes:
    """The slide-ready figure of the attribution maps as PNG bytes, titled e.g. with the checkpoint's name."""
    return figure_to_png(methods_figure(exp.view, exp.attributions, exp.class_names, title=title), dpi=dpi)


def feature_map_view(model: nn.Module, x: torch.Tensor, layer: str, sort: str | None, max_maps: float | None
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


def filter_view(model: nn.Module, layer: str) -> tuple[PIL.Image.Image | None, str]:
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


__all__ = ["SORT_LABELS", "cam_overlay", "explanation_png", "feature_map_view", "filter_view", "methods_picture"]
