"""A run as the Train tab shows it, without gradio: status line, result summary, confusion picture, per-class accuracy,
and a download copy of its checkpoint named after the run.

Here in train/ rather than render/: it reads a live Worker and the engine's end events (render sits below train and
knows nothing of runs); the picture itself is drawn by render.figures.
"""
from __future__ import annotations

import html
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image

from ..render.figures import confusion_figure, figure_to_image
from ..store.atomic import atomic_copy
from ..store.checkpoints import checkpoint_name
from ..store.scratch import ScratchFolder
from .events import Event, Failed, Finished, Stopped
from .session import PlotMeta, TrainSession, Worker


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds // 60 % 60:02d}"


def idle_status(text: str) -> str:
    """The status box with one line of text and no progress bar."""
    return f"<div class='train-status'><div class='ts-head'>{html.escape(text)}</div></div>"


def status_html(w: Worker) -> str:
    """Epoch counter, a progress bar, images/s, ETA and the latest loss/accuracy."""
    with w.lock:
        started, p, last, paused, end = w.started, w.progress, w.last_epoch, w.paused, w.end
        deadline = w.pause_deadline if paused else None
    if started is None:
        if end is not None:
            return idle_status(f"{type(end).__name__}: {getattr(end, 'message', '')}")
        ahead, workers = w.runs_ahead(), w.queue.slots
        if ahead and workers > 1:  # several workers: its place in line, not "runs ahead"
            return idle_status(f"Waiting in the training queue: place {ahead} in line, all {workers} training workers busy")
        if ahead:
            return idle_status(f"Waiting in the training queue: {ahead} run{'s' * (ahead > 1)} ahead of this one")
        if w.device is None:
            return idle_status("Starting a training process…")
        return idle_status(f"Loading the data and building the model on {w.device}…")
    epochs = started.config["epochs"]
    step = p.step if p else 0
    frac = step / max(1, started.total_steps)
    state = "Paused" if paused else ("Finished" if isinstance(end, Finished) else "Stopped" if isinstance(end, Stopped)
                                     else "Failed" if isinstance(end, Failed) else "Training")
    epoch = end.epoch if isinstance(end, Stopped) else p.epoch if p else 1
    step = end.step if isinstance(end, Stopped) else step
    head = f"{state} · epoch {epoch} of {epochs}"
    stats = [f"step {step:,} / {started.total_steps:,}"]
    if deadline is not None and end is None:  # the owner learns why a run that holds up others will stop
        stats.insert(0, f"another run is waiting: this one stops (and saves) in {_clock(deadline - time.monotonic())} "
                        "unless resumed")
    if p:
        stats += [f"{p.images_per_sec:,.0f} images/s", f"ETA {_clock(p.eta_seconds)}" if end is None else
                  f"{_clock(time.perf_counter() - w.t0)} elapsed", f"train loss {p.loss:.3f}", f"train acc {p.acc:.1%}"]
    if last:
        stats.append(f"test acc after epoch {last.epoch}: {last.val_acc:.1%}")
    device = f"{started.device}, {started.num_train:,} training images, {started.params:,} parameters"
    return (f"<div class='train-status'><div class='ts-head'>{html.escape(head)}</div>"
            f"<div class='ts-bar'><div style='width:{frac:.1%}'></div></div>"
            f"<div class='ts-stats'>{' · '.join(stats)}</div><div class='ts-sub'>{html.escape(device)}</div></div>")


def saved_name(end: Event | None) -> str | None:
    """Menu name of the checkpoint a run saved (None while it runs or when nothing was saved)."""
    path = getattr(end, "checkpoint", None)
    return checkpoint_name(path) if path else None


def result_markdown(end: Event | None) -> str:
    """The headline when a run ends ("" before)."""
    name = saved_name(end)
    saved = (f"Checkpoint **{name}** is selected in the Predict and Explain tabs." if name
             else "No checkpoint was saved.")
    if isinstance(end, Finished):
        warn = f"\n\n⚠️ {end.warning}" if end.warning else ""
        return (f"### Test accuracy: {end.test_acc:.1%}\nTest loss {end.test_loss:.3f} · trained in "
                f"{_clock(end.seconds)} · {saved}{warn}")
    if isinstance(end, Stopped):
        return f"### Stopped\n{end.message}. {saved}"
    if isinstance(end, Failed):
        return f"### Training failed\n{end.message}"
    return ""


def confusion_image(end: Finished, class_names: tuple[str, ...]) -> PIL.Image.Image:
    """The test-set confusion matrix as a picture."""
    return figure_to_image(confusion_figure(np.asarray(end.confusion), class_names), dpi=100)


def per_class_frame(end: Finished, class_names: tuple[str, ...]) -> pd.DataFrame:
    """(class, accuracy) rows for the bar plot."""
    return pd.DataFrame({"class": list(class_names), "accuracy": list(end.per_class_acc)})


class DownloadFolder:
    """Copies of checkpoints named after their run (a run's file is always model.pt), in one scratch folder per app."""

    def __init__(self, prefix: str = "cnnviz-downloads-") -> None:
        self.folder = ScratchFolder(prefix)

    def copy(self, checkpoint: str | None) -> str | None:
        """A copy of `checkpoint` called <run name>.pt, or None when there is no such file."""
        name = checkpoint_name(checkpoint) if checkpoint else None
        if not name or not Path(checkpoint).is_file():
            return None
        target = self.folder.path() / f"{name}.pt"
        # The store's atomic copy: a download being served never sees a half-written file.
        return str(atomic_copy(checkpoint, target, durable=False))


@dataclass(frozen=True)
class RunDisplay:
    """Everything the Train tab shows of a run at one moment, as plain values."""

    status: str  # HTML
    loss: pd.DataFrame  # long format (epoch, value, series), every run kept
    acc: pd.DataFrame
    plot: PlotMeta  # series, colours and x range of both plots
    legend: str  # Markdown: what each 'run N' was
    result: str  # Markdown; "" until the run ends
    confusion: PIL.Image.Image | None  # once it finished
    per_class: pd.DataFrame | None  # once it finished; bars in `class_names` order
    class_names: tuple[str, ...]
    download: str | None  # a copy of its checkpoint, once saved
    checkpoint: str  # its checkpoint's menu name, "" until saved
    paused: bool


def run_display(session: TrainSession, worker: Worker, downloads: DownloadFolder) -> RunDisplay:
    """Sample a run's state for one UI update (cheap while it trains: the pictures only come once it has ended)."""
    loss, acc, meta = session.frames()
    end = worker.end if worker.finished.is_set() else None
    names = worker.started.class_names if worker.started else ()
    finished = isinstance(end, Finished) and bool(names)
    path = getattr(end, "checkpoint", None)
    return RunDisplay(status=status_html(worker), loss=loss, acc=acc, plot=meta, legend=session.legend(),
                      result=result_markdown(end), confusion=confusion_image(end, names) if finished else None,
                      per_class=per_class_frame(end, names) if finished else None, class_names=names,
                      download=downloads.copy(path) if path else None, checkpoint=saved_name(end) or "",
                      paused=session.pause.is_set())
