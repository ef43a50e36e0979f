"""Learning time-lapse: predictions, Grad-CAM and first-layer filters of fixed probe images, once per epoch."""
from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch
import torch.nn as nn

from ..data import Split
from ..explain.gradcam import grad_cam_batch
from ..explain.layers import default_layer
from ..explain.maps import filters
from ..images import InputSpec, uint8_batch_to_input
from ..render.animation import animated_gif
from ..render.pictures import colorize, overlay
from ..store.timelapse_file import Timelapse, save_timelapse


def choose_probes(split: Split, k: int = 8, seed: int = 0) -> np.ndarray:
    """k test indices chosen by seed, one class after another so the probes cover as many classes as possible."""
    g = np.random.default_rng(seed)
    labels = split.labels.numpy()
    by_class = [g.permutation(np.flatnonzero(labels == c)).tolist() for c in np.unique(labels)]
    picks: list[int] = []
    while len(picks) < min(k, len(labels)):
        for idx in by_class:
            if idx and len(picks) < k:
                picks.append(idx.pop())
    return np.array(picks, dtype=np.int64)


class TimelapseRecorder:
    """Records probes: `record(model, epoch)` at epoch 0 and after each epoch, then `save(run_dir)`.

    The engine drives it through train.callbacks.TimelapseCallback (fit's default when saving a run)."""

    def __init__(self, split: Split, spec: InputSpec, class_names, k: int = 8, seed: int = 0, layer: str | None = None,
                 arch: str | None = None, extra: torch.Tensor | None = None):
        idx = choose_probes(split, k, seed)
        self.images = split.images[idx]  # uint8 [K,C,H,W]
        self.labels = split.labels[idx].numpy()
        if extra is not None:  # an uploaded image (uint8 [C,H,W] at the dataset's size), label unknown (-1)
            self.images = torch.cat([self.images, extra[None]])
            self.labels = np.append(self.labels, -1)
        self.spec, self.class_names, self.layer, self.arch = spec, tuple(class_names), layer, arch
        self.epochs: list[int] = []
        self.probs: list[np.ndarray] = []
        self.cams: list[np.ndarray] = []
        self.filters: list[np.ndarray] = []
        self.seconds = 0.0  # time spent recording, to report its cost against training time

    def inputs(self) -> torch.Tensor:
        """The probes as model input [K,C,S,S] (normalised float)."""
        return uint8_batch_to_input(self.images, self.spec)

    def record(self, model: nn.Module, epoch: int) -> None:
        """Explain the probes with a CPU copy of `model` (the training model and its device are left alone)."""
        t0 = time.perf_counter()
        cpu = copy.deepcopy(model).float().cpu().eval().to(memory_format=torch.contiguous_format)
        self.layer = self.layer or default_layer(cpu, self.arch)
        cams = grad_cam_batch(cpu, self.inputs(), self.layer)
        self.epochs.append(epoch)
        self.probs.append(np.stack([c.probs for c in cams]).astype(np.float32))
        self.cams.append(np.stack([(c.upsampled * 255).round().astype(np.uint8) for c in cams]))
        self.filters.append(filters(cpu).weights.astype(np.float32))
        self.seconds += time.perf_counter() - t0

    def result(self) -> Timelapse:
        """Everything recorded so far, as plain arrays."""
        return Timelapse(self.images.numpy(), self.labels, np.array(self.epochs), np.stack(self.probs), np.stack(self.cams),
                         np.stack(self.filters), self.class_names, self.layer or "")

    def save(self, run_dir: str | os.PathLike) -> Path:
        """Write run_dir/timelapse.npz atomically (no pickles inside: replay loads it with allow_pickle=False)."""
        return save_timelapse(self.result(), run_dir)


def _filter_strip(w: np.ndarray, height: int) -> PIL.Image.Image:
    """First-layer kernels side by side (RGB when they have 3 input channels), symmetric colour scale."""
    tiles = []
    for k in w[:16]:
        k = k / (np.abs(w).max() + 1e-12)  # one scale for all kernels of this epoch
        tile = ((k.transpose(1, 2, 0) + 1) * 127.5).clip(0, 255).astype(np.uint8) if k.shape[0] == 3 \
            else colorize((k.mean(0) + 1) / 2, "RdBu_r")
        tiles.append(np.asarray(PIL.Image.fromarray(tile).resize((height // 2, height // 2), PIL.Image.NEAREST)))
    strip = np.concatenate([np.pad(t, ((0, 0), (0, 2), (0, 0)), constant_values=255) for t in tiles], axis=1)
    return PIL.Image.fromarray(strip)


def render_frame(t: Timelapse, i: int, cam_alpha: float = 0.5, size: int = 96) -> PIL.Image.Image:
    """Probe grid with CAM overlays and labels (green: correct, red: wrong) and the filter strip, for epoch index i."""
    k = len(t.labels)
    canvas = PIL.Image.new("RGB", (k * (size + 6) + 6, size + 70 + size // 2), "white")
    draw = PIL.ImageDraw.Draw(canvas)
    draw.text((6, 2), f"epoch {int(t.epochs[i])}  (Grad-CAM at {t.layer})", fill="black")
    for j in range(k):
        img = t.images[j]
        pil = PIL.Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)).convert("RGB")
        pil = pil.resize((size, size), PIL.Image.NEAREST)
        tile = overlay(pil, t.cams[i, j].astype(np.float32) / 255, alpha=cam_alpha)
        x0 = 6 + j * (size + 6)
        canvas.paste(tile.resize((size, size)), (x0, 16))
        pred = int(np.argmax(t.probs[i, j]))
        ok = t.labels[j] < 0 or pred == t.labels[j]
        draw.text((x0, size + 20), f"{t.class_names[pred][:14]}", fill=(0, 128, 0) if ok else (200, 0, 0))
        draw.text((x0, size + 34), f"{t.probs[i, j, pred]:.0%}", fill="black")
    canvas.paste(_filter_strip(t.filters[i], size), (6, size + 52))
    return canvas


def timelapse_gif(t: Timelapse, ms_per_frame: int = 700) -> bytes:
    """All epochs as an animated GIF for slides (the last frame holds twice as long)."""
    return animated_gif([render_frame(t, i) for i in range(len(t.epochs))], ms_per_frame)
