"""Turn a sketchpad drawing into an image that looks like the training data."""
from __future__ import annotations

import math

import numpy as np
import PIL.Image
import PIL.ImageOps

from .images import ImageError

# How much of the frame the object's longer side fills in each greyscale dataset (measured on the test splits:
# MNIST digits sit in a 20 px box of 28, Fashion-MNIST garments nearly fill the frame, the 8x8 UCI digits fill it).
FILL = {"mnist": 20 / 28, "fashion-mnist": 0.9, "digits": 1.0}
DEFAULT_FILL = 0.8
INK_THRESHOLD = 40  # 0..255 after inversion: lighter marks are paper texture or antialiasing


def drawing_to_image(composite: PIL.Image.Image | None, channels: int, dataset: str) -> PIL.Image.Image:
    """Greyscale models: invert (white strokes on black, like MNIST), crop to the ink, centre it with the dataset's
    margin. Colour models get the drawing as it is. Raises ImageError for an empty canvas."""
    if composite is None:
        raise ImageError("draw something first (pick the brush, then draw on the canvas)")
    grey = composite.convert("L")
    ink = PIL.ImageOps.invert(grey)
    mask = np.asarray(ink) > INK_THRESHOLD
    if not mask.any():
        raise ImageError("the canvas is empty: pick the brush and draw something first")
    if channels == 3:
        return composite.convert("RGB")
    ys, xs = np.nonzero(mask)
    crop = ink.crop((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    side = math.ceil(max(crop.size) / FILL.get(dataset, DEFAULT_FILL))
    canvas = PIL.Image.new("L", (side, side), 0)
    canvas.paste(crop, ((side - crop.width) // 2, (side - crop.height) // 2))
    return canvas.convert("RGB")
