"""What every tab is handed: the server's services (training workers, model cache) and the components several tabs use."""
from __future__ import annotations

from collections.abc import Sequence

import gradio as gr

from ..store.model_cache import ModelCache
from ..train.config import Limits
from ..train.worker_pool import WorkerPool
from .common import SessionWorkspace, Shared, checkpoint_dropdown
from .picker import default_example
from .uploads import SafeImage

IDLE_SECONDS = 120.0


def _first_example() -> str | None:
    """The image Explain opens with (as Predict does): the default checkpoint's first example."""
    first = default_example()
    return str(first[0]) if first else None


def create_shared(limits: Limits, devices: Sequence[str] | None = None, trainers=None) -> Shared:
    """Made inside the Blocks, before the tabs: services are created here (not at import), components with render=False
    so the tab that owns each renders it. `devices` (a served app, `--devices`): one training process per device,
    started now so the first Start pays no torch import; None (a built app, tests): every GPU or one CPU worker,
    started at the first run. `trainers`: a pool made by the caller (a Ray cluster's, train.ray_pool) instead."""
    # A lazily started worker quits after IDLE_SECONDS without a run (a test suite builds many apps); a served one stays.
    if trainers is None:
        trainers = WorkerPool(devices or "auto", warm=devices is not None, idle_timeout=None if devices else IDLE_SECONDS)
    return Shared(limits=limits, trainers=trainers, workspace=gr.State(SessionWorkspace(ModelCache())),
                  predict_checkpoint=checkpoint_dropdown(render=False, elem_id="predict-checkpoint"),
                  explain_checkpoint=checkpoint_dropdown(render=False, elem_id="explain-checkpoint"),
                  explain_image=SafeImage(type="pil", format="png", height=300, render=False, value=_first_example(),
                                          sources=["upload", "clipboard"], label="Image (from the Predict tab)",
                                          elem_classes=["pixelated", "upscale"], elem_id="explain-image"))
