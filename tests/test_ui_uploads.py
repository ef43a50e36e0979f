"""Bad and odd uploads through the real upload path: each gets a sensible result or a clear message, and the
server keeps serving. Also the upload components' preprocess called directly."""
from __future__ import annotations

import base64
import functools
import io
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("gradio")
import gradio as gr  # noqa: E402
from gradio.data_classes import FileData, ImageData  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from PIL import Image  # noqa: E402
from test_ui_api import CKPT, REPO, running_app  # noqa: E402  (pytest puts tests/ on sys.path)

from cnnviz.ui.uploads import SafeImage, SafeSketchpad  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")


def half_white(size: tuple[int, int] = (32, 32), mode: str = "L") -> Image.Image:
    """Left half white, right half black: shows whether the image arrived the right way round."""
    arr = np.zeros(size[::-1], dtype=np.uint8)
    arr[:, : size[0] // 2] = 255
    return Image.fromarray(arr).convert(mode)


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def bomb_png(side: int = 30000) -> bytes:
    """A tiny PNG whose header claims side x side pixels: what a decompression bomb looks like before decoding."""
    png = bytearray(encoded(Image.new("1", (1, 1)), "PNG"))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    png[ihdr:ihdr + 8] = struct.pack(">II", side, side)
    png[ihdr + 13:ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(png[ihdr - 4:ihdr + 13])))
    return bytes(png)


@functools.cache
def bad_files() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, text the error must contain)."""
    png = encoded(half_white(), "PNG")
    jpg = encoded(half_white(mode="RGB"), "JPEG")
    return {
        "notimage.png": (b"this is not an image " * 20, "not an image"),
        "empty.png": (b"", "empty"),
        "truncated.png": (png[: len(png) // 2], "truncated or corrupt"),
        "truncated.jpg": (jpg[: len(jpg) // 2], "corrupt"),
        "bomb.png": (bomb_png(), "decompression bomb"),  # 900 megapixels: refused by PIL's own check
        "huge.png": (bomb_png(7000), "49 megapixels; the limit is 40"),  # under PIL's limit, over ours
        "wide.png": (encoded(Image.new("L", (1000, 10), 128), "PNG"), "crop it"),
        "drawing.svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not an image"),
    }


@functools.cache
def odd_files() -> dict[str, tuple[bytes, bool]]:
    """name -> (file bytes, whether the network should see the left half bright)."""
    frames = [half_white(mode="P"), Image.new("P", (32, 32), 0)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    sixteen = Image.fromarray(np.asarray(half_white(), dtype=np.uint16) * 257).convert("I;16")
    rgba = Image.new("RGBA", (32, 32), (0, 0, 0, 255))
    rgba.putalpha(half_white())  # left: opaque black; right: transparent black, which must turn white
    exif = Image.Exif()
    exif[0x0112] = 3  # stored upside down and mirrored: displayed after a 180-degree turn
    return {
        "animated.gif": (buf.getvalue(), True),  # first frame
        "sixteen.png": (encoded(sixteen, "PNG"), True),
        "cmyk.jpg": (encoded(half_white(mode="RGB").convert("CMYK"), "JPEG", quality=95), True),
        "transparent.png": (encoded(rgba, "PNG"), False),  # composited on white
        "rotated.jpg": (encoded(half_white(mode="RGB"), "JPEG", quality=95, exif=exif), False),  # 180 degrees
        "one_pixel.png": (encoded(Image.new("L", (1, 1), 255), "PNG"), True),
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[Client]:
    with running_app(tmp_path_factory.mktemp("uploads")) as url:
        c = Client(url, verbose=False)
        c.url = url
        yield c
        c.close()


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def still_serving(client: Client) -> None:
    probs, _, _ = client.predict(CKPT, handle_file(REPO / "cnnviz" / "shipped" / "examples" / "digits_7.png"), 1, api_name="/predict")
    assert probs["label"] == "7"


@pytest.mark.parametrize("name", list(bad_files()))
def test_bad_upload_gets_a_clear_message(client, tmp_path, name):
    data, message = bad_files()[name]
    with pytest.raises(AppError, match=message) as info:
        client.predict(CKPT, handle_file(write(tmp_path, name, data)), 3, api_name="/predict")
    assert str(info.value).startswith("This image cannot be used")
    still_serving(client)


@pytest.mark.parametrize("name", list(odd_files()))
def test_odd_upload_gets_a_sensible_result(client, tmp_path, name):
    data, left_bright = odd_files()[name]
    probs, view, _ = client.predict(CKPT, handle_file(write(tmp_path, name, data)), 3, api_name="/predict")
    assert len(probs["confidences"]) == 3
    seen = Image.open(view).convert("L")
    left, right = seen.getpixel((seen.width // 5, seen.height // 2)), seen.getpixel((4 * seen.width // 5, seen.height // 2))
    if name == "one_pixel.png":
        assert left > 200 and right > 200
    else:
        assert (left > right + 100) if left_bright else (right > left + 100)


def test_explain_and_drawing_inputs_decode_safely_too(client, tmp_path):
    bomb = write(tmp_path, "bomb.png", bad_files()["bomb.png"][0])
    with pytest.raises(AppError, match="decompression bomb"):
        client.predict(checkpoint=CKPT, image=handle_file(bomb), layer="", target="predicted", opacity=0.5, methods=[],
                       sort="mean", max_maps=8, api_name="/explain")
    drawing = {"background": None, "layers": [], "composite": handle_file(bomb), "id": None}
    with pytest.raises(AppError, match="decompression bomb"):
        client.predict(CKPT, drawing, 3, api_name="/predict_drawing")
    still_serving(client)


def test_uploads_over_the_size_cap_are_refused(client, tmp_path):
    big = write(tmp_path, "big.png", os.urandom(11_000_000))
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # the client reads the cap from the app
        client.predict(CKPT, handle_file(big), 3, api_name="/predict")
    with open(big, "rb") as f:  # and the server refuses it even from a client that does not check
        r = httpx.post(client.url + "gradio_api/upload", files={"files": ("big.png", f, "image/png")}, timeout=30)
    assert r.status_code == 413
    still_serving(client)


def test_preprocess_turns_every_failure_into_a_gr_error(tmp_path):
    img = SafeImage(type="pil")
    for name, (data, message) in bad_files().items():
        with pytest.raises(gr.Error, match=message):
            img.preprocess(ImageData(path=write(tmp_path, name, data), orig_name=name))
    url = "data:image/png;base64," + base64.b64encode(encoded(half_white(), "PNG")).decode()
    assert img.preprocess(ImageData(url=url)).size == (32, 32)
    with pytest.raises(gr.Error, match="not an image"):
        img.preprocess(ImageData(url="data:image/png;base64," + base64.b64encode(b"nope").decode()))
    assert img.preprocess(None) is None
    sketch = SafeSketchpad(type="pil")
    with pytest.raises(gr.Error, match="empty"):
        sketch.convert_and_format_image(FileData(path=write(tmp_path, "e.png", b"")))
    assert sketch.convert_and_format_image(b"\x89PNG" + encoded(half_white(), "PNG")[4:]).mode == "RGB"


def test_a_data_url_obeys_the_running_servers_upload_cap():
    from types import SimpleNamespace

    from gradio.context import LocalContext

    url = "data:image/png;base64," + base64.b64encode(encoded(half_white((300, 300)), "PNG", compress_level=0)).decode()
    token = LocalContext.blocks.set(SimpleNamespace(max_file_size=2**16))  # what launch(max_file_size=) leaves there
    try:
        with pytest.raises(gr.Error, match="larger than the 0.0625 MB upload limit"):  # 90 kB of pixels
            SafeImage(type="pil").preprocess(ImageData(url=url))
        LocalContext.blocks.set(SimpleNamespace(max_file_size=200_000))
        assert SafeImage(type="pil").preprocess(ImageData(url=url)).size == (300, 300)
    finally:
        LocalContext.blocks.reset(token)


def test_subclasses_reuse_the_stock_frontends_and_write_no_stub_files():
    assert SafeImage().get_block_name() == "image" and SafeSketchpad().get_block_name() == "imageeditor"
    assert not (Path(__file__).resolve().parents[1] / "cnnviz" / "ui" / "uploads.pyi").exists()
