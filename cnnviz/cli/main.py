"""python -m cnnviz list|summary|train|eval|predict|explain|overview|fetch-weights|import|bench|serve — errors are one
line and a non-zero exit."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a Unix tool whose reader went away
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 8, 512  # as TrainConfig allows: 100000 px asked for a 40 GB tensor


def _parser() -> argparse.ArgumentParser:
    from . import explain as cli_explain
    from . import import_model as cli_import
    from . import overview as cli_overview
    from . import train as cli_train
    from . import weights as cli_weights

    p = argparse.ArgumentParser(prog="python -m cnnviz", description="Train, inspect and explain classic CNNs.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="models, datasets (with offline availability), presets and checkpoints") \
        .add_argument("--data-dir", default=None)
    s = sub.add_parser("summary", help="per-layer table: output shape, parameters, FLOPs, receptive field")
    s.add_argument("model")
    s.add_argument("--dataset", default="fashion-mnist", help="sets channels and input size")
    s.add_argument("--input-size", type=int, default=None)
    s.add_argument("--json", action="store_true")
    cli_train.add_parser(sub)
    e = sub.add_parser("eval", help="test accuracy and confusion matrix of a checkpoint")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data-dir", default=None)
    e.add_argument("--json", action="store_true")
    pr = sub.add_parser("predict", help="top-k classes for one image")
    pr.add_argument("--checkpoint", required=True)
    pr.add_argument("--image", required=True)
    pr.add_argument("--topk", type=int, default=5)
    pr.add_argument("--json", action="store_true")
    cli_explain.add_parser(sub)
    cli_overview.add_parser(sub)
    cli_weights.add_parser(sub)
    cli_import.add_parser(sub)
    b = sub.add_parser("bench", help="engine throughput against a plain PyTorch loop, as ratios")
    b.add_argument("--quick", action="store_true", help="fewer batches (a smoke run)")
    b.add_argument("--device", default="auto")
    b.add_argument("--json", action="store_true")
    b.add_argument("--repeat", type=int, default=1, help="alternate plain loop and engine N times, report medians")
    # Listed here; main() hands `serve ...` to serve.main before this parser, with its own flags and --help.
    sub.add_parser("serve", help="start the web app (as `python app.py`); `serve --help` lists its flags",
                   add_help=False)
    return p


def cmd_list(args) -> int:
    """Models, datasets, presets, checkpoints and runs; what cannot be read is named with the reason, not hidden."""
    from ..data import availability, get_dataset_info, list_datasets
    from ..models import get_model_info, list_models
    from ..store.checkpoints import list_checkpoints
    from ..store.hub_weights import is_cached
    from ..store.run_reader import list_runs
    from ..train.presets import PRESETS

    def hub_state(name: str) -> str:
        return "cached" if is_cached(name) else f"needs download: python -m cnnviz fetch-weights {name}"

    print("Models:")
    for name in list_models():
        i = get_model_info(name)
        extra = f" (ImageNet weights: {hub_state(name)})" if i.imagenet else ""
        print(f"  {name:<20}{i.title} [{i.year}]{extra}")
    print("Datasets:")
    for name in list_datasets():
        i = get_dataset_info(name)
        print(f"  {name:<20}{availability(name, args.data_dir):<22}{i.title}")
    print("Presets:")
    for p in PRESETS.values():
        print(f"  {p.name:<28}{p.config.arch} on {p.config.dataset}, {p.config.epochs} epochs")
    checkpoints, runs = list_checkpoints(), list_runs()
    print("Checkpoints:")
    for c in checkpoints:
        acc = f"{c.test_acc:.3f}" if c.test_acc is not None else "-"
        print(f"  {c.name:<36}{c.arch} on {c.dataset}, test accuracy {acc}")
    print("Runs:")
    for r in runs:
        print(f"  {r.label}")
    if checkpoints.skipped or runs.skipped:
        print("Left out because they cannot be read (fix or delete them):")
        for kind, s in [("checkpoint", s) for s in checkpoints.skipped] + [("run", s) for s in runs.skipped]:
            print(f"  {kind} {s.name}: {s.reason} [{s.path}]")
    return 0


def cmd_summary(args) -> int:
    from dataclasses import asdict

    from ..data import get_dataset_info
    from ..lecture.summary import summarize
    from ..models import get_model, get_model_info, input_shape

    if args.input_size is not None and not MIN_INPUT_SIZE <= args.input_size <= MAX_INPUT_SIZE:
        raise ValueError(f"--input-size must be from {MIN_INPUT_SIZE} to {MAX_INPUT_SIZE} px, got {args.input_size}")
    info = get_dataset_info(args.dataset)
    shape = input_shape(args.model, args.dataset, args.input_size)
    size = shape.size
    model = get_model(args.model, shape.channels, shape.num_classes, size)
    s = summarize(model, (shape.channels, size, size))
    if args.json:
        print(json.dumps({"rows": [asdict(r) for r in s.rows], "total_params": s.total_params, "total_flops": s.total_flops}))
    else:
        print(f"{get_model_info(args.model).title} on {info.title}: input {shape.channels}x{size}x{size}")
        print(s.table())
    return 0


def cmd_predict(args) -> int:
    from ..explain.predict import predict_image
    from ..store.checkpoints import load_checkpoint

    loaded = load_checkpoint(args.checkpoint)
    pred, _ = predict_image(loaded, args.image, args.topk)
    if args.json:
        print(json.dumps({"checkpoint": loaded.name, "top": [{"label": lab, "index": i, "prob": p}
                          for lab, i, p in zip(pred.labels, pred.indices, pred.probs)]}))
    else:
        for label, p in zip(pred.labels, pred.probs):
            print(f"{p:7.2%}  {label}")
    return 0


def cmd_eval(args) -> int:
    from ..store.checkpoints import load_checkpoint
    from ..train.evaluate import evaluate_checkpoint

    loaded = load_checkpoint(args.checkpoint)
    result = evaluate_checkpoint(loaded, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{loaded.name}: test accuracy {result['test_acc']:.4f} on {result['num_test']} images "
              f"({result['dataset']}), loss {result['test_loss']:.4f}")
        print("confusion matrix (rows: true class, columns: predicted):")
        for name, row in zip(result["class_names"], result["confusion"]):
            print(f"  {name[:14]:<15}" + " ".join(f"{v:5d}" for v in row))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; user mistakes print `error: ...` and return 2, never a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve"]:
        from .serve import main as serve

        prog = "python -m cnnviz" if os.path.basename(sys.argv[0]) == "__main__.py" else "cnnviz"
        return serve(argv[1:], prog=f"{prog} serve")
    from ..data import DatasetUnavailable
    from ..images import ImageError
    from ..store.checkpoints import CheckpointError
    from ..store.disk import write_problem

    args = _parser().parse_args(argv)
    from ..models import WeightsUnavailable
    from ..train.bench import cmd_bench
    from . import explain as cli_explain
    from . import import_model as cli_import
    from . import overview as cli_overview
    from . import train as cli_train
    from . import weights as cli_weights

    commands = {"list": cmd_list, "summary": cmd_summary, "train": cli_train.run, "eval": cmd_eval,
                "predict": cmd_predict, "explain": cli_explain.run, "bench": cmd_bench,
                "fetch-weights": cli_weights.run, "import": cli_import.run, "overview": cli_overview.run}
    try:
        return commands[args.command](args)
    except (CheckpointError, ImageError, DatasetUnavailable, WeightsUnavailable, ValueError, KeyError,
            FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {msg}", file=sys.stderr)
        return EXIT_USER_ERROR
    except PermissionError as exc:  # e.g. --folder / reaching /proc or /root while scanning
        print(f"error: permission denied: {exc.filename or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # `... --json | head -1`: the reader has gone; stop quietly, as Unix tools do
        with contextlib.suppress(OSError, ValueError):  # stdout may be no file (a test's capture)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # or the exit flush complains on stderr
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # a full disk, a folder that cannot be written: one line that says which
        print(f"error: {write_problem(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
