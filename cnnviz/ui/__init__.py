"""The Gradio app: `build_demo()` assembles the tabs; `launch_options()` holds theme, CSS and safe server settings.

This package is the only part of cnnviz that imports gradio.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

# An environment default, not work: it must be in place before gradio is first imported (no version check, no telemetry).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import torch  # noqa: E402

from ..store.cleanup import start_up  # noqa: E402
from ..store.owner import owned_temp_folder  # noqa: E402
from ..store.paths import examples_dir, photos_dir  # noqa: E402
from ..train.config import Limits  # noqa: E402
from . import architecture_tab, explain_tab, gradio_fixes, lecture, overview_tab, own_model_tab, predict_tab, train_tab  # noqa: E402
from .server_guards import UPLOAD_BUDGET_MB, GuardLimits, guard_middleware  # noqa: E402
from .shared import create_shared  # noqa: E402
from .workspaces import browser_token, claim_workspace  # noqa: E402

TITLE = "cnnviz: see how convolutional networks learn"
MAX_UPLOAD_MB = 10
# The queue's idle poll: measured and chosen in gradio_fixes (1 ms costs idle CPU, 50 ms costs every click).
QUEUE_POLL_SECONDS = gradio_fixes.QUEUE_POLL_SECONDS
SERVER_TORCH_THREADS = 1
SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Consolas", "Liberation Mono", "monospace"]

CSS = """
.pixelated img, img.pixelated { image-rendering: pixelated; image-rendering: crisp-edges; }
/* Inputs are often 8-32 px dataset images: fill the frame instead of showing a dot. */
.upscale img { width: 100%; height: 100%; object-fit: contain; }
#predict-examples img { image-rendering: pixelated; min-width: 56px; min-height: 56px; }
.tab-note { border-left: 4px solid var(--color-accent); padding-left: 12px; opacity: 0.92; }
.preset-info { font-size: 0.9em; }
.totals { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0; }
.total { flex: 1 1 160px; border-radius: 10px; padding: 10px 14px; background: var(--color-accent-soft); }
.total-value { font-size: 1.8em; font-weight: 700; color: var(--color-accent); line-height: 1.2; }
.total-label { font-weight: 600; }
.total-sub { font-size: 0.8em; opacity: 0.75; }
.arch-diagram { display: flex; flex-wrap: wrap; align-items: flex-end; gap: 4px 10px; padding: 10px 4px; }
.arch-layer { display: flex; flex-direction: column; align-items: center; min-width: 58px; }
.arch-box { border-radius: 3px; border: 1px solid rgba(0,0,0,0.35); box-shadow: 3px -3px 0 rgba(0,0,0,0.12); }
.arch-input { background: #b0b7c3; } .arch-conv { background: #4f7cff; } .arch-pool { background: #ff9f43; }
.arch-fc { background: #2eb872; }
.arch-shortcut { background: repeating-linear-gradient(45deg, #4f7cff, #4f7cff 4px, #9db5ff 4px, #9db5ff 8px); }
.arch-cap { font-size: 0.72em; text-align: center; line-height: 1.25; margin-top: 4px; white-space: nowrap; }
.arch-tag { display: inline-block; font-size: 0.9em; padding: 0 3px; margin: 1px; border-radius: 3px;
            background: var(--background-fill-secondary); }
.arch-legend { font-size: 0.8em; opacity: 0.8; } .arch-key { display: inline-block; width: 12px; height: 12px;
               margin: 0 4px 0 10px; vertical-align: middle; border-radius: 2px; }
.train-status { padding: 8px 4px; }
.ts-head { font-size: 1.5em; font-weight: 700; }
.ts-bar { height: 12px; border-radius: 6px; background: var(--background-fill-secondary); overflow: hidden; margin: 6px 0; }
.ts-bar > div { height: 100%; background: var(--color-accent); transition: width 0.2s linear; }
.ts-stats { font-variant-numeric: tabular-nums; } .ts-sub { font-size: 0.8em; opacity: 0.7; }
#train-result h3 { font-size: 1.8em; color: var(--color-accent); }
.cam-legend { display: flex; align-items: center; gap: 8px; font-size: 0.85em; }
.jet-bar { flex: 1; height: 12px; border-radius: 3px;
           background: linear-gradient(90deg,#00008f,#0000ff,#00ffff,#80ff80,#ffff00,#ff0000,#800000); }
"""


def theme() -> gr.themes.Base:
    """Large text for projectors; system fonts only, so nothing is fetched from the network."""
    return gr.themes.Default(text_size=gr.themes.sizes.text_lg, font=SYSTEM_FONTS, font_mono=MONO_FONTS,
                             primary_hue="blue")


def private_upload_folder() -> Path:
    """Give this process its own Gradio upload folder (mode 0700, removed at exit) unless GRADIO_TEMP_DIR is set.

    Gradio serves every file in its upload folder, not only the ones this app returned, and that folder defaults to
    /tmp/gradio, shared by every Gradio app on the machine. Components read the folder when they are built, so this runs
    before any component (build_demo calls it); calling it again changes nothing.
    """
    if "GRADIO_TEMP_DIR" not in os.environ:  # <tmp>/cnnviz-gradio-<pid>-<random>: a killed server's is removed at the next start
        os.environ["GRADIO_TEMP_DIR"] = str(owned_temp_folder("cnnviz-gradio-"))
    return Path(os.environ["GRADIO_TEMP_DIR"])


def build_demo(limits: Limits | None = None, devices: Sequence[str] | None = None, trainers=None) -> gr.Blocks:
    """The whole app (not launched): Architecture, Train, Predict and Explain tabs, then the lecture tabs. `devices`: one
    training process per device, started now (a served app); None: started at the first run (see ui/shared.py).
    `trainers`: a pool made already (train.ray_pool.RayPool for `--ray`), used instead of local processes."""
    limits = limits or Limits()
    start_up()  # remove what killed servers left; log the runs and checkpoints that cannot be read (they are left out)
    private_upload_folder()
    gradio_fixes.install()
    with gr.Blocks(title=TITLE, analytics_enabled=False, fill_width=True, delete_cache=(600, 3600)) as demo:
        gr.Markdown(f"# {TITLE}")
        # Written by more than one tab, so made first and rendered by the tab that shows them.
        shared = create_shared(limits, devices, trainers)
        with gr.Tabs():
            with gr.Tab("Architecture", id="architecture"):
                architecture_tab.build(shared)
            with gr.Tab("Train", id="train"):
                train_tab.build(shared)
            with gr.Tab("Predict", id="predict"):
                predict_tab.build(shared)
            with gr.Tab("Explain", id="explain") as tab:
                explain_tab.build(shared, tab)
            with gr.Tab("Whole network", id="overview") as tab:
                overview_tab.build(shared, tab)  # every stage for one image, and one unit's arithmetic
            lecture.build_lecture_tabs(shared)  # time-lapse, confusion drill-down, compare, sanity check, receptive field
            with gr.Tab("Your model", id="own-model"):
                own_model_tab.build(shared)  # upload a .pt; torchvision's ImageNet weights
        # Each page sees the shared runs and its user's own (see ui/workspaces.py).
        token = browser_token()
        demo.load(claim_workspace, [token, shared.workspace],
                  [token, shared.predict_checkpoint, shared.explain_checkpoint], api_visibility="private", queue=False)
    return demo


def configure_queue(demo: gr.Blocks, max_size: int | None = 20) -> gr.Blocks:
    """demo.queue(max_size=...) ('queue full' instead of an endless wait), with a calmer idle poll (see QUEUE_POLL_SECONDS)."""
    demo.queue(max_size=max_size)
    gradio_fixes.set_queue_poll(demo, QUEUE_POLL_SECONDS)
    # One torch thread per request in the server: requests already run side by side, these nets are small, and with
    # other work on a 2-core machine two OpenMP threads per request waited for each other (Grad-CAM + feature maps
    # 88-284 ms instead of 6-8 ms, README "Speed"). Training runs in its own worker processes with their own setting.
    torch.set_num_threads(SERVER_TORCH_THREADS)
    return demo


def launch_options(host: str = "127.0.0.1", port: int | None = None, share: bool = False,
                   auth: list[tuple[str, str]] | Callable | None = None, max_upload_mb: int = MAX_UPLOAD_MB,
                   max_body_mb: float | None = None, upload_budget_mb: float = UPLOAD_BUDGET_MB) -> dict:
    """Keyword arguments for demo.launch(): safe defaults (loopback, no share link, no monitoring, capped uploads and
    request bodies, a per-user upload budget, a login for every route under auth: see server_guards.py). `auth` is
    Gradio's own: (user, password) pairs or a callable (user, password) -> bool, possibly async."""
    guards = GuardLimits.from_mb(max_upload_mb, max_body_mb, upload_budget_mb)
    return dict(server_name=host, server_port=port, share=share, auth=auth or None, theme=theme(), css=CSS,
                max_file_size=f"{int(max_upload_mb)}mb", show_error=False, enable_monitoring=False, ssr_mode=False, pwa=False,
                mcp_server=False, run_history=False, quiet=True, app_kwargs={"middleware": [guard_middleware(guards)]},
                # The example PNGs are package data: after a plain `pip install` they live in site-packages, outside
                # the folders Gradio serves by default. Only the two folders of public images are added.
                allowed_paths=[str(examples_dir()), str(photos_dir())])


__all__ = ["CSS", "build_demo", "configure_queue", "launch_options", "private_upload_folder", "theme"]
