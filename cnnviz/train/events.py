"""What a training run reports: small frozen dataclasses of plain numbers, never tensors."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Event:
    """Base class; `kind` is the JSON name of the event."""

    kind = "event"

    def to_dict(self) -> dict:
        return {"event": self.kind, **asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    run_id: str
    run_dir: str
    config: dict
    device: str
    num_train: int
    num_test: int
    input_size: int
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    params: int
    class_names: tuple[str, ...]
    kind = "run_started"


@dataclass(frozen=True)
class Progress(Event):
    step: int  # optimiser steps done so far, over the whole run
    epoch: int  # 1-based epoch in progress
    batch: int  # batches done in this epoch
    steps_per_epoch: int
    loss: float  # mean training loss since the previous Progress event
    acc: float  # training accuracy since the previous Progress event
    images_per_sec: float
    eta_seconds: float
    lr: float
    kind = "progress"


@dataclass(frozen=True)
class EpochEnded(Event):
    epoch: int
    step: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    train_seconds: float  # time in optimiser steps only
    epoch_seconds: float  # including evaluation
    images_per_sec: float
    kind = "epoch_end"


@dataclass(frozen=True)
class Paused(Event):
    step: int
    epoch: int
    kind = "paused"


@dataclass(frozen=True)
class Resumed(Event):
    step: int
    epoch: int
    kind = "resumed"


@dataclass(frozen=True)
class Finished(Event):
    run_id: str
    checkpoint: str | None  # None when saving failed (see warning)
    test_loss: float
    test_acc: float
    confusion: tuple[tuple[int, ...], ...]  # rows: true class, columns: predicted class
    per_class_acc: tuple[float, ...]
    seconds: float
    warning: str | None = None
    kind = "finished"


@dataclass(frozen=True)
class Stopped(Event):
    run_id: str
    epoch: int
    step: int
    checkpoint: str | None  # the weights so far, saved so they can still be explored
    message: str
    kind = "stopped"


@dataclass(frozen=True)
class Failed(Event):
    message: str  # what went wrong and what to change
    epoch: int = 0
    step: int = 0
    run_id: str = ""
    kind = "failed"


END_EVENTS = (Finished, Stopped, Failed)
