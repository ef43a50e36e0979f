"""Readers of on-disk data treat a damaged file as "this run (or checkpoint) cannot be read", say why, and go on.

What a full disk or another program leaves: a metrics.csv whose last row is cut off, a config.json that is a list or not
UTF-8, a time-lapse cut off anywhere, a checkpoint whose metadata fields have the wrong types.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnviz.lecture.errors import LectureError
from cnnviz.lecture.replay import frame_at, recorded_timelapse, replay_run, run_menu
from cnnviz.models import get_model
from cnnviz.store.checkpoints import CheckpointError, build_meta, list_checkpoints, load_checkpoint, save_checkpoint
from cnnviz.store.run_reader import RunReadError, list_runs, load_replay, read_history, read_run
from cnnviz.store.run_writer import METRIC_FIELDS
from cnnviz.store.timelapse_file import FILE, TimelapseError, load_timelapse
from cnnviz.store.workspace import Workspace, WorkspaceError
from cnnviz.train.config import TrainConfig
from cnnviz.train.engine import fit
from cnnviz.train.events import Finished

CONFIG = {"config": {"arch": "lenet5", "dataset": "digits", "epochs": 2, "optimizer": "adam", "lr": 0.003}}
ROW = "{e},{s},2.301730,0.11,2.2,0.2,0.003,1.0,1.1,500.0"


HEADER = ",".join(METRIC_FIELDS)
GOOD_METRICS = f"{HEADER}\n{ROW.format(e=1, s=10)}\n{ROW.format(e=2, s=20)}\n"


def make_run(root: Path, run_id: str, *, config: object = CONFIG, config_bytes: bytes | None = None,
             metrics: str = GOOD_METRICS, metrics_bytes: bytes | None = None) -> Path:
    """A run folder as the writer leaves it (config.json and metrics.csv), with whatever content a test needs."""
    d = root / run_id
    d.mkdir(parents=True)
    (d / "config.json").write_bytes(config_bytes if config_bytes is not None else json.dumps(config).encode())
    (d / "metrics.csv").write_bytes(metrics_bytes if metrics_bytes is not None else metrics.encode())
    return d


BROKEN = {  # run id -> (what make_run gets, words the reason must contain)
    "20260101-000001-cut-row": (dict(metrics=f"{HEADER}\n{ROW.format(e=1, s=10)}\n2,2,2.301730"), "line 3 is cut off"),
    "20260101-000002-list-config": (dict(config={"config": ["lenet5", "digits"]}), "no 'config' object"),
    "20260101-000003-list-json": (dict(config=[1, 2, 3]), "no 'config' object"),
    "20260101-000004-not-utf8": (dict(config_bytes=b'{"config": {"arch": "\xff\xfe"}}'), "not UTF-8"),
    "20260101-000005-bad-json": (dict(config_bytes=b"{not json"), "not valid JSON"),
    "20260101-000006-nested": (dict(config_bytes=b"[" * 200_000), "not valid JSON"),
    "20260101-000007-text-value": (dict(metrics=f"{HEADER}\n1,10,lots,0.1,2.2,0.2,0.003,1,1,5\n"), "not a number"),
    "20260101-000008-nan-epoch": (dict(metrics=f"{HEADER}\nnan,10,2.3,0.1,2.2,0.2,0.003,1,1,5\n"), "not a number"),
    "20260101-000009-extra-value": (dict(metrics=f"{HEADER}\n{ROW.format(e=1, s=10)},9\n"), "line 2 is cut off"),
    "20260101-000010-no-columns": (dict(metrics="a,b\n1,2\n"), "no column 'epoch'"),
    "20260101-000011-binary-csv": (dict(metrics_bytes=b"epoch,step\n\xff\xfe\x00\x01\n"), "not UTF-8"),
}


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "broken-runs"
    for run_id, (kw, _) in BROKEN.items():
        make_run(root, run_id, **kw)
    make_run(root, "20260101-000100-good")
    return root


def test_a_cut_off_row_or_a_foreign_config_is_a_reason_not_a_crash(runs):
    listing = list_runs([runs])
    assert [r.run_id for r in listing] == ["20260101-000100-good"]  # the good run is listed ...
    reasons = {s.name: s.reason for s in listing.skipped}  # ... and every broken one is named, with why
    assert set(reasons) == set(BROKEN)
    for run_id, (_, words) in BROKEN.items():
        assert words in reasons[run_id], (run_id, reasons[run_id])
    for run_id in BROKEN:
        with pytest.raises(RunReadError):
            read_run(runs / run_id)
    good = read_run(runs / "20260101-000100-good")
    assert good.label.startswith("20260101-000100-good (lenet5 on digits, 2 epochs, test acc 0.200")
    assert read_history(good.dir)[-1] == {"epoch": 2, "step": 20, "train_loss": 2.30173, "train_acc": 0.11,
                                          "val_loss": 2.2, "val_acc": 0.2, "lr": 0.003, "train_seconds": 1.0,
                                          "epoch_seconds": 1.1, "images_per_sec": 500.0}


def test_the_run_menu_lists_the_good_runs_and_notes_the_skipped(runs, monkeypatch):
    monkeypatch.setenv("CNNVIZ_RUNS", str(runs))
    menu = run_menu(Workspace())
    assert [i for _, i in menu.choices] == ["20260101-000100-good"]
    assert menu.note.startswith(f"⚠️ {len(BROKEN)} runs left out because they cannot be read: 20260101-000011-binary-csv")
    assert "and 8 more (see the server log)" in menu.note  # short: three named, the rest counted
    with pytest.raises(WorkspaceError, match="cannot be read: metrics.csv line 3 is cut off"):
        Workspace().find_run("20260101-000001-cut-row")


def test_a_folder_with_no_metrics_yet_is_a_run_with_no_epochs(tmp_path):
    d = make_run(tmp_path, "20260101-000000-fresh")
    (d / "metrics.csv").unlink()
    assert read_run(d).history == []
    (d / "metrics.csv").write_text(HEADER + "\n")  # the header only: written before the first epoch
    assert read_run(d).history == []


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One real two-epoch run with a time-lapse and a checkpoint."""
    root = tmp_path_factory.mktemp("trained")
    end = list(fit(TrainConfig(arch="lenet5", dataset="digits", subset=200, epochs=2, batch_size=64), runs_root=root))[-1]
    assert isinstance(end, Finished), end
    return root / end.run_id


def copy_run(src: Path, root: Path) -> Path:
    return Path(shutil.copytree(src, root / src.name))


def test_a_time_lapse_cut_off_anywhere_is_a_time_lapse_error(trained, tmp_path):
    data = (trained / FILE).read_bytes()
    folder = tmp_path / "cut"
    folder.mkdir()
    cuts = sorted({0, 1, 4, 30, 100, len(data) // 3, len(data) // 2, len(data) - 22, len(data) - 1}
                  | set(range(0, len(data), max(1, len(data) // 60))))
    for cut in cuts:
        (folder / FILE).write_bytes(data[:cut])
        with pytest.raises(TimelapseError, match="cut off or damaged"):
            load_timelapse(folder)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # a damaged byte inside a compressed array
    (folder / FILE).write_bytes(bytes(flipped))
    with pytest.raises(TimelapseError):
        load_timelapse(folder)


def test_a_time_lapse_whose_arrays_disagree_is_refused(trained, tmp_path):
    t = load_timelapse(trained)
    arrays = dict(images=t.images, labels=t.labels, epochs=t.epochs, probs=t.probs[:, :, :3], cams=t.cams,
                  filters=t.filters, class_names=np.array(t.class_names), layer=np.array(t.layer))
    np.savez(tmp_path / FILE, **arrays)
    with pytest.raises(TimelapseError, match="probabilities do not match"):
        load_timelapse(tmp_path)
    np.savez(tmp_path / FILE, **{**arrays, "probs": t.probs, "labels": np.array(3)})  # 0-d: len() would fail
    with pytest.raises(TimelapseError, match="labels have the wrong shape"):
        load_timelapse(tmp_path)


def test_a_truncated_time_lapse_still_replays_the_curves_and_says_why(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    data = (run / FILE).read_bytes()
    (run / FILE).write_bytes(data[: len(data) // 2])
    record = read_run(run)
    replay = replay_run(record)  # no exception: curves and confusion matrix from metrics.csv and the checkpoint
    assert replay.timelapse is None and replay.frame is None and replay.confusion is not None
    assert len(replay.loss) == 4 and "time-lapse of run" in replay.summary and "cut off or damaged" in replay.summary
    with pytest.raises(LectureError, match="cannot be read: timelapse.npz is cut off or damaged"):
        recorded_timelapse(record)
    assert load_replay(run.name, tmp_path).problem.startswith("timelapse.npz is cut off")


def test_a_frame_index_that_is_not_a_number_is_a_clear_message(trained):
    t = load_timelapse(trained)
    for bad in (None, float("nan"), float("inf"), "two"):
        with pytest.raises(LectureError, match="Choose a frame: a whole number from 0 to 2"):
            frame_at(t, bad)
    assert frame_at(t, 2.0).size == frame_at(t, 2).size


def test_a_confusion_matrix_of_the_wrong_shape_is_left_out(trained, tmp_path, monkeypatch):
    run = copy_run(trained, tmp_path)
    loaded = load_checkpoint(run / "model.pt")
    for bad in ([[1, 2], [3]], [[1, 2], [3, 4]], "lots", [[float("nan")] * 10] * 10):
        meta = build_meta(**{**loaded.meta.to_dict(), "metrics": {**loaded.meta.metrics, "confusion": bad}})
        save_checkpoint(loaded.model, meta, run / "model.pt")
        assert load_replay(run.name, tmp_path).confusion is None
        assert replay_run(read_run(run)).confusion is None


META = dict(arch="lenet5", dataset="digits", class_names=[str(i) for i in range(10)], in_channels=1, input_size=16,
            mean=[0.5], std=[0.25], metrics={"test_acc": 0.5})


@pytest.mark.parametrize("field,value", [("metrics", ["acc", 0.5]), ("metrics", {"test_acc": "high"}),
                                         ("input_size", "16"), ("std", ["wide"]), ("arch_kwargs", 3),
                                         ("created", 20260101), ("class_names", "0123456789"), ("history", [1, 2]),
                                         ("in_channels", True)])
def test_checkpoint_headers_of_the_wrong_type_are_skipped_with_a_reason(workdirs, field, value):
    ck, _ = workdirs
    model = get_model("lenet5", 1, 10, 16)
    save_checkpoint(model, build_meta(**META), ck / "good.pt")
    blob = {"format": "cnnviz-checkpoint", "version": 1, "meta": {**META, field: value}, "state_dict": model.state_dict()}
    torch.save(blob, ck / "odd.pt")
    listing = list_checkpoints([])
    assert [e.name for e in listing if not e.shipped] == ["good"]  # the shipped checkpoints are always listed too
    assert [s.name for s in listing.skipped] == ["odd"]
    assert any(w in listing.skipped[0].reason for w in ("malformed", "not a number")), listing.skipped[0].reason
    with pytest.raises(CheckpointError, match=field.split(".")[0]):
        load_checkpoint(ck / "odd.pt")


def test_the_list_command_names_what_it_left_out(runs, workdirs, monkeypatch, capsys):
    from cnnviz.cli.main import main

    monkeypatch.setenv("CNNVIZ_RUNS", str(runs))
    (workdirs[0] / "cut.pt").write_bytes(b"PK\x03\x04 half a checkpoint")
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    runs_part = out.split("Runs:\n")[1]
    assert runs_part.startswith("  20260101-000100-good (lenet5 on digits, 2 epochs")
    assert "Left out because they cannot be read (fix or delete them):" in out
    assert "  checkpoint cut: cut.pt is not a readable cnnviz checkpoint" in out
    assert "  run 20260101-000001-cut-row: metrics.csv line 3 is cut off" in out
    assert all(f"run {run_id}: " in out for run_id in BROKEN)
