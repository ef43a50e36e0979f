"""Replaying a recorded run with no training and no GPU: the run menu, its summary, curves and confusion matrix, and
its time-lapse frames and GIF (re-read only when the file changes: a run still training adds a frame every epoch)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import PIL.Image

from ..render.figures import confusion_figure, figure_to_image
from ..render.lecture_pictures import history_frames
from ..store.atomic import atomic_write
from ..store.run_reader import RunRecord, load_replay
from ..store.timelapse_file import FILE as TIMELAPSE_FILE
from ..store.timelapse_file import Timelapse, load_timelapse
from ..store.workspace import Workspace
from .errors import LectureError
from .timelapse import render_frame, timelapse_gif


def run_choices(workspace: Workspace) -> list[tuple[str, str]]:
    """(label, run id) of every run `workspace` sees, newest first; runs without a time-lapse say so."""
    return [(r.label + ("" if r.has_timelapse else " · no time-lapse"), r.run_id) for r in workspace.runs()]


def recorded_timelapse(record: RunRecord) -> Timelapse:
    """The run's time-lapse, from a small cache keyed by the file's modification time and size."""
    if not record.has_timelapse:
        raise LectureError(f"Run {record.run_id} has no time-lapse (it was trained before recording existed, or "
                           "without saving).")
    st = (record.dir / TIMELAPSE_FILE).stat()
    return _load(str(record.dir), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _load(run_dir: str, mtime_ns: int, size: int) -> Timelapse:
    return load_timelapse(run_dir)


def frame_at(t: Timelapse, index: float) -> PIL.Image.Image:
    """Frame `index` (0 = before training, then one per epoch)."""
    i = int(index)
    if not 0 <= i < len(t.epochs):
        raise LectureError(f"This run recorded {len(t.epochs)} frames (0..{len(t.epochs) - 1}); there is no frame {i}.")
    return render_frame(t, i)


def run_summary(record: RunRecord, t: Timelapse | None) -> str:
    """Markdown: architecture, dataset, epochs, optimiser, final accuracy, and what the time-lapse holds."""
    cfg = record.config
    head = (f"### {record.run_id}\n{cfg.get('arch')} on {cfg.get('dataset')}, {len(record.history)} of "
            f"{cfg.get('epochs')} epochs, optimizer {cfg.get('optimizer')}, learning rate {cfg.get('lr')}")
    if record.history:
        last = record.history[-1]
        head += f" · final test accuracy **{last['val_acc']:.1%}**"
    if t is None:
        return head + "\n\n⚠️ This run has no time-lapse; only its curves and confusion matrix can be replayed."
    return head + f"\n\n{len(t.labels)} probe images, Grad-CAM at `{t.layer}`, {len(t.epochs)} frames."


@dataclass(frozen=True)
class RunReplay:
    """What the replay view shows for one run; `timelapse` and `frame` are None for a run recorded without one."""

    summary: str  # markdown
    timelapse: Timelapse | None
    frame: PIL.Image.Image | None  # the last epoch's frame
    loss: pd.DataFrame  # long format: epoch, value, series (train / test)
    accuracy: pd.DataFrame
    confusion: PIL.Image.Image | None  # test-set confusion matrix at the end of the run, when the checkpoint has it


def replay_run(record: RunRecord) -> RunReplay:
    """Summary, last time-lapse frame, loss and accuracy curves and confusion matrix of a run."""
    data = load_replay(record.run_id, record.dir.parent)
    t = recorded_timelapse(record) if record.has_timelapse else None
    loss, acc = history_frames(record.history)
    confusion = None
    if data.confusion is not None:
        confusion = figure_to_image(confusion_figure(data.confusion, data.class_names), dpi=100)
    frame = render_frame(t, len(t.epochs) - 1) if t is not None else None
    return RunReplay(run_summary(record, t), t, frame, loss, acc, confusion)


def write_gif(t: Timelapse, folder: Path, run_id: str) -> Path:
    """Every frame as an animated GIF (for slides) in `folder`/<run id>-timelapse.gif, written atomically: two users
    may export the same run at once."""
    return atomic_write(folder / f"{run_id}-timelapse.gif", timelapse_gif(t))


__all__ = ["RunReplay", "frame_at", "recorded_timelapse", "replay_run", "run_choices", "run_summary", "write_gif"]
