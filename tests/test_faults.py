"""Faults: a process killed mid-save, unwritable folders, a simulated CUDA out-of-memory; results are never lost silently."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from cnnviz.models import get_model
from cnnviz.store.checkpoints import build_meta, load_checkpoint, save_checkpoint
from cnnviz.train.config import TrainConfig
from cnnviz.train.engine import _Run, fit
from cnnviz.train.events import Failed, Finished

SAVER = """
import sys, torch
from cnnviz.store.checkpoints import build_meta, save_checkpoint
from cnnviz.models import get_model
model = get_model("vgg11", 3, 10, 32)
meta = build_meta(arch="vgg11", dataset="cifar10", class_names=tuple("abcdefghij"), in_channels=3, input_size=32,
                  mean=(0.5,) * 3, std=(0.25,) * 3)
print("ready", flush=True)
while True:
    save_checkpoint(model, meta, sys.argv[1])
"""


def test_killing_the_process_during_saves_never_corrupts_the_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    model = get_model("vgg11", 3, 10, 32)
    meta = build_meta(arch="vgg11", dataset="cifar10", class_names=tuple("abcdefghij"), in_channels=3, input_size=32,
                      mean=(0.5,) * 3, std=(0.25,) * 3)
    save_checkpoint(model, meta, path)
    for delay in (0.3, 0.7, 1.1):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)  # a 37 MB save takes a moment: the kill lands mid-write most of the time
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        loaded = load_checkpoint(path)  # whatever the timing, the file is a complete checkpoint
        assert loaded.meta.arch == "vgg11"


def test_unwritable_runs_folder_still_shows_the_results(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the runs folder should be")
    cfg = TrainConfig(arch="lenet5", dataset="digits", epochs=1, batch_size=64, lr=3e-3)
    end = list(fit(cfg, runs_root=blocker))[-1]
    assert isinstance(end, Finished) and end.test_acc > 0.1
    assert end.checkpoint is None and "not writable" in end.warning


def test_disk_full_during_the_final_save_is_a_warning(tmp_path, monkeypatch):
    from cnnviz.store import run_writer as runlog

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runlog, "save_checkpoint", full)
    end = list(fit(TrainConfig(arch="lenet5", dataset="digits", epochs=1, batch_size=64), runs_root=tmp_path))[-1]
    assert isinstance(end, Finished) and end.checkpoint is None
    assert "No space left" in end.warning and end.test_acc > 0


def test_out_of_memory_ends_the_run_cleanly_and_the_next_run_works(tmp_path, monkeypatch):
    """Simulated: no GPU here, so train_step raises torch.OutOfMemoryError as CUDA would."""
    real = _Run.train_step

    def oom(self, x, y):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(_Run, "train_step", oom)
    cfg = TrainConfig(arch="lenet5", dataset="digits", epochs=1, batch_size=64)
    end = list(fit(cfg, save=False))[-1]
    assert isinstance(end, Failed) and "ran out of memory at batch size 64; try 32" in end.message
    monkeypatch.setattr(_Run, "train_step", real)
    assert isinstance(list(fit(cfg, save=False))[-1], Finished)


@pytest.mark.parametrize("closing", ["close", "throw"])
def test_abandoned_generator_releases_the_run(closing):
    """A closed browser tab closes the training generator: the run must end there, not keep training."""
    gen = fit(TrainConfig(arch="lenet5", dataset="digits", epochs=50, batch_size=64), save=False, progress_every=0.0)
    for ev in gen:
        if ev.kind == "progress":
            break
    if closing == "close":
        gen.close()
    else:
        with pytest.raises(KeyboardInterrupt):
            gen.throw(KeyboardInterrupt)
    with pytest.raises(StopIteration):
        next(gen)
