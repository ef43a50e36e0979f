"""Stratified sampling: per-class subsets and train/test splits, deterministic given a seed."""
from __future__ import annotations

import numpy as np
import torch

from .registry import Split


def validate_subset(subset: object) -> int | None:
    """Return subset as an int (or None); anything but a positive int is a clear ValueError."""
    if subset is None:
        return None
    if isinstance(subset, bool) or not isinstance(subset, (int, np.integer)) or subset < 1:
        raise ValueError(f"subset must be a positive whole number of samples per split (or None for all), got {subset!r}")
    return int(subset)


def _largest_remainder(weights: np.ndarray, n: int, rng: np.random.Generator | None) -> np.ndarray:
    exact = n * weights / weights.sum()
    alloc = np.floor(exact).astype(np.int64)
    # Ties (e.g. 5 samples from 10 balanced classes) go to seeded-random classes, or the lowest index without rng.
    tiebreak = rng.random(len(weights)) if rng is not None else np.arange(len(weights))
    order = np.lexsort((tiebreak, -(exact - alloc)))
    alloc[order[: n - int(alloc.sum())]] += 1
    return alloc


def stratified_counts(class_counts: np.ndarray, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """How many of `n` samples each class gets: proportional (largest remainder), at least one each when n allows."""
    counts = np.asarray(class_counts, dtype=np.int64)
    n = min(n, int(counts.sum()))
    if n <= 0:
        return np.zeros_like(counts)
    alloc = _largest_remainder(counts, n, rng)  # never exceeds a class's count
    present = counts > 0
    if n >= int(present.sum()):
        for k in np.flatnonzero(present & (alloc == 0)):  # a rare class gets one, from the best-served class
            donor = int(np.argmax(alloc))
            alloc[donor] -= 1
            alloc[k] += 1
    return alloc


def stratified_sample(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of min(n, len) samples, class proportions kept, chosen by `rng`."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    classes, inverse = np.unique(labels, return_inverse=True)
    counts = stratified_counts(np.bincount(inverse, minlength=len(classes)), n, rng)
    picked = [rng.choice(np.flatnonzero(inverse == k), size=c, replace=False) for k, c in enumerate(counts) if c]
    return np.sort(np.concatenate(picked))


def stratified_split(labels: np.ndarray, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices: each class with >= 2 samples puts round(fraction * n) (at least 1) in test."""
    labels = np.asarray(labels)
    test_parts = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        n_test = max(1, round(test_fraction * len(idx))) if len(idx) >= 2 else 0
        test_parts.append(rng.permutation(idx)[:n_test])
    test = np.sort(np.concatenate(test_parts)) if test_parts else np.zeros(0, dtype=np.int64)
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test


def take(split: Split, idx: np.ndarray) -> Split:
    """A new Split holding rows `idx` (always a copy)."""
    t = torch.as_tensor(idx, dtype=torch.int64)
    masks = split.masks[t] if split.masks is not None else None
    return Split(images=split.images[t].contiguous(), labels=split.labels[t], masks=masks)


def subset_split(split: Split, n: int, seed: int, stream: int) -> Split:
    """Stratified, seeded subset of min(n, len(split)) samples; `stream` keeps train and test draws independent."""
    rng = np.random.default_rng([stream, seed])
    return take(split, stratified_sample(split.labels.numpy(), n, rng))


def copy_split(split: Split) -> Split:
    """A deep copy, so a caller writing into its tensors cannot corrupt the cache."""
    masks = split.masks.clone() if split.masks is not None else None
    return Split(images=split.images.clone(), labels=split.labels.clone(), masks=masks)
