"""runs/<id>/timelapse.npz: what the learning time-lapse recorded, as plain arrays (no pickles: loaded with
allow_pickle=False). The recorder and the pictures live in cnnviz.lecture.timelapse; the file format lives here, so the
run readers need nothing above the store."""
from __future__ import annotations

import os
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


def load_timelapse(run_dir: str | os.PathLike) -> Timelapse:
    """Read a run's time-lapse (plain arrays only)."""
    with np.load(Path(run_dir) / FILE, allow_pickle=False) as z:
        return Timelapse(z["images"], z["labels"], z["epochs"], z["probs"], z["cams"], z["filters"],
                         tuple(str(s) for s in z["class_names"]), str(z["layer"]))
