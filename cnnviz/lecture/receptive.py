"""Receptive-field view: the input region that can influence one unit of a layer, for any depth and architecture."""
from __future__ import annotations

from dataclasses import dataclass

import PIL.Image
import PIL.ImageDraw
import torch.nn as nn

from .summary import LayerRow, summarize


@dataclass(frozen=True)
class FieldBox:
    layer: str
    rf: int
    jump: int
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in input pixels (inclusive edges), may exceed the image
    out_hw: tuple[int, int]


def spatial_rows(model: nn.Module, input_shape: tuple[int, int, int]) -> list[LayerRow]:
    """Summary rows that have feature maps (and therefore a receptive field)."""
    return [r for r in summarize(model, input_shape).rows if r.rf is not None]


def field_box(row: LayerRow, i: int | None = None, j: int | None = None) -> FieldBox:
    """Box of output unit (i, j) of `row` (default: the centre unit): centre = start + index * jump, side = rf."""
    h, w = row.out_shape[-2:]
    i = h // 2 if i is None else i
    j = w // 2 if j is None else j
    if not (0 <= i < h and 0 <= j < w):
        raise ValueError(f"position ({i}, {j}) is outside {row.name}'s {h}x{w} output")
    cy, cx = row.start + i * row.jump, row.start + j * row.jump
    half = (row.rf - 1) / 2
    return FieldBox(row.name, row.rf, row.jump, (cx - half, cy - half, cx + half, cy + half), (h, w))


def fields_by_depth(model: nn.Module, input_shape: tuple[int, int, int], kinds=(nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) -> list[FieldBox]:
    """Centre-unit field of every conv/pool layer, shallow to deep."""
    types = {k.__name__ for k in kinds}
    return [field_box(r) for r in spatial_rows(model, input_shape) if r.type in types]


def draw_fields(image: PIL.Image.Image, boxes: list[FieldBox], scale: int = 8) -> PIL.Image.Image:
    """Outline each box on the (upscaled) image, lighter for shallow layers; parts outside the image are clipped."""
    img = image.convert("RGB")
    big = img.resize((img.width * scale, img.height * scale), PIL.Image.NEAREST)
    draw = PIL.ImageDraw.Draw(big)
    n = max(1, len(boxes) - 1)
    for k, b in enumerate(boxes):
        shade = int(255 * k / n)
        colour = (255, 255 - shade, 0)  # yellow (shallow) to red (deep)
        x0, y0, x1, y1 = (max(0.0, b.box[0]), max(0.0, b.box[1]), min(img.width - 1.0, b.box[2]), min(img.height - 1.0, b.box[3]))
        draw.rectangle([x0 * scale, y0 * scale, (x1 + 1) * scale - 1, (y1 + 1) * scale - 1], outline=colour, width=2)
    return big
