"""torchvision's ImageNet-pretrained models, loaded from the torch hub cache or downloaded when online."""
from __future__ import annotations

import os

import torch
import torch.nn as nn
import torchvision

from .registry import register_model


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are neither cached nor downloadable."""


# registry name -> (torchvision builder, weights enum, grad-cam layer, title, year, paper, params per torchvision's docs)
_MODELS = {
    "imagenet-alexnet": ("alexnet", "AlexNet_Weights", "features.10", "AlexNet", 2012, "Krizhevsky et al.", 61_100_840),
    "imagenet-vgg16": ("vgg16", "VGG16_Weights", "features.28", "VGG-16", 2014, "Simonyan & Zisserman", 138_357_544),
    "imagenet-resnet18": ("resnet18", "ResNet18_Weights", "layer4", "ResNet-18", 2015, "He et al.", 11_689_512),
    "imagenet-resnet50": ("resnet50", "ResNet50_Weights", "layer4", "ResNet-50", 2015, "He et al.", 25_557_032),
}


def imagenet_weights(name: str) -> torchvision.models.WeightsEnum:
    """The torchvision weights entry (URL, class names, transforms) for a registered ImageNet model."""
    return getattr(torchvision.models, _MODELS[name][1]).IMAGENET1K_V1


def cached_weights_path(name: str) -> str:
    """Where torch.hub keeps (or would keep) the weights file of `name`."""
    url = imagenet_weights(name).url
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def imagenet_classes(name: str) -> list[str]:
    """The 1000 ImageNet class names, shipped inside torchvision (no network needed)."""
    return list(imagenet_weights(name).meta["categories"])


def load_pretrained_state(name: str) -> dict[str, torch.Tensor]:
    """State dict from the hub cache, else a download with a progress bar, else a clear error."""
    path = cached_weights_path(name)
    if os.path.exists(path):
        return torch.load(path, map_location="cpu", weights_only=True)
    try:
        return imagenet_weights(name).get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # no network, proxy refusal, partial download...
        raise WeightsUnavailable(
            f"ImageNet weights for {name} are not cached and could not be downloaded ({type(exc).__name__}). "
            f"Fix: copy the file {os.path.basename(path)} into {os.path.dirname(path)} (set TORCH_HOME to use another "
            f"cache), or on a machine with a network run `python -m cnnviz fetch-weights {name}`."
        ) from exc


def _adapt(model: nn.Module, in_channels: int, num_classes: int) -> nn.Module:
    """Grey inputs: first conv summed over RGB (same response to a grey image). Other class counts: a new head."""
    if in_channels == 1:
        name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
        new = nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None)
        with torch.no_grad():
            new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
        model.set_submodule(name, new)
    if num_classes != 1000:
        name, fc = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
        model.set_submodule(name, nn.Linear(fc.in_features, num_classes))
    return model


def _builder(name: str):
    def build(in_channels: int, num_classes: int, input_size: int, pretrained: bool = False) -> nn.Module:
        model = getattr(torchvision.models, _MODELS[name][0])(weights=None)
        if pretrained:
            model.load_state_dict(load_pretrained_state(name), strict=True)
        return _adapt(model, in_channels, num_classes)

    return build


for _name, (_tv, _w, _cam, _title, _year, _paper, _params) in _MODELS.items():
    register_model(
        _name, family=_title.split("-")[0], title=f"{_title} (torchvision, ImageNet)", paper=_paper, year=_year,
        input_size=224, cam_layer=_cam, imagenet=True, min_size=64, reference_params=(3, 1000, 224, _params),
        description=f"torchvision's {_title} with ImageNet-1k weights (1000 classes, 224 px) when they are cached or "
        "downloadable; a real full-size network to explain on photos.",
    )(_builder(_name))
