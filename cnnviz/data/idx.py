"""Fashion-MNIST and MNIST from the original IDX files (gzip or raw), parsed and checked here."""
from __future__ import annotations

import functools
import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from . import realdata
from .cache import cached, fingerprint
from .registry import Dataset, DatasetCorrupt, DatasetInfo, LoadRequest, Split, register_dataset

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/ "THE IDX FILE FORMAT").
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_HINT = "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"


def parse_idx(data: bytes, where: str | Path = "<bytes>") -> np.ndarray:
    """Decode one IDX blob: check the magic number, the dims and that the byte count matches exactly."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetCorrupt(f"{where}: not an IDX file (bad magic number)")
    dtype, ndim = _IDX_DTYPES.get(data[2]), data[3]
    if dtype is None or not 1 <= ndim <= 4:
        raise DatasetCorrupt(f"{where}: unsupported IDX header (type 0x{data[2]:02x}, {ndim} dims)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetCorrupt(f"{where}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims, dtype=np.int64)) * np.dtype(dtype).itemsize
    if len(data) - header != expected:
        raise DatasetCorrupt(f"{where}: holds {len(data) - header} data bytes but its header {dims} says {expected}; "
                             "the file is truncated or corrupt, delete it and fetch it again")
    # Copy: frombuffer is read-only, and torch wants writable memory in native byte order.
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(np.dtype(dtype).newbyteorder("="))


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not (told apart by the gzip magic bytes, not the name)."""
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetCorrupt(f"{path}: cannot read it ({exc}); the file is truncated or corrupt, "
                             "delete it and fetch it again") from exc
    return parse_idx(data, path)


def _find(folder: Path, stem: str) -> Path | None:
    # Raw first (torchvision keeps both and raw reads faster); "train-images.idx3-ubyte" is a common rename.
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def locate(spec: realdata.RealSpec, data_dir: Path) -> dict[str, Path] | None:
    """The four IDX files from the first folder that holds all of them, or None."""
    for folder in realdata.candidate_dirs(spec, data_dir):
        found = {f"{split}-{kind}": _find(folder, stem) for split, stems in _STEMS.items()
                 for kind, stem in zip(("images", "labels"), stems, strict=True)}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


def _read_split(info: DatasetInfo, images_path: Path, labels_path: Path) -> Split:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.shape[1:] != (info.size, info.size) or images.ndim != 3:
        raise DatasetCorrupt(f"{images_path}: expected uint8 images of {info.size}x{info.size}, "
                             f"got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DatasetCorrupt(f"{labels_path}: {labels.shape} labels for {len(images)} images in {images_path}")
    if len(labels) and (labels.min() < 0 or labels.max() >= info.num_classes):
        raise DatasetCorrupt(f"{labels_path}: labels outside 0..{info.num_classes - 1}")
    return Split(images=torch.from_numpy(images).unsqueeze(1).contiguous(), labels=torch.from_numpy(labels.astype(np.int64)))


def _parse(info: DatasetInfo, files: dict[str, Path]) -> Dataset:
    train = _read_split(info, files["train-images"], files["train-labels"])
    test = _read_split(info, files["test-images"], files["test-labels"])
    return Dataset(info=info, train=train, test=test)


def _load(info: DatasetInfo, spec: realdata.RealSpec, req: LoadRequest) -> Dataset:
    files = realdata.locate_or_download(spec, req, functools.partial(locate, spec))
    return cached((info.name, fingerprint(files.values())), lambda: _parse(info, files))


def _register(info: DatasetInfo, spec: realdata.RealSpec) -> None:
    register_dataset(info, functools.partial(_load, info, spec),
                     functools.partial(realdata.status, functools.partial(locate, spec)))


FASHION_MNIST = DatasetInfo(
    name="fashion-mnist", title="Fashion-MNIST",
    description="70,000 greyscale 28x28 photos of clothing in 10 classes, from Zalando's catalogue. "
                "A drop-in replacement for MNIST that is hard enough to tell the classic networks apart.",
    channels=1, size=28,
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    mean=(0.2860,), std=(0.3530,), offline=False,
    source="Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747; MIT licence (Zalando Research)",
)
MNIST = DatasetInfo(
    name="mnist", title="MNIST",
    description="70,000 greyscale 28x28 handwritten digits 0-9, centred and size-normalised. "
                "The dataset LeNet-5 was built for, and the classic first benchmark.",
    channels=1, size=28, class_names=tuple(str(d) for d in range(10)),
    mean=(0.1307,), std=(0.3081,), offline=False,
    source="LeCun, Bottou, Bengio & Haffner 1998; Yann LeCun and Corinna Cortes, CC BY-SA 3.0",
)

_register(FASHION_MNIST, realdata.RealSpec(
    name="fashion-mnist", title="Fashion-MNIST", torchvision_class="FashionMNIST",
    layouts=("FashionMNIST/raw", "fashion-mnist"), files_hint=_HINT, apt_package="dataset-fashion-mnist"))
_register(MNIST, realdata.RealSpec(
    name="mnist", title="MNIST", torchvision_class="MNIST", layouts=("MNIST/raw", "mnist"), files_hint=_HINT))
