"""Start the cnnviz web app: `python app.py [--host 127.0.0.1] [--port 7860] [--share] [--auth user:password] ...`.

Safe by default: it listens on the loopback interface only, makes no share link and sends no analytics.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

# Before gradio is imported anywhere: no version check, no telemetry; never send loopback traffic through a proxy.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var), "localhost", "127.0.0.1", "::1"]))

from cnnviz.train.config import Limits  # noqa: E402  (plain dataclasses: no torch, no gradio)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags; the defaults are the safe ones."""
    p = argparse.ArgumentParser(description="cnnviz: train, inspect and explain classic CNNs in the browser.")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on; 0.0.0.0 serves the whole network")
    # A string default goes through `type` too: a bad GRADIO_SERVER_PORT is a usage error, not a traceback.
    p.add_argument("--port", type=int, default=os.environ.get("GRADIO_SERVER_PORT", "7860"), help="1 to 65535")
    p.add_argument("--share", action="store_true", help="make a public gradio.live link (needs the internet)")
    p.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD",
                   help="require a login; repeat for more users")
    p.add_argument("--max-epochs", type=int, default=None, help="cap epochs per run (for a shared server)")
    p.add_argument("--max-subset", type=int, default=None, help="cap training images per split (for a shared server)")
    p.add_argument("--max-queue", type=int, default=64, help="requests that may wait before 'queue full' (default 64)")
    p.add_argument("--max-upload-mb", type=int, default=10, help="largest upload in MB (default 10)")
    p.add_argument("--max-body-mb", type=float, default=None,
                   help="largest request body other than an upload, in MB (default: room for a data-URL image of "
                        "--max-upload-mb, 14.3 at 10)")
    p.add_argument("--upload-budget-mb", type=float, default=60,
                   help="MB each user (login, else address) may upload per 10 minutes; 0 = no budget (default 60)")
    p.add_argument("--max-queued-runs", type=int, default=Limits.max_queued_runs,
                   help=f"training runs that may wait behind the current one (default {Limits.max_queued_runs})")
    p.add_argument("--max-pause-seconds", type=float, default=Limits.max_pause_seconds,
                   help="a run paused this long while others wait is stopped, its weights saved "
                        f"(default {Limits.max_pause_seconds:g})")
    return p.parse_args(argv)


def parse_auth(items: list[str]) -> list[tuple[str, str]]:
    """['user:pw', ...] -> [('user', 'pw'), ...]; a malformed item is a usage error."""
    pairs = []
    for item in items:
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise SystemExit(f"error: --auth needs USER:PASSWORD, got {item!r}")
        pairs.append((user, password))
    return pairs


def main(argv: list[str] | None = None) -> int:
    """Build the app with the flags' limits and serve it until interrupted."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's start-up self-checks log every request
    defaults = Limits()
    if not 1 <= args.port <= 65535:  # checked before the slow build; the socket would raise OverflowError
        print(f"error: --port must be from 1 to 65535, got {args.port}", file=sys.stderr)
        return 2
    if args.max_epochs is not None and args.max_epochs < 1 or args.max_subset is not None and args.max_subset < 10:
        raise SystemExit("error: --max-epochs must be at least 1 and --max-subset at least 10")
    if args.max_queued_runs < 0 or args.max_queue < 1 or not 1 <= args.max_upload_mb <= 1000:
        raise SystemExit("error: --max-queued-runs must be 0 or more, --max-queue at least 1, --max-upload-mb 1 to 1000")
    if not 0 < args.max_pause_seconds < float("inf"):  # also refuses nan
        raise SystemExit("error: --max-pause-seconds must be a number of seconds above 0")
    if args.max_body_mb is not None and not 0.01 <= args.max_body_mb <= 2000 or not 0 <= args.upload_budget_mb < 1e6:
        raise SystemExit("error: --max-body-mb must be 0.01 to 2000 and --upload-budget-mb 0 or more")
    limits = Limits(max_epochs=args.max_epochs or defaults.max_epochs, max_subset=args.max_subset,
                    max_queued_runs=args.max_queued_runs, max_pause_seconds=args.max_pause_seconds)

    from cnnviz.ui import build_demo, configure_queue, launch_options

    demo = configure_queue(build_demo(limits), max_size=args.max_queue)
    opts = launch_options(host=args.host, port=args.port, share=args.share, auth=parse_auth(args.auth),
                          max_upload_mb=args.max_upload_mb, max_body_mb=args.max_body_mb,
                          upload_budget_mb=args.upload_budget_mb)
    print(f"cnnviz: open http://{'localhost' if args.host in ('127.0.0.1', 'localhost') else args.host}:{args.port}",
          file=sys.stderr)
    if args.share:
        print("cnnviz: --share asks gradio.live for a public link: it needs the internet, and anyone with the link can "
              "use this machine (add --auth)", file=sys.stderr)
    demo.launch(**opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
