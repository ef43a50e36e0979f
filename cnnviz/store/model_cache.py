"""The server's loaded models: a small LRU shared by every session, opened only by names the user's workspace lists."""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from ..models import WeightsUnavailable
from .checkpoints import CheckpointError, LoadedModel, load_checkpoint
from .hub_weights import is_hub_name, missing_message, weights_file
from .workspace import Workspace

MODEL_CACHE_SIZE = 4


class ModelCache:
    """LRU of LoadedModel keyed by (path, mtime, size): a re-saved file is reloaded; models are only read from disk,
    so a prediction never sees the weights of a run that is still training."""

    def __init__(self, size: int = MODEL_CACHE_SIZE):
        self.size = size
        self._items: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path) -> LoadedModel:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        loaded = load_checkpoint(path)  # outside the lock: loading a big model must not block other look-ups
        with self._lock:
            self._items[key] = loaded
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return loaded

    def open(self, workspace: Workspace, name: str | None) -> LoadedModel:
        """The checkpoint called `name`, if `workspace` may see it (a name, never a path from the request)."""
        if not name:
            raise CheckpointError("choose a checkpoint first (train one in the Train tab, or pick a shipped one)")
        if is_hub_name(name):  # torchvision's ImageNet weights, from the torch hub cache
            path = weights_file(name)
            if not path.is_file():
                raise WeightsUnavailable(missing_message(name))
        else:
            path = workspace.find_checkpoint(str(name))
        if path is None:
            raise CheckpointError(f"no checkpoint called {name!r}; refresh the page to see the current list")
        try:
            return self.get(path)
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint {name!r} was removed from disk") from None
