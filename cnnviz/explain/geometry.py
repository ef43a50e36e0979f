"""Context managers that capture activations and gradients of named layers, and always clean up."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.overrides

from .hooks import model_lock, resolve_layers, restored_state

# Where a layer's units sit on the input: unit (i, j) is centred on pixel (start_y + i*jump_y, start_x + j*jump_x).
Geometry = tuple[tuple[float, float], tuple[float, float]]  # ((start_y, jump_y), (start_x, jump_x))


def _bind(args: tuple, kwargs: dict, names: tuple[str, ...], defaults: dict) -> dict:
    bound = dict(defaults)
    bound.update(zip(names, args))
    bound.update({k: v for k, v in kwargs.items() if k in names})
    return bound


def _axes(v: object) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _next_geometry(name: str, args: tuple, kwargs: dict, geo: Geometry, src: torch.Tensor, out: torch.Tensor) -> Geometry | None:
    """Receptive-field recurrence (Araujo et al. 2019) per axis: start' = start + ((k-1)*d/2 - p)*j, j' = j*s."""
    if name == "conv2d" or (name.endswith("pool2d") and "adaptive" not in name):
        if name == "conv2d":
            b = _bind(args, kwargs, ("input", "weight", "bias", "stride", "padding", "dilation"),
                      {"stride": 1, "padding": 0, "dilation": 1})
            k = tuple(b["weight"].shape[-2:])
        else:
            b = _bind(args, kwargs, ("input", "kernel_size", "stride", "padding", "dilation"),
                      {"stride": None, "padding": 0, "dilation": 1})
            k = _axes(b["kernel_size"])
            b["stride"] = b["stride"] or b["kernel_size"]  # pools default their stride to the kernel
        if isinstance(b["padding"], str):  # 'same' keeps centres, 'valid' is no padding
            pad = tuple((k[i] - 1) * _axes(b["dilation"])[i] / 2 if b["padding"] == "same" else 0 for i in range(2))
        else:
            pad = _axes(b["padding"])
        s, d = _axes(b["stride"]), _axes(b["dilation"])
        return tuple((st + ((k[i] - 1) * d[i] / 2 - pad[i]) * j, j * s[i]) for i, (st, j) in enumerate(geo))
    if "adaptive" in name:  # an even split: stride in//out, kernel in - (out-1)*stride
        out_hw, in_hw = out.shape[-2:], src.shape[-2:]
        res = []
        for (st, j), i_n, o_n in zip(geo, in_hw, out_hw):
            stride = i_n // o_n
            res.append((st + (i_n - (o_n - 1) * stride - 1) / 2 * j, j * stride))
        return tuple(res)
    if name == "pad":
        p = _bind(args, kwargs, ("input", "pad"), {})["pad"]
        return ((geo[0][0] - p[2] * geo[0][1], geo[0][1]), (geo[1][0] - p[0] * geo[1][1], geo[1][1]))
    return geo if out.shape[-2:] == src.shape[-2:] else None  # elementwise ops, adds, batch norm, ...


class _GeometryMode(torch.overrides.TorchFunctionMode):
    """Carries (start, jump) from the input through every op of one forward, ResNet additions included."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.geo: dict[int, Geometry] = {id(x): ((0.0, 1.0), (0.0, 1.0))}
        self.keep: list[torch.Tensor] = [x]  # keeps ids unique for the whole forward

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if isinstance(out, torch.Tensor) and out.dim() == 4 and id(out) not in self.geo:
            src = next((a for a in args if isinstance(a, torch.Tensor) and id(a) in self.geo and a.dim() == 4), None)
            if src is not None:
                geo = _next_geometry(getattr(func, "__name__", "").lstrip("_"), args, kwargs, self.geo[id(src)], src, out)
                if geo is not None:
                    self.geo[id(out)] = geo
                    self.keep.append(out)
        return out


def layer_geometry(model: nn.Module, input_shape: Sequence[int], layers: Sequence[str]) -> dict[str, Geometry]:
    """For each named layer with 4-D output: ((start_y, jump_y), (start_x, jump_x)) such that output unit (i, j)
    is centred on input pixel (start_y + i*jump_y, start_x + j*jump_x). Layers it cannot follow are left out."""
    modules = resolve_layers(model, layers)
    outputs: dict[str, int] = {}

    def make(name: str):
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor):
                outputs[name] = id(output)
        return hook

    x = torch.zeros(tuple(input_shape))
    with model_lock(model), restored_state(model, eval_mode=True, freeze=False), torch.no_grad():
        handles = []
        try:
            handles = [m.register_forward_hook(make(n)) for n, m in modules.items()]
            with _GeometryMode(x) as mode:
                model(x)
        finally:
            for handle in handles:
                handle.remove()
    return {name: mode.geo[ident] for name, ident in outputs.items() if ident in mode.geo}


