"""Start the cnnviz web app: `python app.py [flags]`, the same as `cnnviz serve [flags]` (see cnnviz/cli/serve.py).

The thin entry point a hosted Space runs. Safe by default: it listens on the loopback interface only, makes no share
link and sends no analytics.
"""
from __future__ import annotations

import os
import sys

# Before gradio is imported anywhere: no version check, no telemetry; never send loopback traffic through a proxy.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var), "localhost", "127.0.0.1", "::1"]))

from cnnviz.cli.serve import main, parse_args, parse_auth  # noqa: E402  (no torch, no gradio until main() builds)

__all__ = ["main", "parse_args", "parse_auth"]

if __name__ == "__main__":
    sys.exit(main(prog="app.py"))
