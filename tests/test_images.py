"""cnnviz.images: hostile and odd files made for real, model input by hand, and the round trip back."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.images import ImageError, InputSpec, load_image, model_view, resize_square, to_model_input, uint8_to_pil

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def save(img: Image.Image, path: Path, fmt: str, **kw) -> Path:
    img.save(path, fmt, **kw)
    return path


def pixel(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(img)[xy[1], xy[0]])


def close(a: tuple[int, ...], b: tuple[int, ...], tol: int) -> bool:
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) <= tol


def png_header_only(width: int, height: int) -> bytes:
    """A real PNG whose IHDR claims width x height, with a tiny IDAT: what a decompression bomb's header looks like."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


# ---------- refusals, each with a message that says why ----------

def test_empty_file_and_empty_bytes(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for source in (empty, b""):
        with pytest.raises(ImageError, match="empty"):
            load_image(source)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no image file"):
        load_image(tmp_path / "nope.png")


def test_garbage_bytes_are_not_an_image(tmp_path: Path) -> None:
    junk = tmp_path / "photo.jpg"
    junk.write_bytes(b"this is a text file pretending to be a JPEG\n" * 20)
    with pytest.raises(ImageError, match="not an image"):
        load_image(junk)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))  # noise: no early end of data
    full = save(noisy, tmp_path / "full", fmt).read_bytes()
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(full[: len(full) // 2])
    assert load_image(full).size == (64, 64)  # the whole file is fine


def test_decompression_bomb_refused_from_header(tmp_path: Path) -> None:
    # 8000 x 8000 = 64 MP: over our 40 MP limit, under PIL's own; 20000^2 trips PIL's DecompressionBombError.
    for side in (8000, 20000):
        path = tmp_path / f"bomb{side}.png"
        path.write_bytes(png_header_only(side, side))
        assert path.stat().st_size < 200  # tiny file, huge claimed size: refused before any decoding
        with pytest.raises(ImageError, match="megapixels|decompression bomb"):
            load_image(path)


def test_pixel_limit_is_configurable() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (300, 300), RED).save(buf, "PNG")
    with pytest.raises(ImageError, match="megapixels"):
        load_image(buf.getvalue(), max_pixels=10_000)
    assert load_image(buf.getvalue()).size == (300, 300)


def test_huge_byte_size(tmp_path: Path) -> None:
    path = save(Image.effect_noise((100, 100), 64).convert("RGB"), tmp_path / "big.png", "PNG")
    size = path.stat().st_size
    for source in (path, path.read_bytes()):
        with pytest.raises(ImageError, match="limit"):
            load_image(source, max_bytes=size - 1)
    assert load_image(path, max_bytes=size).size == (100, 100)


def test_extreme_aspect_ratio_refused_but_moderate_kept() -> None:
    for w, h in ((10000, 1), (1, 10000)):
        with pytest.raises(ImageError, match="crop"):
            load_image(Image.new("RGB", (w, h), RED))
    assert load_image(Image.new("RGB", (20, 1), RED)).size == (20, 1)


# ---------- odd but valid files become sensible RGB ----------

@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_takes_first_frame(tmp_path: Path, fmt: str) -> None:
    frames = [Image.new("RGB", (16, 16), RED), Image.new("RGB", (16, 16), BLUE)]
    path = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    assert Image.open(path).n_frames == 2
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (16, 16)
    assert close(pixel(img, (8, 8)), RED, 8)


def test_16bit_png_scaled_not_clipped(tmp_path: Path) -> None:
    img16 = Image.new("I;16", (3, 1))
    img16.putpixel((0, 0), 0)
    img16.putpixel((1, 0), 257 * 100)
    img16.putpixel((2, 0), 65535)
    path = save(img16, tmp_path / "deep.png", "PNG")
    assert Image.open(path).mode.startswith("I")
    out = load_image(path)
    assert out.mode == "RGB"
    assert [pixel(out, (x, 0)) for x in range(3)] == [(0, 0, 0), (100, 100, 100), (255, 255, 255)]


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "print.jpg", "JPEG", quality=95)
    assert Image.open(path).mode == "CMYK"
    out = load_image(path)
    assert out.mode == "RGB" and close(pixel(out, (8, 8)), RED, 10)


def test_transparency_composited_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (255, 0, 0, 255))
    out = load_image(save(rgba, tmp_path / "alpha.png", "PNG"))
    assert out.mode == "RGB" and pixel(out, (0, 0)) == WHITE and pixel(out, (1, 0)) == RED
    half = load_image(Image.new("LA", (1, 1), (0, 128)))  # black at ~50% on white -> mid grey
    assert close(pixel(half, (0, 0)), (127, 127, 127), 1)


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((1, 0), 1)
    out = load_image(save(pal, tmp_path / "pal.png", "PNG"))
    assert pixel(out, (0, 0)) == RED and pixel(out, (1, 0)) == BLUE
    out = load_image(save(pal, tmp_path / "pal.gif", "GIF", transparency=0))
    assert pixel(out, (0, 0)) == WHITE and pixel(out, (1, 0)) == BLUE


def test_exif_rotation_applied(tmp_path: Path) -> None:
    stored = Image.new("RGB", (20, 10), RED)
    stored.paste(BLUE, (10, 0, 20, 10))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = save(stored, tmp_path / "phone.jpg", "JPEG", exif=exif, quality=95)
    out = load_image(path)
    assert out.size == (10, 20)  # upright: portrait
    assert close(pixel(out, (5, 3)), RED, 10) and close(pixel(out, (5, 16)), BLUE, 10)


def test_one_pixel_and_one_bit_images() -> None:
    one = load_image(Image.new("RGB", (1, 1), BLUE))
    assert one.size == (1, 1) and pixel(one, (0, 0)) == BLUE
    x = to_model_input(one, InputSpec(3, 4, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    assert x.shape == (1, 3, 4, 4) and torch.equal(x[0, :, 2, 1], torch.tensor([0.0, 0.0, 1.0]))
    bits = Image.new("1", (2, 1), 0)
    bits.putpixel((1, 0), 1)
    out = load_image(bits)
    assert pixel(out, (0, 0)) == (0, 0, 0) and pixel(out, (1, 0)) == WHITE


# ---------- model input and what the network sees ----------

def test_to_model_input_by_hand() -> None:
    # 4 x 2 RGB: shorter side is already 2, so no resize; the centre crop keeps columns 1 and 2.
    arr = np.array([[[0, 0, 0], [51, 102, 255], [255, 0, 51], [9, 9, 9]],
                    [[9, 9, 9], [0, 255, 102], [102, 51, 0], [9, 9, 9]]], dtype=np.uint8)
    spec = InputSpec(3, 2, (0.5, 0.25, 0.0), (0.5, 0.25, 2.0))
    x = to_model_input(Image.fromarray(arr), spec)
    assert x.shape == (1, 3, 2, 2) and x.dtype == torch.float32
    # pixel (row 0, col 1) = (51, 102, 255): ((0.2 - 0.5) / 0.5, (0.4 - 0.25) / 0.25, (1.0 - 0) / 2)
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([-0.6, 0.6, 0.5]), atol=1e-6)
    # pixel (row 1, col 2) = (102, 51, 0): ((0.4 - 0.5) / 0.5, (0.2 - 0.25) / 0.25, 0)
    assert torch.allclose(x[0, :, 1, 1], torch.tensor([-0.2, -0.2, 0.0]), atol=1e-6)


def test_to_model_input_greyscale_and_resize() -> None:
    grey = np.zeros((32, 64, 3), dtype=np.uint8)
    grey[:, :32] = 40
    grey[:, 32:] = 200  # left half dark, right half light, all grey so L = R = G = B
    x = to_model_input(Image.fromarray(grey), InputSpec(1, 16, (0.0,), (1.0,)))
    assert x.shape == (1, 1, 16, 16)
    # 64x32 -> 32x16, crop columns 8..23: far from the edge the halves keep their exact values.
    assert torch.allclose(x[0, 0, :, :4], torch.full((16, 4), 40 / 255))
    assert torch.allclose(x[0, 0, :, -4:], torch.full((16, 4), 200 / 255))
    up = to_model_input(Image.new("RGB", (2, 3), (10, 20, 30)), InputSpec(3, 5, (0.0,) * 3, (1.0,) * 3))
    assert torch.allclose(up[0, :, 4, 4], torch.tensor([10, 20, 30]) / 255)  # constant survives upscaling


def test_resize_square_crops_the_centre() -> None:
    img = Image.new("RGB", (6, 3), RED)
    img.paste(BLUE, (0, 0, 1, 3))
    img.paste(BLUE, (5, 0, 6, 3))
    sq = resize_square(img, 3)
    assert sq.size == (3, 3) and all(pixel(sq, (x, y)) == RED for x in range(3) for y in range(3))


@pytest.mark.parametrize("channels", [1, 3])
def test_model_view_round_trips(channels: int) -> None:
    rng = np.random.default_rng(channels)
    arr = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    img = Image.fromarray(arr if channels == 3 else arr[:, :, 0]).convert("RGB")
    spec = InputSpec(channels, 8, (0.3,) * channels, (0.2,) * channels)
    view = model_view(to_model_input(img, spec), spec)
    assert view.size == (224, 224) and view.mode == ("L" if channels == 1 else "RGB")
    back = np.asarray(view)[::28, ::28].astype(int)  # NEAREST x28: every 28th pixel is one input pixel
    want = np.asarray(img.convert("L" if channels == 1 else "RGB")).astype(int)
    assert np.abs(back - want).max() <= 1


def test_uint8_to_pil() -> None:
    t = torch.arange(24, dtype=torch.uint8).reshape(3, 2, 4)
    img = uint8_to_pil(t)
    assert img.mode == "RGB" and img.size == (4, 2) and pixel(img, (3, 1)) == (7, 15, 23)
    assert uint8_to_pil(t[:1]).mode == "L"
    with pytest.raises(ValueError):
        uint8_to_pil(t.float())
    with pytest.raises(ValueError):
        uint8_to_pil(torch.zeros(2, 4, 4, dtype=torch.uint8))


def test_input_spec_validates() -> None:
    with pytest.raises(ValueError):
        InputSpec(3, 32, (0.5,), (0.5,))
    with pytest.raises(ValueError):
        InputSpec(2, 32, (0.5, 0.5), (0.5, 0.5))
