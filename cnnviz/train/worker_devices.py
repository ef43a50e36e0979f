"""Which training workers a server runs (`--devices auto|cpu|cuda:0,cuda:1,...`), and how each one's process is set up:
the GPU it may see, its CPU priority and its thread count. Plain functions, no torch at import: the parent parses the
flag, the worker applies the rest before it imports torch.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

NICE = 10  # a CPU worker's niceness: the web server's predictions and explanations come first
THREADS_TOLERANCE = 1.2  # more threads must make a training step this much faster to be worth taking from the server
_CUDA = re.compile(r"cuda:(\d+)")


class DeviceError(ValueError):
    """A --devices value that cannot be served here; the message says what is available."""


def gpu_count() -> int:
    """GPUs this process can see (0 without CUDA)."""
    import torch  # late: parsing a flag should not need torch unless GPUs must be counted

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def parse_devices(spec: str, gpus: int | Callable[[], int] = gpu_count) -> tuple[str, ...]:
    """'auto' -> every visible GPU ('cuda:0', ...), else ('cpu',); 'cpu' -> ('cpu',); 'cuda' -> every GPU;
    'cpu,cpu' or 'cuda:0,cuda:1' -> one worker each (a device may be named twice: two workers share it)."""
    items = [s.strip().lower() for s in str(spec).split(",")]
    if not spec or not all(items):
        raise DeviceError(f"--devices needs auto, cpu, cuda or a comma-separated list such as cuda:0,cuda:1, got {spec!r}")
    if items == ["auto"]:
        n = gpus() if callable(gpus) else gpus
        return tuple(f"cuda:{i}" for i in range(n)) or ("cpu",)
    devices: list[str] = []
    for item in items:
        if item == "cuda":
            n = gpus() if callable(gpus) else gpus
            if n == 0:
                raise DeviceError("--devices cuda: no CUDA GPU is visible here; use cpu or auto")
            devices += [f"cuda:{i}" for i in range(n)]
        elif item == "cpu" or _CUDA.fullmatch(item):
            devices.append(item)
        else:
            raise DeviceError(f"--devices: {item!r} is not a device; use auto, cpu, cuda or cuda:N (e.g. cuda:0,cuda:1)")
    wanted = sorted({int(m.group(1)) for d in devices if (m := _CUDA.fullmatch(d))})
    if wanted:
        n = gpus() if callable(gpus) else gpus
        missing = [i for i in wanted if i >= n]
        if missing:
            have = ", ".join(f"cuda:{i}" for i in range(n)) or "none"
            raise DeviceError(f"--devices: no GPU cuda:{missing[0]} here (visible: {have}); list only those, or use auto")
    return tuple(devices)


@dataclass(frozen=True)
class WorkerSetup:
    """How one worker process is set up, decided by the parent (picklable: it travels to the spawned process)."""

    device: str  # "cpu" or "cuda:N", as the server names it
    nice: int  # added to the worker's niceness (0 for a GPU worker: its CPU side feeds the GPU)
    max_threads: int  # the most intra-op threads the measurement may choose
    label: str = ""  # how the Train tab names it: the device, plus "(worker k)" when several workers share it

    @property
    def name(self) -> str:
        return self.label or self.device

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def environment(self) -> dict[str, str]:
        """Variables set in the worker before torch loads: a GPU worker sees only its own GPU (as cuda:0, one CUDA
        context per worker); a CPU worker sees none, so 'auto' trains on its CPU even on a GPU machine."""
        return {"CUDA_VISIBLE_DEVICES": self.device.partition(":")[2] if self.is_cuda else ""}

    def local_device(self) -> str:
        """The device as the worker itself names it: its one visible GPU is cuda:0."""
        return "cuda:0" if self.is_cuda else "cpu"


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_setups(devices: Sequence[str], cores: int | None = None) -> list[WorkerSetup]:
    """One setup per device: CPU workers share the cores (and run niced); GPU workers get a few threads each."""
    cores = cores or available_cores()
    n_cpu = sum(d == "cpu" for d in devices) or 1
    setups = []
    for i, d in enumerate(devices):
        label = f"{d} (worker {devices[:i + 1].count(d)})" if devices.count(d) > 1 else d
        setups.append(WorkerSetup(d, NICE, max(1, cores // n_cpu), label) if d == "cpu"
                      else WorkerSetup(d, 0, max(1, min(4, cores // len(devices))), label))
    return setups


def choose_threads(seconds: dict[int, float], tolerance: float = THREADS_TOLERANCE) -> int:
    """The fewest threads whose step time is within `tolerance` of the fastest measured: cores a worker does not need
    stay with the web server."""
    best = min(seconds.values())
    return min(n for n, s in seconds.items() if s <= best * tolerance)


def measure_threads(max_threads: int, step: Callable[[], None], set_threads: Callable[[int], None],
                    repeats: int = 3) -> tuple[int, dict[int, float]]:
    """Time `step` (one small training step) at 1..max_threads threads, best of `repeats`; the choice and the times."""
    seconds: dict[int, float] = {}
    for n in range(1, max_threads + 1):
        set_threads(n)
        step()  # warm-up: the first call at a thread count allocates
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        seconds[n] = min(times)
    chosen = choose_threads(seconds)
    set_threads(chosen)
    return chosen, seconds


__all__ = ["DeviceError", "NICE", "WorkerSetup", "available_cores", "choose_threads", "gpu_count", "measure_threads",
           "parse_devices", "worker_setups"]
