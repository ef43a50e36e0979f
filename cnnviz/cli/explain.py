"""`python -m cnnviz explain`: one image, one checkpoint, one or all attribution methods -> a slide-ready PNG."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USER_ERROR = 2
METHOD_CHOICES = ("gradcam", "guided-gradcam", "ig", "saliency", "occlusion", "guided-backprop", "all")
MIN_DPI, MAX_DPI = 20, 300  # 300 dpi: a 5,600 px wide row of all methods; 100000 asked for many gigabytes


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the `explain` subcommand on `sub` (the result of ArgumentParser.add_subparsers)."""
    e = sub.add_parser("explain", help="Grad-CAM and other attributions for one image, written as a figure")
    e.add_argument("--checkpoint", required=True, help="checkpoint name or path to a .pt file")
    e.add_argument("--image", required=True, help="image file (PNG, JPEG, ...)")
    e.add_argument("--method", default="gradcam", choices=METHOD_CHOICES)
    e.add_argument("--layer", default=None, help="layer name for Grad-CAM (default: the model's usual one)")
    e.add_argument("--target", default=None, help="class index or name to explain (default: the predicted class)")
    e.add_argument("--out", default="explanation.png", help="PNG file to write")
    e.add_argument("--dpi", type=int, default=120, help=f"resolution of the figure, {MIN_DPI} to {MAX_DPI}")
    return e


def explain_to_file(checkpoint: str, image: str, method: str, layer: str | None, target: str | None,
                    out: str | Path, dpi: int = 120) -> tuple[Path, str]:
    """Load, explain and write the figure; returns the path and a one-line summary (raises on bad input)."""
    from ..explain.attributions import METHODS
    from ..explain.layers import ExplainError
    from ..explain.pipeline import explain_image
    from ..render.explain_pictures import explanation_png
    from ..store.checkpoints import load_checkpoint

    if method != "all" and method not in METHODS:
        raise ExplainError(f"unknown method {method!r}; choose one of: {', '.join(METHOD_CHOICES)}")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not MIN_DPI <= dpi <= MAX_DPI:
        raise ExplainError(f"dpi must be a whole number from {MIN_DPI} to {MAX_DPI}, got {dpi!r}")
    loaded = load_checkpoint(checkpoint)
    exp = explain_image(loaded, image, layer, target, METHODS if method == "all" else (method,))
    out = Path(out)
    try:
        out.write_bytes(explanation_png(exp, title=loaded.name, dpi=dpi))
    except OSError as exc:
        raise ExplainError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out, "\n".join([f"wrote {out}: {exp.headline}"] + [f"warning: {n}" for n in exp.warnings])


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
