"""The training queue: first come first served, a cap on waiting runs, cancellation while waiting; and the per-user
sessions that queue their runs in it (the server's queue, handed to every session)."""
from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from waiting import wait_until

from cnnviz.train.config import Limits, TrainConfig
from cnnviz.train.events import Stopped
from cnnviz.train.run_queue import QueueFull, RunQueue
from cnnviz.train.run_view import DownloadFolder, result_markdown, run_display, status_html
from cnnviz.train.session import TrainSession
from cnnviz.train.worker_pool import WorkerPool


@pytest.fixture(scope="module")
def workers():
    """One warm CPU training process for the module's runs."""
    pool = WorkerPool(["cpu"], warm=True)
    yield pool
    pool.shutdown()


@pytest.fixture
def pool(workers):
    """The module's training process behind a fresh queue: a test's left-over place in line cannot hold up the next."""
    workers.queue = RunQueue(slots=len(workers))
    return workers


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
    pool = WorkerPool(["cpu"])  # not started: no run asks for it
    template = TrainSession(pool)  # gr.State's initial value, deep-copied for every browser session
    a, b = copy.deepcopy(template), copy.deepcopy(template)
    assert a.queue is pool.queue and b.queue is pool.queue and a.pool is pool and pool.pids() == []
    assert a.stop is not b.stop and a.pause is not template.pause and a.worker is None and a.runs == [] and a.count == 0


def test_a_waiting_run_shows_its_place_and_stop_cancels_it_without_training(tmp_path, pool):
    queue = pool.queue
    holder = queue.join(max_waiting=5)  # another user's run is training
    session = copy.deepcopy(TrainSession(pool))
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


# --- a shared server: plural messages, one place per user, paused runs, Stop right after Start ---------------------
LONG = TrainConfig(arch="lenet5", dataset="digits", epochs=50, batch_size=64)  # still training when the test acts


def test_the_full_queue_message_counts_in_good_english():
    queue = RunQueue()
    queue.join(max_waiting=1)  # trains
    queue.join(max_waiting=1)  # waits
    with pytest.raises(QueueFull, match=r"\(1 run is waiting, this server allows 1\)"):
        queue.join(max_waiting=1)


def test_one_owner_gets_a_limited_number_of_places():
    queue = RunQueue()
    queue.join(5, owner="ann", max_per_owner=2)
    queue.join(5, owner="ann", max_per_owner=2)
    with pytest.raises(QueueFull, match="you already have 2 runs training or waiting on this server"):
        queue.join(5, owner="ann", max_per_owner=2)
    queue.join(5, owner="bob", max_per_owner=2)  # another user still gets a place
    queue.join(5, owner=None, max_per_owner=1)  # no owner: no per-user count
    assert len(queue) == 4


def test_a_second_tab_of_the_same_user_does_not_take_a_second_place(tmp_path, pool):
    queue = pool.queue
    holder = queue.join(max_waiting=5)  # another user's run trains: every run below waits
    tab1, tab2, classmate = (copy.deepcopy(TrainSession(pool)) for _ in range(3))
    first = tab1.start(LONG, Limits(), tmp_path, owner="ann")
    with pytest.raises(QueueFull, match=r"you already have a run training or waiting on this server \(in another tab"):
        tab2.start(LONG, Limits(), tmp_path, owner="ann")
    other = classmate.start(LONG, Limits(), tmp_path, owner="bob")
    assert len(queue) == 3  # the holder, ann's one run, bob's
    assert tab1.request_stop() is first and first.finished.wait(10)
    second = tab2.start(LONG, Limits(), tmp_path, owner="ann")  # her place came free
    for session, worker in ((tab2, second), (classmate, other)):
        session.request_stop()
        assert worker.finished.wait(10)
    queue.leave(holder)
    assert len(queue) == 0


def test_a_run_paused_too_long_while_another_waits_is_stopped_and_saved(tmp_path, pool):
    from cnnviz.store.checkpoints import load_checkpoint
    from cnnviz.train.events import Finished

    limits = Limits(max_pause_seconds=0.5)
    ann, bob = copy.deepcopy(TrainSession(pool)), copy.deepcopy(TrainSession(pool))
    paused = ann.start(LONG, limits, tmp_path, owner="ann")
    wait_until(lambda: paused.progress is not None)
    ann.pause.set()
    wait_until(lambda: paused.paused)
    time.sleep(1.5)  # three times the limit, but nobody waits: it may stay paused
    assert paused.paused and not paused.finished.is_set()
    joined = time.monotonic()
    waiting = bob.start(LONG.with_(epochs=1), limits, tmp_path, owner="bob")
    assert paused.finished.wait(15)
    assert time.monotonic() - joined >= 0.5  # the waiting run is held up for the limit, no longer
    end = paused.end
    assert isinstance(end, Stopped)
    assert end.message == "stopped after 0.5 s paused because others were waiting; the weights so far are saved"
    assert load_checkpoint(end.checkpoint).meta.metrics["complete"] is False
    assert result_markdown(end).startswith("### Stopped\nstopped after 0.5 s paused because others were waiting; the "
                                           "weights so far are saved. Checkpoint **")
    assert waiting.finished.wait(60) and isinstance(waiting.end, Finished)  # the trainer went to the next in line


def test_the_owner_sees_the_countdown_and_resuming_in_time_keeps_the_run(tmp_path, pool):
    limits = Limits(max_pause_seconds=60)
    ann, bob = copy.deepcopy(TrainSession(pool)), copy.deepcopy(TrainSession(pool))
    run = ann.start(LONG, limits, tmp_path, owner="ann")
    wait_until(lambda: run.progress is not None)
    ann.pause.set()
    waiting = bob.start(LONG, limits, tmp_path, owner="bob")
    wait_until(lambda: re.search(r"another run is waiting: this one stops \(and saves\) in (1:00|0:5\d) unless resumed",
                                 status_html(run)))
    ann.pause.clear()
    wait_until(lambda: not run.paused)
    assert "another run is waiting" not in status_html(run) and not run.finished.is_set()
    for session, worker in ((bob, waiting), (ann, run)):
        assert session.request_stop() is worker and worker.finished.wait(15)
    assert run.end.message.startswith("stopped by the user")


def test_a_stop_that_overtakes_its_start_still_stops_the_run(tmp_path, pool):
    session = copy.deepcopy(TrainSession(pool))
    for _ in range(5):
        answer: dict = {}
        stopper = threading.Thread(target=lambda out=answer: out.setdefault("stopped", session.request_stop()))
        stopper.start()  # Stop's handler runs first, with no run yet; the Start it follows comes 0 ms later
        worker = session.start(LONG, Limits(), tmp_path)
        stopper.join(10)
        assert answer["stopped"] is worker and worker.finished.wait(10)
        assert isinstance(worker.end, Stopped) and worker.end.step == 0


def test_an_old_stop_never_stops_a_later_run(tmp_path, pool):
    session = copy.deepcopy(TrainSession(pool))
    t0 = time.monotonic()
    assert session.request_stop(grace=0.2) is None  # nothing came: "Nothing is training now."
    assert time.monotonic() - t0 >= 0.2
    first = session.start(LONG, Limits(), tmp_path)
    stale = session.stop  # e.g. held by the first run's handler, whose cleanup runs late
    assert session.request_stop() is first and first.finished.wait(10)
    second = session.start(LONG, Limits(), tmp_path)
    stale.set()
    assert not second.stop.is_set() and not second.finished.wait(0.3)
    session.close()  # the tab closed: its run stops, and so would any Start still on its way
    assert second.finished.wait(10) and session.start(LONG, Limits(), tmp_path).finished.wait(10)
