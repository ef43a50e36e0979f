"""Finished runs in runs/: list them and reopen one (curves, time-lapse, confusion) with no GPU and no training.

Run folders are data from disk, not promises: a file cut off by a full disk, a config.json from another tool or a
non-UTF-8 file makes that run unreadable (RunReadError, with the reason), never the whole listing.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoints import CheckpointError, load_checkpoint
from .listing import Listing, Skipped
from .paths import runs_dir
from .run_state import ended_state, is_training
from .timelapse_file import FILE as TIMELAPSE_FILE
from .timelapse_file import Timelapse, TimelapseError, load_timelapse

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_FILE_BYTES = 5_000_000  # config.json and metrics.csv are a few KB; a larger one is not ours
NEEDED = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")  # what the curves and labels read
# How each state reads in a menu label ("" for a run that finished and has its weights).
STATE_NOTES = {"training": "training now", "failed": "failed: no weights saved",
               "empty": "stopped before training: nothing saved", "unsaved": "finished, but its weights were not saved"}


class RunReadError(ValueError):
    """A run folder that cannot be read; the message says which file and what is wrong with it."""


@dataclass(frozen=True)
class RunRecord:
    """One readable run folder: its config, per-epoch metrics, files and how it stands."""

    run_id: str
    dir: Path
    config: dict
    history: list[dict]
    checkpoint: Path | None
    has_timelapse: bool
    # "finished" (or stopped, with weights), "training", "failed" (ended without weights: diverged, out of memory or
    # killed), "empty" (stopped before any weights were saved), "unsaved" (finished, but the weights could not be written)
    state: str = "finished"

    @property
    def label(self) -> str:
        """Menu text: id, architecture, dataset, epochs, final test accuracy, and how it ended when not normally."""
        acc = f", test acc {self.history[-1]['val_acc']:.3f}" if self.history else ""
        note = f", {STATE_NOTES[self.state]}" if self.state in STATE_NOTES else ""
        return (f"{self.run_id} ({self.config.get('arch')} on {self.config.get('dataset')}, {len(self.history)} "
                f"epochs{acc}{note})")


def run_path(run_id: str, root: Path | None = None) -> Path:
    """<root>/<run_id> (root: runs/) for a safe id (no separators, no '..')."""
    if not _RUN_ID.match(run_id) or ".." in run_id:
        raise ValueError(f"invalid run id {run_id!r}")
    return (root or runs_dir()) / run_id


def _read_text(path: Path) -> str:
    """A small UTF-8 text file of a run folder."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise RunReadError(f"{path.name} is larger than {MAX_FILE_BYTES // 1_000_000} MB")
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise RunReadError(f"{path.name} is not UTF-8 text (damaged, or written by another program)") from None
    except OSError as exc:
        raise RunReadError(f"{path.name} cannot be read ({exc.strerror or exc})") from None


def _number(key: str, value: str, line: int) -> float | int:
    try:
        x = float(value)
        return int(x) if key in ("epoch", "step") else x
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf); ValueError: int(nan), ''
        raise RunReadError(f"metrics.csv line {line}: {key} is {value!r}, not a number") from None


def read_history(run_dir: Path) -> list[dict]:
    """The per-epoch metrics of a run folder, as floats (epoch and step as ints); RunReadError when malformed."""
    reader = csv.DictReader(io.StringIO(_read_text(Path(run_dir) / "metrics.csv"), newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise RunReadError(f"metrics.csv is not a CSV table ({exc})") from None
    missing = [k for k in NEEDED if k not in (reader.fieldnames or [])]
    if rows and missing:
        raise RunReadError(f"metrics.csv has no column {missing[0]!r}")
    history = []
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values():  # fewer or more values than columns: a row cut off mid-write
            raise RunReadError(f"metrics.csv line {line} is cut off (the disk may have been full, or the program was "
                               "stopped while writing it)")
        history.append({k: _number(k, v, line) for k, v in row.items()})
    return history


def _read_config(run_dir: Path) -> dict:
    text = _read_text(run_dir / "config.json")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested lists
        raise RunReadError(f"config.json is not valid JSON ({str(exc)[:100]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise RunReadError("config.json does not describe a cnnviz run (no 'config' object in it)")
    return doc["config"]


def run_state(run_dir: Path, has_weights: bool, all_epochs: bool = False) -> str:
    """How the run in `run_dir` stands (see RunRecord.state); `all_epochs`: metrics.csv has every epoch it planned."""
    if is_training(run_dir):
        return "training"
    if has_weights:
        return "finished"
    ended = ended_state(run_dir) or ("finished" if all_epochs else None)  # a full disk may have kept status.json out
    return {"stopped": "empty", "finished": "unsaved"}.get(ended, "failed")


def read_run(run_dir: Path) -> RunRecord:
    """A run folder's config, per-epoch metrics, checkpoint and time-lapse presence; RunReadError when malformed."""
    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    history = read_history(run_dir) if (run_dir / "metrics.csv").exists() else []
    model = run_dir / "model.pt"
    has_model = model.is_file()
    all_epochs = bool(history) and config.get("epochs") == history[-1]["epoch"]
    return RunRecord(run_dir.name, run_dir, config, history, model if has_model else None,
                     (run_dir / TIMELAPSE_FILE).is_file(), run_state(run_dir, has_model, all_epochs))


def list_runs(roots: Iterable[Path] | None = None) -> Listing[RunRecord]:
    """Every readable run in the roots (default: runs/), newest first (ids start with the date and time); the ones that
    cannot be read are in the listing's `skipped`, with the reason."""
    records, skipped = [], []
    folders = [d.parent for root in ([runs_dir()] if roots is None else roots) for d in Path(root).glob("*/config.json")
               if not d.parent.name.startswith(".")]  # .deleting-<id>: a run being removed
    for folder in sorted(folders, key=lambda d: d.name, reverse=True):
        try:
            records.append(read_run(folder))
        except (OSError, ValueError) as exc:
            skipped.append(Skipped(folder.name, folder, str(exc)))
    return Listing(records, skipped)


@dataclass(frozen=True)
class Replay:
    record: RunRecord
    timelapse: Timelapse | None
    confusion: np.ndarray | None
    class_names: tuple[str, ...]
    problem: str | None = None  # what could not be read (the time-lapse, ...), in words; the rest still replays


def _confusion(raw: object, classes: int) -> np.ndarray | None:
    """The checkpoint's confusion matrix when it is a classes x classes table of counts, else None."""
    try:
        m = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    ok = m.ndim == 2 and m.shape == (classes, classes) and bool(np.isfinite(m).all()) and bool((m >= 0).all())
    return m.astype(np.int64) if ok else None


def load_replay(run_id: str, root: Path | None = None) -> Replay:
    """Everything needed to show a finished run again: curves, time-lapse frames and confusion matrix; a damaged
    time-lapse or checkpoint leaves the rest (and `problem` says what was left out)."""
    record = read_run(run_path(run_id, root))
    timelapse, problem = None, None
    if record.has_timelapse:
        try:
            timelapse = load_timelapse(record.dir)
        except TimelapseError as exc:
            problem = str(exc)
    confusion, names = None, timelapse.class_names if timelapse else ()
    if record.checkpoint is not None:
        try:
            meta = load_checkpoint(record.checkpoint).meta
            names = meta.class_names
            confusion = _confusion(meta.metrics.get("confusion"), len(names))
        except CheckpointError:
            pass  # curves and time-lapse still replay without the weights
    return Replay(record, timelapse, confusion, tuple(names), problem)


__all__ = ["NEEDED", "Replay", "RunReadError", "RunRecord", "list_runs", "load_replay", "read_history", "read_run",
           "run_path", "run_state"]
