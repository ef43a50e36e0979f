"""'Is this explanation real?' tab: randomise a trained network's weights layer by layer from the top (Adebayo et al.
2018) and watch whether Grad-CAM and Guided Backprop change; streamed step by step."""
from __future__ import annotations

import random
from dataclasses import dataclass

import gradio as gr
import PIL.Image

from ..drilldown import model_inputs, trained_dataset
from ..images import load_image, model_view, to_model_input
from ..predict import predict_tensor
from ..sanity import sanity_check
from .common import Shared, checkpoint_dropdown, guarded, load_model, note, refreshed_dropdown
from .examples import asset_examples, test_example
from .lecture_pictures import sanity_frame, sanity_grid
from .uploads import SafeImage

NOTE = ("**What am I looking at?** A test of the explanation itself. We destroy what the network learned, one layer at a "
        "time from the output backwards (fresh random weights), and explain the same image again after each step. "
        "An explanation that shows *what the network learned* must change as the learning is destroyed; one that "
        "barely changes is mostly showing the image's edges. *rho* is the rank correlation with the original map "
        "(1 = same ranking of pixels, 0 = unrelated). Typically Grad-CAM falls apart quickly and Guided Backprop "
        "hardly changes: it passes this test badly.")
EMPTY = "Choose a checkpoint and an image (or none: test image 0 is used), then press the button."
_RNG = random.Random()


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
def run_sanity(checkpoint: str | None, image: PIL.Image.Image | None):
    """Stream (status, grid of maps per step, rho per step) while the layers are randomised from the top."""
    loaded = load_model(checkpoint)
    x, view, source = _input(loaded, image)
    total = sum(1 for n, m in loaded.model.named_modules() if n and any(True for _ in m.parameters(recurse=False)))
    top = predict_tensor(loaded, x, 1)  # the trained model's prediction is the class explained at every step
    target = f"the predicted class {top.labels[0]} ({top.probs[0]:.0%})"
    steps = []
    for step in sanity_check(loaded.model, x):
        steps.append(step)
        yield _status(steps, total, source, target), sanity_grid(view, steps), sanity_frame(steps)


@guarded
def random_image(checkpoint: str | None) -> tuple[PIL.Image.Image, str]:
    """A random test image of the checkpoint's dataset, with its true label."""
    ex = test_example(load_model(checkpoint).meta.dataset, rng=_RNG)
    return ex.image, f"{ex.label} (test image {ex.index} of {ex.dataset})"


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
            image = SafeImage(type="pil", format="png", height=240, sources=["upload", "clipboard"],
                              label="Image (empty: test image 0)", elem_classes=["pixelated"], elem_id="sanity-image")
            with gr.Row():
                rand = gr.Button("Random test image", size="sm")
                truth = gr.Textbox(label="True label", interactive=False, max_lines=1)
            examples = asset_examples()
            gallery = gr.Dataset(components=[image], samples=[[str(p)] for p, _ in examples], type="index",
                                 label="Examples (click one)", samples_per_page=12)
            go = gr.Button("Randomise the network, layer by layer", variant="primary", elem_id="sanity-go")
        with gr.Column(scale=3):
            status = gr.Markdown(EMPTY, elem_id="sanity-status")
            grid = gr.Image(label="Maps after each step (left: trained; then layers randomised from the top)",
                            format="png", interactive=False, buttons=["download", "fullscreen"], elem_id="sanity-grid")
            plot = gr.LinePlot(x="step", y="rho", color="method", x_title="layers randomised (from the top)",
                               y_title="rank correlation with the original", y_lim=[-0.2, 1.05],
                               label="Does the map still look like the original?", tooltip=["layer", "rho", "method"],
                               buttons=["fullscreen", "export"], elem_id="sanity-plot")
    go.click(run_sanity, [checkpoint, image], [status, grid, plot], api_name="sanity", concurrency_id="lecture",
             concurrency_limit=2, show_progress_on=[status])
    rand.click(random_image, checkpoint, [image, truth], api_name="sanity_random_image", api_visibility="undocumented",
               concurrency_limit=4)

    def load_example(index: int) -> tuple[PIL.Image.Image, str]:
        path, caption = examples[int(index)]
        return load_image(path), caption

    gallery.click(guarded(load_example), gallery, [image, truth], api_visibility="private", concurrency_limit=4)
    gr.on([image.upload, image.clear], lambda: "", None, truth, api_visibility="private", queue=False)
    tab.select(refreshed_dropdown, checkpoint, checkpoint, api_visibility="private", queue=False)
    return SanityTab(checkpoint, image, grid, plot)

