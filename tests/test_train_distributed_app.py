"""One run on two of the app's training workers (`--devices cpu,cpu`, devices per run 2): the workers form a gloo
process group, rank 0's events are the run's; Pause and Stop reach both ranks; a killed rank ends the run with a
message naming it and both workers are replaced; and the same through the web app's /train (digits, seconds each)."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from waiting import wait_until

from cnnviz.train.config import Limits, TrainConfig
from cnnviz.train.distributed import free_port
from cnnviz.train.events import Failed, Finished, Stopped
from cnnviz.train.session import TrainSession

pytestmark = pytest.mark.slow
PAIR = TrainConfig(arch="lenet5", dataset="digits", epochs=3, batch_size=32, world_size=2)
LIMITS = Limits(max_devices_per_run=2)


@pytest.fixture
def pool(cpu_pool):
    return cpu_pool  # conftest: this module's two warm CPU workers, with an empty run queue


def test_a_run_on_two_workers_finishes_with_its_curves_and_leaves_both_ready(tmp_path, pool):
    pids = sorted(pool.pids())
    session = TrainSession(pool)
    w = session.start(PAIR, LIMITS, tmp_path)
    assert w.finished.wait(120) and isinstance(w.end, Finished), w.end
    assert w.started.device == "cpu (worker 1) + cpu (worker 2) (one run, DDP)" and w.started.batch_size == 32
    assert [x for x, _, _ in w.curves.test] == [1.0, 2.0, 3.0] and w.curves.train[-1][0] == pytest.approx(3.0)
    assert w.end.test_acc > 0.5 and sum(map(sum, w.end.confusion)) == w.started.num_test == 359  # the whole test set
    assert [p.name for p in tmp_path.iterdir()] == [w.started.run_id]  # rank 0 alone wrote a run folder
    assert (tmp_path / w.started.run_id / "model.pt").is_file()
    wait_until(lambda: pool._state == ["idle", "idle"])
    assert sorted(pool.pids()) == pids  # both kept, warm
    one = session.start(PAIR.with_(world_size=1, epochs=1), LIMITS, tmp_path)  # their pipes hold nothing stale
    assert one.finished.wait(120) and isinstance(one.end, Finished) and one.started.device.startswith("cpu (worker")


def test_pause_and_stop_reach_both_ranks_and_the_weights_are_kept(tmp_path, pool):
    w = TrainSession(pool).start(PAIR.with_(epochs=100), LIMITS, tmp_path)
    wait_until(lambda: w.progress is not None)
    w.pause.set()
    wait_until(lambda: w.paused, timeout=30)
    step = w.progress.step
    time.sleep(1.0)
    assert w.paused and w.progress.step == step  # neither rank trains on: a lone rank would wait in its all-reduce
    w.pause.clear()
    wait_until(lambda: not w.paused and w.progress.step > step, timeout=30)
    w.stop.set()
    assert w.finished.wait(30)
    assert isinstance(w.end, Stopped) and w.end.checkpoint and Path(w.end.checkpoint).is_file()
    wait_until(lambda: pool._state == ["idle", "idle"])


def test_the_web_app_trains_one_run_on_two_workers(tmp_path, monkeypatch, pool):
    from gradio_client import Client

    from cnnviz.ui import build_demo, configure_queue, launch_options

    monkeypatch.setenv("CNNVIZ_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CNNVIZ_CHECKPOINTS", str(tmp_path / "checkpoints"))
    # `serve --devices cpu,cpu --max-devices-per-run 2`, on this module's two warm workers (starting two more is slow)
    demo = configure_queue(build_demo(LIMITS, trainers=pool), max_size=20)
    port = free_port()
    demo.launch(prevent_thread_lock=True, **launch_options(port=port))
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    try:
        train = dict(preset="demo-digits", arch="lenet5", dataset="digits", subset=0, epochs=3, batch_size=64,
                     optimizer="adam", lr=3e-3, schedule="onecycle", augment=False, device="cpu", seed=0, momentum=0.9,
                     weight_decay=0.0, label_smoothing=0.0)
        status, loss, *_ = client.predict(**train, world_size=2, api_name="/train")
        loss = loss.get("value", loss)
        assert "cpu (worker 1) + cpu (worker 2)" in status
        assert {row[2] for row in loss["data"]} == {"run 1 train", "run 1 test"}
        assert max(row[0] for row in loss["data"] if row[2] == "run 1 test") == 3.0
        with pytest.raises(Exception, match="Devices per run"):  # the cap is 2
            client.predict(**train, world_size=3, api_name="/train")
    finally:
        client.close()
        demo.close()


def test_a_killed_rank_ends_the_run_naming_it_and_both_workers_are_replaced(tmp_path, pool):
    before = set(pool.pids())
    w = TrainSession(pool).start(PAIR.with_(epochs=100), LIMITS, tmp_path)
    wait_until(lambda: w.progress is not None)
    (rank1,) = before - {w.pid}  # w.pid is rank 0's
    os.kill(rank1, signal.SIGKILL)
    assert w.finished.wait(60)
    assert isinstance(w.end, Failed)
    assert "rank 1, on cpu (worker" in w.end.message and "killed by SIGKILL" in w.end.message
    assert "all 2 are being replaced" in w.end.message and "Start the run again" in w.end.message
    wait_until(lambda: pool._state == ["idle", "idle"], timeout=240)
    assert not set(pool.pids()) & before  # rank 0 too: it was ended, not left waiting on a broken group
