"""Numbers -> pictures: feature and filter grids, heat-map overlays (numpy + colormap LUT + PIL, fast enough"""
from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from .pictures import resize_heat

if TYPE_CHECKING:  # importing captum costs time that the training UI's figures do not need
    from ..explain.attributions import Attribution

_OVERLAID = {"gradcam", "occlusion"}  # coarse maps read best over the image; pixel maps alone


def methods_figure(image: PIL.Image.Image, results: Mapping[str, Attribution], class_names: Sequence[str] | None = None,
                   title: str | None = None, alpha: float = 0.5) -> Figure:
    """The input (as the model sees it) and every method's map side by side, each with a colour bar: one slide."""
    n = len(results) + 1
    # A fixed layout: constrained layout measured every text box and took a third of an explanation's time.
    fig = Figure(figsize=(2.7 * n, 3.4))
    fig.subplots_adjust(left=0.01, right=0.97, bottom=0.03, top=0.78, wspace=0.35)
    axes = fig.subplots(1, n, squeeze=False)[0]
    rgb = np.asarray(image.convert("RGB"))
    axes[0].imshow(rgb, interpolation="nearest")
    axes[0].set_title("model input", fontsize=11)
    name = (lambda k: class_names[k] if class_names and 0 <= k < len(class_names) else f"class {k}")
    for ax, (method, res) in zip(axes[1:], results.items()):
        cmap = "jet" if method in _OVERLAID else "inferno"
        if method in _OVERLAID:  # coarse maps over the picture; pixel-level maps alone, where their detail shows
            ax.imshow(rgb, interpolation="nearest")
            ax.imshow(resize_heat(res.heat, image.size), cmap=cmap, alpha=alpha, vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(res.heat, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(res.title + (f"\n{res.layer}" if res.layer else ""), fontsize=11)
        bar = fig.colorbar(ScalarMappable(Normalize(0, 1), cmap), ax=ax, fraction=0.046, pad=0.03, ticks=[0, 1])
        bar.ax.set_yticklabels(["low", "high"], fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if results:
        first = next(iter(results.values()))
        pred = int(np.argmax(first.probs))
        head = f"predicted {name(pred)} ({first.probs[pred]:.0%}); explaining {name(first.target)}"
        fig.suptitle(f"{title}: {head}" if title else head, fontsize=12)
    return fig


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Confusion matrix: colours row-normalised (recall per true class), counts written in when there is room."""
    m = np.asarray(matrix, dtype=np.int64)
    k = m.shape[0]
    rows = m.sum(1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros(m.shape, dtype=np.float64), where=rows > 0)
    side = min(14.0, max(4.5, 0.45 * k + 2))
    fig = Figure(figsize=(side + 1, side), layout="constrained")
    ax = fig.add_subplot()
    shown = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03, label="fraction of the true class")
    if k <= 30:  # counts only where they fit; at 100 classes the colours carry it
        size = 11 if k <= 10 else 8 if k <= 20 else 6
        for i, j in zip(*np.nonzero(m)):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=size,
                    color="white" if frac[i, j] > 0.5 else "black")
    step = max(1, math.ceil(k / 40))
    ticks = np.arange(0, k, step)
    names = [str(class_names[t]) if t < len(class_names) else str(t) for t in ticks]
    label_size = 10 if k <= 10 else 7 if k <= 40 else 6
    ax.set_xticks(ticks, names, rotation=45 if k > 5 else 0, ha="right" if k > 5 else "center", fontsize=label_size)
    ax.set_yticks(ticks, names, fontsize=label_size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = m.sum()
    ax.set_title(f"accuracy {np.trace(m) / total:.1%} on {total} images" if total else "no predictions yet")
    return fig


def curves_figure(history: Sequence[Mapping[str, float]]) -> Figure:
    """Train/val loss and accuracy per epoch (keys: epoch, train_loss, train_acc, val_loss, val_acc; any may be missing)."""
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    for ax, metric, label in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
        for split, style in (("train", "-o"), ("val", "--s")):
            pts = [(e, h[f"{split}_{metric}"]) for e, h in zip(epochs, history) if h.get(f"{split}_{metric}") is not None]
            if pts:
                ax.plot(*zip(*pts), style, label=split, markersize=4)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    if not history:
        ax_loss.text(0.5, 0.5, "no epochs yet", ha="center", va="center", transform=ax_loss.transAxes)
    return fig


def figure_to_png(fig: Figure, dpi: int = 120) -> bytes:
    """PNG bytes of a Figure (Agg; no pyplot, no GUI)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def figure_to_image(fig: Figure, dpi: int = 120) -> PIL.Image.Image:
    """The Figure rendered as an RGB PIL image (straight from Agg's buffer: no PNG encode and decode)."""
    fig.set_dpi(dpi)
    fig.set_facecolor("white")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return PIL.Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())


