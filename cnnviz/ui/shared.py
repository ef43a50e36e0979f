"""What every tab is handed: the server's services (training queue, model cache) and the components several tabs use."""
from __future__ import annotations

import gradio as gr

from ..store.model_cache import ModelCache
from ..train.config import Limits
from ..train.run_queue import RunQueue
from .common import SessionWorkspace, Shared, checkpoint_dropdown
from .uploads import SafeImage


def create_shared(limits: Limits) -> Shared:
    """Made inside the Blocks, before the tabs: services are created here (not at import), components with render=False
    so the tab that owns each renders it."""
    return Shared(limits=limits, train_queue=RunQueue(), workspace=gr.State(SessionWorkspace(ModelCache())),
                  predict_checkpoint=checkpoint_dropdown(render=False, elem_id="predict-checkpoint"),
                  explain_checkpoint=checkpoint_dropdown(render=False, elem_id="explain-checkpoint"),
                  explain_image=SafeImage(type="pil", format="png", height=300, render=False,
                                          sources=["upload", "clipboard"], label="Image (from the Predict tab)",
                                          elem_classes=["pixelated", "upscale"], elem_id="explain-image"))
