"""Dataset registry: frozen metadata per dataset, the tensors it loads to, and where data lives."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

# Debian's dataset packages (e.g. dataset-fashion-mnist) install under here; tests point it elsewhere.
SYSTEM_DATA_ROOT = Path("/usr/share/datasets")

OFFLINE_READY = "offline-ready"
NEEDS_DOWNLOAD = "needs download"
NEEDS_FOLDER = "needs a folder path"


class DatasetUnavailable(RuntimeError):
    """The data is neither on disk nor downloadable; the message names every remedy."""


class DatasetCorrupt(DatasetUnavailable, ValueError):
    """A data file is there but truncated, corrupt or unsafe; the message names the file."""


@dataclass(frozen=True)
class DatasetInfo:
    """What the UI, the engine and the models need to know about a dataset before loading it."""

    name: str
    title: str
    description: str  # two sentences for the UI
    channels: int  # 1 or 3
    size: int  # native square side in px
    class_names: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, in [0, 1] pixel units
    std: tuple[float, ...]
    offline: bool  # True when it needs no files and no network
    source: str  # citation / licence line

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"{self.name}: channels must be 1 or 3, got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"{self.name}: mean/std need one value per channel ({self.channels})")

    @property
    def num_classes(self) -> int:
        """Number of classes (length of class_names)."""
        return len(self.class_names)


@dataclass(frozen=True, eq=False)
class Split:
    """One split as whole tensors: images uint8 [N, C, H, W], labels int64 [N], optional masks bool [N, H, W]."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None = None

    def __post_init__(self) -> None:
        imgs, labels = self.images, self.labels
        if imgs.dtype != torch.uint8 or imgs.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {imgs.dtype} {tuple(imgs.shape)}")
        if labels.dtype != torch.int64 or labels.shape != (imgs.shape[0],):
            raise ValueError(f"labels must be int64 [{imgs.shape[0]}], got {labels.dtype} {tuple(labels.shape)}")
        if self.masks is not None:
            n, _, h, w = imgs.shape
            if self.masks.dtype != torch.bool or tuple(self.masks.shape) != (n, h, w):
                raise ValueError(f"masks must be bool [{n}, {h}, {w}], got {self.masks.dtype} {tuple(self.masks.shape)}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: its metadata and both splits."""

    info: DatasetInfo
    train: Split
    test: Split


@dataclass(frozen=True)
class LoadRequest:
    """Everything a source's loader may need; each source reads the fields it understands."""

    data_dir: Path
    download: bool
    seed: int
    path: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Source:
    """A registered dataset: its generic metadata, how to load it, and whether it can be loaded now."""

    info: DatasetInfo
    load: Callable[[LoadRequest], Dataset]
    status: Callable[[Path], str]


_REGISTRY: dict[str, Source] = {}
# The order the UI lists them in, the default first; names not here follow in registration order.
_ORDER = ("fashion-mnist", "mnist", "cifar10", "cifar100", "digits", "shapes", "folder")


def register_dataset(info: DatasetInfo, load: Callable[[LoadRequest], Dataset], status: Callable[[Path], str]) -> None:
    """Register a dataset source under info.name; duplicates are an error."""
    if info.name in _REGISTRY:
        raise ValueError(f"dataset {info.name!r} is already registered")
    _REGISTRY[info.name] = Source(info=info, load=load, status=status)


def get_source(name: str) -> Source:
    """The registered source for `name`; a clear KeyError lists the valid names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; choose one of: {', '.join(list_datasets())}") from None


def list_datasets() -> list[str]:
    """Names of every registered dataset, the default (fashion-mnist) first."""
    rank = {name: i for i, name in enumerate(_ORDER)}
    return sorted(_REGISTRY, key=lambda name: rank.get(name, len(rank)))


def get_dataset_info(name: str) -> DatasetInfo:
    """Generic metadata of one dataset (for 'folder' the real classes are known only after loading)."""
    return get_source(name).info


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data dir: the argument, else env CNNVIZ_DATA, else $CNNVIZ_HOME/data, else ./data (absolute; need not exist
    yet)."""
    home = os.environ.get("CNNVIZ_HOME")
    chosen = data_dir if data_dir not in (None, "") else os.environ.get("CNNVIZ_DATA") or (Path(home) / "data" if home else "data")
    return Path(chosen).expanduser().resolve()


def availability(name: str, data_dir: str | os.PathLike | None = None) -> str:
    """'offline-ready', 'needs download' or 'needs a folder path' for one dataset."""
    return get_source(name).status(resolve_data_dir(data_dir))
