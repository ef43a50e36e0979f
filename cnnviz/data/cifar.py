"""CIFAR-10 and CIFAR-100 from the original python pickle batches, read with a restricted unpickler."""
from __future__ import annotations

import functools
import io
import pickle
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from . import realdata
from .cache import cached, fingerprint
from .cifar_names import CIFAR10_CLASSES, CIFAR100_CLASSES
from .registry import Dataset, DatasetCorrupt, DatasetInfo, LoadRequest, Split, register_dataset

# The only globals a CIFAR batch needs: numpy's array rebuilders (numpy 1 and 2 module names),
# and what Python 2/3 pickles use for bytes. Anything else (os.system, eval, ...) is refused.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}
_CONTAINERS = {"dict", "list", "tuple", "set", "frozenset", "bytearray"}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and builtin containers, and nothing else."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _NUMPY_GLOBALS or (module in ("builtins", "__builtin__") and name in _CONTAINERS):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load global {module}.{name}: a CIFAR batch never needs it")


def safe_unpickle(path: Path) -> dict[str, object]:
    """Load one CIFAR pickle (Python 2 or 3) as a dict with str keys; anything unsafe or broken is DatasetCorrupt."""
    try:
        raw = path.read_bytes()
        # latin1 is how numpy arrays pickled by Python 2 must be read (as torchvision does).
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise DatasetCorrupt(f"{path}: {exc}; delete it and fetch the dataset again") from exc
    except (OSError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DatasetCorrupt(f"{path}: not a readable CIFAR pickle ({type(exc).__name__}: {exc}); "
                             "delete it and fetch the dataset again") from exc
    if not isinstance(obj, dict):
        raise DatasetCorrupt(f"{path}: expected a dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def read_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 3, 32, 32] and labels int64 [N] from one batch file, shapes and ranges checked."""
    batch = safe_unpickle(path)
    data, labels = batch.get("data"), batch.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DatasetCorrupt(f"{path}: 'data' must be a uint8 array [N, 3072], got {type(data).__name__} {shape}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DatasetCorrupt(f"{path}: {label_key!r} is not a list of class numbers") from exc
    if labels.shape != (len(data),):
        raise DatasetCorrupt(f"{path}: {labels.shape} {label_key!r} for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetCorrupt(f"{path}: labels outside 0..{num_classes - 1}")
    # Each row is the red plane, then green, then blue, each 32x32 row-major.
    return data.reshape(-1, 3, 32, 32), labels


def read_names(path: Path | None, key: str, fallback: tuple[str, ...]) -> tuple[str, ...]:
    """Class names from the meta file when present and well-formed, else the standard list."""
    if path is None:
        return fallback
    names = safe_unpickle(path).get(key)
    if not isinstance(names, (list, tuple)) or len(names) != len(fallback):
        return fallback
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


@dataclass(frozen=True)
class _Layout:
    """File names and dict keys of one CIFAR variant inside its folder."""

    train: tuple[str, ...]
    test: str
    meta: str
    label_key: str
    names_key: str


_C10 = _Layout(tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta", "labels", "label_names")
_C100 = _Layout(("train",), "test", "meta", "fine_labels", "fine_label_names")


def locate(spec: realdata.RealSpec, layout: _Layout, data_dir: Path) -> Path | None:
    """The first folder holding every train and test batch, or None."""
    for folder in realdata.candidate_dirs(spec, data_dir):
        if all((folder / f).is_file() for f in (*layout.train, layout.test)):
            return folder
    return None


def _split(folder: Path, files: tuple[str, ...], layout: _Layout, num_classes: int) -> Split:
    parts = [read_batch(folder / f, layout.label_key, num_classes) for f in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return Split(images=torch.from_numpy(np.ascontiguousarray(images)), labels=torch.from_numpy(labels))


def _parse(info: DatasetInfo, layout: _Layout, folder: Path) -> Dataset:
    meta = folder / layout.meta
    names = read_names(meta if meta.is_file() else None, layout.names_key, info.class_names)
    info = replace(info, class_names=names)
    train = _split(folder, layout.train, layout, info.num_classes)
    test = _split(folder, (layout.test,), layout, info.num_classes)
    return Dataset(info=info, train=train, test=test)


def _load(info: DatasetInfo, spec: realdata.RealSpec, layout: _Layout, req: LoadRequest) -> Dataset:
    folder = realdata.locate_or_download(spec, req, functools.partial(locate, spec, layout))
    files = [folder / f for f in (*layout.train, layout.test, layout.meta) if (folder / f).is_file()]
    return cached((info.name, fingerprint(files)), lambda: _parse(info, layout, folder))


def _register(info: DatasetInfo, spec: realdata.RealSpec, layout: _Layout) -> None:
    register_dataset(info, functools.partial(_load, info, spec, layout),
                     functools.partial(realdata.status, functools.partial(locate, spec, layout)))


CIFAR10 = DatasetInfo(
    name="cifar10", title="CIFAR-10",
    description="60,000 colour 32x32 photos in 10 classes: animals and vehicles. "
                "Small enough to train on in minutes, varied enough that depth and residuals visibly pay off.",
    channels=3, size=32, class_names=CIFAR10_CLASSES,
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), offline=False,
    source="Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images (University of Toronto)",
)
CIFAR100 = DatasetInfo(
    name="cifar100", title="CIFAR-100",
    description="60,000 colour 32x32 photos in 100 fine-grained classes, 600 per class. "
                "The same images' harder sibling: few examples a class, many look-alike classes.",
    channels=3, size=32, class_names=CIFAR100_CLASSES,
    mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762), offline=False,
    source="Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images (University of Toronto)",
)

_HINT10 = "data_batch_1 ... data_batch_5, test_batch, batches.meta"
_HINT100 = "train, test, meta"
_register(CIFAR10, realdata.RealSpec(name="cifar10", title="CIFAR-10", torchvision_class="CIFAR10",
                                     layouts=("cifar-10-batches-py",), files_hint=_HINT10), _C10)
_register(CIFAR100, realdata.RealSpec(name="cifar100", title="CIFAR-100", torchvision_class="CIFAR100",
                                      layouts=("cifar-100-python",), files_hint=_HINT100), _C100)
