"""Feature maps, filters and Grad-CAM as plain numbers (frozen dataclasses of numpy arrays).

Captum-based attributions (Guided Grad-CAM, Integrated Gradients, ...) live in `cnnviz.attributions`;
turning these numbers into pictures is `cnnviz.render`'s job.
"""
from __future__ import annotations

import copy
import math
import warnings
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
import torch.nn as nn
import torch.nn.functional as F

from .hooks import Geometry, LayerError, capture, layer_geometry, model_lock, output_shapes

_GEOMETRY: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


class ExplainError(ValueError):
    """A request that cannot be explained (unknown layer, target out of range, ...); the message says why."""


@dataclass(frozen=True)
class FeatureMaps:
    """Every channel of one layer's output for one image, with per-channel statistics (all [C])."""

    layer: str
    maps: np.ndarray  # float32 [C,h,w]
    mean: np.ndarray
    max: np.ndarray
    min: np.ndarray
    frac_active: np.ndarray  # fraction of positions > 0

    def order(self, by: str = "mean", descending: bool = True) -> np.ndarray:
        """Channel indices sorted by a statistic ('mean', 'max', 'min' or 'frac_active')."""
        if by not in ("mean", "max", "min", "frac_active"):
            raise ExplainError(f"cannot sort channels by {by!r}; use mean, max, min or frac_active")
        idx = np.argsort(getattr(self, by), kind="stable")
        return idx[::-1].copy() if descending else idx


@dataclass(frozen=True)
class Filters:
    """Kernels of one conv layer as displayable tiles; `weights` keeps the raw [O,I,kh,kw] array."""

    layer: str
    weights: np.ndarray  # float32 [O,I,kh,kw]
    tiles: np.ndarray  # [O,kh,kw,3] when rgb, else [O,kh,kw] (signed)
    rgb: bool
    reduction: str  # "rgb", "mean over input channels" or "input channel k"


@dataclass(frozen=True)
class CamResult:
    """Grad-CAM of one image: `cam` at layer resolution (ReLU'd, unscaled), `upsampled` at input size in [0,1]."""

    cam: np.ndarray  # float32 [h,w]
    upsampled: np.ndarray  # float32 [H,W] in [0,1]
    target: int
    probs: np.ndarray  # float32 [K] softmax of the logits
    layer: str
    warnings: tuple[str, ...] = ()

    @property
    def predicted(self) -> int:
        """Index of the most probable class."""
        return int(np.argmax(self.probs))


def as_batch(x: torch.Tensor) -> torch.Tensor:
    """[C,H,W] or [B,C,H,W] -> a detached float batch [B,C,H,W]; anything else is an ExplainError."""
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ExplainError(f"expected an image tensor [C,H,W] or a batch [B,C,H,W], got shape {tuple(x.shape)}")
    return x.detach().float()


def normalize01(a: np.ndarray) -> np.ndarray:
    """Min-max scale to [0,1]; a constant (or non-finite) map gives zeros, never NaN."""
    a = np.nan_to_num(np.asarray(a, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if a.size == 0:
        return a
    lo, hi = float(a.min()), float(a.max())
    if not hi - lo > 1e-12:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)


def conv_layers(model: nn.Module, input_shape: Sequence[int]) -> list[str]:
    """Names of every module whose output is 4-D [B,C,h,w] (convs, ReLUs, pools, blocks), in `named_modules` order."""
    shape = tuple(input_shape)
    x = torch.zeros((1, *shape) if len(shape) == 3 else shape)
    shapes = output_shapes(model, x)
    return [name for name, _ in model.named_modules() if len(shapes.get(name, ())) == 4]


def default_layer(model: nn.Module, arch_name: str | None = None) -> str:
    """The registry's Grad-CAM layer for `arch_name` when the model has it, else the last Conv2d."""
    names = dict(model.named_modules())
    if arch_name:
        from .models import get_model_info  # local: explain must not require the registry for plain models

        try:
            layer = get_model_info(arch_name).cam_layer
        except KeyError:
            layer = ""
        if layer and layer in names:
            return layer
    convs = [name for name, m in names.items() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ExplainError("the model has no Conv2d layer; name a layer explicitly")
    return convs[-1]


def check_layer(model: nn.Module, layer: str) -> None:
    """Raise ExplainError, listing valid names, unless `layer` is a named_modules() name of `model`."""
    names = [n for n, _ in model.named_modules() if n]
    if layer not in names:
        raise ExplainError(f"unknown layer {layer!r}; choose one of: {', '.join(names[:20])}"
                           + (" ..." if len(names) > 20 else ""))


def feature_maps(model: nn.Module, x: torch.Tensor, layer: str) -> FeatureMaps:
    """Every channel of `layer`'s output for one image x [C,H,W] or [1,C,H,W], with per-channel statistics."""
    x = as_batch(x)[:1]
    check_layer(model, layer)
    with capture(model, [layer]) as cap, torch.no_grad():
        model(x)
    act = cap.activation(layer)
    if act.dim() != 4:
        raise ExplainError(f"layer {layer!r} outputs shape {tuple(act.shape)}, not feature maps; choose a conv layer")
    maps = act[0].float().cpu().numpy()  # [C,h,w]
    flat = maps.reshape(maps.shape[0], -1)
    return FeatureMaps(layer, maps, flat.mean(1), flat.max(1), flat.min(1), (flat > 0).mean(1).astype(np.float32))


def filters(model: nn.Module, layer: str | None = None, in_channel: int | None = None) -> Filters:
    """Kernels of a Conv2d: RGB tiles for a 3-channel first layer, else the mean over input channels
    (or the single `in_channel`), kept signed so render can use a diverging colormap."""
    modules = dict(model.named_modules())
    if layer is None:
        layer = next((n for n, m in modules.items() if isinstance(m, nn.Conv2d)), None)
        if layer is None:
            raise ExplainError("the model has no Conv2d layer")
    check_layer(model, layer)
    module = modules[layer]
    if not isinstance(module, nn.Conv2d):
        raise ExplainError(f"layer {layer!r} is a {type(module).__name__}, not a Conv2d: it has no filters to show")
    w = module.weight.detach().float().cpu().numpy()  # [O,I,kh,kw]
    if in_channel is not None:
        if not 0 <= in_channel < w.shape[1]:
            raise ExplainError(f"in_channel must be in 0..{w.shape[1] - 1}, got {in_channel}")
        return Filters(layer, w, w[:, in_channel], False, f"input channel {in_channel}")
    if w.shape[1] == 3:
        return Filters(layer, w, w.transpose(0, 2, 3, 1).copy(), True, "rgb")
    return Filters(layer, w, w.mean(1), False, "mean over input channels")


def _targets(logits: torch.Tensor, targets: Sequence[int] | None) -> torch.Tensor:
    b, k = logits.shape
    if targets is None:
        return logits.argmax(1)
    if len(targets) != b:
        raise ExplainError(f"got {len(targets)} targets for {b} images")
    bad = [t for t in targets if not 0 <= int(t) < k]
    if bad:
        raise ExplainError(f"target class {bad[0]} is out of range: the model has {k} classes (0..{k - 1})")
    return torch.tensor([int(t) for t in targets], dtype=torch.long, device=logits.device)


def grad_cam_batch(model: nn.Module, x: torch.Tensor, layer: str | None = None,
                   targets: Sequence[int] | None = None, align: bool = True) -> list[CamResult]:
    """Grad-CAM (Selvaraju et al. 2017) for a batch x [B,C,H,W]; one target per image (default: predicted).

    `align`: upsample so that each map cell lands on the centre of its receptive field (see `upsample_cam`);
    False stretches the map over the image as captum and pytorch-grad-cam do.
    """
    x = as_batch(x)
    layer = layer or default_layer(model)
    check_layer(model, layer)
    with capture(model, [layer], gradients=True) as cap, torch.enable_grad():
        logits = model(x)  # [B,K]
        if logits.dim() != 2:
            raise ExplainError(f"the model returns shape {tuple(logits.shape)}, expected logits [B,K]")
        t = _targets(logits, targets)
        act = cap.activation(layer)
        if act.dim() != 4:
            raise ExplainError(f"layer {layer!r} outputs shape {tuple(act.shape)}, not feature maps; choose a conv layer")
        if not logits.requires_grad:
            raise ExplainError(f"the output does not depend on layer {layer!r}")
        # Images are independent in eval mode, so one backward of the summed target logits gives every gradient.
        logits.gather(1, t[:, None]).sum().backward()
        try:
            grad = cap.gradient(layer)
        except LayerError as exc:
            raise ExplainError(str(exc)) from None
    geo = cam_geometry(model, tuple(x.shape[1:]), layer) if align else None
    return _cams(act.float().cpu(), grad.float().cpu(), logits.detach().cpu(), t.cpu(), layer, tuple(x.shape[-2:]), geo)


def cam_geometry(model: nn.Module, input_shape: tuple[int, ...], layer: str) -> Geometry | None:
    """Cached `hooks.layer_geometry` of one layer for inputs of shape [C,H,W] (None when it cannot be traced)."""
    with model_lock(model):
        cache = _GEOMETRY.setdefault(model, {})
        key = (layer, tuple(input_shape))
        if key not in cache:
            cache[key] = layer_geometry(model, (1, *input_shape), [layer]).get(layer)
        return cache[key]


def upsample_cam(cam: torch.Tensor, size: tuple[int, int], geo: Geometry | None = None) -> torch.Tensor:
    """Bilinear upsampling of maps [B,h,w] to [B,H,W]. With `geo`, cell (i,j) is placed at input pixel
    (start + i*jump) of its receptive field; without, the map is stretched over the image (align_corners=False).
    The two agree for padded nets such as VGG; unpadded convs (TinyVGG, LeNet) would be stretched off target."""
    if geo is None:
        return F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    coords = []
    for (start, jump), n_in, n_out in zip(geo, cam.shape[-2:], size):
        pos = (torch.arange(n_out, dtype=torch.float32) - start) / jump  # fractional cell index of each pixel
        coords.append(2 * pos / (n_in - 1) - 1 if n_in > 1 else torch.zeros(n_out))  # grid_sample's [-1, 1]
    gy, gx = torch.meshgrid(coords[0], coords[1], indexing="ij")
    grid = torch.stack([gx, gy], -1).expand(cam.shape[0], -1, -1, -1)  # [B,H,W,2] as (x, y)
    return F.grid_sample(cam[:, None].float(), grid, mode="bilinear", padding_mode="border", align_corners=True)[:, 0]


def _cams(act: torch.Tensor, grad: torch.Tensor, logits: torch.Tensor, t: torch.Tensor, layer: str,
          size: tuple[int, int], geo: Geometry | None) -> list[CamResult]:
    weights = grad.mean(dim=(2, 3), keepdim=True)  # [B,C,1,1]: alpha_k = spatial mean of d y_c / d A_k
    cam = F.relu((weights * act).sum(1))  # [B,h,w]
    up = upsample_cam(cam, size, geo)  # [B,H,W]
    probs = torch.softmax(logits.float(), 1).numpy()
    notes: tuple[str, ...] = ()
    if cam.shape[-1] * cam.shape[-2] == 1:
        notes = (f"layer {layer!r} is 1x1 at this input size: its Grad-CAM is a single number and carries "
                 "no spatial information; choose an earlier layer",)
        warnings.warn(notes[0], stacklevel=3)
    return [CamResult(cam[i].numpy(), normalize01(up[i].numpy()), int(t[i]), probs[i], layer, notes)
            for i in range(cam.shape[0])]


def grad_cam(model: nn.Module, x: torch.Tensor, layer: str | None = None, target: int | None = None,
             align: bool = True) -> CamResult:
    """Grad-CAM of one image x [C,H,W] or [1,C,H,W] for `target` (default: the predicted class)."""
    x = as_batch(x)
    if x.shape[0] != 1:
        raise ExplainError(f"grad_cam takes one image; use grad_cam_batch for {x.shape[0]}")
    return grad_cam_batch(model, x, layer, None if target is None else [target], align)[0]


def predict(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Class probabilities [B,K] (softmax) for x [C,H,W] or [B,C,H,W], in eval mode under the model lock."""
    with capture(model, [], gradients=False), torch.no_grad():
        return torch.softmax(model(as_batch(x)).float(), 1).cpu().numpy()


def prepare(source: object, spec: object) -> tuple[torch.Tensor, PIL.Image.Image]:
    """Decode an image (path, bytes, PIL, array) into the model input [1,C,S,S] and the picture the model sees."""
    from .images import load_image, model_view, to_model_input  # local: only callers with raw images need it

    x = to_model_input(load_image(source), spec)
    return x, model_view(x, spec)


def _param_modules(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]


@torch.no_grad()
def _randomize(module: nn.Module, gen: torch.Generator) -> None:
    """Re-initialise like PyTorch's reset_parameters, but from `gen` (thread-safe; global RNG untouched)."""
    for m in module.modules():
        if hasattr(m, "reset_running_stats"):  # batch norm: weight 1, bias 0, running stats reset
            m.reset_parameters()
            continue
        own = dict(m.named_parameters(recurse=False))
        weight = own.pop("weight", None)
        fan_in = 1
        if weight is not None and weight.dim() > 1:
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=gen)
            fan_in = weight[0].numel()
        elif weight is not None:
            own["weight"] = weight
        bound = 1 / math.sqrt(fan_in)
        for p in own.values():
            p.uniform_(-bound, bound, generator=gen)


def cascading_randomization(model: nn.Module, layers: Sequence[str] | None = None, seed: int = 0,
                            copy_each: bool = False) -> Iterator[tuple[str, nn.Module]]:
    """Adebayo et al. 2018: re-initialise layers one by one from the output down, yielding (layer, model) after each.

    `layers` defaults to every module owning parameters, top first. The yielded model is one private copy,
    randomised further at each step (pass `copy_each=True` to get an independent copy per step).
    """
    with model_lock(model):
        work = copy.deepcopy(model).eval()
    names = list(layers) if layers is not None else _param_modules(work)[::-1]
    modules = dict(work.named_modules())
    for name in names:
        if name not in modules:
            raise ExplainError(f"unknown layer {name!r}")
    gen = torch.Generator().manual_seed(seed)
    for name in names:
        _randomize(modules[name], gen)
        yield name, (copy.deepcopy(work) if copy_each else work)


__all__ = ["CamResult", "ExplainError", "FeatureMaps", "Filters", "cam_geometry", "cascading_randomization", "conv_layers",
           "default_layer", "feature_maps", "filters", "grad_cam", "grad_cam_batch", "normalize01", "predict", "prepare",
           "upsample_cam"]
