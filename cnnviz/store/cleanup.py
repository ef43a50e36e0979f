"""Start-up: remove what killed processes left behind, and say which runs and checkpoints cannot be read.

A server killed mid-save leaves hidden temp files (store.atomic names them .<file>-<pid>-<random>.tmp), a half-deleted
run (.deleting-<id>), a "training" mark, and its private temp folders (<tmp>/cnnviz-*-<pid>-<random>, see
store.owner). Each is removed only when the process that made it is gone, so two servers (or a server and a
command-line run) sharing runs/ never delete each other's work.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .atomic import TEMP_NAME, TEMP_SUFFIX
from .checkpoints import list_checkpoints
from .listing import Skipped
from .owner import OWNER_SUFFIX, ProcessMark, pid_alive
from .paths import checkpoints_dir, runs_dir
from .run_reader import list_runs
from .run_state import MARKER, stale_mark
from .workspace import USERS

log = logging.getLogger("cnnviz.store")
OLD_TEMP_SECONDS = 3600  # a temp file with no pid in its name (older cnnviz) this old is no save in progress
TEMP_FOLDER_PREFIX = "cnnviz-"  # every folder made by store.owner.owned_temp_folder starts so


def _orphaned_temp_file(path: Path, now: float) -> bool:
    m = TEMP_NAME.match(path.name)
    if m:
        return not pid_alive(int(m["pid"]))
    with contextlib.suppress(OSError):
        return now - path.stat().st_mtime > OLD_TEMP_SECONDS
    return False


def _remove(path: Path, removed: list[Path]) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return  # another process cleaned it first
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)
        return
    removed.append(path)


def run_roots(root: Path | None = None) -> list[Path]:
    """runs/ and every user's runs/users/<digest>/ (the server owner's view: everything on disk)."""
    root = Path(root or runs_dir())
    users = root / USERS
    return [root] + (sorted(p for p in users.iterdir() if p.is_dir()) if users.is_dir() else [])


def clean_folder(folder: Path, now: float | None = None) -> list[Path]:
    """Remove the orphaned temp files in `folder` (not below it); returns what was removed."""
    removed: list[Path] = []
    now = time.time() if now is None else now
    with contextlib.suppress(OSError):
        for p in sorted(Path(folder).glob(f".*{TEMP_SUFFIX}")):
            if p.is_file() and _orphaned_temp_file(p, now):
                _remove(p, removed)
    return removed


def clean_runs(root: Path | None = None) -> list[Path]:
    """Orphaned temp files, half-deleted runs and stale training marks in every run root; returns what was removed."""
    removed: list[Path] = []
    for base in run_roots(root):
        with contextlib.suppress(OSError):
            for folder in sorted(p for p in base.iterdir() if p.is_dir() and p.name != USERS):
                if folder.name.startswith(".deleting-"):
                    _remove(folder, removed)  # a delete that was interrupted: the run is already gone from the menus
                    continue
                removed += clean_folder(folder)
                if stale_mark(folder):
                    _remove(folder / MARKER, removed)
        removed += clean_folder(base)
    return removed


def clean_temp_folders(tmp_root: Path | None = None) -> list[Path]:
    """Private temp folders (Gradio uploads, downloads, GIFs) whose process is gone, with their owner files."""
    removed: list[Path] = []
    tmp = Path(tmp_root or tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for owner in sorted(tmp.glob(f"{TEMP_FOLDER_PREFIX}*{OWNER_SUFFIX}")):
            folder = owner.with_name(owner.name.removesuffix(OWNER_SUFFIX))
            mark = ProcessMark.read(owner)
            mine = hasattr(os, "getuid") and owner.stat().st_uid == os.getuid()  # never another user's files
            if mark is not None and mine and not mark.alive():
                if folder.exists():
                    _remove(folder, removed)
                _remove(owner, removed)
    return removed


@dataclass(frozen=True)
class StartupReport:
    """What the start-up check removed and which runs and checkpoints it found unreadable."""

    removed: tuple[Path, ...]
    skipped_runs: tuple[Skipped, ...]
    skipped_checkpoints: tuple[Skipped, ...]


def start_up(tmp_root: Path | None = None) -> StartupReport:
    """Clean up after killed processes, then list every run and checkpoint once and log the unreadable ones."""
    removed = clean_runs() + clean_folder(checkpoints_dir()) + clean_temp_folders(tmp_root)
    runs = list_runs(run_roots())
    checkpoints = list_checkpoints(run_roots())
    if removed:
        log.info("removed %d file(s) left by stopped processes: %s", len(removed), ", ".join(map(str, removed[:5])))
    for s in runs.skipped:
        log.warning("run %s left out: it cannot be read (%s); fix or delete %s", s.name, s.reason, s.path)
    for s in checkpoints.skipped:
        log.warning("checkpoint %s left out: %s (%s)", s.name, s.reason, s.path)
    return StartupReport(tuple(removed), tuple(runs.skipped), tuple(checkpoints.skipped))


__all__ = ["StartupReport", "clean_folder", "clean_runs", "clean_temp_folders", "run_roots", "start_up"]
