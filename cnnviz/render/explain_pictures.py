"""The pictures of an explanation, with the captions that say what they show: the Grad-CAM overlay, the attribution
methods side by side, and one layer's feature maps and filters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch
import torch.nn as nn

from ..explain.cache import model_key
from ..explain.choices import nearest_conv
from ..explain.layers import ExplainError
from ..explain.maps import FeatureMaps, feature_maps, filters
from .figures import figure_to_image, figure_to_png, methods_figure
from .pictures import _font, colorize, feature_grid, filter_grid, overlay, with_colorbar

if TYPE_CHECKING:
    from ..explain.cache import CachedExplainer, CachedInput
    from ..explain.pipeline import Explanation
    from ..store.checkpoints import LoadedModel

OVERLAID = {"gradcam", "occlusion"}  # coarse maps read best over the image; pixel maps alone (as figures.methods_figure)
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


def methods_strip(exp: Explanation, opacity: float = 0.5) -> PIL.Image.Image | None:
    """The input and every attribution map side by side, each with its colour bar, drawn with numpy and PIL: the
    screen's picture (the matplotlib figure, methods_picture, is the slide's; it takes ~10x longer). Coarse maps
    (Grad-CAM, Occlusion) over the image in jet, pixel-level maps alone in inferno, as in the figure."""
    if not exp.attributions:
        return None
    view = exp.view.convert("RGB")
    panels = [("model input", "", view)]
    for method, res in exp.attributions.items():
        if method in OVERLAID:
            img = with_colorbar(overlay(view, res.heat, float(opacity), "jet", min(view.size)), "jet", "low", "high")
        else:
            pixels = PIL.Image.fromarray(colorize(res.heat, "inferno")).resize(view.size, PIL.Image.Resampling.NEAREST)
            img = with_colorbar(pixels, "inferno", "low", "high")
        panels.append((res.title, res.layer or "", img))
    names, first = exp.class_names, next(iter(exp.attributions.values()))
    pred = int(np.argmax(first.probs))
    head = f"predicted {names[pred]} ({first.probs[pred]:.0%}); explaining {names[first.target]}"
    return _strip(head, panels)


def _strip(head: str, panels: list[tuple[str, str, PIL.Image.Image]], gap: int = 14) -> PIL.Image.Image:
    """Panels in a row under a headline, each titled (and sub-titled, e.g. with its layer)."""
    title_font, font = _font(16), _font(13)
    top = 30 + 40  # headline band, then two title lines
    width = sum(img.width for *_, img in panels) + gap * (len(panels) + 1)
    out = PIL.Image.new("RGB", (width, top + max(img.height for *_, img in panels) + gap), (255, 255, 255))
    draw = PIL.ImageDraw.Draw(out)
    draw.text((width // 2, 8), head, fill=(0, 0, 0), font=title_font, anchor="mt")
    x = gap
    for title, sub, img in panels:
        draw.text((x, 36), title, fill=(0, 0, 0), font=font)
        draw.text((x, 52), sub, fill=(90, 90, 90), font=font)
        out.paste(img, (x, top))
        x += img.width + gap
    return out


def explanation_png(exp: Explanation, title: str | None = None, dpi: int = 120) -> bytes:
    """The slide-ready figure of the attribution maps as PNG bytes, titled e.g. with the checkpoint's name."""
    return figure_to_png(methods_figure(exp.view, exp.attributions, exp.class_names, title=title), dpi=dpi)


def feature_map_view(model: nn.Module, x: torch.Tensor, layer: str, sort: str | None, max_maps: float | None
                     ) -> tuple[PIL.Image.Image, str]:
    """Grid of `layer`'s channels for input x [1,C,S,S], and a caption saying what is shown."""
    order = None if sort in (None, "", "none") else sort
    if order not in (None, *SORT_LABELS):
        raise ExplainError(f"cannot sort by {sort!r}; use one of {', '.join(SORT_LABELS)}")
    fm = feature_maps(model, x, layer)
    return _grid_view(fm, order, min(len(fm.maps), int(max_maps or len(fm.maps))))


def _grid_view(fm: FeatureMaps, order: str | None, shown: int) -> tuple[PIL.Image.Image, str]:
    c, h, w = fm.maps.shape
    grid = feature_grid(fm, order=order, max_channels=shown)
    caption = (f"`{fm.layer}`: {shown} of {c} channels, each {h}×{w}, {SORT_LABELS[order or 'none']}. Each tile has its "
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


@dataclass(frozen=True)
class ExplainPictures:
    """What the Explain tab shows first: the Grad-CAM overlay and one layer's feature maps, with their caption (the
    filters wait until their panel is opened: cached_filter_view)."""

    cam: PIL.Image.Image
    fmaps: PIL.Image.Image
    fm_caption: str


def explain_pictures(explainer: CachedExplainer, loaded: LoadedModel, exp: Explanation, inp: CachedInput,
                     opacity: float, sort: str | None, max_maps: float | None) -> ExplainPictures:
    """The first pictures of an explanation, each rendered once per distinct request (the cache returns the same
    image objects, so the web server's encoding of them is skipped as well)."""
    key, layer = inp.key, exp.layer
    cam = explainer.memo((*key, layer, exp.target, ("overlay", float(opacity))), lambda: cam_overlay(exp, opacity))
    fm, fm_caption = cached_feature_map_view(explainer, loaded, inp, layer, sort, max_maps)
    return ExplainPictures(cam, fm, fm_caption)


def cached_filter_view(explainer: CachedExplainer, loaded: LoadedModel, layer: str) -> tuple[PIL.Image.Image | None, str]:
    """filter_view through the cache: the kernels depend on the checkpoint and layer only, not on the image, so a
    panel opened again (or by another student) is the same picture object, neither drawn nor encoded again."""
    return explainer.memo((model_key(loaded), None, layer, None, "filter_view"), lambda: filter_view(loaded.model, layer))


def cached_feature_map_view(explainer: CachedExplainer, loaded: LoadedModel, inp: CachedInput, layer: str,
                            sort: str | None, max_maps: float | None) -> tuple[PIL.Image.Image, str]:
    """feature_map_view through the cache: the maps are computed once per image and layer, each grid drawn once."""
    order = None if sort in (None, "", "none") else sort
    if order not in (None, *SORT_LABELS):
        raise ExplainError(f"cannot sort by {sort!r}; use one of {', '.join(SORT_LABELS)}")
    fm = explainer.feature_maps(loaded, inp, layer)
    shown = min(len(fm.maps), int(max_maps or len(fm.maps)))
    return explainer.memo((*inp.key, layer, None, ("feature_grid", order, shown)), lambda: _grid_view(fm, order, shown))


def cached_methods_picture(explainer: CachedExplainer, exp: Explanation, inp: CachedInput,
                           opacity: float) -> PIL.Image.Image | None:
    """methods_picture through the cache (the matplotlib figure is the slowest picture: drawn once per request)."""
    key = (*inp.key, exp.layer, exp.target, ("methods", tuple(exp.attributions), float(opacity)))
    return explainer.memo(key, lambda: methods_strip(exp, opacity)) if exp.attributions else None


__all__ = ["SORT_LABELS", "ExplainPictures", "cached_feature_map_view", "cached_filter_view", "cached_methods_picture",
           "cam_overlay", "explain_pictures", "explanation_png", "feature_map_view", "filter_view", "methods_picture", "methods_strip"]
