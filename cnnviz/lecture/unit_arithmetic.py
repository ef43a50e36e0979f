"""One unit's arithmetic, with the numbers the model used: the input patch it sees (and its receptive field on the
image), the kernel, the element-wise products, their sum plus the bias, then the batch norm and activation after it.
For a deeper unit the per-input-channel contributions come ranked; pooling units show their window, a residual block
its main path plus its shortcut, a fully connected unit its ranked inputs.

Every number is recomputed here (float64) from the captured input of the layer (`explain.hooks`), and each result
carries the model's own value at that position so the two can be compared (the tests do).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import PIL.Image
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..explain.geometry import Field, layer_fields
from ..explain.hooks import capture, forward_hooks
from ..render.unit_picture import unit_picture
from .errors import LectureError
from .forward_pass import NORMS, ForwardPass, block_parts, forward_pass, run_forward_pass

if TYPE_CHECKING:
    from ..store.checkpoints import LoadedModel

UNIT_KINDS = ("conv", "norm", "activation", "pool", "block", "linear", "logits")
FORMULAS = {"ReLU": "max(0, x)", "ReLU6": "min(max(0, x), 6)", "Sigmoid": "1 / (1 + e^-x)", "Tanh": "tanh(x)",
            "LeakyReLU": "x if x > 0 else slope·x", "GELU": "x·Φ(x)", "SiLU": "x·sigmoid(x)"}


@dataclass(frozen=True)
class Term:
    """One input channel's (or input unit's, or path's) share of the sum."""

    label: str  # 'input channel 3', 'R', 'input 17', 'main path', 'shortcut', 'window'
    contribution: float
    patch: np.ndarray | None = None  # [kh,kw] input values the kernel meets (padding included as its value)
    kernel: np.ndarray | None = None  # [kh,kw] weights
    products: np.ndarray | None = None  # patch * kernel
    padded: np.ndarray | None = None  # [kh,kw] bool: True where the patch lies in the padding


@dataclass(frozen=True)
class Step:
    """An element-wise stage after the sum: batch norm or an activation, with the model's own value after it."""

    stage: str
    operation: str
    before: float
    after: float
    model_value: float


@dataclass(frozen=True)
class UnitArithmetic:
    """How the value of unit (channel, row, col) of a stage was computed, and the model's own value to compare."""

    stage: str  # the stage asked for
    source: str  # the layer whose arithmetic is shown (a conv, linear, pool or block)
    kind: str  # conv, linear, pool or block
    operation: str  # '5×5 convolution, stride 1, padding 2', '2×2 max-pool', 'residual sum', ...
    channel: int
    row: int | None
    col: int | None
    terms: tuple[Term, ...]  # ranked by |contribution|, largest first (a first layer's in channel order; a pool's
    # window is one term)
    bias: float | None
    total: float  # recomputed: sum of the terms + bias, the pool's max/mean, main + shortcut
    model_total: float  # the source layer's own output at this unit
    steps: tuple[Step, ...]  # batch norm / activation after the source, up to the stage asked for
    field: tuple[float, float, float, float] | None  # receptive field on the input (x0, y0, x1, y1), inclusive
    rf: int | None
    first_layer: bool  # the source reads the image itself, so the patch is input pixels

    @property
    def value(self) -> float:
        """The recomputed value of the unit at the stage asked for."""
        return self.steps[-1].after if self.steps else self.total

    @property
    def model_value(self) -> float:
        """The model's own value of the unit at the stage asked for."""
        return self.steps[-1].model_value if self.steps else self.model_total

    @property
    def markdown(self) -> str:
        """The arithmetic in words and numbers."""
        where = f"channel {self.channel}, row {self.row}, column {self.col}" if self.row is not None \
            else f"unit {self.channel}"
        head = (f"**{self.stage}**, {where}: {self.operation} at `{self.source}`"
                + (f", seeing a {self.rf}×{self.rf} px patch of the image" if self.rf else "") + ".")
        lines = [head, ""]
        if self.kind in ("conv", "linear"):
            shown = self.terms[:8]
            parts = " + ".join(f"{t.contribution:.4g} ({t.label})" for t in shown)
            rest = sum(t.contribution for t in self.terms[8:])
            more = f" + {rest:.4g} (the other {len(self.terms) - 8})" if len(self.terms) > 8 else ""
            lines.append(f"Sum of products{'' if self.first_layer else ', largest first'}: {parts}{more}")
            lines.append(f"= {self.total - (self.bias or 0):.6g}; plus bias {self.bias or 0:.6g} = **{self.total:.6g}**")
        elif self.kind == "pool":
            lines.append(f"{self.terms[0].label} of the window = **{self.total:.6g}**")
        else:
            main, short = self.terms if self.terms[0].label == "main path" else self.terms[::-1]
            lines.append(f"main path {main.contribution:.6g} + shortcut {short.contribution:.6g} = **{self.total:.6g}**")
        lines.append(f"(the model's own value: {self.model_total:.6g})")
        for s in self.steps:
            lines.append(f"\n`{s.stage}` {s.operation}: {s.before:.6g} → **{s.after:.6g}** (model: {s.model_value:.6g})")
        return "\n".join(lines)


def _pair(v: object) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _conv_pads(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero (or reflect, ...) padding PyTorch adds before the convolution."""
    (kh, kw), (dh, dw) = conv.kernel_size, conv.dilation
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return 0, 0, 0, 0
        th, tw = dh * (kh - 1), dw * (kw - 1)  # 'same': the extra pixel of an odd total goes at the end
        return th // 2, th - th // 2, tw // 2, tw - tw // 2
    ph, pw = _pair(conv.padding)
    return ph, ph, pw, pw


def _grid(start: int, step: int, n: int, dil: int) -> np.ndarray:
    return start * step + np.arange(n) * dil


def _conv_terms(conv: nn.Conv2d, inp: torch.Tensor, c: int, r: int, q: int, rgb: bool) -> tuple[list[Term], float]:
    """Per-input-channel products of output channel c at (r, q); inp is the conv's input [Cin,H,W]."""
    top, bottom, left, right = _conv_pads(conv)
    x = inp.double()[None]
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    padded = F.pad(x, (left, right, top, bottom), mode=mode)[0]
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    rows, cols = _grid(r, sh, kh, dh), _grid(q, sw, kw, dw)
    in_pad = ~(((rows - top) >= 0) & ((rows - top) < inp.shape[1]))[:, None] | \
        ~(((cols - left) >= 0) & ((cols - left) < inp.shape[2]))[None, :]
    per_group = conv.in_channels // conv.groups
    first = (c // (conv.out_channels // conv.groups)) * per_group
    w = conv.weight.detach().double()[c]  # [per_group, kh, kw]
    terms = []
    for k in range(per_group):
        patch = padded[first + k][np.ix_(rows, cols)].numpy()
        kern = w[k].numpy()
        prod = patch * kern
        label = "RGB"[first + k] if rgb else f"input channel {first + k}"
        terms.append(Term(label, float(prod.sum()), patch, kern, prod, in_pad))
    bias = float(conv.bias.detach().double()[c]) if conv.bias is not None else 0.0
    return terms, bias


def _pool_window(pool: nn.Module, inp: torch.Tensor, c: int, r: int, q: int, out_hw: tuple[int, int]) -> tuple[Term, float]:
    """The window of pool unit (c, r, q) and its max or mean, as PyTorch computes it (padding, ceil mode, divisor)."""
    a = inp.double()[c].numpy()
    h, w = a.shape
    if isinstance(pool, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        (oh, ow) = out_hw
        r0, r1 = (r * h) // oh, -(-((r + 1) * h) // oh)
        c0, c1 = (q * w) // ow, -(-((q + 1) * w) // ow)
        win = a[r0:r1, c0:c1]
        is_max = isinstance(pool, nn.AdaptiveMaxPool2d)
        return Term("max" if is_max else "mean", 0.0, win), float(win.max() if is_max else win.mean())
    (kh, kw), (ph, pw) = _pair(pool.kernel_size), _pair(pool.padding)
    sh, sw = _pair(pool.stride or pool.kernel_size)
    if isinstance(pool, nn.MaxPool2d):
        dh, dw = _pair(pool.dilation)
        rows, cols = r * sh - ph + np.arange(kh) * dh, q * sw - pw + np.arange(kw) * dw
        inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
        win = np.where(inside, a[np.clip(rows, 0, h - 1)][:, np.clip(cols, 0, w - 1)], -np.inf)
        return Term("max", 0.0, win, padded=~inside), float(win.max())
    r0, c0 = r * sh - ph, q * sw - pw
    r1, c1 = min(r0 + kh, h + ph), min(c0 + kw, w + pw)
    size = (r1 - r0) * (c1 - c0)  # the divisor counts padding (count_include_pad), not what ceil mode adds
    r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, h), min(c1, w)
    win = a[r0:r1, c0:c1]
    divisor = pool.divisor_override or (size if pool.count_include_pad else win.size)
    return Term("mean", 0.0, win), float(win.sum() / divisor)


def _source_and_chain(fp: ForwardPass, i: int) -> tuple[int, list[int]]:
    """The stage whose arithmetic explains stage i, and the element-wise stages from it up to i."""
    stages = fp.stages
    kind = stages[i].kind
    if kind not in UNIT_KINDS:
        raise LectureError(f"stage {stages[i].name!r} ({stages[i].type}) hands its input on unchanged or is not a layer; "
                           "choose a convolution, activation, pooling, block or fully connected stage")
    j = i
    while stages[j].kind in ("norm", "activation"):
        j -= 1
        if stages[j].kind not in ("conv", "linear", "logits", "norm", "activation"):
            raise LectureError(f"stage {stages[i].name!r} follows a {stages[j].kind} stage ({stages[j].name}); choose "
                               "a convolution, or the batch norm or activation right after one")
    return j, list(range(j + 1, i + 1))


def _check(name: str, what: str, v: object, n: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer)) or not float(v).is_integer() or not 0 <= v < n:
        raise LectureError(f"{what} {v!r} is outside {name}: choose a {what} from 0 to {n - 1}")
    return int(v)


def _step(stage, module: nn.Module, c: int, before: float, model_value: float) -> Step:
    """Batch norm (eval: running statistics) or an activation, applied to one number."""
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        mean, var = float(module.running_mean[c]), float(module.running_var[c])
        g = float(module.weight.detach()[c]) if module.weight is not None else 1.0
        b = float(module.bias.detach()[c]) if module.bias is not None else 0.0
        after = (before - mean) / math.sqrt(var + module.eps) * g + b
        return Step(stage.name, f"batch norm (x − {mean:.4g}) / √({var:.4g} + ε) · {g:.4g} + {b:.4g}", before, after,
                    model_value)
    if isinstance(module, NORMS):
        raise LectureError(f"stage {stage.name!r} ({stage.type}) mixes neighbouring numbers; choose the layer before it")
    after = float(module(torch.tensor([before], dtype=torch.float64))[0])
    return Step(stage.name, f"{stage.type}: {FORMULAS.get(stage.type, stage.type + '(x)')}", before, after, model_value)


_FIELDS: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def _field(model: nn.Module, shape: tuple[int, ...], layer: str) -> Field | None:
    """The layer's receptive field (explain.geometry), kept per model: it depends on the layout, not the weights."""
    known = _FIELDS.setdefault(model, {})
    if (shape, layer) not in known:
        known[(shape, layer)] = layer_fields(model, shape, [layer]).get(layer)
    return known[(shape, layer)]


def _locate(fp: ForwardPass, modules: dict[str, nn.Module], stage: str) -> tuple[str, list[int], bool]:
    """(source layer, element-wise stages after it up to `stage`, whether the source is a residual block)."""
    if stage not in [s.name for s in fp.stages] and isinstance(modules.get(stage), (nn.Conv2d, nn.Linear)):
        return stage, [], False  # a layer inside a block: its own arithmetic only
    src, chain = _source_and_chain(fp, fp.index(stage))
    return fp.stages[src].name, chain, fp.stages[src].kind == "block"


def _block_outputs(name: str, block: nn.Module) -> list[str]:
    """Names of the module ending a block's main path (its last norm, else its last conv) and of its shortcut."""
    convs, shortcut = block_parts(block)
    inside = {id(m) for m in shortcut.modules()} if shortcut is not None else set()
    named = [(n, m) for n, m in block.named_modules() if n and id(m) not in inside]
    norms = [n for n, m in named if isinstance(m, NORMS)]
    parts = [f"{name}.{norms[-1] if norms else next(n for n, m in named if m is convs[-1])}"]
    if shortcut is not None:
        parts.append(next(f"{name}.{n}" for n, m in block.named_modules() if m is shortcut))
    return parts


def _position(name: str, out: torch.Tensor, channel: object, row: object, col: object) -> tuple[int, int | None, int | None]:
    if out.dim() == 1:
        return _check(name, "unit", channel, out.shape[0]), None, None
    return (_check(name, "channel", channel, out.shape[0]), _check(name, "row", -1 if row is None else row, out.shape[1]),
            _check(name, "column", -1 if col is None else col, out.shape[2]))


def _arithmetic(source: nn.Module, inp: torch.Tensor, at: tuple, out_hw: tuple, first: bool, parts: list[str], cap,
                detail: str) -> tuple[str, str, list[Term], float | None, float]:
    """(kind, operation, terms, bias, total) of the unit at (c, r, q) of `source`, whose input was `inp` and whose
    output maps are out_hw; `parts` are a residual block's main-path end and shortcut, captured in `cap`."""
    c, r, q = at
    if isinstance(source, nn.Conv2d):
        terms, bias = _conv_terms(source, inp, c, r, q, rgb=first and inp.shape[0] == 3)
        (kh, kw), (sh, _), (ph, _, _, _) = source.kernel_size, source.stride, _conv_pads(source)
        operation = f"{kh}×{kw} convolution, stride {sh}, padding {ph}" + ("" if source.bias is not None else ", no bias")
        return "conv", operation, terms, bias, sum(t.contribution for t in terms) + bias
    if isinstance(source, nn.Linear):
        w, v = source.weight.detach().double()[c].numpy(), inp.double().reshape(-1).numpy()
        terms = [Term(f"input {k}", float(w[k] * v[k]), np.array([[v[k]]]), np.array([[w[k]]]), np.array([[w[k] * v[k]]]))
                 for k in range(len(v))]
        bias = float(source.bias.detach()[c]) if source.bias is not None else 0.0
        return "linear", f"fully connected ({len(v)} inputs)", terms, bias, sum(t.contribution for t in terms) + bias
    if parts:  # a residual block: ReLU(main path + shortcut), the shortcut being the block's input when it is identity
        main = float(cap.activation(parts[0])[0, c, r, q])
        short = float(cap.activation(parts[1])[0, c, r, q]) if len(parts) > 1 else float(inp[c, r, q])
        total = float(source.relu(torch.tensor([main + short], dtype=torch.float64))[0])
        return "block", "residual block: ReLU(main path + shortcut)", [Term("main path", main), Term("shortcut", short)], \
            None, total
    term, total = _pool_window(source, inp, c, r, q, out_hw)
    return "pool", detail, [term], None, total


def _unit_field(model: nn.Module, shape: tuple[int, ...], layer: str, r: int | None, q: int | None):
    """(x0, y0, x1, y1) of unit (r, q)'s receptive field on the input, and its side; None for a vector unit."""
    f = _field(model, shape, layer) if r is not None else None
    if f is None:
        return None, None
    cy, cx = f.y.start + r * f.y.jump, f.x.start + q * f.x.jump
    hy, hx = (f.y.rf - 1) / 2, (f.x.rf - 1) / 2
    return (cx - hx, cy - hy, cx + hx, cy + hy), int(round(f.y.rf))


def unit_arithmetic(model: nn.Module, x: torch.Tensor, stage: str, channel: int, row: int | None = None,
                    col: int | None = None, fp: ForwardPass | None = None) -> UnitArithmetic:
    """The arithmetic behind unit (channel, row, col) of `stage` (a stage name of the forward pass, or any Conv2d or
    Linear module name) for input x [1,C,S,S]. Linear units take no row and column."""
    fp = fp or run_forward_pass(model, x)
    modules = dict(model.named_modules())
    src_name, chain, is_block = _locate(fp, modules, stage)
    source = modules[src_name]
    parts = _block_outputs(src_name, source) if is_block else []
    inputs: list[torch.Tensor] = []

    def keep_input(_m: nn.Module, args: tuple, _out: object) -> None:
        inputs.append(args[0].detach().clone())  # clone: a later in-place op must not change it

    names = [src_name, *(fp.stages[j].name for j in chain), *parts]
    with capture(model, names) as cap, forward_hooks([(source, keep_input)]), torch.no_grad():
        model(x)
    out, inp = cap.activation(src_name)[0].double(), inputs[-1][0]
    first = torch.equal(inputs[-1], x)  # the layer reads the image itself
    c, r, q = _position(src_name, out, channel, row, col)
    detail = fp.stages[fp.index(src_name)].detail if src_name in [s.name for s in fp.stages] else ""
    kind, operation, terms, bias, total = _arithmetic(source, inp, (c, r, q), tuple(out.shape[1:]), first, parts, cap,
                                                      detail)
    if kind in ("conv", "linear") and not first:  # an image's channels read best as R, G, B; deeper ones by size
        terms = sorted(terms, key=lambda t: -abs(t.contribution))
    steps, value = [], total
    for j in chain:
        s = fp.stages[j]
        own = cap.activation(s.name)[0].double()
        steps.append(_step(s, modules[s.name], c, value, float(own[c] if r is None else own[c, r, q])))
        value = steps[-1].after
    field, rf = _unit_field(model, tuple(x.shape), src_name, r, q)
    return UnitArithmetic(stage, src_name, kind, operation, c, r, q, tuple(terms), bias, float(total),
                          float(out[c] if r is None else out[c, r, q]), tuple(steps), field, rf, bool(first))


def unit_stages(fp: ForwardPass) -> list[str]:
    """Stage names whose units `unit_arithmetic` can explain (convolutions, what follows them, pools, blocks, FC)."""
    ok = []
    for i, s in enumerate(fp.stages):
        try:
            _source_and_chain(fp, i)
            ok.append(s.name)
        except LectureError:
            pass
    return ok


def default_unit(fp: ForwardPass) -> tuple[str, int, int | None, int | None]:
    """Where the unit view starts: the first convolution's strongest channel, at its strongest position."""
    i = next((i for i, s in enumerate(fp.stages) if s.kind == "conv"), None)
    if i is None:
        i = next(fp.index(n) for n in unit_stages(fp))
    v = fp.values[i]
    c = int(fp.strongest_channels(i, 1)[0][0]) if fp.stages[i].spatial else int(np.argmax(v))
    if not fp.stages[i].spatial:
        return fp.stages[i].name, c, None, None
    r, q = np.unravel_index(int(np.argmax(v[c])), v[c].shape)
    return fp.stages[i].name, c, int(r), int(q)


def explain_unit(loaded: LoadedModel, image: object, stage: str, channel: int, row: int | None = None,
                 col: int | None = None) -> tuple[UnitArithmetic, PIL.Image.Image]:
    """A checkpoint's unit on one image: its arithmetic and the picture of it (cnnviz.render.unit_picture)."""
    fp = forward_pass(loaded, image)
    u = unit_arithmetic(loaded.model, fp.x, stage, channel, row, col, fp=fp)
    return u, unit_picture(u, fp.view, fp.x.shape[-1])


__all__ = ["Step", "Term", "UnitArithmetic", "default_unit", "explain_unit", "unit_arithmetic", "unit_stages"]
