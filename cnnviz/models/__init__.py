"""Model zoo: `list_models()`, `get_model(name, in_channels, num_classes, input_size)`."""
from . import alexnet, imagenet, lenet, resnet, tinyvgg, vgg  # noqa: F401  (registers the models)
from .imagenet import WeightsUnavailable, cached_weights_path, imagenet_classes
from .registry import ModelInfo, get_model, get_model_info, list_models, model_input_size, register_model

__all__ = [
    "ModelInfo", "WeightsUnavailable", "cached_weights_path", "get_model", "get_model_info", "imagenet_classes",
    "list_models", "model_input_size", "register_model",
]
