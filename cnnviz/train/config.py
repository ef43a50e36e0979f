"""Training configuration: one frozen dataclass, validated with messages a student can act on."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda")
INITS = ("default", "xavier")


class ConfigError(ValueError):
    """One or more settings are invalid; the message lists each problem and the allowed range."""


@dataclass(frozen=True)
class Limits:
    """Caps a lecturer can set for a shared server (see app.py --max-epochs etc.)."""

    max_epochs: int = 200
    max_subset: int | None = None  # None: whole dataset allowed
    max_batch_size: int = 4096
    max_queued_runs: int = 8  # runs that may wait behind the one training; more are refused with "queue full"
    max_runs_per_user: int = 1  # runs one workspace may have training or waiting (two tabs must not take two places)
    max_pause_seconds: float = 120.0  # a run paused this long while others wait is stopped (its weights saved)
    max_devices_per_run: int | None = None  # devices one run may train on together (DDP); None: no cap (torchrun)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; plain values only, so it serialises to JSON."""

    arch: str = "lenet5"
    dataset: str = "fashion-mnist"
    subset: int | None = None  # samples per split, stratified; None = all
    epochs: int = 5
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    schedule: str = "constant"
    label_smoothing: float = 0.0
    augment: bool = False  # pad+crop, plus a horizontal flip where mirror images are still the same class
    device: str = "auto"
    seed: int = 0
    init: str = "default"  # "xavier": Xavier-uniform weights, as d2l trains AlexNet
    input_size: int | None = None  # None: the architecture's native size, else the dataset's
    arch_kwargs: dict = field(default_factory=dict)
    data_dir: str | None = None
    folder_path: str | None = None  # for dataset "folder"
    world_size: int = 1  # processes (one device each) that train this run together with DDP; batch_size is their sum

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build from plain data (JSON, UI); unknown keys are an error, not silently ignored."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    def with_(self, **changes) -> TrainConfig:
        return replace(self, **changes)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def config_problems(cfg: TrainConfig, limits: Limits = Limits()) -> list[str]:
    """Every problem with `cfg`, as sentences; empty when it is valid."""
    from ..data import list_datasets  # late: keeps `import cnnviz.config` light
    from ..models import list_models

    p = []
    if cfg.arch not in list_models():
        p.append(f"architecture {cfg.arch!r} is unknown (choose from {', '.join(list_models())})")
    if cfg.dataset not in list_datasets():
        p.append(f"dataset {cfg.dataset!r} is unknown (choose from {', '.join(list_datasets())})")
    if not _is_int(cfg.epochs) or not 1 <= cfg.epochs <= limits.max_epochs:
        p.append(f"epochs must be a whole number from 1 to {limits.max_epochs}, got {cfg.epochs!r}")
    if not _is_int(cfg.batch_size) or not 1 <= cfg.batch_size <= limits.max_batch_size:
        p.append(f"batch size must be a whole number from 1 to {limits.max_batch_size}, got {cfg.batch_size!r}")
    cap = limits.max_devices_per_run
    if not _is_int(cfg.world_size) or not 1 <= cfg.world_size <= (cap or cfg.world_size):
        p.append(f"devices per run must be a whole number from 1 to {cap or 'the number of processes started'}, got "
                 f"{cfg.world_size!r}" + (" (this server's cap; ask the lecturer for more)" if cap else ""))
    elif _is_int(cfg.batch_size) and cfg.batch_size >= 1 and cfg.batch_size % cfg.world_size:
        lower = max(cfg.world_size, cfg.batch_size // cfg.world_size * cfg.world_size)
        p.append(f"batch size {cfg.batch_size} does not split evenly over {cfg.world_size} devices (each trains an "
                 f"equal share of every batch); use {lower} or {lower + cfg.world_size}")
    if cfg.subset is not None and (not _is_int(cfg.subset) or cfg.subset < 10):
        p.append(f"subset must be empty (all data) or at least 10 samples, got {cfg.subset!r}")
    if limits.max_subset is not None and (cfg.subset is None or (_is_int(cfg.subset) and cfg.subset > limits.max_subset)):
        p.append(f"this server allows at most {limits.max_subset} samples per split: set subset to {limits.max_subset} or less")
    if cfg.optimizer not in OPTIMIZERS:
        p.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")
    if not _is_num(cfg.lr) or not 0 < cfg.lr <= 10:
        p.append(f"learning rate must be a number in (0, 10], got {cfg.lr!r}")
    if not _is_num(cfg.momentum) or not 0 <= cfg.momentum < 1:
        p.append(f"momentum must be in [0, 1), got {cfg.momentum!r}")
    if not _is_num(cfg.weight_decay) or not 0 <= cfg.weight_decay <= 1:
        p.append(f"weight decay must be in [0, 1], got {cfg.weight_decay!r}")
    if cfg.schedule not in SCHEDULES:
        p.append(f"schedule must be one of {', '.join(SCHEDULES)}, got {cfg.schedule!r}")
    if not _is_num(cfg.label_smoothing) or not 0 <= cfg.label_smoothing < 1:
        p.append(f"label smoothing must be in [0, 1), got {cfg.label_smoothing!r}")
    if cfg.device not in DEVICES:
        p.append(f"device must be one of {', '.join(DEVICES)}, got {cfg.device!r}")
    if cfg.init not in INITS:
        p.append(f"init must be one of {', '.join(INITS)}, got {cfg.init!r}")
    if not _is_int(cfg.seed) or not 0 <= cfg.seed < 2**32:
        p.append(f"seed must be a whole number from 0 to 2**32-1, got {cfg.seed!r}")
    if cfg.input_size is not None and (not _is_int(cfg.input_size) or not 8 <= cfg.input_size <= 512):
        p.append(f"input size must be empty or from 8 to 512 px, got {cfg.input_size!r}")
    if cfg.dataset == "folder" and not cfg.folder_path:
        p.append("dataset 'folder' needs a folder path (one sub-folder of images per class)")
    return p


def divergence_advice(cfg: TrainConfig) -> str:
    """What to change after a run diverged, fitting its optimizer and schedule (an Adam run is not told to use Adam)."""
    tips = [f"Lower the learning rate (now {cfg.lr:g}, try {cfg.lr / 10:g})"]
    if cfg.optimizer == "sgd":
        if _is_num(cfg.momentum) and cfg.momentum > 0.9:
            tips.append(f"lower the momentum (now {cfg.momentum:g}, try 0.9)")
        tips.append("switch the optimizer to Adam with learning rate 1e-3")
    else:  # adam, adamw: the rate is the usual culprit; 1e-3 is their customary start
        tips[0] = f"Lower the learning rate (now {cfg.lr:g}, try {cfg.lr / 10:g}; {cfg.optimizer} usually trains well near 1e-3)"
        if cfg.schedule != "onecycle":
            tips.append("use the onecycle schedule, which starts from a small rate")
    tips.append("pick a network with batch norm (VGG-11/13/16, ResNet)")
    return ", or ".join(tips) + "."


def validate(cfg: TrainConfig, limits: Limits = Limits()) -> TrainConfig:
    """Return `cfg` unchanged, or raise ConfigError listing every problem."""
    problems = config_problems(cfg, limits)
    if problems:
        raise ConfigError("; ".join(problems))
    return cfg
