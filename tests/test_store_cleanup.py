"""Start-up clean-up: what a killed process left (temp files, half-deleted runs, "training" marks, private temp folders)
goes at the next start; what a live process is still writing stays."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnviz.models import get_model
from cnnviz.store.checkpoints import build_meta, load_checkpoint, save_checkpoint
from cnnviz.store.cleanup import clean_folder, clean_runs, clean_temp_folders, start_up
from cnnviz.store.owner import OWNER_SUFFIX, ProcessMark
from cnnviz.store.run_reader import read_run
from cnnviz.store.run_state import MARKER

KILLED_SAVER = """
import sys, threading, time, torch
from cnnviz.models import get_model
from cnnviz.store.checkpoints import build_meta, save_checkpoint
writing = threading.Barrier(len(sys.argv))


def stuck(obj, f):  # a save that is half-way through its file when the process is killed
    f.write(b"PK\\x03\\x04 the first part of a checkpoint")
    f.flush()
    writing.wait()
    time.sleep(600)


torch.save = stuck
model = get_model("lenet5", 1, 10, 28)
meta = build_meta(arch="lenet5", dataset="digits", class_names=tuple("abcdefghij"), in_channels=1, input_size=28,
                  mean=(0.5,), std=(0.25,))
for path in sys.argv[1:]:
    threading.Thread(target=save_checkpoint, args=(model, meta, path), daemon=True).start()
writing.wait()
print("ready", flush=True)
time.sleep(600)
"""
MAKE_FOLDERS = """
import sys, time
from cnnviz.store.owner import owned_temp_folder
from cnnviz.store.scratch import ScratchFolder
print(owned_temp_folder("cnnviz-gradio-"), ScratchFolder("cnnviz-gifs-").path(), flush=True)
if sys.argv[1] == "wait":
    time.sleep(120)
"""


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)


def run_folder(root: Path, run_id: str) -> Path:
    d = root / run_id
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"config": {"arch": "lenet5", "dataset": "digits", "epochs": 1}}))
    return d


def temps(root: Path) -> list[Path]:
    return sorted(root.rglob(".*.tmp"))


def test_a_server_killed_mid_save_leaves_nothing_after_the_next_start(tmp_path, monkeypatch):
    runs, ck = tmp_path / "runs", tmp_path / "checkpoints"
    ck.mkdir()
    monkeypatch.setenv("CNNVIZ_RUNS", str(runs))
    monkeypatch.setenv("CNNVIZ_CHECKPOINTS", str(ck))
    own = run_folder(runs / "users" / "0123456789abcdef01234567", "20260101-000000-lenet5-digits-beef")
    targets = [runs / "20260101-000000-lenet5-digits-cafe" / "model.pt", own / "model.pt", ck / "lenet.pt"]
    run_folder(runs, targets[0].parent.name)
    model = get_model("lenet5", 1, 10, 28)
    meta = build_meta(arch="lenet5", dataset="digits", class_names=tuple("abcdefghij"), in_channels=1, input_size=28,
                      mean=(0.5,), std=(0.25,))
    for target in targets:
        save_checkpoint(model, meta, target)  # the last good save
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SAVER, *map(str, targets)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"  # every save is half-way through its temp file
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = temps(tmp_path)
    assert len(left) == 3 and all(f"-{proc.pid}-" in p.name for p in left)  # named by their writer: how they are found
    report = start_up(tmp_root=tmp_path / "no-temp-folders")
    assert set(left) <= set(report.removed) and temps(tmp_path) == []
    for target in targets:
        assert load_checkpoint(target).meta.arch == "lenet5"  # the finished files are untouched


def test_only_what_a_dead_process_left_is_removed(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("CNNVIZ_RUNS", str(runs))
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        d = run_folder(runs, "20260101-000000-lenet5-digits-beef")
        dead = dead_pid()
        doomed = [d / f".model.pt-{dead}-abcd1234.tmp", d / f".metrics.csv-{dead}-x_y_z123.tmp", d / ".model.pt-old0ne12.tmp"]
        kept = [d / f".model.pt-{live.pid}-abcd1234.tmp", d / f".model.pt-{os.getpid()}-abcd1234.tmp",
                d / ".model.pt-young123.tmp"]
        for p in doomed + kept:
            p.write_bytes(b"half a file")
        old = time.time() - 7200
        os.utime(d / ".model.pt-old0ne12.tmp", (old, old))  # no pid in the name (older cnnviz): only old ones go
        half_deleted = runs / ".deleting-20250101-000000-lenet5-digits-dead"
        (half_deleted / "sub").mkdir(parents=True)
        removed = clean_runs()
        assert sorted(removed) == sorted(doomed + [half_deleted]) and not any(p.exists() for p in doomed)
        assert all(p.exists() for p in kept)
    finally:
        live.kill()
        live.wait()


def test_a_training_mark_of_a_dead_process_is_ignored_and_then_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_RUNS", str(tmp_path))
    dead_run, live_run = run_folder(tmp_path, "20260101-000001-x"), run_folder(tmp_path, "20260101-000002-x")
    me = ProcessMark.this_process()
    ProcessMark(dead_pid(), me.host, None).write(dead_run / MARKER)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        ProcessMark(live.pid, me.host, None).write(live_run / MARKER)
        assert read_run(dead_run).state == "failed"  # a killed server's run is not "training" for ever
        assert read_run(live_run).state == "training"  # another process (e.g. the command line) is still at it
        assert clean_runs() == [dead_run / MARKER]
        ProcessMark(me.pid, me.host, (me.started or 0) + 1).write(live_run / MARKER)  # our pid, reused: not us
        assert read_run(live_run).state == "failed" or me.started is None
    finally:
        live.kill()
        live.wait()


def test_temp_files_in_checkpoints_of_a_dead_writer_go(tmp_path):
    dead = dead_pid()
    (tmp_path / f".lenet.pt-{dead}-abcd1234.tmp").write_bytes(b"x")
    (tmp_path / "lenet.pt").write_bytes(b"a real file stays")
    assert clean_folder(tmp_path) == [tmp_path / f".lenet.pt-{dead}-abcd1234.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["lenet.pt"]


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="owner checks need POSIX uids")
def test_private_temp_folders_of_killed_servers_go_and_live_ones_stay(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}

    def make(mode: str) -> tuple[subprocess.Popen, list[Path]]:
        proc = subprocess.Popen([sys.executable, "-c", MAKE_FOLDERS, mode], stdout=subprocess.PIPE, text=True, env=env)
        return proc, [Path(p) for p in proc.stdout.readline().split()]

    ended, folders = make("exit")
    ended.wait()
    assert not any(f.exists() for f in folders)  # a normal exit removes its own folders (and their owner files)
    assert not list(tmp_path.glob(f"*{OWNER_SUFFIX}"))
    killed, dead_folders = make("wait")
    alive, live_folders = make("wait")
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        foreign = tmp_path / "cnnviz-gradio-oldstyle1"  # no owner file: nobody can tell whose it is, so it stays
        foreign.mkdir()
        assert all(f.name.startswith(("cnnviz-gradio-", "cnnviz-gifs-")) and f"-{killed.pid}-" in f.name
                   for f in dead_folders)
        removed = clean_temp_folders(tmp_path)
        assert set(dead_folders) <= set(removed) and not any(f.exists() for f in dead_folders)
        assert all(f.exists() for f in live_folders) and foreign.exists()
        assert sorted(p.name for p in tmp_path.glob(f"*{OWNER_SUFFIX}")) == sorted(f.name + OWNER_SUFFIX
                                                                                   for f in live_folders)
    finally:
        alive.kill()
        alive.wait()
