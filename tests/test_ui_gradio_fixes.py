"""Gradio's output-image cache under concurrent identical answers: a reader never sees a half-written file."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

pytest.importorskip("gradio")
from gradio import processing_utils  # noqa: E402

from cnnviz.ui import gradio_fixes  # noqa: E402

gradio_fixes.install()  # as build_demo does


def picture() -> PIL.Image.Image:
    return PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8))


def test_the_app_uses_the_atomic_cache_write():
    assert processing_utils.save_pil_to_cache is gradio_fixes.save_pil_to_cache


def test_the_cache_write_is_the_one_atomic_write_of_the_store():
    from cnnviz.store import atomic

    assert gradio_fixes.atomic_write is atomic.atomic_write


def test_same_pixels_as_gradios_own_in_a_content_addressed_path(tmp_path):
    img = picture()
    ours = gradio_fixes.save_pil_to_cache(img, str(tmp_path / "a"), format="png")
    with open(ours, "rb") as f:
        data = f.read()
    assert ours.endswith(f"{processing_utils.hash_bytes(data)}/image.png")  # Gradio's layout: the hash of the bytes
    gradios = tmp_path / "gradio.png"
    gradios.write_bytes(processing_utils.encode_pil_to_bytes(img, "png"))
    assert np.array_equal(np.asarray(PIL.Image.open(ours)), np.asarray(PIL.Image.open(gradios)))  # lossless
    assert len(data) < 3 * gradios.stat().st_size  # a faster zlib level, not an uncompressed dump


def test_a_picture_saved_before_is_not_encoded_again(tmp_path, monkeypatch):
    img, encoded = picture(), []
    real = gradio_fixes.encode
    monkeypatch.setattr(gradio_fixes, "encode", lambda im, fmt: encoded.append(fmt) or real(im, fmt))
    first = gradio_fixes.save_pil_to_cache(img, str(tmp_path), format="png")
    assert gradio_fixes.save_pil_to_cache(img, str(tmp_path), format="png") == first and encoded == ["png"]
    gradio_fixes.save_pil_to_cache(img.copy(), str(tmp_path), format="png")  # another object: encoded (same file)
    Path(first).unlink()  # Gradio's clean-up removed it: written again, not a dead link
    assert Path(gradio_fixes.save_pil_to_cache(img, str(tmp_path), format="png")).is_file() and len(encoded) == 3


def test_concurrent_saves_of_one_picture_never_expose_a_partial_file(tmp_path):
    img, cache = picture(), str(tmp_path)
    path = gradio_fixes.save_pil_to_cache(img, cache, format="png")
    full = len(gradio_fixes.encode(img, "png"))
    done, short_reads = threading.Event(), []

    def reader():
        while not done.is_set():
            with open(path, "rb") as f:  # what the file route does for a download
                n = len(f.read())
            if n != full:
                short_reads.append(n)

    def writer():
        for _ in range(40):
            gradio_fixes.save_pil_to_cache(img, cache, format="png")
            gradio_fixes.atomic_write(Path(path), gradio_fixes.encode(img, "png"))  # forced rewrite

    threads = [threading.Thread(target=reader) for _ in range(2)] + [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads[2:]:
        t.join(60)
    done.set()
    for t in threads[:2]:
        t.join(10)
    assert short_reads == []
