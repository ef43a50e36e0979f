"""Pictures and tables for the lecture tabs (no gradio here): a clickable confusion matrix, the sanity-check grid,
receptive-field outlines and long-format curve frames for gr.LinePlot.

The most frequent mistake of a matrix (which cell to open first) is a decision, not a picture: it lives in
cnnviz.lecture.drilldown.worst_cell."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont

from .figures import confusion_figure, figure_to_image
from .pictures import colorize, overlay

if TYPE_CHECKING:  # only a type here: render sits below lecture, so it does not import it at run time
    from ..lecture.receptive import FieldBox

FIELD_COLOUR = (230, 0, 0)  # the chosen unit's field: red, drawn 2 px wide like cnnviz.lecture.receptive.draw_fields
METRICS = {"val_acc": "test accuracy", "val_loss": "test loss", "train_acc": "train accuracy", "train_loss": "train loss"}


def font(size: int) -> PIL.ImageFont.ImageFont:
    """PIL's bundled font at `size` px (no font file needed, so it works offline everywhere)."""
    return PIL.ImageFont.load_default(size=size)


@dataclass(frozen=True)
class ConfusionPicture:
    """A rendered confusion matrix and where its cells are: `box` = (x0, y0, x1, y1) of the matrix in image pixels."""

    image: PIL.Image.Image
    box: tuple[float, float, float, float]
    k: int

    def cell_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(true, predicted) of the cell under image pixel (x, y), or None outside the matrix."""
        x0, y0, x1, y1 = self.box
        if not (x0 <= x < x1 and y0 <= y < y1):
            return None
        col = int((x - x0) / (x1 - x0) * self.k)
        row = int((y - y0) / (y1 - y0) * self.k)
        return min(row, self.k - 1), min(col, self.k - 1)


def confusion_picture(matrix: np.ndarray, class_names: Sequence[str], dpi: int = 100) -> ConfusionPicture:
    """Render cnnviz.render.confusion_figure and keep the matrix's pixel box, so a click can be mapped to a cell."""
    fig = confusion_figure(matrix, class_names)
    image = figure_to_image(fig, dpi)
    # After drawing, the axes hold their laid-out position (figure fractions, origin bottom-left; imshow fills the axes).
    pos = fig.axes[0].get_position()
    w, h = image.size
    box = (pos.x0 * w, (1 - pos.y1) * h, pos.x1 * w, (1 - pos.y0) * h)
    return ConfusionPicture(image, box, int(np.asarray(matrix).shape[0]))


def _label(draw: PIL.ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int, fill=(0, 0, 0)) -> None:
    draw.text(xy, text, fill=fill, font=font(size))


def sanity_grid(view: PIL.Image.Image, steps: Sequence, per_band: int = 6, tile: int = 128) -> PIL.Image.Image:
    """Grad-CAM (over the image) and Guided Backprop maps after each randomisation step, left to right, wrapped in bands.

    `steps` are cnnviz.explain.sanity.SanityStep; the first is the trained model. Each column is captioned with the step and
    the rank correlation with the trained map.
    """
    head, gap, cap, side = 40, 8, 22, 116  # header above each band, gap, caption under each tile, row titles
    margin = 30  # the page draws the component's label over the top-left corner
    bands = [steps[i:i + per_band] for i in range(0, len(steps), per_band)] or [[]]
    band_h = head + 2 * (tile + cap) + gap
    canvas = PIL.Image.new("RGB", (side + per_band * (tile + gap), margin + len(bands) * band_h), "white")
    draw = PIL.ImageDraw.Draw(canvas)
    for b, band in enumerate(bands):
        top = margin + b * band_h
        for r, title in enumerate(("Grad-CAM", "Guided\nBackprop")):
            _label(draw, (4, top + head + r * (tile + cap) + tile // 2 - 14), title, 16)
        for c, s in enumerate(band):
            x = side + c * (tile + gap)
            words = ("trained model", "(original)") if not s.layer else ("after randomising", s.layer)
            _label(draw, (x, top + 2), words[0], 13)
            _label(draw, (x, top + 18), words[1][:20], 13, fill=(160, 0, 0) if s.layer else (0, 100, 0))
            cam = overlay(view, s.gradcam, 0.5, min_side=tile).resize((tile, tile), PIL.Image.Resampling.NEAREST)
            gbp = PIL.Image.fromarray(colorize(s.guided_backprop, "gray")).resize((tile, tile), PIL.Image.Resampling.BILINEAR)
            for r, (img, rho) in enumerate(((cam, s.rho_gradcam), (gbp, s.rho_guided_backprop))):
                y = top + head + r * (tile + cap)
                canvas.paste(img, (x, y))
                _label(draw, (x + 4, y + tile + 3), f"rho = {rho:+.2f}", 14)
    return canvas


def sanity_frame(steps: Sequence) -> pd.DataFrame:
    """Long format for gr.LinePlot: rank correlation with the trained map per step, one series per method."""
    rows = []
    for i, s in enumerate(steps):
        rows.append({"step": i, "layer": s.layer or "trained", "rho": s.rho_gradcam, "method": "Grad-CAM"})
        rows.append({"step": i, "layer": s.layer or "trained", "rho": s.rho_guided_backprop, "method": "Guided Backprop"})
    return pd.DataFrame(rows, columns=["step", "layer", "rho", "method"])


def history_frames(history: Sequence[Mapping]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(loss, accuracy) long-format frames with series 'train' and 'test', one point per epoch."""
    out = []
    for metric in ("loss", "acc"):
        rows = [{"epoch": h.get("epoch", i + 1), "value": h[f"{split}_{metric}"], "series": name}
                for split, name in (("train", "train"), ("val", "test")) for i, h in enumerate(history)
                if h.get(f"{split}_{metric}") is not None]
        out.append(pd.DataFrame(rows, columns=["epoch", "value", "series"]))
    return out[0], out[1]


def curves_by_model(histories: Mapping[str, Sequence[Mapping]], metric: str) -> pd.DataFrame:
    """One series per checkpoint of `metric` (a key of METRICS) per epoch, for overlaying training curves."""
    rows = [{"epoch": h.get("epoch", i + 1), "value": h[metric], "checkpoint": name}
            for name, history in histories.items() for i, h in enumerate(history) if h.get(metric) is not None]
    return pd.DataFrame(rows, columns=["epoch", "value", "checkpoint"])


def draw_scale(side: int, target: int = 336) -> int:
    """Whole-number zoom that brings an input of `side` px to about `target` px on screen."""
    return max(1, round(target / side))


def outline_unit(image: PIL.Image.Image, box: FieldBox, scale: int) -> PIL.Image.Image:
    """The image zoomed by `scale`, dimmed outside the unit's field, with the field outlined in red.

    Box edges are inclusive input pixels (as in cnnviz.lecture.receptive.draw_fields); parts in the zero padding are clipped.
    """
    img = image.convert("RGB")
    w, h = img.size
    big = np.asarray(img.resize((w * scale, h * scale), PIL.Image.Resampling.NEAREST)).astype(np.float32)
    x0, y0, x1, y1 = (max(0, math.floor(box.box[0])), max(0, math.floor(box.box[1])),
                      min(w - 1, math.ceil(box.box[2])), min(h - 1, math.ceil(box.box[3])))
    dim = np.full(big.shape[:2], 0.35, dtype=np.float32)
    dim[y0 * scale:(y1 + 1) * scale, x0 * scale:(x1 + 1) * scale] = 1.0
    out = PIL.Image.fromarray((big * dim[..., None] + 0.5).astype(np.uint8))
    draw = PIL.ImageDraw.Draw(out)
    draw.rectangle([x0 * scale, y0 * scale, (x1 + 1) * scale - 1, (y1 + 1) * scale - 1], outline=FIELD_COLOUR, width=2)
    return out


def clipped(box: FieldBox, side: int) -> bool:
    """Whether part of the field lies outside the image (in the padding)."""
    x0, y0, x1, y1 = box.box
    return x0 < 0 or y0 < 0 or x1 > side - 1 or y1 > side - 1
