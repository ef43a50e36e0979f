"""torchvision's ImageNet networks as checkpoints: their weights are looked up in the torch hub cache under the real
torchvision file names (TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth, ...), downloaded only when asked (the CLI's
`fetch-weights`), and loaded like any checkpoint: weights_only, size-capped, shapes checked, strict."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..models import WeightsUnavailable, cached_weights_path, get_model, get_model_info, imagenet_classes, list_models
from ..models.imagenet import imagenet_weights
from .checkpoints import MAX_BYTES, CheckpointEntry, CheckpointError, CheckpointMeta, LoadedModel, _check_state

DATASET = "imagenet"  # what CheckpointMeta.dataset says for torchvision's ImageNet-1k weights
CACHED, NEEDS_DOWNLOAD = "ImageNet weights", "needs download"


def hub_names() -> list[str]:
    """The registered ImageNet networks, in registry order (imagenet-alexnet, imagenet-vgg16, ...)."""
    return [m for m in list_models() if get_model_info(m).imagenet]


def is_hub_name(name: object) -> bool:
    """True for the name of a registered ImageNet network (menus and the CLI use these names as checkpoint names)."""
    return isinstance(name, str) and name in hub_names()


def weights_file(name: str) -> Path:
    """Where torch.hub keeps the weights of `name`: <TORCH_HOME>/hub/checkpoints/<torchvision's file name>."""
    _check_name(name)
    return Path(cached_weights_path(name))


def is_cached(name: str) -> bool:
    """True when the weights file of `name` is in the hub cache."""
    return weights_file(name).is_file()


def size_mb(name: str) -> float:
    """The download size in MB, as torchvision's weights metadata gives it."""
    return float(imagenet_weights(name).meta.get("_file_size", 0.0))


def how_to_get(name: str) -> str:
    """The remedies, in plain words: the exact file and folder, and the command for a machine with a network."""
    path = weights_file(name)
    return (f"Put torchvision's file {path.name} ({size_mb(name):.0f} MB, from {imagenet_weights(name).url}) into "
            f"{path.parent} (set TORCH_HOME to use another cache), or on a machine with a network run "
            f"`python -m cnnviz fetch-weights {name}`, which saves it there.")


def missing_message(name: str) -> str:
    """What choosing an ImageNet network without its weights says."""
    return f"{name} needs its pretrained ImageNet weights, which are not on this machine. {how_to_get(name)}"


def fetch_weights(name: str, progress: bool = True) -> Path:
    """Download the weights of `name` into the hub cache (progress bar, torchvision's hash checked); the cached file
    when it is already there. WeightsUnavailable, with the remedies, when the download fails."""
    path = weights_file(name)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    url = imagenet_weights(name).url
    stem = path.name.rsplit(".", 1)[0]
    hash_prefix = stem.rsplit("-", 1)[-1] if "-" in stem else None  # torchvision names files <arch>-<sha256 prefix>.pth
    try:  # writes a temp file beside the target and renames it at the end: never half a file under the real name
        torch.hub.download_url_to_file(url, str(path), hash_prefix=hash_prefix, progress=progress)
    except Exception as exc:  # no network, a proxy refusal, a hash mismatch, a full disk...
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise WeightsUnavailable(f"Could not download the weights of {name} ({reason}). {how_to_get(name)}") from exc
    return path


def imagenet_meta(name: str) -> CheckpointMeta:
    """Metadata of torchvision's ImageNet-1k weights: 1000 class names, the weights' own input size, mean and std."""
    weights = imagenet_weights(name)
    t = weights.transforms()
    info = get_model_info(name)
    acc = weights.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    return CheckpointMeta(
        arch=name, dataset=DATASET, class_names=tuple(imagenet_classes(name)), in_channels=3,
        input_size=int(t.crop_size[0]), mean=tuple(float(v) for v in t.mean), std=tuple(float(v) for v in t.std),
        # torchvision's published top-1, not a measurement of the file on this disk: kept apart from test_acc
        metrics={"published_top1": acc / 100} if acc is not None else {},
        config={"source": weights.url, "title": info.title})


class HubModel(LoadedModel):
    """A loaded ImageNet network: it goes by its registry name (imagenet-resnet18), not its file's."""

    @property
    def name(self) -> str:
        return self.meta.arch


def load_hub_model(name: str) -> LoadedModel:
    """The ImageNet network `name` with its cached weights, in eval mode on the CPU. WeightsUnavailable (with the
    remedies) when the file is not cached; CheckpointError when it is damaged or does not fit."""
    path = weights_file(name)
    if not path.is_file():
        raise WeightsUnavailable(missing_message(name))
    if path.stat().st_size > MAX_BYTES:
        raise CheckpointError(f"{path.name} is larger than {MAX_BYTES // 1_000_000} MB; refusing to load it")
    try:  # weights_only: tensors and plain containers only; mmap: the file is paged in, not copied twice
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # a truncated download, a file of another kind under the right name
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path.name} in {path.parent} cannot be read ({first}); delete it and get it again. "
                              f"{how_to_get(name)}") from None
    meta = imagenet_meta(name)
    model = get_model(name, 3, 1000, meta.input_size)
    _check_state(model, state, meta, path.name)
    model.load_state_dict(state, strict=True)
    return HubModel(model.eval(), meta, path)


def hub_entry(name: str) -> CheckpointEntry:
    """The menu row of an ImageNet network: 'ImageNet weights' when cached, else 'needs download'."""
    path = weights_file(name)
    return CheckpointEntry(name, path, name, DATASET, None, "", shipped=False,
                           note=CACHED if path.is_file() else NEEDS_DOWNLOAD)


def hub_entries() -> list[CheckpointEntry]:
    """One menu row per registered ImageNet network, cached or not (choosing a missing one explains what to do)."""
    return [hub_entry(n) for n in hub_names()]


def hub_name_of(path: str | os.PathLike) -> str | None:
    """The ImageNet network whose cached weights file `path` is, else None."""
    p = Path(path)
    return next((n for n in hub_names() if weights_file(n) == p), None)


def _check_name(name: str) -> None:
    if not is_hub_name(name):
        raise KeyError(f"unknown ImageNet network {name!r}; choose one of: {', '.join(hub_names())}")


__all__ = ["CACHED", "DATASET", "NEEDS_DOWNLOAD", "HubModel", "fetch_weights", "how_to_get", "hub_entries", "hub_entry",
           "hub_name_of", "hub_names", "imagenet_meta", "is_cached", "is_hub_name", "load_hub_model",
           "missing_message", "size_mb", "weights_file"]
