"""One run as the web server sees it: a thread that waits for the run's turn in the queue, hands it to a training process
(worker_pool) and records the events that come back, for the UI to sample (no gradio here).

Training never happens in the server: fit() runs in the worker process, and this thread only copies Stop and Pause
across (every POLL seconds: the worker checks them at every batch) and reads the pipe. A worker that dies ends only
its own run, with a clear message, and is replaced for the next run in line.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from .config import Limits, TrainConfig
from .distributed import GroupSpec, free_port, is_peer_lost, timeout_seconds
from .events import END_EVENTS, EpochEnded, Event, Failed, Paused, Progress, Resumed, RunStarted, Stopped
from .run_curves import RunCurves
from .run_queue import RunQueue, Ticket
from .worker_pool import TrainerProcess, WorkerPool, WorkerUnavailable
from .worker_process import Job

log = logging.getLogger("cnnviz.train")
UPDATE_INTERVAL = 0.25  # seconds between UI updates: 4 per second at most
PROGRESS_EVERY = 0.2  # engine progress cadence: a new point for (almost) every UI update
POLL = 0.05  # seconds between looks at the pipe and at Stop/Pause: well under one batch of the slowest preset
KILL_AFTER = 30.0  # seconds a stopped run may take to end before its worker is killed (and replaced)
CRASHED = "the training process stopped unexpectedly: {why}. {kept}Start the run again (a smaller batch size or model " \
          "needs less memory)"
RANK_CRASHED = "one of this run's {n} training processes stopped unexpectedly: rank {rank}, on {label}: {why}; the " \
               "others were ended with it and all {n} are being replaced. {kept}Start the run again (with fewer devices " \
               "per run, a smaller batch size or a smaller model if memory ran out)"
ONE_DEVICE_ONLY = "runs on a Ray cluster use one device each; set 'devices per run' to 1"
GROUP_END_WAIT = 30.0  # seconds the other ranks get, after rank 0's last event, to end too


class Worker(threading.Thread):
    """Runs `cfg` in a training process once `ticket`'s turn comes in `queue`, and records what the UI shows; the UI
    reads those fields under `lock`. `stop` and `pause` are this run's; they reach the process within POLL seconds."""

    def __init__(self, cfg: TrainConfig, limits: Limits, stop: threading.Event, pause: threading.Event,
                 curves: RunCurves, ticket: Ticket, pool: WorkerPool, runs_root: Path | None = None):
        super().__init__(daemon=True, name=f"cnnviz-train-{cfg.arch}")
        self.cfg, self.limits, self.stop, self.pause, self.curves = cfg, limits, stop, pause, curves
        self.ticket, self.pool, self.runs_root = ticket, pool, runs_root
        self.queue: RunQueue = pool.queue
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
        self.device: str | None = None  # the training process's device, once it has one
        self.pid: int | None = None  # the training process's id, while it trains this run
        self.t0 = time.perf_counter()

    def run(self) -> None:
        """Thread body: wait, train in a worker process, record every event; always ends with an end event."""
        try:
            if self.stop.is_set():  # a Stop overtook its Start (TrainSession.request_stop): nothing to load or train
                self.apply(Stopped(run_id="", epoch=0, step=0, checkpoint=None, message="stopped before it started"))
                return
            count = self.cfg.world_size
            if count > 1 and not hasattr(self.pool, "acquire_group"):  # a Ray cluster: one device per run
                self.apply(Failed(message=ONE_DEVICE_ONLY))
                return
            procs = None
            if self.queue.wait_turn(self.ticket, self.stop):
                procs = self.pool.acquire_group(self.stop, count) if count > 1 else [self.pool.acquire(self.stop)]
            if not procs or procs[0] is None:
                self.apply(Stopped(run_id="", epoch=0, step=0, checkpoint=None,
                                   message="cancelled while waiting in the training queue"))
                return
            healthy = [False] * len(procs)
            try:
                healthy = self.drive_group(procs) if count > 1 else [self.drive(procs[0])]
            finally:
                for proc, ok in zip(procs, healthy):
                    self.pool.release(proc, ok)
        except WorkerUnavailable as exc:
            self.apply(Failed(message=str(exc)))
        except Exception:  # a bug here must still end the run visibly
            log.exception("training crashed")
            self.apply(Failed(message="training stopped because of an internal error (details in the server log)"))
        finally:
            self.queue.leave(self.ticket)
            if self.end is None:
                self.apply(Failed(message="training ended without a result"))
            self.finished.set()

    def drive(self, proc: TrainerProcess) -> bool:
        """Run the job on `proc` until its end event; False when the process died or must be replaced."""
        with self.lock:
            self.device, self.pid = proc.label, proc.pid
        proc.begin(Job(self.cfg, self.limits, self.runs_root, PROGRESS_EVERY, Job.server_environment()))
        stopped_at: float | None = None
        while True:
            self.copy_controls(proc)
            if self.stop.is_set() and stopped_at is None:
                stopped_at = time.monotonic()
            try:
                message = proc.conn.recv() if proc.conn.poll(POLL) else None
            except (EOFError, OSError):  # the worker's end of the pipe closed: it died
                return self.crashed(proc.ended())
            if message is None:
                if not proc.alive():
                    return self.crashed(proc.ended())
                if stopped_at is not None and time.monotonic() - stopped_at > KILL_AFTER:
                    proc.kill()
                    return self.crashed(f"it did not stop within {KILL_AFTER:.0f} s of the Stop, so it was ended")
                continue
            kind, ev = message
            if kind == "done":
                # A failed run may leave a GPU in a bad state (a CUDA error poisons the context): a fresh process next.
                return not (proc.is_cuda and isinstance(self.end, Failed))
            if isinstance(ev, RunStarted) and ev.device == proc.local_device():  # its one GPU is cuda:0 there
                ev = replace(ev, device=proc.label)
            self.apply(self.explained(ev))
            if isinstance(ev, Paused):  # a heartbeat twice a second while paused
                self.check_pause()

    def drive_group(self, procs: list[TrainerProcess]) -> list[bool]:
        """Run the job on `procs` as one DDP run (rank r on procs[r], a process group over gloo or NCCL meeting on a
        free port of 127.0.0.1); rank 0's events are the run's. Per process: may it serve the next run?"""
        n, labels = len(procs), [p.label for p in procs]
        with self.lock:
            self.device, self.pid = " + ".join(labels), procs[0].pid
        port, timeout = free_port(), timeout_seconds()
        for rank, proc in enumerate(procs):
            proc.begin(Job(self.cfg, self.limits, self.runs_root, PROGRESS_EVERY, Job.server_environment(),
                           GroupSpec(rank, n, "127.0.0.1", port, timeout=timeout)))
        stopped_at: float | None = None
        held: Failed | None = None
        while True:
            for proc in procs:
                self.copy_controls(proc)
            if self.stop.is_set() and stopped_at is None:
                stopped_at = time.monotonic()
            dead = next((r for r, p in enumerate(procs) if not p.alive()), None)
            if dead is not None:
                return self.rank_crashed(procs, dead)
            try:
                message = procs[0].conn.recv() if procs[0].conn.poll(POLL) else None
            except (EOFError, OSError):
                return self.rank_crashed(procs, 0)
            if message is None:
                if stopped_at is not None and time.monotonic() - stopped_at > KILL_AFTER:
                    for proc in procs:
                        proc.kill()
                    self.crashed(f"it did not stop within {KILL_AFTER:.0f} s of the Stop, so its {n} processes were ended")
                    return [False] * n
                continue
            kind, ev = message
            if kind == "done":
                return self.group_ended(procs, held)
            if isinstance(ev, RunStarted):
                ev = replace(ev, device=f"{' + '.join(labels)} (one run, DDP)")
            if isinstance(ev, Failed) and is_peer_lost(ev.message):
                dead = self.lost_rank(procs)  # say which process went, and why, rather than "another process"
                if dead is not None:
                    return self.rank_crashed(procs, dead)
                held = ev  # all alive: another rank failed on its own (e.g. out of GPU memory); its word comes next
                continue
            self.apply(self.explained(ev))
            if isinstance(ev, Paused):
                self.check_pause()

    def lost_rank(self, procs: list[TrainerProcess], wait: float = 2.0) -> int | None:
        """The rank (other than 0) that died, waiting up to `wait` s for it to be gone; None if all still run."""
        deadline = time.monotonic() + wait
        while True:
            dead = next((r for r, p in enumerate(procs) if r and not p.alive()), None)
            if dead is not None or time.monotonic() >= deadline:
                return dead
            time.sleep(POLL)

    def rank_crashed(self, procs: list[TrainerProcess], rank: int) -> list[bool]:
        """End a DDP run one of whose processes died: the others are ended too (they would wait for it until the
        group's timeout) and every one is replaced."""
        why = procs[rank].ended()
        for proc in procs:
            proc.kill()
        self.crashed(why, RANK_CRASHED, n=len(procs), rank=rank, label=procs[rank].label)
        return [False] * len(procs)

    def group_ended(self, procs: list[TrainerProcess], held: Failed | None = None) -> list[bool]:
        """Rank 0 is done: collect the other ranks' end (their pipes must be empty for their next run). `held`: rank 0's
        "another process stopped", replaced by that rank's own failure when it sent one."""
        deadline, done, own = time.monotonic() + GROUP_END_WAIT, [True], None
        for rank, proc in enumerate(procs[1:], 1):
            ok = False
            try:
                while proc.conn.poll(max(0.0, deadline - time.monotonic())):
                    kind, ev = proc.conn.recv()
                    if kind == "done":
                        ok = True
                        break
                    if isinstance(ev, Failed) and not is_peer_lost(ev.message) and own is None:
                        own = replace(ev, message=f"rank {rank} of {len(procs)}, on {proc.label}: {ev.message}")
            except (EOFError, OSError):
                pass
            if not ok:
                proc.kill()
            done.append(ok)
        if held is not None:
            self.apply(own or held)
        # A lost rank leaves a broken group behind, a CUDA error a poisoned context: then fresh processes for all.
        failed = isinstance(self.end, Failed) and (held is not None or any(p.is_cuda for p in procs))
        return [ok and not failed for ok in done]

    def copy_controls(self, proc: TrainerProcess) -> None:
        """This run's Stop and Pause (threading events, set by the UI) onto the worker's (process-shared) ones."""
        if self.stop.is_set() and not proc.stop.is_set():
            proc.stop.set()
        if self.pause.is_set() != proc.pause.is_set():
            (proc.pause.set if self.pause.is_set() else proc.pause.clear)()

    def crashed(self, why: str, template: str = CRASHED, **fields) -> bool:
        """End the run after its process died: what happened, and what was kept (the run folder's epochs so far)."""
        with self.lock:
            started, last = self.started, self.last_epoch
        kept = (f"The curves of the {last.epoch} finished epoch{'s' * (last.epoch > 1)} are kept in its run folder. "
                if started and last and started.run_dir else "")
        log.error("training process %s of run %s: %s", self.pid, started.run_id if started else "?", why)
        self.apply(Failed(message=template.format(why=why, kept=kept, **fields), epoch=last.epoch if last else 0,
                          step=self.progress.step if self.progress else 0, run_id=started.run_id if started else ""))
        return False

    def runs_ahead(self) -> int | None:
        """Runs that must leave the queue before this one trains (0: its turn), None once it has left the queue."""
        return self.queue.position(self.ticket)

    def check_pause(self) -> None:
        """Stop this run once it has been paused for `max_pause_seconds` while another run waited for a worker: a paused
        run holds a worker, and its owner may have walked away. Nobody waiting: it may stay paused."""
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


__all__ = ["KILL_AFTER", "ONE_DEVICE_ONLY", "POLL", "PROGRESS_EVERY", "RANK_CRASHED", "UPDATE_INTERVAL", "Worker"]
