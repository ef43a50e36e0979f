"""Feature maps, filters and Grad-CAM as plain numbers (frozen dataclasses of numpy arrays)."""
from __future__ import annotations

import PIL.Image
import torch


def prepare(source: object, spec: object) -> tuple[torch.Tensor, PIL.Image.Image]:
    """Decode an image (path, bytes, PIL, array) into the model input [1,C,S,S] and the picture the model sees."""
    from ..images import load_image, model_view, to_model_input  # local: only callers with raw images need it

    x = to_model_input(load_image(source), spec)
    return x, model_view(x, spec)


