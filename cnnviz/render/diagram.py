"""An HTML diagram of a network's layer stack: one box per conv/pool/linear layer, sized by its output shape."""
from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

import torch.nn as nn

if TYPE_CHECKING:  # types only: render sits below lecture
    from ..lecture.summary import LayerRow, Summary


# Leaf types that get their own box; activations, batch norm and dropout become tags on the box before them.
BOXED = {"Conv2d": "conv", "MaxPool2d": "pool", "AvgPool2d": "pool", "AdaptiveAvgPool2d": "pool",
         "AdaptiveMaxPool2d": "pool", "Linear": "fc"}
TAGS = {"ReLU": "ReLU", "Sigmoid": "sigmoid", "Tanh": "tanh", "BatchNorm2d": "BN", "BatchNorm1d": "BN", "Dropout": "drop",
        "LocalResponseNorm": "LRN"}
MAX_H, MIN_H = 170, 26  # box height range in px (from the spatial side)


def _pair(v) -> int:
    return v[0] if isinstance(v, tuple) else int(v)


def _kind_text(row: LayerRow, module: nn.Module | None) -> str:
    """'conv 5×5', 'conv 3×3 /2', 'max-pool 2', 'global avg-pool', 'linear'."""
    if isinstance(module, nn.Conv2d):
        k, s = _pair(module.kernel_size), _pair(module.stride)
        return f"conv {k}×{k}" + (f" /{s}" if s > 1 else "")
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        return f"{'max' if isinstance(module, nn.MaxPool2d) else 'avg'}-pool {_pair(module.kernel_size)}"
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return "adaptive pool"
    return "linear" if row.type == "Linear" else row.type


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape[1:])


def _box_size(shape: tuple[int, ...], side_max: int) -> tuple[int, int]:
    """(width, height) in px: height grows with the spatial side, width with log2(channels)."""
    if len(shape) == 4:
        c, h = shape[1], shape[2]
        height = MIN_H + (MAX_H - MIN_H) * (h / max(1, side_max)) ** 0.7
        return round(12 + 9 * math.log2(c + 1)), round(height)
    features = shape[-1] if shape else 1
    return 12, round(MIN_H + (MAX_H - MIN_H) * min(1.0, math.log10(features + 1) / 4.5))


def _box(kind: str, caption: str, shape: tuple[int, ...], side_max: int, tags: list[str], tip: str,
         extra: str = "") -> str:
    w, h = _box_size(shape, side_max)
    tag_html = "".join(f"<span class='arch-tag'>{html.escape(t)}</span>" for t in tags)
    return (f"<div class='arch-layer' title='{html.escape(tip, quote=True)}'>"
            f"<div class='arch-box arch-{kind}{extra}' style='width:{w}px;height:{h}px'></div>"
            f"<div class='arch-cap'><b>{html.escape(caption)}</b><br>{_shape_text(shape)}<br>{tag_html}</div></div>")


def layer_diagram(model: nn.Module, summary: Summary) -> str:
    """HTML flow of boxes (input, then every conv/pool/linear layer); hover a box for its numbers."""
    modules = dict(model.named_modules())
    side_max = max([summary.input_shape[-1]] + [r.out_shape[2] for r in summary.rows if len(r.out_shape) == 4])
    parts = [_box("input", "input", summary.input_shape, side_max, [], "the image the network is fed")]
    boxes: list[tuple[LayerRow, list[str]]] = []
    for row in summary.rows:
        if row.type in BOXED:
            boxes.append((row, []))
        elif row.type in TAGS and boxes and TAGS[row.type] not in boxes[-1][1]:
            boxes[-1][1].append(TAGS[row.type])
    for row, tags in boxes:
        module = modules.get(row.name)
        tip = (f"{row.name} ({row.type}): output {_shape_text(row.out_shape)}, {row.params:,} parameters, "
               f"{row.flops:,} FLOPs" + (f", receptive field {row.rf} px" if row.rf else ""))
        shortcut = " arch-shortcut" if any(k in row.name for k in ("shortcut", "downsample")) else ""
        parts.append(_box(BOXED[row.type], _kind_text(row, module), row.out_shape, side_max, tags, tip, shortcut))
    legend = ("<div class='arch-legend'><span class='arch-key arch-conv'></span>convolution "
              "<span class='arch-key arch-pool'></span>pooling <span class='arch-key arch-fc'></span>fully connected "
              "<span class='arch-key arch-conv arch-shortcut'></span>shortcut (ResNet) &nbsp;·&nbsp; "
              "height: spatial size, width: number of channels (log scale)</div>")
    return f"<div class='arch-diagram'>{''.join(parts)}</div>{legend}"
