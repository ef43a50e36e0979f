"""The run side of the Train tab: its buttons, status, curves, results and checkpoint, and the updates that fill them
(what they say comes from cnnviz.train.run_view)."""
from __future__ import annotations

from typing import Any

import gradio as gr

from ..train.run_view import DownloadFolder, RunDisplay, idle_status, run_display
from ..train.session import PlotFeed, TrainSession, Worker

SHARE = "Share this run with everyone on this server"
WAITING = "Starting…"


class RunView:
    """Owns the components that show a run; its methods return {component: value} updates for them."""

    def __init__(self) -> None:
        self.downloads = DownloadFolder()  # per app, not per process: made when the tab is built
        with gr.Row():
            self.start = gr.Button("Start", variant="primary", elem_id="train-start")
            self.pause = gr.Button("Pause", interactive=False, elem_id="train-pause")
            self.stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="train-stop")
            self.clear = gr.Button("Clear curves", elem_id="train-clear")
        self.status = gr.HTML(idle_status("Choose settings and press Start."), label="Status", elem_id="train-status")
        plot = dict(x="epoch", y="value", color="series", x_title="epoch", color_title="series",
                    buttons=["fullscreen", "export"])
        with gr.Row():
            self.loss_plot = gr.LinePlot(label="Loss", y_title="loss", elem_id="loss-plot", **plot)
            self.acc_plot = gr.LinePlot(label="Accuracy", y_title="accuracy", y_lim=[0, 1], elem_id="acc-plot", **plot)
        self.legend = gr.Markdown(label="Runs", elem_id="train-legend")
        self.result = gr.Markdown(label="Result", elem_id="train-result")
        with gr.Row():
            self.confusion = gr.Image(label="Confusion matrix (test set)", format="png", interactive=False, show_label=False,
                                      buttons=["download", "fullscreen"])
            self.per_class = gr.BarPlot(x="class", y="accuracy", y_lim=[0, 1], label="Per-class test accuracy",
                                        x_label_angle=-35, height=320)
        with gr.Row():
            self.checkpoint = gr.Textbox(label="Checkpoint of this run", interactive=False, elem_id="train-checkpoint",
                                         info="only you see your runs, until you share one")
            self.download = gr.File(label="Download it", interactive=False, height=90)
        self.share = gr.Button(SHARE, size="sm", interactive=False, elem_id="train-share")

    def outputs(self) -> list[gr.components.Component]:
        """What /train and /stop update, in their public API's order (clients read the results by position)."""
        return [self.status, self.loss_plot, self.acc_plot, self.legend, self.result, self.confusion, self.per_class,
                self.download, self.checkpoint, self.start, self.pause, self.stop]

    def update(self, session: TrainSession, worker: Worker, feed: PlotFeed | None = None,
               buttons: tuple[bool, bool, bool] | None = None) -> dict[gr.components.Component, Any]:
        """Every output of a run (Start/Pause/Stop enabled as `buttons` says, or left alone). While training they are
        plain values: Gradio rebuilds the config of every output given as a component or gr.skip() (about 1 ms each),
        so those are kept for rare changes."""
        d = run_display(session, worker, self.downloads)
        loss, acc = d.loss, d.acc
        if feed is None or feed.rebuild_due(d.plot.series):  # new series: colours and x range too (see PlotFeed)
            props = dict(color_map=d.plot.colors, x_lim=[0, d.plot.x_max])
            loss, acc = gr.LinePlot(loss, **props), gr.LinePlot(acc, **props)
        return {self.status: d.status, self.loss_plot: loss, self.acc_plot: acc, self.legend: d.legend,
                self.result: d.result, self.confusion: d.confusion, self.per_class: self._bars(d),
                self.download: d.download, self.checkpoint: d.checkpoint, **self._controls(d.paused, buttons)}

    def _bars(self, d: RunDisplay) -> gr.BarPlot | None:
        # the class order is a property, or the plot sorts the bars by name
        return gr.BarPlot(d.per_class, sort=list(d.class_names)) if d.per_class is not None else None

    def _controls(self, paused: bool, buttons: tuple[bool, bool, bool] | None) -> dict[gr.Button, Any]:
        if buttons is None:  # plain labels: cheap, and they leave the buttons' interactivity alone
            return {self.start: "Start", self.pause: "Resume" if paused else "Pause", self.stop: "Stop"}
        start, pause, stop = buttons
        return {self.start: gr.Button(interactive=start), self.pause: gr.Button("Pause", interactive=pause),
                self.stop: gr.Button(interactive=stop)}

    def curves(self, session: TrainSession) -> dict[gr.components.Component, Any]:
        """Both plots rebuilt with their properties, and the legend."""
        loss, acc, meta = session.frames()
        props = dict(color_map=meta.colors, x_lim=[0, meta.x_max])
        return {self.loss_plot: gr.LinePlot(loss, **props), self.acc_plot: gr.LinePlot(acc, **props),
                self.legend: session.legend()}

    def idle(self, text: str) -> dict[gr.components.Component, Any]:
        """No run: the status says `text`, Start works, Pause and Stop do not; the rest stays as it is."""
        return {self.status: idle_status(text), **self._controls(False, (True, False, False))}

    def waiting(self) -> dict[gr.components.Component, Any]:
        """Shown the moment Start is clicked, before the run's handler answers; Stop works at once."""
        return {self.status: idle_status(WAITING), self.stop: gr.Button(interactive=True)}

    def share_button(self, name: str | None) -> gr.Button:
        """Share is offered once there is a run to share."""
        return gr.Button(SHARE, interactive=bool(name))
