"""'Is this explanation real?' tab: randomise a trained network's weights layer by layer from the top (Adebayo et al.
2018) and watch whether Grad-CAM and Guided Backprop change; streamed step by step. Layout and wiring only: the
stream is cnnviz.lecture.sanity_stream."""
from __future__ import annotations

import logging
from collections.abc import Iterator

import gradio as gr
import PIL.Image

from ..lecture.first_open import first_sanity
from ..lecture.sanity_stream import SanityUpdate, sanity_stream
from .common import SessionWorkspace, Shared, checkpoint_dropdown, guarded, load_model, note, refreshed_dropdown
from .picker import image_picker

NOTE = ("**What am I looking at?** A test of the explanation itself. We destroy what the network learned, one layer at a "
        "time from the output backwards (fresh random weights), and explain the same image again after each step. "
        "An explanation that shows *what the network learned* must change as the learning is destroyed; one that "
        "barely changes is mostly showing the image's edges. *rho* is the rank correlation with the original map "
        "(1 = same ranking of pixels, 0 = unrelated). Typically Grad-CAM falls apart quickly and Guided Backprop "
        "hardly changes: it passes this test badly.")
log = logging.getLogger("cnnviz.ui")
EMPTY = "Choose a checkpoint and an image (or none: test image 0 is used), then press the button."


class SanityTab:
    """The tab's components (made in the current context) and its handlers: keyword inputs, {component: value} out."""

    def __init__(self, shared: Shared, tab: gr.Tab) -> None:
        note(NOTE)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                self.checkpoint = checkpoint_dropdown()
                self.picker = image_picker("Image (empty: test image 0)", "sanity-image", 240,
                                           checkpoint=self.checkpoint.value)
                self.image = self.picker.image
                self.go = gr.Button("Randomise the network, layer by layer", variant="primary", elem_id="sanity-go")
            with gr.Column(scale=3):
                first = self._first_open(shared)  # the trained network on the default example: no empty panels
                self.status = gr.Markdown(first.status if first else EMPTY, elem_id="sanity-status")
                self.grid = gr.Image(first.grid if first else None,
                                     label="Maps after each step (left: trained; then layers randomised from the top)",
                                     format="png", interactive=False, buttons=["download", "fullscreen"],
                                     elem_id="sanity-grid")
                self.plot = gr.LinePlot(first.rho if first else None, x="step", y="rho", color="method",
                                        x_title="layers randomised (from the top)",
                                        y_title="rank correlation with the original", y_lim=[-0.2, 1.05],
                                        label="Does the map still look like the original?",
                                        tooltip=["layer", "rho", "method"], buttons=["fullscreen", "export"],
                                        elem_id="sanity-plot")
        self._wire(shared, tab)

    def _first_open(self, shared: Shared) -> SanityUpdate | None:
        """The first step (the trained model explained) on the image the tab opens with; None if it cannot be made."""
        image, name = self.image.value, self.checkpoint.value
        path = image.get("path") if isinstance(image, dict) else None
        if not path or not name:
            return None
        try:
            return first_sanity(load_model(name, shared.workspace.value), path)
        except Exception:  # the tab still works without it; pressing the button shows the error
            log.warning("no first-open sanity check with %s", name, exc_info=True)
            return None

    def _wire(self, shared: Shared, tab: gr.Tab) -> None:
        ws, picker = shared.workspace, self.picker
        self.go.click(self.run_sanity, inputs_kwargs={"checkpoint": self.checkpoint, "image": self.image, "ws": ws},
                      outputs=[self.status, self.grid, self.plot], api_name="sanity", concurrency_id="lecture",
                      concurrency_limit=2, show_progress_on=[self.status])
        picker.random.click(picker.show_random, inputs_kwargs={"checkpoint": self.checkpoint, "ws": ws},
                            outputs=[self.image, picker.truth], api_name="sanity_random_image",
                            api_visibility="undocumented", concurrency_limit=4)
        picker.wire_examples(self.checkpoint, ws, api_visibility="private")
        if shared.predict_image is not None:  # the image chosen in Predict comes along, as it does to Explain
            shared.predict_image.change(None, shared.predict_image, self.image, js="(x) => x", api_visibility="private",
                                        queue=False)
        tab.select(self.refresh_checkpoints, inputs_kwargs={"ws": ws, "current": self.checkpoint},
                   outputs=self.checkpoint, api_visibility="private", queue=False)

    @guarded
    def run_sanity(self, *, checkpoint: str | None, image: PIL.Image.Image | None,
                   ws: SessionWorkspace) -> Iterator[dict]:
        """Stream (status, grid of maps per step, rho per step) while the layers are randomised from the top."""
        for update in sanity_stream(load_model(checkpoint, ws), image):
            yield {self.status: update.status, self.grid: update.grid, self.plot: update.rho}

    def refresh_checkpoints(self, *, ws: SessionWorkspace, current: str | None) -> dict:
        """The checkpoint menu with this session's checkpoints, keeping the current one when it still exists."""
        return {self.checkpoint: refreshed_dropdown(ws, current)}


def build(shared: Shared, tab: gr.Tab) -> SanityTab:
    """Create the tab's components in the current context (inside `tab`) and wire its events."""
    return SanityTab(shared, tab)
