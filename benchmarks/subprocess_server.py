"""A benchmark's server in a child process: start it on a free port, wait until it answers, always stop it.
Shared by benchmarks/latency.py and benchmarks/bench_overview.py (run as scripts, so this folder is on sys.path)."""
from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(cmd: list[str], env: dict[str, str], folder: Path, kind: str,
                   cwd: Path | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run `cmd --port N` (its output in folder/server.log) until its page answers; yield (url, process)."""
    import httpx

    port = free_port()
    log_path = Path(folder) / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([*cmd, "--port", str(port)], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} server did not start")
            time.sleep(0.3)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
