"""One training run across processes with PyTorch's own DistributedDataParallel: the process group, and the few
collectives the engine needs (sums, an agreement on Stop/Pause, a broadcast from rank 0).

    torchrun --nproc-per-node 2 -m cnnviz train --preset demo-digits   # the group from torchrun's environment
    fit(cfg, group=GroupSpec(rank=r, world_size=2, port=p))             # an explicit one (the app's workers)

NCCL carries tensors on GPUs, gloo on the CPU. A second, gloo group carries the small CPU-side messages (the per-step
Stop/Pause flags, the confusion matrix) so that reading them never waits for the GPU. Every collective has a finite
timeout and a failed one (a rank died, or stopped answering) becomes GroupBroken: an error with a clear message, not
a hang. torch is imported only when a group is joined, so a Job carrying a GroupSpec pickles without it.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import re
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from ..data import Split

DEFAULT_TIMEOUT = 120.0  # seconds any collective (the rendezvous too) may wait for the other ranks
TIMEOUT_ENV = "CNNVIZ_DDP_TIMEOUT"
PEER_LOST = ("another process of this distributed run stopped or stopped answering, so the run was ended ({detail}). "
             "Check that process's output (torchrun names the rank that failed), then start the run again")
_GROUP_WORDS = ("gloo", "nccl", "connection closed", "connection reset", "processgroup", "timed out", "timeout",
                "broken pipe", "socket")


class GroupBroken(RuntimeError):
    """A collective failed: another rank died or stopped answering within the timeout."""


def timeout_seconds(environ: Mapping[str, str] = os.environ) -> float:
    """The collectives' timeout: CNNVIZ_DDP_TIMEOUT seconds, else DEFAULT_TIMEOUT."""
    raw = environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 1 <= value < 86400:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds from 1 to 86399, got {raw!r}")
    return value


@dataclass(frozen=True)
class GroupSpec:
    """Where a rank finds its group (picklable: it travels in a worker_process.Job)."""

    rank: int
    world_size: int
    host: str = "127.0.0.1"  # rank 0 listens here (the rendezvous store) ...
    port: int = 29500  # ... on this port
    local_rank: int = 0  # which of this machine's visible GPUs the rank trains on
    from_env: bool = False  # torchrun's: its own rendezvous (init_method env://) instead of tcp://host:port
    timeout: float = DEFAULT_TIMEOUT

    def problems(self) -> list[str]:
        """What is wrong with the spec, as sentences; empty when it is usable."""
        p = []
        if not (isinstance(self.world_size, int) and self.world_size >= 1):
            p.append(f"the world size must be a whole number of at least 1, got {self.world_size!r}")
        elif not (isinstance(self.rank, int) and 0 <= self.rank < self.world_size):
            p.append(f"the rank must be from 0 to {self.world_size - 1}, got {self.rank!r}")
        if not (isinstance(self.port, int) and 1 <= self.port <= 65535):
            p.append(f"the port must be from 1 to 65535, got {self.port!r}")
        if not (isinstance(self.local_rank, int) and self.local_rank >= 0):
            p.append(f"the local rank must be 0 or more, got {self.local_rank!r}")
        return p

    @property
    def init_method(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return "env://" if self.from_env else f"tcp://{host}:{self.port}"


def spec_from_environment(environ: Mapping[str, str] = os.environ) -> GroupSpec | None:
    """The group torchrun (or any launcher setting RANK and WORLD_SIZE) put this process in; None outside one."""
    if "RANK" not in environ or "WORLD_SIZE" not in environ:
        return None
    try:
        rank, world, local = int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_RANK", "0"))
        port = int(environ.get("MASTER_PORT", "29500"))
    except ValueError as exc:
        raise ValueError(f"RANK, WORLD_SIZE, LOCAL_RANK and MASTER_PORT must be whole numbers ({exc}); start the "
                         "run with torchrun, which sets them") from None
    spec = GroupSpec(rank, world, environ.get("MASTER_ADDR", "127.0.0.1"), port, local, True, timeout_seconds(environ))
    if spec.problems():
        raise ValueError("torchrun's environment is not usable: " + "; ".join(spec.problems()))
    return spec


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (rank 0's rendezvous binds it a moment later)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def shard_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, stop) of rank's contiguous part of n items; parts differ by at most one item and cover all n."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def shard(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank's equal, contiguous part of a global batch of indices (its length must split evenly)."""
    if len(indices) % world_size:
        raise ValueError(f"a batch of {len(indices)} does not split evenly over {world_size} processes")
    per = len(indices) // world_size
    return indices[rank * per:(rank + 1) * per]


def shard_split(split: Split, rank: int, world_size: int) -> Split:
    """Rank's contiguous part of a split (validation: every rank evaluates its part, the counts are summed)."""
    from ..data import Split

    a, b = shard_range(len(split.labels), rank, world_size)
    return Split(split.images[a:b], split.labels[a:b], None if split.masks is None else split.masks[a:b])


def rank_device(device: torch.device, spec: GroupSpec | None) -> torch.device:
    """The device a rank trains on: on GPUs, its machine's GPU number `local_rank` (made the current one)."""
    import torch

    if spec is None or device.type != "cuda":
        return device
    n = torch.cuda.device_count()
    if spec.local_rank >= n:
        raise ValueError(f"rank {spec.rank} should train on cuda:{spec.local_rank}, but this machine shows {n} GPU(s): "
                         f"start at most {n} processes per machine (torchrun --nproc-per-node {n})")
    torch.cuda.set_device(spec.local_rank)
    return torch.device("cuda", spec.local_rank)


def failure_detail(exc: BaseException) -> str:
    """The gist of a backend's error: its first sentence, without gloo's source location."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first = re.sub(r"^\[[^\]]*\]\s*", "", first)  # "[/__w/.../pair.cc:545] Read error ..." -> "Read error ..."
    return first.split(". ", 1)[0][:200]


def is_peer_lost(message: str) -> bool:
    """Whether an end event's message is the engine's "another process ... stopped" (PEER_LOST)."""
    return message.startswith(PEER_LOST.split(" (", 1)[0])


def is_group_error(exc: BaseException) -> bool:
    """Whether `exc` came from the process group (a peer gone, a timeout) rather than from the model or the data."""
    import torch.distributed as dist

    if isinstance(exc, (GroupBroken, dist.DistError)):
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in _GROUP_WORDS)


@contextlib.contextmanager
def collective() -> Iterator[None]:
    """Turn a failed collective into GroupBroken (its message says what to do)."""
    try:
        yield
    except RuntimeError as exc:
        if isinstance(exc, GroupBroken) or not is_group_error(exc):
            raise
        raise GroupBroken(PEER_LOST.format(detail=failure_detail(exc))) from exc


class Group:
    """This process's place in a joined process group and the collectives the engine uses; `close()` leaves it."""

    def __init__(self, spec: GroupSpec, device: torch.device):
        import torch
        import torch.distributed as dist

        if spec.problems():
            raise ValueError("; ".join(spec.problems()))
        self.spec, self.device = spec, device
        self.rank, self.world_size = spec.rank, spec.world_size
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        if dist.is_initialized():
            raise GroupBroken("this process is still in another process group (an earlier run's, or the caller's); a "
                              "run joins its own: leave that one first (torch.distributed.destroy_process_group())")
        timeout = datetime.timedelta(seconds=spec.timeout)
        try:
            with collective():
                dist.init_process_group(self.backend, init_method=spec.init_method, rank=spec.rank,
                                        world_size=spec.world_size, timeout=timeout,
                                        device_id=device if device.type == "cuda" else None)
                # The CPU side channel: flags and the confusion matrix never wait for (or sync with) the GPU.
                self.cpu = dist.new_group(backend="gloo", timeout=timeout) if self.backend == "nccl" else None
        except GroupBroken as exc:
            if dist.is_initialized():  # half made (the side channel failed): leave it, so a retry can join afresh
                with contextlib.suppress(RuntimeError):
                    dist.destroy_process_group()
            raise GroupBroken(f"the {spec.world_size} processes of this run could not meet at {spec.init_method} within "
                              f"{spec.timeout:g} s ({exc.__cause__}); check that every rank was started with the same "
                              "address and port, or raise CNNVIZ_DDP_TIMEOUT") from exc
        self._torch, self._dist, self.healthy = torch, dist, True

    def describe(self) -> str:
        return f"{self.world_size} process{'es' * (self.world_size > 1)}, DDP over {self.backend}"

    def _run(self, fn, *args, **kwargs):
        try:
            with collective():
                return fn(*args, **kwargs)
        except GroupBroken:
            self.healthy = False
            raise

    def lost(self, exc: BaseException) -> str | None:
        """The end message for `exc` when it came from the group (a rank gone, a timeout), else None."""
        if not is_group_error(exc):
            return None
        self.healthy = False
        return str(exc) if isinstance(exc, GroupBroken) else PEER_LOST.format(detail=failure_detail(exc))

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """All-reduce `t` (on this rank's device) in place: every rank gets the sum."""
        self._run(self._dist.all_reduce, t)
        return t

    def sum_cpu_(self, t: torch.Tensor) -> torch.Tensor:
        """The same for a CPU tensor, over the gloo side channel."""
        self._run(self._dist.all_reduce, t, group=self.cpu)
        return t

    def agree(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag is True on every rank when it is True on any: all ranks then take the same branch."""
        t = self._torch.tensor([float(f) for f in flags])
        self.sum_cpu_(t)
        return tuple(v > 0 for v in t.tolist())

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank (picklable objects)."""
        box = [obj]
        self._run(self._dist.broadcast_object_list, box, src=0, group=self.cpu)
        return box[0]

    def whole_split(self, loss: float, n: int, confusion: torch.Tensor) -> tuple[float, float, torch.Tensor]:
        """Loss, accuracy and confusion [true, predicted] of a whole split from each rank's mean `loss` over its `n`
        images and its `confusion` (summed over the CPU channel: exact counts in float64)."""
        t = self._torch
        counts = t.cat([confusion.flatten().to(t.float64), t.tensor([loss * n], dtype=t.float64)])
        self.sum_cpu_(counts)
        confusion = counts[:-1].round().long().view_as(confusion)
        total = max(1, int(confusion.sum()))
        return float(counts[-1]) / total, float(confusion.diag().sum()) / total, confusion

    def sync_buffers(self, module: nn.Module) -> None:
        """Rank 0's buffers (batch-norm statistics) on every rank: all ranks then validate rank 0's checkpoint."""
        for b in module.buffers():
            self._run(self._dist.broadcast, b, src=0)

    def wrap(self, model: nn.Module) -> nn.Module:
        """`model` in DistributedDataParallel (its construction copies rank 0's weights to every rank)."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device] if self.device.type == "cuda" else None
        return self._run(DDP, model, device_ids=ids)

    def close(self) -> None:
        """Leave the group. A broken NCCL group is left alone: tearing it down may wait on a collective that hangs."""
        if self._dist.is_initialized() and (self.healthy or self.backend == "gloo"):
            with contextlib.suppress(RuntimeError):
                self._dist.destroy_process_group()


__all__ = ["DEFAULT_TIMEOUT", "Group", "GroupBroken", "GroupSpec", "PEER_LOST", "failure_detail", "free_port", "is_group_error",
           "is_peer_lost", "rank_device", "shard", "shard_range", "shard_split", "spec_from_environment",
           "timeout_seconds"]
