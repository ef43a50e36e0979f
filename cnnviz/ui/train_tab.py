"""Train tab: a preset or custom settings; Start, Pause/Resume, Stop; live curves; results and the checkpoint.

Layout and wiring only: the form's rules are cnnviz.train.form, the runs cnnviz.train.session, what a run shows
cnnviz.train.run_view. Handlers take their inputs by name (inputs_kwargs) and return {component: value}.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import gradio as gr

from ..lecture.catalog import web_datasets
from ..train.config import OPTIMIZERS, SCHEDULES, Limits, TrainConfig
from ..train.events import Failed
from ..train.form import (
    FORM_FIELDS,
    app_limits,
    arch_choices,
    config_from_form,
    dataset_choices,
    default_preset,
    device_choices,
    devices_cap,
    max_epochs,
    preset_choices,
    preset_description,
    preset_values,
)
from ..train.run_view import saved_name
from ..train.session import PlotFeed, TrainSession
from .common import SessionWorkspace, Shared, guarded, note, refreshed_dropdown, share_run, user_error
from .inputs import SafeNumber, SafeSlider
from .train_view import RunView

NOTE = ("**What am I looking at?** Training a network from scratch. The curves grow as it learns: *train* points are "
        "averages over the last few batches, *test* points are measured on held-out images after every epoch. "
        "Start another run and its curves are drawn over the earlier ones, so settings can be compared.")
STOP_WAIT = 30.0  # seconds Stop waits for the run to reach a batch boundary and save its checkpoint


class TrainForm:
    """The settings column: owns its components, fills them from a preset and turns their values into a TrainConfig."""

    def __init__(self, limits: Limits, devices: int = 1) -> None:
        self.limits = replace(limits, max_devices_per_run=devices)  # `devices`: what this server's workers allow
        first = default_preset()
        v = preset_values(first, limits)
        self.preset = gr.Dropdown(preset_choices(), value=first, label="Preset", elem_id="train-preset")
        self.info = gr.Markdown(preset_description(first), elem_classes=["preset-info"])
        arch = gr.Dropdown(arch_choices(), value=v["arch"], label="Architecture")
        dataset = gr.Dropdown(dataset_choices(web_datasets()), value=v["dataset"], label="Dataset")
        with gr.Row():
            epochs = SafeSlider(1, max_epochs(limits), value=v["epochs"], step=1, label="Epochs", elem_id="train-epochs")
            batch_size = SafeNumber(v["batch_size"], label="Batch size", precision=0, minimum=1,
                                   maximum=limits.max_batch_size)
        with gr.Row():
            subset = SafeNumber(v["subset"], label="Subset (images per split, 0 = all)", precision=0, minimum=0,
                               maximum=limits.max_subset)
            lr = SafeNumber(v["lr"], label="Learning rate", minimum=0)
        optimizer = gr.Radio(list(OPTIMIZERS), value=v["optimizer"], label="Optimizer")
        schedule = gr.Radio(list(SCHEDULES), value=v["schedule"], label="Learning-rate schedule")
        with gr.Row():
            device = gr.Radio(device_choices(), value=v["device"], label="Device")
            seed = SafeNumber(v["seed"], label="Seed", precision=0, minimum=0)
        # One run on several workers' devices (DDP); shown where the lecturer allows it (--max-devices-per-run).
        world_size = SafeNumber(v["world_size"], label=f"Devices per run (one run on up to {devices}, with DDP)",
                                precision=0, minimum=1, maximum=devices, visible=devices > 1)
        augment = gr.Checkbox(v["augment"], label="Augment the training images (shift; flip where it keeps the class)")
        with gr.Accordion("More settings", open=False):
            momentum = SafeNumber(v["momentum"], label="Momentum (SGD)")
            weight_decay = SafeNumber(v["weight_decay"], label="Weight decay")
            label_smoothing = SafeNumber(v["label_smoothing"], label="Label smoothing")
        # By TrainConfig field, in the order /train lists its parameters (API clients may pass them by position).
        self.fields: dict[str, gr.components.Component] = dict(
            arch=arch, dataset=dataset, subset=subset, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
            schedule=schedule, augment=augment, device=device, seed=seed, momentum=momentum, weight_decay=weight_decay,
            label_smoothing=label_smoothing, world_size=world_size)
        if set(self.fields) != set(FORM_FIELDS):  # the config is made from exactly these names
            raise RuntimeError(f"the Train form's fields {sorted(self.fields)} are not {sorted(FORM_FIELDS)}")

    def inputs(self) -> dict[str, gr.components.Component]:
        """/train's parameters by name: the preset, then every setting."""
        return {"preset": self.preset, **self.fields}

    def apply_preset(self, name: str) -> dict[gr.components.Component, Any]:
        """Fill the form from a preset ('custom' leaves it alone)."""
        values = preset_values(name, self.limits)
        return {**{self.fields[k]: value for k, value in values.items()}, self.info: preset_description(name)}

    def config(self, preset: str, values: dict[str, Any]) -> TrainConfig:
        """The validated config of the submitted form (ConfigError says what to change)."""
        return config_from_form(preset, values, self.limits, web_datasets())


class TrainTab:
    """The tab's form, run view and handlers; handlers are methods so they can name the components they update."""

    def __init__(self, shared: Shared) -> None:
        self.shared, self.limits = shared, app_limits(shared.limits)  # epochs capped where the slider ends
        note(NOTE)
        # Deep-copied per browser session into a fresh TrainSession on the server's queue; when Gradio drops the session,
        # its run stops.
        self.session = gr.State(TrainSession(shared.trainers), delete_callback=lambda session: session.close())
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=340):
                self.form = TrainForm(shared.limits, devices_cap(shared.limits, shared.trainers))
            with gr.Column(scale=2):
                self.view = RunView()
        self._wire()

    def _wire(self) -> None:
        form, view, ws, session = self.form, self.view, self.shared.workspace, self.session
        form.preset.change(form.apply_preset, inputs_kwargs={"name": form.preset},
                           outputs=[*form.fields.values(), form.info], api_name="preset", api_visibility="undocumented")
        # Shown at once, before the run's handler answers (it then shows the place in the training queue, if any).
        view.start.click(view.waiting, outputs=[view.status, view.stop], api_visibility="private", queue=False)
        # No Gradio concurrency limit: runs wait in the server's RunQueue (first come, first served, capped by
        # --max-queued-runs) and stream their place in line meanwhile; Gradio's own queue would count them against
        # every other request.
        run = view.start.click(self.train, inputs_kwargs={**form.inputs(), "session": session, "ws": ws},
                               outputs=view.outputs(), api_name="train", concurrency_limit=None,
                               show_progress_on=[view.status])
        self._then_select_checkpoint(run)
        view.pause.click(self.toggle_pause, inputs_kwargs={"session": session}, outputs=[view.pause], api_name="pause",
                         concurrency_limit=None, show_progress="hidden")
        stop = view.stop.click(self.stop_run, inputs_kwargs={"session": session}, outputs=view.outputs(), api_name="stop",
                               cancels=[run], concurrency_limit=None, show_progress="hidden")
        self._then_select_checkpoint(stop)
        view.share.click(share_run, inputs_kwargs={"name": view.checkpoint, "ws": ws}, outputs=[view.share],
                         api_name="share_run", concurrency_limit=None)
        view.checkpoint.change(view.share_button, inputs_kwargs={"name": view.checkpoint}, outputs=[view.share],
                               api_visibility="private", queue=False)
        view.clear.click(self.clear_curves, inputs_kwargs={"session": session},
                         outputs=[view.loss_plot, view.acc_plot, view.legend], api_name="clear_curves",
                         concurrency_limit=None)

    def _then_select_checkpoint(self, dependency: gr.events.Dependency) -> None:
        dependency.then(self.select_new_checkpoint, inputs_kwargs={"session": self.session, "ws": self.shared.workspace},
                        outputs=[self.shared.predict_checkpoint, self.shared.explain_checkpoint],
                        api_visibility="private", queue=False)

    @guarded
    def train(self, *, session: TrainSession, ws: SessionWorkspace, preset: str, **values: Any):
        """Train with these settings, streaming status and curves; ends with results and the new checkpoint's name."""
        cfg = self.form.config(preset, values)
        if session.running:
            raise user_error("A run is already going in this tab: stop it first.")
        worker = session.start(cfg, self.limits, ws.workspace.runs_root, owner=ws.workspace.key)
        feed = PlotFeed()
        try:
            yield self.view.update(session, worker, feed, buttons=(False, True, True))
            for done in worker.watch():
                yield self.view.update(session, worker, feed, buttons=(True, False, False) if done else None)
        finally:
            if not worker.finished.is_set():
                worker.stop.set()  # cancelled or the tab closed: stop at the next batch (the weights so far are saved)
        if isinstance(worker.end, Failed):
            raise user_error(worker.end.message, title="Training failed")

    def select_new_checkpoint(self, *, session: TrainSession, ws: SessionWorkspace) -> Any:
        """After a run: its checkpoint, selected in the Predict and Explain menus."""
        name = saved_name(session.worker.end if session.worker is not None else None)
        if not name:
            return gr.skip()  # one skip for every output
        return {menu: refreshed_dropdown(ws, name) for menu in (self.shared.predict_checkpoint,
                                                                 self.shared.explain_checkpoint)}

    def toggle_pause(self, *, session: TrainSession) -> gr.Button:
        """Pause at the next batch boundary, or resume."""
        if not session.running:
            return gr.Button("Pause", interactive=False)
        if session.pause.is_set():
            session.pause.clear()
            return gr.Button("Pause")
        session.pause.set()
        return gr.Button("Resume")

    @guarded
    def stop_run(self, *, session: TrainSession) -> dict[gr.components.Component, Any]:
        """Stop this tab's run (it saves the weights so far) and show where it got to; a Stop that overtook its Start
        still stops that run."""
        worker = session.request_stop()
        if worker is None:
            return self.view.idle("Nothing is training now.")
        worker.finished.wait(STOP_WAIT)
        return self.view.update(session, worker, buttons=(True, False, False))

    def clear_curves(self, *, session: TrainSession) -> dict[gr.components.Component, Any]:
        """Forget earlier runs' curves."""
        session.clear()
        return self.view.curves(session)


def build(shared: Shared) -> TrainTab:
    """Create the Train tab in the current Blocks context and wire its events."""
    return TrainTab(shared)
