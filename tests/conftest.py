"""Shared fixtures: isolated checkpoints/ and runs/ folders, so tests never touch the repository's own."""
import os

import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture
def workdirs(tmp_path, monkeypatch):
    """Point checkpoints/ and runs/ at fresh temporary folders for one test."""
    ck, runs = tmp_path / "checkpoints", tmp_path / "runs"
    ck.mkdir()
    runs.mkdir()
    monkeypatch.setenv("CNNVIZ_CHECKPOINTS", str(ck))
    monkeypatch.setenv("CNNVIZ_RUNS", str(runs))
    return ck, runs


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small models: one torch thread is about as fast, and on a busy 2-core machine two OpenMP threads waiting for
    each other are many times slower. Use with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def two_cpu_workers():
    """Two warm CPU training workers (`--devices cpu,cpu`), started once per test module."""
    from waiting import wait_until

    from cnnviz.train.worker_pool import WorkerPool

    pool = WorkerPool(["cpu", "cpu"], warm=True)
    wait_until(lambda: len(pool.pids()) == 2 and pool._state == ["idle", "idle"], timeout=240)
    yield pool
    pool.shutdown()


@pytest.fixture
def cpu_pool(two_cpu_workers):
    """The two workers with a fresh run queue: each test starts with an empty line."""
    from cnnviz.train.run_queue import RunQueue

    two_cpu_workers.queue = RunQueue(slots=len(two_cpu_workers))
    return two_cpu_workers
