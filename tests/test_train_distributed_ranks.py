"""`torchrun --nproc-per-node 2 -m cnnviz train ...` on the CPU: two gloo ranks train one run. Rank 0 alone prints
(exactly one finished event) and saves (one checkpoint, loadable like any other, its test accuracy what `cnnviz eval`
measures and within a few points of one process with the same settings); a killed rank ends the run with one clear
line on rank 0 (digits, seconds of training; starting torchrun and its two processes dominates)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnviz.store.checkpoints import load_checkpoint
from cnnviz.train.config import TrainConfig
from cnnviz.train.engine import fit
from cnnviz.train.evaluate import evaluate_checkpoint
from cnnviz.train.events import Finished

pytestmark = pytest.mark.slow
ARGS = ["--preset", "demo-digits", "--epochs", "4", "--device", "cpu"]  # LeNet-5, batch 64: 32 per rank


def torchrun(*args: str, **kw) -> subprocess.Popen:
    """torchrun with two local processes on a free port, from the repository (so `-m cnnviz` is this checkout)."""
    env = {**os.environ, "CNNVIZ_DDP_TIMEOUT": "60", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "cnnviz", "train", *args], cwd=Path(__file__).parents[1], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_two_ranks_make_one_run_with_one_finished_event_and_one_plain_checkpoint(workdirs, one_torch_thread):
    _, runs = workdirs
    proc = torchrun(*ARGS, "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert kinds.count("run_started") == 1 and kinds.count("finished") == 1 and kinds[-1] == "finished"  # rank 0 only
    assert kinds.count("epoch_end") == 4 and "rank 1" not in err
    started, finished = events[0], events[-1]
    assert "2 processes, DDP over gloo" in started["device"] and started["config"]["world_size"] == 2
    assert started["batch_size"] == 64  # the global batch, as the preset says
    assert [p.name for p in runs.iterdir()] == [started["run_id"]]  # one run folder, one checkpoint
    assert sorted(p.name for p in (runs / started["run_id"]).glob("*.pt")) == ["model.pt"]
    loaded = load_checkpoint(finished["checkpoint"])  # strict load: no `module.` prefixes
    assert evaluate_checkpoint(loaded)["test_acc"] == pytest.approx(finished["test_acc"], abs=1e-9)  # the whole test set
    # One process, the same settings: LeNet has no batch norm, so the averaged gradients are the same maths.
    alone = list(fit(TrainConfig(**{**started["config"], "world_size": 1}), save=False, callbacks=[]))[-1]
    assert isinstance(alone, Finished)
    assert abs(alone.test_acc - finished["test_acc"]) <= 0.03, (alone.test_acc, finished["test_acc"])


def rank_pid(parent: int, rank: int, timeout: float = 60.0) -> int:
    """The pid of torchrun's worker with RANK=rank."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != parent:
                    continue
                env = (stat.parent / "environ").read_bytes().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            if f"RANK={rank}".encode() in env:
                return int(stat.parent.name)
        time.sleep(0.1)
    raise AssertionError(f"no rank {rank} under {parent}")


def test_a_killed_rank_ends_the_run_with_one_clear_line_on_rank_0(workdirs):
    proc = torchrun(*ARGS[:2], "--epochs", "200", "--json")
    try:
        assert json.loads(proc.stdout.readline())["event"] == "run_started"  # training now
        os.kill(rank_pid(proc.pid, 1), signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    ours = [line for line in err.splitlines() if line.startswith(("error:", "rank 1:"))]
    assert len(ours) == 1, err[-3000:]
    assert "another process of this distributed run stopped" in ours[0] or "ended from outside" in ours[0]
    assert "start the run again" in ours[0].lower()
