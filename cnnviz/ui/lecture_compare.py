"""Compare tab: two to four checkpoints on the same image — predictions, Grad-CAM, feature maps at comparable depth,
parameters and FLOPs — and their training curves overlaid. Layout and wiring only: the report is
cnnviz.lecture.comparison."""
from __future__ import annotations

import gradio as gr
import PIL.Image

from ..lecture.comparison import TABLE_COLUMNS, checkpoints_to_compare, comparison_report, training_curves
from ..render.lecture_pictures import METRICS
from .common import SessionWorkspace, Shared, checkpoint_choices, guarded, load_model, note, user_error
from .inputs import SafeSlider
from .lecture_plots import clear_plots_on
from .picker import image_picker

NOTE = ("**What am I looking at?** Several trained networks see the *same* image. For each: its top guesses, where it "
        "looked (Grad-CAM, red = most) and its feature maps at the same *relative* depth (slider: 0 = first "
        "convolution, 1 = last), so a small and a deep network can be compared fairly. The table adds the price: "
        "parameters to store and FLOPs to compute one image. The chart overlays how each one learned.")
HEAVY = dict(concurrency_id="lecture", concurrency_limit=2)


def default_selection(choices: list[tuple[str, str]]) -> list[str]:
    """The first three checkpoints of the menu (the shipped ones)."""
    return [name for _, name in choices[:3]]


class CompareTab:
    """The tab's components (made in the current context) and its handlers: keyword inputs, {component: value} out."""

    def __init__(self, shared: Shared, tab: gr.Tab) -> None:
        note(NOTE)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                self._inputs()
            with gr.Column(scale=3):
                self.text = gr.Markdown("Choose checkpoints and an image, then press Compare.")
                self.table = gr.Dataframe(headers=TABLE_COLUMNS, label="Side by side", interactive=False, wrap=True)
                self.cams = gr.Gallery(label="Grad-CAM: where each network looked", columns=4, height=300,
                                       format="png", object_fit="contain", elem_classes=["pixelated"],
                                       elem_id="compare-cams")
                self.maps = gr.Gallery(label="Feature maps at comparable depth", columns=4, height=320, format="png",
                                       object_fit="contain", elem_classes=["pixelated"], elem_id="compare-maps")
                self.plot = gr.LinePlot(x="epoch", y="value", color="checkpoint", x_title="epoch", y_title="value",
                                        label="Training curves", buttons=["fullscreen", "export"],
                                        elem_id="compare-curves")
        self._wire(shared, tab)

    def _inputs(self) -> None:
        choices = checkpoint_choices(None)
        self.checkpoints = gr.Dropdown(choices, value=default_selection(choices), multiselect=True, max_choices=4,
                                       label="Checkpoints (two to four)", allow_custom_value=True,
                                       elem_id="compare-checkpoints")
        self.picker = image_picker("Image", "compare-image", 260)
        self.image = self.picker.image
        self.depth = SafeSlider(0, 1, value=0.5, step=0.05, label="Feature-map depth (0 = first conv, 1 = last conv)")
        self.metric = gr.Radio([(v, k) for k, v in METRICS.items()], value="val_acc", label="Training curve")
        self.go = gr.Button("Compare", variant="primary", elem_id="compare-go")

    def _wire(self, shared: Shared, tab: gr.Tab) -> None:
        ws, picker = shared.workspace, self.picker
        compare_in = {"checkpoints": self.checkpoints, "image": self.image, "depth": self.depth, "metric": self.metric,
                      "ws": ws}
        compare_out = [self.table, self.cams, self.maps, self.plot, self.text]
        clear_plots_on([self.go.click, self.image.upload, self.depth.release, self.metric.input, self.checkpoints.input,
                        picker.random.click, picker.gallery.click], [self.plot])
        gr.on([self.go.click, self.image.upload, self.depth.release], self.run_compare, inputs_kwargs=compare_in,
              outputs=compare_out, api_name="compare", trigger_mode="always_last", **HEAVY)
        gr.on([self.metric.input, self.checkpoints.input], self.compare_curves,
              inputs_kwargs={"checkpoints": self.checkpoints, "metric": self.metric, "ws": ws}, outputs=self.plot,
              api_name="compare_curves", api_visibility="undocumented", concurrency_limit=4, trigger_mode="always_last")
        picker.random.click(self.random_image, inputs_kwargs={"checkpoints": self.checkpoints, "ws": ws},
                            outputs=[self.image, picker.truth], api_name="compare_random_image",
                            api_visibility="undocumented", concurrency_limit=4).success(
            self.run_compare, inputs_kwargs=compare_in, outputs=compare_out, api_visibility="private", **HEAVY)
        picker.gallery.click(picker.show_example, inputs_kwargs={"index": picker.gallery},
                             outputs=[self.image, picker.truth], api_visibility="private", concurrency_limit=4).success(
            self.run_compare, inputs_kwargs=compare_in, outputs=compare_out, api_visibility="private", **HEAVY)
        tab.select(self.refresh_menu, inputs_kwargs={"current": self.checkpoints, "ws": ws}, outputs=self.checkpoints,
                   api_visibility="private", queue=False)

    @guarded
    def run_compare(self, *, checkpoints: list[str] | None, image: PIL.Image.Image | None, depth: float, metric: str,
                    ws: SessionWorkspace) -> dict:
        """Each checkpoint on the same image: table (prediction, parameters, FLOPs), Grad-CAM and feature-map
        galleries, and the chosen training curve overlaid."""
        models = [load_model(n, ws) for n in checkpoints_to_compare(checkpoints)]
        if image is None:
            raise user_error("Choose an image first: upload one, pick an example or press 'Random test image'.")
        report = comparison_report(models, image, depth)
        curves = training_curves([m.name for m in models], metric, lambda name: load_model(name, ws).meta.history)
        return {self.table: report.table, self.cams: report.cams, self.maps: report.maps, self.plot: curves,
                self.text: report.text}

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
        return {self.checkpoints: gr.Dropdown(choices=choices, value=kept or default_selection(choices))}


def build(shared: Shared, tab: gr.Tab) -> CompareTab:
    """Create the tab's components in the current context (inside `tab`) and wire its events."""
    return CompareTab(shared, tab)
