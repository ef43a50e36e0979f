"""Which process owns a file or folder, and whether it still runs: so clean-up at start-up removes only what a dead
process left (temp files, scratch folders, "still training" marks), never the work of one that is alive."""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import socket
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .atomic import atomic_write

OWNER_SUFFIX = ".owner"  # <tmp>/<prefix><pid>-<random>.owner sits beside its folder, not in it (Gradio serves the folder)


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux /proc), None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name in (...) may contain spaces
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    """True while process `pid` of this machine exists; True too where that cannot be told (keep, never delete)."""
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's live process
        return True
    return True


@dataclass(frozen=True)
class ProcessMark:
    """A process by machine, pid and start time: a pid reused after a restart does not pass for the old process."""

    pid: int
    host: str
    started: int | None

    @classmethod
    def this_process(cls) -> ProcessMark:
        """The mark of the calling process."""
        return cls(os.getpid(), socket.gethostname(), _start_time(os.getpid()))

    @classmethod
    def read(cls, path: Path) -> ProcessMark | None:
        """The mark stored in `path`; None when the file is missing or damaged."""
        try:
            raw = json.loads(Path(path).read_bytes())
            mark = cls(raw["pid"], raw["host"], raw.get("started"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        ok = isinstance(mark.pid, int) and isinstance(mark.host, str) and isinstance(mark.started, (int, type(None)))
        return mark if ok else None

    def write(self, path: Path) -> Path:
        """Store the mark in `path` (atomically: a reader sees all of it or nothing)."""
        return atomic_write(path, json.dumps(asdict(self)).encode())

    def alive(self) -> bool:
        """True while the process runs (or when it cannot be told, e.g. it ran on another machine)."""
        if self.host != socket.gethostname():
            return True
        if not pid_alive(self.pid):
            return False
        now = _start_time(self.pid)
        return self.started is None or now is None or now == self.started


def owned_temp_folder(prefix: str) -> Path:
    """A new private folder <tmp>/<prefix><pid>-<random>, its owner written beside it, removed at exit; a folder whose
    process died without removing it is removed by the next start (store.cleanup)."""
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    owner = folder.with_name(folder.name + OWNER_SUFFIX)
    ProcessMark.this_process().write(owner)
    atexit.register(_remove_owned, folder)
    return folder


def _remove_owned(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.with_name(folder.name + OWNER_SUFFIX).unlink()


__all__ = ["OWNER_SUFFIX", "ProcessMark", "owned_temp_folder", "pid_alive"]
