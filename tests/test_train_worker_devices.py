"""Which training workers a server runs and how each is set up (no processes here): --devices, the GPU each worker
may see (CUDA stand-ins: nothing needs a GPU), niceness and the measured thread count, the multi-worker queue, and how
a dead worker's end is put into words."""
from __future__ import annotations

import signal
import threading

import pytest

from cnnviz.train.run_queue import QueueFull, RunQueue
from cnnviz.train.worker_devices import (
    NICE,
    DeviceError,
    WorkerSetup,
    choose_threads,
    measure_threads,
    parse_devices,
    worker_setups,
)
from cnnviz.train.worker_pool import exit_description


@pytest.mark.parametrize("spec, gpus, expected", [
    ("auto", 0, ("cpu",)),
    ("auto", 4, ("cuda:0", "cuda:1", "cuda:2", "cuda:3")),
    ("cpu", 4, ("cpu",)),
    ("cpu,cpu", 0, ("cpu", "cpu")),
    (" CUDA:1 , cuda:0", 2, ("cuda:1", "cuda:0")),
    ("cuda", 2, ("cuda:0", "cuda:1")),
    ("cuda:0,cpu", 1, ("cuda:0", "cpu")),
])
def test_devices_flag(spec, gpus, expected):
    assert parse_devices(spec, gpus=gpus) == expected


@pytest.mark.parametrize("spec, gpus, message", [
    ("cuda:2", 2, r"no GPU cuda:2 here \(visible: cuda:0, cuda:1\)"),
    ("cuda:0", 0, r"no GPU cuda:0 here \(visible: none\)"),
    ("cuda", 0, "no CUDA GPU is visible here; use cpu or auto"),
    ("gpu", 1, "'gpu' is not a device; use auto, cpu, cuda or cuda:N"),
    ("cpu,,cpu", 0, "comma-separated list"),
    ("", 0, "comma-separated list"),
])
def test_a_device_that_is_not_here_is_refused_with_what_is(spec, gpus, message):
    with pytest.raises(DeviceError, match=message):
        parse_devices(spec, gpus=gpus)


def test_gpus_are_only_counted_when_the_flag_needs_them():
    def no_count():
        raise AssertionError("counted GPUs for a CPU-only flag")

    assert parse_devices("cpu,cpu", gpus=no_count) == ("cpu", "cpu")


def test_each_gpu_worker_sees_only_its_own_gpu_and_a_cpu_worker_none():
    gpu, cpu = worker_setups(["cuda:3", "cpu"], cores=16)
    assert gpu.environment() == {"CUDA_VISIBLE_DEVICES": "3"} and gpu.local_device() == "cuda:0" and gpu.is_cuda
    assert cpu.environment() == {"CUDA_VISIBLE_DEVICES": ""} and cpu.local_device() == "cpu" and not cpu.is_cuda
    assert gpu.nice == 0 and cpu.nice == NICE > 0  # only CPU training yields to the web server


def test_cpu_workers_share_the_cores_and_workers_on_one_device_are_told_apart():
    a, b = worker_setups(("cpu", "cpu"), cores=8)
    assert (a.max_threads, b.max_threads) == (4, 4)
    assert (a.name, b.name) == ("cpu (worker 1)", "cpu (worker 2)")
    (only,) = worker_setups(("cpu",), cores=2)
    assert only.max_threads == 2 and only.name == "cpu"
    gpus = worker_setups([f"cuda:{i}" for i in range(4)], cores=16)
    assert [g.max_threads for g in gpus] == [4] * 4 and [g.name for g in gpus] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]


def test_the_fewest_threads_that_are_nearly_as_fast_are_chosen():
    assert choose_threads({1: 1.0, 2: 0.55, 3: 0.5}) == 2  # 0.55 is within 20% of the best
    assert choose_threads({1: 1.0, 2: 0.9}) == 1  # a second core buys 10%: the server keeps it
    assert choose_threads({1: 1.0, 2: 3.0}) == 1  # a busy machine: more threads are slower


def test_the_thread_count_is_measured_and_left_set():
    import time

    current = {"n": 0}
    speed = {1: 0.004, 2: 0.002}  # two threads twice as fast

    def step():
        time.sleep(speed[current["n"]])

    def set_threads(n):
        current["n"] = n

    chosen, seconds = measure_threads(2, step, set_threads, repeats=2)
    assert chosen == 2 and current["n"] == 2 and set(seconds) == {1, 2} and seconds[2] < seconds[1]


def test_a_setup_travels_to_a_spawned_process():
    import pickle

    setup = WorkerSetup("cuda:1", 0, 4, "cuda:1")
    assert pickle.loads(pickle.dumps(setup)) == setup


def test_two_workers_take_the_first_two_runs_and_the_third_waits_for_either():
    queue = RunQueue(slots=2)
    a, b, c, d = (queue.join(max_waiting=5) for _ in range(4))
    assert [queue.position(t) for t in (a, b, c, d)] == [0, 0, 1, 2]
    assert queue.next_after(a) is c and queue.next_after(b) is c and queue.next_after(c) is None
    never = threading.Event()
    assert queue.wait_turn(a, never) and queue.wait_turn(b, never)
    queue.leave(b)  # the second worker comes free first: the next in line takes it
    assert queue.position(c) == 0 and queue.position(d) == 1 and queue.wait_turn(c, never)


def test_a_full_multi_worker_queue_counts_only_the_waiting_runs():
    queue = RunQueue(slots=2)
    for _ in range(3):
        queue.join(max_waiting=1)  # two train, one waits
    with pytest.raises(QueueFull, match=r"\(1 run is waiting, this server allows 1\)"):
        queue.join(max_waiting=1)
    with pytest.raises(ValueError, match="at least one worker"):
        RunQueue(slots=0)


@pytest.mark.parametrize("code, words", [
    (-signal.SIGKILL, "it was killed by SIGKILL (the system may have run out of memory)"),
    (-signal.SIGSEGV, "it was killed by SIGSEGV (a crash in native code)"),
    (3, "it exited with code 3"),
    (None, "it stopped answering"),
])
def test_how_a_worker_ended_is_said_in_words(code, words):
    assert exit_description(code) == words


def test_the_serve_flag_and_its_variable(capsys):
    from cnnviz.cli import serve

    assert serve.parse_args([], environ={}).devices == "auto"
    assert serve.check_devices(serve.parse_args(["--devices", "cpu,cpu"], environ={})) == ("cpu", "cpu")
    args = serve.parse_args([], environ={"CNNVIZ_DEVICES": "cpu"})
    assert serve.check_devices(args) == ("cpu",) and args.from_env == {"devices": "CNNVIZ_DEVICES"}
    with pytest.raises(SystemExit) as exc:
        serve.check_devices(serve.parse_args([], environ={"CNNVIZ_DEVICES": "tpu"}))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "'tpu' is not a device" in err and "(from CNNVIZ_DEVICES='tpu')" in err
