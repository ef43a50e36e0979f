"""End-to-end explanation latency on the CPU: image file in -> rendered images out.

One request = decode the file, preprocess (resize, normalise, the de-normalised view), Grad-CAM at the model's
default layer, the overlay with its colour bar, and that layer's feature-map grid. Median of N runs after warm-up.

    python benchmarks/bench_explain.py [--runs 20] [--threads 1] [--json]

One torch thread by default: for one small image it is as fast as two (LeNet ~9 ms, ResNet-18 ~90-95 ms either way
on 2 quiet cores), and when anything else runs on a 2-core machine two OpenMP threads waiting for each other
measured 10-15x slower (ResNet-18 1.6 s instead of 95 ms).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from cnnviz.explain.gradcam import grad_cam
from cnnviz.explain.layers import default_layer
from cnnviz.explain.maps import feature_maps
from cnnviz.explain.pipeline import prepare
from cnnviz.images import InputSpec
from cnnviz.models import get_model
from cnnviz.render.pictures import cam_image, feature_grid

# (model, channels, input px, target median in ms)
CASES = [("lenet5", 1, 28, 150), ("tinyvgg", 1, 28, 150), ("resnet18", 3, 32, 400)]


def _image_file(folder: Path, size: int = 256) -> Path:
    """A photo-sized JPEG, so decoding and resizing cost what they would for an upload."""
    rng = np.random.default_rng(0)
    path = folder / "upload.jpg"
    PIL.Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path, quality=90)
    return path


def one_request(model: torch.nn.Module, arch: str, path: Path, spec: InputSpec) -> dict[str, float]:
    """Run the whole path once; seconds per stage."""
    t0 = time.perf_counter()
    x, view = prepare(path, spec)  # decode + resize + normalise + the picture the model sees
    t1 = time.perf_counter()
    layer = default_layer(model, arch)
    cam = grad_cam(model, x, layer)
    t2 = time.perf_counter()
    cam_image(view, cam.upsampled)
    t3 = time.perf_counter()
    feature_grid(feature_maps(model, x, layer))
    t4 = time.perf_counter()
    return {"prepare": t1 - t0, "gradcam": t2 - t1, "overlay": t3 - t2, "features": t4 - t3, "total": t4 - t0}


def bench(arch: str, channels: int, size: int, path: Path, runs: int) -> dict[str, float]:
    """Median seconds per stage over `runs` requests after three warm-up requests."""
    torch.manual_seed(0)
    model = get_model(arch, channels, 10, size).eval()  # latency does not depend on the weights' values
    spec = InputSpec(channels, size, (0.5,) * channels, (0.25,) * channels)
    for _ in range(3):  # warm-up: oneDNN primitives, font and colormap caches, receptive-field geometry
        one_request(model, arch, path, spec)
    samples = [one_request(model, arch, path, spec) for _ in range(runs)]
    result = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    result["p90"] = sorted(s["total"] for s in samples)[int(0.9 * (runs - 1))]
    return result


def main(argv: list[str] | None = None) -> int:
    """Print the latency table; exit 1 when a median misses its target."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="torch threads (see the module docstring)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = _image_file(Path(tmp))
        for arch, channels, size, target in CASES:
            r = bench(arch, channels, size, path, args.runs)
            rows.append({"model": arch, "input": f"{channels}x{size}x{size}", "target_ms": target,
                         **{k: round(v * 1000, 1) for k, v in r.items()}})
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"explain latency, median of {args.runs} runs, {args.threads} torch threads (ms)")
        print(f"{'model':<10}{'input':<10}{'prepare':>9}{'gradcam':>9}{'overlay':>9}{'features':>10}{'total':>8}"
              f"{'p90':>8}{'target':>8}")
        for r in rows:
            ok = "ok" if r["total"] <= r["target_ms"] else "SLOW"
            print(f"{r['model']:<10}{r['input']:<10}{r['prepare']:>9}{r['gradcam']:>9}{r['overlay']:>9}{r['features']:>10}"
                  f"{r['total']:>8}{r['p90']:>8}{r['target_ms']:>6} {ok}")
    return 0 if all(r["total"] <= r["target_ms"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
