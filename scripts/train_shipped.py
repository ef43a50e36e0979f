"""Retrain the checkpoints shipped in cnnviz/shipped/checkpoints/ with the project's own CLI and write its manifest.json.

Run it in a checkout: `train --out NAME` saves into $CNNVIZ_CHECKPOINTS, pointed here at the package data folder.
"""
from __future__ import annotations

import json
import os
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
]


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
        if not only or name in only:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, check=True,
                           env={**os.environ, "CNNVIZ_CHECKPOINTS": str(SHIPPED_DIR)})
            seconds = round(time.perf_counter() - t0, 1)
        path = SHIPPED_DIR / f"{name}.pt"
        meta = load_checkpoint(path).meta
        acc = meta.metrics["test_acc"]
        if acc < minimum:
            raise SystemExit(f"{name}: test accuracy {acc:.4f} is below the promised {minimum}")
        entries.append({"name": name, "command": " ".join(cmd), "arch": meta.arch, "dataset": meta.dataset,
                        "test_acc": round(acc, 4), "epochs": len(meta.history), "wall_seconds": seconds,
                        "bytes": path.stat().st_size, "created": meta.created})
        print(f"{name}: test accuracy {acc:.4f}, {path.stat().st_size / 1e6:.2f} MB")
    manifest.write_text(json.dumps(entries, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
