"""The whole-network tab through a launched app and gradio_client: /overview, /unit and /overview_gif, with what they
return checked against the core run in this process and against the model's own activations."""
from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import PIL.Image
import pytest
import torch

pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from test_ui_api import running_app  # noqa: E402  (pytest puts tests/ on sys.path)

from cnnviz.examples import first_of_class  # noqa: E402
from cnnviz.images import load_image  # noqa: E402
from cnnviz.lecture.forward_pass import overview  # noqa: E402
from cnnviz.store.checkpoints import load_checkpoint  # noqa: E402
from cnnviz.store.paths import shipped_checkpoints_dir  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
DIGITS, SHAPES = "lenet5-digits", "tinyvgg-shapes"


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[Client]:
    with running_app(tmp_path_factory.mktemp("overview")) as url:
        c = Client(url, verbose=False)
        yield c
        c.close()


@pytest.fixture(scope="module")
def pngs(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("images")
    paths = {}
    for name, dataset, label in (("seven", "digits", "7"), ("triangle", "shapes", "triangle")):
        paths[name] = str(folder / f"{name}.png")
        first_of_class(dataset, label).image.save(paths[name])
    return paths


def shipped(name: str):
    return load_checkpoint(shipped_checkpoints_dir() / f"{name}.pt")


def test_the_endpoints_take_what_the_issue_says(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    shape = {n: ([p["parameter_name"] for p in api[n]["parameters"]], [r["component"] for r in api[n]["returns"]])
             for n in ("/overview", "/unit", "/overview_gif")}
    assert shape == {"/overview": (["checkpoint", "image"], ["Image"]),
                     "/unit": (["checkpoint", "image", "stage", "channel", "row", "col"], ["Image", "Markdown"]),
                     "/overview_gif": (["checkpoint", "image"], ["File"])}


def test_overview_returns_the_whole_network_picture(client, pngs):
    path = client.predict(SHAPES, handle_file(pngs["triangle"]), api_name="/overview")
    got = np.asarray(PIL.Image.open(path).convert("RGB"))
    fp, pic = overview(shipped(SHAPES), load_image(pngs["triangle"]))
    assert fp.class_names[fp.predicted] == "triangle"  # the shipped model gets its own test image right
    np.testing.assert_array_equal(got, np.asarray(pic.image))  # lossless, the same picture the core draws
    assert client.predict(SHAPES, None, api_name="/overview") is None  # no image yet: nothing drawn, no error


def own_value(loaded, png: str, layer: str, c: int, r: int, q: int) -> float:
    from cnnviz.explain.pipeline import prepare

    x, _ = prepare(png, loaded.meta.spec)
    out = {}
    module = dict(loaded.model.named_modules())[layer]
    handle = module.register_forward_hook(lambda _m, _i, o: out.update(v=float(o[0, c, r, q])))
    try:
        with torch.no_grad():
            loaded.model(x)
    finally:
        handle.remove()
    return out["v"]


def test_unit_shows_the_arithmetic_and_the_models_own_value(client, pngs):
    picture, text = client.predict(DIGITS, handle_file(pngs["seven"]), "features.1", 2, 8, 7, api_name="/unit")
    assert PIL.Image.open(picture).width >= 900
    conv = own_value(shipped(DIGITS), pngs["seven"], "features.0", 2, 8, 7)
    shown = float(re.search(r"the model's own value: (-?[\d.e+-]+)", text).group(1))
    summed = float(re.search(r"= \*\*(-?[\d.e+-]+)\*\*", text).group(1))
    assert shown == pytest.approx(conv, rel=1e-4, abs=1e-5) and summed == pytest.approx(conv, rel=1e-4, abs=1e-5)
    relu = float(re.search(r"ReLU: max\(0, x\): .* → \*\*(-?[\d.e+-]+)\*\*", text).group(1))
    assert relu == pytest.approx(max(conv, 0.0), rel=1e-4, abs=1e-5)


def test_bad_units_say_what_to_choose(client, pngs):
    with pytest.raises(AppError, match="choose a channel from 0 to 5"):
        client.predict(DIGITS, handle_file(pngs["seven"]), "features.0", 99, 0, 0, api_name="/unit")
    with pytest.raises(AppError, match="hands its input on unchanged"):
        client.predict(DIGITS, handle_file(pngs["seven"]), "classifier.0", 0, 0, 0, api_name="/unit")


def test_the_gif_steps_through_every_stage(client, pngs):
    path = client.predict(DIGITS, handle_file(pngs["seven"]), api_name="/overview_gif")
    _, pic = overview(shipped(DIGITS), load_image(pngs["seven"]))
    gif = PIL.Image.open(path)
    assert path.endswith(".gif") and gif.n_frames == len(pic.columns) + 1
