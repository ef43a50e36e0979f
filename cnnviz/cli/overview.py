"""`python -m cnnviz overview`: one image through every stage of a checkpoint -> the overview PNG (and a GIF of the
steps, and one unit's arithmetic), as the web app's Whole network tab shows them."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USER_ERROR = 2


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the `overview` subcommand on `sub` (the result of ArgumentParser.add_subparsers)."""
    o = sub.add_parser("overview", help="every stage of one image's forward pass as one picture; one unit's arithmetic")
    o.add_argument("--checkpoint", required=True, help="checkpoint name or path to a .pt file")
    o.add_argument("--image", required=True, help="image file (PNG, JPEG, ...)")
    o.add_argument("--out", default="overview.png", help="PNG file to write")
    o.add_argument("--gif", default=None, help="also write the step-through as an animated GIF here")
    o.add_argument("--unit", default=None, metavar="STAGE:CHANNEL[:ROW:COL]",
                   help="also explain one unit, e.g. features.1:2:8:7 (a fully connected unit: classifier.2:5)")
    o.add_argument("--unit-out", default="unit.png", help="PNG file for --unit")
    return o


def _unit(spec: str) -> tuple[str, int, int | None, int | None]:
    from ..lecture.errors import LectureError

    parts = spec.split(":")
    try:
        numbers = [int(p) for p in parts[1:]]
    except ValueError:
        numbers = []
    if len(parts) not in (2, 4) or len(numbers) != len(parts) - 1:
        raise LectureError(f"--unit takes STAGE:CHANNEL or STAGE:CHANNEL:ROW:COL with whole numbers, got {spec!r}")
    return parts[0], numbers[0], *(numbers[1:] or [None, None])


def run(args: argparse.Namespace) -> int:
    """Execute `overview`; a user mistake prints one `error:` line and returns 2."""
    from ..explain.hooks import LayerError
    from ..explain.layers import ExplainError
    from ..images import ImageError
    from ..lecture.forward_pass import overview
    from ..lecture.unit_arithmetic import explain_unit
    from ..render.forward_pass_picture import forward_pass_gif
    from ..store.checkpoints import CheckpointError, load_checkpoint

    try:
        loaded = load_checkpoint(args.checkpoint)
        fp, pic = overview(loaded, args.image)
        written = [_write(Path(args.out), lambda f: pic.image.save(f, format="PNG"))]
        if args.gif:
            written.append(_write(Path(args.gif), lambda f: f.write(forward_pass_gif(pic))))
        unit = None
        if args.unit:
            unit, picture = explain_unit(loaded, args.image, *_unit(args.unit))
            written.append(_write(Path(args.unit_out), lambda f: picture.save(f, format="PNG")))
    except (ImageError, CheckpointError, ExplainError, LayerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(pic.title)
    for s, v in zip(fp.stages, fp.values):
        print(f"  {s.name:<16}{s.kind:<11}{s.detail:<30}{'×'.join(map(str, v.shape))}")
    if unit is not None:
        print(unit.markdown.replace("**", "").replace("`", ""))
    print("wrote " + ", ".join(map(str, written)))
    return 0


def _write(path: Path, write) -> Path:
    from ..explain.layers import ExplainError

    try:
        with open(path, "wb") as f:
            write(f)
    except OSError as exc:
        raise ExplainError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


__all__ = ["add_parser", "run"]
