"""Training runs behind the Train tab, per user session (no gradio here): each run is a Worker thread in the server
(train.worker_run) that hands it to one of the server's training processes (train.worker_pool) and records the
events that come back, so the UI samples a run's state at most every UPDATE_INTERVAL seconds and never trains itself.
"""
from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd

from .config import Limits, TrainConfig
from .run_curves import MAX_POINTS_EARLIER, MAX_RUNS, PlotFeed, PlotMeta, RunCurves, plot_frames
from .run_queue import QueueFull, RunQueue
from .worker_pool import WorkerPool
from .worker_run import UPDATE_INTERVAL, Worker

STOP_GRACE = 2.0  # seconds a Stop that finds no run waits for one: its Start may have been sent just before


class TrainSession:
    """Per-user state (held in gr.State): the current run's stop/pause events, its worker, curves of earlier runs; its
    runs wait in the queue of `pool`, the server's training processes (one run per process, a cancelled one keeps its
    place until it has wound down)."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.queue: RunQueue = pool.queue
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
        return TrainSession(self.pool)

    @property
    def running(self) -> bool:
        """True while this session's worker is training (or waiting for its turn)."""
        return self.worker is not None and not self.worker.finished.is_set()

    def start(self, cfg: TrainConfig, limits: Limits, runs_root: Path | None = None, owner: str | None = None) -> Worker:
        """Queue a run (a thread here, the training in a worker process), saving under `runs_root`; QueueFull when too
        many wait or `owner` (a workspace key) already has its share. Its curves join the ones kept."""
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
            self.worker = Worker(cfg, limits, self.stop, self.pause, curves, ticket, self.pool, runs_root)
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
        lock = self.worker.lock if self.worker is not None else threading.Lock()
        with lock:  # the worker appends while we read
            return plot_frames(self.runs)

    def legend(self) -> str:
        """One line per run shown: what each 'run N' was."""
        return "  \n".join(f"**{r.label}**: {r.description}" for r in self.runs)


__all__ = ["STOP_GRACE", "UPDATE_INTERVAL", "PlotFeed", "PlotMeta", "RunCurves", "TrainSession", "Worker"]
