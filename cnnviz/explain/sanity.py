"""'Is this explanation real?': cascading weight randomisation (Adebayo et al. 2018) with rank correlations."""
from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from scipy.stats import spearmanr

from .attributions import attribute
from .gradcam import grad_cam
from .hooks import model_lock
from .layers import ExplainError


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
