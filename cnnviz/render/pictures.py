"""Numbers -> pictures: feature and filter grids, heat-map overlays (numpy + colormap LUT + PIL, fast enough"""
from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont

from ..explain.layers import normalize01
from ..explain.maps import FeatureMaps, Filters

if TYPE_CHECKING:  # importing captum costs time that the training UI's figures do not need
    pass


BACKGROUND = (255, 255, 255)




@lru_cache(maxsize=32)
def lut(cmap: str) -> np.ndarray:
    """256-entry RGB lookup table [256,3] uint8 of a matplotlib colormap (built once per name)."""
    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError:
        raise ValueError(f"unknown colormap {cmap!r}") from None
    return (colormap(np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)


def colorize(a: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """Values in [0,1] (any shape) -> uint8 RGB (shape + [3]) through the colormap's LUT."""
    idx = (np.clip(np.nan_to_num(a), 0, 1) * 255 + 0.5).astype(np.uint8)
    return lut(cmap)[idx]


@lru_cache(maxsize=8)
def _font(size: int) -> PIL.ImageFont.ImageFont:
    return PIL.ImageFont.load_default(size=size)


def upscale(img: PIL.Image.Image, min_side: int = 224) -> PIL.Image.Image:
    """Enlarge by the integer factor that brings the shorter side to at least `min_side` (NEAREST: crisp pixels)."""
    k = max(1, math.ceil(min_side / max(1, min(img.size))))
    return img if k == 1 else img.resize((img.width * k, img.height * k), PIL.Image.Resampling.NEAREST)


def resize_heat(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float map [h,w] to PIL size (W,H)."""
    if heat.shape[::-1] == size:
        return heat
    img = PIL.Image.fromarray(np.ascontiguousarray(heat, dtype=np.float32))  # mode F
    return np.asarray(img.resize(size, PIL.Image.Resampling.BILINEAR))


def overlay(image: PIL.Image.Image, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet",
            min_side: int = 224) -> PIL.Image.Image:
    """Blend a heat map [H,W] in [0,1] over `image` (resized to it if needed), then upscale with NEAREST."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)  # [H,W,3]
    colour = colorize(resize_heat(np.asarray(heat, np.float32), image.size), cmap).astype(np.float32)
    mixed = (1 - alpha) * base + alpha * colour
    return upscale(PIL.Image.fromarray((mixed + 0.5).astype(np.uint8)), min_side)


def with_colorbar(img: PIL.Image.Image, cmap: str = "jet", low: str = "0", high: str = "1") -> PIL.Image.Image:
    """`img` with a vertical colour bar (high at the top) and its two end labels on the right."""
    h = img.height
    bar = colorize(np.linspace(1, 0, h, dtype=np.float32)[:, None].repeat(12, 1), cmap)  # [h,12,3]
    font = _font(max(10, h // 20))
    text_w = int(max(font.getlength(low), font.getlength(high))) + 4
    out = PIL.Image.new("RGB", (img.width + 8 + 12 + text_w, h), BACKGROUND)
    out.paste(img.convert("RGB"), (0, 0))
    out.paste(PIL.Image.fromarray(bar), (img.width + 6, 0))
    draw = PIL.ImageDraw.Draw(out)
    draw.text((img.width + 20, 0), high, fill=(0, 0, 0), font=font)
    draw.text((img.width + 20, h), low, fill=(0, 0, 0), font=font, anchor="ld")
    return out


def cam_image(view: PIL.Image.Image, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet",
              min_side: int = 224) -> PIL.Image.Image:
    """Grad-CAM (or any [0,1] map) over the picture the model sees, with a colour bar: the UI's main image."""
    return with_colorbar(overlay(view, heat, alpha, cmap, min_side), cmap, "low", "high")


def _tile_grid(tiles: np.ndarray, labels: Sequence[str] | None, gap: int, label_h: int, font_size: int) -> PIL.Image.Image:
    """Arrange RGB tiles [N,th,tw,3] on a near-square grid, with a text band above each tile when labelled."""
    n, th, tw, _ = tiles.shape
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    cell_h, cell_w = label_h + th + gap, tw + gap
    cells = np.full((rows * cols, cell_h, cell_w, 3), BACKGROUND, dtype=np.uint8)
    cells[:n, label_h:label_h + th, :tw] = tiles
    # [rows,cols,cell_h,cell_w,3] -> [rows,cell_h,cols,cell_w,3]: one reshape, no per-tile Python copies
    canvas = cells.reshape(rows, cols, cell_h, cell_w, 3).transpose(0, 2, 1, 3, 4).reshape(rows * cell_h, cols * cell_w, 3)
    img = PIL.Image.fromarray(np.ascontiguousarray(canvas))
    if labels:
        draw, font = PIL.ImageDraw.Draw(img), _font(font_size)
        for i, text in enumerate(labels[:n]):
            r, c = divmod(i, cols)
            draw.text((c * cell_w + 1, r * cell_h + label_h - 1), text, fill=(0, 0, 0), font=font, anchor="ld")
    return img


def _zoom(side: int, target: int) -> int:
    """Integer NEAREST factor bringing a `side`-px tile near `target` px."""
    return max(1, round(target / max(1, side)))


def feature_grid(fm: FeatureMaps, order: str | None = "mean", shared_scale: bool = False, cmap: str = "viridis",
                 max_channels: int | None = None, tile: int | None = None, labels: bool = True) -> PIL.Image.Image:
    """Grid of every channel of `fm`: sorted by a statistic (None keeps channel order), colour scale per channel or
    shared across the layer, each tile labelled with its channel index and mean activation."""
    idx = fm.order(order) if order else np.arange(fm.maps.shape[0])
    if max_channels is not None:
        idx = idx[:max_channels]
    maps = fm.maps[idx]  # [N,h,w]
    n, h, w = maps.shape
    if shared_scale:
        scaled = normalize01(maps)
    else:
        lo = maps.min(axis=(1, 2), keepdims=True)
        span = maps.max(axis=(1, 2), keepdims=True) - lo
        scaled = np.where(span > 1e-12, (maps - lo) / np.where(span > 1e-12, span, 1), 0.0)
    k = _zoom(max(h, w), tile or (64 if n <= 64 else 48))
    tiles = colorize(scaled, cmap).repeat(k, axis=1).repeat(k, axis=2)  # [N,h*k,w*k,3]
    font_size = 10 if w * k >= 40 else 8
    text = None
    if labels:
        wide = w * k >= 6 * font_size
        text = [f"{c}: {fm.mean[c]:.2g}" if wide else f"{c}" for c in idx]
    return _tile_grid(tiles, text, gap=2, label_h=font_size + 3 if labels else 0, font_size=font_size)


def filter_grid(flt: Filters, tile: int = 48, cmap: str = "RdBu_r", labels: bool = True) -> PIL.Image.Image:
    """Grid of a conv layer's kernels: RGB tiles (each filter min-max stretched) for colour first layers, else
    signed kernels on a diverging colormap (white = 0, each filter scaled by its largest |weight|)."""
    t = flt.tiles
    if flt.rgb:  # [O,kh,kw,3]
        lo = t.min(axis=(1, 2, 3), keepdims=True)
        span = t.max(axis=(1, 2, 3), keepdims=True) - lo
        rgb = (np.where(span > 1e-12, (t - lo) / np.where(span > 1e-12, span, 1), 0.5) * 255 + 0.5).astype(np.uint8)
    else:  # [O,kh,kw]
        m = np.abs(t).max(axis=(1, 2), keepdims=True)
        rgb = colorize(np.where(m > 0, t / np.where(m > 0, m, 1), 0) * 0.5 + 0.5, cmap)
    k = _zoom(max(t.shape[1:3]), tile)
    rgb = rgb.repeat(k, axis=1).repeat(k, axis=2)
    font_size = 10 if rgb.shape[2] >= 30 else 8
    text = [str(i) for i in range(len(t))] if labels else None
    return _tile_grid(rgb, text, gap=3, label_h=font_size + 3 if labels else 0, font_size=font_size)


