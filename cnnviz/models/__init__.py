"""Model zoo: `list_models()`, `get_model(name, in_channels, num_classes, input_size)`."""
from . import alexnet, imagenet, lenet, resnet, tinyvgg, vgg  # noqa: F401  (registers the models)
from .imagenet import WeightsUnavailable, cached_weights_path, imagenet_classes
from .registry import (
    InputShape,
    ModelInfo,
    get_model,
    get_model_info,
    input_shape,
    list_models,
    model_input_size,
    register_model,
    scaled_variants,
    width_label,
)

__all__ = [
    "InputShape", "ModelInfo", "WeightsUnavailable", "cached_weights_path", "get_model", "get_model_info", "imagenet_classes",
    "input_shape", "list_models", "model_input_size", "register_model", "scaled_variants", "width_label",
]
