"""Compare tab: several checkpoints on the same image — predictions, Grad-CAM, feature maps at comparable depth, cost."""
from __future__ import annotations

from dataclasses import dataclass

import PIL.Image
import torch.nn as nn

from ..explain.gradcam import CamResult, grad_cam
from ..explain.maps import FeatureMaps, feature_maps
from ..explain.predict import Prediction, predict_tensor
from ..images import model_view, to_model_input
from ..store.checkpoints import LoadedModel
from .summary import summarize


@dataclass(frozen=True)
class ModelComparison:
    name: str
    arch: str
    prediction: Prediction
    view: PIL.Image.Image  # what this network sees (its own size and channels)
    cam: CamResult
    maps: FeatureMaps
    maps_layer: str
    depth_fraction: float
    params: int
    flops: int
    history: list


def main_convs(model: nn.Module) -> list[str]:
    """Conv2d layers on the main path (ResNet shortcut 1x1 convs left out), shallow to deep."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and "downsample" not in n]


def layer_at_depth(layers: list[str], fraction: float) -> str:
    """The layer at `fraction` (0 = first, 1 = last) of a model's spatial layers: 'comparable depth' across nets."""
    if not layers:
        raise ValueError("the model has no layers with feature maps")
    return layers[min(len(layers) - 1, int(fraction * (len(layers) - 1) + 0.5))]  # round half up, not to even


def compare(models: list[LoadedModel], image: PIL.Image.Image, depth: float = 0.5, topk: int = 3) -> list[ModelComparison]:
    """One row per model for the same (already decoded) image; each model gets its own preprocessing."""
    if not 1 <= len(models) <= 4:
        raise ValueError("compare two to four checkpoints")
    if not 0 <= depth <= 1:
        raise ValueError("depth must be between 0 (first layer) and 1 (last)")
    rows = []
    for m in models:
        spec = m.meta.spec
        x = to_model_input(image, spec)
        shape = (spec.channels, spec.size, spec.size)
        layer = layer_at_depth(main_convs(m.model), depth)
        summary = summarize(m.model, shape)
        rows.append(ModelComparison(
            name=m.name, arch=m.meta.arch, prediction=predict_tensor(m, x, topk), view=model_view(x, spec),
            cam=grad_cam(m.model, x), maps=feature_maps(m.model, x, layer), maps_layer=layer, depth_fraction=depth,
            params=summary.total_params, flops=summary.total_flops, history=list(m.meta.history)))
    return rows
