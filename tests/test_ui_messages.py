"""Error messages of the web app (issue 19): plain text for API clients, no markup in the browser, short echoes of what
the user sent, and a message naming the setting for every bad number instead of gradio's generic error."""
from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("gradio")
import gradio as gr  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from test_ui_api import CKPT, REPO, TRAIN, running_app  # noqa: E402  (pytest puts tests/ on sys.path)

from cnnviz.train.config import Limits  # noqa: E402
from cnnviz.ui.common import ECHO_LIMIT, WORD_JOINER, plain_message, user_error  # noqa: E402
from cnnviz.ui.inputs import SafeNumber, SafeSlider  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
HOSTILE = "<img src=x onerror=alert(1)>"
DIGIT = REPO / "cnnviz" / "shipped" / "examples" / "digits_7.png"
GENERIC = ("upstream", "Something went wrong", "Traceback")


def visible(text: str) -> str:
    """What a person reads: the word joiners that keep markup inert are invisible."""
    return text.replace(WORD_JOINER, "")


# --- the message itself -------------------------------------------------------------------------------------------

def test_messages_are_plain_text_without_html_entities():
    msg = user_error("no checkpoint called 'o''brien'; a < b && c > d").message
    assert msg == "no checkpoint called 'o''brien'; a < b && c > d"  # was &#x27; &lt; &amp; for gradio_client users
    assert "&#" not in msg and "&lt;" not in msg and "&amp;" not in msg


@pytest.mark.parametrize("text", [HOSTILE, "</div><script>alert(1)</script>", "<!-- x -->", "<?xml x?>", "&lt;b&gt;",
                                  "&#60;img&#62;", "<svg/onload=alert(1)>"])
def test_markup_in_a_message_cannot_start_a_tag_or_an_entity(text):
    msg = plain_message(f"no checkpoint called {text!r}")
    assert visible(msg) == f"no checkpoint called {text!r}"  # reads exactly as sent
    for i, ch in enumerate(msg):
        if ch in "<&" and i + 1 < len(msg):  # the HTML tokenizer reads "<x", "</", "<!", "<?", "&x", "&#" as markup
            assert not (msg[i + 1].isascii() and (msg[i + 1].isalnum() or msg[i + 1] in "/!?#")), msg


def test_a_long_echo_is_cut_to_a_recognisable_start():
    name = "a" * 100_000
    msg = user_error(f"no checkpoint called {name!r}; refresh the page to see the current list").message
    assert len(msg) < 200 and f"'{'a' * (ECHO_LIMIT - 1)}…" in msg and msg.endswith("current list")
    spaced = user_error("no checkpoint called " + "ab " * 50_000).message  # words short, the whole long
    assert len(spaced) <= 1001 and spaced.endswith("…")


# --- numbers and sliders ------------------------------------------------------------------------------------------

def test_safe_inputs_pass_good_values_exactly_like_gradio():
    pairs = [(gr.Slider(1, 10, step=1), SafeSlider(1, 10, step=1)),
             (gr.Number(precision=0, minimum=0), SafeNumber(precision=0, minimum=0)),
             (gr.Number(minimum=0), SafeNumber(minimum=0)), (gr.Slider(0, 1, precision=2), SafeSlider(0, 1, precision=2))]
    for stock, safe in pairs:
        for value in (0, 1, 3, 3.7, 0.25, 1.0):
            try:
                expected = stock.preprocess(value)
            except gr.Error:
                with pytest.raises(gr.Error, match="minimum|maximum"):
                    safe.preprocess(value)
                continue
            got = safe.preprocess(value)
            assert got == expected and type(got) is type(expected), (stock, value)
    assert SafeNumber(minimum=0).preprocess(None) is None  # an empty box stays empty (subset: 0 or empty = all)
    assert SafeSlider(0, 1).api_info() == gr.Slider(0, 1).api_info()  # same API schema for clients
    assert SafeSlider(0, 1).get_block_name() == "slider" and SafeNumber().get_block_name() == "number"


def message(component: gr.components.Component, payload: object) -> str:
    with pytest.raises(gr.Error) as info:
        component.preprocess(payload)
    return info.value.message


@pytest.mark.parametrize("payload,needle", [
    (None, "needs a value: a number from 1 to 10"), ("nan", "must be a number from 1 to 10, got 'nan'"),
    (math.nan, "got nan"), (math.inf, "got inf"), ("abc", "got 'abc'"), (True, "got True"), ([3], "got [3]"),
    ("x" * 10_000, "…"), (0, "0 is less than minimum value 1"), (11, "11 is greater than maximum value 10"),
])
def test_bad_values_get_a_message_naming_the_setting(payload, needle):
    msg = message(SafeSlider(1, 10, step=1, label="How many classes"), payload)
    assert msg.startswith("How many classes") and needle in msg and len(msg) < 200


def test_a_number_box_names_itself_and_its_bounds():
    assert message(SafeNumber(label="Learning rate", minimum=0), "nan") == \
        "Learning rate must be a number of at least 0, got 'nan'."
    assert message(SafeNumber(), "x") == "This setting must be a number, got 'x'."  # no label, no bounds
    assert SafeNumber(precision=0).preprocess(" 7 ") == 7  # a numeric string from an API client is a number


def test_an_example_index_outside_the_gallery_is_explained():
    from cnnviz.ui.picker import image_picker

    with gr.Blocks():
        picker = image_picker("Image", "img", 100)
    last = len(picker.examples) - 1
    assert picker.show_example(index=0)[picker.truth] == picker.examples[0][1]
    for bad in (last + 1, -1, None, "abc", 1.5, math.nan):  # -1 would silently show the last one
        with pytest.raises(gr.Error) as info:
            picker.show_example(index=bad)
        assert info.value.message == f"There is no example {bad!r}: choose an example from 0 to {last}."


# --- through the launched app -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[Client]:
    with running_app(tmp_path_factory.mktemp("messages")) as url:
        c = Client(url, verbose=False)
        yield c
        c.close()


def app_error(client: Client, *args, api_name: str, **kwargs) -> str:
    with pytest.raises(AppError) as info:
        client.predict(*args, api_name=api_name, **kwargs)
    message = str(info.value)
    assert not any(g in message for g in GENERIC), message
    return message


@pytest.mark.parametrize("topk", [None, "nan", "inf", "many"])  # gradio_client cannot send a float NaN itself
def test_predict_with_a_bad_topk_names_it(client, topk):
    msg = app_error(client, CKPT, handle_file(DIGIT), topk, api_name="/predict")
    assert msg.startswith("How many classes to show (top-k)") and "from 1 to 10" in msg


def test_explain_settings_and_the_overlay_name_the_bad_value(client):
    assert app_error(client, None, api_name="/overlay").startswith("Heat-map opacity needs a value")
    msg = app_error(client, CKPT, handle_file(DIGIT), None, "mean", "nan", api_name="/feature_maps")
    assert msg.startswith("Channels shown must be a number from 4 to 128")


def test_an_example_outside_the_gallery_through_the_api(client):
    assert "There is no example 999: choose an example from 0 to" in app_error(client, 999, api_name="/example")


def test_a_hostile_checkpoint_name_comes_back_as_short_plain_text(client):
    msg = app_error(client, HOSTILE, handle_file(DIGIT), 3, api_name="/predict")
    assert visible(msg).startswith(f"no checkpoint called {HOSTILE!r}")  # readable as sent: no &#x27; or &lt;
    assert "&#" not in msg and "&lt;" not in msg
    long = app_error(client, HOSTILE + "x" * 100_000, handle_file(DIGIT), 3, api_name="/predict")
    assert len(long) < 250 and "…" in long  # was the whole 100 kB


def train_form_fields() -> dict:
    from cnnviz.ui.train_tab import TrainForm

    with gr.Blocks():
        return TrainForm(Limits()).fields


@pytest.mark.parametrize("field,value,needle", [("lr", "nan", "Learning rate must be a number"),
                                                ("lr", "-inf", "Learning rate must be a number"),
                                                ("epochs", None, "Epochs needs a value"),
                                                ("batch_size", "abc", "Batch size must be a number")])
def test_train_with_a_bad_number_names_it(client, field, value, needle):
    assert isinstance(train_form_fields()[field], (SafeNumber, SafeSlider))
    assert needle in app_error(client, **{**TRAIN, field: value}, api_name="/train")


# --- in a real browser --------------------------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.parametrize("neutralised", [True, False], ids=["ours", "without-it"])
def test_a_hostile_name_shows_as_text_in_the_browser(tmp_path: Path, monkeypatch, neutralised):
    """Through Chromium: the toast shows the name as typed and builds no element from it. Without the word joiners
    (the control case) gradio's own sanitiser lets the <img> through (it only drops onerror), which is why they exist."""
    from test_ui_browser import ARGS, CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    if not neutralised:
        monkeypatch.setattr("cnnviz.ui.common.plain_message", lambda message: message)
    dialogs: list[str] = []
    with running_app(tmp_path) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url)
            page.get_by_role("tab", name="Predict", exact=True).click()
            page.locator("#predict-examples img").first.click()  # an image, so a checkpoint change predicts
            sync_api.expect(page.get_by_test_id("label-output-value")).to_be_visible(timeout=30_000)
            box = page.locator("#predict-checkpoint input").first
            box.fill(HOSTILE)
            box.press("Enter")
            toast = page.get_by_test_id("toast-body").first
            sync_api.expect(toast).to_contain_text("no checkpoint called", timeout=30_000)
            images = page.locator("img[src='x']")  # anywhere on the page, not only in the toast
            injected, handler = images.count(), images.first.get_attribute("onerror") if images.count() else None
            text = visible(toast.inner_text())
        finally:
            browser.close()
    if neutralised:
        assert HOSTILE in text and injected == 0 and not dialogs
    else:
        assert injected >= 1 and handler is None and HOSTILE not in text  # an element (its onerror dropped), not text
