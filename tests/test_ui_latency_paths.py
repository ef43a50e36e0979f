"""What a click costs in the launched app (issue 16): Grad-CAM first, other methods only on request, repeats served
from the cache, defaults that need no input, tabs that open with a result. No timings here (benchmarks/latency.py)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("gradio")
import gradio as gr  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from PIL import Image  # noqa: E402
from test_ui_api import digit_png, running_app  # noqa: E402  (pytest puts tests/ on sys.path)

import cnnviz.explain.attributions as attributions_mod  # noqa: E402
import cnnviz.explain.cache as cache_mod  # noqa: E402
import cnnviz.render.explain_pictures as pictures_mod  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
CKPT = "lenet5-digits"
EXPLAIN = dict(layer="", target="predicted", opacity=0.5, sort="mean", max_maps=64)


class Calls:
    """Counts calls of the model-work functions the result cache guards (the app runs in this process)."""

    def __init__(self, monkeypatch):
        self.names: list[str] = []
        for mod, name in ((cache_mod, "grad_cam"), (cache_mod, "feature_maps"), (attributions_mod, "attribute"),
                          (pictures_mod, "filter_view")):
            real = getattr(mod, name)
            monkeypatch.setattr(mod, name, self._counting(name, real))

    def _counting(self, name, real):
        def wrapper(*args, **kwargs):
            self.names.append(name if name != "attribute" else f"attribute:{args[2]}")
            return real(*args, **kwargs)
        return wrapper


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[tuple[str, Client]]:
    with running_app(tmp_path_factory.mktemp("latency")) as url:
        client = Client(url, verbose=False)
        yield url, client
        client.close()


def test_explain_answers_with_grad_cam_and_no_other_method_unless_asked(app, tmp_path, monkeypatch):
    _, client = app
    calls = Calls(monkeypatch)
    png = handle_file(digit_png(tmp_path, "4"))
    out = client.predict(checkpoint=CKPT, image=png, methods=[], **EXPLAIN, api_name="/explain")
    summary, cam, fmaps, _, methods, *_ = out
    assert "Predicted **4**" in summary and Image.open(cam).size == (224, 224) and Image.open(fmaps).size[0] > 50
    assert methods is None and not any(n.startswith("attribute") for n in calls.names)
    assert calls.names.count("grad_cam") == 1
    # Two pictures, no filters: they are drawn only when their panel is opened (/filters)
    assert sum(isinstance(v, str) and v.endswith(".png") for v in out) == 2 and "filter_view" not in calls.names


def test_opening_the_filters_again_costs_nothing(app, monkeypatch):
    _, client = app
    calls = Calls(monkeypatch)
    first, caption = client.predict(checkpoint=CKPT, layer="features.0", api_name="/filters")
    again, caption_again = client.predict(checkpoint=CKPT, layer="features.0", api_name="/filters")
    assert calls.names == ["filter_view"] and caption_again == caption  # drawn once, then served from the cache
    assert Path(again).read_bytes() == Path(first).read_bytes()


def test_a_repeated_question_is_served_without_model_work(app, tmp_path, monkeypatch):
    _, client = app
    png = digit_png(tmp_path, "6")
    first = client.predict(checkpoint=CKPT, image=handle_file(png), methods=["saliency"], **EXPLAIN, api_name="/explain")
    calls = Calls(monkeypatch)
    other = Client(app[0], verbose=False)  # another student, the same example
    try:
        again = other.predict(checkpoint=CKPT, image=handle_file(png), methods=["saliency"], **EXPLAIN,
                              api_name="/explain")
    finally:
        other.close()
    assert calls.names == []  # no Grad-CAM, no feature maps, no attribution: all from the cache
    assert again[0] == first[0]
    for i in (1, 2, 4):  # the same pictures (Grad-CAM, feature maps, methods), byte for byte
        assert open(again[i], "rb").read() == open(first[i], "rb").read()


def test_the_menus_choices_are_sent_only_when_the_model_changes(app, tmp_path):
    student = Client(app[0], verbose=False)
    try:
        first = student.predict(checkpoint=CKPT, image=handle_file(digit_png(tmp_path, "1")), api_name="/explain")
        again = student.predict(checkpoint=CKPT, image=handle_file(digit_png(tmp_path, "8")), api_name="/explain")
        other = student.predict(checkpoint="lenet5-fashion-mnist", image=handle_file(digit_png(tmp_path, "8")),
                                api_name="/explain")
    finally:
        student.close()
    layer, target = first[-2:]
    assert layer["value"] == "features.3" and len(layer["choices"]) > 5 and len(target["choices"]) == 11
    assert [{k: v for k, v in m.items() if k != "__type__"} for m in again[-2:]] == [{"value": "features.3"},
                                                                                  {"value": "predicted"}]
    assert [v for _, v in other[-1]["choices"]][1:3] == ["0", "1"] and "T-shirt" in other[-1]["choices"][1][0]


def test_ticking_a_method_computes_only_that_method(app, tmp_path, monkeypatch):
    _, client = app
    png = handle_file(digit_png(tmp_path, "2"))
    client.predict(checkpoint=CKPT, image=png, methods=[], **EXPLAIN, api_name="/explain")
    calls = Calls(monkeypatch)
    pic = client.predict(checkpoint=CKPT, image=png, layer="", target="predicted", opacity=0.5, methods=["saliency"],
                         api_name="/attributions")
    assert calls.names == ["attribute:saliency"]  # Grad-CAM and the input came from the cache
    wider = client.predict(checkpoint=CKPT, image=png, layer="", target="predicted", opacity=0.5,
                           methods=["saliency", "guided-backprop"], api_name="/attributions")
    assert calls.names == ["attribute:saliency", "attribute:guided-backprop"]  # saliency was not computed again
    assert Image.open(wider).size[0] > Image.open(pic).size[0]  # one more panel


def test_explain_and_feature_maps_need_no_layer(app, tmp_path):
    _, client = app
    png = handle_file(digit_png(tmp_path, "3"))
    summary = client.predict(checkpoint=CKPT, image=png, api_name="/explain")[0]  # everything but the inputs defaulted
    assert "at layer `features.3`" in summary  # LeNet-5's Grad-CAM layer
    grid, caption = client.predict(checkpoint=CKPT, image=png, api_name="/feature_maps")
    assert caption.startswith("`features.3`: 16 of 16 channels") and Image.open(grid).size[0] > 50


def test_compare_without_an_image_says_so_and_leaves_the_panels_alone(app):
    _, client = app
    table, cams, maps, plot, text = client.predict(["lenet5-digits", "tinyvgg-shapes"], None, 0.5, "val_acc",
                                                   api_name="/compare")
    assert "Choose an image first" in text
    assert all(isinstance(v, dict) and v.get("__type__") == "update" and "value" not in v for v in (table, cams, maps,
                                                                                                  plot))


def test_examples_follow_the_checkpoints_dataset(app):
    _, client = app
    image, truth = client.predict(0, "lenet5-digits", api_name="/example")
    assert truth == "3 (digits)" and Image.open(image).size == (8, 8)
    image, truth = client.predict(0, "lenet5-fashion-mnist", api_name="/example")
    assert truth.endswith("(fashion-mnist)") and Image.open(image).size == (28, 28)


def components(demo, elem_id: str):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def test_every_tab_opens_with_a_result_for_the_default_fashion_checkpoint(workdirs):
    from cnnviz.examples import examples_for
    from cnnviz.ui import build_demo

    demo = build_demo()
    assert components(demo, "predict-checkpoint").value == "lenet5-fashion-mnist"
    samples = str(components(demo, "predict-examples").samples)
    assert all(p.name in samples for p, _ in examples_for("fashion-mnist"))
    assert "digits_" not in samples and "shapes_" not in samples  # garments only, for a garments model
    assert components(demo, "predict-image").value and components(demo, "predict-view").value
    assert "%" in components(demo, "predict-details").value
    assert components(demo, "explain-summary").value.startswith("Predicted **")
    assert components(demo, "explain-cam").value and components(demo, "explain-fmaps").value
    compare = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "show_first").__self__
    image = Image.open(components(demo, "compare-image").value["path"]).convert("RGB")
    first = compare.show_first(image=image, shown=False)  # opening the tab shows the comparison made in the background
    assert len(first[compare.cams]) >= 2 and first[compare.text] and first[compare.first_shown]
    assert compare.show_first(image=image, shown=True) == {compare.first_shown: True}  # once per session
    assert components(demo, "sanity-grid").value and "trained network" in components(demo, "sanity-status").value


def test_opening_the_explain_tab_again_repeats_nothing(workdirs, monkeypatch):
    from cnnviz.ui import build_demo

    demo = build_demo()
    fn = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "explain_on_open")
    tab = fn.__self__
    calls = Calls(monkeypatch)
    image = Image.open(components(demo, "explain-image").value["path"]).convert("RGB")
    ws = tab.shared.workspace.value
    kwargs = dict(checkpoint="lenet5-fashion-mnist", image=image, layer=None, target="predicted", opacity=0.5,
                  sort="mean", max_maps=64, ws=ws)
    assert fn(**kwargs, shown=tab.shown.value) == gr.skip() and calls.names == []  # the default is already shown
    update = fn(**kwargs, shown=None)  # a new image carried from Predict: Grad-CAM only, from the cache here
    assert update[tab.summary].startswith("Predicted **") and update[tab.methods_img] is None
    assert not any(n.startswith("attribute") for n in calls.names)
