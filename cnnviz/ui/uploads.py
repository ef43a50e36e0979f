"""Image inputs that decode uploads with cnnviz.images.load_image, so every bad file gets a clear message.

Stock gr.Image runs PIL.Image.open (and convert) on the upload before our handler runs, so an empty,
truncated, non-image or decompression-bomb file fails with a generic "upstream app raised an exception".
These subclasses replace that step: same frontend, same API schema, our safe decoder, our messages.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr
import gradio.component_meta as component_meta
import PIL.Image
from gradio.context import LocalContext
from gradio.data_classes import FileData

from ..images import ImageError, load_image
from .common import to_gr_error, user_error

DEFAULT_DATA_URL_BYTES = 20_000_000  # what load_image accepts, when no server (with its upload cap) is running


def _decode(source: str | bytes) -> PIL.Image.Image:
    """Safe decode -> upright RGB PIL image, or a gr.Error saying what is wrong with the file."""
    try:
        return load_image(source)
    except ImageError as exc:
        raise user_error(f"This image cannot be used: {str(exc).rstrip('.')}.", title="Unusable image") from None
    except Exception as exc:  # a decoder bug must not take the request down with a stack trace
        raise to_gr_error(exc) from exc


def upload_cap() -> int:
    """The running server's --max-upload-mb in bytes (Gradio keeps it on the Blocks that runs this request)."""
    return getattr(LocalContext.blocks.get(None), "max_file_size", None) or DEFAULT_DATA_URL_BYTES


def _data_url_bytes(url: str) -> bytes:
    """The bytes of a `data:...;base64,` URL (webcam/clipboard captures may arrive this way), within the upload cap:
    an image inside the JSON must not get round the limit a file upload has."""
    cap = upload_cap()
    if (len(url) - url.find(",") - 1) * 3 // 4 > cap:  # the decoded size, known before decoding
        raise user_error(f"This image is larger than the {cap / 2**20:.3g} MB upload limit.", title="Unusable image")
    try:
        return base64.b64decode(url.split(",", 1)[1], validate=False)
    except (IndexError, binascii.Error, ValueError):
        raise user_error("This image cannot be used: the data URL is malformed.", title="Unusable image") from None


@contextmanager
def _no_stub_files() -> Iterator[None]:
    """Gradio's component metaclass writes a `.pyi` stub next to the module of every component subclass (meant for
    custom-component packages); an app's subclass should not litter the source tree, so skip it while defining ours."""
    original = component_meta.create_or_modify_pyi
    component_meta.create_or_modify_pyi = lambda *args, **kwargs: None
    try:
        yield
    finally:
        component_meta.create_or_modify_pyi = original


with _no_stub_files():

    class SafeImage(gr.Image):
        """gr.Image whose preprocess returns a safely decoded RGB PIL image (or raises gr.Error with our message)."""

        def get_block_name(self) -> str:
            return "image"  # reuse the stock Image frontend

        def get_block_class(self) -> str:
            return "image"

        def preprocess(self, payload) -> PIL.Image.Image | None:
            """Decode the upload (file or data URL) with our safe decoder."""
            if payload is None:
                return None
            if payload.url and payload.url.startswith("data:"):
                return _decode(_data_url_bytes(payload.url))
            if not payload.path:
                raise user_error("No image was received; upload it again.", title="Unusable image")
            return _decode(payload.path)

    class SafeSketchpad(gr.Sketchpad):
        """gr.Sketchpad whose images are decoded by load_image (transparency on white), returned as PIL images."""

        def get_block_name(self) -> str:
            return "imageeditor"  # Sketchpad is a template of the ImageEditor frontend

        def get_block_class(self) -> str:
            return "imageeditor"

        def convert_and_format_image(self, file: FileData | bytes | None,
                                     flatten_on_white: bool = False) -> PIL.Image.Image | None:
            """Decode one image of the editor's payload (background, layer or composite) safely."""
            if file is None:
                return None
            return _decode(file.path if isinstance(file, FileData) else bytes(file))
