"""Per-layer table of a model: output shape, parameters, FLOPs, receptive field and jump."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_GLOBAL = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear, nn.Flatten)


@dataclass(frozen=True)
class LayerRow:
    """One leaf module. rf: receptive field side in input pixels; jump: input pixels between neighbouring outputs."""

    name: str
    type: str
    out_shape: tuple[int, ...]
    params: int
    flops: int  # multiply and add counted separately (torch.utils.flop_counter convention)
    rf: int | None
    jump: int | None
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
                         f"{r.rf if r.rf is not None else '-':>6}{r.jump if r.jump is not None else '-':>6}")
        lines += ["-" * len(head), f"{'total':<60}{self.total_params:>12,}{self.total_flops:>14,}"]
        return "\n".join(lines)


def _pair(v) -> int:
    return v[0] if isinstance(v, tuple) else v


class _PropagateRF(TorchFunctionMode):
    """Carry (rf, jump) through functional ops (additions in ResNet blocks, flatten...): the widest input wins."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tagged = [a._cnnviz_rf for a in _tensors(args) if hasattr(a, "_cnnviz_rf")]
        if tagged and isinstance(out, torch.Tensor) and not hasattr(out, "_cnnviz_rf"):
            out._cnnviz_rf = max(tagged)
        return out


def _tensors(args):
    for a in args:
        if isinstance(a, torch.Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            yield from _tensors(a)


def _rf_after(module: nn.Module, rf: tuple[int, int, float], in_side: int) -> tuple[int, int, float]:
    """Receptive-field recurrence (Araujo et al. 2019): r' = r + (k-1)*d*j, j' = j*s, start' = start + ((k-1)*d/2 - p)*j."""
    r, j, start = rf
    if isinstance(module, (nn.Conv2d, *_POOLS)):
        k, p = _pair(module.kernel_size), _pair(module.padding)
        s = _pair(module.stride or module.kernel_size)
        d = _pair(module.dilation) if isinstance(module, nn.Conv2d) else 1
        return r + (k - 1) * d * j, j * s, start + ((k - 1) * d / 2 - p) * j
    if isinstance(module, _GLOBAL):  # every input position reaches every output
        return r + (in_side - 1) * j, j * in_side, start + (in_side - 1) / 2 * j
    return rf


def summarize(model: nn.Module, input_shape: tuple[int, int, int]) -> Summary:
    """Run one image of shape (C, H, W) through `model` (eval mode, no grad) and describe every leaf layer."""
    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    shapes, rfs, handles = {}, {}, []

    def hook(name, module):
        def fn(_m, inputs, output):
            x = inputs[0] if inputs else None
            rf_in = getattr(x, "_cnnviz_rf", (1, 1, 0.0))
            side = x.shape[-1] if isinstance(x, torch.Tensor) and x.dim() >= 2 else 1
            rf = _rf_after(module, rf_in, side)
            if isinstance(output, torch.Tensor):
                output._cnnviz_rf = rf
                shapes[name] = tuple(output.shape)
                rfs[name] = rf
        return fn

    was_training = model.training
    model.eval()
    x = torch.zeros(1, *input_shape)
    x._cnnviz_rf = (1, 1, 0.0)
    try:
        handles = [m.register_forward_hook(hook(n, m)) for n, m in leaves]
        with torch.no_grad(), _PropagateRF():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    flops = _flops_by_module(model, input_shape)
    rows = tuple(
        LayerRow(name=n, type=type(m).__name__, out_shape=shapes.get(n, ()), params=sum(p.numel() for p in m.parameters(False)),
                 flops=flops.get(n, 0), rf=rfs[n][0] if n in rfs and len(shapes.get(n, ())) == 4 else None,
                 jump=rfs[n][1] if n in rfs and len(shapes.get(n, ())) == 4 else None,
                 start=rfs[n][2] if n in rfs and len(shapes.get(n, ())) == 4 else None)
        for n, m in leaves if n in shapes)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Summary(rows, (1, *input_shape), total, trainable, sum(flops.get(n, 0) for n, _ in leaves))


def _flops_by_module(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, int]:
    """FLOPs per named_modules() name, from torch's own FlopCounterMode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
    prefix = type(model).__name__ + "."
    return {k.removeprefix(prefix): sum(v.values()) for k, v in counter.get_flop_counts().items() if k.startswith(prefix)}
