"""Work-arounds for Gradio behaviour that breaks under a lecture hall's load, or costs a click time; each is installed
once, at import.

Atomic image cache writes: Gradio saves every output image as <cache>/<hash of its bytes>/image.<fmt> with a plain
`write_bytes`, which first truncates the file. When two students get the same picture at once (same example, same
settings), one request rewrites the file while the other's download is being served, and that download breaks
("Too little data for declared Content-Length", seen in benchmarks/load_test.py). The path is content-addressed, so
an existing file already holds these bytes: it is kept, and a new one appears only complete (temp file + rename).

Cheaper encodings: PNGs are written with zlib level 1 instead of PIL's 6 (lossless, the same pixels; about half the
time for 10-30 % more bytes, which a lecture-room network does not notice), and a picture object that was already
saved (an answer served from cnnviz's result cache returns the very same image objects) is not encoded again.

The queue's idle poll: see QUEUE_POLL_SECONDS.
"""
from __future__ import annotations

import functools
import threading
import weakref
from io import BytesIO
from pathlib import Path

from gradio import processing_utils

from ..store.atomic import atomic_write  # the one atomic write; not durable here: the cache can be rebuilt

PNG_COMPRESS_LEVEL = 1
# Gradio's queue loop sleeps this long whenever it finds nothing to start (queueing.Queue.start_processing), so an
# event can wait up to this long before it starts. Measured with benchmarks/latency.py --poll (README, "Speed"):
# 1 ms (Gradio's default) costs a constant share of a core while idle, 50 ms adds ~25 ms to a click on average.
QUEUE_POLL_SECONDS = 0.01
_saved: dict[int, dict[tuple[str, str, str], str]] = {}  # id(image) -> {(cache dir, name, format): path}
_saved_lock = threading.Lock()


def encode(img, format: str) -> bytes:  # noqa: A002 (gradio's name)
    """The image's bytes: PNG with fast compression, any other format as Gradio writes it."""
    if format.lower() != "png":
        return processing_utils.encode_pil_to_bytes(img, format)
    with BytesIO() as out:
        img.save(out, "png", pnginfo=processing_utils.get_pil_metadata(img), compress_level=PNG_COMPRESS_LEVEL)
        return out.getvalue()


def _forget(key: int) -> None:
    with _saved_lock:
        _saved.pop(key, None)


def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:  # noqa: A002
    """processing_utils.save_pil_to_cache, with the write made atomic and skipped when the file exists, and no encoding
    at all for an image object this process has already saved there."""
    slot = (str(cache_dir), name, format)
    with _saved_lock:
        known = _saved.get(id(img), {}).get(slot)
    if known is not None and Path(known).is_file():  # Gradio's cache clean-up may have removed it since
        return known
    data = encode(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    path = (folder / f"{name}.{format}").resolve()
    if not (path.is_file() and path.stat().st_size == len(data)):
        atomic_write(path, data)
    with _saved_lock:
        if id(img) not in _saved:
            weakref.finalize(img, _forget, id(img))  # an id is reused once its object is gone: forget it then
        _saved.setdefault(id(img), {})[slot] = str(path)
    return str(path)


def set_queue_poll(demo, seconds: float = QUEUE_POLL_SECONDS) -> None:
    """Set the idle poll of the demo's queue (call after demo.queue()); skipped quietly if Gradio's private names go."""
    queue = getattr(demo, "_queue", None)
    if queue is not None and hasattr(queue, "sleep_when_free"):  # private in gradio 6.31
        queue.sleep_when_free = seconds
        queue.progress_update_sleep_when_free = 0.1  # only gr.Progress uses it, and this app does not


@functools.cache
def install() -> None:
    """Replace Gradio's function (its callers look it up on the module at call time)."""
    processing_utils.save_pil_to_cache = save_pil_to_cache
