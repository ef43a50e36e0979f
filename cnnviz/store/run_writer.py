"""runs/<id>/: config.json, metrics.csv (one row per epoch) and model.pt, so a run can be reopened later.

Every file is written atomically (store.atomic), metrics.csv too (rewritten whole after each epoch: a few KB), so a full
disk or a killed process leaves the previous version, never a cut-off row. A write that fails does not stop the
training: it becomes `RunLog.problem`, which the end event reports.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
import weakref
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch.nn as nn

from ..data import DatasetInfo
from .atomic import atomic_write
from .checkpoints import build_meta, save_checkpoint
from .disk import write_problem
from .run_state import end_training, mark_training

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
        self.problem: str | None = None  # the latest write that failed, in words (None: everything so far is on disk)
        try:
            mark_training(self.dir)  # first: a folder with a config.json and no mark would read as a failed run
            # Atomic: list_runs takes a folder with a config.json for a run, so that file is whole or absent.
            atomic_write(self.dir / "config.json", json.dumps(
                {"config": cfg.to_dict(), "input_size": input_size, "dataset": asdict(info)}, indent=2).encode())
            self._write_metrics()
        except BaseException:
            end_training(self.dir, None)
            shutil.rmtree(self.dir, ignore_errors=True)  # half a run folder is no run
            raise
        # A run that ends without end() (diverged, out of memory, abandoned) stops reading as "training" once its
        # engine lets go of this log; a killed process leaves a mark that readers ignore and the next start removes.
        self._finalizer = weakref.finalize(self, end_training, self.dir, None)

    def _write_metrics(self) -> None:
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, METRIC_FIELDS)
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write(self.dir / "metrics.csv", text.getvalue().encode("utf-8"))

    def epoch(self, ev: EpochEnded) -> None:
        """Add the epoch's row to metrics.csv (and keep it for the checkpoint's history); a failed write is noted."""
        self.history.append({k: getattr(ev, k) for k in METRIC_FIELDS})
        try:
            self._write_metrics()
        except OSError as exc:  # the rows stay in memory: the next epoch's write (or the checkpoint) has them all
            self.problem = f"the curves after epoch {ev.epoch} were not saved ({write_problem(exc)})"
        else:
            self.problem = None

    def save_model(self, model: nn.Module, metrics: dict, final: bool) -> Path:
        """Checkpoint with full metadata into the run folder (atomic); OSError when it cannot be written."""
        cfg = self.cfg
        meta = build_meta(
            arch=cfg.arch, dataset=self.info.name, class_names=tuple(self.info.class_names), in_channels=self.info.channels,
            input_size=self.input_size, mean=tuple(self.info.mean), std=tuple(self.info.std), arch_kwargs=dict(cfg.arch_kwargs),
            metrics={**metrics, "complete": final}, history=list(self.history), config=cfg.to_dict(), seed=cfg.seed)
        return save_checkpoint(model, meta, self.dir / "model.pt")

    def end(self, state: str, warning: str | None = None) -> str | None:
        """The run ended normally (`state`: "finished" or "stopped"); returns `warning` joined with any write problem."""
        self._finalizer.detach()
        # Only a run without weights needs to say how it ended: with model.pt it reads as finished anyway.
        end_training(self.dir, None if (self.dir / "model.pt").is_file() else state)
        return "; ".join(w for w in (warning, self.problem) if w) or None
