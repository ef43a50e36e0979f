"""What a student waits for, as a ratio to a plain Gradio round trip measured in the same run (issue 16).

Two servers start side by side on loopback, each in its own process: a trivial Gradio app (image in, label and image
out: the floor any Gradio app pays) and cnnviz (the real build_demo(), queue settings and launch options, fresh
checkpoints/ runs/ and upload folders). Then, through gradio_client:

- single requests, one after another (medians): trivial, Predict, Explain with the tab's defaults (Grad-CAM and
  feature maps), Explain with all five other methods; each on a different real Fashion-MNIST test image, so the result
  cache does not help, and Explain once more on one repeated image (the lecture case: served from the cache). The
  kinds take turns, one request each per round (the order rotating), so a shared machine's load changes hit them all
  alike; then the same without downloading the output pictures (download_files=False on both apps);
- `--browser`: the same click in Chromium, from its request to every output picture decoded (latency_browser.py);
- `--fetch`: where one output picture's download goes (gradio_client's fresh HTTP client, Gradio's file route, size);
- a burst of 30 students at once, each 4 calls (half Predict, half Explain with defaults), once with one shared
  image and once with a different image per student, and the trivial app under the same burst (p50 / p95);
- `--poll 1,10,50`: cnnviz restarted with each queue idle poll, Predict medians and the server's idle CPU;
- `--predict-batch 8`: everything above with /predict under Gradio's batch=True (the experiment; see batch_predict).

    python benchmarks/latency.py                      # single requests and the bursts (about 2-4 minutes on 2 cores)
    python benchmarks/latency.py --no-burst --browser # single requests, also in a real browser
    python benchmarks/latency.py --fetch              # one picture download, piece by piece
    python benchmarks/latency.py --poll 1,10,50       # the queue poll comparison instead
    python benchmarks/latency.py --stages             # in-process breakdown of one Explain click, per stage
    python benchmarks/latency.py --json --out artifacts/latency.json

The clients share the machine with the servers, and on a shared 2-core machine other work moves every figure: read
the ratios (same run, same load), not the milliseconds.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from subprocess_server import running_server  # this folder is on sys.path when run as a script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere: the checkout's cnnviz
for _var in ("NO_PROXY", "no_proxy"):  # loopback traffic must never go through a proxy
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var), "localhost", "127.0.0.1", "::1"]))
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

CKPT = "lenet5-fashion-mnist"
FIVE = ["guided-gradcam", "guided-backprop", "ig", "saliency", "occlusion"]
STUDENTS, CALLS = 30, 4
PREDICT_BATCH = 0  # --predict-batch N: serve cnnviz with /predict batched by Gradio (an experiment)


# ---------------------------------------------------------------- the two servers (each runs this file with --serve)


def serve_trivial(port: int) -> None:
    """The floor: one Gradio event, image in, label and image out, Gradio's defaults otherwise."""
    import gradio as gr

    def classify(image):
        return {"bright" if image.convert("L").getextrema()[1] > 128 else "dark": 1.0}, image

    with gr.Blocks(analytics_enabled=False) as demo:
        image = gr.Image(type="pil")
        label, out = gr.Label(), gr.Image(format="png")
        gr.Button("Go").click(classify, image, [label, out], api_name="predict", concurrency_limit=4)
    demo.queue(max_size=64).launch(server_port=port, quiet=True)


def serve_cnnviz(port: int, poll_ms: float | None, predict_batch: int = 0) -> None:
    """cnnviz as `cnnviz serve` starts it (build_demo, configure_queue, launch_options), optionally another poll or
    Predict under Gradio's batch=True."""
    import cnnviz.ui as ui

    if poll_ms is not None:
        ui.QUEUE_POLL_SECONDS = poll_ms / 1000
    demo = ui.build_demo()
    if predict_batch:
        batch_predict(demo, predict_batch)
    demo = ui.configure_queue(demo, max_size=64)
    demo.launch(**ui.launch_options(port=port))


def batch_predict(demo, size: int) -> None:
    """The experiment `--predict-batch N`: /predict as a Gradio batch function (batch=True, max_batch_size=N), each
    queued batch one call that predicts its images in turn (LeNet-5's forward pass is under a millisecond of a
    request, so one stacked forward would change nothing measurable). Not for the app: in batch mode Gradio runs
    the whole batch with the first request's session (queueing.py: body.request = events[0].request), so every
    student's per-session state (their workspace, their own runs) would be the first one's."""
    fn = next(f for f in demo.fns.values() if f.api_name == "predict")
    one, outputs = fn.fn, list(fn.outputs)

    def many(**columns):
        rows = [one(**dict(zip(columns, values, strict=True))) for values in zip(*columns.values(), strict=True)]
        return [[row[o] for row in rows] for o in outputs]

    fn.fn, fn.batch, fn.max_batch_size = many, True, size


@contextmanager
def server(kind: str, poll_ms: float | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start this file with --serve KIND on a free port in fresh folders; yield (url, process); always stop it."""
    with tempfile.TemporaryDirectory(prefix=f"cnnviz-latency-{kind}-") as tmp:
        env = {**os.environ, "CNNVIZ_CHECKPOINTS": f"{tmp}/checkpoints", "CNNVIZ_RUNS": f"{tmp}/runs",
               "GRADIO_TEMP_DIR": f"{tmp}/gradio", "CNNVIZ_HOME": tmp}
        cmd = [sys.executable, __file__, "--serve", kind]
        if poll_ms is not None:
            cmd += ["--poll-ms", str(poll_ms)]
        if PREDICT_BATCH and kind == "cnnviz":
            cmd += ["--predict-batch", str(PREDICT_BATCH)]
        with running_server(cmd, env, Path(tmp), kind, cwd=REPO) as served:
            yield served


# ---------------------------------------------------------------- requests


def test_images(folder: Path, n: int) -> list[Path]:
    """The first n Fashion-MNIST test images as PNG files (real data; the shipped examples when it is not installed)."""
    from cnnviz.examples import examples_for, test_example

    paths = []
    try:
        for i in range(n):
            paths.append(folder / f"test-{i}.png")
            test_example("fashion-mnist", index=i).image.save(paths[-1])
    except Exception:  # no dataset here: cycle the shipped examples (then the cache sees repeats)
        shipped = [p for p, _ in examples_for("fashion-mnist")]
        paths = [shipped[i % len(shipped)] for i in range(n)]
    return paths


def call(client, kind: str, png: Path) -> float:
    """One request; seconds until its answer (files downloaded, as a browser would fetch them)."""
    from gradio_client import handle_file

    t0 = time.perf_counter()
    if kind == "trivial":
        client.predict(handle_file(png), api_name="/predict")
    elif kind == "predict":
        client.predict(CKPT, handle_file(png), 5, api_name="/predict")
    else:
        methods = FIVE if kind == "explain5" else []
        out = client.predict(checkpoint=CKPT, image=handle_file(png), layer="", target="predicted", opacity=0.5,
                             methods=methods, sort="mean", max_maps=64, api_name="/explain")
        assert "Predicted" in out[0] and (out[4] is not None) == bool(methods), out
    return time.perf_counter() - t0


def call_ms(fn: Callable[[], object], runs: int) -> float:
    """Milliseconds `fn()` takes: one warm-up call, then the median of `runs` timed calls."""
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def median_ms(client, kind: str, images: list[Path], repeat_one: bool = False) -> float:
    call(client, kind, images[-1])  # warm-up (imports, first model load)
    return 1000 * statistics.median(call(client, kind, images[0] if repeat_one else png) for png in images[:-1])


def turns_ms(calls: dict[str, Callable[[int], float]], rounds: int) -> dict[str, float]:
    """Median ms of each call(i) over rounds i = 0..rounds-1, one call of each kind per round in rotating order (each
    warmed up once first, with i = -1)."""
    for fn in calls.values():
        fn(-1)
    names, out = list(calls), {k: [] for k in calls}
    for i in range(rounds):
        for k in names[i % len(names):] + names[:i % len(names)]:
            out[k].append(calls[k](i))
    return {k: 1000 * statistics.median(v) for k, v in out.items()}


def burst(url: str, kinds: Callable[[int, int], str], images: Callable[[int, int], Path]) -> dict[str, list[float]]:
    """STUDENTS clients, each CALLS requests back to back, all released at once; seconds per request by kind."""
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in range(STUDENTS)]
    out: dict[str, list[float]] = {}
    lock, start = threading.Lock(), threading.Barrier(STUDENTS)

    def student(i: int) -> None:
        start.wait()
        for j in range(CALLS):
            kind = kinds(i, j)
            try:
                s = call(clients[i], kind, images(i, j))
            except Exception as exc:  # e.g. an upload timing out on an overloaded machine: counted, not fatal
                with lock:
                    out.setdefault("errors", []).append(f"{kind}: {type(exc).__name__}: {str(exc)[:100]}")
                continue
            with lock:
                out.setdefault(kind, []).append(s)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(STUDENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return 1000 * values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the three reports


def single_ms(t_url: str, c_url: str, images: list[Path], n: int, fetched: bool, first: int) -> dict[str, float]:
    """Single-request medians, the kinds taking turns; Explain on images[first:first + n]. Without `fetched`, only the
    trivial app and Explain: gradio_client downloads each output picture with a new HTTP client, one after another
    (Explain's defaults return two, the trivial app one), so without the downloads is what the servers cost."""
    from gradio_client import Client

    trivial, app = (Client(u, verbose=False, download_files=fetched) for u in (t_url, c_url))
    calls = {"trivial": lambda i: call(trivial, "trivial", images[i]),
             "explain": lambda i: call(app, "explain", images[first + i if i >= 0 else i])}
    if fetched:
        calls.update({"predict": lambda i: call(app, "predict", images[i]),
                      "explain_cached": lambda i: call(app, "explain", images[2 * n]),
                      "explain_all_methods": lambda i: call(app, "explain5", images[n + i if i >= 0 else i])})
    try:
        return turns_ms(calls, n)
    finally:
        trivial.close()
        app.close()


def latency_report(n: int, bursts: bool = True, browser: bool = False) -> dict:
    res: dict = {"load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp, server("trivial") as (t_url, _), server("cnnviz") as (c_url, _):
        # Distinct images, so that no measurement is served another's cached result: Explain's images 0..n-1 (then
        # 2n+1..3n without downloads, 3n+1..4n in the browser), all five methods' n..2n-1, the repeated one 2n, the
        # bursts' from 4n+1 on, the warm-ups' the last.
        images = test_images(Path(tmp), 4 * n + 2 + STUDENTS)
        fresh = images[4 * n + 1:]
        for fetched, first in ((True, 0), (False, 2 * n + 1)):
            key = "single" if fetched else "single_no_download"
            ms = single_ms(t_url, c_url, images, n, fetched, first)
            floor = ms.pop("trivial")
            res[f"{key}_ms"] = {"trivial": floor, **ms}
            res[f"{key}_ratio"] = {k: v / floor for k, v in ms.items()}
        if browser:
            from latency_browser import browser_report

            res.update(browser_report(t_url, c_url, [*images[3 * n + 1:4 * n + 1], images[-1]], n))
        res["load_average_after_single"] = os.getloadavg()
        if not bursts:
            return res
        half = (lambda i, j: "predict" if (i + j) % 2 else "explain")
        t_burst = burst(t_url, lambda i, j: "trivial", lambda i, j: fresh[i])
        res["burst_trivial_errors"] = t_burst.pop("errors", [])
        t95 = pct(t_burst["trivial"], 0.95)
        res["burst_trivial_ms"] = {"p50": pct(t_burst["trivial"], 0.5), "p95": t95}
        for name, pick in (("shared_image", lambda i, j: fresh[0]), ("different_images", lambda i, j: fresh[i])):
            b = burst(c_url, half, pick)
            res[f"burst_{name}_errors"] = b.pop("errors", [])
            res[f"burst_{name}_ms"] = {k: {"p50": pct(v, 0.5), "p95": pct(v, 0.95)} for k, v in b.items()}
            res[f"burst_{name}_p95_ratio"] = {k: pct(v, 0.95) / t95 for k, v in b.items()}
    return res


def poll_report(polls: list[float], n: int, idle_s: float) -> dict:
    from gradio_client import Client

    res = {}
    with tempfile.TemporaryDirectory() as tmp, server("trivial") as (t_url, _):
        images = test_images(Path(tmp), n + 1)
        trivial = Client(t_url, verbose=False)
        for ms in polls:
            with server("cnnviz", ms) as (url, proc):
                app = Client(url, verbose=False)
                floor = median_ms(trivial, "trivial", images)
                predict = median_ms(app, "predict", images)
                time.sleep(1)
                c0 = cpu_seconds(proc.pid)
                time.sleep(idle_s)
                idle = (cpu_seconds(proc.pid) - c0) / idle_s
                app.close()
            res[f"{ms:g} ms"] = {"predict_ms": predict, "trivial_ms": floor, "ratio": predict / floor,
                                 "idle_cpu_percent_of_a_core": 100 * idle}
        trivial.close()
    return res


def stages_report(runs: int) -> dict:
    """One Explain click's server work, stage by stage, in this process (medians in ms; the cache is bypassed)."""
    import io

    import gradio as gr
    import torch
    from gradio import processing_utils

    from cnnviz.examples import examples_for
    from cnnviz.explain.attributions import attribute
    from cnnviz.explain.gradcam import grad_cam
    from cnnviz.explain.layers import default_layer
    from cnnviz.explain.maps import feature_maps
    from cnnviz.explain.pipeline import explain_image, prepare
    from cnnviz.images import load_image
    from cnnviz.render.explain_pictures import cam_overlay, feature_map_view, filter_view, methods_picture
    from cnnviz.store.checkpoints import load_checkpoint
    from cnnviz.ui import SERVER_TORCH_THREADS, gradio_fixes

    torch.set_num_threads(SERVER_TORCH_THREADS)  # as configure_queue sets it in the server
    loaded = load_checkpoint(CKPT)
    path = examples_for("fashion-mnist")[0][0]
    layer = default_layer(loaded.model, loaded.meta.arch)
    x, view = prepare(path, loaded.meta)
    exp = explain_image(loaded, path, layer, None, FIVE)
    pics = {"overlay": cam_overlay(exp), "feature maps": feature_map_view(loaded.model, x, layer, "mean", 64)[0],
            "filters": filter_view(loaded.model, layer)[0], "methods figure": methods_picture(exp)}

    def ms(fn: Callable) -> float:
        return call_ms(fn, runs)

    def png6(img):
        return processing_utils.encode_pil_to_bytes(img, "png")

    def png1(img):
        return gradio_fixes.encode(img, "png")

    out = {"decode upload": ms(lambda: load_image(path)), "prepare (resize, normalise, view)": ms(lambda: prepare(path, loaded.meta)),
           "model: Grad-CAM": ms(lambda: grad_cam(loaded.model, x, layer)),
           "model: feature maps": ms(lambda: feature_maps(loaded.model, x, layer)),
           "render: overlay": ms(lambda: cam_overlay(exp)),
           "render: feature-map grid": ms(lambda: feature_map_view(loaded.model, x, layer, "mean", 64)),
           "render: filters": ms(lambda: filter_view(loaded.model, layer))}
    for m in FIVE:
        out[f"model: {m}"] = ms(lambda m=m: attribute(loaded.model, x, m, exp.target, layer))
    out["render: methods figure (matplotlib)"] = ms(lambda: methods_picture(exp))
    for name, img in pics.items():
        out[f"encode {name} {img.width}x{img.height}: PNG level 6 (Gradio)"] = ms(lambda img=img: png6(img))
        out[f"encode {name} {img.width}x{img.height}: PNG level 1 (cnnviz)"] = ms(lambda img=img: png1(img))
    with tempfile.TemporaryDirectory() as tmp:
        gr_image = gr.Image(type="pil", format="png")
        gradio_fixes.install()
        saved = processing_utils.save_pil_to_cache(pics["overlay"], tmp, format="png")
        out["Gradio postprocess, picture saved before (encoding skipped)"] = ms(
            lambda: processing_utils.save_pil_to_cache(pics["overlay"], tmp, format="png"))
        payload = gr.FileData(path=saved)
        out["Gradio preprocess of an upload (SafeImage decode)"] = ms(lambda: _safe_preprocess(payload))
        del gr_image
    buf = io.StringIO()
    for k, v in out.items():
        print(f"{v:9.2f} ms  {k}", file=buf)
    return {"stages_ms": out, "text": buf.getvalue()}


def _safe_preprocess(payload):
    from cnnviz.ui.uploads import SafeImage

    return SafeImage(type="pil").preprocess(payload)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=12, help="single requests per median")
    p.add_argument("--poll", help="comma-separated queue polls in ms to compare, e.g. 1,10,50")
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measured per poll")
    p.add_argument("--stages", action="store_true", help="in-process breakdown of one Explain click")
    p.add_argument("--no-burst", action="store_true", help="single requests only")
    p.add_argument("--browser", action="store_true", help="also time Explain and the trivial app in Chromium")
    p.add_argument("--fetch", action="store_true", help="where one output picture's download goes")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", type=Path)
    p.add_argument("--serve", choices=["trivial", "cnnviz"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--poll-ms", type=float, help=argparse.SUPPRESS)
    p.add_argument("--predict-batch", type=int, default=0, metavar="N",
                   help="experiment: /predict with Gradio's batch=True, max_batch_size=N")
    a = p.parse_args(argv)
    if a.serve == "trivial":
        return serve_trivial(a.port)
    if a.serve == "cnnviz":
        return serve_cnnviz(a.port, a.poll_ms, a.predict_batch)
    global PREDICT_BATCH
    PREDICT_BATCH = a.predict_batch
    if a.stages:
        res = stages_report(a.runs)
    elif a.fetch:
        from latency_fetch import fetch_report

        res = fetch_report(server, test_images, a.runs)
    elif a.poll:
        res = {"poll": poll_report([float(v) for v in a.poll.split(",")], a.runs, a.idle)}
    else:
        res = latency_report(a.runs, bursts=not a.no_burst, browser=a.browser)
    text = res.pop("text", None)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1) if a.json or not text else text)
    if shutil.get_terminal_size().columns and not a.json:
        print("(a shared machine: compare the ratios, measured in the same run, not the milliseconds)")


if __name__ == "__main__":
    main()
