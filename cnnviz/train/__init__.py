"""Training: configuration, presets, the engine (fit -> events), device-resident data, memory check, the run queue,
the per-user run sessions behind the Train tab and the training worker processes they run in (one per device), or the
actors of a Ray cluster (ray_pool).

Names are exported lazily: importing this package imports none of its modules.
"""
from .._lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": ".config",
    "Limits": ".config",
    "ConfigError": ".config",
    "validate": ".config",
    "config_problems": ".config",
    "Preset": ".presets",
    "PRESETS": ".presets",
    "get_preset": ".presets",
    "Event": ".events",
    "RunStarted": ".events",
    "Progress": ".events",
    "EpochEnded": ".events",
    "Paused": ".events",
    "Resumed": ".events",
    "Finished": ".events",
    "Stopped": ".events",
    "Failed": ".events",
    "END_EVENTS": ".events",
    "fit": ".engine",
    "resolve_device": ".engine",
    "DeviceData": ".device_data",
    "MemoryTooSmall": ".memory",
    "check_fits": ".memory",
    "evaluate_checkpoint": ".evaluate",
    "run_bench": ".bench",
    "Speed": ".speed",
    "choose_speed": ".speed",
    "QueueFull": ".run_queue",
    "RunQueue": ".run_queue",
    "TrainSession": ".session",
    "WorkerPool": ".worker_pool",
    "WorkerUnavailable": ".worker_pool",
    "RayPool": ".ray_pool",  # --ray: runs on a Ray cluster (the optional 'cluster' extra; ray imported only when made)
    "RayUnavailable": ".ray_pool",
    "GroupSpec": ".distributed",  # one run across processes (DDP): fit(cfg, group=GroupSpec(...)) or under torchrun
    "GroupBroken": ".distributed",
    "spec_from_environment": ".distributed",
    "DeviceError": ".worker_devices",
    "parse_devices": ".worker_devices",
    "Callback": ".callbacks",
    "TimelapseCallback": ".callbacks",
    "config_from_form": ".form",
    "per_class_accuracy": ".evaluate",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
