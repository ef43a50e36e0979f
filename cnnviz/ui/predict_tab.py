"""Predict tab: a checkpoint and an image (upload, webcam, clipboard, drawing, examples) -> top-k classes."""
from __future__ import annotations

import logging

import gradio as gr
import PIL.Image

from ..drawing import drawing_to_image
from ..explain.pipeline import PredictionReport, run_prediction
from ..images import ImageError
from .common import SessionWorkspace, Shared, guarded, load_model, note
from .inputs import SafeSlider
from .picker import image_picker
from .uploads import SafeSketchpad

NOTE = ("**What am I looking at?** The network's top guesses for one image, with their probabilities. On the right is "
        "the image *as the network sees it*: shrunk to its input size, in grey if it was trained on grey images. Drawings "
        "are inverted to white on black for the greyscale datasets, because that is what their training images look like.")
log = logging.getLogger("cnnviz.ui")
EMPTY = "Upload, paste, photograph or draw an image, or pick an example."


class PredictTab:
    """Components and handlers of the Predict tab."""

    def __init__(self, shared: Shared):
        self.shared = shared
        note(NOTE)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=360):
                self._inputs()
            with gr.Column(scale=1, min_width=320):
                first = self._first_open()  # the example the picker opens with, already predicted: no empty panels
                self.label = gr.Label(first.get("label"), num_top_classes=10, label="Prediction", elem_id="predict-label")
                self.view = gr.Image(first.get("view"), label="What the network sees", format="png", interactive=False,
                                     height=300, elem_classes=["pixelated"], elem_id="predict-view")
                self.details = gr.Markdown(first.get("details", EMPTY), label="Details", elem_id="predict-details")
        self._wire()

    def _first_open(self) -> dict:
        """The prediction for the image the tab opens with (nothing when there is none or it cannot be made)."""
        name, example = self.checkpoint.value, self.picker.examples[:1]
        if not name or not example:
            return {}
        try:
            report = run_prediction(load_model(name, self.shared.workspace.value), example[0][0], int(self.topk.value))
        except Exception:  # a page without a first result still works; the error shows on the first real request
            log.warning("no first-open prediction with %s", name, exc_info=True)
            return {}
        return {"label": report.prediction.as_dict(), "view": report.view, "details": report.details}

    def _inputs(self) -> None:
        self.checkpoint = self.shared.predict_checkpoint
        self.checkpoint.render()
        self.topk = SafeSlider(1, 10, value=5, step=1, label="How many classes to show (top-k)")
        with gr.Tabs():
            with gr.Tab("Image"):
                self.picker = image_picker("Image: upload, webcam or paste", "predict-image", 300,
                                           sources=("upload", "webcam", "clipboard"), gallery_id="predict-examples",
                                           examples_label="Examples: real test images (click one)",
                                           elem_classes=("pixelated", "upscale"), checkpoint=self.checkpoint.value)
                self.image = self.picker.image
                self.shared.predict_image = self.image  # Compare and the sanity check copy it, as Explain does
            with gr.Tab("Draw"):
                self.sketch = SafeSketchpad(type="pil", canvas_size=(280, 280), height=360, label="Draw (pick the brush)",
                                            brush=gr.Brush(default_size=14, colors=["#000000", "#d62728", "#1f77b4",
                                                                                    "#2ca02c"], color_mode="defaults"),
                                            layers=False, transforms=(), elem_id="predict-sketch")
                self.predict_drawing_btn = gr.Button("Predict the drawing", variant="primary")

    def _wire(self) -> None:
        outputs = [self.label, self.view, self.details]
        ws = self.shared.workspace
        gr.on([self.image.change, self.checkpoint.change, self.topk.release], self.predict,
              inputs_kwargs={"checkpoint": self.checkpoint, "image": self.image, "topk": self.topk, "ws": ws},
              outputs=outputs, api_name="predict", concurrency_id="predict", concurrency_limit=4,
              trigger_mode="always_last", show_progress="minimal")
        gr.on([self.sketch.change, self.predict_drawing_btn.click], self.predict_drawing,
              inputs_kwargs={"checkpoint": self.checkpoint, "drawing": self.sketch, "topk": self.topk, "ws": ws},
              outputs=[*outputs, self.shared.explain_image], api_name="predict_drawing", concurrency_id="predict",
              concurrency_limit=4, trigger_mode="always_last", show_progress="minimal")
        self.picker.random.click(self.picker.show_random, inputs_kwargs={"checkpoint": self.checkpoint, "ws": ws},
                                 outputs=[self.image, self.picker.truth], api_name="random_example", concurrency_limit=4)
        self.picker.wire_examples(self.checkpoint, ws, api_name="example")  # public: clients get the checkpoint default
        # Explain works on the same image: copy it client-side (no upload, no decode).
        self.image.change(None, self.image, self.shared.explain_image, js="(x) => x", api_visibility="private",
                          queue=False)
        explain_checkpoint = self.shared.explain_checkpoint
        gr.on([self.checkpoint.input], lambda name: {explain_checkpoint: name}, inputs_kwargs={"name": self.checkpoint},
              outputs=explain_checkpoint, api_visibility="private", queue=False)

    def _shown(self, report: PredictionReport) -> dict:
        """A prediction as updates of the label, the network's view and the details line."""
        return {self.label: report.prediction.as_dict(), self.view: report.view, self.details: report.details}

    @guarded
    def predict(self, *, checkpoint: str, image: PIL.Image.Image | None, topk: int, ws: SessionWorkspace) -> dict:
        """Top-k classes of `image` under `checkpoint`, and the image as the network sees it."""
        if image is None:
            return {self.label: None, self.view: None, self.details: EMPTY}
        return self._shown(run_prediction(load_model(checkpoint, ws), image, topk))

    @guarded
    def predict_drawing(self, *, checkpoint: str, drawing: dict | None, topk: int, ws: SessionWorkspace) -> dict:
        """Predict a sketch: greyscale models see it inverted, cropped and centred like their training digits/garments."""
        loaded = load_model(checkpoint, ws)
        try:
            img = drawing_to_image((drawing or {}).get("composite"), loaded.meta.in_channels, loaded.meta.dataset)
        except ImageError as exc:  # an empty canvas (also fired by Clear): say so quietly, no error pop-up
            return {self.label: None, self.view: None, self.details: f"{str(exc)[0].upper()}{str(exc)[1:]}."}
        return {**self._shown(run_prediction(loaded, img, topk)), self.shared.explain_image: img}


def build(shared: Shared) -> PredictTab:
    """Create the Predict tab in the current Blocks context and wire its events."""
    return PredictTab(shared)
