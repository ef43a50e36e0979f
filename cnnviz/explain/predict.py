"""Prediction: the one softmax and top-k path (Predict tab, CLI, compare, sanity check, confusion drill-down)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import PIL.Image
import torch
import torch.nn as nn

from .hooks import model_lock, restored_state
from .preprocess import model_input

if TYPE_CHECKING:
    from ..store.checkpoints import LoadedModel


@dataclass(frozen=True)
class Prediction:
    labels: tuple[str, ...]  # top-k class names, most probable first
    probs: tuple[float, ...]
    indices: tuple[int, ...]
    all_probs: tuple[float, ...]  # one per class, in class order

    def as_dict(self) -> dict[str, float]:
        """{class name: probability} for the top-k (what gr.Label wants)."""
        return dict(zip(self.labels, self.probs))


def probabilities(model: nn.Module, x: torch.Tensor, batch: int = 500) -> np.ndarray:
    """Softmax [N,K] float32 of inputs x [N,C,S,S], `batch` images per forward pass, in eval mode under the model's
    lock (a concurrent explanation's hooks never see these passes; training flags are restored)."""
    out = []
    with model_lock(model), restored_state(model, eval_mode=True, freeze=False), torch.inference_mode():
        for i in range(0, len(x), batch):
            out.append(torch.softmax(model(x[i:i + batch]).float(), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def top_k(probs: np.ndarray, class_names: tuple[str, ...] | list[str], k: int = 5) -> Prediction:
    """The k most probable classes of one probability vector [K]."""
    k = max(1, min(int(k), len(probs)))
    order = np.argsort(-probs, kind="stable")[:k]
    return Prediction(labels=tuple(class_names[i] for i in order), probs=tuple(float(probs[i]) for i in order),
                      indices=tuple(int(i) for i in order), all_probs=tuple(float(p) for p in probs))


def predict_tensor(loaded: LoadedModel, x: torch.Tensor, topk: int = 5) -> Prediction:
    """Top-k of one prepared input [1,C,S,S]."""
    return top_k(probabilities(loaded.model, x)[0], loaded.meta.class_names, topk)


def predict_image(loaded: LoadedModel, image: str | bytes | PIL.Image.Image, topk: int = 5) -> tuple[Prediction, torch.Tensor]:
    """Decode (safely), preprocess as the model expects, predict; returns the prediction and the input tensor."""
    x = model_input(image, loaded.meta)  # ImageNet networks: their weights' own transforms
    return predict_tensor(loaded, x, topk), x
