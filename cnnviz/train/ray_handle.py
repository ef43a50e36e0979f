"""One Ray training actor as worker_run.Worker sees it: the handle contract of worker_pool.TrainerProcess (`conn`,
`stop`, `pause`, `label`, `pid`, `alive`, `ended`, `begin`, `kill`, `is_cuda`, `local_device`) over a Ray actor
(train.ray_trainer). Events come through a Ray streaming generator, read by a pump thread in order; Stop and Pause
are actor calls; the run folder's pieces are unpacked into the app's runs folder as they come (train.ray_transfer).
"""
from __future__ import annotations

import itertools
import logging
import queue
import tarfile
import threading
import time
from pathlib import Path

from ..store.paths import runs_dir
from ..store.run_state import end_training
from .events import END_EVENTS, Failed, RunStarted
from .ray_transfer import localized, unpack_folder, without_copy
from .worker_process import INTERNAL_ERROR, Job

log = logging.getLogger("cnnviz.train.ray")
PING_TIMEOUT = 10.0  # seconds an idle actor has to answer before a run is handed to it


def describe_loss(exc: BaseException, node: str) -> str:
    """Why an actor is gone, in words, from Ray's exception."""
    text, kind = str(exc).lower(), type(exc).__name__
    # Ray's own phrases (its GCS and raylet): "killed by `ray.kill`", "because its node has died", "running low on
    # memory"; every dead worker's message also lists the OOM killer among possible causes, so that says nothing.
    if "ray.kill" in text:
        why = "it was killed (ray.kill)"
    elif kind == "NodeDiedError" or "its node has died" in text or "node died" in text:
        why = "its node left the cluster"
    elif kind == "OutOfMemoryError" or "low on memory" in text:
        why = "its node ran out of memory, so Ray ended it"
    elif kind == "ActorUnavailableError":
        why = "the connection to it was lost"
    else:
        why = "its worker process died (killed, out of memory, or a crash in native code)"
    return f"its Ray actor on {node} was lost: {why}"


class _EventStream:
    """The handle's `conn`: poll(timeout)/recv() over the messages the pump thread puts; EOFError once the actor is
    gone (as a dead worker's pipe)."""

    _EOF = object()

    def __init__(self) -> None:
        self._q: queue.Queue = queue.Queue()
        self._next = None

    def put(self, message) -> None:
        self._q.put(message)

    def close(self) -> None:
        self._q.put(self._EOF)

    def poll(self, timeout: float | None = 0.0) -> bool:
        if self._next is None:
            try:
                self._next = self._q.get(timeout=timeout) if timeout != 0 else self._q.get_nowait()
            except queue.Empty:
                return False
        return True

    def recv(self):
        self.poll(None)
        message = self._next
        if message is self._EOF:
            raise EOFError("the Ray actor is gone")
        self._next = None
        return message


class _RemoteFlag:
    """Stop or Pause as the Worker sets it: a local value, copied to the actor by an actor call on every change."""

    def __init__(self, handle: RayTrainerHandle, name: str) -> None:
        self.handle, self.name, self._value = handle, name, False

    def set(self) -> None:
        if not self._value:
            self._value = True
            self.handle.control(self.name, True)

    def clear(self) -> None:
        if self._value:
            self._value = False
            self.handle.control(self.name, False)

    def is_set(self) -> bool:
        return self._value


class RayTrainerHandle:
    """One actor as the Worker sees it (worker_pool.TrainerProcess's contract)."""

    def __init__(self, ray, actor) -> None:
        self.ray, self.actor = ray, actor
        self.state = "starting"  # starting -> idle <-> busy; dead
        self.created = time.monotonic()
        self.ready_ref = actor.ready.remote()
        self.info: dict = {}
        self._seq = itertools.count(1)  # orders Stop/Pause calls and run starts (the actor's threads may reorder them)
        self.stop, self.pause = _RemoteFlag(self, "stop"), _RemoteFlag(self, "pause")
        self.conn = _EventStream()
        self.lost: str | None = None

    @property
    def node(self) -> str:
        return self.info.get("host") or self.info.get("node") or "a Ray node"

    @property
    def label(self) -> str:
        """The device as the Train tab shows it: which GPU (or CPU) of which node."""
        gpus = self.info.get("gpu_ids") or []
        return f"{f'cuda:{gpus[0]}' if gpus else 'cpu'} on {self.node} (Ray)"

    @property
    def pid(self) -> int | None:
        """The actor's process id on its node."""
        return self.info.get("pid")

    @property
    def is_cuda(self) -> bool:
        return bool(self.info.get("is_cuda"))

    def local_device(self) -> str:
        """The device as the engine in the actor names it (Ray shows it only its own GPU: cuda:0)."""
        return "cuda:0" if self.is_cuda else "cpu"

    def alive(self) -> bool:
        return self.lost is None and self.state != "dead"

    def ended(self) -> str:
        return self.lost or f"its Ray actor on {self.node} stopped answering"

    def control(self, name: str, value: bool) -> None:
        self.actor.control.remote(name, value, next(self._seq))  # fire and forget: a dead actor's call just fails

    def ping(self) -> bool:
        try:
            self.ray.get(self.actor.ping.remote(), timeout=PING_TIMEOUT)
            return True
        except Exception as exc:  # noqa: BLE001  (RayActorError, GetTimeoutError: either way not usable)
            self.lost = describe_loss(exc, self.node)
            return False

    def kill(self) -> None:
        self.state = "dead"
        try:
            self.ray.kill(self.actor)
        except Exception:  # noqa: BLE001  (already gone, or Ray shut down first at exit)
            pass

    def begin(self, job: Job) -> None:
        """Start `job` on the actor: fresh Stop and Pause, a fresh stream, and a thread that pumps its messages."""
        self.stop._value = self.pause._value = False  # the actor clears its own as the run starts (numbered below)
        self.conn = stream = _EventStream()
        generator = self.actor.run.remote(job, next(self._seq))
        root = Path(job.runs_root) if job.runs_root else runs_dir()  # where a local worker would have written it
        threading.Thread(target=self._pump, args=(generator, root, stream), daemon=True, name="cnnviz-ray-pump").start()

    def _pump(self, generator, root: Path, stream: _EventStream) -> None:
        """Read the run's messages in order: events to the stream (paths made local), folder pieces unpacked."""
        remote_dir, local_dir, pieces, problem = "", None, [], None
        try:
            for ref in generator:
                message = self.ray.get(ref)
                if message[0] == "folder":
                    _, run_id, remote_dir, piece, last, final = message
                    pieces.append(piece)
                    if last:
                        local_dir, data, pieces = root / run_id, b"".join(pieces), []
                        try:
                            unpack_folder(data, local_dir, training=not final)
                            problem = None
                        except (OSError, tarfile.TarError) as exc:  # a full or read-only disk here
                            problem = str(exc)
                            log.error("run folder %s could not be copied back: %s", run_id, exc)
                    continue
                kind, ev = message
                if kind == "event":
                    if isinstance(ev, RunStarted) and ev.run_dir:
                        remote_dir, local_dir = ev.run_dir, root / ev.run_id
                    if local_dir is not None:
                        ev = localized(ev, remote_dir, local_dir)
                    if isinstance(ev, END_EVENTS) and problem:
                        ev = without_copy(ev, problem)
                stream.put((kind, ev))
                if kind == "done":
                    return  # the run is over here; the actor's generator ends on its own
        except Exception as exc:  # noqa: BLE001  (the actor, its node or an object lost; or a bug on either side)
            errors = self.ray.exceptions
            if self.state == "dead":  # killed by the app (a Stop that did not end the run, the server stopping)
                self.lost = f"its Ray actor on {self.node} was ended by the app"
            elif isinstance(exc, (errors.RayActorError, errors.NodeDiedError, errors.ObjectLostError)):
                self.lost = describe_loss(exc, self.node)
                log.error("Ray training actor %s: %s (%s)", self.pid, self.lost, (str(exc).splitlines() or [""])[0][:200])
            else:  # the run method raised (RayTaskError) or a message made no sense: end the run, replace the actor
                log.exception("the Ray run's messages could not be read")
                stream.put(("event", Failed(message=INTERNAL_ERROR)))
                self.lost = f"its Ray actor on {self.node} failed ({type(exc).__name__})"
            if local_dir is not None:
                end_training(local_dir, None)  # the run ended here: its copy no longer reads as training
            stream.close()


__all__ = ["PING_TIMEOUT", "RayTrainerHandle", "describe_loss"]
