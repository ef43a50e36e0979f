"""Feature maps, filters and Grad-CAM as plain numbers (frozen dataclasses of numpy arrays)."""
from __future__ import annotations

import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .geometry import Geometry, layer_geometry
from .hooks import LayerError, capture, model_lock
from .layers import ExplainError, as_batch, check_layer, default_layer, normalize01

_GEOMETRY: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


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
    """Cached `geometry.layer_geometry` of one layer for inputs of shape [C,H,W] (None when it cannot be traced)."""
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


