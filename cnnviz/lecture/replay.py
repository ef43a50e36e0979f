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
from ..store.listing import skipped_note
from ..store.run_reader import RunRecord, load_replay
from ..store.timelapse_file import FILE as TIMELAPSE_FILE
from ..store.timelapse_file import Timelapse, TimelapseError, load_timelapse
from ..store.workspace import Workspace
from .errors import LectureError
from .timelapse import render_frame, timelapse_gif


def _choices(records: list[RunRecord]) -> list[tuple[str, str]]:
    return [(r.label + ("" if r.has_timelapse else " · no time-lapse"), r.run_id) for r in records]


def run_choices(workspace: Workspace) -> list[tuple[str, str]]:
    """(label, run id) of every run `workspace` sees, newest first; runs without a time-lapse say so."""
    return _choices(workspace.runs())


@dataclass(frozen=True)
class RunMenu:
    """The run menu: its choices, and a short note naming the run folders left out because they cannot be read."""

    choices: list[tuple[str, str]]
    note: str  # "" when every run could be read


def run_menu(workspace: Workspace) -> RunMenu:
    """(label, run id) choices of every readable run `workspace` sees, and a note on the ones left out."""
    runs = workspace.runs()
    note = skipped_note(runs.skipped)
    return RunMenu(_choices(runs), f"⚠️ {note}; fix or delete those folders" if note else "")


def recorded_timelapse(record: RunRecord) -> Timelapse:
    """The run's time-lapse, from a small cache keyed by the file's modification time and size."""
    if not record.has_timelapse:
        raise LectureError(f"Run {record.run_id} has no time-lapse (it was trained before recording existed, or "
                           "without saving).")
    try:
        st = (record.dir / TIMELAPSE_FILE).stat()
        return _load(str(record.dir), st.st_mtime_ns, st.st_size)
    except (OSError, TimelapseError) as exc:
        raise LectureError(f"The time-lapse of run {record.run_id} cannot be read: {unreadable(exc)}") from None


def unreadable(exc: Exception) -> str:
    """Why a time-lapse cannot be shown, and what still can."""
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return (f"{why}. A full disk, or a server stopped while writing it, does this; the run's curves and confusion "
            "matrix still replay.")


@functools.lru_cache(maxsize=4)
def _load(run_dir: str, mtime_ns: int, size: int) -> Timelapse:
    return load_timelapse(run_dir)


def frame_at(t: Timelapse, index: float | None) -> PIL.Image.Image:
    """Frame `index` (0 = before training, then one per epoch)."""
    try:
        i = int(float(index))  # float first: "2.0" and 2.0 are frame 2
    except (TypeError, ValueError, OverflowError):  # None (an empty number box), text, nan, infinity
        raise LectureError(f"Choose a frame: a whole number from 0 to {len(t.epochs) - 1} (0 = before "
                           "training).") from None
    if not 0 <= i < len(t.epochs):
        raise LectureError(f"This run recorded {len(t.epochs)} frames (0..{len(t.epochs) - 1}); there is no frame {i}.")
    return render_frame(t, i)


STATE_SUMMARIES = {
    "training": "\n\n⏳ This run is still training: press ↻ for the epochs it has finished since.",
    "failed": "\n\n❌ This run failed (its loss diverged, it ran out of memory, or the program was stopped) and saved no "
              "weights: its curves show how far it got. Train it again with a lower learning rate, or delete it.",
    "empty": "\n\n⏹ This run was stopped before it trained a single step: there is nothing to replay. Delete it.",
    "unsaved": "\n\n⚠️ This run finished, but its weights could not be saved (the disk was probably full).",
}


def run_summary(record: RunRecord, t: Timelapse | None, problem: str | None = None) -> str:
    """Markdown: architecture, dataset, epochs, optimiser, final accuracy, how the run ended, and what the time-lapse
    holds (`problem`: why a recorded time-lapse cannot be shown)."""
    cfg = record.config
    head = (f"### {record.run_id}\n{cfg.get('arch')} on {cfg.get('dataset')}, {len(record.history)} of "
            f"{cfg.get('epochs')} epochs, optimizer {cfg.get('optimizer')}, learning rate {cfg.get('lr')}")
    if record.history:
        last = record.history[-1]
        head += f" · final test accuracy **{last['val_acc']:.1%}**"
    head += STATE_SUMMARIES.get(record.state, "")
    if problem:
        return head + f"\n\n⚠️ {problem}"
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
    t, problem = None, None
    if record.has_timelapse:
        try:
            t = recorded_timelapse(record)
        except LectureError as exc:  # a damaged time-lapse: the curves and the confusion matrix still replay
            problem = str(exc)
    loss, acc = history_frames(record.history)
    confusion = None
    if data.confusion is not None:
        confusion = figure_to_image(confusion_figure(data.confusion, data.class_names), dpi=100)
    frame = render_frame(t, len(t.epochs) - 1) if t is not None else None
    return RunReplay(run_summary(record, t, problem), t, frame, loss, acc, confusion)


def write_gif(t: Timelapse, folder: Path, run_id: str) -> Path:
    """Every frame as an animated GIF (for slides) in `folder`/<run id>-timelapse.gif, written atomically: two users
    may export the same run at once."""
    return atomic_write(folder / f"{run_id}-timelapse.gif", timelapse_gif(t))


__all__ = ["RunMenu", "RunReplay", "frame_at", "recorded_timelapse", "replay_run", "run_choices", "run_menu", "run_summary",
           "write_gif"]
