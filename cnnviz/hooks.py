"""Context managers that capture activations and gradients of named layers, and always clean up.

Why the care: AlexNet and VGG put `ReLU(inplace=True)` right after each conv, so a hook that keeps a
reference to the conv output sees it overwritten with post-ReLU values (captum#156). We clone the
activation inside the forward hook, and take the gradient with a tensor hook registered in that same
forward hook: PyTorch hands such a hook the gradient w.r.t. the value *before* any later in-place change,
i.e. w.r.t. the conv output. Hooks on a shared model fire for every caller, so all hooked work on one
model is serialised by `model_lock(model)`.
"""
from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.overrides

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


class LayerError(ValueError):
    """A layer name that the model does not have, or a layer whose output cannot be captured."""


def model_lock(model: nn.Module) -> threading.RLock:
    """The re-entrant lock that serialises hooked (and gradient) work on `model`; one per model object."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


def resolve_layers(model: nn.Module, layers: Sequence[str]) -> dict[str, nn.Module]:
    """Map `named_modules()` names to modules; a LayerError lists a few valid names when one is unknown."""
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules or name == ""]
    if missing:
        valid = [n for n in modules if n][:12]
        raise LayerError(f"unknown layer {missing[0]!r}; layers look like: {', '.join(valid)}")
    return {name: modules[name] for name in layers}


@contextmanager
def restored_state(model: nn.Module, *, eval_mode: bool = True, freeze: bool = True) -> Iterator[nn.Module]:
    """Put `model` in eval mode and/or freeze its parameters for the block; restore both flags afterwards."""
    training = {m: m.training for m in model.modules()}
    requires = {p: p.requires_grad for p in model.parameters()}
    try:
        if eval_mode:
            model.eval()
        if freeze:
            # Frozen weights: backward computes only what the captured layers need, and never writes
            # .grad on a model that other threads (or the trainer) share.
            for p in requires:
                p.requires_grad_(False)
        yield model
    finally:
        for m, flag in training.items():
            m.training = flag
        for p, flag in requires.items():
            p.requires_grad_(flag)


@dataclass
class Captured:
    """What a `capture` block recorded: per layer, one tensor per call of that layer (in call order)."""

    layers: tuple[str, ...]
    activation_calls: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    gradient_calls: dict[str, dict[int, torch.Tensor]] = field(default_factory=dict)

    def activation(self, layer: str) -> torch.Tensor:
        """Cloned output of `layer` at its last call, e.g. [B,C,h,w] for a conv."""
        calls = self.activation_calls.get(layer)
        if not calls:
            raise LayerError(f"layer {layer!r} did not run in the forward pass")
        return calls[-1]

    def gradient(self, layer: str) -> torch.Tensor:
        """Gradient w.r.t. the output of `layer` at its last call (same shape as `activation`)."""
        last = len(self.activation_calls.get(layer, ())) - 1
        grads = self.gradient_calls.get(layer, {})
        if last not in grads:
            raise LayerError(f"no gradient reached layer {layer!r}: call backward() inside the block, "
                             "and check that the target depends on this layer")
        return grads[last]

    @property
    def activations(self) -> dict[str, torch.Tensor]:
        """Last-call activation of every captured layer."""
        return {name: calls[-1] for name, calls in self.activation_calls.items() if calls}


def _forward_hook(captured: Captured, name: str, gradients: bool, tensor_handles: list):
    def hook(module: nn.Module, inputs: tuple, output: object) -> torch.Tensor | None:
        if not isinstance(output, torch.Tensor):
            raise LayerError(f"layer {name!r} returns {type(output).__name__}, not a tensor; pick another layer")
        calls = captured.activation_calls.setdefault(name, [])
        call = len(calls)
        calls.append(output.detach().clone())  # clone: a following inplace ReLU would overwrite it
        if not (gradients and torch.is_grad_enabled()):
            return None

        def save_grad(grad: torch.Tensor) -> None:
            captured.gradient_calls.setdefault(name, {})[call] = grad.detach().clone()

        if output.requires_grad:
            # Fires with d(target)/d(output) for the value *before* any later in-place op.
            tensor_handles.append(output.register_hook(save_grad))
            return None
        # Frozen weights and an input without grad: start the graph here, so backward stops at this layer.
        leaf = output.detach().requires_grad_(True)
        tensor_handles.append(leaf.register_hook(save_grad))
        return leaf.clone()  # an inplace op downstream must not modify a leaf that requires grad

    return hook


@contextmanager
def capture(model: nn.Module, layers: Sequence[str], *, gradients: bool = False, eval_mode: bool = True,
            freeze: bool = True, lock: bool = True) -> Iterator[Captured]:
    """Record cloned outputs (and, with `gradients`, output gradients) of named layers during the block.

    Every hook is removed, and training flags and `requires_grad` are restored, even when the block raises;
    exceptions propagate. With `lock` the block holds `model_lock(model)`.
    """
    layers = tuple(dict.fromkeys(layers))
    modules = resolve_layers(model, layers)
    guard = model_lock(model) if lock else nullcontext()
    with guard, restored_state(model, eval_mode=eval_mode, freeze=freeze):
        captured = Captured(layers)
        handles: list = []
        tensor_handles: list = []
        try:
            for name, module in modules.items():
                handles.append(module.register_forward_hook(_forward_hook(captured, name, gradients, tensor_handles)))
            yield captured
        finally:
            for handle in handles + tensor_handles:
                handle.remove()


def output_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Output shape of every named module (last call) for input `x`: one no-grad forward in eval mode."""
    shapes: dict[str, tuple[int, ...]] = {}

    def make(name: str):
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor):
                shapes[name] = tuple(output.shape)
        return hook

    with model_lock(model), restored_state(model, eval_mode=True, freeze=False), torch.no_grad():
        handles = []
        try:
            for name, module in model.named_modules():
                if name:
                    handles.append(module.register_forward_hook(make(name)))
            model(x)
        finally:
            for handle in handles:
                handle.remove()
    return shapes


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


def has_hooks(model: nn.Module) -> bool:
    """True when any module of `model` still carries a forward, pre-forward or backward hook."""
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return any(getattr(m, kind, None) for m in model.modules() for kind in kinds)


__all__ = ["Captured", "Geometry", "LayerError", "capture", "has_hooks", "layer_geometry", "model_lock", "output_shapes",
           "resolve_layers", "restored_state"]
