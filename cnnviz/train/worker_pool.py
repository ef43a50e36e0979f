"""The server's training workers: one spawned process per device, started ahead of the first run (warm) or on first
use, handed to runs first come, first served through the pool's RunQueue, and replaced when one dies.

Processes are always spawned from one long-lived thread of the pool (the supervisor): the kernel's parent-death signal
(worker_process.die_with_parent) fires when the *thread* that spawned a process exits, so a worker spawned from a
run's short-lived thread would die with that thread.
"""
from __future__ import annotations

import atexit
import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import weakref
from collections.abc import Sequence

from .run_queue import RunQueue
from .worker_devices import WorkerSetup, parse_devices, worker_setups
from .worker_process import Job, main

log = logging.getLogger("cnnviz.train.worker")
READY_TIMEOUT = 180.0  # seconds a new worker may take to import torch and measure its threads (a busy 2-core machine)
CLOSE_TIMEOUT = 3.0  # seconds a worker gets to quit before it is terminated, then killed


class WorkerUnavailable(RuntimeError):
    """No training process could be started; the message says why."""


def exit_description(code: int | None) -> str:
    """How a worker process ended, in words."""
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = {"SIGKILL": " (the system may have run out of memory)", "SIGSEGV": " (a crash in native code)",
                "SIGABRT": " (a crash in native code)"}.get(name, "")
        return f"it was killed by {name}{hint}"
    return f"it exited with code {code}"


class TrainerProcess:
    """One worker process for one device, as the server sees it: its pipe, its Stop and Pause events, its state."""

    def __init__(self, ctx, slot: int, setup: WorkerSetup, idle_timeout: float | None):
        self.slot, self.setup = slot, setup
        self.stop, self.pause = ctx.Event(), ctx.Event()
        self.conn, child = ctx.Pipe()
        self._child = child
        self.process = ctx.Process(target=main, args=(child, self.stop, self.pause, setup, os.getpid(), idle_timeout),
                                   daemon=True, name=f"cnnviz-trainer-{slot + 1}-{setup.device}")
        self.info: dict | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def label(self) -> str:
        """The device as the Train tab shows it."""
        return self.setup.name

    @property
    def is_cuda(self) -> bool:
        """Whether it trains on a GPU."""
        return self.setup.is_cuda

    def local_device(self) -> str:
        """The device as the engine inside the worker names it (its one visible GPU is cuda:0)."""
        return self.setup.local_device()

    def kill(self) -> None:
        """End it now (SIGKILL): a run that does not stop, or a group whose other rank died."""
        if self.process.pid is not None and self.process.is_alive():
            self.process.kill()

    def start(self) -> None:
        self.process.start()
        self._child.close()  # only the worker holds its end now: its death reads as EOF here

    def wait_ready(self, timeout: float) -> str | None:
        """None once the worker said ready, else why it did not."""
        try:
            if self.conn.poll(timeout):
                kind, info = self.conn.recv()
                if kind == "ready":
                    self.info = info
                    return None
        except (EOFError, OSError):
            pass
        if self.process.is_alive():
            return f"it did not start within {timeout:.0f} s"
        self.process.join(1)
        return exit_description(self.process.exitcode)

    def alive(self) -> bool:
        return self.process.is_alive()

    def begin(self, job: Job) -> None:
        """Hand it a run: fresh Stop and Pause (a late Stop of the previous run must not reach this one)."""
        self.stop.clear()
        self.pause.clear()
        self.conn.send(("run", job))

    def ended(self) -> str:
        """Why it died (after its pipe closed or it stopped answering)."""
        self.process.join(2)
        return exit_description(self.process.exitcode)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Ask it to quit; terminate, then kill, if it does not."""
        if self.process.pid is None:
            return
        self.stop.set()
        try:
            self.conn.send(("quit", None))
        except OSError:
            pass
        self.process.join(timeout)
        for end in (self.process.terminate, self.process.kill):
            if self.process.is_alive():
                end()
                self.process.join(timeout)
        self.conn.close()


_POOLS: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


def shutdown_all() -> None:
    """Stop every pool's workers (at exit, and when the server stops)."""
    for pool in list(_POOLS):
        pool.shutdown()


atexit.register(shutdown_all)  # after multiprocessing's own exit hook was registered: runs before it


class WorkerPool:
    """The training processes, one per device, and the queue that hands them out; `warm` starts them now."""

    def __init__(self, devices: Sequence[str] | str = "auto", *, warm: bool = False, idle_timeout: float | None = None,
                 ready_timeout: float = READY_TIMEOUT):
        self.devices = parse_devices(devices) if isinstance(devices, str) else tuple(devices)
        self.setups = worker_setups(self.devices)
        self.queue = RunQueue(slots=len(self.devices))
        self.idle_timeout, self.ready_timeout = idle_timeout, ready_timeout
        self._ctx = mp.get_context("spawn")  # never fork a server with threads (and maybe a CUDA context)
        self._cond = threading.Condition()
        n = len(self.devices)
        self._procs: list[TrainerProcess | None] = [None] * n
        self._state = ["absent"] * n  # absent -> starting -> idle <-> busy; back to absent when one dies
        self._problem: list[str | None] = [None] * n  # why the latest start of a slot failed
        self._groups_waiting: list[object] = []  # multi-device requests waiting for workers, oldest first
        self._requests: queue.Queue[int | None] = queue.Queue()
        self._supervisor: threading.Thread | None = None
        self.closed = False
        _POOLS.add(self)
        if warm:
            self.warm()

    def __len__(self) -> int:
        return len(self.devices)

    def warm(self) -> None:
        """Start every worker that is not running yet (the server's start: the first run needs no torch import)."""
        with self._cond:
            for slot, state in enumerate(self._state):
                if state == "absent":
                    self._request(slot)

    def _request(self, slot: int) -> None:
        """Have the supervisor start `slot`'s worker (under the lock)."""
        self._state[slot] = "starting"
        self._requests.put(slot)
        if self._supervisor is None:
            self._supervisor = threading.Thread(target=self._supervise, daemon=True, name="cnnviz-trainer-supervisor")
            self._supervisor.start()

    def _supervise(self) -> None:
        """Start the requested workers (all at once, then wait for each), until shut down."""
        while (slot := self._requests.get()) is not None:
            batch = [slot]
            while not self._requests.empty() and (more := self._requests.get()) is not None:
                batch.append(more)
            started = []
            for s in batch:
                proc = TrainerProcess(self._ctx, s, self.setups[s], self.idle_timeout)
                try:
                    with self._cond:
                        if self.closed:
                            return
                        self._procs[s] = proc  # listed while it starts: shutdown() stops it too
                        proc.start()
                    started.append(proc)
                except Exception as exc:  # noqa: BLE001  (no fork, a missing __main__ guard: the run must still hear why)
                    self._started(proc, f"it could not be started ({exc})")
            for proc in started:
                self._started(proc, proc.wait_ready(self.ready_timeout))
            if self.closed:
                return

    def _started(self, proc: TrainerProcess, problem: str | None) -> None:
        with self._cond:
            if problem is None and not self.closed:
                self._procs[proc.slot], self._state[proc.slot], self._problem[proc.slot] = proc, "idle", None
                log.info("training worker %d on %s ready: %s", proc.slot + 1, proc.setup.device, proc.info)
            else:
                self._state[proc.slot], self._problem[proc.slot] = "absent", None if self.closed else problem
                if self._procs[proc.slot] is proc:
                    self._procs[proc.slot] = None
                if problem and not self.closed:  # stopped by shutdown() while starting: nothing went wrong
                    log.error("training worker %d on %s did not start: %s", proc.slot + 1, proc.setup.device, problem)
            self._cond.notify_all()
        if problem is not None or self.closed:
            proc.close()

    def acquire(self, cancel: threading.Event, poll: float = 0.1) -> TrainerProcess | None:
        """A ready, idle worker (starting one if none is), or None once `cancel` is set; WorkerUnavailable when every
        worker failed to start."""
        procs = self._take(cancel, 1, poll)
        return procs[0] if procs else None

    def acquire_group(self, cancel: threading.Event, count: int, poll: float = 0.1) -> list[TrainerProcess] | None:
        """`count` ready, idle workers at once, for one run on `count` devices (DDP): it waits until that many are
        free, and workers freed meanwhile are held for it (a one-device run asking later waits behind it); None once
        `cancel` is set; WorkerUnavailable when the pool is too small or its workers cannot start."""
        if count > len(self):
            raise WorkerUnavailable(f"this run asks for {count} devices but the server has {len(self)} training "
                                    f"worker{'s' * (len(self) > 1)} ({', '.join(self.devices)}); set 'devices per run' "
                                    f"to {len(self)} or less (the lecturer adds workers with --devices)")
        gpus = sum(s.is_cuda for s in self.setups)
        if count > max(gpus, len(self) - gpus):
            raise WorkerUnavailable(f"a run on {count} devices needs {count} of one kind (GPUs, or CPU workers), but "
                                    f"this server has {gpus} GPU and {len(self) - gpus} CPU worker(s); set 'devices "
                                    f"per run' to {max(gpus, len(self) - gpus)} or less")
        return self._take(cancel, count, poll)

    def _take(self, cancel: threading.Event, count: int, poll: float) -> list[TrainerProcess] | None:
        """`count` idle workers, marked busy; the oldest waiting multi-device request goes first."""
        me = object()
        with self._cond:
            if count > 1:
                self._groups_waiting.append(me)
            try:
                while not self.closed:
                    idle = []
                    for slot, proc in enumerate(self._procs):
                        if self._state[slot] == "idle" and proc is not None:
                            if proc.alive():
                                idle.append(slot)
                            else:
                                self._procs[slot], self._state[slot] = None, "absent"  # died while idle (or timed out)
                    first = self._groups_waiting[0] if self._groups_waiting else None
                    # One kind per group: GPU ranks talk NCCL, CPU ranks gloo, and a group cannot mix the two.
                    kinds = [[s for s in idle if self.setups[s].is_cuda == cuda] for cuda in (True, False)]
                    take = idle[:1] if count == 1 else next((k[:count] for k in kinds if len(k) >= count), None)
                    if take and first in (None, me):
                        for slot in take:
                            self._state[slot] = "busy"
                        return [self._procs[slot] for slot in take]
                    if sum(p is not None for p in self._problem) > len(self) - count:
                        problems, self._problem = [p for p in self._problem if p], [None] * len(self)  # next: try again
                        raise WorkerUnavailable(f"the training process could not start: {problems[0]}; see the server log")
                    for slot, state in enumerate(self._state):
                        if state == "absent":
                            self._request(slot)
                    if cancel.is_set():
                        return None
                    self._cond.wait(poll)
                return None
            finally:
                if me in self._groups_waiting:
                    self._groups_waiting.remove(me)
                    self._cond.notify_all()

    def release(self, proc: TrainerProcess, healthy: bool) -> None:
        """A run ended on `proc`: back to idle, or (unhealthy, dead) replaced by a fresh worker for the next run."""
        with self._cond:
            if healthy and proc.alive() and not self.closed:
                self._state[proc.slot] = "idle"
                self._cond.notify_all()
                return
            self._procs[proc.slot] = None
            if not self.closed:
                self._request(proc.slot)  # a fresh process: its memory and CUDA context are new
        threading.Thread(target=proc.close, args=(0.5,), daemon=True, name="cnnviz-trainer-close").start()

    def pids(self) -> list[int]:
        """The worker processes' ids (running or starting)."""
        with self._cond:
            return [p.pid for p in self._procs if p is not None and p.pid is not None]

    def shutdown(self) -> None:
        """Stop every worker now (runs going end as the worker goes); the pool takes no more runs."""
        with self._cond:
            if self.closed:
                return
            self.closed = True
            procs, self._procs = [p for p in self._procs if p is not None], [None] * len(self)
            self._cond.notify_all()
        self._requests.put(None)
        for proc in procs:
            proc.close()
        if self._supervisor is not None:
            self._supervisor.join(CLOSE_TIMEOUT)


__all__ = ["TrainerProcess", "WorkerPool", "WorkerUnavailable", "exit_description", "shutdown_all"]
