"""Receptive fields of one architecture fed one dataset's images, as tables: its conv/pool layers with their fields,
the field of any unit on an example image, and two architectures side by side at the same relative depth.

Pure geometry (no weights, no training), so every result is cached per (architecture, dataset).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import PIL.Image

from ..data import DatasetUnavailable, list_datasets
from ..examples import test_example
from ..images import resize_square
from ..models import get_model, input_shape, list_models
from ..render.lecture_pictures import clipped, draw_scale, outline_unit
from .errors import LectureError
from .receptive import FieldBox, draw_fields, field_box, fields_by_depth, spatial_rows
from .summary import LayerRow

KINDS = ("Conv2d", "MaxPool2d", "AvgPool2d")  # the layers that have a field of their own
DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)  # rows of the side-by-side table
CURVE_COLUMNS = ["relative depth", "RF / input side", "layer", "architecture"]


@dataclass(frozen=True)
class Geometry:
    """An architecture fed a dataset's images: input shape (C, S, S) and its conv/pool layers with their fields."""

    arch: str
    shape: tuple[int, int, int]
    rows: tuple[LayerRow, ...]
    depth_boxes: tuple[FieldBox, ...]  # centre-unit field of each conv/pool layer, shallow to deep

    def row(self, layer: str) -> LayerRow:
        """The conv/pool layer called `layer`."""
        for r in self.rows:
            if r.name == layer:
                return r
        raise LectureError(f"{self.arch} has no conv or pooling layer called {layer!r}.")

    def default_layer(self) -> str:
        """A conv layer near the middle: its field is big enough to see and small enough to fit the image."""
        convs = [r.name for r in self.rows if r.type == "Conv2d"] or [r.name for r in self.rows]
        return convs[min(len(convs) - 1, len(convs) // 2)]

    def layer_choices(self) -> list[tuple[str, str]]:
        """(label, layer name) per conv/pool layer: type, output grid and field size in the label."""
        return [(f"{r.name} · {r.type} · {r.out_shape[-2]}×{r.out_shape[-1]} · RF {r.rf}", r.name) for r in self.rows]

    def pick_layer(self, layer: str | None) -> str:
        """`layer` when this architecture has it, else the default layer."""
        return layer if layer in [r.name for r in self.rows] else self.default_layer()


def model_shape(arch: str, dataset: str, datasets: Sequence[str] | None = None) -> tuple[int, int, int]:
    """(C, S, S) the model is fed (cnnviz.models.input_shape), after checking both names; `datasets` are the ones
    the caller offers (default: every registered dataset)."""
    if arch not in list_models():
        raise LectureError(f"unknown architecture {arch!r}; choose one of: {', '.join(list_models())}")
    offered = list(datasets) if datasets is not None else list_datasets()
    if dataset not in offered:
        raise LectureError(f"unknown dataset {dataset!r}; choose one of: {', '.join(offered)}")
    s = input_shape(arch, dataset)
    return s.channels, s.size, s.size


@functools.lru_cache(maxsize=16)
def geometry(arch: str, dataset: str, datasets: tuple[str, ...] | None = None) -> Geometry:
    """Receptive fields of every conv/pool layer of `arch` on `dataset`'s input shape (cached per pair)."""
    shape = model_shape(arch, dataset, datasets)
    model = get_model(arch, shape[0], input_shape(arch, dataset).num_classes, shape[1]).eval()
    rows = tuple(r for r in spatial_rows(model, shape) if r.type in KINDS)
    return Geometry(arch, shape, rows, tuple(fields_by_depth(model, shape)))


@functools.lru_cache(maxsize=8)
def example_picture(dataset: str, channels: int, side: int) -> PIL.Image.Image:
    """Test image 0 of `dataset` (a generated shapes image when it is not on disk), at the model's input size."""
    try:
        img = test_example(dataset, 0).image
    except DatasetUnavailable:
        img = test_example("shapes", 0).image
    img = resize_square(img.convert("RGB"), side)
    return img.convert("L" if channels == 1 else "RGB")


@dataclass(frozen=True)
class UnitField:
    """One unit's field drawn on the example image: what the receptive-field view shows for (layer, row, col)."""

    geometry: Geometry
    picture: PIL.Image.Image  # the example input at the model's size
    scale: int  # whole-number zoom of the drawings
    image: PIL.Image.Image  # the picture zoomed, dimmed outside the field, the field outlined
    caption: str

    def growing(self) -> PIL.Image.Image:
        """The centre unit's field of every conv/pool layer on the same picture (yellow = shallow, red = deep)."""
        return draw_fields(self.picture, list(self.geometry.depth_boxes), self.scale)


def unit_field(g: Geometry, dataset: str, layer: str | None, row: float | None, col: float | None) -> UnitField:
    """The field of unit (row, col) of `layer` (default: the default layer's centre unit) on `dataset`'s example."""
    r = g.row(layer or g.default_layer())
    h, w = r.out_shape[-2:]
    i, j = (h // 2 if row is None else int(row)), (w // 2 if col is None else int(col))
    if not (0 <= i < h and 0 <= j < w):
        raise LectureError(f"position ({i}, {j}) is outside {r.name}'s {h}×{w} output grid (rows and columns "
                           f"0..{h - 1}).")
    box = field_box(r, i, j)
    picture = example_picture(dataset, g.shape[0], g.shape[1])
    scale = draw_scale(g.shape[1])
    return UnitField(g, picture, scale, outline_unit(picture, box, scale), unit_caption(g, r, box, i, j))


def unit_caption(g: Geometry, row: LayerRow, box: FieldBox, i: int, j: int) -> str:
    """Markdown: which patch unit (i, j) sees, how far apart its neighbours are, and whether it reaches the padding."""
    side = g.shape[1]
    text = (f"**{g.arch}**, input {g.shape[0]}×{side}×{side}. Unit ({i}, {j}) of `{row.name}` ({row.type}, output "
            f"{row.out_shape[-2]}×{row.out_shape[-1]}) sees a **{box.rf}×{box.rf} px** patch: rows "
            f"{box.box[1]:g}..{box.box[3]:g}, columns {box.box[0]:g}..{box.box[2]:g}. Neighbouring units are "
            f"{box.jump} px apart (the *jump*), so their patches overlap by {max(0, box.rf - box.jump)} px.")
    if clipped(box, side):
        text += " Part of the patch lies outside the image, in the zero padding: only the inside part is drawn."
    return text


def rf_table(a: Geometry, b: Geometry) -> pd.DataFrame:
    """RF of two architectures at the same relative depth of their conv/pool stacks (0 = first, 1 = last)."""
    rows = []
    for d in DEPTHS:
        row = {"relative depth": d}
        for g in (a, b):
            box = g.depth_boxes[min(len(g.depth_boxes) - 1, round(d * (len(g.depth_boxes) - 1)))]
            side = g.shape[1]
            row[f"{g.arch} layer"] = box.layer
            row[f"{g.arch} RF (px of {side})"] = box.rf
            row[f"{g.arch} RF / input"] = f"{box.rf / side:.0%}"
        rows.append(row)
    return pd.DataFrame(rows)


def rf_curves(a: Geometry, b: Geometry) -> pd.DataFrame:
    """RF as a fraction of the input side against relative depth, one series per architecture (long format)."""
    out = []
    for g in (a, b):
        n = max(1, len(g.depth_boxes) - 1)
        out += [{"relative depth": k / n, "RF / input side": box.rf / g.shape[1], "layer": box.layer,
                 "architecture": f"{g.arch} ({g.shape[1]} px)"} for k, box in enumerate(g.depth_boxes)]
    return pd.DataFrame(out, columns=CURVE_COLUMNS)


__all__ = ["DEPTHS", "KINDS", "Geometry", "UnitField", "example_picture", "geometry", "model_shape", "rf_curves",
           "rf_table", "unit_caption", "unit_field"]
