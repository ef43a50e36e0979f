"""`python -m cnnviz fetch-weights NAME`: download torchvision's ImageNet weights into the torch hub cache (progress bar,
hash checked), where every tab and command then finds them; on a machine without a network it says what to copy where."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the `fetch-weights` subcommand on `sub`."""
    f = sub.add_parser("fetch-weights", help="download ImageNet weights (imagenet-resnet18, ...) into the torch hub "
                       "cache (TORCH_HOME)")
    f.add_argument("names", nargs="+", metavar="NAME", help="an ImageNet network (imagenet-alexnet, imagenet-vgg16, "
                   "imagenet-resnet18, imagenet-resnet50), or 'all'")
    f.add_argument("--check", action="store_true", help="only say whether each file is cached (no download)")
    return f


def run(args: argparse.Namespace) -> int:
    """Fetch (or check) each named network's weights; the first failure ends the command with the remedies."""
    from ..store.hub_weights import fetch_weights, hub_names, is_cached, size_mb, weights_file

    names = hub_names() if args.names == ["all"] else list(dict.fromkeys(args.names))
    for name in names:
        weights_file(name)  # KeyError "unknown ImageNet network ...; choose one of" before any download starts
    for name in names:
        if args.check:
            print(f"{name:<20}{'cached' if is_cached(name) else 'needs download':<16}{weights_file(name)}")
            continue
        if not is_cached(name):
            print(f"{name}: downloading {size_mb(name):.0f} MB to {weights_file(name)}", flush=True)
        print(f"{name}: {fetch_weights(name, progress=True)}")
    return 0
