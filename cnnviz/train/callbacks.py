"""Callbacks: code that runs at fixed points of fit() without the engine knowing what it does (fastai/Lightning style).

    fit(cfg, callbacks=[TimelapseCallback(k=6)])   # the default when callbacks is None: TimelapseCallback()
    fit(cfg, callbacks=[])                          # nothing extra: no time-lapse

The engine calls, for each callback in list order:
  on_run_start(run)         once, after RunStarted and before the first batch (the untrained model: "epoch 0");
  on_epoch_end(run, epoch)  after each epoch's validation pass, before its EpochEnded event.
The model is in eval mode during both; a callback must not change its weights or the run's state. Its time counts
into EpochEnded.epoch_seconds (not train_seconds). An exception from a callback ends the run like one from the engine.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
import torch.nn as nn

from ..data import DatasetInfo, Split
from ..images import InputSpec
from ..lecture.timelapse import TimelapseRecorder
from .config import TrainConfig


class RunState(Protocol):
    """What a callback may read from the running fit() (read-only)."""

    cfg: TrainConfig
    model: nn.Module  # on the training device, in eval mode while a callback runs
    info: DatasetInfo
    spec: InputSpec  # how images become this model's input (channels, size, mean, std)
    test_split: Split  # the test images as uint8 [N,C,H,W] on the CPU, with labels
    epoch: int

    @property
    def run_dir(self) -> Path | None:
        """The run folder, or None when nothing is saved (save=False or an unwritable runs folder)."""


class Callback:
    """Base class: override the hooks you need; both do nothing here."""

    def on_run_start(self, run: RunState) -> None:
        """Once before training (the model is untrained)."""

    def on_epoch_end(self, run: RunState, epoch: int) -> None:
        """After epoch `epoch` (1-based) has been validated."""


class TimelapseCallback(Callback):
    """The learning time-lapse: `k` test images (plus `probe_image`) explained at epoch 0 and after every epoch, saved
    each time as run_dir/timelapse.npz. Does nothing when the run saves nothing."""

    def __init__(self, k: int = 8, probe_image: torch.Tensor | None = None):
        if k < 1:
            raise ValueError(f"a time-lapse needs at least one probe image, not k={k}; pass callbacks=[] for none")
        self.k, self.probe_image = k, probe_image  # probe_image: uint8 [C,H,W] at the dataset's size
        self.recorder: TimelapseRecorder | None = None  # the latest run's, kept for callers that want its result

    def on_run_start(self, run: RunState) -> None:
        """Choose the probes (by the run's seed) and record the untrained model as epoch 0."""
        self.recorder = None
        if run.run_dir is None:
            return
        self.recorder = TimelapseRecorder(run.test_split, run.spec, run.info.class_names, k=self.k, seed=run.cfg.seed,
                                          arch=run.cfg.arch, extra=self.probe_image)
        self._record(run, 0)

    def on_epoch_end(self, run: RunState, epoch: int) -> None:
        """Record epoch `epoch` and save the time-lapse so far."""
        if self.recorder is not None:
            self._record(run, epoch)

    def _record(self, run: RunState, epoch: int) -> None:
        self.recorder.record(run.model, epoch)
        try:
            self.recorder.save(run.run_dir)
        except OSError:
            pass  # a full disk must not end the run; the checkpoint save reports it


__all__ = ["Callback", "RunState", "TimelapseCallback"]
