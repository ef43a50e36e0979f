"""Safe decoding of user images, and turning them into model inputs and back ("what the network sees").

`load_image` accepts anything a user may upload and returns an RGB PIL image or raises ImageError
with a message fit to show them. Policy for odd inputs:
- size limits are checked before decoding: the byte size, then width x height from the header;
- animated GIF/WebP/PNG: the first frame; EXIF orientation is applied;
- transparency is composited on white; palette, CMYK, 1-bit and 16-bit images become 8-bit RGB;
- extreme aspect ratios (longer side more than MAX_ASPECT times the shorter) are refused: the centre
  crop every model input gets would keep only a sliver, so the user is asked to crop first.
"""
from __future__ import annotations

import io
import math
import os
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_ASPECT = 20.0
DISPLAY_MIN = 224  # model_view upscales to at least this many px per side
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, TypeError, IndexError, KeyError, zlib.error,
                  Image.DecompressionBombError)


class ImageError(ValueError):
    """An image could not be used; the message is meant for the user."""


@dataclass(frozen=True)
class InputSpec:
    """What a model expects: channels (1 or 3), square side in px, and per-channel mean/std."""

    channels: int
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.size < 1:
            raise ValueError(f"size must be positive, got {self.size}")
        if len(self.mean) != self.channels or len(self.std) != self.channels or min(self.std) <= 0:
            raise ValueError(f"need {self.channels} mean and {self.channels} positive std values, got {self.mean} {self.std}")


def _read_bytes(source: str | os.PathLike | bytes, max_bytes: int) -> bytes:
    """The raw bytes of a path or bytes-like source, refusing empty and oversized input before reading it all."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ImageError(f"no image file at {path}")
        if os.path.getsize(path) > max_bytes:
            raise ImageError(f"the file is {os.path.getsize(path) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)  # +1: the file may have grown since the size check
    if not data:
        raise ImageError("the file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageError(f"the file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    return data


def _check_size(w: int, h: int, max_pixels: int) -> None:
    """Refuse decompression bombs, empty and sliver-shaped images, from the header's size alone."""
    if w < 1 or h < 1:
        raise ImageError(f"the image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(f"the image is {w}x{h} = {w * h / 1e6:.0f} megapixels; the limit is {max_pixels / 1e6:.0f} "
                         "megapixels (this guards against decompression bombs)")
    if max(w, h) / min(w, h) > MAX_ASPECT:
        raise ImageError(f"the image is {w}x{h} px: more than {MAX_ASPECT:.0f} times longer one way than the other, "
                         "so a centre crop would keep almost nothing; crop it to the part you want first")


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open (header only), check the size, then decode the first frame."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"the image is too large to decode safely (decompression bomb?): {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError("the file is not an image, or not in a format that can be read (try PNG or JPEG)") from exc
    except _DECODE_ERRORS as exc:
        raise ImageError(f"the image header is corrupt ({exc})") from exc
    _check_size(*img.size, max_pixels)
    try:
        img.seek(0)  # animated GIF/WebP/APNG: the first frame
        img.load()
    except _DECODE_ERRORS as exc:
        raise ImageError(f"the image is truncated or corrupt and could not be decoded ({exc})") from exc
    return img


def _sixteen_to_8bit(img: Image.Image) -> Image.Image:
    """I;16* / I / F greyscale to 8-bit L, scaling the full range instead of clipping at 255."""
    arr = np.asarray(img)
    if img.mode.startswith("I;16") or (img.mode == "I" and arr.size and arr.max() > 255):
        arr = np.clip(arr.astype(np.float64), 0, 65535) / 257.0  # 65535 -> 255 exactly
    elif img.mode == "F" and arr.size and arr.max() <= 1.0:
        arr = arr.astype(np.float64) * 255.0  # float images in [0, 1]
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))  # 2-D uint8 -> mode L


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any decoded mode to RGB; transparency composited on white."""
    if img.mode.startswith("I") or img.mode == "F":
        img = _sixteen_to_8bit(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return img.convert("RGB")
    except ValueError as exc:  # e.g. LAB or multi-band TIFF without an RGB conversion
        raise ImageError(f"images in colour mode {img.mode} are not supported; save it as RGB PNG or JPEG") from exc


def load_image(source: str | os.PathLike | bytes | Image.Image, *, max_bytes: int = 20_000_000,
               max_pixels: int = 40_000_000) -> Image.Image:
    """Decode a path, bytes or PIL image into an upright RGB image, or raise ImageError with a clear message."""
    if isinstance(source, Image.Image):
        img = source
        _check_size(*img.size, max_pixels)
    else:
        img = _open(_read_bytes(source, max_bytes), max_pixels)
    try:
        img = ImageOps.exif_transpose(img)
    except _DECODE_ERRORS:
        pass  # a malformed EXIF block: the pixels are fine, just keep them unrotated
    return _to_rgb(img)


def resize_square(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to `size` (bilinear, antialiased when shrinking), then centre-crop to a square."""
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        # PIL widens the bilinear filter by the shrink factor, i.e. it antialiases.
        img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def to_model_input(img: Image.Image, spec: InputSpec) -> torch.Tensor:
    """PIL image -> normalised float tensor [1, C, S, S] as the model expects it."""
    img = img if img.mode in ("L", "RGB") else _to_rgb(img)
    img = img.convert("L" if spec.channels == 1 else "RGB")
    arr = np.asarray(resize_square(img, spec.size), dtype=np.float32) / 255.0
    x = torch.from_numpy(arr.reshape(spec.size, spec.size, spec.channels).copy()).permute(2, 0, 1)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(-1, 1, 1)
    return ((x - mean) / std).unsqueeze(0).contiguous()


def model_view(x: torch.Tensor, spec: InputSpec) -> Image.Image:
    """De-normalise a model input ([1, C, S, S] or [C, S, S]) to what the network gets, upscaled (NEAREST) for display."""
    x = x.detach().float().cpu()
    if x.dim() == 4:
        x = x[0]
    if x.dim() != 3 or x.shape[0] != spec.channels:
        raise ValueError(f"expected [1, {spec.channels}, H, W] or [{spec.channels}, H, W], got {tuple(x.shape)}")
    mean = torch.tensor(spec.mean).view(-1, 1, 1)
    std = torch.tensor(spec.std).view(-1, 1, 1)
    pixels = torch.round((x * std + mean).clamp(0, 1) * 255).to(torch.uint8)
    img = uint8_to_pil(pixels)
    factor = math.ceil(DISPLAY_MIN / min(img.size))
    # Whole-number NEAREST scaling keeps every input pixel a crisp square: the blockiness is the point.
    return img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST) if factor > 1 else img


def uint8_to_pil(img: torch.Tensor) -> Image.Image:
    """uint8 [C, H, W] (C = 1 or 3) or [H, W] -> PIL image in mode L or RGB."""
    if img.dtype != torch.uint8:
        raise ValueError(f"expected a uint8 tensor, got {img.dtype}")
    t = img.detach().cpu()
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"expected [C, H, W] with C = 1 or 3, got {tuple(img.shape)}")
    arr = t.permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)  # uint8 2-D -> L, [H, W, 3] -> RGB


def uint8_batch_to_input(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Dataset images uint8 [N,C,H,W] -> normalised float input [N,C,S,S] at the model's size (bilinear resize)."""
    x = images.float() / 255
    if x.shape[-1] != spec.size:
        x = torch.nn.functional.interpolate(x, size=(spec.size, spec.size), mode="bilinear", align_corners=False)
    return (x - torch.tensor(spec.mean).view(1, -1, 1, 1)) / torch.tensor(spec.std).view(1, -1, 1, 1)
