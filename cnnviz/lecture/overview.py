"""An architecture fed one dataset's images, as numbers: the registry's description, the input shape the one rule
(`models.input_shape`) gives, the per-layer summary and its totals."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch.nn as nn

from ..data import DatasetInfo, get_dataset_info
from ..models import InputShape, ModelInfo, get_model, get_model_info, input_shape, scaled_variants, width_label
from .summary import Summary, summarize


@dataclass(frozen=True)
class ArchitectureOverview:
    """`arch` built for `dataset`: its metadata, input shape, model (random weights) and per-layer summary."""

    info: ModelInfo
    dataset: DatasetInfo
    shape: InputShape
    model: nn.Module
    summary: Summary

    @property
    def convs(self) -> int:
        """Number of Conv2d layers."""
        return sum(r.type == "Conv2d" for r in self.summary.rows)

    @property
    def fully_connected(self) -> int:
        """Number of Linear layers."""
        return sum(r.type == "Linear" for r in self.summary.rows)

    @property
    def largest_rf(self) -> int | None:
        """Largest receptive field (px) of any layer that has one (the last conv/pool layer's)."""
        return max((r.rf for r in self.summary.rows if r.rf is not None), default=None)


@functools.lru_cache(maxsize=16)
def architecture_overview(arch: str, dataset: str) -> ArchitectureOverview:
    """`arch` on `dataset`'s input shape (ImageNet models as published); cached per pair, weights never trained."""
    shape = input_shape(arch, dataset)
    model = get_model(arch, shape.channels, shape.num_classes, shape.size)
    s = summarize(model, (shape.channels, shape.size, shape.size))
    return ArchitectureOverview(get_model_info(arch), get_dataset_info(dataset), shape, model, s)


@dataclass(frozen=True)
class WidthCount:
    """One width of a family's network on a dataset: parameters and FLOPs per image."""

    arch: str
    title: str
    width: str  # "full width", "1/4 width"
    params: int
    flops: int


def width_counts(arch: str, dataset: str) -> tuple[WidthCount, ...]:
    """The full-width network and its width-scaled variants (full first) when `arch` is either; else empty."""
    info = get_model_info(arch)
    full = info.full_width or arch
    names = [full, *scaled_variants(full)]
    if len(names) == 1:
        return ()
    out = []
    for name in names:
        ov = architecture_overview(name, dataset)
        out.append(WidthCount(name, ov.info.title, width_label(ov.info.width), ov.summary.total_params,
                              ov.summary.total_flops))
    return tuple(out)


__all__ = ["ArchitectureOverview", "WidthCount", "architecture_overview", "width_counts"]
