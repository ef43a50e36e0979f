"""The 8x8 handwritten digits (UCI, the copy scikit-learn bundles): real data shipped inside cnnviz, no network."""
from __future__ import annotations

from importlib.resources import files

import numpy as np
import torch

from .cache import cached
from .registry import OFFLINE_READY, Dataset, DatasetInfo, LoadRequest, Split, register_dataset
from .sampling import stratified_split

SPLIT_SEED = 20  # fixed, independent of the load seed, so the test set never changes
# cnnviz/shipped/data/digits.npz: images uint8 [1797, 8, 8] with counts 0..16, labels uint8 [1797]; taken once from
# scikit-learn 1.9.1's load_digits() (exactly its arrays), credited in cnnviz/shipped/data/CREDITS.md.
SHIPPED_FILE = ("shipped", "data", "digits.npz")

DIGITS = DatasetInfo(
    name="digits", title="Digits (8x8)",
    description="1,797 greyscale 8x8 handwritten digits 0-9 that ship inside cnnviz. "
                "Real data that is always there offline, tiny enough to train on in seconds.",
    channels=1, size=8, class_names=tuple(str(d) for d in range(10)),
    mean=(0.3050,), std=(0.3758,), offline=True,
    source="UCI Optical Recognition of Handwritten Digits (Alpaydin & Kaynak 1998), test set, CC BY 4.0; "
           "the copy bundled with scikit-learn",
)


def load_raw() -> tuple[np.ndarray, np.ndarray]:
    """The shipped digits as stored: images uint8 [1797, 8, 8] with values 0..16, labels int64 [1797]."""
    with files("cnnviz").joinpath(*SHIPPED_FILE).open("rb") as f, np.load(f, allow_pickle=False) as npz:
        return npz["images"], npz["labels"].astype(np.int64)


def _parse() -> Dataset:
    raw, labels = load_raw()
    # Values are counts 0..16 of set pixels in 4x4 blocks; scale to the full uint8 range.
    images = np.rint(raw * (255.0 / 16.0)).astype(np.uint8)[:, None]  # [N, 1, 8, 8]
    train_idx, test_idx = stratified_split(labels, 0.2, np.random.default_rng(SPLIT_SEED))

    def split(idx: np.ndarray) -> Split:
        return Split(images=torch.from_numpy(np.ascontiguousarray(images[idx])), labels=torch.from_numpy(labels[idx]))

    return Dataset(info=DIGITS, train=split(train_idx), test=split(test_idx))


def _load(req: LoadRequest) -> Dataset:
    return cached(("digits",), _parse)


register_dataset(DIGITS, _load, lambda data_dir: OFFLINE_READY)
