"""One image's forward pass, stage by stage: the input, every convolution, normalisation, activation and pooling (a
residual block counts as one stage, with its shortcut), the fully connected layers, the logits and the softmax.

Any registered family works: the stages are the model's own modules, found by walking `named_modules()`, ordered by
the forward pass itself, and their outputs are captured with `cnnviz.explain.hooks.capture` (one forward, no grad).
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import PIL.Image
import torch
import torch.nn as nn
import torchvision.models.resnet as tv_resnet

from ..explain.hooks import capture, forward_hooks
from ..explain.pipeline import prepare
from ..images import model_view
from ..models.resnet import BasicBlock
from ..render.forward_pass_picture import ForwardPassPicture, forward_pass_gif, forward_pass_picture
from ..store.atomic import atomic_write
from .errors import LectureError

if TYPE_CHECKING:
    from ..images import InputSpec
    from ..store.checkpoints import LoadedModel

RESIDUAL_BLOCKS = (BasicBlock, tv_resnet.BasicBlock, tv_resnet.Bottleneck)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LocalResponseNorm, nn.GroupNorm, nn.LayerNorm)
POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
# Stages the picture leaves out: they hand on the same numbers (Flatten reshapes, Dropout is the identity in eval mode).
PASS_THROUGH = ("flatten", "dropout")
MAP_KINDS = ("input", "conv", "norm", "activation", "pool", "block", "other")


@dataclass(frozen=True)
class Stage:
    """One step of the forward pass. `name` is the named_modules() name ('input' and 'softmax' are not modules)."""

    name: str
    kind: str  # input, conv, norm, activation, pool, block, linear, logits, flatten, dropout, softmax, other
    type: str  # the module's class name
    detail: str  # short, for a column title: '5×5 conv', '2×2 max-pool /2', 'block 3×3·3×3 + 1×1 /2'
    out_shape: tuple[int, ...]  # without the batch dimension: (C, H, W) or (N,)
    shortcut: str | None = None  # residual blocks: 'identity' or what the shortcut computes

    @property
    def spatial(self) -> bool:
        """True when the stage outputs feature maps [C, H, W]."""
        return len(self.out_shape) == 3

    @property
    def shown(self) -> bool:
        """Whether the overview draws it (pass-through stages repeat the numbers before them)."""
        return self.kind not in PASS_THROUGH


def _pair(v: object) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _kxk(k: object) -> str:
    kh, kw = _pair(k)
    return f"{kh}×{kw}"


def _stride(s: object) -> str:
    sh, sw = _pair(s)
    return "" if (sh, sw) == (1, 1) else f" /{sh}" if sh == sw else f" /{sh}×{sw}"


def _conv_detail(m: nn.Conv2d) -> str:
    return f"{_kxk(m.kernel_size)} conv{_stride(m.stride)}"


def _pool_detail(m: nn.Module) -> str:
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        size = _pair(m.output_size if m.output_size is not None else 1)
        return f"{'avg' if isinstance(m, nn.AdaptiveAvgPool2d) else 'max'} to {size[0]}×{size[1]}"
    what = "max" if isinstance(m, nn.MaxPool2d) else "avg"
    return f"{_kxk(m.kernel_size)} {what}-pool{_stride(m.stride or m.kernel_size)}"


def block_parts(block: nn.Module) -> tuple[list[nn.Conv2d], nn.Module | None]:
    """The main path's convolutions (in order) and the shortcut module (None: identity) of a residual block."""
    shortcut = getattr(block, "downsample", None)
    skip = {id(m) for m in shortcut.modules()} if shortcut is not None else set()
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d) and id(m) not in skip]
    return convs, shortcut


def _block_detail(block: nn.Module) -> tuple[str, str]:
    convs, shortcut = block_parts(block)
    main = "·".join(_kxk(c.kernel_size) for c in convs)
    if shortcut is None:
        return f"block {main} + id", "identity"
    conv = next((m for m in shortcut.modules() if isinstance(m, nn.Conv2d)), None)
    what = f"{_kxk(conv.kernel_size)} conv{_stride(conv.stride)}" if conv is not None else type(shortcut).__name__
    has_bn = any(isinstance(m, NORMS) for m in shortcut.modules())
    return f"block {main} + {_kxk(conv.kernel_size) if conv is not None else 'sc'}", what + (" + BN" if has_bn else "")


def _kind(m: nn.Module) -> str:
    if isinstance(m, RESIDUAL_BLOCKS):
        return "block"
    if isinstance(m, nn.Conv2d):
        return "conv"
    if isinstance(m, NORMS):
        return "norm"
    if isinstance(m, POOLS):
        return "pool"
    if isinstance(m, nn.Linear):
        return "linear"
    if isinstance(m, nn.Flatten):
        return "flatten"
    if isinstance(m, nn.Dropout):
        return "dropout"
    if isinstance(m, nn.Softmax):
        return "softmax"
    if type(m).__module__ == "torch.nn.modules.activation":
        return "activation"
    return "other"


def _detail(m: nn.Module, kind: str) -> tuple[str, str | None]:
    if kind == "block":
        return _block_detail(m)
    if kind == "conv":
        return _conv_detail(m), None
    if kind == "pool":
        return _pool_detail(m), None
    if kind == "linear":
        return f"fully connected {m.in_features}→{m.out_features}", None
    if kind == "norm":
        return {"BatchNorm2d": "batch norm", "BatchNorm1d": "batch norm"}.get(type(m).__name__, type(m).__name__), None
    return type(m).__name__, None


def stage_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every stage module, in definition order: leaves, and residual blocks taken whole."""
    found: list[tuple[str, nn.Module]] = []

    def walk(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(child, RESIDUAL_BLOCKS) or not list(child.children()):
                found.append((full, child))
            else:
                walk(full, child)

    walk("", model)
    return found


@dataclass(frozen=True)
class ForwardPass:
    """One image through a model: its stages in forward order and each stage's output (float32, no batch dim)."""

    arch: str
    class_names: tuple[str, ...]
    stages: tuple[Stage, ...]
    values: tuple[np.ndarray, ...]  # one per stage: [C,H,W] maps or [N] vectors; the softmax's are the probabilities
    x: torch.Tensor  # the model input [1,C,S,S]
    view: PIL.Image.Image  # the input as the network sees it (upscaled for display)

    @property
    def probs(self) -> np.ndarray:
        """Softmax of the logits [K]."""
        return self.values[-1]

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probs))

    @property
    def caption(self) -> str:
        """One paragraph (markdown) under the overview picture."""
        return (f"**{len(self.stages) - 2} stages** from the input to the logits, then the softmax; predicted "
                f"**{self.class_names[self.predicted]}** ({self.probs[self.predicted]:.1%}). Each column shows its "
                "strongest channels (the count below says how many more it has); an arc over a column is a residual "
                "block's shortcut. Click a tile to see how that one number was computed (below); drag the slider to "
                "step through the stages.")

    def index(self, name: str) -> int:
        """Position of the stage called `name`; a LectureError lists a few when there is none."""
        for i, s in enumerate(self.stages):
            if s.name == name:
                return i
        names = ", ".join(s.name for s in self.stages[:12])
        raise LectureError(f"this network has no stage called {name!r}; its stages are: {names}, ...")

    def shown(self) -> list[int]:
        """Indices of the stages the overview draws, in order."""
        return [i for i, s in enumerate(self.stages) if s.shown]

    def group(self, i: int) -> range:
        """Stage i's run of stages that share channels: a conv (or block, input, ...) and the norms, activations and
        pools right after it with the same channel count. The overview shows the same channels across a run."""
        stages = self.stages
        same = (lambda j: stages[j].spatial and stages[j].out_shape[0] == stages[i].out_shape[0])
        start = i
        while start > 0 and stages[start].kind in ("norm", "activation", "pool") and same(start - 1):
            start -= 1
        end = i
        while end + 1 < len(stages) and stages[end + 1].kind in ("norm", "activation", "pool") and same(end + 1):
            end += 1
        return range(start, end + 1)

    def strongest_channels(self, i: int, k: int) -> tuple[np.ndarray, int]:
        """Up to k channels of map stage i, strongest first (mean |activation| at the end of its run, see `group`),
        and how many are left out."""
        v = self.values[self.group(i)[-1]]
        strength = np.abs(v).reshape(v.shape[0], -1).mean(1)
        order = np.argsort(-strength, kind="stable")
        return order[:k], max(0, len(order) - k)


def _describe(name: str, module: nn.Module, out: torch.Tensor) -> Stage:
    kind = _kind(module)
    detail, shortcut = _detail(module, kind)
    return Stage(name, kind, type(module).__name__, detail, tuple(out.shape[1:]), shortcut)


def run_forward_pass(model: nn.Module, x: torch.Tensor, class_names: Sequence[str] = (), arch: str = "",
                     spec: InputSpec | None = None) -> ForwardPass:
    """Run one input [1,C,S,S] through `model` (eval mode, no grad) and record every stage's output in call order."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise LectureError(f"the forward pass takes one image [1, C, H, W], got {tuple(x.shape)}")
    modules = stage_modules(model)
    order: list[str] = []

    def make(name: str):
        def hook(_m: nn.Module, _inputs: tuple, _out: object) -> None:
            if name not in order:  # a module called twice keeps its first place (capture keeps its last output)
                order.append(name)
        return hook

    names = [n for n, _ in modules]
    with capture(model, names) as cap, forward_hooks([(m, make(n)) for n, m in modules]), torch.no_grad():
        logits = model(x)
    by_name = dict(modules)
    stages = [Stage("input", "input", "input", f"{x.shape[-2]}×{x.shape[-1]} image", tuple(x.shape[1:]))]
    values = [x[0].float().numpy()]
    for name in order:
        out = cap.activation(name)
        stages.append(_describe(name, by_name[name], out))
        values.append(out[0].float().numpy())
    logits = logits.detach().float()
    if stages[-1].kind == "linear" and tuple(logits.shape[1:]) == stages[-1].out_shape:  # the classifier's last layer
        s = stages[-1]
        stages[-1] = Stage(s.name, "logits", s.type, f"logits ({s.out_shape[0]} classes)", s.out_shape)
    probs = torch.softmax(logits[0], 0).numpy()
    stages.append(Stage("softmax", "softmax", "softmax", "probabilities", tuple(probs.shape)))
    values.append(probs)
    k = len(probs)
    labels = tuple(class_names) if len(class_names) == k else tuple(str(i) for i in range(k))
    view = model_view(x, spec) if spec is not None else _plain_view(x)
    return ForwardPass(arch, labels, tuple(stages), tuple(values), x, view)


def _plain_view(x: torch.Tensor) -> PIL.Image.Image:
    """A min-max stretched picture of an input without a known normalisation (models built in tests)."""
    a = x[0].float().numpy()
    a = (a - a.min()) / max(float(a.max() - a.min()), 1e-12)
    arr = (a.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    return PIL.Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


def forward_pass(loaded: LoadedModel, image: object) -> ForwardPass:
    """A checkpoint's forward pass on one image (path, bytes, PIL or array), prepared as the model expects it."""
    x, _ = prepare(image, loaded.meta)  # the meta, not only its spec: ImageNet networks get their weights' transforms
    return run_forward_pass(loaded.model, x, loaded.meta.class_names, loaded.meta.arch, loaded.meta.spec)




def overview(loaded: LoadedModel, image: object, per_stage: int | None = None) -> tuple[ForwardPass, ForwardPassPicture]:
    """A checkpoint's forward pass on one image and its overview picture (cnnviz.render.forward_pass_picture)."""
    fp = forward_pass(loaded, image)
    return fp, forward_pass_picture(fp, per_stage)


def write_overview_gif(pic: ForwardPassPicture, folder: Path, ms_per_frame: int = 700) -> Path:
    """The step-through as an animated GIF in `folder` (a fresh name: users never overwrite each other's)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", pic.title.split(":")[0])[:40] or "network"
    return atomic_write(folder / f"{stem}-forward-pass-{secrets.token_hex(4)}.gif", forward_pass_gif(pic, ms_per_frame))


__all__ = ["ForwardPass", "Stage", "block_parts", "forward_pass", "overview", "run_forward_pass", "stage_modules",
           "write_overview_gif"]
