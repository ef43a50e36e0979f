"""Work-arounds for Gradio behaviour that breaks under a lecture hall's load; each is installed once, at import.

Atomic image cache writes: Gradio saves every output image as <cache>/<hash of its bytes>/image.<fmt> with a plain
`write_bytes`, which first truncates the file. When two students get the same picture at once (same example, same
settings), one request rewrites the file while the other's download is being served, and that download breaks
("Too little data for declared Content-Length", seen in benchmarks/load_test.py). The path is content-addressed, so
an existing file already holds these bytes: it is kept, and a new one appears only complete (temp file + rename).
"""
from __future__ import annotations

import functools
from pathlib import Path

from gradio import processing_utils

from ..store.atomic import atomic_write  # the one atomic write; not durable here: the cache can be rebuilt


def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:  # noqa: A002 (gradio's name)
    """processing_utils.save_pil_to_cache, with the write made atomic and skipped when the file exists."""
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    path = (folder / f"{name}.{format}").resolve()
    if not (path.is_file() and path.stat().st_size == len(data)):
        atomic_write(path, data)
    return str(path)


@functools.cache
def install() -> None:
    """Replace Gradio's function (its callers look it up on the module at call time)."""
    processing_utils.save_pil_to_cache = save_pil_to_cache
