"""Confusion-matrix drill-down: which test images fall in cell (true A, predicted B), and Grad-CAM for A and B."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..data import Dataset, list_datasets, load_dataset
from ..explain.gradcam import CamResult, grad_cam_batch
from ..explain.predict import probabilities
from ..explain.targets import parse_target
from ..images import uint8_batch_to_input
from ..store.checkpoints import LoadedModel
from .errors import LectureError


@dataclass(frozen=True)
class TestSetPredictions:
    """Softmax outputs of a model over its dataset's whole test split."""

    probs: np.ndarray  # float32 [N,K]
    labels: np.ndarray  # int64 [N]

    @property
    def predicted(self) -> np.ndarray:
        """The predicted class of every test image, int64 [N]."""
        return self.probs.argmax(1)

    def confusion(self) -> np.ndarray:
        """Counts [K,K]: row = true class, column = predicted class."""
        k = self.probs.shape[1]
        return np.bincount(self.labels * k + self.predicted, minlength=k * k).reshape(k, k)

    def cell(self, true: int, pred: int) -> np.ndarray:
        """Test indices with label `true` predicted as `pred`, most confident mistakes first."""
        idx = np.flatnonzero((self.labels == true) & (self.predicted == pred))
        return idx[np.argsort(-self.probs[idx, pred], kind="stable")]


def trained_dataset(loaded: LoadedModel) -> Dataset:
    """The dataset a checkpoint was trained on, as it was configured (subset and seed included)."""
    if loaded.meta.dataset == "imagenet":  # torchvision's weights (store.hub_weights): their test set is not shipped
        raise LectureError(f"{loaded.name} was trained on ImageNet, whose 50,000 test photos do not come with cnnviz; "
                           "this view needs a model trained here (Train tab or a shipped checkpoint).")
    if loaded.meta.dataset not in list_datasets():  # an imported model with its own class names (store.user_models)
        raise LectureError(f"{loaded.name} was imported with its own class names, so its test set is unknown here; "
                           "give it an image of your own, or choose a model trained on one of cnnviz's datasets.")
    cfg = loaded.meta.config or {}
    return load_dataset(loaded.meta.dataset, data_dir=cfg.get("data_dir"), subset=cfg.get("subset"),
                        seed=int(cfg.get("seed", 0)), path=cfg.get("folder_path"))


def model_inputs(images: torch.Tensor, loaded: LoadedModel) -> torch.Tensor:
    """uint8 [N,C,H,W] -> normalised float input at the model's size."""
    return uint8_batch_to_input(images, loaded.meta.spec)


def predict_test_set(loaded: LoadedModel, batch: int = 500) -> TestSetPredictions:
    """Run the model over its test split once (cached per checkpoint file and modification time)."""
    return _predict_cached(str(loaded.path), loaded.path.stat().st_mtime_ns, loaded, batch)


@lru_cache(maxsize=8)
def _predict_cached(path: str, mtime: int, loaded: LoadedModel, batch: int) -> TestSetPredictions:
    ds = trained_dataset(loaded)
    # Converted a chunk at a time: the whole split at the model's input size can be gigabytes (AlexNet at 96 px).
    probs = [probabilities(loaded.model, model_inputs(ds.test.images[i:i + batch], loaded), batch)
             for i in range(0, len(ds.test), batch)]
    return TestSetPredictions(np.concatenate(probs), ds.test.labels.numpy())


def worst_cell(matrix: np.ndarray) -> tuple[int, int]:
    """The most frequent mistake (largest off-diagonal count); (0, 0) when there are no mistakes."""
    m = np.array(matrix, dtype=np.int64)
    np.fill_diagonal(m, -1)
    if m.max() <= 0:
        return 0, 0
    i, j = np.unravel_index(int(m.argmax()), m.shape)
    return int(i), int(j)


def parse_class(text: object, class_names: tuple[str, ...], what: str) -> int:
    """A class index or name (as a menu or an API caller gives it) -> index; empty is an error naming what is missing."""
    index = parse_target(None if text is None else str(text), class_names)
    if index is None:
        raise LectureError(f"Choose the {what} class.")
    return index


def cams_for_pair(loaded: LoadedModel, index: int, true: int, pred: int, layer: str | None = None) -> tuple[CamResult, CamResult]:
    """Grad-CAM of test image `index` for the true class and for the predicted class, side by side."""
    ds = trained_dataset(loaded)
    x = model_inputs(ds.test.images[index:index + 1], loaded).repeat(2, 1, 1, 1)
    a, b = grad_cam_batch(loaded.model, x, layer, [true, pred])
    return a, b
