"""The image picker several tabs share: an image box, 'Random test image' with its true label, and example images.

The examples follow the chosen checkpoint's dataset (a bag is not offered to a shapes model), and the box opens with
the first of them, so a tab shows a real result on first open."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from ..examples import examples_for, test_example
from ..images import load_image
from .common import SessionWorkspace, checkpoint_choices, checkpoint_entries, default_checkpoint, guarded, load_model, shorten, user_error
from .uploads import SafeImage


def first_checkpoint(checkpoint: str | list[str] | None) -> str | None:
    """A tab's checkpoint input as one name: Compare's multiselect gives a list, whose first entry sets the dataset."""
    if isinstance(checkpoint, (list, tuple)):
        return checkpoint[0] if checkpoint else None
    return checkpoint


def dataset_of(checkpoint: str | list[str] | None, ws: SessionWorkspace | None) -> str | None:
    """The dataset a checkpoint was trained on, from the menu's entry (no model load), else from the model itself."""
    name = first_checkpoint(checkpoint)
    if not name:
        return None
    entry = checkpoint_entries(ws).get(name)
    if entry is not None:
        return entry.dataset
    if ws is None:
        return None
    return load_model(name, ws).meta.dataset


def default_example(checkpoint: str | list[str] | None = None) -> tuple[Path, str] | None:
    """The first example of the checkpoint's dataset (default: the default checkpoint's), or None when it has none."""
    name = first_checkpoint(checkpoint) or default_checkpoint(checkpoint_choices(None))
    examples = examples_for(dataset_of(name, None))
    return examples[0] if examples else None


def _samples(examples: list[tuple[Path, str]]) -> list[list[str]]:
    return [[str(p)] for p, _ in examples]


@dataclass(eq=False)  # compared by identity, so hashable: its bound methods are event handlers
class ImagePicker:
    """The picker's components; its handlers take keyword inputs and return {component: value}."""

    image: SafeImage
    random: gr.Button
    truth: gr.Textbox
    gallery: gr.Dataset
    examples: list[tuple[Path, str]]  # those shown when the page opens (the default checkpoint's dataset)
    rng: random.Random = field(default_factory=random.Random)  # this picker's own: no module-level state

    def examples_of(self, checkpoint: str | list[str] | None, ws: SessionWorkspace | None) -> list[tuple[Path, str]]:
        """The examples offered with `checkpoint` (its dataset's)."""
        return examples_for(dataset_of(checkpoint, ws)) if first_checkpoint(checkpoint) else self.examples

    @guarded
    def show_example(self, *, index: int, checkpoint: str | list[str] | None = None,
                     ws: SessionWorkspace | None = None) -> dict:
        """A click on the gallery: the example image and its caption as the true label."""
        examples = self.examples_of(checkpoint, ws)
        path, caption = examples[self._example_index(index, examples)]
        return {self.image: load_image(path), self.truth: caption}  # decoded here: served from the cache anywhere

    @staticmethod
    def _example_index(index: object, examples: list) -> int:
        """A valid position in the gallery; API clients may send anything (a negative index would wrap round)."""
        last = len(examples) - 1
        if last < 0:
            raise user_error("This checkpoint's dataset has no example images: upload one or press 'Random test "
                             "image'.", title="No such example")
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index <= last:
            return index
        if isinstance(index, float) and index.is_integer() and 0 <= index <= last:
            return int(index)
        raise user_error(f"There is no example {shorten(repr(index))}: choose an example from 0 to {last}.",
                         title="No such example")

    @guarded
    def follow_checkpoint(self, *, checkpoint: str | list[str] | None, ws: SessionWorkspace) -> dict:
        """The gallery for a newly chosen checkpoint: only its dataset's examples."""
        return {self.gallery: gr.Dataset(samples=_samples(self.examples_of(checkpoint, ws)))}

    @guarded
    def show_random(self, *, checkpoint: str | None, ws: SessionWorkspace) -> dict:
        """A random test image of the checkpoint's dataset, with its true label."""
        ex = test_example(load_model(checkpoint, ws).meta.dataset, rng=self.rng)
        return {self.image: ex.image, self.truth: f"{ex.label} (test image {ex.index} of {ex.dataset})"}

    def wire_examples(self, checkpoint: gr.Dropdown, ws: gr.State, **listener: object) -> None:
        """Gallery clicks show the example of the checkpoint's dataset; a checkpoint change swaps the gallery."""
        self.gallery.click(self.show_example, inputs_kwargs={"index": self.gallery, "checkpoint": checkpoint, "ws": ws},
                           outputs=[self.image, self.truth], concurrency_limit=4, **listener)
        checkpoint.change(self.follow_checkpoint, inputs_kwargs={"checkpoint": checkpoint, "ws": ws},
                          outputs=self.gallery, api_visibility="private", concurrency_limit=4)


def image_picker(label: str, elem_id: str, height: int, sources: tuple[str, ...] = ("upload", "clipboard"),
                 examples_label: str = "Examples (click one)", gallery_id: str | None = None,
                 elem_classes: tuple[str, ...] = ("pixelated",),
                 checkpoint: str | list[str] | None = None) -> ImagePicker:
    """Create the picker in the current context, showing the first example of `checkpoint`'s dataset (default: the
    default checkpoint's); clicking an example fills the image and its true label."""
    name = first_checkpoint(checkpoint) or default_checkpoint(checkpoint_choices(None))
    examples = examples_for(dataset_of(name, None))
    first = examples[0] if examples else None
    image = SafeImage(type="pil", format="png", height=height, sources=list(sources), label=label,
                      elem_classes=list(elem_classes), elem_id=elem_id, value=str(first[0]) if first else None)
    with gr.Row():
        rand = gr.Button("Random test image", size="sm")
        truth = gr.Textbox(first[1] if first else None, label="True label", interactive=False, max_lines=1)
    gallery = gr.Dataset(components=[image], samples=_samples(examples), type="index",
                         label=examples_label, samples_per_page=12, elem_id=gallery_id or f"{elem_id}-examples")
    gr.on([image.upload, image.clear], lambda: {truth: ""}, outputs=truth, api_visibility="private",
          queue=False)  # the true label of an upload is unknown
    return ImagePicker(image, rand, truth, gallery, examples)
