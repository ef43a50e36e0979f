"""Runs on a Ray cluster (`--ray local`: one private Ray instance for this module, two CPU run slots): a run trains in
an actor and its curve arrives; Pause and Stop reach it within a batch; the run folder and checkpoint come back into
the app's runs folder (copied, never shared) and load; a killed actor ends only its run and the next run trains;
a multi-device run gets the one-device message. Also, without --ray nothing imports ray, and the flag's errors say
how to fix them. Digits, a few seconds a run."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from waiting import wait_until

from cnnviz.store.checkpoints import load_checkpoint
from cnnviz.store.run_reader import read_run
from cnnviz.store.run_state import MARKER, is_training
from cnnviz.train.config import Limits, TrainConfig
from cnnviz.train.evaluate import evaluate_checkpoint
from cnnviz.train.events import END_EVENTS, EpochEnded, Failed, Finished, Progress, RunStarted, Stopped
from cnnviz.train.ray_handle import describe_loss
from cnnviz.train.ray_trainer import RayTrainer
from cnnviz.train.ray_transfer import localized, pack_folder, unpack_folder
from cnnviz.train.run_queue import RunQueue
from cnnviz.train.session import TrainSession
from cnnviz.train.worker_process import Job
from cnnviz.train.worker_run import ONE_DEVICE_ONLY

REPO = Path(__file__).resolve().parents[1]
SHORT = TrainConfig(arch="lenet5", dataset="digits", epochs=3, batch_size=32)
LONG = SHORT.with_(epochs=60)  # still training when the test acts


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance (loopback only, no dashboard) with two CPU slots, both actors started and ready."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only: read when ray is first imported
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")  # as ray_pool.connect: never ray.init() behind our back
    pytest.importorskip("ray", reason="Ray is the optional 'cluster' extra: pip install -r requirements-cluster.txt")
    from cnnviz.train.ray_pool import RayPool

    pool = RayPool("local", num_cpus=2, warm=True)
    wait_until(lambda: pool._check_starting(0.5) or all(h.state == "idle" for h in pool.handles()), timeout=240)
    yield pool
    pool.shutdown()


@pytest.fixture
def pool(cluster):
    cluster.queue = RunQueue(slots=len(cluster))  # a fresh line per test
    return cluster


def session(pool) -> TrainSession:
    return copy.deepcopy(TrainSession(pool))  # what each browser session gets


@pytest.mark.slow
def test_a_run_trains_on_the_cluster_and_its_checkpoint_comes_back(tmp_path, pool):
    import ray

    w = session(pool).start(SHORT, Limits(), tmp_path / "own", owner="ann")
    assert w.finished.wait(120) and isinstance(w.end, Finished), w.end
    assert w.started.device.endswith("(Ray)") and w.pid in pool.pids() and w.pid != os.getpid()
    assert [x for x, _, _ in w.curves.test] == [1.0, 2.0, 3.0] and w.curves.train[-1][0] == pytest.approx(3.0)
    # The folder came back under the same run id, into the user's own runs root, and its paths are the local copy's.
    run_dir = tmp_path / "own" / w.started.run_id
    assert w.started.run_dir == str(run_dir) and w.end.checkpoint == str(run_dir / "model.pt")
    actor_info = next(h.info for h in pool.handles() if h.pid == w.pid)
    assert actor_info["pid"] != os.getpid() and not (run_dir / MARKER).exists() and not is_training(run_dir)
    record = read_run(run_dir)
    assert record.state == "finished" and len(record.history) == 3 and record.has_timelapse
    # The checkpoint loads here and scores what the remote run said: the oracle is the run's own Finished event.
    loaded = load_checkpoint(w.end.checkpoint)
    assert evaluate_checkpoint(loaded)["test_acc"] == pytest.approx(w.end.test_acc, abs=1e-6)
    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2


@pytest.mark.slow
def test_a_runs_events_come_back_in_order_through_the_handle(tmp_path, pool):
    handle = pool.acquire(threading.Event())
    try:
        handle.begin(Job(SHORT, Limits(), tmp_path, 0.05, Job.server_environment()))
        events = []
        while (message := handle.conn.recv())[0] != "done":  # the contract of a local worker's pipe
            events.append(message[1])
        assert not handle.conn.poll(0.2) and handle.alive()  # nothing after "done"; the actor stays for the next run
    finally:
        pool.release(handle, healthy=True)
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], Finished)
    assert sum(isinstance(e, END_EVENTS) for e in events) == 1
    steps = [e.step for e in events if isinstance(e, (Progress, EpochEnded))]
    assert steps == sorted(steps) and len(steps) > 6  # several progress points per epoch at 0.05 s
    assert [e.epoch for e in events if isinstance(e, EpochEnded)] == [1, 2, 3]
    assert Path(events[-1].checkpoint).is_file() and Path(events[0].run_dir).parent == tmp_path


@pytest.mark.slow
def test_pause_and_stop_reach_the_remote_run_within_a_batch(tmp_path, pool):
    s = session(pool)
    w = s.start(LONG, Limits(), tmp_path)
    wait_until(lambda: w.progress is not None)
    s.pause.set()
    wait_until(lambda: w.paused, timeout=5)
    held = w.progress.step
    time.sleep(0.6)
    assert w.progress.step == held and not w.finished.is_set()  # nothing trains while paused
    s.pause.clear()
    wait_until(lambda: not w.paused and w.progress.step > held, timeout=5)
    seen, asked = w.progress.step, time.monotonic()
    assert s.request_stop() is w and w.finished.wait(10)
    assert time.monotonic() - asked < 3  # a batch takes milliseconds; the rest is Ray's calls and the folder's copy
    end = w.end
    assert isinstance(end, Stopped) and end.message.startswith("stopped by the user") and end.checkpoint
    assert seen <= end.step < seen + 300  # where it was, not at the end of the run (60 epochs of 44 steps)
    assert read_run(Path(w.started.run_dir)).checkpoint == Path(end.checkpoint)  # the copy has the weights so far


@pytest.mark.slow
def test_a_killed_actor_ends_only_its_run_and_the_next_run_trains(tmp_path, pool):
    import ray

    victim, neighbour = session(pool), session(pool)
    v = victim.start(LONG, Limits(), tmp_path)
    n = neighbour.start(LONG, Limits(), tmp_path)
    wait_until(lambda: v.last_epoch is not None and n.progress is not None)  # one epoch's curve copied back
    killed = v.pid
    ray.kill(next(h for h in pool.handles() if h.pid == killed).actor)
    assert v.finished.wait(10) and isinstance(v.end, Failed)
    assert v.end.message.startswith("the training process stopped unexpectedly: its Ray actor on ")
    assert "was lost: it was killed (ray.kill)" in v.end.message and "kept in its run folder" in v.end.message
    assert v.end.run_id == v.started.run_id
    record = read_run(Path(v.started.run_dir))  # the epochs it finished are here, and it no longer reads as training
    assert record.state == "failed" and len(record.history) >= 1
    assert not n.finished.is_set() and n.progress.step > 0  # the neighbour never noticed
    nxt = session(pool).start(SHORT.with_(epochs=1), Limits(), tmp_path)  # in line behind the neighbour's run
    assert neighbour.request_stop() is n and n.finished.wait(10) and isinstance(n.end, Stopped)
    assert nxt.finished.wait(240) and isinstance(nxt.end, Finished), nxt.end
    assert killed not in pool.pids() and nxt.pid != killed


def test_an_actor_that_cannot_start_fails_the_run_with_why(tmp_path, cluster):
    from cnnviz.train.ray_pool import RayPool

    broken = RayPool("local")  # a second pool on the same instance, whose actors fail in their constructor
    broken.options, broken._init = {"num_gpus": 0, "num_cpus": 0}, {**broken._init, "threads": "four"}
    try:
        w = session(broken).start(SHORT, Limits(), tmp_path)
        assert w.finished.wait(60) and isinstance(w.end, Failed)
        assert w.end.message.startswith("the training actor could not start on the Ray cluster: TypeError")
        assert "'str' and 'int'" in w.end.message and broken.handles() == []  # Python's own words, from the node
    finally:
        broken.shutdown()  # not the instance: the module's pool made it


def test_a_run_asking_for_two_devices_is_told_to_use_one(tmp_path, cluster):
    w = session(cluster).start(SHORT.with_(world_size=2), Limits(), tmp_path)
    assert w.finished.wait(10) and isinstance(w.end, Failed) and w.end.message == ONE_DEVICE_ONLY


def test_the_app_without_ray_never_imports_it_and_exits_cleanly():
    # The plain interpreter exit is part of the check: a background thread still inside torch at exit aborted it once.
    code = ("import sys\nfrom cnnviz.ui import build_demo\nbuild_demo()\nfrom cnnviz.cli.serve import parse_args\n"
            "assert parse_args([]).ray is None\nimport cnnviz.train.ray_pool\nprint(sorted(m for m in sys.modules "
            "if m == 'ray' or m.startswith('ray.')), flush=True)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def serve(args: list[str], env: dict[str, str] | None = None, block_ray: bool = False) -> subprocess.CompletedProcess:
    """`cnnviz serve ARGS` in a fresh process; `block_ray`: as if Ray were not installed."""
    code = ("import sys\n" + ("sys.modules['ray'] = None\n" if block_ray else "") +
            "from cnnviz.cli.serve import main\nsys.exit(main(sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_ray_flag_errors_say_how_to_fix_them():
    missing = serve(["--ray", "local"], block_ray=True)
    assert missing.returncode == 2 and "pip install 'cnnviz[cluster]'" in missing.stderr
    assert "requirements-cluster.txt" in missing.stderr
    closed = serve([], env={"CNNVIZ_RAY": "127.0.0.1:1"})  # nothing listens on port 1
    assert closed.returncode == 2, closed.stderr[-2000:]
    assert "cannot reach the Ray cluster at '127.0.0.1:1'" in closed.stderr and "ray start --head" in closed.stderr
    assert "(from CNNVIZ_RAY='127.0.0.1:1')" in closed.stderr
    ddp = serve(["--ray", "local", "--max-devices-per-run", "2"], block_ray=True)  # refused before Ray is needed
    assert ddp.returncode == 2 and "--max-devices-per-run must be 1 with --ray" in ddp.stderr


def test_stop_and_pause_follow_the_newest_call_whatever_order_the_actor_threads_run_them():
    trainer = RayTrainer()  # the actor's body, called here as Ray's threads would call it
    stop, pause = trainer._new_run(1)
    trainer.control("pause", True, 3)
    trainer.control("pause", False, 2)  # an older call that ran late changes nothing
    assert pause.is_set() and not stop.is_set()
    trainer.control("stop", True, 5)  # the next run's Stop (its run call is number 4) ran before that run started
    stop2, pause2 = trainer._new_run(4)
    assert stop2.is_set() and not pause2.is_set()  # the early Stop still reaches it; the old run's Pause does not
    trainer.control("pause", True, 6)
    stop.set()  # the old run ending (its generator's clean-up) cannot touch the new run
    trainer.control("stop", False, 7)
    assert pause2.is_set() and not stop2.is_set()


DIED = "The actor died unexpectedly before finishing this task.\n\tclass_name: RayTrainer\n\tpid: 7\n\tip: 10.0.0.7\n"
WORKER_DIED = ("The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Some common causes "
               "include: (1) the process was killed by the OOM killer due to high memory usage ... to prevent node "
               "deaths by resource contention")  # Ray's text for a SIGKILLed or crashed actor, abridged


@pytest.mark.parametrize("text, why", [
    (DIED + "The actor is dead because it was killed by `ray.kill`.", "it was killed (ray.kill)"),
    (DIED + "The actor died because its node has died. Node Id: 3638a0", "its node left the cluster"),
    (DIED + WORKER_DIED, "its worker process died (killed, out of memory, or a crash in native code)"),
])
def test_a_lost_actor_is_explained_in_words(text, why):
    assert describe_loss(RuntimeError(text), "gpu-3") == f"its Ray actor on gpu-3 was lost: {why}"


def test_a_new_actor_removes_the_scratch_folders_of_killed_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / f"cnnviz-ray-{dead.stdout.strip()}-abc" / "run-1").mkdir(parents=True)  # ray.kill skipped its clean-up
    trainer = RayTrainer()
    assert [p.name for p in tmp_path.iterdir()] == [trainer.scratch.name]  # its own, alive, stays


def test_the_run_folder_copy_replaces_the_old_one_and_points_events_at_it(tmp_path):
    remote = tmp_path / "node" / "run-1"
    remote.mkdir(parents=True)
    (remote / "config.json").write_text(json.dumps({"arch": "lenet5"}))
    (remote / "metrics.csv").write_text("epoch\n1\n")
    (remote / MARKER).write_text("{}")  # the node's mark of its own process: never copied
    (remote / ".model.pt-1-x.tmp").write_bytes(b"half")  # an atomic write in progress: never copied
    local = tmp_path / "runs" / "run-1"
    unpack_folder(b"".join(pack_folder(remote, chunk=7)), local, training=True)
    assert sorted(p.name for p in local.iterdir()) == ["config.json", "metrics.csv", MARKER]  # this process's mark
    assert is_training(local)
    (remote / "metrics.csv").write_text("epoch\n1\n2\n")
    (remote / "model.pt").write_bytes(b"weights")
    unpack_folder(b"".join(pack_folder(remote)), local, training=False)
    assert (local / "metrics.csv").read_text() == "epoch\n1\n2\n" and (local / "model.pt").read_bytes() == b"weights"
    assert not is_training(local) and sorted(p.name for p in local.parent.iterdir()) == ["run-1"]  # no leftovers
    ev = Finished(run_id="run-1", checkpoint=str(remote / "model.pt"), test_loss=0.1, test_acc=0.9, confusion=(),
                  per_class_acc=(), seconds=1.0)
    assert localized(ev, str(remote), local).checkpoint == str(local / "model.pt")
    progress = Progress(1, 1, 1, 1, 0.1, 0.5, 1.0, 1.0, 0.1)
    assert localized(progress, str(remote), local) is progress  # no path in it: unchanged
