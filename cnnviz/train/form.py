"""The Train tab's form without its widgets: which settings it shows, what a preset puts in them, and the TrainConfig
they make within the server's Limits (no gradio here: the rules are tested, and usable, without a browser)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import torch

from ..data import availability, get_dataset_info
from ..models import get_model_info, list_models
from .config import ConfigError, Limits, TrainConfig, validate
from .presets import PRESETS

CUSTOM = "custom"  # the preset menu's "custom settings": only the form's own values count
# The TrainConfig settings the form shows; every other setting comes from the chosen preset.
FORM_FIELDS = ("arch", "dataset", "subset", "epochs", "batch_size", "optimizer", "lr", "schedule", "augment", "device",
               "seed", "momentum", "weight_decay", "label_smoothing", "world_size")
_INTS = frozenset({"subset", "epochs", "batch_size", "seed", "world_size"})
_LATER = {"world_size": 1}  # fields added after others called make_config with a dict of values: absent means this
SLIDER_EPOCHS = 50  # the epochs slider's end when the server sets no cap of its own (plenty for a lecture)


def _number(name: str, value: Any) -> Any:
    """Gradio numbers arrive as floats; whole ones become ints so the config check accepts them."""
    if name in _INTS and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def make_config(preset: str, values: Mapping[str, Any]) -> TrainConfig:
    """The preset's config (keeping settings the form does not show) with every form field applied."""
    base = PRESETS[preset].config if preset in PRESETS else TrainConfig()
    values = {**_LATER, **values}
    v = {k: _number(k, values[k]) for k in FORM_FIELDS}
    v["subset"] = v["subset"] or None  # 0 or empty: the whole dataset
    # Options tied to the preset's network (TinyVGG's width, d2l's Xavier init, its input size) only apply to it.
    same_arch = v["arch"] == base.arch
    return replace(base, **v, arch_kwargs=dict(base.arch_kwargs) if same_arch else {},
                   input_size=base.input_size if same_arch and v["dataset"] == base.dataset else None,
                   init=base.init if same_arch else "default")


def config_from_form(preset: str, values: Mapping[str, Any], limits: Limits, datasets: Iterable[str]) -> TrainConfig:
    """The validated config of a form submission; ConfigError names every problem.

    `datasets` are the ones this front end may train on (the web app cannot offer 'folder', which needs a server path).
    """
    allowed = list(datasets)
    if values["dataset"] not in allowed:
        raise ConfigError(f"dataset {values['dataset']!r} cannot be trained from the web app; choose one of "
                          f"{', '.join(allowed)}")
    return validate(make_config(preset, values), app_limits(limits))


def max_epochs(limits: Limits) -> int:
    """The epochs slider's end: the server's --max-epochs when one was given, else SLIDER_EPOCHS."""
    return limits.max_epochs if limits.max_epochs != Limits().max_epochs else SLIDER_EPOCHS


def app_limits(limits: Limits) -> Limits:
    """What the web app enforces: `limits` with epochs capped at the slider's end, so the slider, Gradio's range check
    and our message all name the same largest number."""
    return replace(limits, max_epochs=max_epochs(limits))


def devices_cap(limits: Limits, pool: Any) -> int:
    """The most devices one run may use here: the server's --max-devices-per-run, at most its workers of one kind
    (GPUs or CPU workers: a group cannot mix them); 1 for a pool that cannot hand out several at once (Ray)."""
    gpus = sum(str(d).startswith("cuda") for d in pool.devices)
    workers = max(gpus, len(pool.devices) - gpus) if hasattr(pool, "acquire_group") else 1
    return max(1, min(limits.max_devices_per_run or workers, workers))


def preset_values(name: str, limits: Limits) -> dict[str, Any]:
    """A preset's form values (FORM_FIELDS), within the server's limits; {} for custom settings (the form stays)."""
    if name not in PRESETS:
        return {}
    c = PRESETS[name].config
    values = {k: getattr(c, k) for k in FORM_FIELDS}
    subset = c.subset or 0  # 0: the whole dataset
    if limits.max_subset is not None:
        subset = min(subset or limits.max_subset, limits.max_subset)
    return {**values, "subset": subset, "epochs": min(c.epochs, max_epochs(limits)),
            "device": c.device if c.device in device_choices() else "auto"}


def preset_description(name: str) -> str:
    """Markdown under the preset menu: where the recipe comes from and what it does."""
    if name not in PRESETS:
        return "Custom settings: every field is yours."
    p = PRESETS[name]
    return f"*{p.source}:* {p.description}"


def preset_choices() -> list[tuple[str, str]]:
    """(label, value) pairs of the preset menu: custom settings first, then every preset."""
    return [("custom settings", CUSTOM)] + [(n, n) for n in PRESETS]


def arch_choices() -> list[tuple[str, str]]:
    """(title, name) of every architecture that trains from scratch (ImageNet models are for explaining only)."""
    return [(get_model_info(m).title, m) for m in list_models() if not get_model_info(m).imagenet]


def dataset_choices(datasets: Iterable[str]) -> list[tuple[str, str]]:
    """(label, name) of `datasets`, each label saying whether it is on disk, downloadable or missing."""
    return [(f"{get_dataset_info(d).title} ({availability(d)})", d) for d in datasets]


def device_choices() -> list[str]:
    """auto and cpu, and cuda where a GPU is present."""
    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def default_preset() -> str:
    """demo-fashion-mnist where Fashion-MNIST is on disk, else the digits demo (always offline)."""
    return "demo-fashion-mnist" if availability("fashion-mnist") == "offline-ready" else "demo-digits"
