"""'Is this explanation real?' tab: randomise a trained network's weights layer by layer from the top (Adebayo et al.
2018) and watch whether Grad-CAM and Guided Backprop change; streamed step by step."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import PIL.Image

from ..explain.predict import predict_tensor
from ..explain.sanity import sanity_check
from ..images import model_view, to_model_input
from ..lecture.drilldown import model_inputs, trained_dataset
from ..render.lecture_pictures import sanity_frame, sanity_grid
from .common import SessionWorkspace, Shared, checkpoint_dropdown, guarded, load_model, note, refreshed_dropdown
from .picker import example_loader, image_picker, random_test_image
from .uploads import SafeImage

NOTE = ("**What am I looking at?** A test of the explanation itself. We destroy what the network learned, one layer at a "
        "time from the output backwards (fresh random weights), and explain the same image again after each step. "
        "An explanation that shows *what the network learned* must change as the learning is destroyed; one that "
        "barely changes is mostly showing the image's edges. *rho* is the rank correlation with the original map "
        "(1 = same ranking of pixels, 0 = unrelated). Typically Grad-CAM falls apart quickly and Guided Backprop "
        "hardly changes: it passes this test badly.")
EMPTY = "Choose a checkpoint and an image (or none: test image 0 is used), then press the button."


def _input(loaded, image: PIL.Image.Image | None):
    """(model input [1,C,S,S], what the network sees, where the image came from)."""
    if image is None:
        x = model_inputs(trained_dataset(loaded).test.images[:1], loaded)
        return x, model_view(x, loaded.meta.spec), f"test image 0 of {loaded.meta.dataset}"
    x = to_model_input(image, loaded.meta.spec)
    return x, model_view(x, loaded.meta.spec), "your image"


def _status(steps: list, total: int, source: str, target: str) -> str:
    last = steps[-1]
    done = len(steps) - 1
    head = (f"Explaining **{target}** on {source}. " + (f"Randomised {done} of {total} layers; last: `{last.layer}`."
                                                      if done else "Trained model explained; now randomising…"))
    if done < total:
        return head
    return (head + f"\n\n**Finished.** After randomising every layer: Grad-CAM rho = **{last.rho_gradcam:+.2f}**, "
            f"Guided Backprop rho = **{last.rho_guided_backprop:+.2f}**. The closer to 1, the less the map depends on "
            "what the network learned.")


@guarded
def run_sanity(checkpoint: str | None, image: PIL.Image.Image | None, ws: SessionWorkspace):
    """Stream (status, grid of maps per step, rho per step) while the layers are randomised from the top."""
    loaded = load_model(checkpoint, ws)
    x, view, source = _input(loaded, image)
    total = sum(1 for n, m in loaded.model.named_modules() if n and any(True for _ in m.parameters(recurse=False)))
    top = predict_tensor(loaded, x, 1)  # the trained model's prediction is the class explained at every step
    target = f"the predicted class {top.labels[0]} ({top.probs[0]:.0%})"
    steps = []
    for step in sanity_check(loaded.model, x):
        steps.append(step)
        yield _status(steps, total, source, target), sanity_grid(view, steps), sanity_frame(steps)


@dataclass
class SanityTab:
    checkpoint: gr.Dropdown
    image: SafeImage
    grid: gr.Image
    plot: gr.LinePlot


def build(shared: Shared, tab: gr.Tab) -> SanityTab:
    """Create the tab's components in the current context (inside `tab`) and wire its events."""
    note(NOTE)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            checkpoint = checkpoint_dropdown()
            picker = image_picker("Image (empty: test image 0)", "sanity-image", 240)
            go = gr.Button("Randomise the network, layer by layer", variant="primary", elem_id="sanity-go")
        with gr.Column(scale=3):
            status = gr.Markdown(EMPTY, elem_id="sanity-status")
            grid = gr.Image(label="Maps after each step (left: trained; then layers randomised from the top)",
                            format="png", interactive=False, buttons=["download", "fullscreen"], elem_id="sanity-grid")
            plot = gr.LinePlot(x="step", y="rho", color="method", x_title="layers randomised (from the top)",
                               y_title="rank correlation with the original", y_lim=[-0.2, 1.05],
                               label="Does the map still look like the original?", tooltip=["layer", "rho", "method"],
                               buttons=["fullscreen", "export"], elem_id="sanity-plot")
    image, ws = picker.image, shared.workspace
    go.click(run_sanity, [checkpoint, image, ws], [status, grid, plot], api_name="sanity", concurrency_id="lecture",
             concurrency_limit=2, show_progress_on=[status])
    picker.random.click(random_test_image, [checkpoint, ws], [image, picker.truth], api_name="sanity_random_image",
                        api_visibility="undocumented", concurrency_limit=4)
    picker.gallery.click(example_loader(picker), picker.gallery, [image, picker.truth], api_visibility="private",
                         concurrency_limit=4)
    tab.select(refreshed_dropdown, [ws, checkpoint], checkpoint, api_visibility="private", queue=False)
    return SanityTab(checkpoint, image, grid, plot)
