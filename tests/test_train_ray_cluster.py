"""A lost node ends only the runs on it (issue 13): a two-node Ray cluster on this machine (ray.cluster_utils.Cluster:
a head and a worker node, one CPU each, on loopback), joined by its address as `--ray HOST:PORT` joins a real one, so
the actors import cnnviz from the copy Ray shipped to the nodes. One run trains on each node; the worker node is
removed; its run ends with the node's message and its curves so far, the other trains on, and the next run trains."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
from waiting import wait_until

from cnnviz.store.run_reader import read_run
from cnnviz.train.config import Limits, TrainConfig
from cnnviz.train.events import Failed, Finished, Stopped
from cnnviz.train.session import TrainSession

LONG = TrainConfig(arch="lenet5", dataset="digits", epochs=60, batch_size=32)
NODE = {"num_cpus": 1, "object_store_memory": 80 << 20}  # Ray's smallest object store


@pytest.fixture(scope="module")
def two_nodes():
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only: read when ray is first imported
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")  # as ray_pool.connect: never ray.init() behind our back
    pytest.importorskip("ray", reason="Ray is the optional 'cluster' extra: pip install -r requirements-cluster.txt")
    from ray.cluster_utils import Cluster

    from cnnviz.train.ray_pool import RayPool

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={**NODE, "include_dashboard": False})
    worker = cluster.add_node(**NODE)
    pool = RayPool(cluster.address, warm=True)
    try:
        wait_until(lambda: pool._check_starting(0.5) or all(h.state == "idle" for h in pool.handles()), timeout=240)
        yield cluster, worker, pool
    finally:
        pool.shutdown()
        cluster.shutdown()


@pytest.mark.slow
def test_a_lost_node_ends_only_the_run_on_it(tmp_path, two_nodes):
    cluster, worker, pool = two_nodes
    assert len(pool) == 2 and {h.info["node_id"] for h in pool.handles()} == {cluster.head_node.node_id, worker.node_id}
    sessions = [copy.deepcopy(TrainSession(pool)) for _ in range(2)]
    runs = {s: s.start(LONG, Limits(), tmp_path) for s in sessions}
    wait_until(lambda: all(w.last_epoch is not None for w in runs.values()))
    on_worker = {h.pid for h in pool.handles() if h.info["node_id"] == worker.node_id}
    (_, victim), (session, survivor) = sorted(runs.items(), key=lambda item: item[1].pid not in on_worker)
    cluster.remove_node(worker)
    assert victim.finished.wait(30) and isinstance(victim.end, Failed)
    assert "its Ray actor on " in victim.end.message and "was lost: its node left the cluster" in victim.end.message
    assert "kept in its run folder" in victim.end.message  # the epochs copied back before the node went
    record = read_run(Path(victim.started.run_dir))
    assert record.state == "failed" and len(record.history) >= 1
    step = survivor.progress.step
    wait_until(lambda: survivor.progress.step > step, timeout=10)  # the run on the head node never noticed
    assert not survivor.finished.is_set()
    nxt = copy.deepcopy(TrainSession(pool)).start(LONG.with_(epochs=1), Limits(), tmp_path)  # waits for a free actor
    assert session.request_stop() is survivor and survivor.finished.wait(10) and isinstance(survivor.end, Stopped)
    assert nxt.finished.wait(120) and isinstance(nxt.end, Finished), nxt.end
    assert nxt.pid == survivor.pid  # on the head node's actor: the only node left
