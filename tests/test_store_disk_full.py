"""A full disk at any point of a run: the results are still reported, the message says the disk is full, and what is on
disk stays readable (every file whole or absent, no temp files).

The disk is simulated two ways: store.atomic's files get a byte budget (past it, ENOSPC mid-write, as a real disk does),
and torch.save raises what it raises on a full disk (an OSError, or RuntimeError "unexpected pos" from its C++ writer).
"""
from __future__ import annotations

import errno
import os

import pytest
import torch

from cnnviz.cli.main import main
from cnnviz.store import atomic
from cnnviz.store.disk import is_disk_full, write_problem
from cnnviz.store.run_reader import list_runs
from cnnviz.train.config import TrainConfig
from cnnviz.train.engine import fit
from cnnviz.train.events import Finished

CFG = TrainConfig(arch="lenet5", dataset="digits", subset=200, epochs=2, batch_size=64)
TORCH_FULL = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
CLI_TRAIN = ["train", "--arch", "lenet5", "--dataset", "digits", "--subset", "200", "--epochs", "1", "--batch-size", "64"]


class _Budgeted:
    """A file that takes `disk.free` more bytes, writes part of the next chunk, then raises ENOSPC."""

    def __init__(self, f, disk: FullDisk) -> None:
        self._f, self._disk = f, disk

    def write(self, b) -> int:
        data = bytes(b)
        if len(data) > self._disk.free:
            self._f.write(data[: self._disk.free])
            self._disk.free = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._disk.free -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


class FullDisk:
    """Stands in for `os` inside store.atomic: every file it opens shares `free` bytes; `writes` logs each file's size."""

    def __init__(self, free: float) -> None:
        self.free, self.writes = free, []

    def __getattr__(self, name):
        return getattr(os, name)

    def fdopen(self, fd, *args, **kwargs):
        self.writes.append(0)
        return _Counting(os.fdopen(fd, *args, **kwargs), self)


class _Counting(_Budgeted):
    def write(self, b) -> int:
        n = super().write(b)
        self._disk.writes[-1] += len(bytes(b))
        return n


def leftovers(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp"))


def test_torch_and_os_errors_read_as_a_full_disk():
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device")) and is_disk_full(TORCH_FULL)
    assert write_problem(OSError(errno.ENOSPC, "No space left on device", "/runs/x/model.pt")) == \
        "the disk is full: No space left on device: /runs/x/model.pt"
    assert write_problem(PermissionError(errno.EACCES, "Permission denied")) == "Permission denied"
    assert not is_disk_full(RuntimeError("CUDA error: device-side assert triggered"))


@pytest.fixture(scope="module")
def write_sizes(tmp_path_factory) -> list[int]:
    """Bytes of every atomic write of one normal run, in order (mark, config, metrics, time-lapses, checkpoint, status)."""
    disk = FullDisk(float("inf"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(atomic, "os", disk)
        end = list(fit(CFG, runs_root=tmp_path_factory.mktemp("sizes")))[-1]
    assert isinstance(end, Finished) and end.warning is None
    return disk.writes


def test_the_disk_filling_in_the_middle_of_any_write_keeps_the_results(write_sizes, tmp_path, monkeypatch):
    starts = [sum(write_sizes[:i]) for i in range(len(write_sizes))]
    checkpoint_done = starts[-1]  # the last write is status.json; everything before it includes model.pt
    for i, (start, size) in enumerate(zip(starts, write_sizes)):
        root = tmp_path / f"fills-in-write-{i}"
        monkeypatch.setattr(atomic, "os", FullDisk(start + size // 2))
        end = list(fit(CFG, runs_root=root))[-1]
        monkeypatch.setattr(atomic, "os", os)
        # The run is reported in full: accuracy, confusion matrix and per-class accuracy of all 2 epochs.
        assert isinstance(end, Finished), (i, end)
        assert end.test_acc > 0 and len(end.confusion) == 10 and len(end.per_class_acc) == 10
        if start < checkpoint_done:
            assert end.checkpoint is None and "the disk is full: No space left on device" in end.warning, (i, end.warning)
        # What is on disk is whole: every folder is a readable run (or there is none), no temp files are left.
        listing = list_runs([root])
        assert listing.skipped == [] and leftovers(tmp_path) == [], (i, listing.skipped)
        for r in listing:
            assert r.state in ("finished", "unsaved", "failed") and (r.state == "finished") == (r.checkpoint is not None)


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), TORCH_FULL],
                         ids=["oserror", "torch-runtimeerror"])
def test_a_full_disk_at_the_checkpoint_is_a_warning_with_the_results(error, tmp_path, monkeypatch):
    def full(obj, f, *a, **k):
        f.write(b"PK\x03\x04 the first bytes of a zip")
        raise error

    monkeypatch.setattr(torch, "save", full)
    end = list(fit(CFG, runs_root=tmp_path))[-1]
    assert isinstance(end, Finished) and end.checkpoint is None and sum(map(sum, end.confusion)) > 0
    assert end.warning.startswith("the weights could not be saved (the disk is full: ")
    assert "Free some disk space" in end.warning and leftovers(tmp_path) == []
    [record] = list_runs([tmp_path])
    assert record.state == "unsaved" and "weights were not saved" in record.label


def test_another_runtime_error_while_saving_is_a_warning_too(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("something inside torch")

    monkeypatch.setattr(torch, "save", broken)
    end = list(fit(CFG.with_(epochs=1), runs_root=tmp_path))[-1]
    assert isinstance(end, Finished) and "something inside torch" in end.warning and "disk is full" not in end.warning


def test_no_room_for_the_run_folder_still_trains_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "os", FullDisk(0))
    end = list(fit(CFG.with_(epochs=1), runs_root=tmp_path / "runs"))[-1]
    assert isinstance(end, Finished) and end.test_acc > 0
    assert end.warning.startswith("nothing was saved because the disk is full")
    assert not any((tmp_path / "runs").iterdir())  # no half-made run folder


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), TORCH_FULL],
                         ids=["oserror", "torch-runtimeerror"])
def test_the_cli_prints_the_results_and_says_the_disk_is_full(error, workdirs, capsys, monkeypatch):
    def full(*a, **k):
        raise error

    monkeypatch.setattr(torch, "save", full)
    assert main(CLI_TRAIN) == 1  # not 0: the weights were lost
    out, err = capsys.readouterr()
    assert "test accuracy" in err and "warning: the weights could not be saved (the disk is full: " in err
    assert "Traceback" not in err and "checkpoint: none saved" in out


def test_the_cli_survives_the_disk_filling_while_it_writes_the_curves(write_sizes, workdirs, capsys, monkeypatch):
    monkeypatch.setattr(atomic, "os", FullDisk(sum(write_sizes[:3]) + 10))  # mark, config, header fit; then full
    assert main([*CLI_TRAIN, "--json"]) == 1
    out, err = capsys.readouterr()
    assert '"event": "finished"' in out and "the disk is full" in err and "Traceback" not in err


def test_the_cli_keeps_the_run_when_the_copy_to_checkpoints_fails(workdirs, capsys, monkeypatch):
    from cnnviz.cli import train as cli_train

    def full(src, dst, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(cli_train, "atomic_copy", full)
    assert main([*CLI_TRAIN, "--out", "mine"]) == 1
    out, err = capsys.readouterr()
    assert "could not be copied to" in err and "the disk is full" in err and "Traceback" not in err
    assert out.strip().endswith("model.pt") and not (workdirs[0] / "mine.pt").exists()
