"""The app builds without launching (catches removed Gradio kwargs), the core never imports gradio, and the UI's
pure helpers (config from the form, drawings, plot feed, app flags) behave."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
API_NAMES = {"architecture", "train", "pause", "stop", "clear_curves", "predict", "predict_drawing", "random_example",
             "explain", "feature_maps"}


def test_core_does_not_import_gradio():
    code = ("import cnnviz, cnnviz.train.engine, cnnviz.explain.gradcam, cnnviz.render.figures, cnnviz.store.checkpoints, cnnviz.cli, "
            "cnnviz.examples, cnnviz.drawing, cnnviz.store.workspace, cnnviz.train.run_queue, cnnviz.train.session; import sys; "
            "assert 'gradio' not in sys.modules, 'the core imported gradio'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


gr = pytest.importorskip("gradio")


@pytest.fixture(scope="module")
def demo():
    from cnnviz.ui import build_demo

    return build_demo()


def test_build_demo_without_launching(demo):
    assert isinstance(demo, gr.Blocks)
    names = {fn.api_name for fn in demo.fns.values() if fn.api_name}
    assert API_NAMES <= names
    tabs = [b.label for b in demo.blocks.values() if isinstance(b, gr.Tab)]
    assert [t for t in tabs if t in ("Architecture", "Train", "Predict", "Explain")] == ["Architecture", "Train", "Predict",
                                                                                         "Explain"]


def test_training_waits_in_our_queue_and_stop_never_waits(demo):
    train = next(fn for fn in demo.fns.values() if fn.api_name == "train")
    assert train.concurrency_limit is None  # runs wait in the app's RunQueue, showing their place, not in Gradio's queue
    stop = next(fn for fn in demo.fns.values() if fn.api_name == "stop")
    cancel = [fn for fn in demo.fns.values() if fn.cancels and train._id in fn.cancels]
    assert cancel and stop.concurrency_limit is None  # Stop never waits behind a run


def test_limits_reach_the_form():
    from cnnviz.train.config import Limits
    from cnnviz.ui import build_demo

    demo = build_demo(Limits(max_epochs=3, max_subset=500))
    epochs = next(b for b in demo.blocks.values() if isinstance(b, gr.Slider) and b.label == "Epochs")
    subset = next(b for b in demo.blocks.values() if isinstance(b, gr.Number) and b.label.startswith("Subset"))
    assert epochs.maximum == 3 and epochs.value <= 3 and 0 < subset.value <= 500 and subset.maximum == 500


def test_launch_options_are_safe_and_offline():
    from cnnviz.ui import launch_options

    opts = launch_options()
    assert opts["server_name"] == "127.0.0.1" and opts["share"] is False and opts["auth"] is None
    assert opts["show_error"] is False and opts["enable_monitoring"] is False and opts["max_file_size"] == "10mb"
    assert launch_options(max_upload_mb=3)["max_file_size"] == "3mb"
    fonts = " ".join(str(f) for f in opts["theme"]._font)
    assert "googleapis" not in fonts and "system-ui" in fonts


def test_app_flags(monkeypatch):
    sys.path.insert(0, str(REPO))
    import app

    args = app.parse_args([])
    assert (args.host, args.share, args.auth, args.max_queue, args.max_queued_runs) == ("127.0.0.1", False, [], 64, 8)
    args = app.parse_args(["--host", "0.0.0.0", "--port", "9000", "--auth", "ann:pw1", "--auth", "bob:pw:2",
                           "--max-epochs", "5", "--max-subset", "1000", "--max-queue", "4", "--max-queued-runs", "2",
                           "--max-upload-mb", "3", "--share"])
    assert args.max_upload_mb == 3
    assert app.parse_auth(args.auth) == [("ann", "pw1"), ("bob", "pw:2")]
    assert (args.port, args.max_epochs, args.max_subset, args.max_queue, args.max_queued_runs, args.share) == (
        9000, 5, 1000, 4, 2, True)
    with pytest.raises(SystemExit, match="USER:PASSWORD"):
        app.parse_auth(["nopassword"])
    import os

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_config_from_the_form_keeps_what_the_form_does_not_show():
    from cnnviz.train.config import Limits
    from cnnviz.train.form import make_config, preset_values

    values = preset_values("demo-shapes", Limits())
    cfg = make_config("demo-shapes", {**values, "epochs": 2.0, "subset": 0.0})
    assert cfg.arch_kwargs == {"width": 16} and cfg.epochs == 2 and isinstance(cfg.epochs, int) and cfg.subset is None
    other = make_config("demo-shapes", {**values, "arch": "lenet5"})
    assert other.arch_kwargs == {}  # TinyVGG's width option does not apply to LeNet
    capped = preset_values("demo-fashion-mnist", Limits(max_subset=300, max_epochs=2))
    assert capped["subset"] == 300 and capped["epochs"] == 2


def test_drawings_become_white_on_black_and_centred():
    from PIL import Image, ImageDraw

    from cnnviz.drawing import drawing_to_image
    from cnnviz.images import ImageError

    img = Image.new("RGB", (280, 280), "white")
    ImageDraw.Draw(img).rectangle([20, 20, 60, 120], fill="black")  # a small mark in the top-left corner
    out = drawing_to_image(img, channels=1, dataset="mnist")
    arr = out.convert("L").load()
    w, h = out.size
    assert arr[w // 2, h // 2] == 255 and arr[0, 0] == 0  # white ink, centred, black background
    assert math.isclose(101 / h, 20 / 28, rel_tol=0.05)  # MNIST's 20-in-28 px box
    assert drawing_to_image(img, channels=3, dataset="shapes").size == (280, 280)
    with pytest.raises(ImageError, match="empty"):
        drawing_to_image(Image.new("RGB", (280, 280), "white"), 1, "mnist")


def test_plot_feed_rebuilds_one_update_after_new_series():
    from cnnviz.train.session import PlotFeed

    feed = PlotFeed()
    run1, run2 = ("run 1 train", "run 1 test"), ("run 1 train", "run 1 test", "run 2 train", "run 2 test")
    assert [feed.rebuild_due(s) for s in (run1, run1, run1, run2, run2, run2)] == [False, True, False, False, True, False]


def test_examples_are_real_dataset_images():
    from cnnviz.examples import asset_examples, test_example

    examples = asset_examples()
    assert len(examples) >= 8 and all(p.stat().st_size < 5000 for p, _ in examples)
    ex = test_example("digits", index=5)
    assert ex.image.size == (8, 8) and ex.label in "0123456789"
