"""load_dataset(): resolve, load (cached per process), subset, and hand out tensors the caller owns."""
from __future__ import annotations

import os

import numpy as np

from .registry import Dataset, LoadRequest, get_source, resolve_data_dir
from .sampling import copy_split, subset_split, validate_subset


def load_dataset(name: str, *, data_dir: str | os.PathLike | None = None, subset: int | None = None, seed: int = 0,
                 download: bool = True, path: str | None = None, size: int | None = None) -> Dataset:
    """Load a dataset by name; `subset=N` keeps N stratified samples per split (the test split at most all of it).

    Whole datasets are cached in-process. The tensors returned are always the caller's own copies
    (a clone, or the fresh tensors a subset makes), so writing into them never corrupts the cache
    for the next caller; the copy costs tens of milliseconds even for CIFAR. `path` and `size` are
    read only by the 'folder' dataset; the others ignore them.
    """
    source = get_source(name)
    n = validate_subset(subset)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")
    req = LoadRequest(data_dir=resolve_data_dir(data_dir), download=bool(download), seed=int(seed), path=path, size=size)
    full = source.load(req)
    if n is None:
        return Dataset(info=full.info, train=copy_split(full.train), test=copy_split(full.test))
    return Dataset(info=full.info, train=subset_split(full.train, n, int(seed), 0),
                   test=subset_split(full.test, n, int(seed), 1))
