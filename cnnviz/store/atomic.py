"""The one atomic file write: readers see the old file or the whole new one, never a part, and a failed write leaves
no temp file behind."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

MODE = 0o644  # mkstemp makes 0600 files; what we write (checkpoints, images, time-lapses) is meant to be read by others

TEMP_SUFFIX = ".tmp"
TEMP_NAME = re.compile(r"^\..+-(?P<pid>\d+)-[a-z0-9_]+\.tmp$")  # .<name>-<pid>-<mkstemp's random part>.tmp

Writer = Callable[[BinaryIO], object]


def atomic_write(path: str | os.PathLike, data: bytes | Writer, *, durable: bool = False) -> Path:
    """Write `data` (bytes, or a function that writes into a binary file) to `path` via a temp file + os.replace.

    The temp file sits in the same folder (os.replace is only atomic within one file system) and is hidden and ends in
    .tmp, so folder listings (`*.pt`, `*/config.json`) never pick it up. It is removed on any error, KeyboardInterrupt
    included; its name carries the writer's pid, so the next start removes what a killed process left (store.cleanup).
    `durable` also fsyncs the file before the rename and the folder after it, so a power cut leaves the old or the new
    content rather than an empty file: worth it for results (checkpoints), not for caches.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-{os.getpid()}-", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                data(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_folder(path.parent)
    return path


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike, *, durable: bool = True) -> Path:
    """Copy `src` to `dst` atomically (durable by default: a copy is usually a result being kept)."""
    with open(src, "rb") as source:
        return atomic_write(dst, lambda f: shutil.copyfileobj(source, f), durable=durable)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; folders cannot be opened for fsync on every platform (Windows), so try."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


__all__ = ["TEMP_NAME", "TEMP_SUFFIX", "atomic_write", "atomic_copy"]
