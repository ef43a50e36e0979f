"""Explain latency of a 224 px ImageNet network on a real photo, on the CPU: what a student waits for.

Two measurements in one run, on the same machine at the same time (the machine is shared, so compare ratios):
- core: photo file -> explain_image (the weights' transforms, Grad-CAM at layer4), its overlay, and that layer's
  feature-map grid (64 maps, the tab's default);
- end to end: the launched cnnviz app's /explain through gradio_client (no extra attribution methods, as a click
  first answers), against a bare Gradio app (image in, label and image out) started in the same process.
Weights are random values saved under torchvision's real file name in a temp TORCH_HOME: latency does not depend on
their values, and no real weights are needed. Each request gets a photo not seen before, so no result cache helps.

    python benchmarks/bench_imagenet_explain.py [--arch imagenet-resnet50] [--runs 8] [--threads 2] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _photos(folder: Path, n: int) -> list[Path]:
    """n distinct photo files (the shipped photos, mirrored and shifted), so every request is new to any cache."""
    from cnnviz.examples import photo_examples

    base = [Image.open(p).convert("RGB") for p, _ in photo_examples()]
    out = []
    for i in range(n):
        img = base[i % len(base)]
        img = ImageOps.mirror(img) if (i // len(base)) % 2 else img
        img = img.crop((i // len(base), 0, img.width, img.height))
        out.append(folder / f"photo-{i}.jpg")
        img.save(out[-1], quality=90)
    return out


def _seed_weights(torch_home: Path, arch: str) -> None:
    from cnnviz.models import get_model
    from cnnviz.store.hub_weights import weights_file

    os.environ["TORCH_HOME"] = str(torch_home)
    path = weights_file(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(get_model(arch, 3, 1000).state_dict(), path)


def core(arch: str, photos: list[Path]) -> list[float]:
    from cnnviz.explain.pipeline import explain_image
    from cnnviz.render.explain_pictures import cam_overlay, feature_map_view
    from cnnviz.store.checkpoints import load_checkpoint

    loaded = load_checkpoint(arch)
    explain_image(loaded, photos[0])  # warm-up
    times = []
    for p in photos[1:]:
        t0 = time.perf_counter()
        exp = explain_image(loaded, p)
        cam_overlay(exp)
        feature_map_view(loaded.model, exp.x, exp.layer, "mean", 64)  # the tab's default: 64 of layer4's 2048 maps
        times.append(time.perf_counter() - t0)
    return times


def _bare_app():
    import gradio as gr

    def echo(image):
        return {"a": 1.0}, image

    with gr.Blocks() as demo:
        img, label, out = gr.Image(type="pil"), gr.Label(), gr.Image(format="png")
        gr.Button().click(echo, img, [label, out], api_name="echo")
    return demo


def end_to_end(arch: str, photos: list[Path], tmp: Path) -> tuple[list[float], list[float]]:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ["CNNVIZ_HOME"] = str(tmp / "home")
    from gradio_client import Client, handle_file

    from cnnviz.ui import build_demo, configure_queue, launch_options

    demo = configure_queue(build_demo(), max_size=20)
    demo.launch(prevent_thread_lock=True, **{**launch_options(port=None), "server_port": None})
    bare = _bare_app()
    bare.launch(prevent_thread_lock=True, quiet=True)
    try:
        app, base = Client(demo.local_url, verbose=False), Client(bare.local_url, verbose=False)

        def explain(p: Path) -> None:
            app.predict(checkpoint=arch, image=handle_file(str(p)), layer="", target="predicted", opacity=0.5,
                        methods=[], sort="mean", max_maps=64, api_name="/explain")

        explain(photos[0])  # warm-up: model load, oneDNN primitives
        base.predict(handle_file(str(photos[0])), api_name="/echo")
        ours, bare_t = [], []
        for p in photos[1:]:
            t0 = time.perf_counter()
            explain(p)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            base.predict(handle_file(str(p)), api_name="/echo")
            bare_t.append(time.perf_counter() - t0)
        app.close()
        base.close()
        return ours, bare_t
    finally:
        demo.close()
        bare.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="imagenet-resnet50")
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--core-only", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        _seed_weights(tmp / "torch", args.arch)
        photos = _photos(tmp, 2 * args.runs + 2)
        c = core(args.arch, photos[: args.runs + 1])
        result = {"arch": args.arch, "threads": args.threads, "core_median_s": statistics.median(c)}
        if not args.core_only:
            ours, bare = end_to_end(args.arch, photos[args.runs + 1:], tmp)
            result.update(e2e_median_s=statistics.median(ours), e2e_max_s=max(ours),
                          bare_gradio_median_s=statistics.median(bare),
                          ratio_to_bare=statistics.median(ours) / statistics.median(bare))
    print(json.dumps(result) if args.json else "\n".join(f"{k:<22}{v:.3f}" if isinstance(v, float) else f"{k:<22}{v}"
                                                         for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
