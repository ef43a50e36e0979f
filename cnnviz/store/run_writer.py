"""runs/<id>/: config.json, metrics.csv (one row per epoch) and model.pt, so a run can be reopened later."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch.nn as nn

from ..data import DatasetInfo
from .atomic import atomic_write
from .checkpoints import build_meta, save_checkpoint

if TYPE_CHECKING:  # types only: the store sits below train
    from ..train.config import TrainConfig
    from ..train.events import EpochEnded

METRIC_FIELDS = ["epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "train_seconds", "epoch_seconds",
                 "images_per_sec"]


class RunLog:
    """Writes one run's folder as the run goes, so a crash still leaves the curves so far."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, info: DatasetInfo, input_size: int):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=False)
        self.cfg, self.info, self.input_size = cfg, info, input_size
        self.history: list[dict] = []
        # Atomic: list_runs takes a folder with a config.json for a run, so that file is whole or absent.
        atomic_write(self.dir / "config.json", json.dumps(
            {"config": cfg.to_dict(), "input_size": input_size, "dataset": asdict(info)}, indent=2).encode())
        with open(self.dir / "metrics.csv", "w", newline="") as f:
            csv.writer(f).writerow(METRIC_FIELDS)

    def epoch(self, ev: EpochEnded) -> None:
        """Append the epoch's row to metrics.csv (and keep it for the checkpoint's history)."""
        row = {k: getattr(ev, k) for k in METRIC_FIELDS}
        self.history.append(row)
        with open(self.dir / "metrics.csv", "a", newline="") as f:
            csv.DictWriter(f, METRIC_FIELDS).writerow(row)

    def save_model(self, model: nn.Module, metrics: dict, final: bool) -> Path:
        """Checkpoint with full metadata into the run folder (atomic)."""
        cfg = self.cfg
        meta = build_meta(
            arch=cfg.arch, dataset=self.info.name, class_names=tuple(self.info.class_names), in_channels=self.info.channels,
            input_size=self.input_size, mean=tuple(self.info.mean), std=tuple(self.info.std), arch_kwargs=dict(cfg.arch_kwargs),
            metrics={**metrics, "complete": final}, history=list(self.history), config=cfg.to_dict(), seed=cfg.seed)
        return save_checkpoint(model, meta, self.dir / "model.pt")


def read_history(run_dir: Path) -> list[dict]:
    """The per-epoch metrics of a run folder, as floats (epoch and step as ints)."""
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (int(float(v)) if k in ("epoch", "step") else float(v)) for k, v in row.items()} for row in rows]
