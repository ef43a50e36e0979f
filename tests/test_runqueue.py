"""The training queue: first come first served, a cap on waiting runs, cancellation while waiting."""
from __future__ import annotations

import threading
import time

import pytest

from cnnviz.train.run_queue import QueueFull, RunQueue


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
