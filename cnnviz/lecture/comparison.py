"""Several checkpoints on the same image — predictions, Grad-CAM, feature maps at comparable depth, cost — and the
report the compare view shows: a side-by-side table, captioned galleries and overlaid training curves."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import PIL.Image
import torch.nn as nn

from ..explain.gradcam import CamResult, grad_cam
from ..explain.maps import FeatureMaps, feature_maps
from ..explain.predict import Prediction, predict_tensor
from ..explain.preprocess import model_input
from ..images import model_view
from ..render.lecture_pictures import METRICS, curves_by_model
from ..render.pictures import feature_grid, overlay
from ..store.checkpoints import LoadedModel
from .errors import LectureError
from .summary import summarize

TABLE_COLUMNS = ["checkpoint", "architecture", "trained on", "prediction", "confidence", "top 3", "parameters",
                 "FLOPs per image", "feature maps from"]
MAX_CHANNELS = 16  # per model: enough to see the character of a layer, small enough to sit side by side
# LeNet -> AlexNet -> VGG -> ResNet, all shipped trained on Fashion-MNIST: what the tab compares out of the box.
FAMILIES_ON_FASHION = ("lenet5-fashion-mnist", "alexnet-fashion-mnist", "vgg11-fashion-mnist", "resnet18-fashion-mnist")


@dataclass(frozen=True)
class ModelComparison:
    """One model's answer for the shared image, with what it cost."""

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
        x = model_input(image, m.meta)  # ImageNet networks: their weights' own transforms
        shape = (spec.channels, spec.size, spec.size)
        layer = layer_at_depth(main_convs(m.model), depth)
        summary = summarize(m.model, shape)
        rows.append(ModelComparison(
            name=m.name, arch=m.meta.arch, prediction=predict_tensor(m, x, topk), view=model_view(x, spec),
            cam=grad_cam(m.model, x), maps=feature_maps(m.model, x, layer), maps_layer=layer, depth_fraction=depth,
            params=summary.total_params, flops=summary.total_flops, history=list(m.meta.history)))
    return rows


def checkpoints_to_compare(names: Sequence[str] | None) -> list[str]:
    """The chosen names without repeats (the same checkpoint twice compares nothing); two to four of them."""
    distinct = list(dict.fromkeys(names or []))
    if not 2 <= len(distinct) <= 4:
        raise LectureError(f"Choose two to four different checkpoints to compare (you chose {len(distinct)}).")
    return distinct


def default_checkpoints(datasets: Mapping[str, str]) -> list[str]:
    """What to compare first, from `datasets` (checkpoint name -> its dataset, in menu order): the four classic families
    on Fashion-MNIST where they are there, else up to four checkpoints trained on the first one's dataset."""
    shipped = [n for n in FAMILIES_ON_FASHION if n in datasets]
    if len(shipped) >= 2:
        return shipped
    names = list(datasets)
    return [n for n in names if datasets[n] == datasets[names[0]]][:4] if names else []


def mixed_datasets_note(datasets: Mapping[str, str]) -> str:
    """A warning when the chosen checkpoints (name -> dataset) were trained on different datasets; '' when not."""
    groups: dict[str, list[str]] = {}
    for name, dataset in datasets.items():
        groups.setdefault(dataset, []).append(name)
    if len(groups) < 2:
        return ""
    parts = "; ".join(f"{d}: {', '.join(names)}" for d, names in groups.items())
    return (f"**Mixed datasets** ({parts}). These networks learned different classes, so their predictions and "
            "accuracies are not comparable on one image; choose checkpoints trained on the same dataset for a fair "
            "comparison.")


@dataclass(frozen=True)
class ComparisonReport:
    """What the compare view shows for one image: a table row, a Grad-CAM and a feature-map grid per model."""

    table: pd.DataFrame  # TABLE_COLUMNS
    cams: list[tuple[PIL.Image.Image, str]]  # (Grad-CAM over what the model sees, caption)
    maps: list[tuple[PIL.Image.Image, str]]  # (feature maps at the comparable depth, caption)
    text: str


def comparison_report(models: list[LoadedModel], image: PIL.Image.Image, depth: float | None) -> ComparisonReport:
    """Compare `models` on `image` at relative `depth` (None: halfway) and word and draw the result."""
    depth = float(depth if depth is not None else 0.5)
    if not 0 <= depth <= 1:
        raise LectureError("The depth must be between 0 (first convolution) and 1 (last).")
    rows = compare(models, image, depth=depth)
    table = pd.DataFrame([_table_row(c, m.meta.dataset) for c, m in zip(rows, models, strict=True)],
                         columns=TABLE_COLUMNS)
    cams = [(overlay(c.view, c.cam.upsampled, 0.5), f"{c.name}: {c.prediction.labels[0]} {c.prediction.probs[0]:.0%}")
            for c in rows]
    maps = [(feature_grid(c.maps, max_channels=MAX_CHANNELS, labels=False),
             f"{c.name} · {c.maps_layer} ({c.maps.maps.shape[0]} channels of {c.maps.maps.shape[1]}×"
             f"{c.maps.maps.shape[2]})") for c in rows]
    grey = [c.name for c, m in zip(rows, models, strict=True) if m.meta.in_channels == 1]
    text = (f"Compared {len(rows)} networks at relative depth {depth:.2f}. Each saw the image its own way: resized to "
            f"its input size" + (f", and in grey for {', '.join(grey)}" if grey else "") + ".")
    mixed = mixed_datasets_note({m.name: m.meta.dataset for m in models})
    text = f"{mixed}\n\n{text}" if mixed else text
    return ComparisonReport(table, cams, maps, text)


def _table_row(c: ModelComparison, dataset: str) -> list:
    p = c.prediction
    top3 = ", ".join(f"{label} {prob:.0%}" for label, prob in list(zip(p.labels, p.probs, strict=True))[:3])
    return [c.name, c.arch, dataset, p.labels[0], round(float(p.probs[0]), 4), top3, int(c.params), int(c.flops),
            c.maps_layer]


def training_curves(names: Sequence[str], metric: str,
                    history_of: Callable[[str], Sequence[Mapping]]) -> pd.DataFrame:
    """Long-format curves of `metric` (a key of METRICS), one series per name; the metric is checked before any
    history is read."""
    if metric not in METRICS:
        raise LectureError(f"unknown curve {metric!r}; choose one of: {', '.join(METRICS)}")
    return curves_by_model({name: history_of(name) for name in names}, metric)
