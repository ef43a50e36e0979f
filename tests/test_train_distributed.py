"""One run across processes (train.distributed, DDP), the parts that need no second process: shards, torchrun's
environment, the settings' checks, the world-size-1 DDP path against the plain one, and how the app's worker pool and
run thread refuse what cannot work. The 2-process runs are in test_train_distributed_ranks.py / _app.py."""
from __future__ import annotations

import threading

import pytest
import torch

from cnnviz.store.checkpoints import load_checkpoint
from cnnviz.train.config import ConfigError, Limits, TrainConfig, config_problems
from cnnviz.train.distributed import (
    PEER_LOST,
    GroupSpec,
    failure_detail,
    free_port,
    is_group_error,
    is_peer_lost,
    shard,
    shard_range,
    spec_from_environment,
)
from cnnviz.train.engine import fit
from cnnviz.train.events import EpochEnded, Failed, Finished, RunStarted
from cnnviz.train.form import config_from_form, devices_cap, preset_values
from cnnviz.train.run_curves import RunCurves
from cnnviz.train.run_queue import RunQueue
from cnnviz.train.worker_pool import WorkerPool, WorkerUnavailable
from cnnviz.train.worker_run import ONE_DEVICE_ONLY, Worker

pytestmark = pytest.mark.usefixtures("one_torch_thread")
DIGITS = TrainConfig(arch="lenet5", dataset="digits", epochs=2, batch_size=32)


def test_every_global_batch_splits_into_disjoint_equal_shards_that_cover_it():
    perm = torch.randperm(1438, generator=torch.Generator().manual_seed(0))
    for b in range(1438 // 64):
        batch = perm[b * 64:(b + 1) * 64]
        parts = [shard(batch, r, 4) for r in range(4)]
        assert all(len(p) == 16 for p in parts)
        assert torch.equal(torch.cat(parts), batch)  # nothing lost, nothing twice
    with pytest.raises(ValueError, match="does not split evenly over 3"):
        shard(perm[:64], 0, 3)


def test_the_same_seed_gives_every_rank_the_same_permutation_and_so_the_same_shards():
    """What the engine relies on: each rank draws the epoch's permutation from its own generator seeded alike."""
    def rank_view(rank: int, seed: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        return [shard(torch.randperm(1438, generator=gen)[:64], rank, 2) for _ in range(3)]  # three epochs

    for epoch in range(3):
        a, b = rank_view(0, 7)[epoch], rank_view(1, 7)[epoch]
        assert set(a.tolist()).isdisjoint(b.tolist())
        assert torch.equal(a, rank_view(0, 7)[epoch])  # a rerun with the same seed: the same shard
    assert not torch.equal(rank_view(0, 7)[0], rank_view(0, 8)[0])


def test_uneven_test_sets_are_split_into_parts_that_differ_by_at_most_one():
    for n, world in ((359, 2), (10, 3), (2, 4)):
        ranges = [shard_range(n, r, world) for r in range(world)]
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        sizes = [b - a for a, b in ranges]
        assert max(sizes) - min(sizes) <= 1


def test_torchruns_environment_makes_the_group_and_a_plain_process_has_none():
    assert spec_from_environment({}) is None
    spec = spec_from_environment({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.2",
                                  "MASTER_PORT": "29400", "CNNVIZ_DDP_TIMEOUT": "30"})
    assert (spec.rank, spec.world_size, spec.local_rank, spec.host, spec.port) == (1, 4, 1, "10.0.0.2", 29400)
    assert spec.from_env and spec.init_method == "env://" and spec.timeout == 30
    assert GroupSpec(0, 2, "127.0.0.1", 1234).init_method == "tcp://127.0.0.1:1234"
    with pytest.raises(ValueError, match="start the run with torchrun"):
        spec_from_environment({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="rank must be from 0 to 1"):
        spec_from_environment({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="CNNVIZ_DDP_TIMEOUT"):
        spec_from_environment({"RANK": "0", "WORLD_SIZE": "2", "CNNVIZ_DDP_TIMEOUT": "0"})


def test_the_batch_must_split_evenly_and_the_servers_cap_holds():
    assert config_problems(DIGITS.with_(world_size=2, batch_size=64)) == []
    (odd,) = config_problems(DIGITS.with_(world_size=3, batch_size=64))
    assert "does not split evenly over 3 devices" in odd and "use 63 or 66" in odd
    (capped,) = config_problems(DIGITS.with_(world_size=4), Limits(max_devices_per_run=2))
    assert "from 1 to 2" in capped and "cap" in capped
    assert config_problems(DIGITS.with_(world_size=0))  # and nothing below 1


def test_a_world_size_without_a_group_fails_saying_how_to_start_it():
    (ev,) = list(fit(DIGITS.with_(world_size=2), save=False))
    assert isinstance(ev, Failed) and "torchrun --nproc-per-node 2 -m cnnviz train" in ev.message


def test_the_ddp_path_with_one_process_trains_exactly_as_without_and_saves_a_plain_checkpoint(tmp_path):
    """World size 1 through DDP (a real gloo group of one): the same curve, and a checkpoint without `module.`."""
    plain = list(fit(DIGITS, save=False, callbacks=[]))
    ddp = list(fit(DIGITS, runs_root=tmp_path, callbacks=[], group=GroupSpec(0, 1, port=free_port())))
    assert "1 process, DDP over gloo" in ddp[0].device and isinstance(ddp[0], RunStarted)
    rows = [[x for e in run if isinstance(e, EpochEnded) for x in (e.train_loss, e.val_loss, e.val_acc)]
            for run in (plain, ddp)]
    assert rows[0] == pytest.approx(rows[1], abs=1e-6)
    end = ddp[-1]
    assert isinstance(end, Finished) and end.test_acc == plain[-1].test_acc
    keys = list(torch.load(end.checkpoint, map_location="cpu", weights_only=True)["state_dict"])
    assert keys and not any(k.startswith("module.") for k in keys)
    assert load_checkpoint(end.checkpoint).meta.metrics["test_acc"] == end.test_acc
    assert not torch.distributed.is_initialized()  # the run left its group


def test_group_errors_are_told_apart_from_model_errors():
    gloo = RuntimeError("[/__w/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer "
                        "[127.0.0.1]:22718. This is typically caused by a remote worker crashing.")
    assert is_group_error(gloo) and failure_detail(gloo) == "Connection closed by peer [127.0.0.1]:22718"
    assert not is_group_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x6)"))
    assert is_peer_lost(PEER_LOST.format(detail="x")) and not is_peer_lost("the loss became nan")


def test_the_form_offers_as_many_devices_as_the_cap_and_the_workers_allow():
    pool = WorkerPool(["cpu", "cpu", "cpu"])  # not started: nothing here trains
    try:
        assert devices_cap(Limits(max_devices_per_run=2), pool) == 2
        assert devices_cap(Limits(), pool) == 3 and devices_cap(Limits(max_devices_per_run=1), pool) == 1
        assert devices_cap(Limits(max_devices_per_run=8), type("RayLike", (), {"devices": ("cpu",) * 4})()) == 1
        values = {**preset_values("demo-digits", Limits()), "world_size": 3}
        with pytest.raises(ConfigError, match="devices per run must be a whole number from 1 to 2"):
            config_from_form("demo-digits", values, Limits(max_devices_per_run=2), ["digits"])
        assert config_from_form("demo-digits", {**values, "world_size": 2.0}, Limits(), ["digits"]).world_size == 2
        with pytest.raises(WorkerUnavailable, match="set 'devices per run' to 3 or less"):
            pool.acquire_group(threading.Event(), 4)
    finally:
        pool.shutdown()


def test_a_pool_without_groups_ends_a_multi_device_run_with_a_clear_message():
    class OneDevicePool:  # the trainer-handle contract without acquire_group (a Ray cluster's pool)
        queue, devices = RunQueue(slots=1), ("cpu",)

    pool = OneDevicePool()
    ticket = pool.queue.join(8)
    w = Worker(DIGITS.with_(world_size=2), Limits(), threading.Event(), threading.Event(), RunCurves(1, "x", 2), ticket,
               pool)
    w.start()
    assert w.finished.wait(10)
    assert isinstance(w.end, Failed) and w.end.message == ONE_DEVICE_ONLY and len(pool.queue) == 0


def test_the_lecturer_caps_devices_per_run_with_a_flag_or_its_variable(capsys):
    from cnnviz.cli.serve import UsageError, check_limits, parse_args

    assert check_limits(parse_args([], environ={})).max_devices_per_run == 1  # one device per run unless allowed
    assert check_limits(parse_args(["--max-devices-per-run", "4"], environ={})).max_devices_per_run == 4
    assert check_limits(parse_args([], environ={"CNNVIZ_MAX_DEVICES_PER_RUN": "2"})).max_devices_per_run == 2
    with pytest.raises(UsageError):
        check_limits(parse_args([], environ={"CNNVIZ_MAX_DEVICES_PER_RUN": "0"}))
    assert "--max-devices-per-run must be from 1 to 1024 (from CNNVIZ_MAX_DEVICES_PER_RUN=0)" in capsys.readouterr().err


def test_a_trainer_handle_says_its_kind_and_local_device_and_can_be_killed_before_it_starts():
    import multiprocessing as mp

    from cnnviz.train.worker_devices import WorkerSetup
    from cnnviz.train.worker_pool import TrainerProcess

    ctx = mp.get_context("spawn")
    gpu = TrainerProcess(ctx, 0, WorkerSetup("cuda:1", 0, 1), None)
    cpu = TrainerProcess(ctx, 1, WorkerSetup("cpu", 10, 1, "cpu (worker 2)"), None)
    assert (gpu.is_cuda, gpu.local_device(), gpu.label) == (True, "cuda:0", "cuda:1")  # it sees only its GPU
    assert (cpu.is_cuda, cpu.local_device(), cpu.label) == (False, "cpu", "cpu (worker 2)")
    cpu.kill()  # never started: nothing to end, no error
    assert cpu.pid is None
