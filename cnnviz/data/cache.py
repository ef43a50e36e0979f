"""In-process cache of whole loaded datasets (the UI reloads the same dataset often)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path

from .registry import Dataset

MAX_ENTRIES = 6  # CIFAR-10 + CIFAR-100 + both MNISTs + a couple of small ones: about 0.5 GB

_CACHE: OrderedDict[Hashable, Dataset] = OrderedDict()
_LOCK = threading.Lock()


def cached(key: Hashable, load: Callable[[], Dataset]) -> Dataset:
    """Return the cached dataset for `key`, loading (outside the lock) and storing it on a miss."""
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    # Not under the lock: a download may take minutes and must not block loads of other datasets.
    ds = load()
    with _LOCK:
        _CACHE[key] = ds
        _CACHE.move_to_end(key)
        while len(_CACHE) > MAX_ENTRIES:
            _CACHE.popitem(last=False)
    return ds


def clear_cache() -> None:
    """Forget every cached dataset."""
    with _LOCK:
        _CACHE.clear()


def fingerprint(paths: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime) of each file, so a replaced or re-downloaded file misses the cache."""
    out = []
    for p in paths:
        st = p.stat()
        out.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(out)
