"""`python -m cnnviz bench`: engine throughput against a plain tutorial-style PyTorch loop, in the same process."""
from __future__ import annotations

import gzip
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

from ..data import load_dataset
from ..models import get_model
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
        raw = root / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        for f in Path("/usr/share/datasets/fashion-mnist").glob("*.gz"):
            with gzip.open(f) as src, open(raw / f.stem, "wb") as dst:
                shutil.copyfileobj(src, dst)
        return datasets.FashionMNIST(str(root), train=True, transform=tf, download=False), ds.info
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


def engine_rate(arch: str, dataset: str, batch_size: int, max_batches: int, device: str, progress_every: float) -> float:
    """Images/s of cnnviz.train.engine.fit over one epoch of `max_batches` batches (training time only)."""
    subset = None if dataset == "fashion-mnist" and max_batches * batch_size >= 60000 else batch_size * max_batches
    cfg = TrainConfig(arch=arch, dataset=dataset, subset=subset, epochs=1, batch_size=batch_size, optimizer="adam",
                      lr=1e-3, device=device)
    for ev in fit(cfg, save=False, progress_every=progress_every, callbacks=[]):  # the engine alone
        if isinstance(ev, Failed):
            raise RuntimeError(ev.message)
        if isinstance(ev, EpochEnded):
            return ev.images_per_sec
    raise RuntimeError("the engine ended without an epoch")


CASES = [  # (label, arch, dataset, batch size, batches: full, quick)
    ("LeNet-5 / Fashion-MNIST", "lenet5", "fashion-mnist", 256, 234, 40),
    ("ResNet-18 / 32x32 RGB (shapes)", "resnet18", "shapes", 128, 12, 3),
]


def run_bench(quick: bool = False, device: str = "auto") -> list[dict]:
    """One row per case: plain loop, engine with and without live reporting, and the ratios."""
    dev = resolve_device(device)
    rows = []
    for label, arch, dataset, bs, full, short in CASES:
        n = short if quick else full
        plain = plain_loop(arch, dataset, bs, n, dev)
        engine_rate(arch, dataset, bs, max(2, n // 4), str(dev), progress_every=1e9)  # warm-up: the first run is ~2x slower
        live = engine_rate(arch, dataset, bs, n, str(dev), progress_every=0.25)
        silent = engine_rate(arch, dataset, bs, n, str(dev), progress_every=1e9)
        rows.append({"case": label, "device": str(dev), "batch_size": bs, "batches": n, "plain_img_s": plain,
                     "engine_img_s": live, "engine_silent_img_s": silent, "speedup": live / plain,
                     "reporting_cost": 1 - live / silent, "epoch_60k_s": 60000 / live})
    return rows


def cmd_bench(args) -> int:
    """`python -m cnnviz bench`: print the table (or JSON rows)."""
    rows = run_bench(quick=args.quick, device=args.device)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'case':<32}{'plain img/s':>12}{'engine img/s':>14}{'speedup':>9}{'live-report cost':>18}")
    for r in rows:
        print(f"{r['case']:<32}{r['plain_img_s']:>12,.0f}{r['engine_img_s']:>14,.0f}{r['speedup']:>8.2f}x"
              f"{r['reporting_cost']:>17.1%}")
    return 0
