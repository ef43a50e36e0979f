"""How the engine computes on a CPU: the timed choice of memory format and precision, forced choices, and that the
choice changes neither the run's random stream nor what its test accuracy means."""
import pytest
import torch

from cnnviz.models import get_model
from cnnviz.store.checkpoints import load_checkpoint
from cnnviz.train import speed
from cnnviz.train.config import TrainConfig
from cnnviz.train.engine import fit
from cnnviz.train.evaluate import evaluate_checkpoint
from cnnviz.train.events import Finished

DIGITS = TrainConfig(arch="lenet5", dataset="digits", epochs=2, batch_size=64, optimizer="adam", lr=3e-3)


def test_cpu_choice_is_one_of_the_timed_candidates_and_is_cached(monkeypatch):
    monkeypatch.delenv("CNNVIZ_CPU_SPEED", raising=False)
    monkeypatch.setattr(speed, "_CACHE", {})
    model = get_model("tinyvgg", 1, 10, 16)
    before = [p.detach().clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    chosen, times = speed.choose_speed(model, (1, 16, 16), 32, 10, torch.device("cpu"))
    assert chosen in speed.cpu_candidates()
    assert set(times) == {s.label for s in speed.cpu_candidates()} and all(t > 0 for t in times.values())
    assert times[chosen.label] == min(times.values())
    # The probe trains a copy: the model's weights and the global random stream are untouched.
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert torch.equal(rng, torch.get_rng_state())
    again, times2 = speed.choose_speed(model, (1, 16, 16), 32, 10, torch.device("cpu"))
    assert again == chosen and times2 == {}  # cached: no second probe


def test_forced_choice_and_a_bad_one(monkeypatch):
    monkeypatch.setenv("CNNVIZ_CPU_SPEED", "plain")
    assert speed.choose_speed(get_model("lenet5", 1, 10, 28), (1, 28, 28), 8, 10, torch.device("cpu"))[0] == speed.PLAIN
    monkeypatch.setenv("CNNVIZ_CPU_SPEED", "fast")
    with pytest.raises(ValueError, match="CNNVIZ_CPU_SPEED must be one of plain, channels_last, bf16"):
        speed.cpu_candidates()


def test_cuda_always_gets_channels_last_and_bf16():
    assert speed.choose_speed(get_model("lenet5", 1, 10, 28), (1, 28, 28), 8, 10, torch.device("cuda")) == \
        (speed.CUDA, {})


@pytest.mark.skipif(not speed.cpu_bf16_supported(), reason="this CPU has no fast bf16 kernels")
def test_a_bf16_run_learns_and_its_accuracy_is_what_eval_reports(monkeypatch, workdirs):
    """bf16 autocast in training only: validation runs in float32, so `cnnviz eval` gives the same figure."""
    monkeypatch.setenv("CNNVIZ_CPU_SPEED", "bf16")
    end = list(fit(DIGITS, runs_root=workdirs[1], callbacks=[]))[-1]
    assert isinstance(end, Finished) and end.test_acc > 0.8
    assert evaluate_checkpoint(load_checkpoint(end.checkpoint))["test_acc"] == pytest.approx(end.test_acc, abs=2e-3)


def test_the_chosen_speed_does_not_change_a_float32_curve(monkeypatch):
    """channels_last float32 and contiguous float32 follow the same curve (same seed), up to rounding."""
    curves = []
    for choice in ("plain", "channels_last"):
        monkeypatch.setenv("CNNVIZ_CPU_SPEED", choice)
        curves.append([e.train_loss for e in fit(DIGITS, save=False, callbacks=[]) if hasattr(e, "train_loss")])
    assert curves[0] == pytest.approx(curves[1], rel=1e-3)
