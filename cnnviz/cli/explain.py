"""`python -m cnnviz explain`: one image, one checkpoint, one or all attribution methods -> a slide-ready PNG."""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

EXIT_USER_ERROR = 2
METHOD_CHOICES = ("gradcam", "guided-gradcam", "ig", "saliency", "occlusion", "guided-backprop", "all")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the `explain` subcommand on `sub` (the result of ArgumentParser.add_subparsers)."""
    e = sub.add_parser("explain", help="Grad-CAM and other attributions for one image, written as a figure")
    e.add_argument("--checkpoint", required=True, help="checkpoint name or path to a .pt file")
    e.add_argument("--image", required=True, help="image file (PNG, JPEG, ...)")
    e.add_argument("--method", default="gradcam", choices=METHOD_CHOICES)
    e.add_argument("--layer", default=None, help="layer name for Grad-CAM (default: the model's usual one)")
    e.add_argument("--target", default=None, help="class index or name to explain (default: the predicted class)")
    e.add_argument("--out", default="explanation.png", help="PNG file to write")
    e.add_argument("--dpi", type=int, default=120)
    return e


def explain_to_file(checkpoint: str, image: str, method: str, layer: str | None, target: str | None,
                    out: str | Path, dpi: int = 120) -> tuple[Path, str]:
    """Load, explain and write the figure; returns the path and a one-line summary (raises on bad input)."""
    from ..explain.attributions import METHODS, attribute_all
    from ..explain.layers import ExplainError, default_layer
    from ..explain.pipeline import prepare
    from ..explain.targets import parse_target
    from ..render.figures import figure_to_png, methods_figure
    from ..store.checkpoints import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    meta = loaded.meta
    x, view = prepare(image, meta.spec)
    chosen_layer = layer or default_layer(loaded.model, meta.arch)
    methods = METHODS if method == "all" else (method,)
    if method != "all" and method not in METHODS:
        raise ExplainError(f"unknown method {method!r}; choose one of: {', '.join(METHOD_CHOICES)}")
    with warnings.catch_warnings():  # the CLI prints the result's own warning lines instead of Python's
        warnings.simplefilter("ignore")
        results = attribute_all(loaded.model, x, parse_target(target, meta.class_names), chosen_layer, methods)
    fig = methods_figure(view, results, meta.class_names, title=loaded.name)
    out = Path(out)
    try:
        out.write_bytes(figure_to_png(fig, dpi=dpi))
    except OSError as exc:
        raise ExplainError(f"cannot write {out}: {exc.strerror or exc}") from None
    first = next(iter(results.values()))
    pred = int(first.probs.argmax())
    notes = sorted({w for r in results.values() for w in r.warnings})
    summary = (f"wrote {out}: predicted {meta.class_names[pred]} ({first.probs[pred]:.1%}), explained "
               f"{meta.class_names[first.target]} at layer {chosen_layer}")
    return out, "\n".join([summary] + [f"warning: {n}" for n in notes])


def run(args: argparse.Namespace) -> int:
    """Execute `explain` from parsed arguments; a user mistake prints one `error:` line and returns 2."""
    from ..explain.hooks import LayerError
    from ..explain.layers import ExplainError
    from ..images import ImageError
    from ..store.checkpoints import CheckpointError

    try:
        _, summary = explain_to_file(args.checkpoint, args.image, args.method, args.layer, args.target, args.out,
                                     getattr(args, "dpi", 120))
    except (ImageError, CheckpointError, ExplainError, LayerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(summary)
    return 0


__all__ = ["add_parser", "explain_to_file", "run"]
