"""Time-lapse & replay tab: scrub through a run's epochs (probes with Grad-CAM, first-layer filters), export a GIF,
and replay its curves and confusion matrix, with no training and no GPU."""
from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import PIL.Image

from ..lecture.timelapse import FILE as TIMELAPSE_FILE
from ..lecture.timelapse import Timelapse, load_timelapse, render_frame, timelapse_gif
from ..render.figures import confusion_figure, figure_to_image
from ..render.lecture_pictures import history_frames
from ..store.run_reader import RunRecord, load_replay
from ..store.workspace import Workspace, WorkspaceError
from .common import SessionWorkspace, Shared, guarded, note, share_run, user_error
from .gradio_fixes import atomic_write
from .lecture_plots import clear_plots_on

NOTE = ("**What am I looking at?** A recording of one training run. The same test images were explained after every "
        "epoch (epoch 0 = before training): the colour shows where the network looked (Grad-CAM, red = most), the "
        "label under each image is its guess (green right, red wrong), and the strip at the bottom shows the first "
        "layer's filters. Drag the slider to watch attention and filters take shape; download the GIF for your slides. "
        "Below: the run's curves and final confusion matrix, replayed from disk.")
EMPTY = "Choose a run (train one in the Train tab, then press ↻)."
SHARE = "Share with everyone"
DELETE = "Delete this run"
_GIFS: list[Path] = []  # one temp folder per process, made on first use


def run_choices(ws: SessionWorkspace | None) -> list[tuple[str, str]]:
    """(label, run id) of every run this session sees (None: the shared ones), newest first; runs without a time-lapse
    say so."""
    runs = ws.workspace.runs() if ws is not None else Workspace().runs()
    return [(r.label + ("" if r.has_timelapse else " · no time-lapse"), r.run_id) for r in runs]


def find_run(run_id: str | None, ws: SessionWorkspace) -> RunRecord:
    """The run called `run_id`; only ids of runs this session sees are accepted (never a path from the request)."""
    if not run_id:
        raise user_error("Choose a run first (train one in the Train tab).")
    try:
        return ws.workspace.find_run(str(run_id))  # straight to its folder: scrubbing calls this per frame
    except WorkspaceError:
        raise user_error(f"No run called {run_id!r}; press ↻ to refresh the list.") from None


def run_timelapse(run_id: str | None, ws: SessionWorkspace) -> Timelapse:
    """The run's time-lapse, re-read when the file changes (a run still training adds a frame every epoch)."""
    record = find_run(run_id, ws)
    if not record.has_timelapse:
        raise user_error(f"Run {record.run_id} has no time-lapse (it was trained before recording existed, or "
                         "without saving).")
    st = (record.dir / TIMELAPSE_FILE).stat()
    return _load(str(record.dir), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _load(run_dir: str, mtime_ns: int, size: int) -> Timelapse:
    return load_timelapse(run_dir)


def _slider(t: Timelapse | None, value: int | None = None) -> gr.Slider:
    n = len(t.epochs) if t is not None else 1
    value = n - 1 if value is None else min(int(value), n - 1)
    return gr.Slider(minimum=0, maximum=max(1, n - 1), value=value, step=1, interactive=n > 1,
                     label=f"Epoch (0 = before training; {n - 1} recorded)" if t is not None else "Epoch")


def _summary(record: RunRecord, t: Timelapse | None) -> str:
    cfg = record.config
    head = (f"### {record.run_id}\n{cfg.get('arch')} on {cfg.get('dataset')}, {len(record.history)} of "
            f"{cfg.get('epochs')} epochs, optimizer {cfg.get('optimizer')}, learning rate {cfg.get('lr')}")
    if record.history:
        last = record.history[-1]
        head += f" · final test accuracy **{last['val_acc']:.1%}**"
    if t is None:
        return head + "\n\n⚠️ This run has no time-lapse; only its curves and confusion matrix can be replayed."
    return head + f"\n\n{len(t.labels)} probe images, Grad-CAM at `{t.layer}`, {len(t.epochs)} frames."


@guarded
def refresh_runs(current: str | None, ws: SessionWorkspace) -> gr.Dropdown:
    """The run menu with the current runs; keeps the selection when it still exists, else picks the newest."""
    choices = run_choices(ws)
    ids = [i for _, i in choices]
    return gr.Dropdown(choices=choices, value=current if current in ids else (ids[0] if ids else None))


@guarded
def replay(run_id: str | None, ws: SessionWorkspace) -> tuple:
    """A finished run: summary, epoch slider, last time-lapse frame, loss and accuracy curves, confusion matrix."""
    if not run_id:
        return EMPTY, _slider(None), None, None, None, None
    record = find_run(run_id, ws)
    data = load_replay(record.run_id, record.dir.parent)
    t = run_timelapse(record.run_id, ws) if record.has_timelapse else None
    loss, acc = history_frames(record.history)
    confusion = None
    if data.confusion is not None:
        confusion = figure_to_image(confusion_figure(data.confusion, data.class_names), dpi=100)
    frame = render_frame(t, len(t.epochs) - 1) if t is not None else None
    return _summary(record, t), _slider(t), frame, loss, acc, confusion


@guarded
def delete_run(run_id: str | None, ws: SessionWorkspace) -> gr.Dropdown:
    """Delete one of this user's own runs (weights, curves, time-lapse); the menu then shows the newest left."""
    if not run_id:
        raise user_error("Choose a run first.")
    ws.workspace.delete(str(run_id))
    gr.Info(f"Run {run_id} was deleted.")
    return refresh_runs(None, ws)


@guarded
def confirm_delete(run_id: str | None, armed: str | None, ws: SessionWorkspace) -> tuple:
    """Delete on the second click for the same run, so one stray click loses nothing."""
    if not run_id:
        raise user_error("Choose a run first.")
    if armed != run_id:
        record = find_run(run_id, ws)
        if not ws.workspace.owns(record.dir):
            raise user_error(f"Run {run_id} is shared with everyone; only the server's owner can remove it.")
        return gr.skip(), gr.Button(f"Click again to delete {run_id}"), run_id
    return delete_run(run_id, ws), gr.Button(DELETE), None


@guarded
def timelapse_frame(run_id: str | None, index: float, ws: SessionWorkspace) -> PIL.Image.Image:
    """Frame `index` of a run's time-lapse (0 = before training, then one per epoch)."""
    t = run_timelapse(run_id, ws)
    i = int(index)
    if not 0 <= i < len(t.epochs):
        raise user_error(f"This run recorded {len(t.epochs)} frames (0..{len(t.epochs) - 1}); there is no frame {i}.")
    return render_frame(t, i)


@guarded
def export_gif(run_id: str | None, ws: SessionWorkspace) -> str:
    """Every frame as an animated GIF (for slides), saved as <run id>-timelapse.gif in a temp folder."""
    t = run_timelapse(run_id, ws)
    if not _GIFS:
        _GIFS.append(Path(tempfile.mkdtemp(prefix="cnnviz-gifs-")))
    path = _GIFS[0] / f"{find_run(run_id, ws).run_id}-timelapse.gif"
    atomic_write(path, timelapse_gif(t))  # two users may export the same run's GIF at once
    return str(path)


@dataclass
class TimelapseTab:
    run: gr.Dropdown
    epoch: gr.Slider
    frame: gr.Image
    gif: gr.File


def build(shared: Shared, tab: gr.Tab) -> TimelapseTab:
    """Create the tab's components in the current context (inside `tab`) and wire its events."""
    note(NOTE)
    choices = run_choices(None)
    with gr.Row():
        run = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="Run", allow_custom_value=True,
                          scale=4, info="shared runs and your own, newest first", elem_id="replay-run")
        refresh = gr.Button("↻ Refresh", scale=0, min_width=100)
        share = gr.Button(SHARE, scale=0, min_width=160, elem_id="replay-share")
        delete = gr.Button(DELETE, scale=0, min_width=160, variant="stop", elem_id="replay-delete")
    armed = gr.State(None)  # the run a first click on Delete asked about; the second click deletes it
    summary = gr.Markdown(EMPTY)
    epoch = gr.Slider(0, 1, value=0, step=1, label="Epoch", interactive=False)
    frame = gr.Image(label="Time-lapse frame", format="png", interactive=False, elem_classes=["pixelated"],
                     buttons=["download", "fullscreen"], elem_id="timelapse-frame")
    with gr.Row():
        gif_btn = gr.Button("Export as animated GIF", scale=0, min_width=240)
        gif = gr.File(label="GIF for slides", interactive=False, height=90)
    gr.Markdown("#### Replay: curves and confusion matrix of this run")
    plot = dict(x="epoch", y="value", color="series", x_title="epoch", buttons=["fullscreen", "export"])
    with gr.Row():
        loss = gr.LinePlot(label="Loss", y_title="loss", **plot)
        acc = gr.LinePlot(label="Accuracy", y_title="accuracy", y_lim=[0, 1], **plot)
    confusion = gr.Image(label="Confusion matrix (test set, end of the run)", format="png", interactive=False,
                         buttons=["download", "fullscreen"], height=420)
    outs = [summary, epoch, frame, loss, acc, confusion]
    # Public endpoints first: a private listener of the same function would otherwise take its default api_name.
    ws = shared.workspace
    run.input(replay, [run, ws], outs, api_name="replay", concurrency_limit=4)
    share.click(share_run, [run, ws], share, api_visibility="private", concurrency_limit=None)
    run.change(lambda: (gr.Button(SHARE, interactive=True), gr.Button(DELETE), None), None, [share, delete, armed],
               api_visibility="private", queue=False)
    delete.click(confirm_delete, [run, armed, ws], [run, delete, armed], api_visibility="private",
                 concurrency_limit=None).then(replay, [run, ws], outs, api_visibility="private", concurrency_limit=4)
    gr.Button(visible=False).click(delete_run, [run, ws], run, api_name="delete_run", concurrency_limit=None)
    clear_plots_on([run.input, refresh.click, tab.select], [loss, acc])
    refresh.click(refresh_runs, [run, ws], run, api_name="runs", api_visibility="undocumented",
                  concurrency_limit=4).then(replay, [run, ws], outs, api_visibility="private", concurrency_limit=4)
    tab.select(refresh_runs, [run, ws], run, api_visibility="private", concurrency_limit=4).then(
        replay, [run, ws], outs, api_visibility="private", concurrency_limit=4)
    # The API takes the frame index as a plain number: a slider checks values against the range it last showed in
    # the caller's session, which is the previous run's range until /replay is called for the new one.
    api_index = gr.Number(visible=False, precision=0)
    gr.Button(visible=False).click(timelapse_frame, [run, api_index, ws], frame, api_name="timelapse_frame",
                                   concurrency_limit=4)
    epoch.input(timelapse_frame, [run, epoch, ws], frame, api_visibility="private", concurrency_limit=4,
                trigger_mode="always_last", show_progress="hidden")
    gif_btn.click(export_gif, [run, ws], gif, api_name="timelapse_gif", concurrency_id="lecture", concurrency_limit=2)
    return TimelapseTab(run, epoch, frame, gif)
