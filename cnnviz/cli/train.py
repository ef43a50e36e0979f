"""`python -m cnnviz train`: a preset or explicit options; a progress bar on a terminal, JSON lines with --json.

Under torchrun (`torchrun --nproc-per-node N -m cnnviz train ...`, also --nnodes/--rdzv-endpoint across machines)
every process is one rank of one DDP run (train.distributed); rank 0 alone prints and saves.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from ..store.atomic import atomic_copy
from ..store.checkpoints import CheckpointError, checkpoint_path
from ..store.disk import write_problem
from ..train.config import TrainConfig
from ..train.distributed import GroupSpec, is_peer_lost, spec_from_environment
from ..train.engine import fit
from ..train.events import EpochEnded, Failed, Finished, Progress, RunStarted, Stopped
from ..train.presets import get_preset

ENDED_FROM_OUTSIDE = ("error: this run was ended from outside: torchrun stops every process of a run when one of them "
                      "fails or when it is interrupted, and its report names the rank that failed and why; fix that and "
                      "start the run again")

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
    t.add_argument("--force", action="store_true", help="let --out replace an existing checkpoint of that name")
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
    """Train, showing progress; 0 when finished and saved, 1 when stopped or the checkpoint could not be saved (the
    results are still printed), 2 on failure."""
    spec = spec_from_environment()  # torchrun's process group, or None
    if spec is not None and spec.rank != 0:
        return _other_rank(config_from_args(args), spec)
    cfg = config_from_args(args)
    ended = _say_when_ended(spec)
    out = checkpoint_path(args.out) if args.out else None  # validate the name before training
    force = getattr(args, "force", False)
    if out is not None and out.exists() and not force:  # e.g. a shipped checkpoint: 96% would become 8%
        raise CheckpointError(f"{out} already exists; choose another --out name, or add --force to replace it")
    if cfg.dataset == "folder" and cfg.folder_path:
        _check_readable(Path(cfg.folder_path).expanduser())
    bar = None
    for ev in fit(cfg, group=spec):
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
            ended.append(ev)
            if bar is not None:
                bar.close()
            return _finish(ev, _unless_taken(out, force, ev), quiet=args.json)
    return 1


def _other_rank(cfg: TrainConfig, spec: GroupSpec) -> int:
    """A rank other than 0 trains its share silently (rank 0 reports); 0 finished, 1 stopped, 2 failed. Its own
    failure (not the loss of another rank, which rank 0 reports) is one line naming the rank."""
    _say_when_ended(spec)
    for ev in fit(cfg, group=spec):
        if isinstance(ev, Failed):
            if ev.run_id and not is_peer_lost(ev.message):  # a bad config or missing data: rank 0 says it once
                print(f"rank {spec.rank}: error: {ev.message}", file=sys.stderr)
            return 2
        if isinstance(ev, (Finished, Stopped)):
            return 0 if isinstance(ev, Finished) else 1
    return 1


def _say_when_ended(spec: GroupSpec | None) -> list:
    """Under torchrun: when it ends this process (SIGTERM: another rank failed, or Ctrl-C), exit at once, rank 0 with
    one line saying why, unless it already printed the run's end. Returns the list that records that end."""
    ended: list = []
    if spec is None or not spec.from_env:
        return ended

    def on_term(signum, frame):
        if spec.rank == 0 and not ended:
            print(ENDED_FROM_OUTSIDE, file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(128 + signum)  # now: the other ranks are gone, and a collective would only wait for them

    signal.signal(signal.SIGTERM, on_term)
    return ended


def _check_readable(folder: Path) -> None:
    """Fail before loading (which scans the whole tree) when the folder itself cannot be listed."""
    if folder.is_dir() and not os.access(folder, os.R_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "Permission denied", str(folder))


def _unless_taken(out: Path | None, force: bool, ev) -> Path | None:
    """`out`, unless a checkpoint of that name appeared while training (then the run folder keeps the only copy)."""
    if out is not None and out.exists() and not force and not isinstance(ev, Failed):
        print(f"warning: {out} appeared while training; not replaced (use --force)", file=sys.stderr)
        return None
    return out


def _finish(ev, out: Path | None, quiet: bool) -> int:
    if isinstance(ev, Failed):
        print(f"error: {ev.message}", file=sys.stderr)
        return 2
    copied = _copy_out(ev.checkpoint, out) if ev.checkpoint and out is not None else None
    if not quiet:
        if isinstance(ev, Finished):
            print(f"test accuracy {ev.test_acc:.4f} in {ev.seconds:.1f} s", file=sys.stderr)
        print(f"checkpoint: {copied or ev.checkpoint or 'none saved'}")
    if isinstance(ev, Finished) and ev.warning:  # stderr even with --json: the JSON lines on stdout stay parseable
        print(f"warning: {ev.warning}", file=sys.stderr)
    kept = ev.checkpoint is not None and (out is None or copied is not None)
    return 0 if isinstance(ev, Finished) and kept else 1


def _copy_out(checkpoint: str, out: Path) -> Path | None:
    """Copy the run's checkpoint to checkpoints/OUT.pt; None, with a warning, when it cannot be written."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return atomic_copy(checkpoint, out)  # checkpoints/ never holds half a file
    except OSError as exc:
        print(f"warning: the checkpoint could not be copied to {out} ({write_problem(exc)}); it is still in "
              f"{checkpoint}", file=sys.stderr)
        return None
