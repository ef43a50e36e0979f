"""The one receptive-field tracer: where each unit of a layer sits on the input and how much of the input it sees."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.overrides

from .hooks import forward_hooks, model_lock, resolve_layers, restored_state

# Where a layer's units sit on the input: unit (i, j) is centred on pixel (start_y + i*jump_y, start_x + j*jump_x).
Geometry = tuple[tuple[float, float], tuple[float, float]]  # ((start_y, jump_y), (start_x, jump_x))


class Axis(NamedTuple):
    """One axis of a layer's field: unit i is centred on input pixel start + i*jump and sees rf pixels."""

    start: float
    jump: float
    rf: float


@dataclass(frozen=True)
class Field:
    """Per-axis field of a layer's units. `uniform` is False after an uneven adaptive pool: rf is then the widest
    unit's field and start/jump those of an ideal split into equal parts (no straight line fits every unit)."""

    y: Axis
    x: Axis
    uniform: bool = True

    def geometry(self) -> Geometry:
        """((start_y, jump_y), (start_x, jump_x)), what Grad-CAM's upsampling takes."""
        return (self.y.start, self.y.jump), (self.x.start, self.x.jump)


_PIXEL = Field(Axis(0.0, 1.0, 1), Axis(0.0, 1.0, 1))  # the input: each pixel sees itself


def _bind(args: tuple, kwargs: dict, names: tuple[str, ...], defaults: dict) -> dict:
    """Positional and keyword arguments of a torch function by parameter name."""
    bound = dict(defaults)
    bound.update(zip(names, args))
    bound.update({k: v for k, v in kwargs.items() if k in names})
    return bound


def _axes(v: object) -> tuple[int, int]:
    """An int or (y, x) pair as (y, x)."""
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _step(a: Axis, k: int, s: float, p: float, d: int) -> Axis:
    """Receptive-field recurrence (Araujo et al. 2019): r' = r + (k-1)*d*j, j' = j*s, start' = start + ((k-1)*d/2 - p)*j."""
    return Axis(a.start + ((k - 1) * d / 2 - p) * a.jump, a.jump * s, a.rf + (k - 1) * d * a.jump)


# Parameter names of the sliding-window functions, in their positional order (avg_pool2d has no dilation:
# its fifth positional argument is ceil_mode).
_WINDOWS = {
    "conv2d": (("input", "weight", "bias", "stride", "padding", "dilation"), {"stride": 1, "padding": 0, "dilation": 1}),
    "max_pool2d": (("input", "kernel_size", "stride", "padding", "dilation"), {"stride": None, "padding": 0, "dilation": 1}),
    "avg_pool2d": (("input", "kernel_size", "stride", "padding"), {"stride": None, "padding": 0}),
}


def _window(name: str, args: tuple, kwargs: dict, f: Field) -> Field:
    """A convolution or pooling window; ceil_mode only adds units at the far end, so it changes nothing here."""
    names, defaults = _WINDOWS[name]
    b = _bind(args, kwargs, names, defaults)
    k = tuple(b["weight"].shape[-2:]) if name == "conv2d" else _axes(b["kernel_size"])
    s = _axes(b["stride"] or k)  # pools default their stride to the kernel (None or an empty list)
    d = _axes(b.get("dilation", 1))
    if isinstance(b["padding"], str):  # 'same' keeps centres, 'valid' is no padding
        p = tuple((k[i] - 1) * d[i] / 2 if b["padding"] == "same" else 0 for i in range(2))
    else:
        p = _axes(b["padding"])
    y, x = (_step(a, k[i], s[i], p[i], d[i]) for i, a in enumerate((f.y, f.x)))
    return Field(y, x, f.uniform)


def _adaptive_axis(a: Axis, n_in: int, n_out: int) -> tuple[Axis, bool]:
    """Adaptive pooling along one axis; PyTorch's bin i covers [floor(i*in/out), ceil((i+1)*in/out))."""
    starts = [i * n_in // n_out for i in range(n_out)]
    widths = {-(-(i + 1) * n_in // n_out) - s for i, s in enumerate(starts)}
    steps = {b - c for c, b in zip(starts, starts[1:])} or {n_in}  # one bin: global pooling, stride = the input
    k = max(widths)
    if len(widths) == 1 and len(steps) == 1 and min(steps) > 0:  # bins k wide, s apart: an ordinary pool
        return _step(a, k, steps.pop(), 0, 1), True
    # Uneven bins (e.g. AlexNet's 2x2 -> 6x6 at 96 px): each unit sees at most its widest bin; place units as
    # an even split into n_out equal parts, stride in/out and kernel in - (out-1)*stride.
    s = n_in / n_out
    return Axis(a.start + (s - 1) / 2 * a.jump, a.jump * s, a.rf + (k - 1) * a.jump), False


def _adaptive(f: Field, src: torch.Tensor, out: torch.Tensor) -> Field:
    """Adaptive pooling, from the actual input and output sizes."""
    (y, uy), (x, ux) = (_adaptive_axis(a, int(i), int(o)) for a, i, o in zip((f.y, f.x), src.shape[-2:], out.shape[-2:]))
    return Field(y, x, f.uniform and uy and ux)


def _pad(args: tuple, kwargs: dict, f: Field) -> Field:
    """F.pad: (left, right, top, bottom) shifts unit 0 by `left`/`top` input steps."""
    p = list(_bind(args, kwargs, ("input", "pad"), {})["pad"]) + [0, 0, 0, 0]
    return Field(f.y._replace(start=f.y.start - p[2] * f.y.jump), f.x._replace(start=f.x.start - p[0] * f.x.jump), f.uniform)


def _merge(fields: list[Field]) -> Field | None:
    """Same-size maps combined elementwise (ResNet additions) or concatenated: each unit sees the union of its
    inputs' fields, i.e. the wider path when they are centred alike. None when the units are spaced differently."""
    axes = []
    for which in ("y", "x"):
        ax = [getattr(f, which) for f in fields]
        if len({a.jump for a in ax}) > 1:
            return None
        lo = min(a.start - (a.rf - 1) / 2 for a in ax)
        hi = max(a.start + (a.rf - 1) / 2 for a in ax)
        axes.append(Axis((lo + hi) / 2, ax[0].jump, hi - lo + 1))
    return Field(axes[0], axes[1], all(f.uniform for f in fields))


def _next_field(name: str, args: tuple, kwargs: dict, srcs: list[tuple[torch.Tensor, Field]], out: torch.Tensor) -> Field | None:
    """The field of `out`, made by torch function `name` from traced 4-D inputs `srcs` (None: cannot follow)."""
    src, f = srcs[0]
    if name in _WINDOWS:
        return _window(name, args, kwargs, f)
    if name.startswith("adaptive_") and name.endswith("pool2d"):
        return _adaptive(f, src, out)
    if name == "pad":
        return _pad(args, kwargs, f)
    # Elementwise ops, batch norm, additions, channel concatenation: inputs broadcast from another size are not
    # counted (the model zoo has none).
    same = [g for t, g in srcs if t.shape[-2:] == out.shape[-2:]]
    return _merge(same) if same else None


def _tensors(values: Sequence) -> Iterator[torch.Tensor]:
    """Tensors among function arguments, inside lists and tuples too (torch.cat)."""
    for v in values:
        if isinstance(v, torch.Tensor):
            yield v
        elif isinstance(v, (list, tuple)):
            yield from _tensors(v)


class _FieldMode(torch.overrides.TorchFunctionMode):
    """Carries a Field from the input through every torch function of one forward, ResNet additions included."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.fields: dict[int, Field] = {id(x): _PIXEL}
        self.keep: list[torch.Tensor] = [x]  # keeps ids unique for the whole forward

    def __torch_function__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None) -> object:
        """Run `func`, then give its 4-D output the field that follows from its traced inputs."""
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not (isinstance(out, torch.Tensor) and out.dim() == 4):
            return out
        srcs = [(t, self.fields[id(t)]) for t in _tensors((*args, *kwargs.values())) if id(t) in self.fields and t.dim() == 4]
        fresh = id(out) not in self.fields
        # An in-place op returns one of its inputs: only one with other traced inputs (`out += identity` in
        # torchvision's ResNet blocks) changes that tensor's field; an in-place ReLU leaves it as it is.
        if srcs and (fresh or len(srcs) > 1):
            field = _next_field(getattr(func, "__name__", "").lstrip("_"), args, kwargs, srcs, out)
            if field is not None:
                self.fields[id(out)] = field
                if fresh:
                    self.keep.append(out)
        return out


def layer_fields(model: nn.Module, input_shape: Sequence[int], layers: Sequence[str]) -> dict[str, Field]:
    """Field of each named layer's output (its last call) for an input of shape [B,C,H,W], from one forward on
    zeros in eval mode. Layers without a 4-D output, or that the tracer cannot follow, are left out."""
    modules = resolve_layers(model, layers)
    x = torch.zeros(tuple(input_shape))
    mode = _FieldMode(x)
    found: dict[str, Field | None] = {}

    def make(name: str):
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            # Looked up now, while `output` is alive: a freed tensor's id may be reused later in the forward.
            found[name] = mode.fields.get(id(output)) if isinstance(output, torch.Tensor) else None
        return hook

    hooks = [(m, make(n)) for n, m in modules.items()]
    with model_lock(model), restored_state(model, eval_mode=True, freeze=False), torch.no_grad(), forward_hooks(hooks):
        with mode:
            model(x)
    return {name: f for name, f in found.items() if f is not None}


def layer_geometry(model: nn.Module, input_shape: Sequence[int], layers: Sequence[str]) -> dict[str, Geometry]:
    """For each named layer with 4-D output: ((start_y, jump_y), (start_x, jump_x)) such that output unit (i, j)
    is centred on input pixel (start_y + i*jump_y, start_x + j*jump_x). Layers it cannot follow are left out."""
    return {name: f.geometry() for name, f in layer_fields(model, input_shape, layers).items()}
