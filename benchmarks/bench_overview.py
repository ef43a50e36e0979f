"""The whole-network overview (issue 18): what a lecturer waits for, end to end through gradio_client, as a ratio to a
trivial Gradio round trip measured in the same run, and where the server's time goes.

Two servers start side by side on loopback, each in its own process: a trivial Gradio app (image in, image out: the
floor any Gradio app pays) and cnnviz (`build_demo()`, its queue settings and launch options, fresh folders). Cases:
LeNet-5 (the shipped Fashion-MNIST checkpoint, 28 px), TinyVGG (the shipped shapes checkpoint, 32 px) and ResNet-18 at
32 px (a checkpoint with untrained weights on the shapes classes: the time does not depend on the weights).
Targets (issue 18): LeNet-5 and TinyVGG under 300 ms end to end, ResNet-18 at 32 px under 1 s, on 2 CPU cores.

    python benchmarks/bench_overview.py [--runs 10] [--json]

On a shared machine other work moves every figure: read the ratios (same run, same load), not the milliseconds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from subprocess_server import running_server  # this folder is on sys.path when run as a script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
for _var in ("NO_PROXY", "no_proxy"):  # loopback traffic must never go through a proxy
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var), "localhost", "127.0.0.1", "::1"]))
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

RESNET = "resnet18-shapes-untrained"
# (label, checkpoint, dataset of its test images, target ms)
CASES = [("LeNet-5 28 px", "lenet5-fashion-mnist", "fashion-mnist", 300), ("TinyVGG 32 px", "tinyvgg-shapes", "shapes", 300),
         ("ResNet-18 32 px", RESNET, "shapes", 1000)]


def serve(kind: str, port: int) -> None:
    """Run one server until killed: `trivial` (image in, image out) or `cnnviz`."""
    import gradio as gr

    if kind == "trivial":
        with gr.Blocks(analytics_enabled=False) as demo:
            image, out = gr.Image(type="pil"), gr.Image(format="png")
            gr.Button("Go").click(lambda im: im, image, out, api_name="predict", concurrency_limit=4)
        demo.queue(max_size=64).launch(server_port=port, quiet=True)
        return
    import cnnviz.ui as ui

    ui.configure_queue(ui.build_demo(), max_size=64).launch(**ui.launch_options(port=port))


def untrained_resnet(folder: Path) -> None:
    """ResNet-18 at 32 px on the shapes classes, weights as initialised, saved the way training saves a model."""
    from cnnviz.models import get_model
    from cnnviz.store.checkpoints import build_meta, load_checkpoint, save_checkpoint
    from cnnviz.store.paths import shipped_checkpoints_dir

    ref = load_checkpoint(shipped_checkpoints_dir() / "tinyvgg-shapes.pt").meta
    model = get_model("resnet18", ref.in_channels, ref.num_classes, ref.input_size)
    meta = build_meta(arch="resnet18", dataset=ref.dataset, class_names=ref.class_names, in_channels=ref.in_channels,
                      input_size=ref.input_size, mean=ref.mean, std=ref.std)
    save_checkpoint(model, meta, folder / f"{RESNET}.pt")


@contextmanager
def server(kind: str) -> Iterator[str]:
    """Start this file with --serve KIND on a free port in fresh folders; yield its URL; always stop it."""
    with tempfile.TemporaryDirectory(prefix=f"cnnviz-overview-{kind}-") as tmp:
        (Path(tmp) / "checkpoints").mkdir()
        if kind == "cnnviz":
            untrained_resnet(Path(tmp) / "checkpoints")
        env = {**os.environ, "CNNVIZ_CHECKPOINTS": f"{tmp}/checkpoints", "CNNVIZ_RUNS": f"{tmp}/runs",
               "GRADIO_TEMP_DIR": f"{tmp}/gradio", "CNNVIZ_HOME": tmp}
        with running_server([sys.executable, __file__, "--serve", kind], env, Path(tmp), kind, cwd=REPO) as (url, _):
            yield url


def images(folder: Path, dataset: str, n: int) -> list[Path]:
    """n real test images of `dataset` as PNG files (a different one per request)."""
    from cnnviz.examples import test_example

    paths = []
    for i in range(n):
        paths.append(folder / f"{dataset}-{i}.png")
        test_example(dataset, index=i).image.save(paths[-1])
    return paths


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t0)


def end_to_end(runs: int) -> dict:
    """Medians through gradio_client (answers downloaded, as a browser fetches them). The calls are interleaved round
    by round (trivial, then each case), so load that comes and goes hits every figure alike."""
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as tmp, server("trivial") as trivial_url, server("cnnviz") as url:
        trivial, app = Client(trivial_url, verbose=False), Client(url, verbose=False)
        pngs = {d: images(Path(tmp), d, runs + 1) for d in {"shapes", *(c[2] for c in CASES)}}
        calls = {"trivial Gradio round trip": lambda i: trivial.predict(handle_file(pngs["shapes"][i]), api_name="/predict")}
        for label, ckpt, dataset, _ in CASES:
            calls[f"{label} /overview"] = lambda i, c=ckpt, d=dataset: app.predict(c, handle_file(pngs[d][i]),
                                                                                  api_name="/overview")
            calls[f"{label} /unit"] = lambda i, c=ckpt, d=dataset: app.predict(c, handle_file(pngs[d][i]), _first_conv(c),
                                                                              0, 3, 3, api_name="/unit")
        for fn in calls.values():  # warm-up: first model load, imports
            fn(runs)
        times: dict[str, list[float]] = {name: [] for name in calls}
        for i in range(runs):
            for name, fn in calls.items():
                times[name].append(timed(lambda fn=fn, i=i: fn(i)))
        trivial.close()
        app.close()
    base = statistics.median(times["trivial Gradio round trip"])
    out: dict = {"trivial Gradio round trip": round(base, 1)}
    for label, _, _, target in CASES:
        ms = statistics.median(times[f"{label} /overview"])
        out[label] = {"overview_ms": round(ms, 1), "target_ms": target, "ratio_to_trivial": round(ms / base, 2),
                      "unit_ms": round(statistics.median(times[f"{label} /unit"]), 1)}
    return out


def _first_conv(checkpoint: str) -> str:
    return "conv1" if checkpoint == RESNET else "features.0"


def stages(runs: int) -> dict:
    """In-process, per case: forward pass with capture, the picture, its PNG encode (median ms)."""
    import torch

    from cnnviz.examples import test_example
    from cnnviz.lecture.forward_pass import forward_pass
    from cnnviz.render.forward_pass_picture import forward_pass_gif, forward_pass_picture
    from cnnviz.store.checkpoints import load_checkpoint
    from cnnviz.store.paths import shipped_checkpoints_dir
    from cnnviz.ui import gradio_fixes

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        untrained_resnet(Path(tmp))
        for label, ckpt, dataset, _ in CASES:
            path = Path(tmp) / f"{RESNET}.pt" if ckpt == RESNET else shipped_checkpoints_dir() / f"{ckpt}.pt"
            loaded = load_checkpoint(path)
            img = test_example(dataset, index=0).image
            fp = forward_pass(loaded, img)
            pic = forward_pass_picture(fp)

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            one = _ms(forward_pass, runs, loaded, img)
            torch.set_num_threads(threads)
            out[label] = {"forward pass (capture every stage)": _ms(forward_pass, runs, loaded, img),
                          "forward pass, 1 torch thread": one,
                          "picture": _ms(forward_pass_picture, runs, fp),
                          "PNG encode (the app's)": _ms(gradio_fixes.encode, runs, pic.image, "png"),
                          "GIF (every step)": _ms(forward_pass_gif, runs, pic),
                          "picture size": list(pic.image.size), "torch threads": torch.get_num_threads()}
    return out


def _ms(fn: Callable, runs: int, *args: object) -> float:
    """Median ms of fn(*args) after one warm-up call."""
    fn(*args)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times), 1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.add_argument("--serve", choices=["trivial", "cnnviz"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return
    report = {"in-process stages (ms)": stages(args.runs), "end to end through gradio_client (ms)": end_to_end(args.runs)}
    print(json.dumps(report, indent=2) if args.json else _text(report))


def _text(report: dict) -> str:
    lines = []
    for section, rows in report.items():
        lines.append(section)
        for name, value in rows.items():
            lines.append(f"  {name}: {value if not isinstance(value, float) else round(value, 1)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
