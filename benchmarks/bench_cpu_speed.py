"""CPU kernels alone: training steps of each shipped family per memory format and precision (what cnnviz.train.speed
chooses between), on random input at the size each net is fed Fashion-MNIST.

    .venv/bin/python benchmarks/bench_cpu_speed.py [--steps 10] [--batch 128] [--arch lenet5 ...] [--optimizers]

Prints images/s and the ratio to contiguous float32; run it on a quiet machine (the ratios swing under load).
`--optimizers` times the optimiser step alone instead (Adam, SGD with and without momentum: for-loop, foreach and fused;
cnnviz.train.recipe uses fused where it won): the best of 9 rounds, so a busy machine inflates it less.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn as nn

from cnnviz.models import get_model, model_input_size
from cnnviz.train.speed import Speed

MODES = {"contiguous float32": Speed(), "channels_last float32": Speed(channels_last=True),
         "contiguous + bf16": Speed(bf16=True), "channels_last + bf16": Speed(channels_last=True, bf16=True)}
ARCHS = ["lenet5", "alexnet_eighth", "vgg11_quarter", "resnet18_quarter"]


def rate(arch: str, speed: Speed, batch: int, steps: int) -> float:
    """Images/s of `steps` Adam steps (after 3 warm-up steps) of `arch` built for 1x28x28, 10 classes."""
    torch.manual_seed(0)
    size = model_input_size(arch, 28)
    model = get_model(arch, 1, 10, size).train().to(memory_format=speed.memory_format)
    opt, crit = torch.optim.Adam(model.parameters(), 1e-3), nn.CrossEntropyLoss()
    x = torch.randn(batch, 1, size, size).contiguous(memory_format=speed.memory_format)
    y = torch.randint(0, 10, (batch,))

    def step():
        with speed.autocast(torch.device("cpu")):
            loss = crit(model(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def optimizer_step_us(arch: str, cls, kind: str, extra: dict, rounds: int = 9, n: int = 50) -> float:
    """Microseconds of one optimiser step on `arch`'s parameters (random gradients): the best of `rounds`."""
    torch.manual_seed(0)
    model = get_model(arch, 1, 10, model_input_size(arch, 28)).to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt = cls(model.parameters(), lr=1e-3, **extra, **{"for-loop": {"foreach": False}, "foreach": {"foreach": True},
                                                       "fused": {"fused": True}}[kind])
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            opt.step()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def optimizer_rows(archs: list[str]) -> list[dict]:
    """One row per architecture and optimiser: step microseconds of each implementation."""
    rows = []
    for arch in archs:
        for name, cls, extra in (("Adam", torch.optim.Adam, {}), ("SGD+momentum", torch.optim.SGD, {"momentum": 0.9}),
                                 ("SGD", torch.optim.SGD, {})):
            us = {kind: optimizer_step_us(arch, cls, kind, extra) for kind in ("for-loop", "foreach", "fused")}
            rows.append({"arch": arch, "optimizer": name, "threads": torch.get_num_threads(), **us})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--arch", nargs="*", default=ARCHS)
    p.add_argument("--json", action="store_true")
    p.add_argument("--optimizers", action="store_true", help="time the optimiser step alone per implementation")
    args = p.parse_args()
    if args.optimizers:
        rows = optimizer_rows(args.arch)
        if args.json:
            print(json.dumps(rows))
        for r in [] if args.json else rows:
            print(f"{r['arch']:<18}{r['optimizer']:<13}" + "".join(f"  {k} {r[k]:,.0f} us" for k in ("for-loop", "foreach", "fused"))
                  + f"  (fused {r['for-loop'] / r['fused']:.1f}x faster than for-loop)", flush=True)
        return
    rows = []
    for arch in args.arch:
        rate(arch, Speed(), args.batch, 2)  # untimed: the first steps in a process pay oneDNN's and OpenMP's start-up
        rates = {label: rate(arch, s, args.batch, args.steps) for label, s in MODES.items()}
        rows.append({"arch": arch, "threads": torch.get_num_threads(), **rates})
        if not args.json:
            base = rates["contiguous float32"]
            print(f"{arch:<18}" + "".join(f"  {k}: {v:,.0f} ({v / base:.2f}x)" for k, v in rates.items()), flush=True)
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
