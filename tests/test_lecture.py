"""Lecture features in the core: time-lapse, confusion drill-down, sanity check, replay, receptive field, compare."""
import io
import os
import shutil

import numpy as np
import PIL.Image
import pytest
import torch

from cnnviz.explain.sanity import sanity_check
from cnnviz.images import uint8_to_pil
from cnnviz.lecture.comparison import (
    TABLE_COLUMNS,
    checkpoints_to_compare,
    compare,
    comparison_report,
    training_curves,
)
from cnnviz.lecture.drilldown import (
    cams_for_pair,
    model_inputs,
    parse_class,
    predict_test_set,
    trained_dataset,
    worst_cell,
)
from cnnviz.lecture.drilldown_views import (
    MAX_IMAGES,
    THUMB,
    cell_cams,
    cell_images,
    clicked_cell,
    confusion_overview,
)
from cnnviz.lecture.errors import LectureError
from cnnviz.lecture.receptive import field_box, fields_by_depth
from cnnviz.lecture.receptive_tables import DEPTHS, geometry, model_shape, rf_curves, rf_table, unit_field
from cnnviz.lecture.replay import frame_at, recorded_timelapse, replay_run, run_choices, write_gif
from cnnviz.lecture.sanity_stream import sanity_stream
from cnnviz.lecture.timelapse import timelapse_gif
from cnnviz.models import get_model, input_shape
from cnnviz.render.lecture_pictures import draw_scale
from cnnviz.store.checkpoints import load_checkpoint
from cnnviz.store.run_reader import list_runs, load_replay, read_run
from cnnviz.store.workspace import Workspace
from cnnviz.train.callbacks import TimelapseCallback
from cnnviz.train.config import TrainConfig
from cnnviz.train.engine import fit
from cnnviz.train.evaluate import evaluate_checkpoint
from cnnviz.train.events import Finished


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(arch="lenet5", dataset="digits", epochs=3, batch_size=64, lr=3e-3)
    events = list(fit(cfg, runs_root=runs, callbacks=[TimelapseCallback(k=6)]))
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


# The views the lecture tabs show, computed in the core (no gradio): what each tab's handler only hands to widgets.


def test_receptive_tables_use_the_one_input_shape_rule():
    for arch, dataset in (("lenet5", "fashion-mnist"), ("tinyvgg", "shapes"), ("resnet18", "digits")):
        s = input_shape(arch, dataset)
        g = geometry(arch, dataset)
        assert g.shape == (s.channels, s.size, s.size) == model_shape(arch, dataset)
        assert g.rows and all(r.type in ("Conv2d", "MaxPool2d", "AvgPool2d") for r in g.rows)
        assert [b.layer for b in g.depth_boxes] == [r.name for r in g.rows]  # one centre field per conv/pool layer
        assert g.pick_layer("no-such-layer") == g.default_layer() and g.pick_layer(g.rows[0].name) == g.rows[0].name
    with pytest.raises(LectureError, match="unknown architecture 'nope'"):
        geometry("nope", "digits")
    with pytest.raises(LectureError, match="unknown dataset 'folder'; choose one of: digits$"):
        model_shape("lenet5", "folder", ("digits",))  # the caller's offer decides, and the message lists it


def test_a_unit_field_is_its_layer_box_and_its_caption_says_so():
    g = geometry("lenet5", "fashion-mnist")
    view = unit_field(g, "fashion-mnist", "features.3", 5, 5)
    box = field_box(g.row("features.3"), 5, 5)
    assert view.scale == draw_scale(28) and view.image.size == (28 * view.scale,) * 2
    assert f"{box.rf}×{box.rf} px" in view.caption and f"{box.jump} px apart" in view.caption
    assert view.growing().size == view.image.size
    corner = unit_field(g, "fashion-mnist", "features.3", 0, 0)
    assert "zero padding" in corner.caption and "zero padding" not in view.caption
    with pytest.raises(LectureError, match=r"position \(10, 0\) is outside features.3's 10×10 output grid"):
        unit_field(g, "fashion-mnist", "features.3", 10, 0)
    with pytest.raises(LectureError, match="no conv or pooling layer called 'fc'"):
        unit_field(g, "fashion-mnist", "fc", None, None)


def test_rf_table_and_curves_compare_two_stacks_by_relative_depth():
    a, b = geometry("lenet5", "fashion-mnist"), geometry("vgg11", "fashion-mnist")
    table = rf_table(a, b)
    assert table["relative depth"].tolist() == list(DEPTHS)
    assert table["lenet5 layer"].iloc[0] == a.depth_boxes[0].layer and table["vgg11 layer"].iloc[-1] == b.depth_boxes[-1].layer
    assert table[f"vgg11 RF (px of {b.shape[1]})"].is_monotonic_increasing  # fields only grow with depth
    curves = rf_curves(a, b)
    assert len(curves) == len(a.depth_boxes) + len(b.depth_boxes) and curves["relative depth"].between(0, 1).all()


def test_drilldown_views_word_and_draw_the_cells():
    assert worst_cell(np.array([[5, 1, 0], [4, 5, 2], [0, 3, 5]])) == (1, 0)
    assert worst_cell(np.eye(3, dtype=int) * 7) == (0, 0)  # no mistakes: the first cell
    assert parse_class("3", tuple("abcd"), "true") == 3 and parse_class("c", tuple("abcd"), "true") == 2
    with pytest.raises(LectureError, match="Choose the predicted class"):
        parse_class(None, tuple("abcd"), "predicted")
    loaded = load_checkpoint("lenet5-digits")
    preds = predict_test_set(loaded)
    overview = confusion_overview(loaded)
    a, b = overview.worst
    assert (a, b) == worst_cell(preds.confusion()) and a != b
    assert f"({int(preds.confusion()[a, b])}×)" in overview.summary and len(overview.class_names) == 10
    x0, y0, x1, y1 = overview.grid[0]
    k = overview.grid[1]
    cell_w, cell_h = (x1 - x0) / k, (y1 - y0) / k
    assert clicked_cell(overview.grid, [x0 + (b + 0.5) * cell_w, y0 + (a + 0.5) * cell_h]) == (a, b)
    assert clicked_cell(overview.grid, [1, 1]) is None and clicked_cell(None, [1, 1]) is None
    assert clicked_cell(overview.grid, 3) is None  # a gallery-style index is not a position
    cell = cell_images(loaded, a, b)
    assert len(cell.items) == min(MAX_IMAGES, len(preds.cell(a, b))) and cell.items[0][0].size == (THUMB, THUMB)
    assert cell.items[0][1].startswith(f"#{int(preds.cell(a, b)[0])} ")
    pair = cell_cams(loaded, a, b, 0)
    assert pair.true_label.startswith("True:") and pair.pred_label.startswith("Predicted:")
    assert pair.true_image.size == pair.pred_image.size
    with pytest.raises(LectureError, match="there is no image number 999"):
        cell_cams(loaded, a, b, 999)
    empty = next((i, j) for i in range(10) for j in range(10) if preds.confusion()[i, j] == 0)
    assert cell_cams(loaded, *empty, 0) is None and "never happens" in cell_images(loaded, *empty).text


def test_comparison_report_checks_its_inputs_before_working():
    assert checkpoints_to_compare(["a", "b", "a"]) == ["a", "b"]
    for names in (None, ["a", "a"], list("abcde")):
        with pytest.raises(LectureError, match="two to four"):
            checkpoints_to_compare(names)
    read = []
    with pytest.raises(LectureError, match="unknown curve 'nope'"):
        training_curves(["a"], "nope", read.append)
    assert read == []  # the metric is checked before any checkpoint is opened
    history = [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.75}]
    curves = training_curves(["a", "b"], "val_acc", lambda name: history)
    assert curves["checkpoint"].tolist() == ["a", "a", "b", "b"] and curves["value"].tolist() == [0.5, 0.75] * 2
    models = [load_checkpoint("lenet5-digits"), load_checkpoint("tinyvgg-shapes")]
    image = uint8_to_pil(trained_dataset(models[1]).test.images[0])
    with pytest.raises(LectureError, match="between 0"):
        comparison_report(models, image, 1.5)
    report = comparison_report(models, image, None)  # None: halfway
    assert report.table.columns.tolist() == TABLE_COLUMNS and report.table["checkpoint"].tolist() == [m.name for m in models]
    assert len(report.cams) == len(report.maps) == 2 and "relative depth 0.50" in report.text
    assert "in grey for lenet5-digits" in report.text


def test_sanity_stream_updates_once_per_step():
    loaded = load_checkpoint("lenet5-digits")
    updates = list(sanity_stream(loaded, None))
    layers = sum(1 for n, m in loaded.model.named_modules() if n and list(m.parameters(recurse=False)))
    assert len(updates) == layers + 1
    assert "test image 0 of digits" in updates[0].status and "Finished" not in updates[0].status
    assert "Finished" in updates[-1].status and len(updates[-1].rho) == 2 * (layers + 1)
    assert updates[-1].rho["rho"].iloc[0] == pytest.approx(1.0)  # step 0 is the trained model against itself


def test_replay_reads_a_run_and_rereads_its_timelapse_when_it_changes(finished_run, tmp_path, monkeypatch):
    runs, events = finished_run
    monkeypatch.setenv("CNNVIZ_RUNS", str(runs))
    record = read_run(runs / events[-1].run_id)
    assert run_choices(Workspace()) == [(record.label, record.run_id)]
    r = replay_run(record)
    assert r.timelapse is not None and len(r.timelapse.epochs) == 4 and r.frame.size == frame_at(r.timelapse, 3).size
    assert len(r.loss) == len(r.accuracy) == 6 and r.confusion is not None and "4 frames" in r.summary
    with pytest.raises(LectureError, match="recorded 4 frames"):
        frame_at(r.timelapse, 4)
    assert recorded_timelapse(record) is recorded_timelapse(record)  # cached while the file is unchanged
    run_dir = tmp_path / record.run_id
    shutil.copytree(record.dir, run_dir)
    first = recorded_timelapse(read_run(run_dir))
    os.utime(run_dir / "timelapse.npz", ns=(1, 1))  # a new modification time: a run still training wrote a frame
    assert recorded_timelapse(read_run(run_dir)) is not first
    gif = write_gif(first, tmp_path, record.run_id)
    assert gif.name == f"{record.run_id}-timelapse.gif" and PIL.Image.open(gif).n_frames == 4
    (run_dir / "timelapse.npz").unlink()
    bare = read_run(run_dir)
    assert replay_run(bare).timelapse is None and "no time-lapse" in replay_run(bare).summary
    assert run_choices(Workspace())[0][0] == record.label  # the shared run still lists without the marker
    with pytest.raises(LectureError, match="has no time-lapse"):
        recorded_timelapse(bare)
