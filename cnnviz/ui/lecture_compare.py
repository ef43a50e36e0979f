"""Compare tab: two to four checkpoints on the same image — predictions, Grad-CAM, feature maps at comparable depth,
parameters and FLOPs — and their training curves overlaid. Layout and wiring only: the report is
cnnviz.lecture.comparison."""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future

import gradio as gr
import PIL.Image

from ..explain.cache import image_digest
from ..images import load_image
from ..lecture.comparison import (
    TABLE_COLUMNS,
    checkpoints_to_compare,
    comparison_report,
    default_checkpoints,
    training_curves,
)
from ..lecture.errors import LectureError
from ..lecture.first_open import FirstComparison, first_comparison
from ..render.lecture_pictures import METRICS
from .common import (
    SessionWorkspace,
    Shared,
    checkpoint_choices,
    checkpoint_entries,
    guarded,
    load_model,
    note,
    user_error,
)
from .inputs import SafeSlider
from .lecture_plots import clear_plots_on
from .picker import image_picker

NOTE = ("**What am I looking at?** Several trained networks see the *same* image. For each: its top guesses, where it "
        "looked (Grad-CAM, red = most) and its feature maps at the same *relative* depth (slider: 0 = first "
        "convolution, 1 = last), so a small and a deep network can be compared fairly. The table adds the price: "
        "parameters to store and FLOPs to compute one image. The chart overlays how each one learned.")
HEAVY = dict(concurrency_id="lecture", concurrency_limit=2)
NO_IMAGE = "Choose an image first: upload one, pick an example or press 'Random test image'."
log = logging.getLogger("cnnviz.ui")


def default_selection(ws: SessionWorkspace | None) -> list[str]:
    """The four classic families on Fashion-MNIST (shipped), else checkpoints that share one dataset."""
    return default_checkpoints({name: e.dataset for name, e in checkpoint_entries(ws).items()})


class CompareTab:
    """The tab's components (made in the current context) and its handlers: keyword inputs, {component: value} out."""

    def __init__(self, shared: Shared, tab: gr.Tab) -> None:
        note(NOTE)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                self._inputs()
            with gr.Column(scale=3):
                self.text = gr.Markdown("Choose checkpoints and an image, then press Compare.", elem_id="compare-text")
                self.table = gr.Dataframe(headers=TABLE_COLUMNS, label="Side by side", interactive=False, wrap=True)
                self.cams = gr.Gallery(label="Grad-CAM: where each network looked", columns=4, height=300,
                                       format="png", object_fit="contain", elem_classes=["pixelated"],
                                       elem_id="compare-cams")
                self.maps = gr.Gallery(label="Feature maps at comparable depth", columns=4, height=320, format="png",
                                       object_fit="contain", elem_classes=["pixelated"], elem_id="compare-maps")
                self.plot = gr.LinePlot(x="epoch", y="value", color="checkpoint", x_title="epoch", y_title="value",
                                        label="Training curves", buttons=["fullscreen", "export"],
                                        elem_id="compare-curves")
        # The default example's comparison (several models: seconds on a busy CPU) is computed in the background once
        # the page is built, not at start-up and not by opening the tab, which only shows it (once per session).
        self.first_shown = gr.State(False)
        self.first = Future()
        # Not a daemon: interpreter exit waits the few seconds it takes; a daemon thread still inside torch when the
        # interpreter finalises aborts the process ("terminate called without an active exception").
        threading.Thread(target=lambda: self.first.set_result(self._first_open(shared)), daemon=False,
                         name="compare-first-open").start()
        self._wire(shared, tab)

    def _first_open(self, shared: Shared) -> FirstComparison | None:
        """The comparison of the default checkpoints on the image the tab opens with (None if it cannot be made)."""
        image = self.image.value
        path = image.get("path") if isinstance(image, dict) else None
        ws, names = shared.workspace.value, self.checkpoints.value
        if not path or not names:
            return None
        try:
            names = checkpoints_to_compare(names)
            return first_comparison([load_model(n, ws) for n in names], path, self.depth.value, self.metric.value,
                                    lambda name: load_model(name, ws).meta.history)
        except LectureError:  # e.g. fewer than two checkpoints to compare: the tab says so when Compare is pressed
            return None
        except Exception:  # the tab still works without it; pressing Compare shows the error
            log.warning("no first-open comparison of %s", names, exc_info=True)
            return None

    def _inputs(self) -> None:
        choices = checkpoint_choices(None)
        self.checkpoints = gr.Dropdown(choices, value=default_selection(None), multiselect=True, max_choices=4,
                                       label="Checkpoints (two to four)", allow_custom_value=True,
                                       elem_id="compare-checkpoints")
        self.picker = image_picker("Image", "compare-image", 260, checkpoint=self.checkpoints.value)
        self.image = self.picker.image
        self.depth = SafeSlider(0, 1, value=0.5, step=0.05, label="Feature-map depth (0 = first conv, 1 = last conv)")
        self.metric = gr.Radio([(v, k) for k, v in METRICS.items()], value="val_acc", label="Training curve")
        self.go = gr.Button("Compare", variant="primary", elem_id="compare-go")

    def _wire(self, shared: Shared, tab: gr.Tab) -> None:
        ws, picker = shared.workspace, self.picker
        compare_in = {"checkpoints": self.checkpoints, "image": self.image, "depth": self.depth, "metric": self.metric,
                      "ws": ws}
        compare_out = [self.table, self.cams, self.maps, self.plot, self.text]
        clear_plots_on([self.image.upload, self.depth.release, self.metric.input, self.checkpoints.input,
                        picker.random.click, picker.gallery.click], [self.plot])
        # Compare with no image leaves every panel as it is (the handler says what is missing): clear only with one.
        self.go.click(None, [self.image, self.plot], self.plot, js="(image, plot) => image ? null : plot",
                      queue=False, api_visibility="private")
        gr.on([self.go.click, self.image.upload, self.depth.release], self.run_compare, inputs_kwargs=compare_in,
              outputs=compare_out, api_name="compare", trigger_mode="always_last", **HEAVY)
        gr.on([self.metric.input, self.checkpoints.input], self.compare_curves,
              inputs_kwargs={"checkpoints": self.checkpoints, "metric": self.metric, "ws": ws}, outputs=self.plot,
              api_name="compare_curves", api_visibility="undocumented", concurrency_limit=4, trigger_mode="always_last")
        picker.random.click(self.random_image, inputs_kwargs={"checkpoints": self.checkpoints, "ws": ws},
                            outputs=[self.image, picker.truth], api_name="compare_random_image",
                            api_visibility="undocumented", concurrency_limit=4).success(
            self.run_compare, inputs_kwargs=compare_in, outputs=compare_out, api_visibility="private", **HEAVY)
        picker.gallery.click(picker.show_example, inputs_kwargs={"index": picker.gallery, "checkpoint": self.checkpoints,
                                                                 "ws": ws},
                             outputs=[self.image, picker.truth], api_visibility="private", concurrency_limit=4).success(
            self.run_compare, inputs_kwargs=compare_in, outputs=compare_out, api_visibility="private", **HEAVY)
        self.checkpoints.change(picker.follow_checkpoint, inputs_kwargs={"checkpoint": self.checkpoints, "ws": ws},
                                outputs=picker.gallery, api_visibility="private", concurrency_limit=4)
        if shared.predict_image is not None:  # the image chosen in Predict comes along, as it does to Explain
            shared.predict_image.change(None, shared.predict_image, self.image, js="(x) => x", api_visibility="private",
                                        queue=False)
        tab.select(self.show_first, inputs_kwargs={"image": self.image, "shown": self.first_shown},
                   outputs=[*compare_out, self.first_shown], api_visibility="private", concurrency_limit=4)
        tab.select(self.refresh_menu, inputs_kwargs={"current": self.checkpoints, "ws": ws}, outputs=self.checkpoints,
                   api_visibility="private", queue=False)

    @guarded
    def run_compare(self, *, checkpoints: list[str] | None, image: PIL.Image.Image | None, depth: float, metric: str,
                    ws: SessionWorkspace) -> dict:
        """Each checkpoint on the same image: table (prediction, parameters, FLOPs), Grad-CAM and feature-map
        galleries, and the chosen training curve overlaid."""
        models = [load_model(n, ws) for n in checkpoints_to_compare(checkpoints)]
        if image is None:  # one clear message; the panels keep what they show (an error would mark each of them)
            gr.Warning(NO_IMAGE, title="No image")
            return {self.text: f"**{NO_IMAGE}**"}
        report = comparison_report(models, image, depth)
        curves = training_curves([m.name for m in models], metric, lambda name: load_model(name, ws).meta.history)
        return {self.table: report.table, self.cams: report.cams, self.maps: report.maps, self.plot: curves,
                self.text: report.text}

    @guarded
    def show_first(self, *, image: PIL.Image.Image | None, shown: bool) -> dict:
        """Opening the tab: the default example's comparison, if the panels are still empty and the image is that example."""
        first = None if shown or image is None else self.first.result(timeout=120)
        if first is None or image_digest(load_image(image)) != first.image_digest:
            return {self.first_shown: True}
        report = first.report
        return {self.table: report.table, self.cams: report.cams, self.maps: report.maps, self.plot: first.curves,
                self.text: report.text, self.first_shown: True}

    @guarded
    def compare_curves(self, *, checkpoints: list[str] | None, metric: str, ws: SessionWorkspace) -> dict:
        """Only the overlaid training curves (no image needed)."""
        names = list(dict.fromkeys(checkpoints or []))
        return {self.plot: training_curves(names, metric, lambda name: load_model(name, ws).meta.history)}

    @guarded
    def random_image(self, *, checkpoints: list[str] | None, ws: SessionWorkspace) -> dict:
        """A random test image from the dataset of the first chosen checkpoint, with its true label."""
        if not checkpoints:
            raise user_error("Choose the checkpoints first: the image comes from the first one's test set.")
        return self.picker.show_random(checkpoint=checkpoints[0], ws=ws)

    def refresh_menu(self, *, current: list[str] | None, ws: SessionWorkspace) -> dict:
        """This session's checkpoints in the menu; the selection keeps the names that still exist."""
        choices = checkpoint_choices(ws)
        names = {n for _, n in choices}
        kept = [n for n in current or [] if n in names]
        return {self.checkpoints: gr.Dropdown(choices=choices, value=kept or default_selection(ws))}


def build(shared: Shared, tab: gr.Tab) -> CompareTab:
    """Create the tab's components in the current context (inside `tab`) and wire its events."""
    return CompareTab(shared, tab)
