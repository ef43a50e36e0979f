"""`python -m cnnviz train`: a preset or explicit options; a progress bar on a terminal, JSON lines with --json."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from ..store.atomic import atomic_copy
from ..store.checkpoints import checkpoint_path
from ..train.config import TrainConfig
from ..train.engine import fit
from ..train.events import EpochEnded, Failed, Finished, Progress, RunStarted, Stopped
from ..train.presets import get_preset

_OPTIONS = {  # flag -> (config field, type)
    "--arch": ("arch", str), "--dataset": ("dataset", str), "--subset": ("subset", int), "--epochs": ("epochs", int),
    "--batch-size": ("batch_size", int), "--lr": ("lr", float), "--optimizer": ("optimizer", str),
    "--schedule": ("schedule", str), "--device": ("device", str), "--seed": ("seed", int),
    "--data-dir": ("data_dir", str), "--weight-decay": ("weight_decay", float), "--momentum": ("momentum", float),
    "--label-smoothing": ("label_smoothing", float), "--input-size": ("input_size", int), "--folder": ("folder_path", str),
    "--init": ("init", str),
}


def add_parser(sub) -> None:
    """The `train` subcommand and its flags."""
    t = sub.add_parser("train", help="train a model (a preset or explicit options)")
    t.add_argument("--preset", default=None, help="a named recipe; explicit options override its settings")
    for flag, (_, typ) in _OPTIONS.items():
        t.add_argument(flag, type=typ, default=None)
    t.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None)
    t.add_argument("--out", default=None, help="also save the checkpoint as checkpoints/OUT.pt")
    t.add_argument("--json", action="store_true", help="one JSON object per event on stdout")


def config_from_args(args) -> TrainConfig:
    """Preset (or defaults) overridden by every option given on the command line."""
    cfg = get_preset(args.preset).config if args.preset else TrainConfig()
    changes = {field: getattr(args, flag[2:].replace("-", "_")) for flag, (field, _) in _OPTIONS.items()}
    changes = {k: v for k, v in changes.items() if v is not None}
    if args.augment is not None:
        changes["augment"] = args.augment
    return replace(cfg, **changes)


def run(args) -> int:
    """Train, showing progress; 0 when finished, 1 when stopped, 2 on failure."""
    cfg = config_from_args(args)
    out = checkpoint_path(args.out) if args.out else None  # validate the name before training
    bar = None
    for ev in fit(cfg):
        if args.json:
            print(json.dumps(ev.to_dict()), flush=True)
        elif isinstance(ev, RunStarted):
            from tqdm import tqdm

            print(f"run {ev.run_id}: {cfg.arch} on {cfg.dataset} ({ev.num_train} train / {ev.num_test} test images, "
                  f"{ev.params:,} parameters, {ev.device})", file=sys.stderr)
            bar = tqdm(total=ev.total_steps, unit="step", file=sys.stderr, disable=None)
        elif isinstance(ev, Progress) and bar is not None:
            bar.update(ev.step - bar.n)
            bar.set_postfix(epoch=ev.epoch, loss=f"{ev.loss:.3f}", acc=f"{ev.acc:.3f}", img_s=f"{ev.images_per_sec:,.0f}")
        elif isinstance(ev, EpochEnded) and bar is not None:
            bar.write(f"epoch {ev.epoch}: train loss {ev.train_loss:.4f} acc {ev.train_acc:.4f} | "
                      f"test loss {ev.val_loss:.4f} acc {ev.val_acc:.4f} | {ev.train_seconds:.1f} s")
        if isinstance(ev, (Finished, Stopped, Failed)):
            if bar is not None:
                bar.close()
            return _finish(ev, out, quiet=args.json)
    return 1


def _finish(ev, out: Path | None, quiet: bool) -> int:
    if isinstance(ev, Failed):
        print(f"error: {ev.message}", file=sys.stderr)
        return 2
    if ev.checkpoint and out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_copy(ev.checkpoint, out)  # checkpoints/ never holds half a file
    if not quiet:
        if isinstance(ev, Finished):
            print(f"test accuracy {ev.test_acc:.4f} in {ev.seconds:.1f} s", file=sys.stderr)
            if ev.warning:
                print(f"warning: {ev.warning}", file=sys.stderr)
        print(f"checkpoint: {out or ev.checkpoint}")
    return 0 if isinstance(ev, Finished) else 1
