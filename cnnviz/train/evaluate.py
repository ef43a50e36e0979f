"""Evaluate a saved checkpoint on its dataset's test split."""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from ..data import load_dataset
from ..store.checkpoints import LoadedModel
from .device_data import DeviceData
from .engine import evaluate


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
    per_class = (confusion.diag().float() / confusion.sum(1).clamp(min=1).float()).tolist()
    return {"checkpoint": loaded.name, "dataset": meta.dataset, "num_test": len(data), "test_loss": loss, "test_acc": acc,
            "class_names": list(meta.class_names), "confusion": confusion.tolist(), "per_class_acc": per_class}
