"""The training actor of a Ray cluster: one per run slot (a GPU, or a CPU core on a cluster without GPUs), made by
train.ray_pool with `ray.remote(RayTrainer).options(num_gpus=1, max_concurrency=...)`.

It is a threaded actor: `run` (a Ray streaming generator) trains one run with the same worker_process.run_job as a
local worker, in a thread of its own, and yields its messages in order; `control` arrives on another of the actor's
threads and sets the Stop and Pause events that fit() checks at every batch, so they reach the run within one batch.
The run trains into a scratch folder on the node; the folder is sent back after every epoch and at the end
(train.ray_transfer), before the end event, so the app has the checkpoint when it hears that the run ended.
"""
from __future__ import annotations

import atexit
import logging
import os
import queue
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from ..store.owner import pid_alive
from .events import END_EVENTS, EpochEnded, RunStarted
from .ray_transfer import pack_folder
from .worker_devices import WorkerSetup
from .worker_process import Job, run_job, warm_up

log = logging.getLogger("cnnviz.train.ray")
CONCURRENCY = 4  # actor threads: the run, and its Stop/Pause/ping calls beside it
FLAGS = ("stop", "pause")
SCRATCH = "cnnviz-ray-"  # <tmp>/cnnviz-ray-<pid>-<random>: an actor's runs train here, then travel to the app


def remove_stale_scratch() -> None:
    """Remove the scratch folders of this node's actors that are gone (ray.kill skips their clean-up)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH}*"):
        pid = folder.name[len(SCRATCH):].partition("-")[0]
        if folder.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


class _QueueConn:
    """What run_job sends on (a pipe's `send`), as a queue the generator reads."""

    def __init__(self) -> None:
        self.messages: queue.Queue = queue.Queue()

    def send(self, message: tuple) -> None:
        self.messages.put(message)


class RayTrainer:
    """The actor's body (plain Python: ray.remote wraps it). `nice` is added to its CPU priority (a CPU actor beside
    the web server); `threads` caps its torch threads (the CPUs Ray gave it)."""

    def __init__(self, nice: int = 0, threads: int = 1) -> None:
        self.nice, self.threads = nice, max(1, threads)
        self._events = {name: threading.Event() for name in FLAGS}  # the current run's Stop and Pause
        self._seq = dict.fromkeys(FLAGS, -1)  # the newest control applied per flag (actor threads may reorder calls)
        self._value = dict.fromkeys(FLAGS, False)
        self._lock = threading.Lock()
        remove_stale_scratch()
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH}{os.getpid()}-"))
        atexit.register(shutil.rmtree, self.scratch, True)  # a graceful end; after ray.kill the next actor removes it
        self.info: dict | None = None

    def ready(self) -> dict:
        """Import the training stack and open the device (once); what the server logs about this actor."""
        if self.info is None:
            import ray

            gpus = ray.get_gpu_ids()
            if self.nice:
                os.nice(self.nice)
            device = "cuda:0" if gpus else "cpu"  # Ray shows an actor only its own GPU(s), as cuda:0...
            self.info = warm_up(WorkerSetup(device, self.nice, self.threads))
            self.info.update(node=ray.util.get_node_ip_address(), node_id=ray.get_runtime_context().get_node_id(),
                             host=socket.gethostname(), gpu_ids=list(gpus), is_cuda=bool(gpus))
            log.info("cnnviz training actor ready: %s", self.info)
        return self.info

    def ping(self) -> int:
        return os.getpid()

    def control(self, name: str, value: bool, seq: int) -> None:
        """Set or clear Stop or Pause, unless a newer control (or run start) already did."""
        with self._lock:
            if name in FLAGS and seq > self._seq[name]:
                self._seq[name], self._value[name] = seq, value
                event = self._events[name]
                event.set() if value else event.clear()

    def _new_run(self, seq: int) -> tuple[threading.Event, threading.Event]:
        """Fresh Stop and Pause for the run numbered `seq`: clear, unless a later control (its own, sent before this
        call ran) already set one. The previous run keeps its own events, so its ending cannot touch this run."""
        with self._lock:
            self._events = {name: threading.Event() for name in FLAGS}
            for name in FLAGS:
                if self._seq[name] > seq and self._value[name]:
                    self._events[name].set()
                elif self._seq[name] < seq:
                    self._seq[name], self._value[name] = seq, False
            return self._events["stop"], self._events["pause"]

    def run(self, job: Job, seq: int) -> Iterator[tuple]:
        """Train `job` here; yield ("event", Event) and ("folder", ...) messages, then ("done", None). The final copy of
        the run folder always comes before the end event."""
        stop, pause = self._new_run(seq)
        conn = _QueueConn()
        root = Path(tempfile.mkdtemp(prefix="run-", dir=self.scratch))  # runs_root on this node, never the app's
        thread = threading.Thread(target=run_job, args=(conn, replace(job, runs_root=root), stop, pause),
                                  daemon=True, name="cnnviz-ray-run")
        thread.start()
        run_dir: Path | None = None
        try:
            while True:
                kind, ev = conn.messages.get()
                if kind == "done":
                    break
                if isinstance(ev, RunStarted) and ev.run_dir:
                    run_dir = Path(ev.run_dir)
                if isinstance(ev, END_EVENTS):
                    thread.join()  # run_job's clean-up (the run folder's end marks) comes before the last copy
                    yield from self._folder(run_dir, final=True)
                yield kind, ev
                if isinstance(ev, (RunStarted, EpochEnded)):  # the app lists the run at once, its curves each epoch
                    yield from self._folder(run_dir, final=False)
            yield "done", None
        finally:
            stop.set()  # the app went away in mid-run (generator closed): end this run, free the device
            thread.join(60)
            shutil.rmtree(root, ignore_errors=True)

    def _folder(self, run_dir: Path | None, final: bool) -> Iterator[tuple]:
        """The run folder as ("folder", run_id, remote_dir, piece, last_piece, final_copy) messages."""
        if run_dir is None or not run_dir.is_dir():
            return
        pieces = list(pack_folder(run_dir))
        for i, piece in enumerate(pieces):
            yield "folder", run_dir.name, str(run_dir), piece, i == len(pieces) - 1, final


__all__ = ["CONCURRENCY", "RayTrainer"]
