"""Pixel attributions through captum (Guided Grad-CAM, Guided Backprop, Integrated Gradients, Saliency, Occlusion),
plus our Grad-CAM, all returned as one `Attribution` type so they can be shown side by side."""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from captum.attr import GuidedBackprop, IntegratedGradients, Occlusion, Saliency

from .gradcam import CamResult, cam_geometry, grad_cam, upsample_cam
from .hooks import model_lock, restored_state
from .layers import ExplainError, as_batch, check_layer, default_layer, normalize01

METHODS = ("gradcam", "guided-gradcam", "guided-backprop", "ig", "saliency", "occlusion")
TITLES = {"gradcam": "Grad-CAM", "guided-gradcam": "Guided Grad-CAM", "guided-backprop": "Guided Backprop",
          "ig": "Integrated Gradients", "saliency": "Saliency", "occlusion": "Occlusion"}
_NOTICE = r"Setting backward hooks on ReLU activations"


@dataclass(frozen=True)
class Attribution:
    """One method's explanation of one image: raw signed `attr` and the [0,1] `heat` that figures show."""

    method: str
    attr: np.ndarray  # float32 [C,H,W] at input resolution (Grad-CAM: [1,H,W], the upsampled map)
    heat: np.ndarray  # float32 [H,W] in [0,1]
    target: int
    probs: np.ndarray  # float32 [K]
    layer: str | None = None  # Grad-CAM layer, for the methods that use one
    warnings: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        """Human name of the method, e.g. 'Integrated Gradients'."""
        return TITLES.get(self.method, self.method)


def _quiet_captum() -> None:
    """Silence captum's per-call notice that it sets (and removes) ReLU hooks; installed on first use, not at import,
    and again if someone reset the filters (warnings.catch_warnings, pytest)."""
    if not any(f[1] is not None and f[1].pattern == _NOTICE for f in warnings.filters):
        warnings.filterwarnings("ignore", message=_NOTICE)


def heat_of(attr: np.ndarray, method: str, clip_percentile: float = 99.5) -> np.ndarray:
    """Display map [H,W] in [0,1]: |attr| summed over channels (occlusion: its positive part, i.e. evidence),
    clipped at a high percentile so a few extreme pixels do not wash out the rest."""
    a = np.clip(attr, 0, None).sum(0) if method == "occlusion" else np.abs(attr).sum(0)
    if a.size and a.max() > 0:
        a = np.minimum(a, np.percentile(a, clip_percentile))
    return normalize01(a)


def occlusion_window(size: int) -> tuple[int, int]:
    """(window, stride) for an image side `size`: ~1/6 of the image, half-window stride (28 px: 4 and 2)."""
    window = max(3, size // 6)
    return window, max(1, (window + 1) // 2)


def _captum(model: nn.Module, x: torch.Tensor, method: str, cam: CamResult, ig_steps: int) -> torch.Tensor:
    """Raw attribution [1,C,H,W]; x is a fresh leaf that requires grad."""
    target = cam.target
    if method == "saliency":
        return Saliency(model).attribute(x, target=target, abs=False)
    if method == "guided-backprop":
        return GuidedBackprop(model).attribute(x, target=target)
    if method == "guided-gradcam":
        # captum's GuidedGradCam times *our* Grad-CAM: the same product (Selvaraju et al.), but with the map
        # placed on its receptive fields (identical to captum's for padded nets such as VGG).
        geo = cam_geometry(model, tuple(x.shape[1:]), cam.layer)
        up = upsample_cam(torch.from_numpy(cam.cam)[None], tuple(x.shape[-2:]), geo)  # [1,H,W], unnormalised
        return GuidedBackprop(model).attribute(x, target=target) * up[:, None]
    if method == "ig":
        # Baseline zeros = the dataset's mean colour after normalisation: "nothing" for the model.
        # All steps in one batch for small images; ImageNet-sized ones in chunks of 8 to bound memory.
        chunk = ig_steps if x.shape[-1] <= 64 else 8
        return IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=ig_steps,
                                                    internal_batch_size=chunk)
    if method == "occlusion":
        window, stride = occlusion_window(x.shape[-1])
        c, per_eval = x.shape[1], 64 if x.shape[-1] <= 64 else 4  # occluded copies per forward pass
        return Occlusion(model).attribute(x, sliding_window_shapes=(c, window, window), strides=(c, stride, stride),
                                          target=target, baselines=0.0, perturbations_per_eval=per_eval)
    raise ExplainError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")


def attribute(model: nn.Module, x: torch.Tensor, method: str, target: int | None = None, layer: str | None = None,
              ig_steps: int = 32) -> Attribution:
    """Explain one image x [C,H,W] or [1,C,H,W] with `method` (one of METHODS) for `target` (default: predicted)."""
    if method not in METHODS:
        raise ExplainError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    x = as_batch(x)[:1]
    layer = layer or default_layer(model)
    check_layer(model, layer)
    cam = grad_cam(model, x, layer, target)  # also validates the target, and gives probs and the predicted class
    if method == "gradcam":
        return Attribution(method, cam.upsampled[None], cam.upsampled, cam.target, cam.probs, layer, cam.warnings)
    _quiet_captum()
    # Captum hooks ReLUs (guided methods) and runs the model many times: hold the model's lock for all of it,
    # in eval mode with frozen weights, on a private input that requires grad.
    with model_lock(model), restored_state(model, eval_mode=True, freeze=True):
        raw = _captum(model, x.clone().requires_grad_(True), method, cam, ig_steps)
    attr = raw.detach()[0].float().numpy()
    notes = cam.warnings if method == "guided-gradcam" else ()
    used_layer = layer if method == "guided-gradcam" else None
    return Attribution(method, attr, heat_of(attr, method), cam.target, cam.probs, used_layer, notes)


def attribute_all(model: nn.Module, x: torch.Tensor, target: int | None = None, layer: str | None = None,
                  methods: Sequence[str] = METHODS) -> dict[str, Attribution]:
    """Every method in `methods` for one image, in order (same target for all: the predicted class by default)."""
    results: dict[str, Attribution] = {}
    for method in methods:
        results[method] = attribute(model, x, method, target, layer)
        target = results[method].target
    return results


__all__ = ["METHODS", "TITLES", "Attribution", "attribute", "attribute_all", "heat_of", "occlusion_window"]
