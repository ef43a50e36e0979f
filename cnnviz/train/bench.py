"""`python -m cnnviz bench`: engine throughput against a plain tutorial-style PyTorch loop, in the same process."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

from ..data import load_dataset
from ..models import get_model, model_input_size
from .config import TrainConfig
from .engine import fit, resolve_device
from .events import EpochEnded, Failed


class _UInt8Images(torch.utils.data.Dataset):
    """Like torchvision's CIFAR10: one PIL image per sample, then the per-image transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        import PIL.Image

        arr = self.images[i].permute(1, 2, 0).numpy()
        img = PIL.Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
        return self.transform(img), int(self.labels[i])


def _tutorial_dataset(name: str, n: int):
    """The dataset as a classic tutorial builds it: torchvision's FashionMNIST reader, ToTensor + Normalize per image."""
    from torchvision import datasets, transforms

    ds = load_dataset(name)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(ds.info.mean, ds.info.std)])
    if name == "fashion-mnist":
        root = Path(tempfile.mkdtemp(prefix="cnnviz-bench-"))
        try:
            raw = root / "FashionMNIST" / "raw"
            raw.mkdir(parents=True)
            for f in Path("/usr/share/datasets/fashion-mnist").glob("*.gz"):
                with gzip.open(f) as src, open(raw / f.stem, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            # torchvision reads the files into tensors here, so the copies can go at once.
            return datasets.FashionMNIST(str(root), train=True, transform=tf, download=False), ds.info
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return _UInt8Images(ds.train.images[:n], ds.train.labels[:n], tf), ds.info


def plain_loop(arch: str, dataset: str, batch_size: int, max_batches: int, device: torch.device) -> float:
    """Images/s of `for x, y in DataLoader(...)` with the same model, optimiser and batch size."""
    ds, info = _tutorial_dataset(dataset, batch_size * max_batches)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True)
    torch.manual_seed(0)
    model = get_model(arch, info.channels, info.num_classes, info.size).to(device).train()
    opt, crit = torch.optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()
    seen, t0 = 0, time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if i == max_batches:
            break
        x, y = x.to(device), y.to(device)
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
        seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def engine_epochs(arch: str, dataset: str, batch_size: int, max_batches: int, device: str, progress_every: float,
                  epochs: int = 2, speed: str | None = None) -> list[float]:
    """Images/s of each epoch of cnnviz.train.engine.fit over `max_batches` batches (training time only).

    `speed` forces train.speed's choice ('plain', 'channels_last', 'bf16'); None lets the engine time and choose."""
    subset = None if dataset == "fashion-mnist" and max_batches * batch_size >= 60000 else batch_size * max_batches
    cfg = TrainConfig(arch=arch, dataset=dataset, subset=subset, epochs=epochs, batch_size=batch_size,
                      optimizer="adam", lr=1e-3, device=device)
    old = os.environ.pop("CNNVIZ_CPU_SPEED", None)
    if speed:
        os.environ["CNNVIZ_CPU_SPEED"] = speed
    rates = []
    try:
        for ev in fit(cfg, save=False, progress_every=progress_every, callbacks=[]):  # the engine alone
            if isinstance(ev, Failed):
                raise RuntimeError(ev.message)
            if isinstance(ev, EpochEnded):
                rates.append(ev.images_per_sec)
    finally:
        os.environ.pop("CNNVIZ_CPU_SPEED", None)
        if old is not None:
            os.environ["CNNVIZ_CPU_SPEED"] = old
    if len(rates) != epochs:
        raise RuntimeError("the engine ended before its last epoch")
    return rates


def engine_rate(arch: str, dataset: str, batch_size: int, max_batches: int, device: str, progress_every: float) -> float:
    """Images/s of one engine epoch of `max_batches` batches."""
    return engine_epochs(arch, dataset, batch_size, max_batches, device, progress_every, epochs=1)[0]


def compile_cost(arch: str, dataset: str, batch_size: int, steps: int = 5) -> dict:
    """torch.compile on the CPU: seconds of the first (compiling) step, and steady img/s eager vs compiled."""
    info = load_dataset(dataset, subset=batch_size).info
    size = model_input_size(arch, info.size)
    shape = (batch_size, info.channels, size, size)
    out = {}
    for label in ("eager", "compiled"):
        torch.manual_seed(0)
        model = get_model(arch, info.channels, info.num_classes, size).train()
        run = torch.compile(model) if label == "compiled" else model
        opt, crit = torch.optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()
        x, y = torch.randn(shape), torch.randint(0, info.num_classes, (batch_size,))
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            opt.zero_grad()
            crit(run(x), y).backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        out[f"{label}_first_step_s"] = times[0]
        out[f"{label}_img_s"] = batch_size / min(times[1:])
    return out


CASES = [  # (label, arch, dataset, batch size, batches: full, quick)
    ("LeNet-5 / Fashion-MNIST", "lenet5", "fashion-mnist", 128, 468, 40),
    ("ResNet-18 at 1/4 width / Fashion-MNIST", "resnet18_quarter", "fashion-mnist", 128, 40, 4),
]


def run_bench(quick: bool = False, device: str = "auto", with_compile: bool = False, repeat: int = 1) -> list[dict]:
    """One row per case, all in this process: the plain loop, the engine computing as plainly (contiguous float32),
    the engine with its own choice of memory format and precision, epoch 1 vs epoch 2, and the ratios.

    `repeat` > 1 alternates the plain loop and the engine that many times and reports the medians (and each round's
    figures): on a shared machine a burst of other work lands on one side of a single pair."""
    from .speed import cpu_candidates

    dev = resolve_device(device)
    rows = []
    for label, arch, dataset, bs, full, short in CASES:
        n = short if quick else full
        rounds = []
        for i in range(max(1, repeat)):
            plain = plain_loop(arch, dataset, bs, n, dev)
            if i == 0:
                plain_engine = engine_epochs(arch, dataset, bs, n, str(dev), 0.25, epochs=2, speed="plain")
            tuned = engine_epochs(arch, dataset, bs, n, str(dev), 0.25, epochs=2)
            rounds.append({"plain_img_s": plain, "engine_epoch1_img_s": tuned[0], "engine_img_s": tuned[1],
                           "speedup": tuned[1] / plain})
        med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        row = {"case": label, "device": str(dev), "batch_size": bs, "batches": n, "threads": torch.get_num_threads(),
               **med, "engine_fp32_img_s": plain_engine[1], "speedup_data_path": plain_engine[1] / rounds[0]["plain_img_s"],
               "speed_candidates": [s.label for s in cpu_candidates()] if dev.type == "cpu" else ["cuda"],
               "epoch_60k_s": 60000 / med["engine_img_s"]}
        if len(rounds) > 1:
            row["rounds"] = rounds
        if with_compile and dev.type == "cpu":
            row.update(compile_cost(arch, dataset, bs))
        rows.append(row)
    return rows


def cmd_bench(args) -> int:
    """`python -m cnnviz bench`: print the table (or JSON rows)."""
    rows = run_bench(quick=args.quick, device=args.device, with_compile=bool(os.environ.get("CNNVIZ_BENCH_COMPILE")),
                     repeat=getattr(args, "repeat", 1))
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'case':<40}{'plain img/s':>12}{'engine fp32':>12}{'epoch 1':>10}{'epoch 2':>10}{'speedup':>9}")
    for r in rows:
        print(f"{r['case']:<40}{r['plain_img_s']:>12,.0f}{r['engine_fp32_img_s']:>12,.0f}"
              f"{r['engine_epoch1_img_s']:>10,.0f}{r['engine_img_s']:>10,.0f}{r['speedup']:>8.2f}x")
        for i, rnd in enumerate(r.get("rounds", []), 1):
            print(f"  round {i}: plain {rnd['plain_img_s']:,.0f}, engine {rnd['engine_epoch1_img_s']:,.0f} / "
                  f"{rnd['engine_img_s']:,.0f} img/s, {rnd['speedup']:.2f}x")
        if "compiled_img_s" in r:
            print(f"  torch.compile: first step {r['compiled_first_step_s']:.1f} s (eager {r['eager_first_step_s']:.2f} s),"
                  f" then {r['compiled_img_s']:,.0f} vs eager {r['eager_img_s']:,.0f} img/s")
    return 0
