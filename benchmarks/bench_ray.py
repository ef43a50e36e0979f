"""The same run through a Ray actor (`--ray local`) and through a local training worker, measured in one process, in
turns (issue 13): what the student waits for from Start to the first curve point, to the end (with the checkpoint
back in the runs folder), and from Stop to the Stopped event. Both sides are warm (actor or worker started and
ready) and train with one torch thread (two local CPU workers share the 2 cores as the two Ray CPU slots do), so the
difference is the transport: Ray's actor calls, streaming generator and run-folder copy vs a pipe and a shared disk.

    python benchmarks/bench_ray.py                     # 3 turns each, lenet5 on digits, 3 epochs (about 2 minutes)
    python benchmarks/bench_ray.py --repeats 5 --out benchmarks/results/ray.json
    python benchmarks/bench_ray.py --app               # the same through the served app and gradio_client:
                                                       # `app.py --devices cpu,cpu` vs `app.py --ray local`

On a shared 2-core machine other work moves every figure: read the ratios of one run, not the seconds.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cnnviz.train.config import Limits, TrainConfig  # noqa: E402
from cnnviz.train.events import Finished, Stopped  # noqa: E402
from cnnviz.train.ray_pool import RayPool  # noqa: E402
from cnnviz.train.session import TrainSession  # noqa: E402
from cnnviz.train.worker_pool import WorkerPool  # noqa: E402


def wait(condition, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out")
        time.sleep(0.005)


def one_run(pool, cfg: TrainConfig, root: Path) -> dict:
    """Start to first Progress, start to end (the end event comes after the run folder is in place)."""
    t0 = time.perf_counter()
    w = TrainSession(pool).start(cfg, Limits(), root)
    wait(lambda: w.progress is not None or w.finished.is_set())
    first = time.perf_counter() - t0
    w.finished.wait(600)
    assert isinstance(w.end, Finished) and Path(w.end.checkpoint).is_file(), w.end
    return {"first_point_s": first, "end_s": time.perf_counter() - t0, "device": w.started.device}


def one_stop(pool, cfg: TrainConfig, root: Path) -> float:
    """Seconds from Stop to the Stopped event (its checkpoint saved and, through Ray, copied back)."""
    s = TrainSession(pool)
    w = s.start(cfg.with_(epochs=60), Limits(), root)
    wait(lambda: w.progress is not None and w.progress.step > 20)
    t0 = time.perf_counter()
    s.request_stop()
    w.finished.wait(60)
    assert isinstance(w.end, Stopped), w.end
    return time.perf_counter() - t0


TRAIN = dict(preset="demo-digits", arch="lenet5", dataset="digits", subset=0, epochs=3, batch_size=32, optimizer="adam",
             lr=3e-3, schedule="onecycle", augment=False, device="cpu", seed=0, momentum=0.9, weight_decay=0.0,
             label_smoothing=0.0)


def through_app(flags: list[str], repeats: int, folder: Path) -> dict:
    """Start the app with `flags`, train once to warm it, then `repeats` times: submit /train, seconds to the first
    update that carries a curve point and to the result (then the new checkpoint must predict)."""
    import os

    from gradio_client import Client

    sys.path.insert(0, str(REPO / "benchmarks"))
    from subprocess_server import running_server

    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CNNVIZ_HOME": str(folder), "GRADIO_ANALYTICS_ENABLED": "False"}
    out = {"flags": flags, "first_point_s": [], "end_s": []}
    t0 = time.perf_counter()
    with running_server([sys.executable, str(REPO / "app.py"), *flags], env, folder, " ".join(flags), cwd=folder) as (url, _):
        client = Client(url, verbose=False)
        out["server_ready_s"] = time.perf_counter() - t0
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            job = client.submit(**TRAIN, api_name="/train")
            first = None
            while not job.done():
                if first is None and any(_has_point(update) for update in job.outputs()):
                    first = time.perf_counter() - t0
                time.sleep(0.01)
            result = job.result()
            end = time.perf_counter() - t0
            first = first or end
            assert "Test accuracy" in str(result), str(result)[:500]
            if i:  # the first run warms the workers (and waits for them to start): not counted
                out["first_point_s"].append(first)
                out["end_s"].append(end)
    for key in ("first_point_s", "end_s"):
        out[f"median_{key}"] = statistics.median(out[key])
    return out


def _has_point(update) -> bool:
    """Whether a /train update's loss plot has a row yet."""
    for value in update:
        data = value.get("value", value) if isinstance(value, dict) else None
        if isinstance(data, dict) and data.get("columns") == ["epoch", "value", "series"] and data.get("data"):
            return True
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--app", action="store_true", help="through the served app (two servers, one after the other)")
    args = ap.parse_args()
    if args.app:
        with tempfile.TemporaryDirectory() as tmp:
            summary = {name: through_app(flags, args.repeats, Path(tmp, name)) for name, flags in
                       (("local", ["--devices", "cpu,cpu"]), ("ray", ["--ray", "local"]))}
        for key in ("first_point_s", "end_s"):
            summary[f"ray_over_local_{key}"] = summary["ray"][f"median_{key}"] / summary["local"][f"median_{key}"]
        print(json.dumps(summary, indent=1))
        if args.out:
            args.out.write_text(json.dumps(summary, indent=1) + "\n")
        return 0
    cfg = TrainConfig(arch="lenet5", dataset="digits", epochs=args.epochs, batch_size=32)
    t0 = time.perf_counter()
    local = WorkerPool(["cpu", "cpu"], warm=True)
    wait(lambda: local._state == ["idle", "idle"])
    local_ready = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray = RayPool("local", num_cpus=2, warm=True)
    wait(lambda: ray._check_starting(0.2) or all(h.state == "idle" for h in ray.handles()))
    ray_ready = time.perf_counter() - t0
    results = {"local": [], "ray": []}
    stops = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):  # in turns, so a busy moment of the machine hits both sides alike
            for name, pool in (("local", local), ("ray", ray)):
                results[name].append(one_run(pool, cfg, Path(tmp) / name))
                stops[name].append(one_stop(pool, cfg, Path(tmp) / name))
    local.shutdown()
    ray.shutdown()
    summary = {"config": cfg.to_dict(), "repeats": args.repeats, "ready_s": {"local": local_ready, "ray": ray_ready}}
    for name in results:
        summary[name] = {"first_point_s": statistics.median(r["first_point_s"] for r in results[name]),
                         "end_s": statistics.median(r["end_s"] for r in results[name]),
                         "stop_s": statistics.median(stops[name]), "device": results[name][0]["device"],
                         "runs": results[name], "stops": stops[name]}
    for key in ("first_point_s", "end_s", "stop_s"):
        summary[f"ray_over_local_{key}"] = summary["ray"][key] / summary["local"][key]
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=1, default=str))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
