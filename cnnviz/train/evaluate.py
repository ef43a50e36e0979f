"""Evaluation: one pass over a split (loss, accuracy, confusion), per-class accuracy, and a saved checkpoint's test score."""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
import torch.nn as nn

from ..data import load_dataset
from ..store.checkpoints import LoadedModel
from .device_data import DeviceData

EVAL_BATCH = 1000


@torch.no_grad()
def evaluate(model: nn.Module, data: DeviceData, num_classes: int, criterion: nn.Module,
             autocast: Callable[[], AbstractContextManager], batch: int = EVAL_BATCH) -> tuple[float, float, torch.Tensor]:
    """Loss, accuracy and confusion matrix [true, predicted] over a whole split, `batch` images at a time."""
    model.eval()
    loss_sum = torch.zeros((), device=data.labels.device)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.long, device=data.labels.device)
    for start in range(0, len(data), batch):
        idx = torch.arange(start, min(start + batch, len(data)), device=data.labels.device)
        x, y = data.batch(idx)
        with autocast():
            out = model(x)
        loss_sum += criterion(out.float(), y) * len(y)
        confusion += torch.bincount(y * num_classes + out.argmax(1), minlength=num_classes * num_classes)
    confusion = confusion.view(num_classes, num_classes).cpu()
    n = max(1, len(data))
    return float(loss_sum) / n, float(confusion.diag().sum()) / n, confusion


def per_class_accuracy(confusion: torch.Tensor) -> list[float]:
    """Recall per true class from a confusion matrix [true, predicted]; 0.0 for a class with no test images."""
    return (confusion.diag().float() / confusion.sum(1).clamp(min=1).float()).tolist()


def evaluate_checkpoint(loaded: LoadedModel, data_dir: str | None = None, subset: int | None = None) -> dict:
    """Test loss, accuracy, confusion matrix and per-class accuracy, as plain data."""
    meta = loaded.meta
    cfg = meta.config or {}
    ds = load_dataset(meta.dataset, data_dir=data_dir or cfg.get("data_dir"), subset=subset,
                      seed=int(cfg.get("seed", 0)), path=cfg.get("folder_path"))
    if ds.info.num_classes != meta.num_classes:
        raise ValueError(f"{loaded.name} has {meta.num_classes} classes but {meta.dataset} now has {ds.info.num_classes}")
    data = DeviceData(ds.test, meta.mean, meta.std, meta.input_size, torch.device("cpu"))
    loss, acc, confusion = evaluate(loaded.model, data, meta.num_classes, nn.CrossEntropyLoss(), contextlib.nullcontext)
    return {"checkpoint": loaded.name, "dataset": meta.dataset, "num_test": len(data), "test_loss": loss, "test_acc": acc,
            "class_names": list(meta.class_names), "confusion": confusion.tolist(), "per_class_acc": per_class_accuracy(confusion)}
