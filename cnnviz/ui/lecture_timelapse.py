"""Time-lapse & replay tab: scrub through a run's epochs (probes with Grad-CAM, first-layer filters), export a GIF,
and replay its curves and confusion matrix, with no training and no GPU. Layout and wiring only: the replay is
cnnviz.lecture.replay."""
from __future__ import annotations

import gradio as gr

from ..lecture.replay import RunMenu, frame_at, recorded_timelapse, replay_run, run_menu, write_gif
from ..store.run_reader import RunRecord
from ..store.scratch import ScratchFolder
from ..store.timelapse_file import Timelapse
from ..store.workspace import UnreadableRun, Workspace, WorkspaceError
from .common import SessionWorkspace, Shared, guarded, note, share_run, user_error
from .inputs import SafeNumber, SafeSlider
from .lecture_plots import clear_plots_on

NOTE = ("**What am I looking at?** A recording of one training run. The same test images were explained after every "
        "epoch (epoch 0 = before training): the colour shows where the network looked (Grad-CAM, red = most), the "
        "label under each image is its guess (green right, red wrong), and the strip at the bottom shows the first "
        "layer's filters. Drag the slider to watch attention and filters take shape; download the GIF for your slides. "
        "Below: the run's curves and final confusion matrix, replayed from disk.")
EMPTY = "Choose a run (train one in the Train tab, then press ↻)."
SHARE = "Share with everyone"
DELETE = "Delete this run"
MENU_INFO = "shared runs and your own, newest first"
REPLAY = dict(api_visibility="private", concurrency_limit=4)


def run_menu_for(ws: SessionWorkspace | None) -> RunMenu:
    """The run menu of this session (None: the shared runs, as the page is first built)."""
    return run_menu(ws.workspace if ws is not None else Workspace())


def menu_info(menu: RunMenu) -> str:
    """The run menu's info line: what it lists, and which run folders it left out."""
    return f"{MENU_INFO} · {menu.note}" if menu.note else MENU_INFO


def find_run(run_id: str | None, ws: SessionWorkspace) -> RunRecord:
    """The run called `run_id`; only ids of runs this session sees are accepted (never a path from the request)."""
    if not run_id:
        raise user_error("Choose a run first (train one in the Train tab).")
    try:
        return ws.workspace.find_run(str(run_id))  # straight to its folder: scrubbing calls this per frame
    except UnreadableRun as exc:  # there, but damaged: say what is wrong with it
        raise user_error(f"{str(exc)[:1].upper()}{str(exc)[1:]}. Fix or delete that run folder.") from None
    except WorkspaceError:
        raise user_error(f"No run called {run_id!r}; press ↻ to refresh the list.") from None


def epoch_slider(t: Timelapse | None) -> gr.Slider:
    """The epoch slider for a time-lapse (or none), at its last frame."""
    n = len(t.epochs) if t is not None else 1
    return gr.Slider(minimum=0, maximum=max(1, n - 1), value=n - 1, step=1, interactive=n > 1,
                     label=f"Epoch (0 = before training; {n - 1} recorded)" if t is not None else "Epoch")


class TimelapseTab:
    """The tab's components (made in the current context) and its handlers: keyword inputs, {component: value} out."""

    def __init__(self, shared: Shared, tab: gr.Tab) -> None:
        note(NOTE)
        self.gifs = ScratchFolder("cnnviz-gifs-")  # made on the first GIF, not when the app is built
        menu = run_menu_for(None)
        choices = menu.choices
        with gr.Row():
            self.run = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="Run",
                                   allow_custom_value=True, scale=4, info=menu_info(menu), elem_id="replay-run")
            self.refresh = gr.Button("↻ Refresh", scale=0, min_width=100)
            self.share = gr.Button(SHARE, scale=0, min_width=160, elem_id="replay-share")
            self.delete = gr.Button(DELETE, scale=0, min_width=160, variant="stop", elem_id="replay-delete")
        self.armed = gr.State(None)  # the run a first click on Delete asked about; the second click deletes it
        self.summary = gr.Markdown(EMPTY)
        self.epoch = SafeSlider(0, 1, value=0, step=1, label="Epoch", interactive=False)
        self.frame = gr.Image(label="Time-lapse frame", format="png", interactive=False, elem_classes=["pixelated"],
                              buttons=["download", "fullscreen"], elem_id="timelapse-frame")
        with gr.Row():
            self.gif_btn = gr.Button("Export as animated GIF", scale=0, min_width=240)
            self.gif = gr.File(label="GIF for slides", interactive=False, height=90)
        gr.Markdown("#### Replay: curves and confusion matrix of this run")
        plot = dict(x="epoch", y="value", color="series", x_title="epoch", buttons=["fullscreen", "export"])
        with gr.Row():
            self.loss = gr.LinePlot(label="Loss", y_title="loss", **plot)
            self.acc = gr.LinePlot(label="Accuracy", y_title="accuracy", y_lim=[0, 1], **plot)
        self.confusion = gr.Image(label="Confusion matrix (test set, end of the run)", format="png", interactive=False,
                                  buttons=["download", "fullscreen"], height=420)
        self._wire(shared, tab)

    def _wire(self, shared: Shared, tab: gr.Tab) -> None:
        ws = shared.workspace
        run_in = {"run_id": self.run, "ws": ws}
        outs = [self.summary, self.epoch, self.frame, self.loss, self.acc, self.confusion]
        # Public endpoints first: a private listener of the same function would otherwise take its default api_name.
        self.run.input(self.replay, inputs_kwargs=run_in, outputs=outs, api_name="replay", concurrency_limit=4)
        self.share.click(self.share_run, inputs_kwargs={"name": self.run, "ws": ws}, outputs=self.share,
                         api_visibility="private", concurrency_limit=None)
        self.run.change(self.reset_buttons, outputs=[self.share, self.delete, self.armed], api_visibility="private",
                        queue=False)
        self.delete.click(self.confirm_delete, inputs_kwargs={"run_id": self.run, "armed": self.armed, "ws": ws},
                          outputs=[self.run, self.delete, self.armed], api_visibility="private",
                          concurrency_limit=None).then(self.replay, inputs_kwargs=run_in, outputs=outs, **REPLAY)
        gr.Button(visible=False).click(self.delete_run, inputs_kwargs=run_in, outputs=self.run, api_name="delete_run",
                                       concurrency_limit=None)
        clear_plots_on([self.run.input, self.refresh.click, tab.select], [self.loss, self.acc])
        menu_in = {"current": self.run, "ws": ws}
        self.refresh.click(self.refresh_runs, inputs_kwargs=menu_in, outputs=self.run, api_name="runs",
                           api_visibility="undocumented", concurrency_limit=4).then(
            self.replay, inputs_kwargs=run_in, outputs=outs, **REPLAY)
        tab.select(self.refresh_runs, inputs_kwargs=menu_in, outputs=self.run, **REPLAY).then(
            self.replay, inputs_kwargs=run_in, outputs=outs, **REPLAY)
        # The API takes the frame index as a plain number: a slider checks values against the range it last showed in
        # the caller's session, which is the previous run's range until /replay is called for the new one.
        api_index = SafeNumber(visible=False, precision=0, label="index")
        gr.Button(visible=False).click(self.timelapse_frame, inputs_kwargs={"run_id": self.run, "index": api_index, "ws": ws},
                                       outputs=self.frame, api_name="timelapse_frame", concurrency_limit=4)
        self.epoch.input(self.timelapse_frame, inputs_kwargs={"run_id": self.run, "index": self.epoch, "ws": ws},
                         outputs=self.frame, trigger_mode="always_last", show_progress="hidden", **REPLAY)
        self.gif_btn.click(self.export_gif, inputs_kwargs=run_in, outputs=self.gif, api_name="timelapse_gif",
                           concurrency_id="lecture", concurrency_limit=2)

    @guarded
    def refresh_runs(self, *, current: str | None, ws: SessionWorkspace) -> dict:
        """The run menu with the current runs; keeps the selection when it still exists, else picks the newest."""
        menu = run_menu_for(ws)
        ids = [i for _, i in menu.choices]
        return {self.run: gr.Dropdown(choices=menu.choices, value=current if current in ids else (ids[0] if ids else None),
                                      info=menu_info(menu))}

    @guarded
    def replay(self, *, run_id: str | None, ws: SessionWorkspace) -> dict:
        """A finished run: summary, epoch slider, last time-lapse frame, loss and accuracy curves, confusion matrix."""
        if not run_id:
            return {self.summary: EMPTY, self.epoch: epoch_slider(None), self.frame: None, self.loss: None,
                    self.acc: None, self.confusion: None}
        r = replay_run(find_run(run_id, ws))
        return {self.summary: r.summary, self.epoch: epoch_slider(r.timelapse), self.frame: r.frame,
                self.loss: r.loss, self.acc: r.accuracy, self.confusion: r.confusion}

    def share_run(self, *, name: str | None, ws: SessionWorkspace) -> dict:
        """Make one of this user's runs visible to everyone on the server (ui.common.share_run)."""
        return {self.share: share_run(name, ws)}

    def reset_buttons(self) -> dict:
        """Another run chosen: Share can be pressed again, and a half-done delete is forgotten."""
        return {self.share: gr.Button(SHARE, interactive=True), self.delete: gr.Button(DELETE), self.armed: None}

    @guarded
    def delete_run(self, *, run_id: str | None, ws: SessionWorkspace) -> dict:
        """Delete one of this user's own runs (weights, curves, time-lapse); the menu then shows the newest left."""
        if not run_id:
            raise user_error("Choose a run first.")
        ws.workspace.delete(str(run_id))
        gr.Info(f"Run {run_id} was deleted.")
        return self.refresh_runs(current=None, ws=ws)

    @guarded
    def confirm_delete(self, *, run_id: str | None, armed: str | None, ws: SessionWorkspace) -> dict:
        """Delete on the second click for the same run, so one stray click loses nothing."""
        if not run_id:
            raise user_error("Choose a run first.")
        if armed != run_id:
            ws.workspace.check_deletable(find_run(run_id, ws))  # shared, or still training: say so at once
            return {self.delete: gr.Button(f"Click again to delete {run_id}"), self.armed: run_id}
        return {**self.delete_run(run_id=run_id, ws=ws), self.delete: gr.Button(DELETE), self.armed: None}

    @guarded
    def timelapse_frame(self, *, run_id: str | None, index: float | None, ws: SessionWorkspace) -> dict:
        """Frame `index` of a run's time-lapse (0 = before training, then one per epoch)."""
        return {self.frame: frame_at(recorded_timelapse(find_run(run_id, ws)), index)}

    @guarded
    def export_gif(self, *, run_id: str | None, ws: SessionWorkspace) -> dict:
        """Every frame as an animated GIF (for slides), saved as <run id>-timelapse.gif in a temp folder."""
        record = find_run(run_id, ws)
        t = recorded_timelapse(record)
        return {self.gif: str(write_gif(t, self.gifs.path(), record.run_id))}


def build(shared: Shared, tab: gr.Tab) -> TimelapseTab:
    """Create the tab's components in the current context (inside `tab`) and wire its events."""
    return TimelapseTab(shared, tab)
