"""A user's own model file -> a cnnviz checkpoint: a cnnviz checkpoint as it is, or a plain `state_dict` of a
registered architecture with the dataset (or class names) and input size it was trained for.

Safety: the file is size-capped, TorchScript archives are refused before unpickling, it is read with
weights_only=True (a pickled full model is refused, never run), and keys and shapes are compared with the
architecture before a strict load, so a mismatch names the layer and both shapes.
"""
from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import get_dataset_info
from ..models import get_model, get_model_info, list_models
from .checkpoints import (
    FORMAT,
    MAX_BYTES,
    VERSION,
    CheckpointError,
    CheckpointMeta,
    _check_state,
    _parse_meta,
    build_meta,
    checkpoint_path,
    safe_name,
    save_checkpoint,
)
from .hub_weights import DATASET as IMAGENET
from .hub_weights import imagenet_meta, is_hub_name
from .workspace import Workspace

EXPORT_HINT = ("Export the weights only: `torch.save(model.state_dict(), 'weights.pt')` in the script that trained it, "
               "then import weights.pt with its architecture.")
_WRAPPERS = ("state_dict", "model_state_dict", "model")  # common training-script dicts around the weights
_GLOBAL = re.compile(r"GLOBAL ([A-Za-z_][\w.]*)")  # how torch's weights-only unpickler names a refused class
_IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class Imported:
    """Where an imported model was written, under which name, and what it was read as."""

    name: str
    path: Path
    meta: CheckpointMeta
    source: str  # "cnnviz checkpoint" or "state_dict"

    @property
    def summary(self) -> str:
        m = self.meta
        return (f"{self.name}: {get_model_info(m.arch).title} ({self.source}), {m.num_classes} classes, input "
                f"{m.in_channels}x{m.input_size}x{m.input_size}")


def read_model_file(path: str | os.PathLike, max_bytes: int = MAX_BYTES) -> object:
    """The file's contents as tensors and plain containers, or CheckpointError saying what it is and what to do."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise CheckpointError(f"no model file at {path}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{name} is empty (0 bytes)")
    if size > max_bytes:
        raise CheckpointError(f"{name} is {size / 1e6:.0f} MB; the limit here is {max_bytes / 1e6:.0f} MB")
    if _is_torchscript(path):
        raise CheckpointError(f"{name} is a TorchScript archive (torch.jit.save), which holds code, not just weights. "
                              + EXPORT_HINT)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)  # only tensors and plain containers
    except Exception as exc:  # UnpicklingError (a pickled class), a truncated zip, random bytes...
        text = str(exc)
        found = _GLOBAL.search(text)  # weights_only met a class or function: torch.save(model), or worse
        if found:
            cls = found.group(1)
            raise CheckpointError(f"{name} holds a pickled Python object ({cls}), such as a whole model saved with "
                                  "torch.save(model), not only tensors; loading it could run code, so it is refused. "
                                  + EXPORT_HINT) from None
        raise CheckpointError(f"{name} is not a readable PyTorch file ({_reason(text, exc)}); it may be damaged or "
                              "cut off. Save it again with torch.save(model.state_dict(), ...).") from None


def _reason(text: str, exc: Exception) -> str:
    """The informative line of torch.load's error: weights_only errors put it after 'WeightsUnpickler error:'."""
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0].split(". ")[0][:120] if lines else type(exc).__name__


def _is_torchscript(path: Path) -> bool:
    """torch.jit.save archives carry code/ and constants.pkl; torch.save archives only data.pkl and data/."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _state_dict(blob: object, name: str) -> dict[str, torch.Tensor]:
    """The tensors of a plain state_dict, also inside {'state_dict': ...} and with DataParallel's 'module.' prefix."""
    if isinstance(blob, dict):
        inner = next((blob[k] for k in _WRAPPERS if isinstance(blob.get(k), dict)), None)
        blob = inner if inner is not None and not all(isinstance(v, torch.Tensor) for v in blob.values()) else blob
    if not isinstance(blob, dict) or not blob or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                         for k, v in blob.items()):
        raise CheckpointError(f"{name} holds no state_dict (a dict of parameter names to tensors). " + EXPORT_HINT)
    if all(k.startswith("module.") for k in blob):  # saved from nn.DataParallel / DistributedDataParallel
        blob = {k.removeprefix("module."): v for k, v in blob.items()}
    return blob


def _first_conv_channels(state: dict[str, torch.Tensor]) -> int | None:
    return next((int(v.shape[1]) for v in state.values() if v.dim() == 4), None)


def state_dict_meta(arch: str, state: dict[str, torch.Tensor], dataset: str | None = None,
                    class_names: Sequence[str] | None = None, input_size: int | None = None,
                    source: str = "") -> CheckpointMeta:
    """Metadata for a plain state_dict: classes, channels and normalisation from the dataset (or ImageNet's for an
    ImageNet network), class names if given, the input size if given else the architecture's or dataset's own."""
    if arch not in list_models():
        raise CheckpointError(f"unknown architecture {arch!r}; choose one of: {', '.join(list_models())}")
    names = tuple(str(c).strip() for c in class_names or () if str(c).strip())
    info = get_model_info(arch)
    if info.imagenet and dataset in (None, "", IMAGENET) and not names:
        base = imagenet_meta(arch)  # torchvision's layout with the user's weights: 1000 ImageNet classes
        return _meta(arch, IMAGENET, base.class_names, 3, input_size or base.input_size, base.mean, base.std, source)
    if dataset and dataset != IMAGENET:
        d = get_dataset_info(dataset)  # KeyError "unknown dataset ...; choose one of" for a typo
        if names and len(names) != d.num_classes:
            raise CheckpointError(f"{dataset} has {d.num_classes} classes but {len(names)} class names were given")
        size = input_size or info.input_size or max(d.size, info.min_size)
        return _meta(arch, dataset, names or tuple(d.class_names), d.channels, size, tuple(d.mean), tuple(d.std), source)
    if not names:
        raise CheckpointError("say what the model predicts: choose the dataset it was trained on, or give its class "
                              "names (comma-separated, in the order of its outputs)")
    channels = _first_conv_channels(state) or 3
    size = input_size or info.input_size
    if not size:
        raise CheckpointError(f"{arch} takes any input size: give the size it was trained at (e.g. 28 or 32 px)")
    mean, std = _IMAGENET_STATS if channels == 3 else ((0.5,), (0.5,))
    return _meta(arch, "custom", names, channels, size, mean, std, source)


def _meta(arch, dataset, names, channels, size, mean, std, source) -> CheckpointMeta:
    return build_meta(arch=arch, dataset=dataset, class_names=tuple(names), in_channels=int(channels),
                      input_size=int(size), mean=tuple(mean), std=tuple(std), config={"imported_from": source})


def load_user_model(path: str | os.PathLike, arch: str | None = None, dataset: str | None = None,
                    class_names: Sequence[str] | None = None, input_size: int | None = None,
                    max_bytes: int = MAX_BYTES) -> tuple[torch.nn.Module, CheckpointMeta, str]:
    """(model in eval mode, its metadata, 'cnnviz checkpoint' or 'state_dict') from a user's file, checked and loaded
    strictly; CheckpointError with a message that says what to change."""
    path = Path(path)
    name = path.name
    blob = read_model_file(path, max_bytes)
    if isinstance(blob, dict) and blob.get("format") == FORMAT:
        if blob.get("version") != VERSION:
            raise CheckpointError(f"{name} has checkpoint version {blob.get('version')!r}; this cnnviz reads {VERSION}")
        meta, state, source = _parse_meta(blob.get("meta"), name), blob.get("state_dict"), "cnnviz checkpoint"
    else:
        if not arch:
            raise CheckpointError(f"{name} is a plain state_dict: choose the architecture it was trained with")
        state = _state_dict(blob, name)
        meta, source = state_dict_meta(arch, state, dataset, class_names, input_size, name), "state_dict"
        meta = _parse_meta(meta.to_dict(), name)  # the same plausibility checks as any checkpoint
    model = get_model(meta.arch, meta.in_channels, meta.num_classes, meta.input_size, **meta.arch_kwargs)
    try:
        _check_state(model, state, meta, name)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}. Check the architecture, and the dataset or class names and input size it was "
                              "trained with.") from None
    model.load_state_dict(state, strict=True)
    return model.eval(), meta, source


def _free_name(name: str) -> str:
    name = safe_name(name)
    if is_hub_name(name):
        raise CheckpointError(f"{name!r} is the name of torchvision's ImageNet network; choose another name")
    return name


def import_to_checkpoints(path: str | os.PathLike, name: str | None = None, overwrite: bool = False,
                          **spec) -> Imported:
    """Import into checkpoints/<name>.pt (the command line's shared place, where `train --out` saves)."""
    name = _free_name(name or Path(path).stem)
    target = checkpoint_path(name)
    if target.exists() and not overwrite:
        raise CheckpointError(f"a checkpoint called {name!r} already exists ({target}); choose another name")
    model, meta, source = load_user_model(path, **spec)
    return Imported(name, save_checkpoint(model, meta, target), meta, source)


def import_to_workspace(path: str | os.PathLike, workspace: Workspace, name: str | None = None, **spec) -> Imported:
    """Import as the user's own entry (runs/users/<digest>/<name>/model.pt): only their workspace lists and opens it."""
    if workspace.own_root is None:
        raise CheckpointError("this view has no workspace of its own to import into")
    name = _free_name(name or Path(path).stem)
    if workspace.find_checkpoint(name) is not None:
        raise CheckpointError(f"there is already a checkpoint called {name!r}; choose another name")
    model, meta, source = load_user_model(path, **spec)
    return Imported(name, save_checkpoint(model, meta, workspace.own_root / name / "model.pt"), meta, source)


__all__ = ["EXPORT_HINT", "Imported", "import_to_checkpoints", "import_to_workspace", "load_user_model",
           "read_model_file", "state_dict_meta"]
