"""Runs train in worker processes, never in the server: two at once on two CPU workers, events in order across the
pipe, Pause and Stop across the process boundary, a closed tab, and a worker killed mid-run (digits, a few seconds
each)."""
from __future__ import annotations

import copy
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from waiting import wait_until

from cnnviz.train.config import Limits, TrainConfig
from cnnviz.train.events import END_EVENTS, EpochEnded, Failed, Finished, Progress, RunStarted, Stopped
from cnnviz.train.run_view import status_html
from cnnviz.train.session import TrainSession
from cnnviz.train.worker_devices import NICE
from cnnviz.train.worker_process import Job

SHORT = TrainConfig(arch="lenet5", dataset="digits", epochs=3, batch_size=32)
LONG = SHORT.with_(epochs=50)  # still training when the test acts


@pytest.fixture
def pool(cpu_pool):
    return cpu_pool  # conftest: this module's two warm CPU workers, with an empty run queue


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its parent counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_two_runs_train_at_once_on_two_workers_each_with_its_own_curves(tmp_path, pool):
    ann, bob = (copy.deepcopy(TrainSession(pool)) for _ in range(2))
    a = ann.start(SHORT, Limits(), tmp_path, owner="ann")
    b = bob.start(SHORT.with_(seed=1, lr=3e-3), Limits(), tmp_path, owner="bob")
    wait_until(lambda: a.progress is not None and b.progress is not None)
    assert not a.finished.is_set() and not b.finished.is_set()  # both training at the same moment
    assert {a.pid, b.pid} == set(pool.pids()) and a.pid != b.pid and os.getpid() not in (a.pid, b.pid)
    for proc in pool._procs:  # how each worker set itself up (CPU workers: no GPU visible, niced, threads measured)
        assert proc.info["cuda_visible_devices"] == "" and proc.info["nice"] >= NICE
        assert proc.info["threads"] in proc.info["step_ms"] and proc.info["free_bytes"] > 0
    assert a.finished.wait(120) and b.finished.wait(120)
    assert isinstance(a.end, Finished) and isinstance(b.end, Finished)
    assert {a.started.device, b.started.device} == {"cpu (worker 1)", "cpu (worker 2)"}  # shown in the status line
    assert a.started.device in status_html(a)
    for w, session in ((a, ann), (b, bob)):
        assert [x for x, _, _ in w.curves.test] == [1.0, 2.0, 3.0]  # its own epochs, no one else's
        assert session.runs == [w.curves] and w.curves.train[-1][0] == pytest.approx(3.0)
        assert Path(w.end.checkpoint).parent.name == w.started.run_id
    assert a.end.checkpoint != b.end.checkpoint and a.started.config["seed"] == 0 and b.started.config["seed"] == 1


def test_a_runs_events_cross_the_pipe_in_order(tmp_path, pool):
    proc = pool.acquire(threading.Event())
    try:
        proc.begin(Job(SHORT, Limits(), tmp_path, 0.05, Job.server_environment()))
        events = []
        while (message := proc.conn.recv())[0] != "done":
            events.append(message[1])
    finally:
        pool.release(proc, healthy=True)
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], Finished)
    assert sum(isinstance(e, END_EVENTS) for e in events) == 1
    steps = [e.step for e in events if isinstance(e, (Progress, EpochEnded))]
    assert steps == sorted(steps) and len(steps) > 6  # several progress points per epoch at 0.05 s
    assert [e.epoch for e in events if isinstance(e, EpochEnded)] == [1, 2, 3]
    assert [e.epoch for e in events if isinstance(e, (Progress, EpochEnded))] == sorted(
        e.epoch for e in events if isinstance(e, (Progress, EpochEnded)))


def test_pause_and_stop_reach_the_worker_within_a_batch(tmp_path, pool):
    session = copy.deepcopy(TrainSession(pool))
    w = session.start(LONG, Limits(), tmp_path)
    wait_until(lambda: w.progress is not None)
    session.pause.set()
    wait_until(lambda: w.paused, timeout=5)
    held = w.progress.step
    time.sleep(0.6)
    assert w.progress.step == held and not w.finished.is_set()  # nothing trains while paused
    session.pause.clear()
    wait_until(lambda: not w.paused and w.progress.step > held, timeout=5)
    seen = w.progress.step
    asked = time.monotonic()
    assert session.request_stop() is w and w.finished.wait(10)
    assert time.monotonic() - asked < 3  # a batch of 32 digits takes milliseconds; the rest is the pipe and the save
    end = w.end
    assert isinstance(end, Stopped) and end.message.startswith("stopped by the user") and end.checkpoint
    assert seen <= end.step < seen + 200  # it stopped where it was, not at the end of the run (50 epochs of 56 steps)


def test_closing_the_tab_stops_its_run_and_frees_the_worker(tmp_path, pool):
    session = copy.deepcopy(TrainSession(pool))
    w = session.start(LONG, Limits(), tmp_path)
    wait_until(lambda: w.progress is not None)
    session.close()  # what gr.State's delete_callback calls when the tab goes
    assert w.finished.wait(10) and isinstance(w.end, Stopped)
    assert w.pid in pool.pids() and not gone(w.pid)  # the worker stays, warm, for the next run
    other = copy.deepcopy(TrainSession(pool)).start(SHORT.with_(epochs=1), Limits(), tmp_path)
    assert other.finished.wait(60) and isinstance(other.end, Finished)


def test_a_worker_killed_mid_run_ends_only_its_run_and_the_next_in_line_trains(tmp_path, pool):
    victim, neighbour, waiting = (copy.deepcopy(TrainSession(pool)) for _ in range(3))
    v = victim.start(LONG, Limits(), tmp_path)
    n = neighbour.start(LONG, Limits(), tmp_path)
    wait_until(lambda: v.progress is not None and n.progress is not None)
    w = waiting.start(SHORT.with_(epochs=1), Limits(), tmp_path)  # both workers busy: it waits
    assert "Waiting in the training queue: place 1 in line, all 2 training workers busy" in status_html(w)
    killed = v.pid
    os.kill(killed, signal.SIGKILL)
    assert v.finished.wait(10)
    assert isinstance(v.end, Failed) and v.end.message.startswith(
        "the training process stopped unexpectedly: it was killed by SIGKILL (the system may have run out of memory).")
    assert v.end.run_id == v.started.run_id
    wait_until(lambda: gone(killed), timeout=10)
    assert w.finished.wait(240) and isinstance(w.end, Finished)  # on the replacement worker
    assert w.pid not in (killed, n.pid) and not n.finished.is_set()  # the neighbour never noticed
    assert neighbour.request_stop() is n and n.finished.wait(10) and isinstance(n.end, Stopped)
    assert killed not in pool.pids() and len(pool.pids()) == 2
