"""One run across processes (PyTorch DDP, cnnviz.train.distributed) against one process, through the engine's fit().

    python benchmarks/bench_ddp.py [--quick] [--json] [--out FILE]          # CPU: 2 gloo ranks vs 1 process, digits
    python benchmarks/bench_ddp.py --device cuda [--quick] [--json]         # 1 GPU: ResNet-18 CIFAR epoch, DDP vs not

CPU. LeNet-5 on the shipped 8x8 digits (the demo-digits preset, global batch 64), each case in freshly spawned
processes, alternating, median of the repeats: one process with every core as torch threads ("plain") and with one
("plain 1 thread"), the DDP code path with a group of one and one thread ("ddp x1, 1 thread"), and two gloo ranks
with half the cores each ("ddp x2"; torchrun, too, sets OMP_NUM_THREADS=1). On a busy 2-core machine two OpenMP
threads wait for each other: "plain" measured 122 to 992 images/s in three runs here, "plain 1 thread" 5,000 to
10,000. Every case computes in channels_last float32 (CNNVIZ_CPU_SPEED, unless set otherwise).
Reported: the engine's images/s of the steady epochs (EpochEnded.images_per_sec: the whole run's images over rank 0's
step time) and the wall time of the training epochs after the first, from the first epoch's end to the last progress
event (the engine syncs there). On 2 cores two ranks are not faster: they share the same cores and add a gradient
all-reduce and a flag all-reduce to every step; the figure says what the mechanism costs, not what it buys.

CUDA (a GPU machine). The resnet18-cifar10 preset (ResNet-18 CIFAR form, batch 128) for 2 epochs per run, in this
process, alternating plain / DDP with a group of one (NCCL, plus the gloo side channel): the second epoch's wall time
is the figure (the first pays cudnn autotuning). CIFAR-10 when it is on disk; otherwise random uint8 images in
CIFAR-10's own file format in a temporary folder (then "data" says so: same shapes and cost, meaningless accuracy).
--quick: fewer repeats and epochs (CPU), a 10,000-image subset (CUDA): a smoke run of the same code.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cnnviz.data import availability
from cnnviz.train.config import TrainConfig
from cnnviz.train.distributed import GroupSpec, free_port
from cnnviz.train.engine import fit
from cnnviz.train.events import END_EVENTS, EpochEnded, Finished, Progress
from cnnviz.train.presets import get_preset
from cnnviz.train.worker_devices import available_cores


def timed_fit(cfg: TrainConfig, group: GroupSpec | None) -> dict | None:
    """Run fit(); on rank 0 (or alone) the figures: steady images/s, wall seconds of epochs 2.., test accuracy."""
    marks: list[float] = []  # wall time at each epoch's end and at the last progress before it
    ips, end, last_progress = [], None, None
    for ev in fit(cfg, save=False, callbacks=[], group=group):
        now = time.perf_counter()
        if isinstance(ev, Progress):
            last_progress = now
        elif isinstance(ev, EpochEnded):
            ips.append(ev.images_per_sec)
            marks.append((last_progress, now))
        elif isinstance(ev, END_EVENTS):
            end = ev
    if group is not None and group.rank != 0:
        return None
    if not isinstance(end, Finished):
        raise RuntimeError(f"the run did not finish: {end}")
    # Steps of epochs 2..N: from epoch 1's end to the last epoch's final progress (evaluation of 2..N-1 included).
    return {"images_per_sec": statistics.median(ips[1:] or ips), "steady_wall_s": marks[-1][0] - marks[0][1],
            "epochs_timed": len(marks) - 1, "test_acc": end.test_acc}


def _rank_main(rank: int, world: int, port: int, cfg: dict, threads: int, results) -> None:
    torch.set_num_threads(threads)
    group = GroupSpec(rank, world, port=port) if world else None  # world 0: no group at all ("plain")
    out = timed_fit(TrainConfig(**cfg), group)
    if out is not None:
        results.put(out)


def cpu_case(cfg: TrainConfig, world: int, threads: int) -> dict:
    """One case in fresh processes of `threads` torch threads each: world 0 = plain, 1 = the DDP path alone, 2 = two
    ranks."""
    ctx = mp.get_context("spawn")
    results, port = ctx.Queue(), free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, world, port, cfg.to_dict(), threads, results))
             for r in range(max(1, world))]
    for p in procs:
        p.start()
    try:
        out = results.get(timeout=600)
    finally:
        for p in procs:
            p.join(60)
    return {**out, "threads_per_process": threads}


def bench_cpu(quick: bool) -> dict:
    cores = available_cores()
    cfg = get_preset("demo-digits").config.with_(epochs=3 if quick else 6, device="cpu")
    repeats = 1 if quick else 3
    # (name, world, threads): every core in one process, or one thread per process as torchrun sets it
    # (OMP_NUM_THREADS=1); the ranks split the cores.
    plan = [("plain", 0, cores), ("plain 1 thread", 0, 1), ("ddp x1, 1 thread", 1, 1),
            ("ddp x2", 2, max(1, cores // 2))]
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in plan}
    for _ in range(repeats):
        for name, world, threads in plan:
            runs[name].append(cpu_case(cfg, world, threads))
    cases = {name: {"images_per_sec": statistics.median(r["images_per_sec"] for r in rs),
                    "steady_wall_s": statistics.median(r["steady_wall_s"] for r in rs),
                    "test_acc": [r["test_acc"] for r in rs], "threads_per_process": rs[0]["threads_per_process"]}
             for name, rs in runs.items()}
    best = max(cases["plain"]["images_per_sec"], cases["plain 1 thread"]["images_per_sec"])
    return {"device": "cpu", "cores": cores, "case": "LeNet-5 / digits, demo-digits preset (batch 64)",
            "epochs": cfg.epochs, "repeats": repeats, "cases": cases,
            "ratio_ddp2_vs_best_plain": cases["ddp x2"]["images_per_sec"] / best,
            "ratio_ddp1_vs_plain_1_thread": cases["ddp x1, 1 thread"]["images_per_sec"]
            / cases["plain 1 thread"]["images_per_sec"]}


def random_cifar(folder: Path, n_train: int = 50_000, n_test: int = 10_000) -> Path:
    """Random uint8 images and labels in CIFAR-10's python format (what cnnviz.data.cifar reads)."""
    root = folder / "cifar-10-batches-py"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = [(f"data_batch_{i}", n_train // 5) for i in range(1, 6)] + [("test_batch", n_test)]
    for name, n in files:
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist()}
        (root / name).write_bytes(pickle.dumps(batch))
    return folder


def bench_cuda(quick: bool) -> dict:
    if not torch.cuda.is_available():
        raise SystemExit("error: --device cuda needs a CUDA GPU; run the CPU mode here")
    cfg = get_preset("resnet18-cifar10").config.with_(epochs=2, device="cuda", subset=10_000 if quick else None)
    with tempfile.TemporaryDirectory() as tmp:
        data = "CIFAR-10"
        if availability("cifar10") != "offline-ready":
            cfg, data = cfg.with_(data_dir=str(random_cifar(Path(tmp)))), "random CIFAR-shaped tensors (no CIFAR-10 here)"
        runs: dict[str, list[dict]] = {"plain": [], "ddp x1": []}
        for _ in range(1 if quick else 3):
            for name in runs:
                group = GroupSpec(0, 1, port=free_port()) if name != "plain" else None
                runs[name].append(timed_fit(cfg, group))
    cases = {name: {"epoch_wall_s": statistics.median(r["steady_wall_s"] for r in rs),
                    "images_per_sec": statistics.median(r["images_per_sec"] for r in rs)} for name, rs in runs.items()}
    return {"device": torch.cuda.get_device_name(0), "case": "ResNet-18 (CIFAR form), resnet18-cifar10 preset, batch 128",
            "data": data, "subset": cfg.subset, "cases": cases,
            "ddp_overhead": cases["ddp x1"]["epoch_wall_s"] / cases["plain"]["epoch_wall_s"] - 1}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--quick", action="store_true", help="a short smoke run of the same measurement")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    args = p.parse_args()
    os.environ.setdefault("CNNVIZ_DDP_TIMEOUT", "300")
    # One way to compute in every case (the engine would time bf16 against float32 per process, and a noisy machine
    # picks differently from run to run): the cases then differ only in how the run is spread.
    os.environ.setdefault("CNNVIZ_CPU_SPEED", "channels_last")
    t0 = time.perf_counter()
    result = bench_cuda(args.quick) if args.device == "cuda" else bench_cpu(args.quick)
    result.update(quick=args.quick, seconds=round(time.perf_counter() - t0, 1), torch=torch.__version__)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.json:
        print(text)
    else:
        for name, case in result["cases"].items():
            print(f"{name:8s} " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                            for k, v in case.items()), file=sys.stderr)
        print({k: v for k, v in result.items() if k != "cases"}, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
