"""`cnnviz serve [flags]` (and `python app.py [flags]`): check the flags, build the app with their limits, serve it.

Safe by default: it listens on the loopback interface only, makes no share link and sends no analytics. Every flag can
also come from an environment variable (CNNVIZ_<FLAG>, and Gradio's own GRADIO_SERVER_NAME / GRADIO_SERVER_PORT for
--host / --port); a flag on the command line wins over its variable.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import NoReturn

from ..train.config import Limits  # plain dataclasses: no torch, no gradio
from .auth_file import AuthFileError, checker, merge_logins, read_auth_file

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
class UsageError(SystemExit):
    """Exit code 2 as argparse's own errors, with the message as its text (printed already: see fail())."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def fail(message: str) -> NoReturn:
    """One `error: ...` line on stderr, then exit 2."""
    print(message, file=sys.stderr)
    raise UsageError(message)


ENV = {"host": "GRADIO_SERVER_NAME", "port": "GRADIO_SERVER_PORT"}  # dest -> variable; the rest are CNNVIZ_<DEST>


def quiet_environment() -> None:
    """Before gradio is imported anywhere: no version check, no telemetry; never send loopback traffic through a
    proxy. (app.py does the same at import, for a hosted Space.)"""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    for var in ("NO_PROXY", "no_proxy"):
        have = os.environ.get(var, "").split(",")
        os.environ[var] = ",".join(filter(None, have + [h for h in ("localhost", "127.0.0.1", "::1") if h not in have]))


def env_name(dest: str) -> str:
    return ENV.get(dest, f"CNNVIZ_{dest.upper()}")


def _parser(prog: str | None) -> argparse.ArgumentParser:
    """The flags; the defaults are the safe ones. Each help names the variable that can set it instead."""
    p = argparse.ArgumentParser(prog=prog, description="cnnviz: train, inspect and explain classic CNNs in the browser.",
                                epilog="Every flag can come from the environment variable named in its help; a flag "
                                       "on the command line wins. Put passwords in --auth-file, never on a command line.")

    def add(*flags, help, **kw):
        dest = flags[0].lstrip("-").replace("-", "_")
        p.add_argument(*flags, help=f"{help} [env {env_name(dest)}]", **kw)

    add("--host", default="127.0.0.1", help="interface to listen on; 0.0.0.0 serves the whole network")
    add("--port", type=int, default=7860, help="1 to 65535 (default 7860)")
    add("--share", action="store_true", help="make a public gradio.live link (needs the internet)")
    add("--auth", action="append", default=None, metavar="USER:PASSWORD",
        help="require a login; repeat for more users (the variable: USER:PASSWORD items separated by spaces)")
    add("--auth-file", default=None, metavar="FILE",
        help="require a login: one USER:PASSWORD a line, the password plain or pbkdf2_sha256:<iterations>:<salt>:<hex> "
             "(make one with `python -m cnnviz.cli.auth_file USER`); combines with --auth")
    add("--max-epochs", type=int, default=None, help="cap epochs per run (for a shared server)")
    add("--max-subset", type=int, default=None, help="cap training images per split (for a shared server)")
    add("--max-queue", type=int, default=64, help="requests that may wait before 'queue full' (default 64)")
    add("--max-upload-mb", type=int, default=10, help="largest upload in MB (default 10)")
    add("--max-body-mb", type=float, default=None,
        help="largest request body other than an upload, in MB (default: room for a data-URL image of "
             "--max-upload-mb, 14.3 at 10)")
    add("--upload-budget-mb", type=float, default=60,
        help="MB each user (login, else address) may upload per 10 minutes; 0 = no budget (default 60)")
    add("--max-queued-runs", type=int, default=Limits.max_queued_runs,
        help=f"training runs that may wait behind the current one (default {Limits.max_queued_runs})")
    add("--max-pause-seconds", type=float, default=Limits.max_pause_seconds,
        help="a run paused this long while others wait is stopped, its weights saved "
             f"(default {Limits.max_pause_seconds:g})")
    add("--max-devices-per-run", type=int, default=1,
        help="devices (training workers of one kind) a single run may use together, with PyTorch DDP; the Train tab "
             "then offers 'devices per run' (default 1)")
    add("--devices", default="auto", metavar="auto|cpu|cuda:0,cuda:1,...",
        help="one training process per device, each training one run at a time: auto = every visible GPU, else one "
             "CPU worker; cpu,cpu = two CPU workers (default auto)")
    add("--ray", default=None, metavar="HOST:PORT|local",
        help="train on a Ray cluster instead (one GPU, or one CPU, per run; --devices is then unused): the head "
             "node's address, or local to start a private Ray instance on this machine; needs "
             "pip install 'cnnviz[cluster]'")
    return p


def _from_env(action: argparse.Action, var: str, raw: str):
    """One variable's text as its flag's value; a malformed one is a usage error naming the variable."""
    if isinstance(action, argparse._StoreTrueAction):
        if raw.strip().lower() in TRUE + FALSE:
            return raw.strip().lower() in TRUE
        fail(f"error: {var} must be one of {'/'.join(TRUE + FALSE)}, got {raw!r}")
    if isinstance(action, argparse._AppendAction):
        return raw.split()
    if action.type is None:
        return raw
    try:
        return action.type(raw.strip())
    except ValueError:
        fail(f"error: {var}: invalid {action.type.__name__} value: {raw!r}")


def parse_args(argv: list[str] | None = None, environ: dict[str, str] | None = None,
               prog: str | None = None) -> argparse.Namespace:
    """Flags over environment variables over defaults. `args.from_env` maps each setting that came from a variable to
    that variable, so that a check can name it."""
    environ = os.environ if environ is None else environ
    p = _parser(prog)
    from_env: dict[str, tuple[str, object]] = {}
    for action in p._actions:
        var = env_name(action.dest)
        if action.dest != "help" and environ.get(var, "").strip():
            from_env[action.dest] = (var, _from_env(action, var, environ[var]))
    # Pre-filled, so the command line overrides them; an append flag given on the command line replaces its variable.
    ns = argparse.Namespace(**{dest: value for dest, (_, value) in from_env.items() if dest != "auth"})
    args = p.parse_args(argv, namespace=ns)
    if args.auth is None:
        args.auth = from_env["auth"][1] if "auth" in from_env else []
    args.from_env = {dest: var for dest, (var, value) in from_env.items() if getattr(args, dest) is value}
    return args


def parse_auth(items: list[str]) -> list[tuple[str, str]]:
    """['user:pw', ...] -> [('user', 'pw'), ...]; a malformed item is a usage error."""
    pairs = []
    for item in items:
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            fail(f"error: --auth needs USER:PASSWORD, got {item!r}")
        pairs.append((user, password))
    return pairs


def _origin(args: argparse.Namespace, *dests: str) -> str:
    """' (from CNNVIZ_X=...)' for the settings among `dests` that came from a variable, so the message names it."""
    named = [f"{args.from_env[d]}={getattr(args, d)!r}" for d in dests if d in args.from_env]
    return f" (from {', '.join(named)})" if named else ""


def check_limits(args: argparse.Namespace) -> Limits:
    """The caps' checks, before the slow build; each failure is one `error:` line."""
    if args.max_epochs is not None and args.max_epochs < 1 or args.max_subset is not None and args.max_subset < 10:
        fail("error: --max-epochs must be at least 1 and --max-subset at least 10"
                         + _origin(args, "max_epochs", "max_subset"))
    if args.max_queued_runs < 0 or args.max_queue < 1 or not 1 <= args.max_upload_mb <= 1000:
        fail("error: --max-queued-runs must be 0 or more, --max-queue at least 1, --max-upload-mb 1 to 1000"
                         + _origin(args, "max_queued_runs", "max_queue", "max_upload_mb"))
    if not 0 < args.max_pause_seconds < float("inf"):  # also refuses nan
        fail("error: --max-pause-seconds must be a number of seconds above 0"
                         + _origin(args, "max_pause_seconds"))
    if args.max_body_mb is not None and not 0.01 <= args.max_body_mb <= 2000 or not 0 <= args.upload_budget_mb < 1e6:
        fail("error: --max-body-mb must be 0.01 to 2000 and --upload-budget-mb 0 or more"
                         + _origin(args, "max_body_mb", "upload_budget_mb"))
    if not 1 <= args.max_devices_per_run <= 1024:
        fail("error: --max-devices-per-run must be from 1 to 1024" + _origin(args, "max_devices_per_run"))
    defaults = Limits()
    return Limits(max_epochs=args.max_epochs or defaults.max_epochs, max_subset=args.max_subset,
                  max_queued_runs=args.max_queued_runs, max_pause_seconds=args.max_pause_seconds,
                  max_devices_per_run=args.max_devices_per_run)


def check_devices(args: argparse.Namespace) -> tuple[str, ...]:
    """The training workers' devices; a device that is not here is one `error:` line."""
    from ..train.worker_devices import DeviceError, parse_devices  # torch only to count GPUs

    try:
        return parse_devices(args.devices)
    except DeviceError as exc:
        fail(f"error: {exc}{_origin(args, 'devices')}")


def check_ray(args: argparse.Namespace):
    """With --ray, the Ray cluster's pool (connected now, its actors starting); an unreachable cluster or a missing
    Ray is one `error:` line. None without --ray (then ray is never imported)."""
    if not args.ray:
        return None
    if getattr(args, "max_devices_per_run", 1) > 1:  # DDP joins local workers; Ray actors train alone
        fail("error: --max-devices-per-run must be 1 with --ray: runs on a Ray cluster use one device each"
             + _origin(args, "ray", "max_devices_per_run"))
    from ..train.ray_pool import RayPool, RayUnavailable

    try:
        return RayPool(args.ray.strip(), warm=True)
    except RayUnavailable as exc:
        fail(f"error: {exc}{_origin(args, 'ray')}")


def _stop_on_sigterm() -> None:
    """SIGTERM (systemd, docker stop, kill) ends the server like Ctrl-C: the training processes are stopped on the way
    out, not left to the kernel's parent-death signal."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():  # only the main thread may set a handler
        signal.signal(signal.SIGTERM, interrupt)


def login_check(args: argparse.Namespace):
    """What launch(auth=) gets: None, the --auth pairs as Gradio takes them, or (with --auth-file) one async callable
    over both that compares in constant time."""
    pairs = parse_auth(args.auth)
    if args.auth_file is None:
        return pairs or None
    try:
        users = read_auth_file(args.auth_file)
    except AuthFileError as exc:
        fail(f"error: --auth-file {exc}" + _origin(args, "auth_file"))
    try:
        return checker(merge_logins(pairs, users))
    except AuthFileError as exc:
        fail(f"error: {exc}")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Build the app with the flags' limits and serve it until interrupted."""
    quiet_environment()
    args = parse_args(argv, prog=prog)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's start-up self-checks log every request
    if not 1 <= args.port <= 65535:  # checked before the slow build; the socket would raise OverflowError
        print(f"error: --port must be from 1 to 65535, got {args.port}{_origin(args, 'port')}", file=sys.stderr)
        return 2
    limits = check_limits(args)
    auth = login_check(args)
    ray_pool = check_ray(args)
    devices = check_devices(args) if ray_pool is None else ray_pool.devices

    from ..train.worker_pool import shutdown_all
    from ..ui import build_demo, configure_queue, launch_options

    _stop_on_sigterm()
    demo = configure_queue(build_demo(limits, devices=devices, trainers=ray_pool), max_size=args.max_queue)
    opts = launch_options(host=args.host, port=args.port, share=args.share, auth=auth,
                          max_upload_mb=args.max_upload_mb, max_body_mb=args.max_body_mb,
                          upload_budget_mb=args.upload_budget_mb)
    print(f"cnnviz: open http://{'localhost' if args.host in ('127.0.0.1', 'localhost') else args.host}:{args.port}",
          file=sys.stderr)
    if args.share:
        print("cnnviz: --share asks gradio.live for a public link: it needs the internet, and anyone with the link can "
              "use this machine (add --auth)", file=sys.stderr)
    if ray_pool is None:
        print(f"cnnviz: training on {', '.join(devices)} (one process each)", file=sys.stderr)
        if limits.max_devices_per_run and limits.max_devices_per_run > 1:
            print(f"cnnviz: a run may use up to {limits.max_devices_per_run} of them together (DDP; at most as many "
                  "as there are workers of one kind)", file=sys.stderr)
    else:
        print(f"cnnviz: training on the Ray cluster at {args.ray}: {len(devices)} run(s) at once, one "
              f"{'GPU' if ray_pool.options['num_gpus'] else 'CPU'} each", file=sys.stderr)
    try:
        demo.launch(**opts)
    finally:
        shutdown_all()  # no training process outlives the server
    return 0
