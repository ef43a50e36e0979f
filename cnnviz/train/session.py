"""Training runs behind the Train tab: one background worker per run, curves kept per user session (no gradio here).

Why a thread: fit() trains inside `next()`. Driving it from the Gradio generator would stall training while
the generator is suspended (serialising and sending each update); a worker thread keeps training while
the UI samples its state at most every `UPDATE_INTERVAL` seconds.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .config import Limits, TrainConfig
from .engine import fit
from .events import END_EVENTS, EpochEnded, Event, Failed, Paused, Progress, Resumed, RunStarted, Stopped
from .run_queue import QueueFull, RunQueue, Ticket

log = logging.getLogger("cnnviz.train")
UPDATE_INTERVAL = 0.25  # seconds between UI updates: 4 per second at most
PROGRESS_EVERY = 0.2  # engine progress cadence: a new point for (almost) every UI update
# Every update resends every point (LinePlot has no append), so the point count is the reporting cost:
# about 2.5 ms of server CPU per 1,000 points at 4 updates/s. Keep the current run detailed, earlier ones coarse.
MAX_POINTS = 300  # train points of the current run; thinned by half when reached
MAX_POINTS_EARLIER = 120  # train points kept of each earlier run
MAX_RUNS = 5  # curves of earlier runs kept for comparison
STOP_GRACE = 2.0  # seconds a Stop that finds no run waits for one: its Start may have been sent just before
# (test, train) colour per run: a strong and a light shade of one hue (matplotlib's tab20 pairs)
PALETTE = [("#1f77b4", "#aec7e8"), ("#ff7f0e", "#ffbb78"), ("#2ca02c", "#98df8a"), ("#d62728", "#ff9896"),
           ("#9467bd", "#c5b0d5"), ("#8c564b", "#c49c94")]


@dataclass
class RunCurves:
    """Points of one run: x is the epoch as a float (comparable across batch sizes)."""

    number: int
    description: str
    epochs: int
    train: list[tuple[float, float, float]] = field(default_factory=list)  # (epoch, loss, acc)
    test: list[tuple[float, float, float]] = field(default_factory=list)

    def add_train(self, point: tuple[float, float, float]) -> None:
        """Add one (epoch, loss, acc) point, thinning when there are too many."""
        self.train.append(point)
        if len(self.train) > MAX_POINTS:
            del self.train[::2]  # halve the density; keeps the shape of the curve

    def thin(self, limit: int) -> None:
        """Keep about `limit` train points, evenly spread (the last one stays)."""
        step = -(-len(self.train) // limit)
        if step > 1:
            self.train = self.train[::-1][::step][::-1]

    @property
    def label(self) -> str:
        """'run N', the prefix of this run's series names."""
        return f"run {self.number}"

    def colors(self) -> dict[str, str]:
        """Series name -> colour: one hue per run, light for train, strong for test."""
        test, train = PALETTE[(self.number - 1) % len(PALETTE)]
        return {f"{self.label} train": train, f"{self.label} test": test}


@dataclass(frozen=True)
class PlotMeta:
    """What the curves' axes and legend need besides the points."""

    series: tuple[str, ...]
    colors: dict[str, str]
    x_max: float


class PlotFeed:
    """Decides when a plot needs its properties (colours, x range) re-sent, not just new points.

    Gradio's LinePlot fixes its colour domain when it builds the chart and only swaps the data afterwards, so new
    series stay invisible until a property change rebuilds it. The rebuild reads the data of the previous update,
    so properties are sent one update *after* new series first appear in the data.
    """

    def __init__(self) -> None:
        self.previous: tuple[str, ...] | None = None
        self.built: tuple[str, ...] | None = None

    def rebuild_due(self, series: tuple[str, ...]) -> bool:
        """True when this update should carry the plot's properties."""
        due = series == self.previous and series != self.built
        if due:
            self.built = series
        self.previous = series
        return due


class Worker(threading.Thread):
    """Runs fit(cfg) in a thread once `ticket` is first in `queue`, and records what the UI shows; the UI reads those
    fields under `lock`."""

    def __init__(self, cfg: TrainConfig, limits: Limits, stop: threading.Event, pause: threading.Event,
                 curves: RunCurves, ticket: Ticket, queue: RunQueue, runs_root: Path | None = None):
        super().__init__(daemon=True, name=f"cnnviz-train-{cfg.arch}")
        self.cfg, self.limits, self.stop, self.pause, self.curves = cfg, limits, stop, pause, curves
        self.ticket, self.queue, self.runs_root = ticket, queue, runs_root
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.version = 0  # bumped on every event: the UI only re-sends when something changed
        self.started: RunStarted | None = None
        self.progress: Progress | None = None
        self.last_epoch: EpochEnded | None = None
        self.paused = False
        self.paused_since: float | None = None  # monotonic time of the current pause's start
        self.pause_deadline: float | None = None  # when a pause that holds up a waiting run gets stopped
        self.pause_expired = False  # stopped for pausing too long while others waited
        self.end: Event | None = None
        self.t0 = time.perf_counter()

    def run(self) -> None:
        """Thread body: train, recording every event; always ends with an end event."""
        try:
            if self.stop.is_set():  # a Stop overtook its Start (TrainSession.request_stop): nothing to load or train
                self.apply(Stopped(run_id="", epoch=0, step=0, checkpoint=None, message="stopped before it started"))
                return
            if not self.queue.wait_turn(self.ticket, self.stop):
                self.apply(Stopped(run_id="", epoch=0, step=0, checkpoint=None,
                                   message="cancelled while waiting in the training queue"))
                return
            for ev in fit(self.cfg, stop=self.stop, pause=self.pause, limits=self.limits, runs_root=self.runs_root,
                          progress_every=PROGRESS_EVERY):
                self.apply(self.explained(ev))
                if isinstance(ev, Paused):  # a heartbeat twice a second while paused
                    self.check_pause()
        except Exception:  # a bug in the engine must still end the run visibly
            log.exception("training crashed")
            self.apply(Failed(message="training stopped because of an internal error (details in the server log)"))
        finally:
            self.queue.leave(self.ticket)
            if self.end is None:
                self.apply(Failed(message="training ended without a result"))
            self.finished.set()

    def runs_ahead(self) -> int | None:
        """Runs that train or wait before this one (0: its turn), None once it has left the queue."""
        return self.queue.position(self.ticket)

    def check_pause(self) -> None:
        """Stop this run once it has been paused for `max_pause_seconds` while another run waited behind it: a paused run
        holds the only trainer, and its owner may have walked away. Nobody waiting: it may stay paused."""
        behind = self.queue.next_after(self.ticket)
        with self.lock:
            if behind is None or self.paused_since is None:
                self.pause_deadline = None
                return
            # The clock starts when both hold: paused, and someone waiting (a pause before anyone queued is not held against it).
            self.pause_deadline = max(self.paused_since, behind.joined) + self.limits.max_pause_seconds
            if time.monotonic() >= self.pause_deadline and not self.stop.is_set():
                self.pause_expired = True
                self.stop.set()

    def explained(self, ev: Event) -> Event:
        """The engine's Stopped says 'stopped by the user'; a run stopped for pausing too long says why instead."""
        if not (isinstance(ev, Stopped) and self.pause_expired):
            return ev
        why = f"stopped after {self.limits.max_pause_seconds:g} s paused because others were waiting"
        saved = ("the weights so far are saved" if ev.checkpoint
                 else ev.message.partition("; ")[2] or "nothing had been trained yet, so nothing was saved")
        return replace(ev, message=f"{why}; {saved}")

    def apply(self, ev: Event) -> None:
        """Record one engine event (cheap: a few appends under a lock)."""
        with self.lock:
            if isinstance(ev, RunStarted):
                self.started = ev
            elif isinstance(ev, Progress):
                self.progress = ev
                self.curves.add_train((ev.epoch - 1 + ev.batch / max(1, ev.steps_per_epoch), ev.loss, ev.acc))
            elif isinstance(ev, EpochEnded):
                self.last_epoch = ev
                self.curves.test.append((float(ev.epoch), ev.val_loss, ev.val_acc))
            elif isinstance(ev, (Paused, Resumed)):
                if isinstance(ev, Paused) and not self.paused:
                    self.paused_since = time.monotonic()
                elif isinstance(ev, Resumed):
                    self.paused_since = self.pause_deadline = None
                self.paused = isinstance(ev, Paused)
            elif isinstance(ev, END_EVENTS) and self.end is None:
                self.end = ev
            self.version += 1

    def watch(self, interval: float = UPDATE_INTERVAL) -> Iterator[bool]:
        """Yield (at most every `interval` s) whenever something changed; the last yield is True, once the run ended."""
        seen = -1
        while True:
            done = self.finished.wait(interval)
            if done or self.version != seen:
                seen = self.version
                yield done
            if done:
                return


class TrainSession:
    """Per-user state (held in gr.State): the current run's stop/pause events, its worker, curves of earlier runs; its
    runs wait in `queue`, the server's (one run trains at a time, a cancelled one keeps its place until it has wound
    down)."""

    def __init__(self, queue: RunQueue) -> None:
        self.queue = queue
        self.stop = threading.Event()  # the current run's; every run gets fresh ones (see start)
        self.pause = threading.Event()
        self.worker: Worker | None = None
        self.runs: list[RunCurves] = []
        self.count = 0
        self.closed = False  # the user left: no run of this session may train
        self._changed = threading.Condition()  # guards worker, count and Stop requests; notified when a run starts
        self._stops_waiting = 0  # Stops waiting for a run whose Start they overtook

    def __deepcopy__(self, memo: dict) -> TrainSession:
        # gr.State deep-copies its initial value for every new browser session: a copy is a fresh, empty session
        # (events and threads cannot be copied, and a new user must not share them) on the same server queue.
        return TrainSession(self.queue)

    @property
    def running(self) -> bool:
        """True while this session's worker is training (or waiting for its turn)."""
        return self.worker is not None and not self.worker.finished.is_set()

    def start(self, cfg: TrainConfig, limits: Limits, runs_root: Path | None = None, owner: str | None = None) -> Worker:
        """Queue a run on a background thread, saving under `runs_root`; QueueFull when too many wait or `owner` (a
        workspace key) already has its share. Its curves join the ones kept."""
        with self._changed:
            if self.running:
                raise QueueFull("a run is already going in this tab: stop it first")
            ticket = self.queue.join(limits.max_queued_runs, owner, limits.max_runs_per_user)
            # Fresh events per run: a late Stop or a cancelled handler of an earlier run cannot reach this one.
            self.stop, self.pause = threading.Event(), threading.Event()
            if self._stops_waiting or self.closed:
                self.stop.set()  # a Stop sent just after this Start got here first: the run ends before it loads
            self.count += 1
            curves = RunCurves(self.count, f"{cfg.arch} on {cfg.dataset}, {cfg.optimizer} lr {cfg.lr:g}, batch "
                               f"{cfg.batch_size}, {cfg.epochs} epochs", cfg.epochs)
            for earlier in self.runs:
                earlier.thin(MAX_POINTS_EARLIER)
            self.runs = [*self.runs[-(MAX_RUNS - 1):], curves]
            self.worker = Worker(cfg, limits, self.stop, self.pause, curves, ticket, self.queue, runs_root)
            self.worker.start()
            self._changed.notify_all()
            return self.worker

    def request_stop(self, grace: float = STOP_GRACE) -> Worker | None:
        """Stop this session's run, however early, and return it (None: no run to stop).

        With no run going, wait up to `grace` s for one: a Start sent just before this Stop may not have reached
        `start` yet (Gradio runs both handlers at once), and that run is then stopped as it starts. The request ends
        with this call, so a later Start is never stopped by an old Stop.
        """
        with self._changed:
            if not self.running:
                count = self.count
                self._stops_waiting += 1
                try:
                    self._changed.wait_for(lambda: self.count != count, timeout=grace)
                finally:
                    self._stops_waiting -= 1
                if self.count == count:
                    return None
            self.stop.set()
            self.pause.clear()  # a paused run winds down at once
            return self.worker

    def close(self) -> None:
        """The user left (Gradio dropped the session): stop its run, and any run whose Start is still on its way."""
        with self._changed:
            self.closed = True
            self.stop.set()

    def clear(self) -> None:
        """Forget earlier runs' curves (the current run's stay)."""
        self.runs = [r for r in self.runs if self.worker is not None and r is self.worker.curves and self.running]

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame, PlotMeta]:
        """Long-format (epoch, value, series) frames for the loss and the accuracy plot, and their legend."""
        loss, acc, colors = [], [], {}
        lock = self.worker.lock if self.worker is not None else threading.Lock()
        with lock:  # the worker appends while we read
            for run in self.runs:
                colors.update(run.colors())
                for split, points in (("train", run.train), ("test", run.test)):
                    name = f"{run.label} {split}"
                    # A point without a value: every series is in the data from the start (see PlotFeed).
                    # Rounded: a point's JSON is a third as long, and 4 digits are more than a plot shows.
                    loss += [(0.0, math.nan, name)] + [(round(x, 3), round(lo, 4), name) for x, lo, _ in points]
                    acc += [(0.0, math.nan, name)] + [(round(x, 3), round(a, 4), name) for x, _, a in points]
        x_max = float(max((r.epochs for r in self.runs), default=1))
        return _frame(loss), _frame(acc), PlotMeta(tuple(colors), colors, x_max)

    def legend(self) -> str:
        """One line per run shown: what each 'run N' was."""
        return "  \n".join(f"**{r.label}**: {r.description}" for r in self.runs)


def _frame(rows: list[tuple[float, float, str]]) -> pd.DataFrame:
    """Typed long-format frame: an empty frame must still say 'numbers', or the plot fixes its axes as categories."""
    x, y, series = zip(*rows) if rows else ((), (), ())
    return pd.DataFrame({"epoch": np.asarray(x, dtype=np.float64), "value": np.asarray(y, dtype=np.float64),
                         "series": pd.array(series, dtype="str")})
