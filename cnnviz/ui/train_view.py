"""What the Train tab shows about a run: status line, result summary, confusion matrix, per-class accuracy."""
from __future__ import annotations

import html
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image

from ..render.figures import confusion_figure, figure_to_image
from ..store.checkpoints import checkpoint_name as store_checkpoint_name
from ..train.events import Failed, Finished, Stopped
from ..train.session import Worker

_DOWNLOADS: list[Path] = []  # one temp folder per process, made on first use (no work at import time)


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
    if started is None:
        if end is not None:
            return idle_status(f"{type(end).__name__}: {getattr(end, 'message', '')}")
        ahead = w.runs_ahead()
        if ahead:
            return idle_status(f"Waiting in the training queue: {ahead} run{'s' * (ahead > 1)} ahead of this one")
        return idle_status("Loading the data and building the model…")
    epochs = started.config["epochs"]
    step = p.step if p else 0
    frac = step / max(1, started.total_steps)
    state = "Paused" if paused else ("Finished" if isinstance(end, Finished) else "Stopped" if isinstance(end, Stopped)
                                     else "Failed" if isinstance(end, Failed) else "Training")
    epoch = end.epoch if isinstance(end, Stopped) else p.epoch if p else 1
    step = end.step if isinstance(end, Stopped) else step
    head = f"{state} · epoch {epoch} of {epochs}"
    stats = [f"step {step:,} / {started.total_steps:,}"]
    if p:
        stats += [f"{p.images_per_sec:,.0f} images/s", f"ETA {_clock(p.eta_seconds)}" if end is None else
                  f"{_clock(time_since(w))} elapsed", f"train loss {p.loss:.3f}", f"train acc {p.acc:.1%}"]
    if last:
        stats.append(f"test acc after epoch {last.epoch}: {last.val_acc:.1%}")
    device = f"{started.device}, {started.num_train:,} training images, {started.params:,} parameters"
    return (f"<div class='train-status'><div class='ts-head'>{html.escape(head)}</div>"
            f"<div class='ts-bar'><div style='width:{frac:.1%}'></div></div>"
            f"<div class='ts-stats'>{' · '.join(stats)}</div><div class='ts-sub'>{html.escape(device)}</div></div>")


def time_since(w: Worker) -> float:
    """Seconds since the run's worker was created."""
    return time.perf_counter() - w.t0


def checkpoint_name(path: str | None) -> str | None:
    """Menu name of a saved run (None when nothing was saved)."""
    return store_checkpoint_name(path) if path else None


def result_markdown(end) -> str:
    """The headline when a run ends."""
    name = checkpoint_name(getattr(end, "checkpoint", None))
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


def download_copy(path: str | None) -> str | None:
    """Copy a run's model.pt to a temp file named after the run, so the download is not called model.pt."""
    name = checkpoint_name(path)
    if not name or not Path(path).is_file():
        return None
    if not _DOWNLOADS:
        _DOWNLOADS.append(Path(tempfile.mkdtemp(prefix="cnnviz-downloads-")))
    target = _DOWNLOADS[0] / f"{name}.pt"
    shutil.copyfile(path, target)
    return str(target)
