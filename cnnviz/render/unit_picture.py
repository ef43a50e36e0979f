"""One unit's arithmetic as a picture: its receptive field on the image, then patch × kernel = products as grids of
numbers (first layer), or the input channels' contributions ranked (deeper), the sum plus bias, and the activation."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import PIL.Image
import PIL.ImageDraw

from .forward_pass_picture import HIGHLIGHT, _font
from .pictures import colorize

if TYPE_CHECKING:  # only types: render sits below lecture
    from ..lecture.unit_arithmetic import Term, UnitArithmetic

VIEW = 240  # side of the input picture
FIELD = (230, 0, 0)
MAX_NUMBER_CELLS = 49  # grids up to 7×7 get their numbers written in
TOP_TERMS = 10  # bars in the ranked contributions


def _number_grid(values: np.ndarray, cell: int, padded: np.ndarray | None = None, mark: tuple[int, int] | None = None,
                 numbers: bool = True) -> PIL.Image.Image:
    """values [h,w] as coloured cells (red > 0 > blue, one scale per grid), numbers written in; padding greyed."""
    v = np.nan_to_num(np.asarray(values, np.float64), neginf=np.nan)
    finite = np.isfinite(v)
    m = max(float(np.abs(v[finite]).max()) if finite.any() else 1.0, 1e-12)
    rgb = colorize((np.where(finite, v, 0) / m + 1) / 2, "RdBu_r")
    h, w = v.shape
    img = PIL.Image.fromarray(rgb).resize((w * cell, h * cell), PIL.Image.Resampling.NEAREST)
    draw = PIL.ImageDraw.Draw(img)
    size = max(8, min(14, cell // 4))
    for i in range(h):
        for j in range(w):
            box = [j * cell, i * cell, (j + 1) * cell - 1, (i + 1) * cell - 1]
            if padded is not None and padded[i, j]:
                draw.rectangle(box, fill=(226, 226, 226))
            draw.rectangle(box, outline=(255, 255, 255))
            if numbers:
                text = "pad" if padded is not None and padded[i, j] and v[i, j] == 0 else \
                    "–" if not finite[i, j] else f"{v[i, j]:.2f}"
                dark = finite[i, j] and abs(v[i, j]) > 0.6 * m
                draw.text((j * cell + cell // 2, i * cell + cell // 2), text, anchor="mm", font=_font(size),
                          fill=(255, 255, 255) if dark else (20, 20, 20))
    if mark is not None:
        i, j = mark
        draw.rectangle([j * cell, i * cell, (j + 1) * cell - 1, (i + 1) * cell - 1], outline=HIGHLIGHT, width=3)
    return img


def _field_view(view: PIL.Image.Image, size: int, u: UnitArithmetic) -> PIL.Image.Image:
    """The input as the network sees it with the unit's receptive field outlined (clipped to the image)."""
    img = view.convert("RGB").resize((VIEW, VIEW), PIL.Image.Resampling.NEAREST)
    if u.field is not None:
        f = VIEW / size
        x0, y0, x1, y1 = u.field
        box = [max(0, x0 * f), max(0, y0 * f), min(VIEW - 1, (x1 + 1) * f - 1), min(VIEW - 1, (y1 + 1) * f - 1)]
        PIL.ImageDraw.Draw(img).rectangle(box, outline=FIELD, width=3)
    return img


def _term_row(t: Term, cell: int, numbers: bool) -> list[tuple[str, PIL.Image.Image]]:
    return [("input patch", _number_grid(t.patch, cell, t.padded, numbers=numbers)),
            ("×  kernel", _number_grid(t.kernel, cell, numbers=numbers)),
            ("=  products", _number_grid(t.products, cell, numbers=numbers))]


def _ranked_bars(terms: tuple[Term, ...], bias: float | None, width: int) -> PIL.Image.Image:
    """The largest contributions as bars (with the rest and the bias), most important first."""
    rows = [(t.label, t.contribution) for t in terms[:TOP_TERMS]]
    if len(terms) > TOP_TERMS:
        rows.append((f"the other {len(terms) - TOP_TERMS}", sum(t.contribution for t in terms[TOP_TERMS:])))
    if bias is not None:
        rows.append(("bias", bias))
    row_h, label_w = 24, 170
    img = PIL.Image.new("RGB", (width, row_h * len(rows) + 8), "white")
    draw = PIL.ImageDraw.Draw(img)
    m = max(max(abs(v) for _, v in rows), 1e-12)
    half = (width - label_w - 80) / 2
    zero = label_w + half
    for n, (label, v) in enumerate(rows):
        y = 4 + n * row_h
        end = zero + v / m * half
        colour = (202, 0, 32) if v > 0 else (5, 113, 176)
        draw.rectangle([min(zero, end), y + 3, max(zero, end), y + row_h - 4], fill=colour)
        draw.text((label_w - 8, y + row_h // 2), label, anchor="rm", font=_font(12), fill=(0, 0, 0))
        draw.text((width - 4, y + row_h // 2), f"{v:+.4g}", anchor="rm", font=_font(12), fill=(55, 65, 81))
    draw.line([zero, 0, zero, img.height], fill=(156, 163, 175))
    return img


def _panels(u: UnitArithmetic) -> list[tuple[str, PIL.Image.Image]]:
    """The middle of the picture: number grids, ranked bars, a pool window or a block's two paths."""
    if u.kind == "pool":
        t = u.terms[0]
        win = np.asarray(t.patch, np.float64)
        mark = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(win), win, -np.inf))), win.shape) \
            if t.label == "max" else None
        cell = max(24, min(56, 280 // max(win.shape)))
        return [(f"window ({t.label})", _number_grid(win, cell, t.padded, mark, win.size <= MAX_NUMBER_CELLS * 4))]
    if u.kind == "block":
        return [("main path + shortcut", _ranked_bars(u.terms, None, 520))]
    panels = []
    small = u.terms[0].patch is not None and u.terms[0].patch.size <= MAX_NUMBER_CELLS
    if u.kind == "conv" and (u.first_layer or len(u.terms) <= 3):
        cell = max(34, min(60, 240 // max(u.terms[0].patch.shape)))
        for t in u.terms[:3]:
            panels += [(f"{t.label}: {name}", grid) for name, grid in _term_row(t, cell, small)]
        return panels
    panels.append(("contributions, largest first (Σ of each input's products)", _ranked_bars(u.terms, u.bias, 560)))
    if u.kind == "conv":
        cell = max(20, min(40, 160 // max(u.terms[0].patch.shape)))
        for t in u.terms[:2]:
            panels += [(f"{t.label}: {name}", grid) for name, grid in _term_row(t, cell, small and cell >= 30)]
    return panels


def _equation(u: UnitArithmetic) -> list[str]:
    if u.kind in ("conv", "linear"):
        lines = [f"Σ products = {u.total - (u.bias or 0):.5g}    + bias {u.bias or 0:.5g}    = {u.total:.5g}"]
    elif u.kind == "pool":
        lines = [f"{u.terms[0].label} of the window = {u.total:.5g}"]
    else:
        main, short = (t.contribution for t in u.terms)
        lines = [f"ReLU(main path {main:.5g} + shortcut {short:.5g}) = {u.total:.5g}"]
    lines[0] += f"      (the model's own value: {u.model_total:.5g})"
    lines += [f"{s.stage}  {s.operation}:   {s.before:.5g}  →  {s.after:.5g}      (model: {s.model_value:.5g})"
              for s in u.steps]
    return lines


def unit_picture(u: UnitArithmetic, view: PIL.Image.Image, input_size: int) -> PIL.Image.Image:
    """The whole arithmetic of one unit on one picture (PNG-ready)."""
    where = f"channel {u.channel} · row {u.row}, column {u.col}" if u.row is not None else f"unit {u.channel}"
    title = f"{u.stage} · {where}"
    subtitle = u.operation + ("" if u.source == u.stage else f" (layer {u.source}, then what follows it)")
    left = _field_view(view, input_size, u)
    panels = _panels(u)
    alone = 1 if panels[0][0].startswith("contributions") else 0  # ranked bars get a row of their own
    grid_rows = panels[:alone] and [panels[:alone]]
    grid_rows += [panels[i:i + 3] for i in range(alone, len(panels), 3)]  # patch, kernel, products per row
    lines = _equation(u)
    gap, cap = 18, 20
    widths = [sum(img.width for _, img in r) + gap * (len(r) - 1) for r in grid_rows]
    heights = [max(img.height for _, img in r) + cap for r in grid_rows]
    top = 62
    width = max(VIEW + 2 * gap + max(widths), 900, int(_font(15).getlength(max(lines, key=len))) + 30)
    height = top + max(VIEW + cap, sum(heights) + gap * (len(heights) - 1)) + 24 * len(lines) + 24
    img = PIL.Image.new("RGB", (width, height), "white")
    draw = PIL.ImageDraw.Draw(img)
    draw.text((10, 8), title, font=_font(17, True), fill=(0, 0, 0))
    draw.text((10, 33), subtitle, font=_font(13), fill=(55, 65, 81))
    draw.text((10, top), f"receptive field: {u.rf}×{u.rf} px" if u.rf else "input (fully connected: sees it all)",
              font=_font(12), fill=FIELD)
    img.paste(left, (10, top + cap))
    y = top
    for r, h in zip(grid_rows, heights):
        x = VIEW + 2 * gap
        for label, panel in r:
            draw.text((x, y), label, font=_font(12), fill=(55, 65, 81))
            img.paste(panel, (x, y + cap))
            x += panel.width + gap
        y += h + gap
    y = max(y, top + VIEW + cap + gap)
    for n, line in enumerate(lines):
        draw.text((10, y + 24 * n), line, font=_font(15, n == len(lines) - 1), fill=(0, 0, 0))
    return img


__all__ = ["unit_picture"]
