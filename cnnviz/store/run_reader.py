"""Finished runs in runs/: list them and reopen one (curves, time-lapse, confusion) with no GPU and no training."""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoints import CheckpointError, load_checkpoint
from .paths import runs_dir
from .run_writer import read_history
from .timelapse_file import FILE as TIMELAPSE_FILE
from .timelapse_file import Timelapse, load_timelapse

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    dir: Path
    config: dict
    history: list[dict]
    checkpoint: Path | None
    has_timelapse: bool

    @property
    def label(self) -> str:
        acc = f", test acc {self.history[-1]['val_acc']:.3f}" if self.history else ""
        return f"{self.run_id} ({self.config.get('arch')} on {self.config.get('dataset')}, {len(self.history)} epochs{acc})"


def run_path(run_id: str, root: Path | None = None) -> Path:
    """<root>/<run_id> (root: runs/) for a safe id (no separators, no '..')."""
    if not _RUN_ID.match(run_id) or ".." in run_id:
        raise ValueError(f"invalid run id {run_id!r}")
    return (root or runs_dir()) / run_id


def read_run(run_dir: Path) -> RunRecord:
    """A run folder's config, per-epoch metrics, checkpoint and time-lapse presence."""
    config = json.loads((run_dir / "config.json").read_text())["config"]
    history = read_history(run_dir) if (run_dir / "metrics.csv").exists() else []
    model = run_dir / "model.pt"
    return RunRecord(run_dir.name, run_dir, config, history, model if model.exists() else None,
                     (run_dir / TIMELAPSE_FILE).exists())


def list_runs(roots: Iterable[Path] | None = None) -> list[RunRecord]:
    """Every readable run in the roots (default: runs/), newest first (ids start with the date and time)."""
    records = []
    folders = [d for root in ([runs_dir()] if roots is None else roots) for d in Path(root).glob("*/config.json")
               if not d.parent.name.startswith(".")]  # .deleting-<id>: a run being removed
    for d in sorted(folders, key=lambda d: d.parent.name, reverse=True):
        try:
            records.append(read_run(d.parent))
        except (OSError, ValueError, KeyError):
            continue  # a half-written or foreign folder is not a run
    return records


@dataclass(frozen=True)
class Replay:
    record: RunRecord
    timelapse: Timelapse | None
    confusion: np.ndarray | None
    class_names: tuple[str, ...]


def load_replay(run_id: str, root: Path | None = None) -> Replay:
    """Everything needed to show a finished run again: curves, time-lapse frames and confusion matrix."""
    record = read_run(run_path(run_id, root))
    timelapse = load_timelapse(record.dir) if record.has_timelapse else None
    confusion, names = None, timelapse.class_names if timelapse else ()
    if record.checkpoint is not None:
        try:
            meta = load_checkpoint(record.checkpoint).meta
            names = meta.class_names
            if "confusion" in meta.metrics:
                confusion = np.array(meta.metrics["confusion"])
        except CheckpointError:
            pass  # curves and time-lapse still replay without the weights
    return Replay(record, timelapse, confusion, tuple(names))
