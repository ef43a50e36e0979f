"""Lecture tabs through a launched app and gradio_client: time-lapse, drill-down, compare, sanity, receptive field.

One app for the module: the shipped checkpoints (package data), an empty temp checkpoints/, one tiny digits run trained into a temp
runs/. Every check recomputes what the page claims (with the model, the dataset or PIL), not just that it answered.
"""
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

pytest.importorskip("gradio")
import gradio as gr  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from cnnviz.images import uint8_to_pil  # noqa: E402
from cnnviz.lecture.drilldown import model_inputs, predict_test_set, trained_dataset  # noqa: E402
from cnnviz.render.figures import confusion_figure, figure_to_png  # noqa: E402
from cnnviz.render.lecture_pictures import FIELD_COLOUR, confusion_picture, draw_scale  # noqa: E402
from cnnviz.store.checkpoints import load_checkpoint  # noqa: E402
from cnnviz.store.paths import shipped_checkpoints_dir  # noqa: E402
from cnnviz.store.timelapse_file import load_timelapse  # noqa: E402
from cnnviz.train.config import Limits, TrainConfig  # noqa: E402
from cnnviz.train.engine import fit  # noqa: E402
from cnnviz.train.events import Finished  # noqa: E402
from cnnviz.ui.lecture import build_lecture_tabs  # noqa: E402
from cnnviz.ui.shared import create_shared  # noqa: E402

SHIPPED = ("lenet5-digits", "tinyvgg-shapes", "lenet5-fashion-mnist")
API_NAMES = {"timelapse_frame", "timelapse_gif", "replay", "confusion", "drilldown_cell", "drilldown_cams", "compare",
             "sanity", "receptive_field"}
# What API clients (tests, benchmarks/load_test.py, students' scripts) rely on: parameters in order, number of outputs.
PUBLIC_API = {"replay": (["run_id"], 6), "delete_run": (["run_id"], 1), "timelapse_frame": (["run_id", "index"], 1),
              "timelapse_gif": (["run_id"], 1), "confusion": (["checkpoint"], 4),
              "drilldown_cell": (["checkpoint", "true", "pred"], 3),
              "drilldown_cams": (["checkpoint", "true", "pred", "rank"], 3),
              "compare": (["checkpoints", "image", "depth", "metric"], 5), "sanity": (["checkpoint", "image"], 3),
              "receptive_field": (["arch", "dataset", "layer", "row", "col", "other"], 5)}
UNDOCUMENTED_API = {"runs": (["current"], 1), "compare_curves": (["checkpoints", "metric"], 1),
                    "compare_random_image": (["checkpoints"], 2), "sanity_random_image": (["checkpoint"], 2)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _build() -> gr.Blocks:
    """The lecture tabs alone, with a Shared made the way build_demo makes it."""
    with gr.Blocks(analytics_enabled=False) as demo:
        shared = create_shared(Limits())
        with gr.Tabs():
            build_lecture_tabs(shared)
    return demo


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("lecture-ui")
    ck, runs, tmp = root / "checkpoints", root / "runs", root / "gradio"
    for d in (ck, runs, tmp):
        d.mkdir()
    mp = pytest.MonkeyPatch()
    for var, value in (("CNNVIZ_CHECKPOINTS", ck), ("CNNVIZ_RUNS", runs), ("GRADIO_TEMP_DIR", tmp)):
        mp.setenv(var, str(value))
    events = list(fit(TrainConfig(arch="lenet5", dataset="digits", epochs=2, batch_size=64, lr=3e-3), runs_root=runs))
    assert isinstance(events[-1], Finished), events[-1]
    demo = _build()
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
    client = Client(url, verbose=False, download_files=str(root / "downloads"))
    yield client, demo, events[-1].run_id, ck, runs
    client.close()
    demo.close()
    mp.undo()


def _value(out):
    """A component update (e.g. a slider with a new range) arrives as a dict; its value is what the page shows."""
    return out["value"] if isinstance(out, dict) and out.get("__type__") == "update" else out


def _image(path) -> np.ndarray:
    return np.asarray(PIL.Image.open(path).convert("RGB"))


def test_every_feature_has_its_api_name(app):
    _, demo, *_ = app
    names = {fn.api_name for fn in demo.fns.values()}
    assert API_NAMES <= names, API_NAMES - names


def test_the_api_keeps_its_parameters_and_outputs(app):
    client, demo, *_ = app
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    shown = {name.strip("/"): ([p["parameter_name"] for p in e["parameters"]], len(e["returns"]))
             for name, e in endpoints.items()}
    assert shown == PUBLIC_API
    hidden = {fn.api_name: ([n for n, b in zip(fn.input_parameter_names, fn.inputs, strict=True)
                             if not isinstance(b, gr.State)], len(fn.outputs))
              for fn in demo.fns.values() if fn.api_visibility == "undocumented"}
    assert hidden == UNDOCUMENTED_API


def test_every_handler_takes_its_inputs_by_name(app):
    """No positional contract between a widget list and a function's parameters (see cnnviz/ui/lecture.py)."""
    _, demo, *_ = app
    for fn in demo.fns.values():
        if fn.fn is not None:
            assert len(fn.input_keyword_names) == len(fn.inputs), (fn.name, fn.inputs)


def test_handlers_answer_with_components_and_leave_the_rest_alone():
    with gr.Blocks(analytics_enabled=False):
        shared = create_shared(Limits())
        with gr.Tabs():
            tabs = build_lecture_tabs(shared)
    ws = shared.workspace.value
    t = tabs.timelapse
    empty = t.replay(run_id=None, ws=ws)
    assert set(empty) == {t.summary, t.epoch, t.frame, t.loss, t.acc, t.confusion} and empty[t.frame] is None
    assert t.reset_buttons()[t.armed] is None
    d = tabs.drilldown
    assert d.first_visit(checkpoint=None, grid=((0, 0, 1, 1), 10), ws=ws) == gr.skip()  # already shown: no work
    r = tabs.receptive
    menus = r.choose_layer(arch="vgg11", dataset="digits", layer="no-such-layer")
    assert set(menus) == {r.layer, r.row, r.col}
    field = r.receptive_field(arch="lenet5", dataset="fashion-mnist", layer="features.3", row=5, col=5, other="vgg11")
    assert "14×14 px" in field[r.caption] and set(field) == {r.unit, r.growing, r.caption, r.table, r.plot}
    with pytest.raises(gr.Error, match="unknown dataset"):
        r.receptive_field(arch="lenet5", dataset="folder", layer=None, row=None, col=None, other=None)


def test_timelapse_has_a_frame_per_epoch_and_they_change(app):
    client, _, run_id, _, runs = app
    assert list(load_timelapse(runs / run_id).epochs) == [0, 1, 2]
    summary, last, frame, loss, acc, confusion = client.predict(run_id, api_name="/replay")
    assert _value(last) == 2 and last["maximum"] == 2 and run_id in summary and "3 frames" in summary
    frames = [_image(client.predict(run_id, i, api_name="/timelapse_frame")) for i in range(3)]
    assert np.array_equal(frames[2], _image(frame))  # the replay opens on the last epoch
    for a, b in ((0, 1), (1, 2), (0, 2)):
        assert frames[a].shape == frames[b].shape and not np.array_equal(frames[a], frames[b]), (a, b)
    with pytest.raises(AppError, match="recorded 3 frames"):
        client.predict(run_id, 3, api_name="/timelapse_frame")
    gif = PIL.Image.open(client.predict(run_id, api_name="/timelapse_gif"))
    assert gif.format == "GIF" and gif.n_frames == 3
    # Replay: two epochs of train and test points per plot, and the confusion matrix of the finished run.
    assert len(loss["data"]) == 4 and len(acc["data"]) == 4
    assert PIL.Image.open(confusion).size[0] > 300


def test_unknown_run_is_a_clear_message(app):
    client, *_ = app
    with pytest.raises(AppError, match="No run called"):
        client.predict("no-such-run", 0, api_name="/timelapse_frame")


def test_an_empty_frame_index_is_a_clear_message(app):
    client, _, run_id, *_ = app
    with pytest.raises(AppError, match=r"Choose a frame: a whole number from 0 to 2 \(0 = before training\)"):
        client.predict(run_id, None, api_name="/timelapse_frame")  # was "Something went wrong" (int(None))


def test_a_cut_off_time_lapse_is_a_clear_message_and_the_curves_still_replay(app):
    client, _, run_id, _, runs = app
    cut = shutil.copytree(runs / run_id, runs / f"{run_id}-cut")
    data = (cut / "timelapse.npz").read_bytes()
    (cut / "timelapse.npz").write_bytes(data[: len(data) * 2 // 3])  # what a full disk or a killed server leaves
    try:
        summary, _, frame, loss, _, _ = client.predict(cut.name, api_name="/replay")
        assert "cut off or damaged" in summary and frame is None and len(loss["data"]) == 4
        with pytest.raises(AppError, match=f"The time-lapse of run {cut.name} cannot be read"):
            client.predict(cut.name, 1, api_name="/timelapse_frame")
    finally:
        shutil.rmtree(cut)


def _worst_cell(matrix: np.ndarray) -> tuple[int, int]:
    m = matrix.copy()
    np.fill_diagonal(m, -1)
    return tuple(int(v) for v in np.unravel_index(m.argmax(), m.shape))


def test_drilldown_images_really_are_misclassified(app):
    client, _, _, ck, _ = app
    loaded = load_checkpoint(shipped_checkpoints_dir() / "lenet5-digits.pt")
    matrix = predict_test_set(loaded).confusion()
    a, b = _worst_cell(matrix)
    picture, summary, true, pred = client.predict("lenet5-digits", api_name="/confusion")
    true, pred = _value(true), _value(pred)
    assert (true, pred) == (str(a), str(b)) and PIL.Image.open(picture).size[0] > 300
    items, text, rank = client.predict("lenet5-digits", true, pred, api_name="/drilldown_cell")
    assert len(items) == matrix[a, b] > 0 and rank == 0 and str(int(matrix[a, b])) in text
    ds = trained_dataset(loaded)
    indices = [int(re.match(r"#(\d+)", item["caption"]).group(1)) for item in items]
    with torch.no_grad():
        probs = torch.softmax(loaded.model(model_inputs(ds.test.images[indices], loaded)), 1)
    assert (ds.test.labels[indices] == a).all() and (probs.argmax(1) == b).all()
    assert (probs[:, b].diff() <= 1e-6).all()  # most confident mistakes first
    shown = _image(items[0]["image"])  # the thumbnail is the test image itself, enlarged with NEAREST
    k = shown.shape[0] // ds.test.images.shape[-1]
    assert np.array_equal(shown[::k, ::k, 0], ds.test.images[indices[0], 0].numpy())
    cam_true, cam_pred, caption = client.predict("lenet5-digits", true, pred, 0, api_name="/drilldown_cams")
    assert cam_true["label"].startswith("True") and cam_pred["label"].startswith("Predicted")  # labels carry the p's
    x, y = _image(_value(cam_true)), _image(_value(cam_pred))
    assert x.shape == y.shape and np.abs(x.astype(int) - y.astype(int)).mean() > 2  # evidence for A is not that for B
    assert f"#{indices[0]}" in caption and caption.count("probability") == 2
    with pytest.raises(AppError, match="no image number"):
        client.predict("lenet5-digits", true, pred, 99, api_name="/drilldown_cams")


def test_a_click_on_the_matrix_picks_the_cell_under_it():
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 40, (10, 10))
    pic = confusion_picture(matrix, [str(i) for i in range(10)])
    fig = confusion_figure(matrix, [str(i) for i in range(10)])  # the same figure, measured independently
    figure_to_png(fig, dpi=100)
    fig.set_dpi(100)
    fig.canvas.draw()
    height = pic.image.size[1]
    for i, j in ((0, 0), (3, 7), (9, 9), (6, 0)):
        for di, dj in ((0, 0), (0.4, -0.4), (-0.4, 0.4)):
            x, y = fig.axes[0].transData.transform((j + dj, i + di))  # display coordinates: origin at the bottom
            assert pic.cell_at(x, height - y) == (i, j)
    assert pic.cell_at(2, 2) is None  # the margin, not a cell


def _shapes_png(tmp_path: Path, ck: Path) -> tuple[Path, PIL.Image.Image]:
    image = uint8_to_pil(trained_dataset(load_checkpoint(shipped_checkpoints_dir() / "tinyvgg-shapes.pt")).test.images[0])
    path = tmp_path / "shape.png"
    image.save(path)
    return path, image


def test_compare_gives_one_entry_per_checkpoint(app, tmp_path):
    client, _, _, ck, _ = app
    path, _ = _shapes_png(tmp_path, ck)
    table, cams, maps, curves, text = client.predict(list(SHIPPED), handle_file(str(path)), 0.5, "val_acc",
                                                     api_name="/compare")
    rows = [dict(zip(table["headers"], r, strict=True)) for r in table["data"]]
    assert [r["checkpoint"] for r in rows] == list(SHIPPED)
    for r in rows:
        model = load_checkpoint(shipped_checkpoints_dir() / f"{r['checkpoint']}.pt").model
        assert int(r["parameters"]) == sum(p.numel() for p in model.parameters())
        assert int(r["FLOPs per image"]) > int(r["parameters"])
    assert len(cams) == len(maps) == 3 and all(c["caption"].startswith(n) for c, n in zip(cams, SHIPPED, strict=True))
    assert {row[2] for row in curves["data"]} == set(SHIPPED)  # one training curve per checkpoint
    with pytest.raises(AppError, match="two to four"):
        client.predict(["lenet5-digits"], handle_file(str(path)), 0.5, "val_acc", api_name="/compare")


def test_sanity_check_streams_and_randomisation_destroys_gradcam(app, tmp_path):
    client, _, _, ck, _ = app
    path, _ = _shapes_png(tmp_path, ck)
    job = client.submit("tinyvgg-shapes", handle_file(str(path)), api_name="/sanity")
    status, grid, rho = job.result(timeout=120)
    model = load_checkpoint(shipped_checkpoints_dir() / "tinyvgg-shapes.pt").model
    layers = sum(1 for n, m in model.named_modules() if n and list(m.parameters(recurse=False)))
    assert len(job.outputs()) == layers + 1  # one update per step: the trained model, then each layer
    cols = rho["columns"]
    points = [dict(zip(cols, r, strict=True)) for r in rho["data"]]
    gradcam = [p["rho"] for p in points if p["method"] == "Grad-CAM"]
    assert len(gradcam) == layers + 1 and gradcam[0] == pytest.approx(1.0) and gradcam[-1] < 0.5
    assert "Finished" in status and PIL.Image.open(grid).size[0] > 500


def test_receptive_field_outlines_the_right_box(app):
    client, *_ = app
    unit, growing, caption, table, curves = client.predict("lenet5", "fashion-mnist", "features.3", 5, 5, "vgg11",
                                                           api_name="/receptive_field")
    img = _image(unit)
    s = draw_scale(28)
    assert img.shape[:2] == (28 * s, 28 * s) and "14×14 px" in caption
    red = np.all(img == FIELD_COLOUR, axis=-1)
    lo, hi = 8 * s, 22 * s - 1  # input rows/cols 8..21, each input pixel s screen pixels wide
    for edge in (lo, hi):
        assert red[edge, lo:hi + 1].all() and red[lo:hi + 1, edge].all()  # the four sides of the box
    assert not red[: lo - 1].any() and not red[hi + 2:].any() and not red[:, : lo - 1].any()
    assert not red[lo + 3:hi - 2, lo + 3:hi - 2].any()  # an outline, not a filled box
    colours = {tuple(c) for c in _image(growing).reshape(-1, 3) if c[0] == 255 and c[2] == 0}
    assert len(colours) >= 3  # one outline colour per conv/pool layer, yellow to red
    assert [row[0] for row in table["data"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(AppError, match="outside"):
        client.predict("lenet5", "fashion-mnist", "features.3", 10, 0, "vgg11", api_name="/receptive_field")


def test_bad_checkpoint_name_is_a_clear_message(app):
    client, *_ = app
    with pytest.raises(AppError, match="no checkpoint called"):
        client.predict("../../etc/passwd", api_name="/confusion")


def test_gif_frames_are_the_scrubbed_frames(app):
    client, _, run_id, _, _ = app
    gif = PIL.Image.open(client.predict(run_id, api_name="/timelapse_gif"))
    frames = [_image(client.predict(run_id, i, api_name="/timelapse_frame")).astype(int) for i in range(3)]
    for i in range(3):
        gif.seek(i)
        shown = np.asarray(gif.convert("RGB")).astype(int)  # palette-quantised, so compare by distance
        dist = [np.abs(shown - f).mean() for f in frames]
        assert int(np.argmin(dist)) == i and dist[i] < 3, dist
