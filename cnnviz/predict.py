"""Prediction for one image: top-k classes with probabilities, plus the tensor the network saw."""
from __future__ import annotations

from dataclasses import dataclass

import PIL.Image
import torch

from .checkpoints import LoadedModel
from .hooks import model_lock
from .images import load_image, to_model_input


@dataclass(frozen=True)
class Prediction:
    labels: tuple[str, ...]  # top-k class names, most probable first
    probs: tuple[float, ...]
    indices: tuple[int, ...]
    all_probs: tuple[float, ...]  # one per class, in class order

    def as_dict(self) -> dict[str, float]:
        """{class name: probability} for the top-k (what gr.Label wants)."""
        return dict(zip(self.labels, self.probs))


def predict_tensor(loaded: LoadedModel, x: torch.Tensor, topk: int = 5) -> Prediction:
    """Softmax over a prepared input [1,C,S,S]; the model lock keeps a concurrent explanation from interleaving."""
    with model_lock(loaded.model), torch.inference_mode():
        probs = torch.softmax(loaded.model.eval()(x).float(), dim=1)[0]
    k = max(1, min(topk, probs.numel()))
    top = torch.topk(probs, k)
    names = loaded.meta.class_names
    return Prediction(labels=tuple(names[i] for i in top.indices.tolist()), probs=tuple(top.values.tolist()),
                      indices=tuple(top.indices.tolist()), all_probs=tuple(probs.tolist()))


def predict_image(loaded: LoadedModel, image: str | bytes | PIL.Image.Image, topk: int = 5) -> tuple[Prediction, torch.Tensor]:
    """Decode (safely), preprocess as the model expects, predict; returns the prediction and the input tensor."""
    x = to_model_input(load_image(image), loaded.meta.spec)
    return predict_tensor(loaded, x, topk), x
