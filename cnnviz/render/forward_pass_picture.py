"""The whole network at a glance: one picture of one image's forward pass, every stage a column of its strongest
channels (CNN Explainer's overview, for any architecture), the logits and softmax as bars; a step-through highlight
of one stage, and an animated GIF of the steps for slides.

Drawn with numpy and PIL straight into pixels: a matplotlib figure of the same picture took several times as long
(its text and axes layout), and pixel boxes are exact, so each column's and tile's box is kept and a click on the
picture can be mapped to a unit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont

from .animation import animated_gif
from .pictures import colorize

if TYPE_CHECKING:  # only types: render sits below lecture
    from ..lecture.forward_pass import ForwardPass

TILE = 64  # px per feature-map tile
GAP = 6
PAD = 14  # left and right of the tiles in a column
HEAD = 52  # two title lines (and a block's shortcut arc) above a column's tiles
FOOT = 52  # shape, "+N more" and a block's shortcut below
TOP = 34  # the title band
BOTTOM = 24  # the colour legend
BARS_W = 400  # logits and softmax
BAR_PANEL = 290  # height of each of the two bar panels at least
MAX_COLUMNS = 14  # per row; deeper networks wrap onto more rows
HIGHLIGHT = (255, 140, 0)
KIND_COLOURS = {"input": "#6b7280", "conv": "#1f4fd8", "norm": "#7c3aed", "activation": "#0f766e", "pool": "#c2410c",
                "block": "#1f4fd8", "linear": "#15803d", "other": "#374151"}
LEGEND = ("colours per stage: red > 0 > blue where a stage has negative values, dark to yellow where it has none; "
          "each column shows its strongest channels (mean |activation|), the same channels along conv → norm → ReLU → pool")


@dataclass(frozen=True)
class Column:
    """One shown stage: its index in the forward pass, its box in picture pixels (x0, y0, x1, y1), and its tiles as
    (channel, tile box, map height, map width). A vector stage has one tile: its `units` values drawn row-major."""

    stage: int
    name: str
    box: tuple[int, int, int, int]
    tiles: tuple[tuple[int, tuple[int, int, int, int], int, int], ...] = ()
    units: int | None = None


@dataclass(frozen=True)
class Hit:
    """What a click on the picture points at: a column, and a unit when it fell on a tile."""

    column: int
    stage: str
    channel: int | None = None
    row: int | None = None
    col: int | None = None


@dataclass(frozen=True)
class ForwardPassPicture:
    image: PIL.Image.Image
    columns: tuple[Column, ...]
    title: str

    def hit(self, x: float, y: float) -> Hit | None:
        """The column (and unit) under picture pixel (x, y), or None between columns."""
        for k, c in enumerate(self.columns):
            x0, y0, x1, y1 = c.box
            if not (x0 <= x < x1 and y0 <= y < y1):
                continue
            for channel, (tx0, ty0, tx1, ty1), h, w in c.tiles:
                if tx0 <= x < tx1 and ty0 <= y < ty1:
                    r = min(int((y - ty0) / (ty1 - ty0) * h), h - 1)
                    q = min(int((x - tx0) / (tx1 - tx0) * w), w - 1)
                    if c.units is not None:  # a vector drawn as a grid: the unit's index
                        return Hit(k, c.name, r * w + q) if r * w + q < c.units else Hit(k, c.name)
                    return Hit(k, c.name, channel, r, q)
            return Hit(k, c.name)
        return None


def _scaled(v: np.ndarray) -> tuple[np.ndarray, str]:
    """Values -> [0,1] and a colormap: symmetric diverging when any is negative, else 0..max."""
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    if lo < 0:
        m = max(abs(lo), abs(hi), 1e-12)
        return (v / m + 1) / 2, "RdBu_r"
    return v / max(hi, 1e-12), "viridis"


def _tiles(a: np.ndarray, cmap: str, side: int) -> np.ndarray:
    """Maps [k,h,w] in [0,1] (NaN = empty) as side×side RGB tiles [k,side,side,3]: nearest neighbour (crisp pixels) by
    indexing, then one colormap lookup for all of them."""
    _, h, w = a.shape
    big = a[:, (np.arange(side) * h) // side][:, :, (np.arange(side) * w) // side]
    rgb = colorize(big, cmap)
    rgb[np.isnan(big)] = 235
    return rgb


def _vector_grid(v: np.ndarray) -> tuple[np.ndarray, int]:
    """A vector [N] as a near-square grid (NaN padding) and its width."""
    w = max(1, math.ceil(math.sqrt(len(v))))
    grid = np.full(w * math.ceil(len(v) / w), np.nan)
    grid[:len(v)] = v
    return grid.reshape(-1, w), w


def _layout(n: int) -> list[int]:
    """Columns per row for n columns: as few rows as MAX_COLUMNS allows, filled evenly."""
    rows = max(1, math.ceil(n / MAX_COLUMNS))
    per = math.ceil(n / rows)
    return [min(per, n - i * per) for i in range(rows)]


def _short(name: str, limit: int = 13) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"


@lru_cache(maxsize=16)
def _font(size: int, bold: bool = False) -> PIL.ImageFont.FreeTypeFont:
    """DejaVu Sans from matplotlib's own data folder (offline; it has ×, → and √, Pillow's default font has not)."""
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"DejaVuSans{'-Bold' if bold else ''}.ttf"
    return PIL.ImageFont.truetype(str(path), size) if path.is_file() else PIL.ImageFont.load_default(size=size)


@lru_cache(maxsize=4096)
def _text_mask(text: str, size: int, bold: bool, anchor: str) -> tuple[PIL.Image.Image, int, int]:
    """The text rendered once as a mask, with its offset from the anchor point. Stage names, shapes and class names
    repeat from one picture to the next, and FreeType rendering was the largest cost of a picture."""
    font = _font(size, bold)
    left, top, right, bottom = font.getbbox(text, anchor=anchor)
    mask = PIL.Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    PIL.ImageDraw.Draw(mask).text((-left, -top), text, font=font, fill=255, anchor=anchor)
    return mask, left, top


def _text(img: PIL.Image.Image, xy: tuple[float, float], text: str, size: int, fill: tuple[int, int, int],
          bold: bool = False, anchor: str = "la") -> None:
    """Draw `text` at `xy` (PIL's anchor convention) through the cached mask."""
    mask, left, top = _text_mask(text, size, bold, anchor)
    x, y = round(xy[0]) + left, round(xy[1]) + top
    img.paste(fill, (x, y, x + mask.width, y + mask.height), mask)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def _label(stage) -> str:
    """A column's second title line, short enough for one column."""
    if stage.kind == "block":
        return stage.detail.split(" + ")[0]
    return stage.detail.replace("fully connected ", "FC ").replace(" image", " px").replace("-pool", "")


def forward_pass_picture(fp: ForwardPass, per_stage: int | None = None) -> ForwardPassPicture:
    """Render every shown stage of `fp` (see ForwardPass.shown) with up to `per_stage` channels each (default: 6,
    or 4 when the network needs more than one row), then the logits and the softmax as bars."""
    maps = [i for i in fp.shown() if fp.stages[i].kind not in ("logits", "softmax")]
    rows = _layout(len(maps))
    k = int(per_stage or (6 if len(rows) == 1 else 4))
    col_w, in_w = TILE + 2 * PAD, 2 * TILE + 2 * PAD
    row_h = HEAD + max(k * (TILE + GAP), 2 * TILE) + FOOT
    starts = [sum(rows[:r]) for r in range(len(rows))]
    cw = max(sum(in_w if maps[j] == 0 else col_w for j in range(a, a + n)) for a, n in zip(starts, rows))
    height = TOP + max(len(rows) * row_h, 2 * BAR_PANEL) + BOTTOM
    canvas = np.full((height, cw + BARS_W, 3), 255, np.uint8)
    texts, arcs, columns = [], [], []
    for r, (a, n) in enumerate(zip(starts, rows)):
        x, y0 = 0, TOP + r * row_h
        for i in maps[a:a + n]:
            s, v = fp.stages[i], fp.values[i]
            w = in_w if s.kind == "input" else col_w
            tiles = _draw_stage(canvas, fp, i, x + PAD, y0 + HEAD, k)
            colour = _rgb(KIND_COLOURS.get(s.kind, "#374151"))
            texts += [((x + w // 2, y0 + 2), _short(s.name, 12), 14 if len(s.name) <= 10 else 12, colour, True),
                      ((x + w // 2, y0 + 20), _short(_label(s), 14), 11, colour, False)]
            below = tiles[-1][1][3] + 4
            hidden = v.shape[0] - len(tiles) if s.spatial and s.kind != "input" else 0
            foot = ["×".join(map(str, v.shape))] + ([f"+{hidden} more"] if hidden else [])
            if s.kind == "block":
                foot.append("+ identity" if s.shortcut == "identity" else "+ " + (s.shortcut or "shortcut")[:12])
                arcs.append((x + 6, x + w - 6, y0 + HEAD - 4))
            texts += [((x + w // 2, below + 15 * m), line, 11, (17, 24, 39) if m == 0 else (90, 96, 110), False)
                      for m, line in enumerate(foot)]
            columns.append(Column(i, s.name, (x, y0, x + w, y0 + row_h), tuple(tiles), None if s.spatial else v.size))
            x += w
    title = (f"{fp.arch or 'network'}: predicted {fp.class_names[fp.predicted]} ({fp.probs[fp.predicted]:.0%}) · "
             f"{len(fp.stages) - 1} stages of one forward pass")
    img = PIL.Image.fromarray(canvas)
    draw = PIL.ImageDraw.Draw(img)
    for (x, y), text, size, colour, bold in texts:
        _text(img, (x, y), text, size, colour, bold, "ma")
    for x0, x1, y in arcs:  # the shortcut: an arc over the block, input side to output side
        draw.arc([x0, y - 14, x1, y + 10], 200, 340, fill=_rgb(KIND_COLOURS["block"]), width=2)
        draw.polygon([(x1 - 4, y - 7), (x1 + 2, y - 1), (x1 - 7, y)], fill=_rgb(KIND_COLOURS["block"]))
    _text(img, (8, 6), title, 19, (0, 0, 0), True)
    _text(img, (8, height - BOTTOM + 4), LEGEND, 11, (75, 85, 99))
    columns += _bars(img, draw, fp, cw, height)
    return ForwardPassPicture(img, tuple(columns), title)


def _draw_stage(canvas: np.ndarray, fp: ForwardPass, i: int, x: int, y: int, k: int) -> list:
    """Paste stage i's tiles into the canvas at (x, y); returns (channel, box, h, w) per tile."""
    s, v = fp.stages[i], fp.values[i]
    if s.kind == "input":
        side = 2 * TILE
        canvas[y:y + side, x:x + side] = np.asarray(fp.view.convert("RGB").resize((side, side), PIL.Image.Resampling.NEAREST))
        return [(0, (x, y, x + side, y + side), v.shape[1], v.shape[2])]
    if not s.spatial:  # a vector (fully connected layer): one grid tile, unit index row-major
        grid, w = _vector_grid(v.reshape(-1))
        a, cmap = _scaled(grid)
        canvas[y:y + TILE, x:x + TILE] = _tiles(a[None], cmap, TILE)[0]
        return [(0, (x, y, x + TILE, y + TILE), grid.shape[0], w)]
    channels, _ = fp.strongest_channels(i, k)
    a, cmap = _scaled(v[channels].astype(np.float64))
    rgb = _tiles(a, cmap, TILE)
    tiles = []
    for n, c in enumerate(channels):
        ty = y + n * (TILE + GAP)
        canvas[ty:ty + TILE, x:x + TILE] = rgb[n]
        tiles.append((int(c), (x, ty, x + TILE, ty + TILE), v.shape[1], v.shape[2]))
    return tiles


def _bars(img: PIL.Image.Image, draw: PIL.ImageDraw.ImageDraw, fp: ForwardPass, cw: int, height: int) -> list[Column]:
    """Logits and softmax as horizontal bars (the 10 most probable classes, most probable on top); their columns."""
    logits_i = next((i for i, s in enumerate(fp.stages) if s.kind == "logits"), len(fp.stages) - 2)
    probs, logits = fp.probs, fp.values[logits_i]
    order = np.argsort(-probs, kind="stable")[:10]
    panel = (height - TOP - BOTTOM) // 2
    label_w, bar_w = 130, BARS_W - 190
    columns = []
    for n, (vals, title, stage) in enumerate(((logits, f"{fp.stages[logits_i].name}: logits", logits_i),
                                              (probs, "softmax: probabilities", len(fp.stages) - 1))):
        y0 = TOP + n * panel
        _text(img, (cw + 10, y0 + 2), title, 14, (21, 128, 61) if n == 0 else (180, 83, 9), True)
        row_h = min(24, (panel - 34) // len(order))
        rows = []  # a logit's bar is a tile: a click on it explains that class's unit of the last layer
        lo, hi = (0.0, 1.0) if n else (min(0.0, float(vals[order].min())), max(0.0, float(vals[order].max())))
        scale = bar_w / max(hi - lo, 1e-12)
        zero = cw + label_w + int(-lo * scale)
        for m, c in enumerate(order):
            y = y0 + 28 + m * row_h
            colour = HIGHLIGHT if c == fp.predicted else (124, 147, 195)
            end = zero + int(float(vals[c]) * scale)
            draw.rectangle([min(zero, end), y + 2, max(zero, end), y + row_h - 3], fill=colour)
            _text(img, (cw + label_w - 6, y + row_h // 2), _short(str(fp.class_names[c]), 16), 12, (0, 0, 0), anchor="rm")
            rows.append((int(c), (cw, y, cw + BARS_W, y + row_h), 1, 1))
            number = (f"{vals[c]:.0%}" if vals[c] >= 0.095 else f"{vals[c]:.1%}") if n else f"{vals[c]:.2f}"
            _text(img, (cw + label_w + bar_w + 6, y + row_h // 2), number, 12, (55, 65, 81), anchor="lm")
        draw.line([zero, y0 + 26, zero, y0 + 28 + len(order) * row_h], fill=(156, 163, 175), width=1)
        columns.append(Column(stage, fp.stages[stage].name, (cw, y0, cw + BARS_W, y0 + panel), tuple(rows) if n == 0 else ()))
    return columns


def highlight(pic: ForwardPassPicture, k: int) -> PIL.Image.Image:
    """The picture with column k (of `pic.columns`) standing out: the rest faded, the column framed, a caption."""
    if not 0 <= k < len(pic.columns):
        raise ValueError(f"step {k} is outside the {len(pic.columns)} steps (0 to {len(pic.columns) - 1})")
    return _highlighted(pic.image, pic.columns[k].box, f"step {k + 1} of {len(pic.columns)}: {pic.columns[k].name}")


def _highlighted(image: PIL.Image.Image, box: tuple[int, ...], caption: str, scale: float = 1.0) -> PIL.Image.Image:
    base = np.asarray(image)
    out = (base * 0.3 + 255 * 0.7).astype(np.uint8)
    x0, y0, x1, y1 = (round(v * scale) for v in box)
    out[y0:y1, x0:x1] = base[y0:y1, x0:x1]
    img = PIL.Image.fromarray(out)
    draw = PIL.ImageDraw.Draw(img)
    draw.rectangle([x0 + 1, y0 + 1, x1 - 2, y1 - 2], outline=HIGHLIGHT, width=max(2, round(4 * scale)))
    draw.rectangle([0, 0, img.width, round((TOP - 2) * scale)], fill="white")
    draw.text((8, round(6 * scale)), caption, fill=(0, 0, 0), font=_font(max(10, round(19 * scale)), True))
    return img


def forward_pass_gif(pic: ForwardPassPicture, ms_per_frame: int = 700, max_width: int = 1280) -> bytes:
    """Every step highlighted in turn, then the whole picture: an animated GIF for slides."""
    scale = min(1.0, max_width / pic.image.width)  # slides rarely need more; encode time grows with the pixels
    small = pic.image if scale == 1 else pic.image.resize((round(pic.image.width * scale),
                                                           round(pic.image.height * scale)), PIL.Image.Resampling.BILINEAR)
    n = len(pic.columns)
    frames = [_highlighted(small, c.box, f"step {k + 1} of {n}: {c.name}", scale) for k, c in enumerate(pic.columns)]
    frames.append(small)
    # One palette for every frame, from the picture and its faded copy: per-frame quantisation took most of the time,
    # and a shared palette keeps colours from flickering between frames.
    faded = PIL.Image.fromarray((np.asarray(small) * 0.3 + 255 * 0.7).astype(np.uint8))
    both = PIL.Image.new("RGB", (small.width, small.height * 2))
    both.paste(small, (0, 0))
    both.paste(faded, (0, small.height))
    palette = both.quantize(255, method=PIL.Image.Quantize.FASTOCTREE)
    return animated_gif([f.quantize(palette=palette, dither=PIL.Image.Dither.NONE) for f in frames], ms_per_frame)


__all__ = ["Column", "ForwardPassPicture", "Hit", "forward_pass_gif", "forward_pass_picture", "highlight"]
