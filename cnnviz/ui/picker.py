"""The image picker several tabs share: an image box, 'Random test image' with its true label, and example images."""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import PIL.Image

from ..examples import asset_examples, test_example
from ..images import load_image
from .common import SessionWorkspace, guarded, load_model
from .uploads import SafeImage

_RNG = random.Random()


@dataclass(eq=False)  # compared by identity, so hashable: its bound methods are event handlers
class ImagePicker:
    """The picker's components; its handlers take keyword inputs and return {component: value}."""

    image: SafeImage
    random: gr.Button
    truth: gr.Textbox
    gallery: gr.Dataset
    examples: list[tuple[Path, str]]

    @guarded
    def show_example(self, *, index: int) -> dict:
        """A click on the gallery: the example image and its caption as the true label."""
        path, caption = self.examples[int(index)]
        return {self.image: load_image(path), self.truth: caption}  # decoded here: served from the cache anywhere

    @guarded
    def show_random(self, *, checkpoint: str | None, ws: SessionWorkspace) -> dict:
        """A random test image of the checkpoint's dataset, with its true label."""
        image, truth = random_test_image(checkpoint, ws)
        return {self.image: image, self.truth: truth}


def image_picker(label: str, elem_id: str, height: int, sources: tuple[str, ...] = ("upload", "clipboard"),
                 examples_label: str = "Examples (click one)", gallery_id: str | None = None,
                 elem_classes: tuple[str, ...] = ("pixelated",)) -> ImagePicker:
    """Create the picker in the current context; clicking an example fills the image and its true label."""
    image = SafeImage(type="pil", format="png", height=height, sources=list(sources), label=label,
                      elem_classes=list(elem_classes), elem_id=elem_id)
    with gr.Row():
        rand = gr.Button("Random test image", size="sm")
        truth = gr.Textbox(label="True label", interactive=False, max_lines=1)
    examples = asset_examples()
    gallery = gr.Dataset(components=[image], samples=[[str(p)] for p, _ in examples], type="index",
                         label=examples_label, samples_per_page=12, elem_id=gallery_id or f"{elem_id}-examples")
    gr.on([image.upload, image.clear], lambda: {truth: ""}, outputs=truth, api_visibility="private",
          queue=False)  # the true label of an upload is unknown
    return ImagePicker(image, rand, truth, gallery, examples)


def example_loader(picker: ImagePicker) -> Callable[[int], tuple[PIL.Image.Image, str]]:
    """Handler for a click on the gallery returning (the example image, its caption): the Predict tab's; the lecture
    tabs wire ImagePicker.show_example, which answers {component: value}."""

    @guarded
    def load_example(index: int) -> tuple[PIL.Image.Image, str]:
        """Example number `index` of the gallery and its caption."""
        path, caption = picker.examples[int(index)]
        return load_image(path), caption  # decoded here: served from the cache wherever the app runs

    return load_example


@guarded
def random_test_image(checkpoint: str | None, ws: SessionWorkspace) -> tuple[PIL.Image.Image, str]:
    """A random test image of the checkpoint's dataset, with its true label."""
    ex = test_example(load_model(checkpoint, ws).meta.dataset, rng=_RNG)
    return ex.image, f"{ex.label} (test image {ex.index} of {ex.dataset})"
