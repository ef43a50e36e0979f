"""`python -m cnnviz import FILE --arch NAME`: a cnnviz checkpoint, or a plain state_dict of a registered architecture,
checked and saved as checkpoints/<name>.pt, where every command and the web app's menus find it."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the `import` subcommand on `sub`."""
    i = sub.add_parser("import", help="your own .pt (a state_dict or a cnnviz checkpoint) -> checkpoints/<name>.pt")
    i.add_argument("file", help="the .pt/.pth file: torch.save(model.state_dict(), ...) or a cnnviz checkpoint")
    i.add_argument("--arch", default=None, help="registered architecture the weights are for (see `list`); needed "
                   "for a state_dict")
    i.add_argument("--dataset", default=None, help="dataset it was trained on (sets classes, channels, normalisation); "
                   "ImageNet networks default to ImageNet's 1000 classes")
    i.add_argument("--classes", default=None, help="class names, comma-separated, in output order (instead of, or "
                   "renaming, the dataset's)")
    i.add_argument("--input-size", type=int, default=None, help="input side in px it was trained at")
    i.add_argument("--name", default=None, help="checkpoint name (default: the file name)")
    i.add_argument("--force", action="store_true", help="replace a checkpoint of the same name")
    return i


def run(args: argparse.Namespace) -> int:
    from ..store.user_models import import_to_checkpoints

    classes = [c for c in args.classes.split(",")] if args.classes else None
    done = import_to_checkpoints(args.file, args.name, overwrite=args.force, arch=args.arch, dataset=args.dataset,
                                 class_names=classes, input_size=args.input_size)
    print(f"imported {done.summary}\n  -> {done.path}\n  use it with --checkpoint {done.name}")
    return 0
