"""Context managers that capture activations and gradients of named layers, and always clean up."""
from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
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


@contextmanager
def forward_hooks(hooks: Iterable[tuple[nn.Module, Callable]], extra: list | None = None) -> Iterator[None]:
    """Register forward hooks (module, fn) for the block and remove them afterwards, even when it raises. Handles that
    the hooks themselves create (e.g. tensor hooks) can be put in `extra` and are removed too."""
    handles = []
    try:
        for module, fn in hooks:
            handles.append(module.register_forward_hook(fn))
        yield
    finally:
        for handle in handles + (extra if extra is not None else []):
            handle.remove()


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
        tensor_handles: list = []
        hooks = [(module, _forward_hook(captured, name, gradients, tensor_handles)) for name, module in modules.items()]
        with forward_hooks(hooks, extra=tensor_handles):
            yield captured


def output_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Output shape of every named module (last call) for input `x`: one no-grad forward in eval mode."""
    shapes: dict[str, tuple[int, ...]] = {}

    def make(name: str):
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor):
                shapes[name] = tuple(output.shape)
        return hook

    hooks = [(module, make(name)) for name, module in model.named_modules() if name]
    with model_lock(model), restored_state(model, eval_mode=True, freeze=False), torch.no_grad(), forward_hooks(hooks):
        model(x)
    return shapes


def has_hooks(model: nn.Module) -> bool:
    """True when any module of `model` still carries a forward, pre-forward or backward hook."""
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return any(getattr(m, kind, None) for m in model.modules() for kind in kinds)


