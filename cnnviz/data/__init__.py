"""Datasets by name: `list_datasets()`, `get_dataset_info(name)`, `load_dataset(name, ...)`.

Real datasets resolve from the data dir, then the system dataset dir, then torchvision's download;
`digits` and `shapes` need no files at all. See DESIGN.md "Data without a network".
"""
from . import cifar, digits, folder, idx, shapes  # noqa: F401  (importing registers the datasets)
from .cache import clear_cache
from .loading import load_dataset
from .registry import (
    Dataset,
    DatasetCorrupt,
    DatasetInfo,
    DatasetUnavailable,
    Split,
    availability,
    get_dataset_info,
    list_datasets,
    resolve_data_dir,
)

__all__ = [
    "Dataset", "DatasetCorrupt", "DatasetInfo", "DatasetUnavailable", "Split", "availability", "clear_cache",
    "get_dataset_info", "list_datasets", "load_dataset", "resolve_data_dir",
]
