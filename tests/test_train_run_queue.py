"""The training queue: first come first served, a cap on waiting runs, cancellation while waiting; and the per-user
sessions that queue their runs in it (the server's queue, handed to every session)."""
from __future__ import annotations

import copy
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cnnviz.train.config import Limits, TrainConfig
from cnnviz.train.events import Stopped
from cnnviz.train.run_queue import QueueFull, RunQueue
from cnnviz.train.run_view import DownloadFolder, result_markdown, run_display, status_html
from cnnviz.train.session import TrainSession


def test_runs_start_in_the_order_they_joined():
    queue, started, done = RunQueue(), [], threading.Event()
    tickets = [queue.join(max_waiting=10) for _ in range(5)]

    def run(i):
        assert queue.wait_turn(tickets[i], done)
        started.append(i)
        time.sleep(0.01)
        queue.leave(tickets[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in reversed(range(5))]  # threads start in reverse
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert started == [0, 1, 2, 3, 4]
    assert len(queue) == 0


def test_a_full_queue_refuses_at_once_and_says_why():
    queue = RunQueue()
    first = queue.join(max_waiting=2)  # trains
    queue.join(max_waiting=2)
    queue.join(max_waiting=2)
    with pytest.raises(QueueFull, match="2 runs are waiting"):
        queue.join(max_waiting=2)
    queue.leave(first)
    queue.join(max_waiting=2)  # a place came free
    assert len(queue) == 3


def test_zero_waiting_allows_only_the_running_one():
    queue = RunQueue()
    queue.join(max_waiting=0)
    with pytest.raises(QueueFull):
        queue.join(max_waiting=0)


def test_cancelling_a_waiting_run_frees_its_place_and_keeps_the_order():
    queue = RunQueue()
    a, b, c = (queue.join(max_waiting=5) for _ in range(3))
    assert [queue.position(t) for t in (a, b, c)] == [0, 1, 2]
    cancel_b = threading.Event()
    result = {}
    waiter = threading.Thread(target=lambda: result.setdefault("b", queue.wait_turn(b, cancel_b)))
    waiter.start()
    cancel_b.set()
    waiter.join(5)
    assert result == {"b": False}  # returned without its turn
    queue.leave(b)
    assert queue.position(c) == 1 and queue.position(b) is None
    queue.leave(a)
    assert queue.wait_turn(c, threading.Event())


def test_the_next_run_starts_as_soon_as_the_previous_leaves():
    queue = RunQueue()
    a, b = queue.join(5), queue.join(5)
    began = []
    waiter = threading.Thread(target=lambda: began.append(queue.wait_turn(b, threading.Event()) and time.perf_counter()))
    waiter.start()
    time.sleep(0.2)
    assert not began  # still waiting while `a` holds the slot
    left = time.perf_counter()
    queue.leave(a)
    waiter.join(5)
    assert began and began[0] - left < 0.1  # woken by leave(), not by a slow poll


def test_every_copied_session_is_fresh_and_shares_the_servers_queue():
    queue = RunQueue()
    template = TrainSession(queue)  # gr.State's initial value, deep-copied for every browser session
    a, b = copy.deepcopy(template), copy.deepcopy(template)
    assert a.queue is queue and b.queue is queue
    assert a.stop is not b.stop and a.pause is not template.pause and a.worker is None and a.runs == [] and a.count == 0


def test_a_waiting_run_shows_its_place_and_stop_cancels_it_without_training(tmp_path):
    queue = RunQueue()
    holder = queue.join(max_waiting=5)  # another user's run is training
    session = copy.deepcopy(TrainSession(queue))
    worker = session.start(TrainConfig(arch="lenet5", dataset="digits", epochs=1), Limits(), runs_root=tmp_path)
    assert "Waiting in the training queue: 1 run ahead of this one" in status_html(worker)
    session.stop.set()
    assert worker.finished.wait(10)
    assert isinstance(worker.end, Stopped) and worker.end.message == "cancelled while waiting in the training queue"
    assert len(queue) == 1 and queue.position(holder) == 0  # it gave up its place; the training run keeps its own
    shown = run_display(session, worker, DownloadFolder())
    assert "Stopped: cancelled while waiting" in shown.status and shown.checkpoint == "" and shown.download is None
    assert shown.result == result_markdown(worker.end) == (
        "### Stopped\ncancelled while waiting in the training queue. No checkpoint was saved.")
    assert shown.confusion is None and shown.per_class is None and shown.legend.startswith("**run 1**: lenet5 on digits")


def test_downloads_are_named_after_their_run(tmp_path):
    run = tmp_path / "runs" / "20250101-120000-lenet5-digits-abcd"
    run.mkdir(parents=True)
    (run / "model.pt").write_bytes(b"weights")
    downloads = DownloadFolder()
    copy_path = Path(downloads.copy(str(run / "model.pt")))
    assert copy_path.name == f"{run.name}.pt" and copy_path.read_bytes() == b"weights"
    assert downloads.copy(None) is None and downloads.copy(str(tmp_path / "missing.pt")) is None
    shutil.rmtree(downloads.folder.path())


def test_the_train_tabs_rules_import_without_gradio():
    code = ("import cnnviz.train.form, cnnviz.train.run_view, cnnviz.train.session, sys; "
            "assert 'gradio' not in sys.modules, 'the core imported gradio'")
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], check=True, timeout=120)
