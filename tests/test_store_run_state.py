"""How a run stands, as menus show it: training now, finished, failed (no weights), or stopped before training; a run that
still trains can be neither deleted nor shared."""
from __future__ import annotations

import threading

import pytest

from cnnviz.store.run_reader import list_runs
from cnnviz.store.run_state import MARKER
from cnnviz.store.workspace import Workspace, WorkspaceError
from cnnviz.train.config import TrainConfig
from cnnviz.train.engine import fit
from cnnviz.train.events import EpochEnded, Failed, Finished, Stopped

TINY = TrainConfig(arch="lenet5", dataset="digits", subset=200, epochs=2, batch_size=64)


@pytest.fixture
def ann(workdirs) -> Workspace:
    return Workspace.new()


def test_a_training_run_says_so_and_refuses_delete_and_share(ann):
    states = []
    for ev in fit(TINY, runs_root=ann.runs_root):
        if isinstance(ev, EpochEnded) and ev.epoch == 1:
            record = ann.find_run(ann.runs()[0].run_id)
            states.append(record.state)
            assert "training now" in record.label
            with pytest.raises(WorkspaceError, match="still training: stop it in the Train tab first"):
                ann.delete(record.run_id)
            with pytest.raises(WorkspaceError, match="still training; share it once it has finished"):
                ann.share(record.run_id)
    assert isinstance(ev, Finished) and states == ["training"]
    record = ann.find_run(ev.run_id)
    assert record.state == "finished" and not (record.dir / MARKER).exists() and "training" not in record.label
    ann.delete(ev.run_id)  # once it has ended, it goes
    assert ann.runs() == []


def test_a_diverged_run_is_listed_as_failed(ann):
    events = list(fit(TINY.with_(optimizer="sgd", lr=10.0, momentum=0.99, epochs=3), runs_root=ann.runs_root))
    assert isinstance(events[-1], Failed)
    [record] = ann.runs()
    assert record.state == "failed" and record.checkpoint is None
    assert record.label.endswith(", failed: no weights saved)")  # not a bare "N epochs" that says nothing
    with pytest.raises(WorkspaceError, match="no saved weights to share"):
        ann.share(record.run_id)
    ann.delete(record.run_id)  # and the student can clear it away


def test_a_run_stopped_before_its_first_step_is_listed_as_empty(ann):
    stop = threading.Event()
    stop.set()
    end = list(fit(TINY, stop=stop, runs_root=ann.runs_root))[-1]
    assert isinstance(end, Stopped) and end.checkpoint is None
    [record] = ann.runs()
    assert record.state == "empty" and "stopped before training: nothing saved" in record.label
    with pytest.raises(WorkspaceError, match="stopped before training"):
        ann.share(record.run_id)  # not "share it once it has finished or was stopped": it was stopped


def test_a_run_stopped_after_some_steps_keeps_its_weights(ann):
    stop = threading.Event()
    events = []
    for ev in fit(TINY.with_(epochs=3), stop=stop, runs_root=ann.runs_root):
        events.append(ev)
        if isinstance(ev, EpochEnded):
            stop.set()
    assert isinstance(events[-1], Stopped) and events[-1].checkpoint
    [record] = list_runs([ann.runs_root])
    assert record.state == "finished" and record.checkpoint is not None
    ann.share(record.run_id)


def test_a_run_folder_removed_while_training_does_not_end_the_run(ann):
    import shutil

    for ev in fit(TINY.with_(epochs=3), runs_root=ann.runs_root):
        if isinstance(ev, EpochEnded) and ev.epoch == 1:
            shutil.rmtree(ann.runs_root / ev_run_id(ann))  # e.g. from a file manager: the app itself refuses
    assert isinstance(ev, Finished) and ev.test_acc > 0  # was "internal error": metrics.csv could not be opened
    assert ev.warning.startswith("the curves after epoch 3 were not saved (No such file or directory: ")
    assert ev.warning.endswith("/metrics.csv)")  # the file the student knows, not the temp file


def ev_run_id(ws: Workspace) -> str:
    [run] = [p.name for p in ws.runs_root.iterdir()]
    return run
