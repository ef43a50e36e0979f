"""The Explain tab's attribution strip (numpy + PIL): one titled panel per method, the maps' own pixels."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cnnviz.examples import examples_for
from cnnviz.explain.pipeline import explain_image
from cnnviz.render.explain_pictures import methods_strip
from cnnviz.render.pictures import colorize
from cnnviz.store.checkpoints import load_checkpoint


@pytest.fixture(scope="module")
def explained():
    loaded = load_checkpoint("lenet5-fashion-mnist")
    return explain_image(loaded, examples_for("fashion-mnist")[0][0], None, None, ("saliency", "occlusion"))


def test_one_panel_per_method_after_the_input(explained):
    strip = methods_strip(explained)
    one = methods_strip(replace(explained, attributions={"saliency": explained.attributions["saliency"]}))
    view_w = explained.view.width
    assert strip.width - one.width >= view_w  # one more map, at the size of the model's view
    assert strip.width < 4 * (view_w + 60)  # input + two maps (with their colour bars), not a figure of spare room
    assert methods_strip(replace(explained, attributions={})) is None


def test_pixel_maps_are_shown_as_computed(explained):
    strip = np.asarray(methods_strip(explained))
    heat = explained.attributions["saliency"].heat  # [28,28] in [0,1]
    k = explained.view.width // heat.shape[1]
    expected = colorize(heat, "inferno")
    # the saliency panel starts after the input panel: find its top-left by the known layout (gap 14, title band 70)
    x0, y0 = 14 + explained.view.width + 14, 70
    shown = strip[y0:y0 + heat.shape[0] * k:k, x0:x0 + heat.shape[1] * k:k]
    assert np.abs(shown.astype(int) - expected.astype(int)).max() <= 1  # NEAREST upscaling: every map pixel exact
