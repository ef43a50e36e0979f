"""The bounded result cache behind the Explain tab: a repeated question costs no model work, answers stay right."""
from __future__ import annotations

import threading

import numpy as np
import PIL.Image
import pytest
import torch

from cnnviz.examples import examples_for
from cnnviz.explain.cache import CachedExplainer, ResultCache, image_digest, model_key
from cnnviz.explain.pipeline import explain_image
from cnnviz.store.checkpoints import load_checkpoint


@pytest.fixture(scope="module")
def loaded():
    return load_checkpoint("lenet5-fashion-mnist")


@pytest.fixture(scope="module")
def bag():
    path = next(p for p, caption in examples_for("fashion-mnist") if caption.startswith("Bag"))
    return PIL.Image.open(path).convert("RGB")


class ForwardCounter:
    """Counts forward passes of a model (every Grad-CAM, feature map and captum call runs at least one)."""

    def __init__(self, model: torch.nn.Module):
        self.calls = 0
        self._lock = threading.Lock()
        self.handle = model.register_forward_hook(self._count)

    def _count(self, *_):
        with self._lock:
            self.calls += 1


def test_the_second_identical_request_does_no_model_work(loaded, bag):
    explainer = CachedExplainer()
    counter = ForwardCounter(loaded.model)
    try:
        first, inp = explainer.explain(loaded, bag, None, None, ("saliency", "occlusion"))
        explainer.feature_maps(loaded, inp, first.layer)
        work = counter.calls
        assert work >= 4  # Grad-CAM, two methods, the feature maps: each ran the model
        again, inp2 = explainer.explain(loaded, bag.copy(), None, None, ("saliency", "occlusion"))  # same pixels
        explainer.feature_maps(loaded, inp2, again.layer)
        assert counter.calls == work  # served from the cache: no forward pass at all
        assert again.cam is first.cam and again.attributions["occlusion"] is first.attributions["occlusion"]
        _, _ = explainer.explain(loaded, bag, None, "3")  # another target is another question
        assert counter.calls > work
    finally:
        counter.handle.remove()


def test_cached_answers_equal_the_uncached_pipeline(loaded, bag):
    explainer = CachedExplainer()
    plain = explain_image(loaded, bag, None, None, ("saliency",))
    for _ in range(2):  # computed, then served from the cache
        cached, _ = explainer.explain(loaded, bag, None, None, ("saliency",))
        assert cached.predicted == plain.predicted and cached.layer == plain.layer
        np.testing.assert_allclose(cached.cam.upsampled, plain.cam.upsampled, atol=1e-6)
        np.testing.assert_allclose(cached.attributions["saliency"].heat, plain.attributions["saliency"].heat, atol=1e-6)


def test_keys_tell_images_and_checkpoints_apart(loaded, bag, tmp_path):
    other = bag.copy()
    other.putpixel((0, 0), (255, 0, 0))
    assert image_digest(bag) == image_digest(bag.copy()) != image_digest(other)
    copy = tmp_path / "copy.pt"
    copy.write_bytes(loaded.path.read_bytes())
    assert model_key(load_checkpoint(copy)) != model_key(loaded)  # another file: its own entries


def test_the_cache_is_bounded_by_entries_and_bytes():
    cache = ResultCache(max_entries=3, max_bytes=10_000)
    for i in range(5):
        cache.get(i, lambda: np.zeros(10, np.float32))
    assert len(cache) == 3 and cache.get(0, lambda: "recomputed") == "recomputed"  # the oldest went first
    cache.get("big", lambda: np.zeros(2_000, np.float32))  # 8 kB: the others make room for it
    assert cache.nbytes <= 10_000
    huge = cache.get("huge", lambda: np.zeros(5_000, np.float32))  # 20 kB: returned, never kept
    assert huge.shape == (5_000,) and cache.nbytes <= 10_000 and cache.get("huge", lambda: None) is None
    assert cache.hits == 0 and cache.misses == 9  # five, 0 again, big, huge twice


def test_grad_cam_beside_a_layer_summary_of_the_same_model(loaded, bag):
    """Compare (built in the background) and the Architecture tab summarise the models that Explain is using: a
    summary's forward pass must never land in a Grad-CAM's hooks ("no gradient reached layer ...")."""
    from cnnviz.explain.gradcam import grad_cam
    from cnnviz.explain.pipeline import prepare
    from cnnviz.lecture.summary import summarize

    x, _ = prepare(bag, loaded.meta)
    errors: list[BaseException] = []

    def run(fn):
        try:
            for _ in range(25):
                fn()
        except BaseException as exc:  # noqa: BLE001 (collected for the assert)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(lambda: grad_cam(loaded.model, x, "features.3"),)),
               threading.Thread(target=run, args=(lambda: summarize(loaded.model, (1, 28, 28)),))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []


def test_the_filters_picture_is_drawn_once_per_checkpoint_and_layer(loaded):
    from cnnviz.render.explain_pictures import cached_filter_view, filter_view

    explainer = CachedExplainer()
    picture, caption = cached_filter_view(explainer, loaded, "features.3")
    again, _ = cached_filter_view(explainer, loaded, "features.3")
    assert again is picture  # the same object: neither drawn nor (by the web server) encoded again
    assert np.array_equal(np.asarray(picture), np.asarray(filter_view(loaded.model, "features.3")[0]))
    assert caption.startswith("`features.3`: 16 filters of 5×5")
    first, first_caption = cached_filter_view(explainer, loaded, "features.0")
    assert first is not picture and first_caption.startswith("`features.0`: 6 filters")
