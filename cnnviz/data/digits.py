"""scikit-learn's bundled 8x8 handwritten digits: real data that needs no files and no network."""
from __future__ import annotations

import numpy as np
import torch

from .cache import cached
from .registry import OFFLINE_READY, Dataset, DatasetInfo, LoadRequest, Split, register_dataset
from .sampling import stratified_split

SPLIT_SEED = 20  # fixed, independent of the load seed, so the test set never changes

DIGITS = DatasetInfo(
    name="digits", title="Digits (8x8)",
    description="1,797 greyscale 8x8 handwritten digits 0-9 that ship inside scikit-learn. "
                "Real data that is always there offline, tiny enough to train on in seconds.",
    channels=1, size=8, class_names=tuple(str(d) for d in range(10)),
    mean=(0.3050,), std=(0.3758,), offline=True,
    source="UCI Optical Recognition of Handwritten Digits (Alpaydin & Kaynak 1998), CC BY 4.0; bundled with scikit-learn",
)


def _parse() -> Dataset:
    from sklearn.datasets import load_digits  # lazy: importing scikit-learn takes about a second

    bunch = load_digits()
    # Values are counts 0..16 of set pixels in 4x4 blocks; scale to the full uint8 range.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # [N, 1, 8, 8]
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = stratified_split(labels, 0.2, np.random.default_rng(SPLIT_SEED))

    def split(idx: np.ndarray) -> Split:
        return Split(images=torch.from_numpy(np.ascontiguousarray(images[idx])), labels=torch.from_numpy(labels[idx]))

    return Dataset(info=DIGITS, train=split(train_idx), test=split(test_idx))


def _load(req: LoadRequest) -> Dataset:
    return cached(("digits",), _parse)


register_dataset(DIGITS, _load, lambda data_dir: OFFLINE_READY)
