"""The image picker several tabs share: an image box, 'Random test image' with its true label, and example images."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import PIL.Image

from ..examples import asset_examples, test_example
from ..images import load_image
from .common import SessionWorkspace, guarded, load_model
from .uploads import SafeImage

_RNG = random.Random()


@dataclass
class ImagePicker:
    image: SafeImage
    random: gr.Button
    truth: gr.Textbox
    gallery: gr.Dataset
    examples: list[tuple[Path, str]]


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
    gr.on([image.upload, image.clear], lambda: "", None, truth, api_visibility="private", queue=False)  # unknown now
    return ImagePicker(image, rand, truth, gallery, examples)


def example_loader(picker: ImagePicker):
    """Handler for a click on the picker's gallery: (the example image, its caption)."""

    @guarded
    def load_example(index: int) -> tuple[PIL.Image.Image, str]:
        path, caption = picker.examples[int(index)]
        return load_image(path), caption  # decoded here: served from the cache wherever the app runs

    return load_example


@guarded
def random_test_image(checkpoint: str | None, ws: SessionWorkspace) -> tuple[PIL.Image.Image, str]:
    """A random test image of the checkpoint's dataset, with its true label."""
    ex = test_example(load_model(checkpoint, ws).meta.dataset, rng=_RNG)
    return ex.image, f"{ex.label} (test image {ex.index} of {ex.dataset})"
