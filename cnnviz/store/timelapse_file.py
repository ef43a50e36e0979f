"""runs/<id>/timelapse.npz: what the learning time-lapse recorded, as plain arrays (no pickles: loaded with
allow_pickle=False). The recorder and the pictures live in cnnviz.lecture.timelapse; the file format lives here, so the
run readers need nothing above the store."""
from __future__ import annotations

import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write

FILE = "timelapse.npz"


@dataclass(frozen=True)
class Timelapse:
    """Everything recorded: images [K,C,H,W] uint8, labels [K], per epoch probs [E,K,classes], cams [E,K,S,S], filters."""

    images: np.ndarray
    labels: np.ndarray
    epochs: np.ndarray  # [E]: 0 = before training
    probs: np.ndarray  # float32 [E,K,classes]
    cams: np.ndarray  # uint8 [E,K,S,S]: Grad-CAM scaled to 0..255
    filters: np.ndarray  # float32 [E,out,in,kh,kw]: first conv layer
    class_names: tuple[str, ...]
    layer: str


def save_timelapse(t: Timelapse, run_dir: str | os.PathLike) -> Path:
    """Write run_dir/timelapse.npz atomically."""
    arrays = dict(images=t.images, labels=t.labels, epochs=t.epochs, probs=t.probs, cams=t.cams, filters=t.filters,
                  class_names=np.array(t.class_names), layer=np.array(t.layer))
    # Not durable: rewritten after every epoch, and a lost frame is not a lost result.
    return atomic_write(Path(run_dir) / FILE, lambda f: np.savez_compressed(f, **arrays))


class TimelapseError(ValueError):
    """A time-lapse file that cannot be read (cut off, damaged, or not one of ours); the message says why."""


# What a damaged .npz raises somewhere between the zip directory and the last decompressed byte.
_DAMAGED = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, struct.error)


def load_timelapse(run_dir: str | os.PathLike) -> Timelapse:
    """Read a run's time-lapse (plain arrays only); TimelapseError when the file is cut off or malformed."""
    try:
        with np.load(Path(run_dir) / FILE, allow_pickle=False) as z:
            t = Timelapse(z["images"], z["labels"], z["epochs"], z["probs"], z["cams"], z["filters"],
                          tuple(str(s) for s in z["class_names"].reshape(-1)), str(z["layer"]))
    except _DAMAGED as exc:
        detail = f"{type(exc).__name__}: {str(exc)[:120]}" if str(exc) else type(exc).__name__
        raise TimelapseError(f"{FILE} is cut off or damaged ({detail})") from None
    problem = _shape_problem(t)
    if problem:
        raise TimelapseError(f"{FILE} does not hold a time-lapse ({problem})")
    return t


def _shape_problem(t: Timelapse) -> str | None:
    """What does not fit together in `t` (None when the arrays agree with each other)."""
    ndims = {"probe images": (t.images, 4), "labels": (t.labels, 1), "epochs": (t.epochs, 1),
             "probabilities": (t.probs, 3), "Grad-CAM maps": (t.cams, 4), "filters": (t.filters, 5)}
    wrong = next((what for what, (a, n) in ndims.items() if a.ndim != n), None)
    if wrong:
        return f"its {wrong} have the wrong shape"
    k, e, classes = len(t.labels), len(t.epochs), len(t.class_names)
    checks = [
        (t.images.dtype == np.uint8 and len(t.images) == k and k > 0, "probe images"),
        # -1: a probe image of the user's own, with no true class
        (t.labels.dtype.kind in "iu" and bool(((t.labels >= -1) & (t.labels < classes)).all()), "labels"),
        (e > 0 and t.epochs.dtype.kind in "iu", "epochs"),
        (t.probs.shape == (e, k, classes) and t.probs.dtype.kind == "f", "probabilities"),
        (t.cams.shape[:2] == (e, k) and t.cams.dtype == np.uint8, "Grad-CAM maps"),
        (len(t.filters) == e and t.filters.dtype.kind == "f", "filters"),
    ]
    return next((f"its {what} do not match" for ok, what in checks if not ok), None)
