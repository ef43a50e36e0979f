"""The whole-network tab in a real browser (Debian's Chromium through Playwright, opened as test_ui_browser.py opens it):
pick an example, see the overview picture, step through it, click a tile and see that unit's arithmetic."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_ui_browser import app_in_chromium, shot  # pytest puts tests/ on sys.path

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")]


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Iterator[tuple]:
    with app_in_chromium(tmp_path_factory.mktemp("browser-overview"), height=1000) as (pg, expect, outside, _):
        yield pg, expect, outside


def test_the_overview_appears_and_a_click_shows_one_units_arithmetic(page):
    pg, expect, outside = page
    pg.get_by_role("tab", name="Whole network", exact=True).click()
    pg.locator("#overview-examples button, #overview-examples .gallery-item").first.click()
    picture = pg.locator("#overview-picture img")
    expect(picture).to_be_visible()
    expect(pg.locator("#overview-caption")).to_contain_text("stages")
    expect(pg.locator("#overview-unit img")).to_be_visible()  # the first conv's strongest unit, shown at once
    expect(pg.locator("#overview-unit-text")).to_contain_text("the model's own value")
    shot(pg, "overview")
    # A click on the top tile of the fifth column, features.3 in LeNet-5 and TinyVGG alike (its centre is picture pixel
    # 478, 118: the input column is 156 px wide, the others 92, tiles start 86 px down; see forward_pass_picture)
    box = picture.bounding_box()
    natural = pg.evaluate("() => { const i = document.querySelector('#overview-picture img');"
                          " return [i.naturalWidth, i.naturalHeight]; }")
    pg.mouse.click(box["x"] + 478 / natural[0] * box["width"], box["y"] + 118 / natural[1] * box["height"])
    expect(pg.locator("#overview-stage input")).to_have_value("features.3")
    expect(pg.locator("#overview-unit-text")).to_contain_text("features.3")
    shot(pg, "overview-unit")
    # Step through: another stage highlighted (a new picture), then the GIF for slides
    before = picture.get_attribute("src")
    step = pg.locator("#overview-step input[type=number]")
    step.fill("2")
    step.press("Enter")
    expect(picture).not_to_have_attribute("src", before)
    pg.get_by_role("button", name="Animated GIF for slides", exact=True).click()
    expect(pg.locator("#overview-gif")).to_contain_text(".gif")
    assert outside == [], outside
