"""Training engine: events, determinism, stop/pause within a batch, divergence, run folders."""
import threading
import time

import pytest
import torch

from cnnviz.store.checkpoints import load_checkpoint
from cnnviz.store.timelapse_file import load_timelapse
from cnnviz.train.callbacks import Callback, TimelapseCallback
from cnnviz.train.config import ConfigError, Limits, TrainConfig, divergence_advice, validate
from cnnviz.train.device_data import random_crop
from cnnviz.train.engine import _Run, fit
from cnnviz.train.evaluate import evaluate_checkpoint, per_class_accuracy
from cnnviz.train.events import EpochEnded, Failed, Finished, Paused, Progress, Resumed, RunStarted, Stopped

DIGITS = TrainConfig(arch="lenet5", dataset="digits", epochs=3, batch_size=64, optimizer="adam", lr=3e-3)


def run_all(cfg, **kw):
    return list(fit(cfg, **kw))


def test_a_run_reports_every_stage_and_learns(workdirs):
    events = run_all(DIGITS, runs_root=workdirs[1])
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], Finished)
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert any(isinstance(e, Progress) for e in events)
    end = events[-1]
    assert end.test_acc > 0.8  # 10 classes: chance is 0.1
    assert sum(map(sum, end.confusion)) == events[0].num_test
    assert abs(sum(end.confusion[i][i] for i in range(10)) / events[0].num_test - end.test_acc) < 1e-9
    assert epochs[-1].train_loss < epochs[0].train_loss
    for e in events:  # events are plain data: they serialise to JSON
        assert "event" in e.to_dict()


def test_run_folder_holds_config_metrics_and_a_loadable_checkpoint(workdirs):
    events = run_all(DIGITS.with_(epochs=2), runs_root=workdirs[1])
    end = events[-1]
    run_dir = workdirs[1] / end.run_id
    assert (run_dir / "config.json").exists()
    lines = (run_dir / "metrics.csv").read_text().strip().splitlines()
    assert len(lines) == 3  # header + one row per epoch
    loaded = load_checkpoint(end.checkpoint)
    assert loaded.meta.arch == "lenet5" and len(loaded.meta.history) == 2
    # The saved weights give the accuracy the run reported (an independent evaluation pass).
    assert evaluate_checkpoint(loaded)["test_acc"] == pytest.approx(end.test_acc, abs=1e-9)
    assert evaluate_checkpoint(loaded)["per_class_acc"] == pytest.approx(list(end.per_class_acc), abs=1e-6)
    # No callbacks given: the default time-lapse, 8 probes at epochs 0, 1, 2.
    t = load_timelapse(run_dir)
    assert list(t.epochs) == [0, 1, 2] and len(t.labels) == 8
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "metrics.csv", "model.pt", "timelapse.npz"]


def test_same_seed_same_curve_on_cpu():
    a = [e for e in run_all(DIGITS.with_(epochs=2, augment=True), save=False) if isinstance(e, EpochEnded)]
    b = [e for e in run_all(DIGITS.with_(epochs=2, augment=True), save=False) if isinstance(e, EpochEnded)]
    c = [e for e in run_all(DIGITS.with_(epochs=2, augment=True, seed=1), save=False) if isinstance(e, EpochEnded)]
    assert [(e.train_loss, e.val_acc) for e in a] == [(e.train_loss, e.val_acc) for e in b]
    assert [e.train_loss for e in a] != [e.train_loss for e in c]


def test_stop_takes_effect_within_one_batch(workdirs):
    stop = threading.Event()
    seen_step = None
    for ev in fit(DIGITS.with_(epochs=50), stop=stop, progress_every=0.0, runs_root=workdirs[1]):
        if isinstance(ev, Progress) and ev.step == 5:
            stop.set()
            seen_step = ev.step
        last = ev
    assert isinstance(last, Stopped) and last.step == seen_step
    assert last.checkpoint and load_checkpoint(last.checkpoint).meta.metrics["complete"] is False


def test_pause_holds_and_resume_continues():
    pause = threading.Event()
    gen = fit(DIGITS.with_(epochs=2), pause=pause, progress_every=0.0, save=False)
    for ev in gen:
        if isinstance(ev, Progress) and ev.step == 3:
            pause.set()
        if isinstance(ev, Paused):
            break
    step_at_pause = ev.step
    threading.Timer(0.6, pause.clear).start()
    t0 = time.perf_counter()
    rest = list(gen)
    assert time.perf_counter() - t0 >= 0.5
    resumed = next(e for e in rest if isinstance(e, Resumed))
    assert resumed.step == step_at_pause  # no step ran while paused
    assert isinstance(rest[-1], Finished)


def test_divergence_fails_with_advice_and_writes_no_checkpoint(workdirs):
    cfg = DIGITS.with_(optimizer="sgd", lr=10.0, momentum=0.99, epochs=5)
    events = run_all(cfg, runs_root=workdirs[1])
    end = events[-1]
    assert isinstance(end, Failed) and "learning rate" in end.message and "diverged" in end.message
    assert not list(workdirs[1].glob("*/model.pt"))


def test_the_divergence_advice_fits_the_optimizer_that_was_used():
    end = run_all(DIGITS.with_(optimizer="adam", lr=10.0, epochs=2), save=False)[-1]
    assert isinstance(end, Failed) and "training diverged. Lower the learning rate (now 10, try 1;" in end.message
    assert "Adam" not in end.message and "onecycle schedule" in end.message  # an Adam run is not told to use Adam
    sgd = divergence_advice(DIGITS.with_(optimizer="sgd", lr=10.0, momentum=0.99))
    assert "switch the optimizer to Adam" in sgd and "lower the momentum (now 0.99, try 0.9)" in sgd
    assert "onecycle" not in divergence_advice(DIGITS.with_(optimizer="adamw", schedule="onecycle"))
    assert "momentum" not in divergence_advice(DIGITS.with_(optimizer="sgd", momentum=0.9))


def test_absurd_settings_are_refused_with_every_problem_listed():
    bad = TrainConfig(epochs=0, batch_size=-5, lr=float("nan"), optimizer="rmsprop", device="tpu", subset=3)
    with pytest.raises(ConfigError) as err:
        validate(bad)
    text = str(err.value)
    for word in ("epochs", "batch size", "learning rate", "optimizer", "device", "subset"):
        assert word in text
    events = run_all(bad, save=False)
    assert len(events) == 1 and isinstance(events[0], Failed) and "epochs" in events[0].message


def test_server_limits_apply():
    with pytest.raises(ConfigError, match="at most 500 samples"):
        validate(TrainConfig(subset=None), Limits(max_subset=500))
    with pytest.raises(ConfigError, match="from 1 to 3"):
        validate(TrainConfig(epochs=4), Limits(max_epochs=3))


def test_cuda_request_without_gpu_is_a_clear_failure():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the message is for machines without one")
    end = run_all(DIGITS.with_(device="cuda"), save=False)[-1]
    assert isinstance(end, Failed) and "no CUDA GPU" in end.message


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 8, 8)
    out = random_crop(x, pad=2, generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        windows = [padded[i, :, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


class Spy(Callback):
    """Records when each hook runs, relative to the events the engine yields."""

    def __init__(self, log):
        self.log = log

    def on_run_start(self, run):
        self.log.append(("start", run.epoch, run.model.training, run.run_dir is not None))

    def on_epoch_end(self, run, epoch):
        previous = run.last_epoch.epoch if run.last_epoch else None  # EpochEnded of this epoch is not made yet
        self.log.append(("epoch_end", epoch, run.model.training, previous))


def test_callbacks_run_in_order_at_start_and_after_each_validation(workdirs):
    log = []
    spy, lapse = Spy(log), TimelapseCallback(k=3)
    for ev in fit(DIGITS.with_(epochs=2), runs_root=workdirs[1], callbacks=[spy, lapse]):
        log.append(ev.kind)
    hooks = [e for e in log if isinstance(e, tuple)]
    assert hooks == [("start", 0, False, True), ("epoch_end", 1, False, None), ("epoch_end", 2, False, 1)]
    # on_run_start comes right after RunStarted; on_epoch_end right before that epoch's EpochEnded.
    assert log.index(hooks[0]) == 1 and log[log.index(hooks[1]) + 1] == "epoch_end"
    (run_dir,) = workdirs[1].iterdir()
    t = load_timelapse(run_dir)
    assert list(t.epochs) == [0, 1, 2] and len(t.labels) == 3 and lapse.recorder.result().probs.shape == (3, 3, 10)


def test_no_callbacks_means_no_timelapse_and_unsaved_runs_record_nothing(workdirs):
    end = run_all(DIGITS.with_(epochs=1), runs_root=workdirs[1], callbacks=[])[-1]
    assert isinstance(end, Finished)
    assert sorted(p.name for p in (workdirs[1] / end.run_id).iterdir()) == ["config.json", "metrics.csv", "model.pt"]
    lapse = TimelapseCallback(k=2)
    assert isinstance(run_all(DIGITS.with_(epochs=1), save=False, callbacks=[lapse])[-1], Finished)
    assert lapse.recorder is None  # no run folder: nothing to record into


def test_a_timelapse_of_no_probes_is_refused_with_the_way_to_ask_for_none():
    with pytest.raises(ValueError, match=r"callbacks=\[\]"):
        TimelapseCallback(k=0)


def test_every_run_attribute_exists_from_the_start():
    """_Run sets all its state in __init__: nothing appears later (a callback can rely on any RunState field)."""
    run = _Run(DIGITS.with_(epochs=1), threading.Event(), threading.Event(), None, False, 0.25, [])
    before = set(vars(run))
    assert {"epoch_sums", "epoch_train_seconds", "done_train_seconds", "last_epoch", "confusion", "test_split",
            "spec"} <= before
    assert isinstance(list(run.events())[-1], Finished)
    assert set(vars(run)) == before


def test_per_class_accuracy_is_recall_per_true_class():
    confusion = torch.tensor([[3, 1, 0], [0, 2, 2], [0, 0, 0]])
    assert per_class_accuracy(confusion) == [0.75, 0.5, 0.0]  # a class without test images counts 0, not NaN
