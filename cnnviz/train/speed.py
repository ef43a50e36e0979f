"""How a run computes on its device: memory format and autocast precision, chosen by timing a few real steps on the CPU.

Measured on 2 Xeon cores with AVX512-BF16 (README "Speed", benchmarks/bench_cpu_speed.py): channels_last + bf16
autocast trains the 1/4-width ResNet-18 and VGG-11 about 1.7x faster than contiguous float32, while LeNet-5 is
fastest in channels_last float32. No fixed rule fits every net (nor every CPU), so a CPU run times the candidates
on a throwaway copy of its model and keeps the fastest.
"""
from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass(frozen=True)
class Speed:
    """One way to compute: NHWC tensors (channels_last) and/or bf16 autocast."""

    channels_last: bool = False
    bf16: bool = False

    @property
    def label(self) -> str:
        return ("channels_last" if self.channels_last else "contiguous") + (" + bf16 autocast" if self.bf16 else " float32")

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self, device: torch.device):
        """The autocast context for `device` (a no-op when bf16 is off)."""
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)


CUDA = Speed(channels_last=True, bf16=True)  # tensor cores: always a win for conv nets
PLAIN = Speed()
_CACHE: dict[tuple, Speed] = {}  # (model layout, input shape, batch, threads) -> the winner, once per process


def cpu_bf16_supported() -> bool:
    """True when oneDNN has fast bf16 kernels here (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_candidates() -> list[Speed]:
    """What a CPU run may use; CNNVIZ_CPU_SPEED=plain|channels_last|bf16 forces one (for benchmarks and debugging)."""
    forced = os.environ.get("CNNVIZ_CPU_SPEED", "").strip().lower()
    table = {"plain": PLAIN, "channels_last": Speed(channels_last=True), "bf16": Speed(channels_last=True, bf16=True)}
    if forced:
        if forced not in table:
            raise ValueError(f"CNNVIZ_CPU_SPEED must be one of {', '.join(table)} (or unset), got {forced!r}")
        return [table[forced]]
    # Contiguous float32 never won on this CPU (channels_last float32 was as fast or faster), so it is not timed.
    out = [Speed(channels_last=True)]
    return out + [Speed(channels_last=True, bf16=True)] if cpu_bf16_supported() else out


def _step_seconds(model: nn.Module, speed: Speed, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Best time of `steps` SGD steps of a copy of `model` (after one untimed warm-up step)."""
    m = copy.deepcopy(model).to(memory_format=speed.memory_format).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.0)  # lr 0: the copy is thrown away anyway
    x = x.contiguous(memory_format=speed.memory_format)
    best = float("inf")
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with speed.autocast(x.device):
            loss = nn.functional.cross_entropy(m(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            best = min(best, time.perf_counter() - t0)
    return best


PROBE_BATCH = 64  # enough to show the kernels' speed; small enough that the probe costs about a second
PROBE_PIXELS = 64 * 96 * 96  # and fewer images when they are large (224 px RGB: 4), so big nets probe quickly too


def choose_speed(model: nn.Module, shape: tuple[int, int, int], batch_size: int, num_classes: int,
                 device: torch.device, steps: int = 2) -> tuple[Speed, dict[str, float]]:
    """The fastest way to train `model` on batches [batch_size, *shape], and each candidate's seconds per step.

    CUDA always gets channels_last + bf16. On the CPU each candidate is timed on random data (a warm-up and `steps`
    timed steps of up to PROBE_BATCH images); the winner is cached per architecture, shape, batch size and threads.
    """
    if device.type == "cuda":
        return CUDA, {}
    if device.type != "cpu":
        return PLAIN, {}
    candidates = cpu_candidates()
    if len(candidates) == 1:
        return candidates[0], {}
    key = (type(model).__name__, tuple((n, tuple(p.shape)) for n, p in model.named_parameters()), shape, batch_size,
           torch.get_num_threads())
    if key in _CACHE:
        return _CACHE[key], {}
    gen = torch.Generator().manual_seed(0)  # the probe must not move the run's own random stream
    n = max(1, min(batch_size, PROBE_BATCH, max(4, PROBE_PIXELS // (shape[0] * shape[1] * shape[2]))))
    x = torch.randn(n, *shape, generator=gen)
    y = torch.randint(0, num_classes, (n,), generator=gen)
    with torch.random.fork_rng(devices=[]):
        times = {s.label: _step_seconds(model, s, x, y, steps) for s in candidates}
    best = min(candidates, key=lambda s: times[s.label])
    _CACHE[key] = best
    return best, times

