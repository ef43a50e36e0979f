"""cnnviz.render: grids, overlays and figures have the right size, labels and speed, and never need pyplot."""
from __future__ import annotations

import io
import subprocess
import sys
import time

import numpy as np
import PIL.Image
import pytest
import torch

from cnnviz.explain.attributions import attribute_all
from cnnviz.explain.maps import FeatureMaps, feature_maps, filters
from cnnviz.explain.pipeline import prepare
from cnnviz.images import InputSpec
from cnnviz.models import get_model
from cnnviz.render.figures import confusion_figure, curves_figure, figure_to_image, figure_to_png, methods_figure
from cnnviz.render.pictures import cam_image, colorize, feature_grid, filter_grid, lut, overlay, upscale, with_colorbar


def _maps(c: int, h: int, seed: int = 0, constant: int | None = None) -> FeatureMaps:
    maps = np.random.default_rng(seed).normal(size=(c, h, h)).astype(np.float32)
    if constant is not None:
        maps[constant] = 7.0
    flat = maps.reshape(c, -1)
    return FeatureMaps("layer", maps, flat.mean(1), flat.max(1), flat.min(1), (flat > 0).mean(1))


def test_lut_and_colorize():
    table = lut("viridis")
    assert table.shape == (256, 3) and table.dtype == np.uint8
    rgb = colorize(np.array([[0.0, 1.0], [np.nan, 2.0]]), "viridis")
    assert rgb.shape == (2, 2, 3)
    assert (rgb[0, 0] == table[0]).all() and (rgb[0, 1] == table[255]).all() and (rgb[1, 1] == table[255]).all()
    with pytest.raises(ValueError, match="unknown colormap"):
        lut("no-such-map")


def test_feature_grid_of_256_channels_is_fast_sized_and_labelled():
    fm = _maps(256, 8)
    feature_grid(fm)  # warm-up: font and colormap caches
    start = time.perf_counter()
    img = feature_grid(fm)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"{elapsed:.2f} s"  # ~30 ms in practice; the benchmark times it properly
    # 16x16 cells; each: 8 px map x6 (NEAREST) = 48 px tile + 2 px gap, plus a 13 px label band above it.
    assert img.size == (16 * 50, 16 * (13 + 48 + 2))
    arr = np.asarray(img)
    band = arr[0:13, 0:48]  # label of the first cell
    assert (band.sum(-1) < 200).any()  # dark text pixels
    plain = np.asarray(feature_grid(fm, labels=False))
    assert plain.shape == (16 * 50, 16 * 50, 3)


def test_feature_grid_order_and_scales():
    fm = _maps(4, 5, constant=2)  # a dead (constant) channel renders as the colormap's low end, not NaN garbage
    per = np.asarray(feature_grid(fm, order=None, labels=False, tile=5))
    first_tile = per[:5, :5]
    assert (first_tile.reshape(-1, 3).max(0) > first_tile.reshape(-1, 3).min(0)).any()
    shared = np.asarray(feature_grid(fm, order=None, shared_scale=True, labels=False, tile=5))
    assert shared.shape == per.shape and not np.array_equal(shared, per)
    top = np.asarray(feature_grid(fm, order="mean", labels=False, tile=5))[:5, :5]
    assert (top == lut("viridis")[0]).all()  # channel 2 (largest mean) comes first, and is flat


def test_filter_grids():
    vgg = get_model("vgg11", 3, 10, 32)
    rgb = filter_grid(filters(vgg))  # 64 colour 3x3 kernels -> 8x8 grid of 48 px tiles
    assert rgb.size == (8 * (48 + 3), 8 * (48 + 3 + 13))
    gray = filter_grid(filters(vgg, "features.4"), labels=False)  # 128 signed kernels, diverging colours
    assert gray.size[0] == 12 * 51


def test_overlay_upscales_with_nearest_and_colour_bar():
    img = PIL.Image.fromarray(np.tile(np.arange(28, dtype=np.uint8)[None] * 9, (28, 1)))  # grayscale 28 px
    heat = np.zeros((28, 28), np.float32)
    out = overlay(img, heat, alpha=0.0)
    assert out.size == (224, 224) and out.mode == "RGB"
    arr = np.asarray(out)
    assert (arr[:8, :8] == arr[0, 0]).all() and (arr[:, 8] != arr[:, 7]).all()  # crisp 8x8 blocks
    assert (np.asarray(overlay(img.convert("RGB").resize((224, 224)), heat, alpha=1.0, cmap="jet")) == lut("jet")[0]).all()
    barred = with_colorbar(out)
    assert barred.height == 224 and barred.width > 224 + 12
    assert cam_image(img, np.random.default_rng(0).random((28, 28))).height == 224


def test_figures_render_to_png_without_pyplot():
    matrix = np.random.default_rng(0).integers(0, 40, (10, 10))
    png = figure_to_png(confusion_figure(matrix, [f"class {i}" for i in range(10)]))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and PIL.Image.open(io.BytesIO(png)).size[0] > 400
    big = figure_to_image(confusion_figure(np.eye(100, dtype=int) * 5, [str(i) for i in range(100)]), dpi=50)
    assert big.size[0] > 300
    assert figure_to_image(confusion_figure(np.zeros((3, 3), int), ["a", "b", "c"]), dpi=40).size[0] > 100
    history = [dict(epoch=e, train_loss=1 / e, train_acc=0.5 + e / 20, val_loss=1.1 / e, val_acc=0.45 + e / 20)
               for e in range(1, 6)]
    assert figure_to_image(curves_figure(history), dpi=50).size[0] > 300
    assert figure_to_image(curves_figure([dict(epoch=1, train_loss=2.0)]), dpi=40).size[0] > 100
    assert figure_to_image(curves_figure([]), dpi=40).size[0] > 100


def test_render_imports_neither_pyplot_nor_gradio_nor_captum():
    code = "import sys, cnnviz.render.pictures, cnnviz.render.figures, cnnviz.explain.gradcam, cnnviz.explain.maps, " \
           "cnnviz.explain.hooks, cnnviz.cli.explain; " \
           "print(sorted(m for m in ('matplotlib.pyplot', 'gradio', 'captum') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_methods_figure_has_one_panel_per_method_and_the_input():
    torch.manual_seed(0)
    model = get_model("lenet5", 1, 10, 28).eval()
    x = torch.randn(1, 1, 28, 28)
    results = attribute_all(model, x, methods=("gradcam", "saliency", "occlusion"))
    view = PIL.Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)).resize((224, 224))
    fig = methods_figure(view, results, [f"digit {i}" for i in range(10)], title="demo")
    assert len([ax for ax in fig.axes if ax.get_title()]) == 4
    assert "predicted digit" in fig._suptitle.get_text()
    assert figure_to_image(fig, dpi=60).size[0] > 500


def test_feature_grid_from_a_real_layer():
    fm = feature_maps(get_model("lenet5", 1, 10, 28), torch.randn(1, 28, 28), "features.0")
    img = feature_grid(fm)
    assert img.size[0] > 28 * 3 and upscale(img, 10) is img


def test_prepare_gives_what_the_model_sees():
    img = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    x, view = prepare(img, InputSpec(1, 28, (0.5,), (0.25,)))
    assert x.shape == (1, 1, 28, 28) and view.mode == "L" and view.width % 28 == 0 and view.width >= 224
