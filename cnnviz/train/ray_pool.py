"""Training runs on a Ray cluster (`--ray HOST:6379`, or `--ray local` for a private instance on this machine): the
pool and handle contract of worker_pool (what worker_run.Worker drives), with Ray actors in place of local processes.

Each run slot is an actor (train.ray_trainer) that asks Ray for one GPU, or one CPU on a cluster without GPUs; the
slots are the cluster's GPUs (else CPUs) when the app starts. Actors are started ahead (warm) or at the first run,
reused while healthy and killed (`ray.kill`) when not, as local workers are replaced. A run's events come back in
order through a Ray streaming generator; Stop and Pause are actor calls; a lost actor or node ends only its run
(Worker.crashed, with ended()'s words); the run folder comes back into the app's runs folder (train.ray_transfer).

Ray is optional (`pip install 'cnnviz[cluster]'`): this module imports it only when a pool is made.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

from .ray_handle import RayTrainerHandle
from .ray_trainer import CONCURRENCY, RayTrainer
from .run_queue import RunQueue
from .worker_devices import NICE, available_cores
from .worker_pool import _POOLS, WorkerUnavailable

log = logging.getLogger("cnnviz.train.ray")
RAY_MISSING = ("--ray needs Ray, which is not installed here: pip install 'cnnviz[cluster]' "
               "(or pip install -r requirements-cluster.txt)")
READY_TIMEOUT = 180.0  # seconds an actor may take to be placed, import torch and open its device
LOCAL_OBJECT_STORE = 128 << 20  # bytes: `--ray local` only moves events and run folders (checkpoints in 8 MB pieces)
CONNECT_TIMEOUT = 5.0  # seconds to reach the head node's port before saying it cannot be reached
PACKAGE = Path(__file__).resolve().parents[1]  # this checkout's cnnviz: shipped to every node (py_modules)


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached; the message says how to fix it."""


def import_ray():
    """The ray module, or RayUnavailable saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable(RAY_MISSING) from None
    return ray


def reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """RayUnavailable unless something listens at HOST:PORT (ray.init itself retries for minutes); other address
    forms (auto, ray://...) are left to Ray."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit() or "/" in host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address!r} ({exc.strerror or exc}); start it with "
                             "`ray start --head` on the head node and give its HOST:6379, or use --ray local") from None


def connect(address: str, num_cpus: int | None = None) -> tuple[object, bool]:
    """Make this process a driver of the cluster at `address` ('local': start a private instance, loopback only, no
    dashboard, a small object store); the actors import cnnviz from this checkout. Returns (ray, started_here)."""
    local = address.strip().lower() == "local"
    if local:  # Ray binds to the machine's address unless told it is no cluster; read when ray is first imported
        if "ray" in sys.modules and "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ:
            log.warning("ray was imported before --ray local started it: it listens on this machine's address, "
                        "not only on loopback")
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # No auto-connect: a Ray call from a pool's thread after shutdown() would otherwise ray.init() again, against a
    # cluster that may be going away, and Ray ends the whole process when that raylet is dead (it did, in the tests).
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")  # read when ray is first imported
    ray = import_ray()
    if ray.is_initialized():  # one driver connection per process (a test module shares one instance)
        return ray, False
    if not local:
        reachable(address)
    runtime_env = {"py_modules": [str(PACKAGE)], "excludes": ["__pycache__", "*.pyc"]}
    try:
        if local:
            ray.init(address="local", num_cpus=num_cpus or available_cores(), include_dashboard=False,
                     object_store_memory=LOCAL_OBJECT_STORE, runtime_env=runtime_env, namespace="cnnviz",
                     logging_level=logging.WARNING)
        else:
            ray.init(address=address, runtime_env=runtime_env, namespace="cnnviz", logging_level=logging.WARNING)
    except Exception as exc:  # noqa: BLE001  (ConnectionError, AuthenticationError, ValueError for a bad address...)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        if local:
            raise RayUnavailable(f"a local Ray instance could not start ({first}); see `ray stop` and /tmp/ray") from None
        raise RayUnavailable(f"cannot reach the Ray cluster at {address!r} ({first}); start it with `ray start --head` "
                             "on the head node and give its HOST:6379, or use --ray local") from None
    return ray, True


class RayPool:
    """Run slots on a Ray cluster: the contract of worker_pool.WorkerPool (`queue`, `devices`, `acquire`, `release`,
    `warm`, `pids`, `shutdown`), with one actor per slot. `address`: HOST:PORT of a running cluster, or 'local'."""

    def __init__(self, address: str = "local", *, warm: bool = False, ready_timeout: float = READY_TIMEOUT,
                 num_cpus: int | None = None):
        self.address = address
        self.ray, self._owns_ray = connect(address, num_cpus)
        resources = self.ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
        if gpus:  # one GPU per run; a CPU core to feed it where the cluster has one per GPU
            self.options = {"num_gpus": 1, "num_cpus": 1 if cpus >= gpus else 0}
            threads = max(1, min(4, cpus // gpus))
        else:
            self.options = {"num_gpus": 0, "num_cpus": 1}
            threads = 1
        slots = gpus or max(1, cpus)
        self.devices = tuple(f"ray:{'cuda' if gpus else 'cpu'}" for _ in range(slots))
        self.queue = RunQueue(slots=slots)
        local = address.strip().lower() == "local"
        # A CPU actor on the web server's own machine yields to it, as a local CPU worker does.
        self._init = {"nice": NICE if local and not gpus else 0, "threads": threads}
        self.ready_timeout = ready_timeout
        self._actor_class = remote_class(self.ray)
        self._cond = threading.Condition()
        self._handles: list[RayTrainerHandle] = []
        self._problem: str | None = None
        self._waiting = 0  # runs in acquire()
        self.closed = False
        _POOLS.add(self)  # worker_pool.shutdown_all (at exit, when the server stops) ends these actors too
        log.info("Ray cluster at %s: %d run slot(s) of %s", address, slots, self.options)
        if warm:
            self.warm()

    def __len__(self) -> int:
        return len(self.devices)

    def _start(self) -> None:
        """Ask the cluster for one more actor (under the lock); Ray places it when a GPU/CPU is free."""
        try:
            actor = self._actor_class.options(**self.options, max_concurrency=CONCURRENCY, max_restarts=0,
                                              max_task_retries=0).remote(**self._init)
        except Exception as exc:  # noqa: BLE001  (Ray refused it here: the runtime env, the connection...)
            self._problem = f"the training actor could not start on the Ray cluster: {first_line(exc)}"
            log.error("%s", self._problem)
            return
        self._handles.append(RayTrainerHandle(self.ray, actor))

    def warm(self) -> None:
        """Start an actor for every slot that has none (the first runs then need no torch import)."""
        with self._cond:
            while not self.closed and len(self._handles) < len(self) and self._problem is None:
                self._start()

    def _check_starting(self, wait: float) -> None:
        """Up to `wait` s for a starting actor to say ready; a failed or late one is dropped, its problem kept."""
        with self._cond:
            starting = [h for h in self._handles if h.state == "starting"]
        if not starting:
            with self._cond:
                self._cond.wait(wait)
            return
        done, _ = self.ray.wait([h.ready_ref for h in starting], num_returns=1, timeout=wait)
        for h in starting:
            problem = None
            if h.ready_ref in done:
                try:
                    h.info = self.ray.get(h.ready_ref)
                except Exception as exc:  # noqa: BLE001  (torch missing on the node, the runtime env, a dead node)
                    problem = f"the training actor could not start on the Ray cluster: {first_line(exc)}"
            elif time.monotonic() - h.created > self.ready_timeout:
                problem = (f"the Ray cluster did not start a training actor within {self.ready_timeout:.0f} s; it may "
                           f"have no free {'GPU' if self.options['num_gpus'] else 'CPU'} (`ray status` shows what is used)")
            else:
                continue
            with self._cond:
                if problem is None:
                    h.state = "idle"
                    log.info("Ray training actor ready: %s", h.info)
                else:
                    log.error("%s", problem)
                    self._drop(h)
                    # With other actors alive (a node left, so this slot has no room) the run waits for one of them.
                    if not any(o.state in ("idle", "busy") for o in self._handles):
                        self._problem = problem
                self._cond.notify_all()

    def _drop(self, handle: RayTrainerHandle) -> None:
        """Forget and kill an actor (under the lock)."""
        if handle in self._handles:
            self._handles.remove(handle)
        handle.kill()

    def acquire(self, cancel: threading.Event, poll: float = 0.1) -> RayTrainerHandle | None:
        """A ready, idle actor (starting one when a slot has none), or None once `cancel` is set; WorkerUnavailable
        when an actor could not start."""
        with self._cond:
            self._waiting += 1
        try:
            return self._acquire(cancel, poll)
        finally:
            with self._cond:
                self._waiting -= 1

    def _acquire(self, cancel: threading.Event, poll: float) -> RayTrainerHandle | None:
        while True:
            with self._cond:
                if self.closed:
                    return None
                handle = next((h for h in self._handles if h.state == "idle"), None)
                starting = sum(h.state == "starting" for h in self._handles)
                if handle is not None:
                    handle.state = "busy"
                elif self._problem is not None:
                    problem, self._problem = self._problem, None  # the next Start tries again
                    raise WorkerUnavailable(problem)
                elif starting < self._waiting and len(self._handles) < len(self):  # one new actor per waiting run
                    self._start()
            if handle is not None:
                if handle.ping():  # an idle actor's node may have gone since its last run
                    return handle
                with self._cond:
                    log.warning("idle Ray training actor dropped: %s", handle.ended())
                    self._drop(handle)
                continue
            if cancel.is_set():
                return None
            self._check_starting(poll)

    def release(self, handle: RayTrainerHandle, healthy: bool) -> None:
        """A run ended on `handle`: back to idle, or killed (a fresh actor is started for the next run)."""
        with self._cond:
            if healthy and handle.alive() and not self.closed:
                handle.state = "idle"
            else:
                self._drop(handle)
            self._cond.notify_all()

    def handles(self) -> list[RayTrainerHandle]:
        """The actors (starting, idle or busy)."""
        with self._cond:
            return list(self._handles)

    def pids(self) -> list[int]:
        """The actors' process ids, on their nodes."""
        return [h.pid for h in self.handles() if h.pid is not None]

    def shutdown(self) -> None:
        """Kill every actor (runs going end); a Ray instance this pool started is stopped too."""
        with self._cond:
            if self.closed:
                return
            self.closed = True
            for h in list(self._handles):
                self._drop(h)
            self._cond.notify_all()
        if self._owns_ray:
            try:
                self.ray.shutdown()
            except Exception:  # noqa: BLE001  (at exit Ray may have shut itself down first)
                pass


def first_line(exc: BaseException) -> str:
    """What went wrong in one line: the actor's own exception for a RayTaskError (its text is a whole traceback),
    else the first line of Ray's message."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"[:300]
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if getattr(exc, "actor_init_failed", False) and len(lines) > 1:  # its constructor raised: the last line says what
        return lines[-1][:300]
    return (lines or [type(exc).__name__])[0][:300]


def remote_class(ray):
    """RayTrainer as an actor class; _start gives each actor its resources, threads (the run and its Stop/Pause calls
    side by side) and no restarts (a lost run is not silently redone)."""
    return ray.remote(RayTrainer)


__all__ = ["RAY_MISSING", "RayPool", "RayUnavailable", "connect", "import_ray"]
