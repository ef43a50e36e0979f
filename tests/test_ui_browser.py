"""The app in a real browser (Debian's Chromium through Playwright): every tab, a live training run, a prediction and
an explanation; no request may leave localhost. Screenshots go to artifacts/ (CNNVIZ_UPDATE_SCREENSHOT=1 also
refreshes assets/screenshot.png for the README)."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest
from test_ui_api import CKPT, REPO, running_app  # pytest puts tests/ on sys.path

CHROMIUM = "/usr/bin/chromium"
# Never `playwright install`: it downloads a browser. These flags keep Chromium itself off the network.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO / "artifacts"
PRESET = os.environ.get("CNNVIZ_BROWSER_PRESET", "demo-digits")  # demo-fashion-mnist makes the README screenshot
LOCAL = {"127.0.0.1", "localhost", "::1"}

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")]


@contextmanager
def app_in_chromium(folder: Path, height: int = 900) -> Iterator[tuple]:
    """The app launched with fresh folders under `folder`, open in headless Chromium: (page, Playwright's expect,
    the URLs of requests that left localhost, the browser). Every browser test module opens it this way."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    outside: list[str] = []
    with running_app(folder) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": height})
        page.set_default_timeout(30_000)
        page.on("request", lambda r: outside.append(r.url)
                if urlparse(r.url).scheme not in ("data", "blob") and urlparse(r.url).hostname not in LOCAL else None)
        page.goto(url)
        try:
            yield page, sync_api.expect, outside, browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory) -> Iterator[tuple]:
    with app_in_chromium(tmp_path_factory.mktemp("browser")) as opened:
        yield opened


def shot(page, name: str) -> Path:
    path = ARTIFACTS / f"browser-{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def choose(page, selector: str, option: str) -> None:
    """Pick an option whose text starts with `option` in the dropdown at `selector`."""
    page.locator(f"{selector} input").first.click()
    page.get_by_role("option", name=re.compile("^" + re.escape(option))).first.click()


def test_every_tab_opens(browser_page):
    page, expect, *_ = browser_page
    expect(page.get_by_text("Per-layer table")).to_be_visible()
    expect(page.locator(".arch-diagram .arch-conv").first).to_be_visible()
    shot(page, "architecture")
    for tab, marker in (("Train", "#train-start"), ("Predict", "#predict-image"), ("Explain", "#explain-go")):
        page.get_by_role("tab", name=tab, exact=True).click()
        expect(page.locator(marker)).to_be_visible()
        shot(page, tab.lower())


def test_tabs_open_with_a_result_for_the_default_example(browser_page):
    page, expect, *_ = browser_page
    page.get_by_role("tab", name="Predict", exact=True).click()  # nothing pressed yet: the default garment, predicted
    expect(page.locator("#predict-checkpoint input").first).to_have_value(re.compile("^lenet5-fashion-mnist"))
    expect(page.get_by_test_id("label-output-value")).to_have_text(re.compile(r"\w"))  # a class name
    expect(page.locator("#predict-details")).to_contain_text("%")
    expect(page.locator("#predict-view img")).to_be_visible()
    expect(page.locator("#predict-examples img")).to_have_count(5)  # Fashion-MNIST's examples only
    for tab, marker in (("Explain", "#explain-cam img"), ("Compare", "#compare-cams img"),
                        ("Is this explanation real?", "#sanity-grid img")):
        page.get_by_role("tab", name=tab, exact=True).click()
        expect(page.locator(marker).first).to_be_visible()
    expect(page.locator("#sanity-status")).to_contain_text("trained network")


def test_training_curves_update_live_and_the_result_appears(browser_page):
    page, expect, *_ = browser_page
    page.get_by_role("tab", name="Train", exact=True).click()
    choose(page, "#train-preset", PRESET)
    expect(page.locator("#train-start")).to_be_enabled()
    page.locator("#train-start").click()
    expect(page.locator("#train-start")).to_be_disabled()  # one run at a time per tab; Stop and Pause now work
    expect(page.locator("#train-stop")).to_be_enabled()
    plot, status, result = page.locator("#loss-plot"), page.locator("#train-status"), page.locator("#train-result")
    changes, t0 = [], time.monotonic()
    while "Test accuracy" not in result.inner_text() and time.monotonic() - t0 < 240:
        digest = hashlib.md5(plot.inner_html().encode()).hexdigest()
        if "Training" in status.inner_text() and (not changes or changes[-1][1] != digest):
            changes.append((time.monotonic() - t0, digest))
        time.sleep(0.05)
    expect(result).to_contain_text("Test accuracy", timeout=5_000)
    assert len(changes) >= 2, "the loss curve did not update while training"
    if len(changes) > 2:
        span = changes[-1][0] - changes[0][0]
        print(f"\nloss plot redrawn {len(changes)} times in {span:.1f} s while training ({(len(changes) - 1) / span:.1f}/s)")
    accuracy = float(re.search(r"Test accuracy: ([\d.]+)%", result.inner_text()).group(1))
    assert accuracy > 10  # ten classes: chance is 10%
    expect(page.locator("#train-status")).to_contain_text("Finished")
    expect(page.locator("#train-start")).to_be_enabled()
    expect(page.locator("#train-checkpoint textarea")).to_have_value(re.compile(r"\d{6}-\w+-"))
    path = shot(page, "train-finished")
    if os.environ.get("CNNVIZ_UPDATE_SCREENSHOT"):
        shutil.copyfile(path, REPO / "assets" / "screenshot.png")


def test_predict_an_example_image(browser_page):
    page, expect, *_ = browser_page
    page.get_by_role("tab", name="Predict", exact=True).click()
    choose(page, "#predict-checkpoint", CKPT)
    page.locator("#predict-examples img").first.click()  # cnnviz/shipped/examples/digits_3.png comes first
    expect(page.get_by_test_id("label-output-value")).to_contain_text("3")
    expect(page.locator("#predict-details")).to_contain_text("network input 1×16×16")
    expect(page.locator("#predict-view img")).to_be_visible()
    shot(page, "predict")


def test_explain_shows_the_overlay(browser_page):
    page, expect, *_ = browser_page
    page.get_by_role("tab", name="Explain", exact=True).click()  # opening the tab explains the Predict tab's image
    expect(page.locator("#explain-summary")).to_contain_text("Predicted 3", timeout=60_000)
    expect(page.locator("#explain-cam img")).to_be_visible()
    expect(page.locator("#explain-fmaps img")).to_be_visible()
    shot(page, "explain")


def test_the_filters_come_when_their_panel_opens_and_follow_the_layer(browser_page):
    page, expect, *_ = browser_page
    page.get_by_role("tab", name="Explain", exact=True).click()
    expect(page.locator("#explain-cam img")).to_be_visible()
    filters, caption = page.locator("#explain-filters img"), page.locator("#explain-filters-caption")
    expect(filters).to_have_count(0)  # closed: no filters picture was made or sent
    page.locator("#explain-filters-panel").get_by_text("Filters:").click()
    expect(filters).to_be_visible()
    expect(caption).to_contain_text("features.3")  # LeNet-5's Grad-CAM layer, the one the Layer menu shows
    before = filters.get_attribute("src")
    choose(page, "#explain-layer", "features.0 ")  # another layer while the panel is open: its filters follow
    expect(caption).to_contain_text("features.0: 6 filters")
    expect(filters).not_to_have_attribute("src", before)
    expect(page.locator("#explain-summary")).to_contain_text("at layer features.0")
    page.locator("#explain-filters-panel").get_by_text("Filters:").click()  # closed again for the tests below


def test_the_image_chosen_in_predict_goes_to_compare_and_the_sanity_check(browser_page):
    page, expect, *_ = browser_page
    page.get_by_role("tab", name="Predict", exact=True).click()
    chosen = page.locator("#predict-image img").first
    before = chosen.get_attribute("src")
    page.locator("#predict-examples img").nth(1).click()  # another example than the one shown
    expect(chosen).not_to_have_attribute("src", before)
    src = chosen.get_attribute("src")
    for tab, image in (("Compare", "#compare-image img"), ("Is this explanation real?", "#sanity-image img")):
        page.get_by_role("tab", name=tab, exact=True).click()
        expect(page.locator(image).first).to_have_attribute("src", src)  # the very same picture, no upload


def menu_options(page, selector: str) -> list[str]:
    """The option texts of the dropdown at `selector` (opened, read, closed)."""
    page.locator(f"{selector} input").first.click()
    options = [o.lstrip("✓").strip() for o in page.get_by_role("option").all_inner_texts()]  # ✓ marks the choice
    page.keyboard.press("Escape")
    return options


def wait_for_option(page, wanted, timeout: float = 20.0) -> list[str]:
    """The Predict menu's options once one of them satisfies `wanted` (the page load fills the user's own runs)."""
    deadline = time.monotonic() + timeout
    while True:
        options = menu_options(page, "#predict-checkpoint")
        if any(wanted(o) for o in options) or time.monotonic() > deadline:
            return options
        time.sleep(0.3)


def test_own_runs_survive_a_reload_and_other_browsers_never_see_them(browser_page):
    page, expect, _, browser = browser_page
    run = page.locator("#train-checkpoint textarea").input_value()  # trained by the live-curves test above
    assert run
    stranger = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()  # its own localStorage
    try:
        for p in (page, stranger):
            if p is page:
                p.reload()
            else:
                p.goto(page.url)
            p.get_by_role("tab", name="Predict", exact=True).click()
            expect(p.locator("#predict-checkpoint input").first).to_have_value(re.compile(r"\S"))  # the page is up
        assert any(o.startswith(run) and "yours" in o for o in wait_for_option(page, lambda o: o.startswith(run)))
        assert not any(o.startswith(run) for o in menu_options(stranger, "#predict-checkpoint"))
        page.get_by_role("tab", name="Time-lapse & replay").click()
        choose(page, "#replay-run", run)
        page.locator("#replay-share").click()
        expect(page.locator("#replay-share")).to_have_text("Shared")
        stranger.reload()
        stranger.get_by_role("tab", name="Predict", exact=True).click()
        expect(stranger.locator("#predict-checkpoint input").first).to_have_value(re.compile(r"\S"))
        assert any(o.startswith(run) and "shared" in o for o in wait_for_option(stranger, lambda o: o.startswith(run)))
    finally:
        stranger.context.close()


def test_a_second_user_sees_the_queue_position(browser_page):
    page, expect, _, browser = browser_page
    other = browser.new_page(viewport={"width": 1400, "height": 900})  # a second browser session
    try:
        other.goto(page.url)
        for p in (page, other):
            p.get_by_role("tab", name="Train", exact=True).click()
            choose(p, "#train-preset", "demo-digits")
        page.locator("#train-start").click()
        expect(page.locator("#train-status")).to_contain_text("Training", timeout=60_000)  # a cold worker imports torch first
        other.locator("#train-start").click()
        expect(other.locator("#train-status")).to_contain_text("Waiting in the training queue: 1 run ahead")
        shot(other, "queued")
        other.locator("#train-stop").click()  # leaves the queue; the first user's run goes on
        expect(other.locator("#train-status")).to_contain_text("cancelled while waiting")
        expect(page.locator("#train-status")).to_contain_text("Training")
        page.locator("#train-stop").click()
        expect(page.locator("#train-status")).to_contain_text("Stopped")
    finally:
        other.close()


def test_closing_the_tab_stops_its_run_and_the_next_in_line_starts(browser_page):
    page, expect, _, browser = browser_page
    leaving = browser.new_page(viewport={"width": 1400, "height": 900})
    for p in (leaving, page):
        if p is leaving:
            p.goto(page.url)
        p.get_by_role("tab", name="Train", exact=True).click()
        choose(p, "#train-preset", "demo-digits")
    epochs = leaving.locator("#train-epochs input[type=number]")
    epochs.fill("50")  # long enough to still be training when the tab closes
    epochs.press("Enter")
    leaving.locator("#train-start").click()
    expect(leaving.locator("#train-status")).to_contain_text("Training", timeout=60_000)  # a cold worker imports torch first
    page.locator("#train-start").click()
    expect(page.locator("#train-status")).to_contain_text("Waiting in the training queue")
    leaving.close()  # the student walks away mid-run
    expect(page.locator("#train-status")).to_contain_text("Training", timeout=30_000)
    page.locator("#train-stop").click()
    expect(page.locator("#train-status")).to_contain_text("Stopped")


def test_deleting_a_run_takes_two_clicks(browser_page):
    page, expect, *_ = browser_page
    box = page.locator("#train-checkpoint textarea")
    expect(box).to_have_value(re.compile(r"\S"), timeout=30_000)  # the run stopped by the test above, once saved
    run = box.input_value()
    page.get_by_role("tab", name="Time-lapse & replay").click()
    choose(page, "#replay-run", run)
    page.locator("#replay-delete").click()
    expect(page.locator("#replay-delete")).to_have_text(f"Click again to delete {run}")
    options = menu_options(page, "#replay-run")
    assert any(o.startswith(run) for o in options), (run, options)  # one click deletes nothing
    page.locator("#replay-delete").click()
    expect(page.locator("#replay-delete")).to_have_text("Delete this run")
    expect(page.locator("#replay-run input").first).not_to_have_value(re.compile(re.escape(run)))
    assert not any(o.startswith(run) for o in menu_options(page, "#replay-run"))


def test_no_request_left_localhost(browser_page):
    _, _, outside, _ = browser_page
    assert outside == []
