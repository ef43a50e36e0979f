"""The training worker: a process spawned once per device that runs fit() for the web server, one run at a time, and
streams the engine's events back over a pipe. It imports torch and the training code as it starts (a warm worker), so
a Start only pays for loading the data and building the model.

Messages, parent -> worker: ("run", Job) and ("quit", None); worker -> parent: ("ready", dict) once, then per run
("event", Event) ... ("done", None). Stop and Pause are multiprocessing Events that fit() checks at every batch.
The worker never outlives the server: the kernel kills it when the thread that spawned it exits (PR_SET_PDEATHSIG),
and a watch thread exits when its parent changes (the server died before the prctl, or not on Linux).
"""
from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Limits, TrainConfig
from .worker_devices import WorkerSetup, measure_threads

if TYPE_CHECKING:
    from .distributed import GroupSpec

log = logging.getLogger("cnnviz.train.worker")
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL = 0.5  # seconds between the watch thread's looks at the parent
INTERNAL_ERROR = "training stopped because of an internal error (details in the server log)"
PRELOAD = ("fashion-mnist", "digits")  # the demo presets' data, read at start-up: the first Start only copies it


@dataclass(frozen=True)
class Job:
    """One run, as the server hands it to a worker (picklable)."""

    cfg: TrainConfig
    limits: Limits
    runs_root: Path | None
    progress_every: float
    environment: dict[str, str]  # the server's CNNVIZ_* variables at Start (data and runs folders may be set by them)
    group: GroupSpec | None = None  # a rank of a multi-device run (DDP): its rank, the world size, the rendezvous

    @staticmethod
    def server_environment() -> dict[str, str]:
        """This process's CNNVIZ_* variables."""
        return {k: v for k, v in os.environ.items() if k.startswith("CNNVIZ_")}

    def apply_environment(self) -> None:
        """Make this process's CNNVIZ_* variables the server's."""
        for k in [k for k in os.environ if k.startswith("CNNVIZ_") and k not in self.environment]:
            del os.environ[k]
        os.environ.update(self.environment)


def die_with_parent(parent_pid: int) -> None:
    """Make sure this process ends when the server does, however the server ends (even SIGKILL)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the watch thread alone
        pass
    if os.getppid() != parent_pid:  # the server died before the prctl took effect
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="cnnviz-parent-watch").start()


def _lenet_step():
    """One LeNet-sized training step on a random batch (what the thread-count measurement times)."""
    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 10))
    opt = torch.optim.Adam(model.parameters())
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def warm_up(setup: WorkerSetup) -> dict[str, Any]:
    """Import the training stack, open the device, choose the thread count; what the server logs about this worker."""
    t0 = time.perf_counter()
    import torch

    from . import engine  # noqa: F401  (the whole training stack, imported once instead of at every Start)
    from .memory import free_bytes

    try:
        torch.set_num_interop_threads(1)  # inter-op parallelism does not help these small nets
    except RuntimeError:  # already set, or parallel work ran: keep torch's default
        pass
    if setup.is_cuda:
        torch.cuda.set_device(0)  # its one visible GPU (worker_devices.WorkerSetup.environment)
        torch.zeros(1, device="cuda")  # the CUDA context now, not at the first Start
        torch.set_num_threads(setup.max_threads)
        threads, seconds = setup.max_threads, {}
    else:
        threads, seconds = measure_threads(setup.max_threads, _lenet_step(), torch.set_num_threads)
    return {"preloaded": preload(PRELOAD), "pid": os.getpid(), "device": setup.device, "threads": threads,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "step_ms": {n: round(s * 1e3, 2) for n, s in seconds.items()}, "nice": os.nice(0),
            "free_bytes": free_bytes(torch.device(setup.local_device())), "seconds": round(time.perf_counter() - t0, 2)}


def preload(names: tuple[str, ...]) -> list[str]:
    """Load these datasets into the process's dataset cache (those that are here; the others load at their Start)."""
    from ..data import load_dataset

    done = []
    for name in names:
        try:
            load_dataset(name)
            done.append(name)
        except Exception:  # noqa: BLE001  (missing or broken: the run that asks for it gets the data module's message)
            pass
    return done


def run_job(conn: Connection, job: Job, stop, pause) -> None:
    """Run one fit() and send every event, then ("done", None); an engine bug still ends the run with a Failed."""
    from .engine import fit
    from .events import Failed

    try:
        job.apply_environment()
        for ev in fit(job.cfg, stop=stop, pause=pause, limits=job.limits, runs_root=job.runs_root,
                      progress_every=job.progress_every, group=job.group):
            conn.send(("event", ev))
    except (BrokenPipeError, EOFError, ConnectionResetError):
        raise  # the server is gone: nothing to report to
    except Exception:
        log.exception("training crashed")
        conn.send(("event", Failed(message=INTERNAL_ERROR)))
    finally:
        gc.collect()  # the run's model, data and optimiser go now, not at some later collection
    conn.send(("done", None))


def main(conn: Connection, stop, pause, setup: WorkerSetup, parent_pid: int, idle_timeout: float | None = None) -> None:
    """The worker's body (the spawned process's target): set up, say ready, then run jobs until told to quit, the pipe
    closes, or (with `idle_timeout`) no job came for that many seconds."""
    os.environ.update(setup.environment())  # before torch first looks at the GPUs
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the server stops us itself
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        # Start-up half niced: at the full nice it crawls on a busy machine, at none it slows the server's requests.
        os.nice(setup.nice // 2)
        info = warm_up(setup)
        info["nice"] = os.nice(setup.nice - setup.nice // 2)
        conn.send(("ready", info))
        while conn.poll(idle_timeout):
            kind, payload = conn.recv()
            if kind == "quit":
                return
            if kind == "run":
                run_job(conn, payload, stop, pause)
    except (BrokenPipeError, EOFError, ConnectionResetError):
        return  # the server closed its end: it is shutting down or gone


__all__ = ["INTERNAL_ERROR", "Job", "die_with_parent", "main", "run_job", "warm_up"]
