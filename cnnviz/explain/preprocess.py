"""An image -> the input a loaded model expects. torchvision's ImageNet networks get their weights' own transforms
(`weights.transforms()`: shorter side to 256, centre crop 224, ImageNet mean/std), as they were evaluated; every other
model the square resize of images.to_model_input."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..images import load_image, to_model_input
from ..models import get_model_info
from ..models.imagenet import imagenet_weights

if TYPE_CHECKING:
    from ..store.checkpoints import CheckpointMeta

IMAGENET = "imagenet"  # CheckpointMeta.dataset of torchvision's ImageNet-1k weights (store.hub_weights.DATASET)


def uses_weight_transforms(meta: CheckpointMeta) -> bool:
    """True for an ImageNet network with its 1000 ImageNet classes (torchvision's weights, or a user's copy of them)."""
    try:
        imagenet = get_model_info(meta.arch).imagenet
    except KeyError:
        return False
    return imagenet and meta.dataset == IMAGENET and meta.in_channels == 3 and meta.num_classes == 1000


def model_input(image: object, meta: CheckpointMeta) -> torch.Tensor:
    """Decode `image` (path, bytes or PIL image; safely) into the normalised model input [1, C, S, S]."""
    img = load_image(image)
    if uses_weight_transforms(meta):
        transform = imagenet_weights(meta.arch).transforms()  # ImageClassification: PIL -> float [3, 224, 224]
        if int(transform.crop_size[0]) == meta.input_size:
            return transform(img).unsqueeze(0).contiguous()
    return to_model_input(img, meta.spec)


__all__ = ["IMAGENET", "model_input", "uses_weight_transforms"]
