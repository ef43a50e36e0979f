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


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()])
def test_a_failing_atomic_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, error):
    from cnnviz.store.atomic import atomic_write

    path = atomic_write(tmp_path / "result.bin", b"old content")
    assert oct(path.stat().st_mode & 0o777) == "0o644"  # readable by others, unlike mkstemp's 0600

    def writer(f):
        f.write(b"half of the new")
        raise error

    with pytest.raises(type(error)):
        atomic_write(path, writer, durable=True)
    assert path.read_bytes() == b"old content" and _leftovers(tmp_path) == []
    atomic_write(path, lambda f: f.write(b"new content"), durable=True)
    assert path.read_bytes() == b"new content" and _leftovers(tmp_path) == []


def test_readers_see_the_old_or_the_new_content_never_a_mix(tmp_path):
    import threading

    from cnnviz.store.atomic import atomic_write

    versions = (b"a" * 200_000, b"b" * 300_000)
    path = atomic_write(tmp_path / "shared.bin", versions[0])
    done, seen = threading.Event(), set()

    def reader():
        while not done.is_set():
            seen.add(path.read_bytes())

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    for i in range(60):
        atomic_write(path, versions[i % 2])
    done.set()
    for t in readers:
        t.join(10)
    assert seen <= set(versions) and _leftovers(tmp_path) == []


def test_atomic_copy_copies_whole_files(tmp_path):
    from cnnviz.store.atomic import atomic_copy

    src = tmp_path / "src.pt"
    src.write_bytes(os.urandom(100_000))
    dst = atomic_copy(src, tmp_path / "dst.pt")
    assert dst.read_bytes() == src.read_bytes() and oct(dst.stat().st_mode & 0o777) == "0o644"
    assert _leftovers(tmp_path) == []


def test_a_failed_timelapse_save_leaves_the_previous_one_and_no_temp_file(tmp_path, monkeypatch):
    import numpy as np

    from cnnviz.data import load_dataset
    from cnnviz.images import InputSpec
    from cnnviz.lecture import timelapse
    from cnnviz.store import timelapse_file

    ds = load_dataset("digits")
    spec = InputSpec(1, 16, tuple(ds.info.mean), tuple(ds.info.std))  # LeNet-5 sees the 8 px digits at 16 px
    rec = timelapse.TimelapseRecorder(ds.test, spec, ds.info.class_names, k=2, arch="lenet5")
    rec.record(get_model("lenet5", 1, 10, 16), 0)
    before = rec.save(tmp_path).read_bytes()

    def full(f, **arrays):
        f.write(b"PK partial zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full)
    with pytest.raises(OSError):
        rec.save(tmp_path)
    assert (tmp_path / timelapse_file.FILE).read_bytes() == before and _leftovers(tmp_path) == []
