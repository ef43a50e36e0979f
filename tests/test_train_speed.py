"""How the engine computes on a CPU: the timed choice of memory format and precision, forced choices, and that the
choice changes neither the run's random stream nor what its test accuracy means."""
from pathlib import Path

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


def test_device_batches_are_the_normalised_images_and_their_labels():
    """The fast gather (index_select, in-place arithmetic) gives exactly (x / 255 - mean) / std of the chosen images."""
    from cnnviz.data import load_dataset
    from cnnviz.train.device_data import DeviceData

    split = load_dataset("digits").train
    mean, std = (0.3,), (0.2,)
    idx = torch.tensor([5, 0, 17, 5, 3])
    for channels_last in (False, True):
        data = DeviceData(split, mean, std, split.images.shape[-1], torch.device("cpu"), channels_last=channels_last)
        x, y = data.batch(idx)
        expected = (split.images[idx].float() / 255 - mean[0]) / std[0]
        assert torch.equal(x, expected) and torch.equal(y, split.labels[idx])
        assert x.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert torch.equal(data.images[idx], split.images[idx])  # the stored uint8 images are not changed in place


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_the_fused_optimiser_takes_the_same_steps_as_torchs_reference_loop(optimizer):
    """recipe.make_optimizer uses torch's fused kernels on the CPU (faster); the weights follow the for-loop version."""
    from cnnviz.train.recipe import make_optimizer

    cfg = TrainConfig(arch="lenet5", optimizer=optimizer, lr=3e-3, momentum=0.9, weight_decay=1e-2)
    torch.manual_seed(0)
    fast, ref = get_model("lenet5", 1, 10, 16), get_model("lenet5", 1, 10, 16)
    ref.load_state_dict(fast.state_dict())
    opt, _ = make_optimizer(cfg, fast, total_steps=10)
    assert all(g["fused"] for g in opt.param_groups)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[optimizer]
    extra = {"momentum": 0.9} if optimizer == "sgd" else {}
    ref_opt = cls(ref.parameters(), lr=3e-3, weight_decay=1e-2, foreach=False, **extra)
    x, y = torch.randn(8, 1, 16, 16), torch.randint(0, 10, (8,))
    for _ in range(5):
        for model, o in ((fast, opt), (ref, ref_opt)):
            o.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            o.step()
    for a, b in zip(fast.parameters(), ref.parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    if optimizer == "sgd":  # without momentum the for-loop step is the faster one, and is kept
        plain, _ = make_optimizer(cfg.with_(momentum=0.0), fast, total_steps=10)
        assert not any(g["fused"] for g in plain.param_groups)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_bench_repeats_alternate_and_report_medians(monkeypatch):
    """`cnnviz bench --repeat N`: N plain/engine pairs, the medians on the row, every round kept (a tiny real case)."""
    from cnnviz.train import bench

    monkeypatch.setattr(bench, "CASES", [("LeNet-5 / Fashion-MNIST", "lenet5", "fashion-mnist", 32, 3, 3)])
    [row] = bench.run_bench(quick=True, device="cpu", repeat=3)
    rounds = row["rounds"]
    assert len(rounds) == 3 and all(r["plain_img_s"] > 0 and r["engine_img_s"] > 0 for r in rounds)
    for key in ("plain_img_s", "engine_img_s", "speedup"):
        assert row[key] == sorted(r[key] for r in rounds)[1]
    assert all(r["speedup"] == pytest.approx(r["engine_img_s"] / r["plain_img_s"]) for r in rounds)
