"""A temporary folder for files the app hands out (downloads, GIFs): one per app, made on first use, not at build time."""
from __future__ import annotations

import threading
from pathlib import Path

from .owner import owned_temp_folder


class ScratchFolder:
    """`path()` makes the folder once (thread-safe) and returns it; Gradio copies what it serves into its own cache.

    The folder is <tmp>/<prefix><pid>-<random>: removed at exit, and by the next start when the process was killed.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._path: Path | None = None
        self._lock = threading.Lock()  # two requests may ask for it at once

    def path(self) -> Path:
        """The folder, created on the first call."""
        with self._lock:
            if self._path is None:
                self._path = owned_temp_folder(self.prefix)
            return self._path
