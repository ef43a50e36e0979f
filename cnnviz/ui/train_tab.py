"""Train tab: a preset or custom settings; Start, Pause/Resume, Stop; live curves; results and the checkpoint."""
from __future__ import annotations

from dataclasses import replace

import gradio as gr
import torch

from ..data import availability, get_dataset_info
from ..models import get_model_info, list_models
from ..train.config import OPTIMIZERS, SCHEDULES, Limits, TrainConfig, validate
from ..train.events import Failed, Finished
from ..train.presets import PRESETS
from ..train.session import PlotFeed, TrainSession, Worker
from .architecture_tab import web_datasets
from .common import SessionWorkspace, Shared, guarded, note, refreshed_dropdown, share_run, user_error
from .train_view import checkpoint_name, confusion_image, download_copy, idle_status, per_class_frame, result_markdown, status_html

NOTE = ("**What am I looking at?** Training a network from scratch. The curves grow as it learns: *train* points are "
        "averages over the last few batches, *test* points are measured on held-out images after every epoch. "
        "Start another run and its curves are drawn over the earlier ones, so settings can be compared.")
FIELDS = ("arch", "dataset", "subset", "epochs", "batch_size", "optimizer", "lr", "schedule", "augment", "device", "seed",
          "momentum", "weight_decay", "label_smoothing")
INTS = {"subset", "epochs", "batch_size", "seed"}
CUSTOM = "custom"
WAITING = "Starting…"
SHARE = "Share this run with everyone on this server"
STOP_WAIT = 30.0  # seconds Stop waits for the run to reach a batch boundary and save its checkpoint


def _number(name: str, value):
    """Gradio numbers arrive as floats; whole ones become ints so the config check accepts them."""
    if name in INTS and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def make_config(preset: str, values: dict) -> TrainConfig:
    """The preset's config (keeping settings the form does not show) with every form field applied."""
    base = PRESETS[preset].config if preset in PRESETS else TrainConfig()
    v = {k: _number(k, values[k]) for k in FIELDS}
    v["subset"] = v["subset"] or None  # 0 or empty: the whole dataset
    same_arch = v["arch"] == base.arch
    return replace(base, **v, arch_kwargs=dict(base.arch_kwargs) if same_arch else {},
                   input_size=base.input_size if same_arch and v["dataset"] == base.dataset else None,
                   init=base.init if same_arch else "default")


def preset_values(name: str, max_subset: int | None, max_epochs: int | None = None) -> list:
    """Form values (in FIELDS order) and the description, for a preset, within the server's limits."""
    p = PRESETS[name]
    c = p.config
    subset = c.subset or 0
    if max_subset is not None:
        subset = min(subset or max_subset, max_subset)
    epochs = min(c.epochs, max_epochs) if max_epochs else c.epochs
    values = [c.arch, c.dataset, subset, epochs, c.batch_size, c.optimizer, c.lr, c.schedule, c.augment,
              c.device if c.device in device_choices() else "auto", c.seed, c.momentum, c.weight_decay, c.label_smoothing]
    return values + [f"*{p.source}:* {p.description}"]


def device_choices() -> list[str]:
    """auto and cpu, and cuda where a GPU is present."""
    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def default_preset() -> str:
    """demo-fashion-mnist where Fashion-MNIST is on disk, else the digits demo (always offline)."""
    return "demo-fashion-mnist" if availability("fashion-mnist") == "offline-ready" else "demo-digits"


class TrainTab:
    """The tab's components and handlers; handlers are methods so they can name the components they update."""

    def __init__(self, shared: Shared):
        self.shared, self.limits = shared, shared.limits
        note(NOTE)
        # Deep-copied per browser session into a fresh TrainSession; when Gradio drops the session, its run stops.
        self.session = gr.State(TrainSession(), delete_callback=lambda session: session.stop.set())
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=340):
                self._settings()
            with gr.Column(scale=2):
                self._outputs()
        self._wire()

    def _settings(self) -> None:
        first = default_preset()
        values = preset_values(first, self.limits.max_subset, self.max_epochs())
        self.preset = gr.Dropdown([("custom settings", CUSTOM)] + [(n, n) for n in PRESETS], value=first, label="Preset",
                                  elem_id="train-preset")
        self.preset_info = gr.Markdown(values[-1], elem_classes=["preset-info"])
        arch_choices = [(get_model_info(m).title, m) for m in list_models() if not get_model_info(m).imagenet]
        ds_choices = [(f"{get_dataset_info(d).title} ({availability(d)})", d) for d in web_datasets()]
        f = dict(zip(FIELDS, values[:-1], strict=True))
        self.arch = gr.Dropdown(arch_choices, value=f["arch"], label="Architecture")
        self.dataset = gr.Dropdown(ds_choices, value=f["dataset"], label="Dataset")
        with gr.Row():
            self.epochs = gr.Slider(1, self.max_epochs(), value=f["epochs"], step=1, label="Epochs", elem_id="train-epochs")
            self.batch_size = gr.Number(f["batch_size"], label="Batch size", precision=0, minimum=1,
                                        maximum=self.limits.max_batch_size)
        with gr.Row():
            self.subset = gr.Number(f["subset"], label="Subset (images per split, 0 = all)", precision=0, minimum=0,
                                    maximum=self.limits.max_subset)
            self.lr = gr.Number(f["lr"], label="Learning rate", minimum=0)
        self.optimizer = gr.Radio(list(OPTIMIZERS), value=f["optimizer"], label="Optimizer")
        self.schedule = gr.Radio(list(SCHEDULES), value=f["schedule"], label="Learning-rate schedule")
        with gr.Row():
            self.device = gr.Radio(device_choices(), value=f["device"], label="Device")
            self.seed = gr.Number(f["seed"], label="Seed", precision=0, minimum=0)
        self.augment = gr.Checkbox(f["augment"], label="Augment the training images (shift; flip where it keeps the class)")
        with gr.Accordion("More settings", open=False):
            self.momentum = gr.Number(f["momentum"], label="Momentum (SGD)")
            self.weight_decay = gr.Number(f["weight_decay"], label="Weight decay")
            self.label_smoothing = gr.Number(f["label_smoothing"], label="Label smoothing")

    def _outputs(self) -> None:
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

    def max_epochs(self) -> int:
        """The slider's end: the server's --max-epochs when one was given, else 50 (plenty for a lecture)."""
        return self.limits.max_epochs if self.limits.max_epochs != Limits().max_epochs else 50

    def settings(self) -> list:
        """The form's components, in FIELDS order."""
        return [getattr(self, k) for k in FIELDS]

    def _wire(self) -> None:
        self.preset.change(self.apply_preset, self.preset, [*self.settings(), self.preset_info], api_name="preset",
                           api_visibility="undocumented")
        outputs = [self.status, self.loss_plot, self.acc_plot, self.legend, self.result, self.confusion, self.per_class,
                   self.download, self.checkpoint, self.start, self.pause, self.stop]
        menus = [self.shared.predict_checkpoint, self.shared.explain_checkpoint]
        # Shown at once, before the run's handler answers (it then shows the place in the training queue, if any).
        self.start.click(lambda: (idle_status(WAITING), gr.Button(interactive=True)), None, [self.status, self.stop],
                         api_visibility="private", queue=False)
        # No Gradio concurrency limit: runs wait in TRAIN_QUEUE (first come, first served, capped by --max-queued-runs)
        # and stream their place in line meanwhile; Gradio's own queue would count them against every other request.
        ws = self.shared.workspace
        run = self.start.click(self.train, [self.preset, *self.settings(), self.session, ws], outputs, api_name="train",
                               concurrency_limit=None, show_progress_on=[self.status])
        run.then(self.select_new_checkpoint, [self.session, ws], menus, api_visibility="private", queue=False)
        self.pause.click(self.toggle_pause, self.session, self.pause, api_name="pause", concurrency_limit=None,
                         show_progress="hidden")
        self.stop.click(self.stop_run, self.session, outputs, api_name="stop", cancels=[run], concurrency_limit=None,
                        show_progress="hidden").then(self.select_new_checkpoint, [self.session, ws], menus,
                                                     api_visibility="private", queue=False)
        self.share.click(share_run, [self.checkpoint, ws], self.share, api_name="share_run", concurrency_limit=None)
        self.checkpoint.change(lambda name: gr.Button(SHARE, interactive=bool(name)), self.checkpoint, self.share,
                               api_visibility="private", queue=False)
        self.clear.click(self.clear_curves, self.session, [self.loss_plot, self.acc_plot, self.legend],
                         api_name="clear_curves", concurrency_limit=None)

    def apply_preset(self, name: str) -> list:
        """Fill the form from a preset ('custom' leaves it alone)."""
        if name not in PRESETS:
            return [gr.skip()] * len(FIELDS) + ["Custom settings: every field is yours."]
        return preset_values(name, self.limits.max_subset, self.max_epochs())

    @guarded
    def train(self, preset, arch, dataset, subset, epochs, batch_size, optimizer, lr, schedule, augment, device, seed,
              momentum, weight_decay, label_smoothing, session: TrainSession, ws: SessionWorkspace):
        """Train with these settings, streaming status and curves; ends with results and the new checkpoint's name."""
        values = dict(zip(FIELDS, (arch, dataset, subset, epochs, batch_size, optimizer, lr, schedule, augment, device,
                                   seed, momentum, weight_decay, label_smoothing), strict=True))
        if dataset not in web_datasets():
            raise user_error(f"dataset {dataset!r} cannot be trained from the web app; choose one of "
                             f"{', '.join(web_datasets())}")
        cfg = validate(make_config(preset, values), self.limits)
        if session.running:
            raise user_error("A run is already going in this tab: stop it first.")
        worker = session.start(cfg, self.limits, ws.workspace.runs_root)
        feed = PlotFeed()
        try:
            yield self.row(session, worker, feed, buttons=(False, True, True))
            for done in worker.watch():
                yield self.row(session, worker, feed, buttons=(True, False, False)) if done else \
                    self.row(session, worker, feed)
        finally:
            if not worker.finished.is_set():
                session.stop.set()  # cancelled or the tab closed: stop at the next batch (the weights so far are saved)
        if isinstance(worker.end, Failed):
            raise user_error(worker.end.message, title="Training failed")

    def row(self, session: TrainSession, worker: Worker, feed: PlotFeed | None = None,
            buttons: tuple[bool, bool, bool] | None = None) -> list:
        """All outputs of a run, in `_wire`'s order. While training they are plain values: Gradio rebuilds the config of
        every output given as a component or gr.skip() (about 1 ms each), so those are kept for rare changes."""
        loss, acc, meta = session.frames()
        if feed is None or feed.rebuild_due(meta.series):  # new series: colours and x range too (see PlotFeed)
            props = dict(color_map=meta.colors, x_lim=[0, meta.x_max])
            loss, acc = gr.LinePlot(loss, **props), gr.LinePlot(acc, **props)
        end = worker.end if worker.finished.is_set() else None
        names = worker.started.class_names if worker.started else ()
        finished = isinstance(end, Finished) and bool(names)
        path = getattr(end, "checkpoint", None)
        results = [result_markdown(end) if end else "", confusion_image(end, names) if finished else None,
                   gr.BarPlot(per_class_frame(end, names), sort=list(names)) if finished else None,  # class order
                   download_copy(path) if path else None,
                   checkpoint_name(path) or ""]
        pause = "Resume" if session.pause.is_set() else "Pause"
        controls = ["Start", pause, "Stop"] if buttons is None else [
            gr.Button(interactive=buttons[0]), gr.Button("Pause", interactive=buttons[1]), gr.Button(interactive=buttons[2])]
        return [status_html(worker), loss, acc, session.legend(), *results, *controls]

    def select_new_checkpoint(self, session: TrainSession, ws: SessionWorkspace) -> tuple:
        """After a run: its checkpoint, selected in the Predict and Explain menus."""
        end = session.worker.end if session.worker is not None else None
        name = checkpoint_name(getattr(end, "checkpoint", None))
        if not name:
            return gr.skip(), gr.skip()
        return refreshed_dropdown(ws, name), refreshed_dropdown(ws, name)

    def toggle_pause(self, session: TrainSession) -> gr.Button:
        """Pause at the next batch boundary, or resume."""
        if not session.running:
            return gr.Button("Pause", interactive=False)
        if session.pause.is_set():
            session.pause.clear()
            return gr.Button("Pause")
        session.pause.set()
        return gr.Button("Resume")

    @guarded
    def stop_run(self, session: TrainSession) -> list:
        """Stop this tab's run (it saves the weights so far) and show where it got to."""
        session.stop.set()
        session.pause.clear()
        worker = session.worker
        if worker is None or not session.running:  # nothing started yet: a queued run was just cancelled
            return [idle_status("Nothing is training now.")] + [gr.skip()] * 8 + [
                gr.Button(interactive=True), gr.Button("Pause", interactive=False), gr.Button(interactive=False)]
        worker.finished.wait(STOP_WAIT)
        return self.row(session, worker, buttons=(True, False, False))

    def clear_curves(self, session: TrainSession) -> tuple:
        """Forget earlier runs' curves."""
        session.clear()
        loss, acc, meta = session.frames()
        props = dict(color_map=meta.colors, x_lim=[0, meta.x_max])
        return gr.LinePlot(loss, **props), gr.LinePlot(acc, **props), session.legend()


def build(shared: Shared) -> TrainTab:
    """Create the Train tab in the current Blocks context and wire its events."""
    return TrainTab(shared)
