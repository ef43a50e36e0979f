"""No training process outlives the server: a server process with a run going is stopped (SIGTERM handled the way
`cnnviz serve` handles it, SIGTERM unhandled, SIGKILL) and every process it started is gone within seconds. Checked
with a /proc scan of the server's children, no psutil."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# A stand-in server: the real pool and sessions, a long run going, then it prints its worker and waits to be killed.
# One worker, not two: every test starts a fresh server, and a worker's start (torch) is most of the time.
SERVER = """
import copy, json, signal, sys, time
from cnnviz.train.config import Limits, TrainConfig
from cnnviz.train.session import TrainSession
from cnnviz.train.worker_pool import WorkerPool, shutdown_all

def main(mode, runs_root):
    if mode == "handled":  # what cnnviz serve does: SIGTERM -> KeyboardInterrupt -> shutdown_all()
        def interrupt(signum, frame):
            raise KeyboardInterrupt
        signal.signal(signal.SIGTERM, interrupt)
    pool = WorkerPool(["cpu"], warm=True)
    cfg = TrainConfig(arch="lenet5", dataset="digits", epochs=50, batch_size=32)
    runs = [copy.deepcopy(TrainSession(pool)).start(cfg, Limits(), runs_root) for _ in range(1)]
    while not all(r.progress is not None for r in runs):
        time.sleep(0.05)
    print(json.dumps(sorted(r.pid for r in runs)), flush=True)
    try:
        while True:
            time.sleep(0.1)
    except KeyboardInterrupt:
        shutdown_all()

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
"""


def children(pid: int) -> set[int]:
    """Live processes whose parent is `pid` (from /proc/<n>/stat)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize("mode, sig", [("handled", signal.SIGTERM), ("unhandled", signal.SIGTERM),
                                       ("unhandled", signal.SIGKILL)])
def test_stopping_the_server_with_runs_going_leaves_no_process_behind(tmp_path, mode, sig):
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    server = subprocess.Popen([sys.executable, str(script), mode, str(tmp_path / "runs")], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # once the run trains
        assert line, f"the stand-in server exited with {server.wait(5)}"
        workers = json.loads(line)
        started = children(server.pid)
        assert set(workers) <= started  # the worker (and multiprocessing's resource tracker)
        os.kill(server.pid, sig)
        server.wait(30)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p for p in started if alive(p)] == [], f"left running after {signal.Signals(sig).name} ({mode})"
        if mode == "handled":
            assert server.returncode == 0  # a clean exit: the pool stopped its workers itself
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
def test_the_real_server_stopped_with_a_run_going_takes_its_worker_along(tmp_path):
    """`python -m cnnviz serve --devices cpu`, a run going through the API, then SIGTERM (as systemd or docker stop)."""
    gradio_client = pytest.importorskip("gradio_client")
    from test_ui_api import STATUS, TRAIN, free_port  # pytest puts tests/ on sys.path

    port = free_port()
    env = {**os.environ, "CNNVIZ_RUNS": str(tmp_path / "runs"), "CNNVIZ_CHECKPOINTS": str(tmp_path / "ck"),
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio"), "CNNVIZ_DEVICES": "cpu"}
    server = subprocess.Popen([sys.executable, "-m", "cnnviz", "serve", "--port", str(port)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "the server did not come up"
            try:
                client = gradio_client.Client(url, verbose=False)
                break
            except Exception:  # not up yet
                time.sleep(0.5)
        try:
            job = client.submit(**{**TRAIN, "epochs": 50}, api_name="/train")
            while not (job.outputs() and "Training" in job.outputs()[-1][STATUS]):
                assert time.monotonic() < deadline and not job.done(), "the run did not start"
                time.sleep(0.05)
            started = children(server.pid)
            assert started, "no training process"
            os.kill(server.pid, signal.SIGTERM)
            assert server.wait(60) == 0  # SIGTERM ends it like Ctrl-C
        finally:
            client.close()
        deadline = time.monotonic() + 10
        while any(alive(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p for p in started if alive(p)] == []
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
