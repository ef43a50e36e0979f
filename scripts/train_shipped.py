"""Retrain the checkpoints shipped in cnnviz/shipped/checkpoints/ with the project's own CLI and write its manifest.json.

Run it in a checkout: `train --out NAME` saves into $CNNVIZ_CHECKPOINTS, pointed here at the package data folder.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DIR = ROOT / "cnnviz" / "shipped" / "checkpoints"
SHIPPED = [  # name, CLI arguments (exactly what is run), minimum test accuracy promised
    ("lenet5-fashion-mnist", ["--preset", "demo-fashion-mnist"], 0.89),
    ("lenet5-digits", ["--preset", "demo-digits"], 0.95),
    ("tinyvgg-shapes", ["--preset", "demo-shapes"], 0.90),
    # The classic families on Fashion-MNIST, width-scaled to train in minutes on 2 CPU cores (issue 14).
    ("alexnet-fashion-mnist", ["--preset", "lecture-alexnet"], 0.88),
    ("vgg11-fashion-mnist", ["--preset", "lecture-vgg"], 0.88),
    ("resnet18-fashion-mnist", ["--preset", "lecture-resnet"], 0.88),
]
MAX_BYTES = 8_000_000  # a shipped checkpoint stays small enough for the package


def main(only: list[str]) -> int:
    """Train the shipped checkpoints named in `only` (all when empty); describe all of them in the manifest."""
    sys.path.insert(0, str(ROOT))
    from cnnviz.store.checkpoints import load_checkpoint

    manifest = SHIPPED_DIR / "manifest.json"
    old = {e["name"]: e for e in json.loads(manifest.read_text())} if manifest.exists() else {}
    entries = []
    for name, cli_args, minimum in SHIPPED:
        cmd = ["python", "-m", "cnnviz", "train", *cli_args, "--out", name]
        seconds = old.get(name, {}).get("wall_seconds")
        cpu = old.get(name, {}).get("cpu_seconds")
        threads = old.get(name, {}).get("threads")
        if not only or name in only:
            (SHIPPED_DIR / f"{name}.pt").unlink(missing_ok=True)  # retrain: `train --out` refuses to replace a file
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, check=True,
                           env={**os.environ, "CNNVIZ_CHECKPOINTS": str(SHIPPED_DIR)})
            seconds = round(time.perf_counter() - t0, 1)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            # CPU time next to wall time: on a shared machine the gap shows how much the run waited for a core.
            cpu = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1)
            threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
        path = SHIPPED_DIR / f"{name}.pt"
        if not path.exists():  # not trained yet: `scripts/train_shipped.py NAME` trains it
            print(f"{name}: not trained yet, left out of the manifest")
            continue
        meta = load_checkpoint(path).meta
        acc = meta.metrics["test_acc"]
        if acc < minimum:
            raise SystemExit(f"{name}: test accuracy {acc:.4f} is below the promised {minimum}")
        if path.stat().st_size > MAX_BYTES:
            raise SystemExit(f"{name}: {path.stat().st_size:,} bytes is over the {MAX_BYTES:,} a shipped checkpoint may be")
        entries.append({"name": name, "command": " ".join(cmd), "arch": meta.arch, "dataset": meta.dataset,
                        "test_acc": round(acc, 4), "epochs": len(meta.history), "wall_seconds": seconds,
                        "cpu_seconds": cpu, "threads": threads,
                        "bytes": path.stat().st_size, "created": meta.created})
        print(f"{name}: test accuracy {acc:.4f}, {path.stat().st_size / 1e6:.2f} MB")
    manifest.write_text(json.dumps(entries, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
