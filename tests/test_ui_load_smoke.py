"""The lecture-hall load test itself keeps working: a small run against a real `python app.py` subprocess, with the
same checks the README's figures rest on (no errors, right answers, runs served in order). Timings are not judged."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gradio_client")
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_small_lecture_hall_gets_right_answers_and_runs_in_order(tmp_path):
    out = tmp_path / "load.json"
    cmd = [sys.executable, "benchmarks/load_test.py", "--students", "4", "--duration", "6", "--trainers", "2",
           "--epochs", "4", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    load = json.loads(out.read_text())["load"]
    for endpoint in ("/predict", "/explain"):
        e = load["endpoints"][endpoint]
        assert e["count"] >= 2 and e["errors"] == 0 and e["wrong"] == 0 and e["queue_full"] == 0, e
    assert load["runs_started_in_order"] and load["runs_finished_in_order"]
    assert any("Waiting in the training queue" in line for line in load["runs"][1]["status_lines"])  # it waited
    assert all("test accuracy" in r["result"] for r in load["runs"])
    assert load["server_exceptions"] == [] and load["threads_still_running"] == 0
