"""The image picker several tabs share: an image box, 'Random test image' with its true label, and example images."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from ..examples import asset_examples, test_example
from ..images import load_image
from .common import SessionWorkspace, guarded, load_model, shorten, user_error
from .uploads import SafeImage


@dataclass(eq=False)  # compared by identity, so hashable: its bound methods are event handlers
class ImagePicker:
    """The picker's components; its handlers take keyword inputs and return {component: value}."""

    image: SafeImage
    random: gr.Button
    truth: gr.Textbox
    gallery: gr.Dataset
    examples: list[tuple[Path, str]]
    rng: random.Random = field(default_factory=random.Random)  # this picker's own: no module-level state

    @guarded
    def show_example(self, *, index: int) -> dict:
        """A click on the gallery: the example image and its caption as the true label."""
        path, caption = self.examples[self._example_index(index)]
        return {self.image: load_image(path), self.truth: caption}  # decoded here: served from the cache anywhere

    def _example_index(self, index: object) -> int:
        """A valid position in the gallery; API clients may send anything (a negative index would wrap round)."""
        last = len(self.examples) - 1
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index <= last:
            return index
        if isinstance(index, float) and index.is_integer() and 0 <= index <= last:
            return int(index)
        raise user_error(f"There is no example {shorten(repr(index))}: choose an example from 0 to {last}.",
                         title="No such example")

    @guarded
    def show_random(self, *, checkpoint: str | None, ws: SessionWorkspace) -> dict:
        """A random test image of the checkpoint's dataset, with its true label."""
        ex = test_example(load_model(checkpoint, ws).meta.dataset, rng=self.rng)
        return {self.image: ex.image, self.truth: f"{ex.label} (test image {ex.index} of {ex.dataset})"}


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
