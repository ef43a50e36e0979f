"""'Is this explanation real?': cascading weight randomisation (Adebayo et al. 2018) with rank correlations."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from scipy.stats import spearmanr

from .attributions import attribute
from .explain import cascading_randomization, grad_cam


@dataclass(frozen=True)
class SanityStep:
    """Maps after randomising every layer from the top down to `layer` (layer '' = the trained model)."""

    layer: str
    gradcam: np.ndarray  # [H,W] in [0,1]
    guided_backprop: np.ndarray  # [H,W] in [0,1]
    rho_gradcam: float  # Spearman rank correlation with the trained model's map
    rho_guided_backprop: float


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two maps; 0 when either map is constant (no ranking to compare)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def _maps(model: nn.Module, x: torch.Tensor, target: int, layer: str | None) -> tuple[np.ndarray, np.ndarray]:
    cam = grad_cam(model, x, layer, target).upsampled
    gbp = attribute(model, x, "guided-backprop", target).heat
    return cam, gbp


def sanity_check(model: nn.Module, x: torch.Tensor, target: int | None = None, layer: str | None = None,
                 seed: int = 0) -> Iterator[SanityStep]:
    """Yield the trained maps, then the maps after each cascading randomisation step (top layer first)."""
    cam0 = grad_cam(model, x, layer, target)
    target, layer = cam0.target, cam0.layer
    ref_cam, ref_gbp = _maps(model, x, target, layer)
    yield SanityStep("", ref_cam, ref_gbp, 1.0, 1.0)
    for name, randomized in cascading_randomization(model, seed=seed):
        cam, gbp = _maps(randomized, x, target, layer)
        yield SanityStep(name, cam, gbp, rank_correlation(ref_cam, cam), rank_correlation(ref_gbp, gbp))
