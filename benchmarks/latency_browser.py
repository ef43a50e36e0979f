"""A click in a real browser (Debian's Chromium through Playwright, as tests/test_ui_browser*.py drive it): from the
moment the app's request leaves the page to every output picture of that answer loaded and decoded, cnnviz Explain
against the trivial Gradio app, one after the other on fresh images so the result cache does not help.

The same definition for both apps: t0 is the start of the event's POST /gradio_api/queue/join (the browser's own
resource timing), t1 the first animation frame at which every output <img> shows a new picture with its pixels
decoded. The image upload before it is left out of both (the trivial app's image is uploaded before its button is
clicked; cnnviz's upload itself starts the explanation). Used by `latency.py --browser`.
"""
from __future__ import annotations

import statistics
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# Never `playwright install`: it downloads a browser. These flags keep Chromium itself off the network.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Resolves when every picture (each named by a JS expression that finds its <img>) is complete, decoded and shows no
# src from `old`; records that animation frame's time. Polled each frame by Playwright's wait_for_function.
_DONE = """([pictures, old]) => {
  const imgs = pictures.map(p => (new Function('return ' + p))());
  if (imgs.some(i => !i || !i.complete || i.naturalWidth === 0 || old.includes(i.getAttribute('src')))) return false;
  window.__t1 = performance.now();
  return true;
}"""
_T0 = """() => {
  const joins = performance.getEntriesByType('resource').filter(e => e.name.includes('/queue/join'));
  return joins.length ? Math.min(...joins.map(e => e.startTime)) : null;
}"""


# The trivial app has no element ids (it stays exactly as latency.py serves it): its two served pictures are the
# preview in the input block (the one with a file input) and the output.
_SERVED = "[...document.querySelectorAll(\"img[src*='gradio_api/file=']\")]"
TRIVIAL_INPUT = f"{_SERVED}.find(i => i.closest('.block')?.querySelector('input[type=file]'))"
TRIVIAL_OUTPUT = f"{_SERVED}.find(i => !i.closest('.block')?.querySelector('input[type=file]'))"
EXPLAIN_OUTPUTS = ["document.querySelector('#explain-cam img')", "document.querySelector('#explain-fmaps img')"]


def _srcs(page, pictures: list[str]) -> list[str]:
    return page.evaluate("(ps) => ps.map(p => (new Function('return ' + p))()?.getAttribute('src')).filter(Boolean)",
                         pictures)


def _wait_new(page, pictures: list[str], old: list[str]) -> None:
    page.wait_for_function(_DONE, arg=[pictures, old], polling="raf", timeout=60_000)


def _one(page, pictures: list[str], act) -> float:
    """ms from the event's request to every one of `pictures` new and decoded, after `act()` starts it."""
    old = _srcs(page, pictures)
    page.evaluate("performance.clearResourceTimings()")
    act()
    _wait_new(page, pictures, old)
    t0 = page.evaluate(_T0)
    if t0 is None:
        raise RuntimeError("no /queue/join request seen: the click did not reach the server")
    return page.evaluate("window.__t1") - t0


def trivial_click(page, png: Path) -> float:
    """The trivial app: upload the image (not timed), then press Go; its one output picture."""
    before = _srcs(page, [TRIVIAL_INPUT])
    page.locator("input[type=file]").first.set_input_files(str(png))
    _wait_new(page, [TRIVIAL_INPUT], before)
    return _one(page, [TRIVIAL_OUTPUT], lambda: page.get_by_role("button", name="Go", exact=True).click())


def explain_upload(page, png: Path) -> float:
    """cnnviz's Explain tab: uploading an image explains it (Grad-CAM overlay and feature maps, the defaults)."""
    return _one(page, EXPLAIN_OUTPUTS, lambda: page.locator("#explain-image input[type=file]").set_input_files(str(png)))


def browser_report(trivial_url: str, cnnviz_url: str, images: list[Path], n: int) -> dict:
    """Medians (ms) of n clicks in each app, alternating so both see the same load; plus the ratio."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            bare, app = (browser.new_page(viewport={"width": 1400, "height": 1000}) for _ in range(2))
            bare.goto(trivial_url)
            app.goto(cnnviz_url)
            app.get_by_role("tab", name="Explain", exact=True).click()
            app.locator("#explain-cam img").wait_for()
            trivial_click(bare, images[-1])  # warm-up: first event, first model use, the SSE stream opened
            explain_upload(app, images[-1])
            t, e = [], []
            for png in images[:n]:
                t.append(trivial_click(bare, png))
                e.append(explain_upload(app, png))
        finally:
            browser.close()
    tm, em = statistics.median(t), statistics.median(e)
    return {"browser_ms": {"trivial": tm, "explain": em}, "browser_ratio": {"explain": em / tm},
            "browser_samples_ms": {"trivial": t, "explain": e}}
