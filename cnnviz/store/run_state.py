"""Whether a run folder is still being written, and how its run ended, so menus can say "training now", "failed" or
"stopped before training" instead of guessing from a missing model.pt.

runs/<id>/training.json  the writing process (store.owner.ProcessMark); removed when the run ends, and ignored when
                         that process is gone (a killed server), so a crash never leaves a run "training" for ever.
runs/<id>/status.json    {"state": "finished" | "stopped"}, written when a run ends normally without weights (a full
                         disk, a stop before the first step); a run with neither model.pt nor this file failed
                         (diverged, out of memory, killed).
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

from .atomic import atomic_write
from .owner import ProcessMark

MARKER = "training.json"
STATUS = "status.json"
ENDED = ("finished", "stopped")

# Runs this process is writing now. The server outlives its runs, so its own live pid proves nothing: a run of this
# process is training while its writer is registered here (run_writer.RunLog registers and unregisters).
_live: set[str] = set()
_lock = threading.Lock()


def _key(run_dir: Path) -> str:
    return os.path.realpath(run_dir)


def mark_training(run_dir: Path) -> None:
    """Record that this process writes `run_dir` (before its config.json, so it is never listed as failed)."""
    with _lock:
        _live.add(_key(run_dir))
    ProcessMark.this_process().write(Path(run_dir) / MARKER)


def end_training(run_dir: Path, state: str | None) -> None:
    """The run is over: record how (`state` in ENDED; None for a failure, or nothing to record) and drop the mark."""
    with _lock:
        _live.discard(_key(run_dir))
    if state is not None:
        with contextlib.suppress(OSError):  # a full disk: the run then reads as failed, which its message explains
            atomic_write(Path(run_dir) / STATUS, json.dumps({"state": state}).encode())
    with contextlib.suppress(OSError):
        (Path(run_dir) / MARKER).unlink()


def is_training(run_dir: Path) -> bool:
    """True while a live process writes the run (its mark exists and that process, or writer, is still there)."""
    mark = ProcessMark.read(Path(run_dir) / MARKER)
    if mark is None:
        return False
    if mark == ProcessMark.this_process():
        with _lock:
            return _key(run_dir) in _live
    return mark.alive()


def stale_mark(run_dir: Path) -> bool:
    """True when `run_dir` has a training mark whose writer is gone (clean-up removes it)."""
    return (Path(run_dir) / MARKER).exists() and not is_training(run_dir)


def ended_state(run_dir: Path) -> str | None:
    """"finished" or "stopped" as the run recorded it; None when it recorded neither (or the file is damaged)."""
    try:
        raw = json.loads((Path(run_dir) / STATUS).read_bytes())
    except (OSError, ValueError):
        return None
    state = raw.get("state") if isinstance(raw, dict) else None
    return state if state in ENDED else None


__all__ = ["ENDED", "MARKER", "STATUS", "end_training", "ended_state", "is_training", "mark_training", "stale_mark"]
