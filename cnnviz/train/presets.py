"""Named training recipes: the classic tutorials, and fast demos that finish in about a minute on 2 CPU cores."""
from __future__ import annotations

from dataclasses import dataclass

from .config import TrainConfig


@dataclass(frozen=True)
class Preset:
    name: str
    config: TrainConfig
    source: str
    description: str  # what it reproduces and every deliberate difference


PRESETS: dict[str, Preset] = {}


def _add(name: str, source: str, description: str, **cfg) -> None:
    if name in PRESETS:
        raise ValueError(f"preset {name!r} defined twice")
    PRESETS[name] = Preset(name, TrainConfig(**cfg), source, description)


_add("demo-fashion-mnist", "cnnviz", "LeNet-5 (ReLU, max-pool) on all of Fashion-MNIST with Adam and a one-cycle schedule: "
     "about 0.90 test accuracy in under a minute on 2 CPU cores.",
     arch="lenet5", dataset="fashion-mnist", epochs=5, batch_size=128, optimizer="adam", lr=3e-3, schedule="onecycle")
_add("demo-digits", "cnnviz", "LeNet-5 on the shipped 8x8 UCI handwritten digits (upscaled to 16 px): a few seconds.",
     arch="lenet5", dataset="digits", epochs=15, batch_size=64, optimizer="adam", lr=3e-3, schedule="onecycle")
_add("demo-shapes", "cnnviz", "TinyVGG on generated shapes with clutter: Grad-CAM can be checked against the object masks.",
     arch="tinyvgg", dataset="shapes", epochs=8, batch_size=64, optimizer="adam", lr=3e-3, schedule="onecycle",
     arch_kwargs={"width": 16})
_add("demo-cifar10-tinyvgg", "cnnviz", "TinyVGG on a 5,000-image CIFAR-10 subset: a minute, roughly 45% accuracy; "
     "shows how hard natural images are for a tiny net. Needs CIFAR-10 on disk or a network.",
     arch="tinyvgg", dataset="cifar10", subset=5000, epochs=5, batch_size=64, optimizer="adam", lr=2e-3, augment=True)
_add("lenet5-fashion-mnist-d2l", "d2l.ai 7.6 (LeNet)", "LeNet-5 exactly as d2l.ai trains it on Fashion-MNIST: sigmoid "
     "activations, average pooling, Xavier init, plain SGD lr 0.9, batch 256, 10 epochs (d2l reports about 0.8 test accuracy).",
     arch="lenet5_classic", dataset="fashion-mnist", epochs=10, batch_size=256, optimizer="sgd", lr=0.9, momentum=0.0,
     init="xavier")
_add("alexnet-cifar10", "AlexNet CIFAR-10 tutorial", "AlexNet at 96 px on CIFAR-10: Adam lr 1e-3, weight decay 1e-4, batch "
     "500, 20 epochs. Needs CIFAR-10 on disk or a network, and a GPU to finish in reasonable time.",
     arch="alexnet", dataset="cifar10", epochs=20, batch_size=500, optimizer="adam", lr=1e-3, weight_decay=1e-4)
_add("alexnet-d2l-fashion-mnist", "d2l.ai 8.1 (AlexNet)", "d2l's AlexNet on Fashion-MNIST upscaled to 224 px: SGD lr 0.01, "
     "Xavier init, batch 128, 10 epochs. Difference: SGD here keeps momentum 0 as d2l does. GPU recommended.",
     arch="alexnet_d2l", dataset="fashion-mnist", epochs=10, batch_size=128, optimizer="sgd", lr=0.01, momentum=0.0,
     init="xavier")
_add("vgg10-cifar100", "VGG CIFAR-100 tutorial", "The 10-conv VGG on CIFAR-100: Adam lr 1e-4, batch 64, 5 epochs "
     "(the tutorial reports 33.8% test accuracy after 5 epochs). Needs CIFAR-100 on disk or a network; GPU recommended.",
     arch="vgg10", dataset="cifar100", epochs=5, batch_size=64, optimizer="adam", lr=1e-4)
_add("resnet18-cifar10", "kuangliu/pytorch-cifar style", "ResNet-18 (CIFAR form) on CIFAR-10: SGD lr 0.1, momentum 0.9, "
     "weight decay 5e-4, crop+flip, batch 128, 10 epochs, cosine schedule. GPU recommended.",
     arch="resnet18", dataset="cifar10", epochs=10, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9,
     weight_decay=5e-4, augment=True, schedule="cosine")

# The four classic families on Fashion-MNIST, each in about 3 minutes on 2 CPU cores (the shipped checkpoints).
_add("lecture-lenet", "cnnviz", "LeNet-5 (ReLU, max-pool) on all of Fashion-MNIST, the same recipe as "
     "demo-fashion-mnist (which made the shipped lenet5-fashion-mnist): Adam, one-cycle, 5 epochs, about 0.90.",
     arch="lenet5", dataset="fashion-mnist", epochs=5, batch_size=128, optimizer="adam", lr=3e-3, schedule="onecycle")
_add("lecture-alexnet", "AlexNet CIFAR-10 tutorial, at 1/8 width", "AlexNet at 1/8 width (96 px inputs, the tutorial's "
     "layers, kernels and strides) on all of Fashion-MNIST: Adam with a one-cycle schedule, 3 epochs, batch 128. "
     "Differences from the tutorial: 1/8 of the channels, one-cycle instead of a constant rate, fewer epochs. "
     "0.891 test accuracy; 112 s of CPU on one core.",
     arch="alexnet_eighth", dataset="fashion-mnist", epochs=3, batch_size=128, optimizer="adam", lr=2e-3,
     schedule="onecycle")
_add("lecture-vgg", "VGG-11 (CIFAR form), at 1/4 width", "VGG-11 at 1/4 width with batch norm (32 px inputs) on all of "
     "Fashion-MNIST: Adam with a one-cycle schedule, 3 epochs, batch 128. 0.922 test accuracy; 147 s of CPU on one core.",
     arch="vgg11_quarter", dataset="fashion-mnist", epochs=3, batch_size=128, optimizer="adam", lr=3e-3,
     schedule="onecycle")
_add("lecture-resnet", "ResNet-18 (CIFAR form), at 1/4 width", "ResNet-18 at 1/4 width (28 px inputs) on all of "
     "Fashion-MNIST: Adam with a one-cycle schedule, 2 epochs, batch 128. 0.919 test accuracy; 223 s of CPU on one core.",
     arch="resnet18_quarter", dataset="fashion-mnist", epochs=2, batch_size=128, optimizer="adam", lr=3e-3,
     schedule="onecycle")

# The 60-second preset (issue 14): the most accuracy per second of the shipped families. Two epochs at batch 128 stopped
# at 0.916-0.917 in four tries (learning rates 3e-3-5e-3, AdamW, batch 64); a third epoch at a larger batch, which costs
# less per image on a CPU, passes 0.92.
_add("fast-fashion-mnist", "cnnviz", "VGG-11 at 1/4 width (batch norm, 32 px inputs) on all of Fashion-MNIST in under a "
     "minute on 2 CPU cores: Adam with a one-cycle schedule (peak 6e-3), label smoothing 0.1, batch 384, 3 epochs. "
     "0.921 test accuracy after 56 s of training (its 3 epochs with their test passes, on a quiet 2-core machine; "
     "63 s from start to checkpoint).",
     arch="vgg11_quarter", dataset="fashion-mnist", epochs=3, batch_size=384, optimizer="adam", lr=6e-3,
     schedule="onecycle", label_smoothing=0.1)


def get_preset(name: str) -> Preset:
    """A preset by name; KeyError lists the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
