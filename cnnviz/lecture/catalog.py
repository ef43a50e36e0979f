"""What the web app offers to choose from: every registered model, and the datasets that need no server path."""
from __future__ import annotations

from ..data import get_dataset_info, list_datasets
from ..models import get_model_info, list_models

SERVER_ONLY = ("folder",)  # 'folder' reads a directory on the server, so it stays a CLI feature


def web_datasets() -> list[str]:
    """Datasets the web UI offers ('folder' needs a server path, so it stays a CLI feature)."""
    return [d for d in list_datasets() if d not in SERVER_ONLY]


def dataset_choices() -> list[tuple[str, str]]:
    """(title, name) for every dataset the web UI offers."""
    return [(get_dataset_info(d).title, d) for d in web_datasets()]


def model_choices() -> list[tuple[str, str]]:
    """(title [year], name) for every registered model."""
    return [(f"{get_model_info(m).title} [{get_model_info(m).year}]", m) for m in list_models()]


def check_offered(arch: str, dataset: str) -> None:
    """Raise KeyError ('unknown ...; choose one of: ...') unless the web app offers this model and dataset."""
    if arch not in list_models():
        raise KeyError(f"unknown model {arch!r}; choose one of: {', '.join(list_models())}")
    if dataset not in web_datasets():
        raise KeyError(f"unknown dataset {dataset!r}; choose one of: {', '.join(web_datasets())}")


__all__ = ["check_offered", "dataset_choices", "model_choices", "web_datasets"]
