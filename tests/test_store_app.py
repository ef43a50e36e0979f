"""The real app (build_demo, launched, driven through gradio_client) over a runs/ folder with damaged runs and leftovers of
a killed server: it starts, lists the good runs, names the skipped ones, cleans up, and keeps results on a full disk."""
from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
import torch  # noqa: E402
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from test_ui_api import CONFUSION, RESULT, TRAIN, running_app, wait_for_status  # noqa: E402  (tests/ is on sys.path)

from cnnviz.store.owner import OWNER_SUFFIX, ProcessMark  # noqa: E402
from cnnviz.store.timelapse_file import FILE  # noqa: E402
from cnnviz.train import worker_run  # noqa: E402
from cnnviz.train.config import TrainConfig  # noqa: E402
from cnnviz.train.engine import fit  # noqa: E402
from cnnviz.train.events import Finished  # noqa: E402
from cnnviz.train.worker_process import Job  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
CUT_ROW = "20260101-000001-lenet5-digits-cut"
LIST_CONFIG = "20260101-000002-lenet5-digits-list"
NOT_UTF8 = "20260101-000003-lenet5-digits-bin"
CUT_TIMELAPSE = "20260101-000004-lenet5-digits-tl"
TORCH_FULL = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


def dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                              check=True).stdout)


def seed(root: Path) -> dict:
    """runs/ with one good run, three unreadable ones and one whose time-lapse is cut off; leftovers of a dead server."""
    runs, ck = root / "runs", root / "checkpoints"
    end = list(fit(TrainConfig(arch="lenet5", dataset="digits", subset=200, epochs=2, batch_size=64), runs_root=runs))[-1]
    assert isinstance(end, Finished), end
    good = runs / end.run_id
    for broken in (CUT_ROW, LIST_CONFIG, NOT_UTF8, CUT_TIMELAPSE):
        shutil.copytree(good, runs / broken)
    with open(runs / CUT_ROW / "metrics.csv", "a") as f:
        f.write("3,3,2.301730")  # what a full disk leaves: the last row cut off
    (runs / LIST_CONFIG / "config.json").write_text(json.dumps({"config": ["lenet5", "digits"]}))
    (runs / NOT_UTF8 / "config.json").write_bytes(b"\xff\xfe{\x00")
    data = (runs / CUT_TIMELAPSE / FILE).read_bytes()
    (runs / CUT_TIMELAPSE / FILE).write_bytes(data[: len(data) // 2])
    pid = dead_pid()
    ck.mkdir(parents=True, exist_ok=True)
    leftovers = [good / f".model.pt-{pid}-abcd1234.tmp", ck / f".lenet.pt-{pid}-abcd1234.tmp",
                 runs / ".deleting-20250101-000000-lenet5-digits-gone"]
    for p in leftovers[:2]:
        p.write_bytes(b"half a checkpoint")
    leftovers[2].mkdir()
    orphan = Path(tempfile.mkdtemp(prefix=f"cnnviz-gradio-{pid}-"))  # a killed server's private Gradio folder
    ProcessMark(pid, socket.gethostname(), None).write(orphan.with_name(orphan.name + OWNER_SUFFIX))
    return {"good": end.run_id, "leftovers": leftovers + [orphan]}


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("broken-runs")
    seeded = seed(root)
    log, logger = Collect(), logging.getLogger("cnnviz.store")
    level = logger.level
    logger.addHandler(log)
    logger.setLevel(logging.INFO)  # as app.py configures logging
    try:
        with running_app(root) as url:  # build_demo used to raise here: float(None), 'list' has no .get
            client = Client(url, verbose=False)
            yield client, seeded, log.lines, root
            client.close()
    finally:
        logger.removeHandler(log)
        logger.setLevel(level)


def test_the_server_starts_lists_the_good_runs_and_names_the_skipped(app):
    client, seeded, log, _ = app
    menu = client.predict(None, api_name="/runs")
    assert [i for _, i in menu["choices"]] == [seeded["good"], CUT_TIMELAPSE]
    assert menu["value"] == seeded["good"]
    assert "3 runs left out because they cannot be read" in menu["info"]
    for run_id in (CUT_ROW, LIST_CONFIG, NOT_UTF8):
        assert run_id in menu["info"]
    assert "metrics.csv line 4 is cut off" in menu["info"] and "not UTF-8" in menu["info"]
    # The page as first built carries the same note, and the server said it once at start-up, with the folders.
    [props] = [c["props"] for c in client.config["components"] if c.get("props", {}).get("elem_id") == "replay-run"]
    assert "3 runs left out" in props["info"]
    skipped_lines = [line for line in log if "left out" in line]
    assert len(skipped_lines) == 3 and all("fix or delete" in line for line in skipped_lines)


def test_leftovers_of_a_killed_server_are_gone_after_the_start(app):
    _, seeded, log, _ = app
    assert not any(p.exists() for p in seeded["leftovers"])
    assert any(re.match(r"removed \d+ file\(s\) left by stopped processes", line) for line in log)


def test_a_broken_run_asked_for_by_id_is_a_clear_message(app):
    client, *_ = app
    with pytest.raises(AppError, match="cannot be read: metrics.csv line 4 is cut off"):
        client.predict(CUT_ROW, api_name="/replay")
    with pytest.raises(AppError, match="no 'config' object"):
        client.predict(LIST_CONFIG, 0, api_name="/timelapse_frame")


def test_a_cut_off_time_lapse_replays_the_curves_and_says_why(app):
    client, *_ = app
    summary, _, frame, loss, _, confusion = client.predict(CUT_TIMELAPSE, api_name="/replay")
    assert "time-lapse of run" in summary and "cut off or damaged" in summary and frame is None
    assert len(loss["data"]) == 4 and confusion is not None
    for api, args in (("/timelapse_frame", (CUT_TIMELAPSE, 1)), ("/timelapse_gif", (CUT_TIMELAPSE,))):
        with pytest.raises(AppError, match="cannot be read: timelapse.npz is cut off or damaged"):
            client.predict(*args, api_name=api)


def test_a_frame_index_left_empty_is_a_clear_message(app):
    client, seeded, *_ = app
    with pytest.raises(AppError, match="Choose a frame: a whole number from 0 to 2"):
        client.predict(seeded["good"], None, api_name="/timelapse_frame")


class FullDiskJob(Job):
    """A run whose checkpoint meets a full disk: torch.save fails once, in the training process (where runs save)."""

    def apply_environment(self) -> None:
        super().apply_environment()
        original = torch.save

        def full(*a, **k):
            torch.save = original  # once: the worker stays warm for the next run
            raise TORCH_FULL

        torch.save = full


def test_a_full_disk_at_the_end_of_training_still_shows_the_results(app, monkeypatch):
    client, *_ = app
    monkeypatch.setattr(worker_run, "Job", FullDiskJob)  # the next run's job, unpickled in its worker process
    final = client.predict(**{**TRAIN, "epochs": 2}, api_name="/train")
    assert "Test accuracy" in final[RESULT] and "Training failed" not in final[RESULT]
    assert "the disk is full" in final[RESULT] and final[CONFUSION] is not None
    labels = [label for label, _ in client.predict(None, api_name="/runs")["choices"]]
    assert any("finished, but its weights were not saved" in label for label in labels)


def test_deleting_a_run_while_it_trains_is_refused_until_it_stops(app):
    client, *_ = app
    job = client.submit(**{**TRAIN, "epochs": 50}, api_name="/train")
    wait_for_status(job, "Training")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the run folder appears once the data is loaded
        training = [i for label, i in client.predict(None, api_name="/runs")["choices"] if "training now" in label]
        if training:
            break
        time.sleep(0.1)
    [run_id] = training
    with pytest.raises(AppError, match="still training: stop it in the Train tab first"):
        client.predict(run_id, api_name="/delete_run")
    client.predict(api_name="/stop")
    job.result(timeout=60)
    menu = client.predict(run_id, api_name="/delete_run")  # stopped: now it goes
    assert run_id not in [i for _, i in menu["choices"]]
