"""The launched app driven through gradio_client: every api_name, with real content checked.

`running_app` and `seed_checkpoint` are reused by test_ui_uploads.py, test_ui_browser.py and test_ui_server_files.py.
"""
from __future__ import annotations

import re
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from cnnviz.train.config import Limits  # noqa: E402
from cnnviz.train.engine import fit  # noqa: E402
from cnnviz.train.events import Finished  # noqa: E402
from cnnviz.train.presets import PRESETS  # noqa: E402

# gradio's queue calls pandas APIs that pandas 3 deprecates; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
REPO = Path(__file__).resolve().parents[1]
SHIPPED_DIGITS = REPO / "cnnviz" / "shipped" / "checkpoints" / "lenet5-digits.pt"
CKPT = "lenet5-digits"
PUBLIC = ["/architecture", "/train", "/pause", "/stop", "/clear_curves", "/share_run", "/predict", "/predict_drawing",
          "/random_example", "/explain", "/feature_maps", "/filters"]
# /train outputs as the API returns them (buttons are not part of the API)
STATUS, LOSS, ACC, LEGEND, RESULT, CONFUSION, PER_CLASS, DOWNLOAD, CHECKPOINT = range(9)
TRAIN = dict(preset="demo-digits", arch="lenet5", dataset="digits", subset=0, epochs=4, batch_size=64, optimizer="adam",
             lr=3e-3, schedule="onecycle", augment=False, device="cpu", seed=0, momentum=0.9, weight_decay=0.0,
             label_smoothing=0.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_checkpoint(ck_dir: Path, runs_dir: Path) -> str:
    """A trained digits model as ck_dir/lenet5-digits.pt: the shipped one, else trained now (a few seconds)."""
    ck_dir.mkdir(parents=True, exist_ok=True)
    runs_dir.mkdir(parents=True, exist_ok=True)
    if SHIPPED_DIGITS.is_file():
        shutil.copyfile(SHIPPED_DIGITS, ck_dir / f"{CKPT}.pt")
    else:
        end = list(fit(PRESETS["demo-digits"].config, runs_root=runs_dir))[-1]
        assert isinstance(end, Finished), end
        shutil.copyfile(end.checkpoint, ck_dir / f"{CKPT}.pt")
    return CKPT


@contextmanager
def running_app(tmp: Path, limits: Limits | None = None) -> Iterator[str]:
    """Launch the app in this process on a free loopback port, with checkpoints/ and runs/ in `tmp`; yields the URL."""
    from cnnviz.ui import build_demo, configure_queue, launch_options

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNVIZ_CHECKPOINTS", str(tmp / "checkpoints"))
        mp.setenv("CNNVIZ_RUNS", str(tmp / "runs"))
        seed_checkpoint(tmp / "checkpoints", tmp / "runs")
        demo = configure_queue(build_demo(limits), max_size=20)
        port = free_port()
        demo.launch(prevent_thread_lock=True, **launch_options(port=port))
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            demo.close()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory) -> Iterator[str]:
    with running_app(tmp_path_factory.mktemp("app")) as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url) -> Iterator[Client]:
    c = Client(app_url, verbose=False)  # one session for the module: closing a client takes a second
    yield c
    c.close()


def digit_png(tmp_path: Path, label: str) -> Path:
    """The first test image of a class of the digits dataset, as a PNG file."""
    from cnnviz.examples import first_of_class

    path = tmp_path / f"digit-{label}.png"
    first_of_class("digits", label).image.save(path)
    return path


def test_every_action_has_a_public_api_name(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(PUBLIC) <= set(endpoints)
    returns = [r["component"] for r in endpoints["/train"]["returns"]]
    assert returns == ["Html", "Lineplot", "Lineplot", "Markdown", "Markdown", "Image", "Barplot", "File", "Textbox"]


def test_architecture_table_totals_and_diagram(client):
    header, totals, diagram, table = client.predict("lenet5", "fashion-mnist", api_name="/architecture")
    assert "LeNet-5" in header and "1×28×28" in header
    assert "61,706" in totals  # LeNet-5's published parameter count at 28 px, 10 classes
    assert diagram.count("arch-conv") >= 2 and "arch-fc" in diagram
    rows = table["data"]
    assert rows[0][:3] == ["features.0", "Conv2d", "6×28×28"] and len(rows) == 12
    with pytest.raises(AppError, match="not in the list of choices"):  # gradio checks dropdown values itself
        client.predict("nonet", "digits", api_name="/architecture")


def test_predict_gives_the_right_labels_on_real_test_images(client, tmp_path):
    right = 0
    for label in "0123456789":
        probs, view, details = client.predict(CKPT, handle_file(digit_png(tmp_path, label)), 3, api_name="/predict")
        right += probs["label"] == label
        assert len(probs["confidences"]) == 3
    assert right >= 9  # the checkpoint scores ~96% on the test split
    assert Image.open(view).size == (224, 224)  # 16 px input, shown at 14x
    assert "network input 1×16×16" in details


def test_random_example_comes_with_its_true_label(client):
    image, truth = client.predict(CKPT, api_name="/random_example")
    assert Image.open(image).size == (8, 8) and re.match(r"\d \(test image \d+ of digits\)", truth)


def test_predict_a_drawing_inverts_it_like_mnist(client, tmp_path):
    img = Image.new("RGBA", (280, 280), "white")
    ImageDraw.Draw(img).line([(140, 50), (140, 230)], fill="black", width=22)  # a "1", black on white
    img.save(tmp_path / "one.png")
    drawing = {"background": None, "layers": [], "composite": handle_file(tmp_path / "one.png"), "id": None}
    probs, view, details, _ = client.predict(CKPT, drawing, 3, api_name="/predict_drawing")
    assert probs["label"] == "1"
    centre = Image.open(view).convert("L").getpixel((112, 112))
    assert centre > 128  # the network sees a white stroke on black


def test_explain_returns_overlay_maps_and_methods_and_filters_on_request(client, tmp_path):
    out = client.predict(checkpoint=CKPT, image=handle_file(digit_png(tmp_path, "7")), layer="", target="predicted",
                         opacity=0.5, methods=["saliency", "ig"], sort="mean", max_maps=64, api_name="/explain")
    summary, cam, fmaps, fm_caption, methods, layer_menu, target_menu = out  # no filters: they have their own call
    assert "Predicted **7**" in summary
    assert Image.open(cam).size == (224, 224)  # the 16 px input, upscaled 14x like the model view
    assert Image.open(fmaps).size[0] > 50 and "16 of 16 channels" in fm_caption
    assert Image.open(methods).size[0] > 2 * Image.open(methods).size[1]  # input + 2 methods side by side
    filters, filters_caption = client.predict(checkpoint=CKPT, layer="", api_name="/filters")  # the panel, opened
    assert Image.open(filters).size[0] > 50 and filters_caption.startswith("`features.3`: 16 filters of 5×5")
    first, first_caption = client.predict(checkpoint=CKPT, layer="features.1", api_name="/filters")
    assert first_caption.startswith("`features.0` (the convolution feeding `features.1`): 6 filters of 5×5")
    assert Image.open(first).size != Image.open(filters).size
    assert layer_menu["value"] == "features.3" and any(v == "features.0" for _, v in layer_menu["choices"])
    assert [v for _, v in target_menu["choices"]][:2] == ["predicted", "0"]
    stronger = client.predict(0.9, api_name="/overlay")  # the slider re-blends the session's last Grad-CAM
    assert Image.open(stronger).size == (224, 224) and open(stronger, "rb").read() != open(cam, "rb").read()
    with pytest.raises(AppError, match="unknown layer"):
        client.predict(checkpoint=CKPT, image=handle_file(digit_png(tmp_path, "7")), layer="nope", target="predicted",
                       opacity=0.5, methods=[], sort="mean", max_maps=64, api_name="/explain")


def test_feature_maps_of_any_layer(client, tmp_path):
    grid, caption = client.predict(checkpoint=CKPT, image=handle_file(digit_png(tmp_path, "3")), layer="features.0",
                                   sort="max", max_maps=4, api_name="/feature_maps")
    assert "4 of 6 channels, each 16×16" in caption and Image.open(grid).size[0] >= 4 * 16


def test_unknown_checkpoint_and_bad_settings_are_explained(client, tmp_path):
    with pytest.raises(AppError, match="no checkpoint called"):
        client.predict("../../etc/passwd", handle_file(digit_png(tmp_path, "1")), 3, api_name="/predict")
    with pytest.raises(AppError, match=r"learning rate must be a number in \(0, 10\]"):
        client.predict(**{**TRAIN, "lr": 50.0}, api_name="/train")
    with pytest.raises(AppError, match="less than minimum value"):  # gradio checks slider ranges itself
        client.predict(**{**TRAIN, "epochs": 0}, api_name="/train")


def test_a_diverging_run_ends_with_the_engines_advice(client):
    with pytest.raises(AppError, match="training diverged. Lower the learning rate"):
        client.predict(**{**TRAIN, "optimizer": "sgd", "lr": 10.0, "epochs": 3}, api_name="/train")


def test_unexpected_errors_show_a_generic_message(client, tmp_path, monkeypatch):
    import cnnviz.ui.predict_tab as predict_tab

    def boom(*args, **kwargs):
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(predict_tab, "run_prediction", boom)
    with pytest.raises(AppError) as info:
        client.predict(CKPT, handle_file(digit_png(tmp_path, "1")), 3, api_name="/predict")
    assert "Something went wrong on the server" in str(info.value) and "internal detail" not in str(info.value)


def accuracy_in(result: str) -> float:
    return float(re.search(r"Test accuracy: ([\d.]+)%", result).group(1)) / 100


def test_train_streams_updates_and_finishes_with_a_usable_checkpoint(client, tmp_path):
    job = client.submit(**{**TRAIN, "epochs": 6}, api_name="/train")
    final = job.result(timeout=120)
    updates = job.outputs()
    assert len(updates) >= 3
    assert accuracy_in(final[RESULT]) > 0.5  # chance is 0.1
    loss = final[LOSS]["value"] if "value" in final[LOSS] else final[LOSS]
    assert loss["columns"] == ["epoch", "value", "series"] and any(row[2] == "run 1 test" for row in loss["data"])
    per_class = final[PER_CLASS].get("value", final[PER_CLASS])  # sent with its class order as a property
    assert len(per_class["data"]) == 10 and Path(final[DOWNLOAD]).suffix == ".pt"
    new = final[CHECKPOINT]
    assert re.match(r"\d{8}-\d{6}-lenet5-digits-[0-9a-f]{4}$", new)
    probs, _, _ = client.predict(new, handle_file(digit_png(tmp_path, "4")), 3, api_name="/predict")
    assert probs["confidences"][0]["confidence"] > 0.1


def test_pause_resume_and_stop_a_run_which_keeps_its_weights(client):
    job = client.submit(**{**TRAIN, "epochs": 50}, api_name="/train")
    while len(job.outputs()) < 3 and not job.done():
        time.sleep(0.05)
    client.predict(api_name="/pause")
    deadline = time.monotonic() + 30
    while "Paused" not in job.outputs()[-1][STATUS] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Paused" in job.outputs()[-1][STATUS]
    client.predict(api_name="/pause")  # resume
    while "Training" not in job.outputs()[-1][STATUS] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Training" in job.outputs()[-1][STATUS]
    stopped = client.predict(api_name="/stop")
    assert "Stopped" in stopped[STATUS] and "Stopped" in stopped[RESULT]
    final = job.result(timeout=60)
    assert "stopped by the user" in final[RESULT]
    assert stopped[CHECKPOINT]  # the weights so far are a checkpoint
    assert job.status().code.name == "FINISHED"


def wait_for_status(job, text: str, timeout: float = 60) -> str:
    """The first streamed status that contains `text` (fails after `timeout` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outputs = job.outputs()
        if outputs and text in outputs[-1][STATUS]:
            return outputs[-1][STATUS]
        assert not job.done(), f"ended before showing {text!r}: {outputs[-1][STATUS] if outputs else job.status()}"
        time.sleep(0.02)
    raise AssertionError(f"no status with {text!r} within {timeout} s")


def test_a_second_user_waits_their_turn_and_a_strangers_stop_stops_nothing(app_url, client, tmp_path):
    other, stranger = Client(app_url, verbose=False), Client(app_url, verbose=False)
    try:
        first = client.submit(**{**TRAIN, "epochs": 8}, api_name="/train")
        wait_for_status(first, "Training")
        second = other.submit(**TRAIN, api_name="/train")
        assert "1 run ahead" in wait_for_status(second, "Waiting in the training queue")
        stopping = stranger.submit(api_name="/stop")  # another student's Stop: they have no run (it waits ~2 s for one)
        latencies = []
        while not first.done() or not latencies:
            t0 = time.perf_counter()
            probs, _, _ = other.predict(CKPT, handle_file(digit_png(tmp_path, "2")), 1, api_name="/predict")
            latencies.append(time.perf_counter() - t0)
            assert probs["label"] == "2"
        assert "Nothing is training" in stopping.result(timeout=30)[STATUS]
        assert accuracy_in(first.result(timeout=60)[RESULT]) > 0.2  # finished: the stranger's Stop did not stop it
        assert accuracy_in(second.result(timeout=120)[RESULT]) > 0.2  # then the waiting run trained
        assert latencies and max(latencies) < 5
    finally:
        other.close()
        stranger.close()


def test_a_full_training_queue_refuses_with_a_clear_message(tmp_path):
    with running_app(tmp_path, Limits(max_queued_runs=0)) as url:
        first_user, second_user = Client(url, verbose=False), Client(url, verbose=False)
        try:
            first = first_user.submit(**{**TRAIN, "epochs": 50}, api_name="/train")
            wait_for_status(first, "Training")
            with pytest.raises(AppError, match="training queue is full"):
                second_user.predict(**TRAIN, api_name="/train")
            first_user.predict(api_name="/stop")
            assert "Stopped" in first.result(timeout=60)[RESULT]
            assert accuracy_in(second_user.predict(**{**TRAIN, "epochs": 1}, api_name="/train")[RESULT]) > 0.1  # room again
        finally:
            first_user.close()
            second_user.close()


def test_a_students_runs_are_theirs_until_they_share_one(app_url, client, tmp_path):
    classmate = Client(app_url, verbose=False)
    try:
        run = client.predict(**{**TRAIN, "epochs": 2}, api_name="/train")[CHECKPOINT]
        png = handle_file(digit_png(tmp_path, "5"))
        assert client.predict(run, png, 1, api_name="/predict")[0]["label"]  # the owner uses it
        with pytest.raises(AppError, match="no checkpoint called"):
            classmate.predict(run, png, 1, api_name="/predict")  # another student does not even see it
        with pytest.raises(AppError, match="No run called"):
            classmate.predict(run, api_name="/replay")
        with pytest.raises(AppError, match="no run called"):
            classmate.predict(run, api_name="/share_run")  # nor publish it
        client.predict(run, api_name="/share_run")
        assert classmate.predict(run, png, 1, api_name="/predict")[0]["label"]  # shared on purpose: now everyone's
        assert run in classmate.predict(run, api_name="/replay")[0]
        with pytest.raises(AppError, match="shared with everyone"):
            classmate.predict(run, api_name="/delete_run")  # and nobody's to delete from the app
        scratch = client.predict(**{**TRAIN, "epochs": 1}, api_name="/train")[CHECKPOINT]
        client.predict(scratch, api_name="/delete_run")
        with pytest.raises(AppError, match="no checkpoint called"):
            client.predict(scratch, png, 1, api_name="/predict")
    finally:
        classmate.close()
