"""Lecture features in the core: time-lapse, confusion drill-down, sanity check, replay, receptive field, compare."""
import io

import numpy as np
import PIL.Image
import pytest
import torch

from cnnviz.explain.sanity import sanity_check
from cnnviz.images import uint8_to_pil
from cnnviz.lecture.comparison import compare
from cnnviz.lecture.drilldown import cams_for_pair, model_inputs, predict_test_set, trained_dataset
from cnnviz.lecture.receptive import fields_by_depth
from cnnviz.lecture.timelapse import timelapse_gif
from cnnviz.models import get_model
from cnnviz.store.checkpoints import load_checkpoint
from cnnviz.store.run_reader import list_runs, load_replay
from cnnviz.train.config import TrainConfig
from cnnviz.train.engine import fit
from cnnviz.train.evaluate import evaluate_checkpoint
from cnnviz.train.events import Finished


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(arch="lenet5", dataset="digits", epochs=3, batch_size=64, lr=3e-3)
    events = list(fit(cfg, runs_root=runs, timelapse=6))
    assert isinstance(events[-1], Finished)
    return runs, events


def test_timelapse_has_a_frame_per_epoch_and_they_change(finished_run, monkeypatch):
    runs, events = finished_run
    monkeypatch.setenv("CNNVIZ_RUNS", str(runs))
    replay = load_replay(events[-1].run_id)
    t = replay.timelapse
    assert list(t.epochs) == [0, 1, 2, 3] and t.probs.shape == (4, 6, 10) and t.cams.shape[:2] == (4, 6)
    assert not np.array_equal(t.cams[0], t.cams[-1])  # what the network looks at changes while it learns
    assert not np.allclose(t.filters[0], t.filters[-1])
    acc = [(t.probs[i].argmax(1) == t.labels).mean() for i in range(4)]
    assert acc[-1] > acc[0]  # the probes get classified better over time
    gif = PIL.Image.open(io.BytesIO(timelapse_gif(t)))
    assert gif.format == "GIF" and gif.n_frames == 4


def test_replay_restores_curves_and_confusion(finished_run, monkeypatch):
    runs, events = finished_run
    monkeypatch.setenv("CNNVIZ_RUNS", str(runs))
    assert [r.run_id for r in list_runs()] == [events[-1].run_id]
    replay = load_replay(events[-1].run_id)
    epochs = [e for e in events if e.kind == "epoch_end"]
    assert [h["val_acc"] for h in replay.record.history] == pytest.approx([e.val_acc for e in epochs])
    assert replay.confusion.tolist() == [list(r) for r in events[-1].confusion]
    with pytest.raises(ValueError):
        load_replay("../../etc")


def test_drilldown_images_really_are_misclassified():
    loaded = load_checkpoint("lenet5-fashion-mnist")
    preds = predict_test_set(loaded)
    confusion = preds.confusion()
    assert confusion.tolist() == evaluate_checkpoint(loaded)["confusion"]  # independent pass agrees
    shirt, tshirt = 6, 0  # the classic Fashion-MNIST confusion
    idx = preds.cell(shirt, tshirt)
    assert len(idx) == confusion[shirt, tshirt] > 0
    ds = trained_dataset(loaded)
    with torch.no_grad():
        logits = loaded.model(model_inputs(ds.test.images[idx], loaded))
    assert (ds.test.labels[idx] == shirt).all() and (logits.argmax(1) == tshirt).all()
    a, b = cams_for_pair(loaded, int(idx[0]), shirt, tshirt)
    assert (a.target, b.target) == (shirt, tshirt)
    assert not np.allclose(a.cam, b.cam)
    assert b.probs[tshirt] > a.probs[shirt]


def test_sanity_check_randomisation_destroys_gradcam():
    loaded = load_checkpoint("tinyvgg-shapes")
    ds = trained_dataset(loaded)
    x = model_inputs(ds.test.images[:1], loaded)
    steps = list(sanity_check(loaded.model, x))
    assert steps[0].layer == "" and steps[0].rho_gradcam == 1.0
    assert len(steps) == 1 + sum(1 for _, m in loaded.model.named_modules() if list(m.parameters(recurse=False)))
    assert steps[-1].rho_gradcam < 0.5
    assert all(s.gradcam.shape == x.shape[-2:] for s in steps)


@pytest.mark.parametrize("arch,channels,size", [("lenet5_classic", 1, 28), ("resnet18", 3, 32)])  # no max-pools: every path counts
def test_receptive_field_boxes_match_gradients(arch, channels, size):
    """The analytic box equals where the centre unit's input gradient is non-zero (positive weights, no dead units)."""
    torch.manual_seed(0)
    model = get_model(arch, channels, 10, size).eval()
    for p in model.parameters():
        p.data = p.data.abs() + 0.01
    boxes = {b.layer: b for b in fields_by_depth(model, (channels, size, size))}
    modules = dict(model.named_modules())
    for name, box in boxes.items():
        x = torch.rand(1, channels, size, size, requires_grad=True)
        out = {}
        h = modules[name].register_forward_hook(lambda m, i, o, out=out: out.setdefault("y", o))
        model(x)
        h.remove()
        y = out["y"]
        y[0, :, y.shape[2] // 2, y.shape[3] // 2].sum().backward()
        rows, cols = torch.nonzero(x.grad[0].abs().sum(0), as_tuple=True)
        x0, y0, x1, y1 = box.box
        assert (rows.min(), rows.max()) == (max(0, int(y0)), min(size - 1, int(y1))), name
        assert (cols.min(), cols.max()) == (max(0, int(x0)), min(size - 1, int(x1))), name


def test_compare_two_architectures_on_one_image():
    a, b = load_checkpoint("lenet5-fashion-mnist"), load_checkpoint("tinyvgg-shapes")
    ds = trained_dataset(b)
    image = uint8_to_pil(ds.test.images[0])
    rows = compare([a, b], image)
    assert [r.arch for r in rows] == ["lenet5", "tinyvgg"]
    assert rows[0].params == sum(p.numel() for p in a.model.parameters())
    assert rows[1].prediction.labels[0] == b.meta.class_names[int(ds.test.labels[0])] or rows[1].prediction.probs[0] < 0.9
    assert rows[0].view.size != rows[1].view.size or rows[0].view.mode != rows[1].view.mode  # grey 28 px vs RGB 32 px
    assert rows[0].maps.maps.shape[0] in (6, 16)
