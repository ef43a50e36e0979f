"""What lives on disk: checkpoints, run folders (written while training, read for replay), workspaces, paths.

Names are exported lazily: importing this package imports none of its modules.
"""
from .._lazy import lazy_exports

_EXPORTS = {
    "CheckpointError": ".checkpoints",
    "CheckpointMeta": ".checkpoints",
    "LoadedModel": ".checkpoints",
    "load_checkpoint": ".checkpoints",
    "save_checkpoint": ".checkpoints",
    "list_checkpoints": ".checkpoints",
    "RunLog": ".run_writer",
    "RunRecord": ".run_reader",
    "list_runs": ".run_reader",
    "load_replay": ".run_reader",
    "Workspace": ".workspace",
    "WorkspaceError": ".workspace",
    "checkpoints_dir": ".paths",
    "runs_dir": ".paths",
    "atomic_write": ".atomic",
    "Timelapse": ".timelapse_file",
    "load_timelapse": ".timelapse_file",
    "ModelCache": ".model_cache",
    "checkpoint_name": ".checkpoints",
    "RunReadError": ".run_reader",
    "TimelapseError": ".timelapse_file",
    "Listing": ".listing",
    "Skipped": ".listing",
    "start_up": ".cleanup",
    "write_problem": ".disk",
    "fetch_weights": ".hub_weights",
    "hub_entries": ".hub_weights",
    "load_hub_model": ".hub_weights",
    "Imported": ".user_models",
    "import_to_checkpoints": ".user_models",
    "import_to_workspace": ".user_models",
    "load_user_model": ".user_models",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
