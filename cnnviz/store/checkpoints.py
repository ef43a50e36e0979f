"""Checkpoints: atomic save, safe load (weights_only, strict, checked before loading), listing."""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.nn as nn

from ..images import InputSpec
from ..models import get_model, get_model_info, list_models
from .atomic import atomic_write
from .disk import as_os_error, is_torch_write_error
from .listing import Listing, Skipped
from .paths import checkpoints_dir, runs_dir, shipped_checkpoints_dir

FORMAT = "cnnviz-checkpoint"
VERSION = 1
MAX_BYTES = 600_000_000  # larger than any registered CIFAR/ImageNet model; refuses absurd files early
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ARCH_KWARGS = {"batch_norm", "width"}  # builder options a checkpoint may carry; anything else is refused


class CheckpointError(ValueError):
    """A checkpoint that cannot be saved or loaded; the message says why in plain words."""


@dataclass(frozen=True)
class CheckpointMeta:
    """Plain-data description of a trained model (JSON-friendly: str, int, float, list, dict)."""

    arch: str
    dataset: str
    class_names: tuple[str, ...]
    in_channels: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    arch_kwargs: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)  # e.g. test_acc, test_loss
    history: list = field(default_factory=list)  # one dict per epoch
    config: dict = field(default_factory=dict)  # the training config, as plain data
    seed: int = 0
    created: str = ""
    version: int = VERSION

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def spec(self) -> InputSpec:
        """How to turn an image into this model's input."""
        return InputSpec(self.in_channels, self.input_size, tuple(self.mean), tuple(self.std))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["class_names"], d["mean"], d["std"] = list(self.class_names), list(self.mean), list(self.std)
        return d


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model in eval mode on the CPU, with the metadata it was saved with."""

    model: nn.Module
    meta: CheckpointMeta
    path: Path

    @property
    def name(self) -> str:
        return checkpoint_name(self.path)


def checkpoint_name(path: str | os.PathLike) -> str:
    """The name a checkpoint goes by in menus: checkpoints/<name>.pt -> name, runs/.../<run id>/model.pt -> run id."""
    p = Path(path)
    return p.parent.name if p.name == "model.pt" else p.stem


def safe_name(name: str) -> str:
    """Validate a checkpoint name: letters, digits, '.', '_', '-', at most 64 characters."""
    name = name.removesuffix(".pt")
    if not _NAME_RE.match(name) or ".." in name:
        raise CheckpointError(f"invalid checkpoint name {name!r}: use letters, digits, '.', '_' or '-' (max 64)")
    return name


def checkpoint_path(name: str, root: Path | None = None) -> Path:
    """`root/<name>.pt` for a validated name (root: the user's checkpoints/, where `train --out` saves); never outside
    `root`."""
    root = Path(root or checkpoints_dir()).resolve()
    path = (root / f"{safe_name(name)}.pt").resolve()
    if path.parent != root:
        raise CheckpointError(f"checkpoint name {name!r} leaves {root}")
    return path


def build_meta(**fields) -> CheckpointMeta:
    """CheckpointMeta with `created` filled in."""
    fields.setdefault("created", datetime.now(UTC).isoformat(timespec="seconds"))
    return CheckpointMeta(**fields)


def save_checkpoint(model: nn.Module, meta: CheckpointMeta, path: str | os.PathLike) -> Path:
    """Write atomically (store.atomic: temp file in the same folder + os.replace): a crash never leaves half a file."""
    path = Path(path)
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    _check_finite(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"format": FORMAT, "version": VERSION, "meta": meta.to_dict(), "state_dict": state}
    try:
        return atomic_write(path, lambda f: torch.save(blob, f), durable=True)  # a result: fsynced
    except RuntimeError as exc:  # torch's zip writer reports a full disk as a RuntimeError, not an OSError
        if is_torch_write_error(exc):
            raise as_os_error(exc) from exc
        raise


def _check_finite(state: dict[str, torch.Tensor]) -> None:
    for key, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"weights contain NaN or infinity (first in {key}); the run diverged")


def named_checkpoint(name: str) -> Path | None:
    """The file a checkpoint name stands for: the user's checkpoints/<name>.pt, else the shipped one; None when neither
    exists. A checkpoint saved by name under a shipped name takes its place."""
    name = safe_name(name)
    return next((p for p in (checkpoint_path(name), shipped_checkpoints_dir() / f"{name}.pt") if p.is_file()), None)


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """A bare name means checkpoints/<name>.pt (saved by name, else shipped), else runs/<name>/model.pt; a path is
    used as given."""
    text = str(name_or_path)
    if os.sep in text or text.endswith(".pt"):
        return Path(text)
    named = named_checkpoint(text)
    run_model = runs_dir() / safe_name(text) / "model.pt"
    return named or (run_model if run_model.exists() else checkpoint_path(text))


def _read(path: Path, mmap: bool = False) -> dict:
    try:
        size = path.stat().st_size if path.is_file() else None
    except OSError:  # removed or unreadable between the listing and here
        size = None
    if size is None:
        raise CheckpointError(f"no checkpoint at {path}")
    if size > MAX_BYTES:
        raise CheckpointError(f"{path.name} is larger than {MAX_BYTES // 1_000_000} MB; refusing to load it")
    try:
        # weights_only=True: only tensors and plain containers are rebuilt; a pickle with code is refused.
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # UnpicklingError, truncated zip (RuntimeError), EOFError, ...
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path.name} is not a readable cnnviz checkpoint ({first})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is not a cnnviz checkpoint (no '{FORMAT}' header)")
    if blob.get("version") != VERSION:
        raise CheckpointError(f"{path.name} has checkpoint version {blob.get('version')!r}; this cnnviz reads {VERSION}")
    return blob


def _parse_meta(raw: object, name: str) -> CheckpointMeta:
    if not isinstance(raw, dict):
        raise CheckpointError(f"{name}: metadata missing")
    _check_types(raw, name)
    try:
        meta = CheckpointMeta(**{**raw, "class_names": tuple(raw["class_names"]), "mean": tuple(raw["mean"]),
                                 "std": tuple(raw["std"])})
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{name}: metadata incomplete or malformed ({exc})") from None
    if meta.arch not in list_models():
        raise CheckpointError(f"{name}: unknown architecture {meta.arch!r}")
    if not set(meta.arch_kwargs) <= _ARCH_KWARGS:
        raise CheckpointError(f"{name}: unsupported architecture options {sorted(set(meta.arch_kwargs) - _ARCH_KWARGS)}")
    if meta.in_channels not in (1, 3) or meta.num_classes < 2 or not 4 <= meta.input_size <= 512:
        raise CheckpointError(f"{name}: implausible input shape or class count in metadata")
    if len(meta.mean) != meta.in_channels or len(meta.std) != meta.in_channels or not all(s > 0 for s in meta.std):
        raise CheckpointError(f"{name}: mean/std do not match {meta.in_channels} channel(s)")
    return meta


_Number = (int, float)
# Field -> accepted types, and the type of each element for sequences: a damaged or foreign file is refused here, with
# the field named, instead of failing later in a menu label or a plot.
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], tuple[type, ...] | None]] = {
    "arch": ((str,), None), "dataset": ((str,), None), "class_names": ((list, tuple), (str,)),
    "in_channels": ((int,), None), "input_size": ((int,), None), "mean": ((list, tuple), _Number),
    "std": ((list, tuple), _Number), "arch_kwargs": ((dict,), None), "metrics": ((dict,), None),
    "history": ((list, tuple), (dict,)), "config": ((dict,), None), "seed": ((int,), None), "created": ((str,), None),
    "version": ((int,), None)}


def _check_types(raw: dict, name: str) -> None:
    """Refuse metadata whose fields have the wrong type (bool is no number here)."""
    for key, (types, items) in _FIELD_TYPES.items():
        if key not in raw:
            continue
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, types) or items is not None and not all(
                isinstance(v, items) and not isinstance(v, bool) for v in value):
            raise CheckpointError(f"{name}: metadata field {key!r} is malformed ({type(value).__name__})")
    acc = raw.get("metrics", {}).get("test_acc")
    if acc is not None and (isinstance(acc, bool) or not isinstance(acc, _Number)):
        raise CheckpointError(f"{name}: metadata field 'metrics.test_acc' is not a number")


def _check_state(model: nn.Module, state: object, meta: CheckpointMeta, name: str) -> None:
    """Compare keys and shapes before load_state_dict so the error names what differs."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{name}: state_dict missing or not made of tensors")
    expected = model.state_dict()
    missing, extra = set(expected) - set(state), set(state) - set(expected)
    if missing or extra:
        raise CheckpointError(f"{name}: weights do not fit {meta.arch} (missing {sorted(missing)[:3]}, "
                              f"unexpected {sorted(extra)[:3]})")
    for key, value in expected.items():
        if state[key].shape != value.shape:
            raise CheckpointError(f"{name}: {key} has shape {tuple(state[key].shape)}, {meta.arch} with "
                                  f"{meta.num_classes} classes at {meta.input_size} px needs {tuple(value.shape)}")
    _check_finite(state)


def load_checkpoint(name_or_path: str | os.PathLike) -> LoadedModel:
    """Load safely: weights_only, size cap, architecture and shapes checked, strict load, eval mode on CPU. An ImageNet
    network's name (or its file in the torch hub cache) loads torchvision's weights (store.hub_weights)."""
    from .hub_weights import hub_name_of, is_hub_name, load_hub_model  # late: hub_weights builds on this module

    if is_hub_name(name_or_path) or hub_name_of(name_or_path):
        return load_hub_model(str(name_or_path) if is_hub_name(name_or_path) else hub_name_of(name_or_path))
    path = resolve_checkpoint(name_or_path)
    blob = _read(path)
    meta = _parse_meta(blob.get("meta"), path.name)
    model = get_model(meta.arch, meta.in_channels, meta.num_classes, meta.input_size, **meta.arch_kwargs)
    _check_state(model, blob.get("state_dict"), meta, path.name)
    model.load_state_dict(blob["state_dict"], strict=True)
    return LoadedModel(model.eval(), meta, path)


@dataclass(frozen=True)
class CheckpointEntry:
    """One row of the checkpoint list, read without building the model."""

    name: str
    path: Path
    arch: str
    dataset: str
    test_acc: float | None
    created: str
    shipped: bool  # came with cnnviz (package data), not saved by name nor a run folder
    note: str = ""  # replaces shipped/yours/shared in menus, e.g. "needs download" (store.hub_weights)


def list_checkpoints(run_roots: Iterable[Path] | None = None) -> Listing[CheckpointEntry]:
    """The shipped checkpoints, those saved by name in checkpoints/, and <root>/*/model.pt for each run root (default:
    runs/): shipped first, then the others, each group newest first. A checkpoint saved under a shipped name hides the
    shipped one (the name opens it). Unreadable files are left out, and named with the reason in `skipped`."""
    roots = [runs_dir()] if run_roots is None else list(run_roots)
    saved = sorted(checkpoints_dir().glob("*.pt"))
    shipped_dir = shipped_checkpoints_dir()
    shipped = [p for p in sorted(shipped_dir.glob("*.pt")) if p.name not in {s.name for s in saved}]
    paths = shipped + saved + [p for root in roots for p in sorted(Path(root).glob("*/model.pt"))
                               if not p.parent.name.startswith(".")]  # not a run being removed
    entries, skipped = [], []
    for path in paths:
        try:
            meta = _parse_meta(_read(path, mmap=True).get("meta"), path.name)  # mmap: weights stay on disk
        except CheckpointError as exc:
            skipped.append(Skipped(checkpoint_name(path), path, str(exc)))
            continue
        entries.append(CheckpointEntry(checkpoint_name(path), path, meta.arch, meta.dataset, meta.metrics.get("test_acc"), meta.created,
                                       shipped=path.parent == shipped_dir))
    entries.sort(key=lambda e: e.created, reverse=True)
    return Listing(sorted(entries, key=lambda e: not e.shipped), skipped)  # stable: shipped first, each newest first


def describe(meta: CheckpointMeta) -> str:
    """One line for menus: architecture, dataset and accuracy."""
    acc = meta.metrics.get("test_acc")
    title = get_model_info(meta.arch).title
    return f"{title} on {meta.dataset}" + (f", test accuracy {acc:.1%}" if acc is not None else "")


__all__ = ["CheckpointError", "CheckpointMeta", "LoadedModel", "CheckpointEntry", "build_meta", "save_checkpoint",
           "load_checkpoint", "list_checkpoints", "checkpoint_path", "checkpoint_name",
           "named_checkpoint", "safe_name", "resolve_checkpoint", "describe"]
