"""Will a training run fit in memory? Estimated before the first batch, so an absurd batch size is refused with advice
instead of ending the whole server: on a CPU, running out of memory is the kernel killing the process, not an error.

Estimate: weights, gradients and optimiser state (4 bytes each), plus every layer's output for the batch times
ACTIVATION_FACTOR (saved activations, their gradients and scratch). Measured peaks on the CPU (tests/test_train_memory.py and
the calibration in its docstring) were 0.85x to 2.2x the layer outputs, so the factor errs on the safe side.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ..explain.hooks import forward_hooks, restored_state
from .config import ConfigError

ACTIVATION_FACTOR = 2.5
OPTIMIZER_STATES = {"sgd": 1, "adam": 2, "adamw": 2}  # tensors per parameter besides the weights and gradients
USABLE_SHARE = 0.8  # of the free memory: the server, other users and the evaluation pass need the rest
GB = 1e9


class MemoryTooSmall(ConfigError):
    """The run would not fit; the message gives the largest batch size that would."""


@dataclass(frozen=True)
class MemoryEstimate:
    fixed_bytes: int  # weights, gradients, optimiser state
    per_image_bytes: int  # activations of one training image

    def total(self, batch_size: int) -> int:
        return self.fixed_bytes + batch_size * self.per_image_bytes

    def largest_batch(self, budget: float) -> int:
        """The largest batch size whose estimate fits in `budget` bytes (0 when not even the weights fit)."""
        return max(0, int((budget - self.fixed_bytes) // max(1, self.per_image_bytes)))


def layer_output_elements(model: nn.Module, in_channels: int, size: int) -> int:
    """Elements of every leaf layer's output for one image (one no-grad forward pass on the model's device)."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        total += output.numel() if isinstance(output, torch.Tensor) else 0

    device = next(model.parameters()).device
    leaves = [(m, count) for m in model.modules() if not any(True for _ in m.children())]
    with restored_state(model, eval_mode=True, freeze=False), torch.no_grad(), forward_hooks(leaves):
        model(torch.zeros(1, in_channels, size, size, device=device))
    return total


def estimate(model: nn.Module, in_channels: int, size: int, optimizer: str) -> MemoryEstimate:
    """Training memory of `model` at input `size`: what does not depend on the batch, and what each image adds."""
    params = sum(p.numel() for p in model.parameters())
    fixed = 4 * params * (2 + OPTIMIZER_STATES.get(optimizer, 2))
    per_image = int(4 * ACTIVATION_FACTOR * layer_output_elements(model, in_channels, size) + 4 * in_channels * size * size)
    return MemoryEstimate(fixed, per_image)


def free_bytes(device: torch.device) -> int | None:
    """Memory free for a new run on `device`: the GPU's free memory, or the CPU's MemAvailable (None if unknown)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None  # not Linux: no check rather than a guess


def check_fits(model: nn.Module, in_channels: int, size: int, batch_size: int, optimizer: str, device: torch.device,
               free: int | None = None) -> int | None:
    """Raise MemoryTooSmall when the run's estimate exceeds USABLE_SHARE of the free memory; else return the largest
    training batch that would fit (None when the free memory is unknown)."""
    est = estimate(model, in_channels, size, optimizer)
    free = free_bytes(device) if free is None else free
    if free is None:
        return None
    budget = USABLE_SHARE * free
    need = est.total(batch_size)
    if need > budget:
        largest = est.largest_batch(budget)
        advice = (f"use a batch size of at most {largest}" if largest >= 1 else
                  "this model does not fit at all: choose a smaller architecture or input size")
        where = "GPU" if device.type == "cuda" else "this machine"
        raise MemoryTooSmall(f"this run needs about {need / GB:.1f} GB at batch size {batch_size} ({size} px inputs) but "
                             f"{where} has {free / GB:.1f} GB free; {advice}")
    return est.largest_batch(budget)


__all__ = ["ACTIVATION_FACTOR", "MemoryEstimate", "MemoryTooSmall", "check_fits", "estimate", "free_bytes",
           "layer_output_elements"]
