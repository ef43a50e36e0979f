"""Per-layer table of a model: output shape, parameters, FLOPs, receptive field and jump."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from ..explain.geometry import Field, layer_fields
from ..explain.hooks import forward_hooks, model_lock, restored_state


@dataclass(frozen=True)
class LayerRow:
    """One leaf module. rf: receptive field side in input pixels; jump: input pixels between neighbouring outputs
    (along the rows; square inputs and kernels give the same along the columns). None without a 4-D output.
    jump is fractional only after an uneven adaptive pool (see `explain.geometry.Field`)."""

    name: str
    type: str
    out_shape: tuple[int, ...]
    params: int
    flops: int  # multiply and add counted separately (torch.utils.flop_counter convention)
    rf: int | None
    jump: int | float | None
    start: float | None = None  # input coordinate of the centre of output unit (0, 0); may be negative (padding)


@dataclass(frozen=True)
class Summary:
    rows: tuple[LayerRow, ...]
    input_shape: tuple[int, ...]
    total_params: int
    trainable_params: int
    total_flops: int

    def table(self) -> str:
        """Plain-text table for the terminal."""
        head = f"{'layer':<24}{'type':<18}{'output':<18}{'params':>12}{'FLOPs':>14}{'RF':>6}{'jump':>6}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            shape = "x".join(map(str, r.out_shape[1:]))
            lines.append(f"{r.name:<24}{r.type:<18}{shape:<18}{r.params:>12,}{r.flops:>14,}"
                         f"{_cell(r.rf):>6}{_cell(r.jump):>6}")
        lines += ["-" * len(head), f"{'total':<60}{self.total_params:>12,}{self.total_flops:>14,}"]
        return "\n".join(lines)


def _cell(v: float | None) -> str:
    """A table cell: '-' for None, fractional jumps to one decimal."""
    return "-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)


def _num(v: float) -> int | float:
    """Whole numbers as int (every field of a model without uneven adaptive pools), others as they are."""
    return int(v) if float(v).is_integer() else v


def _row(name: str, module: nn.Module, shape: tuple[int, ...], flops: int, field: Field | None) -> LayerRow:
    """One table row; the field is read along y (rows)."""
    params = sum(p.numel() for p in module.parameters(False))
    if field is None or len(shape) != 4:
        return LayerRow(name, type(module).__name__, shape, params, flops, None, None, None)
    y = field.y
    return LayerRow(name, type(module).__name__, shape, params, flops, _num(y.rf), _num(y.jump), float(y.start))


def summarize(model: nn.Module, input_shape: tuple[int, int, int]) -> Summary:
    """Run one image of shape (C, H, W) through `model` (eval mode, no grad) and describe every leaf layer."""
    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    fields = layer_fields(model, (1, *input_shape), [n for n, _ in leaves])
    flops, shapes = _flops_and_shapes(model, input_shape, leaves)
    rows = tuple(_row(n, m, shapes[n], flops.get(n, 0), fields.get(n)) for n, m in leaves if n in shapes)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Summary(rows, (1, *input_shape), total, trainable, sum(flops.get(n, 0) for n, _ in leaves))


def _flops_and_shapes(model: nn.Module, input_shape: tuple[int, int, int],
                      leaves: list[tuple[str, nn.Module]]) -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
    """FLOPs per named_modules() name, from torch's own FlopCounterMode, and each leaf's output shape (last call)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name: str):
        def fn(_m: nn.Module, _inputs: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor):
                shapes[name] = tuple(output.shape)
        return fn

    hooks = [(m, hook(n)) for n, m in leaves]
    # Under the model's lock: a concurrent Grad-CAM's hooks would otherwise record this no-grad pass (and fail).
    with model_lock(model), restored_state(model, eval_mode=True, freeze=False), torch.no_grad(), forward_hooks(hooks):
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape))
    prefix = type(model).__name__ + "."
    flops = {k.removeprefix(prefix): sum(v.values()) for k, v in counter.get_flop_counts().items() if k.startswith(prefix)}
    return flops, shapes
