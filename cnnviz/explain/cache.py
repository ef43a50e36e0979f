"""A bounded cache of explanation results, so a repeated question costs no model work.

In a lecture many students explain the same example image with the same checkpoint: the answer is computed once.
Keys are (checkpoint, image content hash, layer, target, method); a checkpoint is named by its file and that file's
mtime and size, so a re-saved checkpoint never serves stale maps. The cache is bounded by entries and by an estimate
of the bytes it holds (feature maps of a 224 px ImageNet layer are megabytes, LeNet's kilobytes).
"""
from __future__ import annotations

import dataclasses
import hashlib
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import PIL.Image
import torch

from ..images import load_image
from .choices import resolve_target
from .gradcam import CamResult, grad_cam
from .layers import default_layer
from .maps import FeatureMaps, feature_maps
from .pipeline import Explanation, prepare

if TYPE_CHECKING:
    from ..store.checkpoints import LoadedModel
    from .attributions import Attribution

T = TypeVar("T")
MAX_ENTRIES = 512
MAX_BYTES = 128 * 2**20


def image_digest(img: PIL.Image.Image) -> str:
    """A hash of the decoded pixels (mode, size, bytes): the same picture uploaded twice gives the same key."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{img.mode}{img.size}".encode())
    h.update(img.tobytes())
    return h.hexdigest()


def model_key(loaded: LoadedModel) -> tuple:
    """The checkpoint's identity: its file, mtime and size (a file saved again is another model)."""
    try:
        st = loaded.path.stat()
        return str(loaded.path), st.st_mtime_ns, st.st_size
    except OSError:  # removed from disk since it was loaded: only this very object is known to hold these weights
        return str(loaded.path), id(loaded.model)


def approx_bytes(value: object, depth: int = 0) -> int:
    """A rough size of a cached value: arrays, tensors and images count their pixels, containers their items."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    if isinstance(value, PIL.Image.Image):
        return value.width * value.height * len(value.getbands())
    if depth > 4:
        return 64
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return 64 + sum(approx_bytes(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return 64 + sum(approx_bytes(v, depth + 1) for v in value.values())
    if isinstance(value, (tuple, list)):
        return 64 + sum(approx_bytes(v, depth + 1) for v in value)
    if isinstance(value, str):
        return 50 + len(value)
    return 64


class ResultCache:
    """Thread-safe LRU of computed results, bounded by entry count and by `approx_bytes`; counts hits and misses."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached value of `key`, or compute it (outside the lock: other keys stay served meanwhile) and keep it."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key][0]  # type: ignore[return-value]
            self.misses += 1
        value = compute()
        size = approx_bytes(value)
        with self._lock:
            if size <= self.max_bytes:  # one huge value is returned but not kept
                old = self._items.pop(key, None)
                self._bytes += size - (old[1] if old else 0)
                self._items[key] = (value, size)
                while self._items and (len(self._items) > self.max_entries or self._bytes > self.max_bytes):
                    self._bytes -= self._items.popitem(last=False)[1][1]
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


@dataclasses.dataclass(frozen=True)
class CachedInput:
    """A decoded image prepared for one checkpoint, with the key prefix every result about it shares."""

    key: tuple  # (model key, image digest)
    x: torch.Tensor
    view: PIL.Image.Image


class CachedExplainer:
    """Grad-CAM, feature maps and attribution methods through one ResultCache (the web tabs' path)."""

    def __init__(self, cache: ResultCache | None = None):
        self.cache = cache or ResultCache()

    def input(self, loaded: LoadedModel, image: object) -> CachedInput:
        """The model input and view of `image` (a path, bytes or PIL image), prepared once per picture and model."""
        img = load_image(image)
        key = (model_key(loaded), image_digest(img))
        x, view = self.cache.get((*key, None, None, "input"), lambda: prepare(img, loaded.meta))
        return CachedInput(key, x, view)

    def explain(self, loaded: LoadedModel, image: object, layer: str | None = None, target: int | str | None = None,
                methods: Sequence[str] = ()) -> tuple[Explanation, CachedInput]:
        """Like pipeline.explain_image (same defaults, same errors), each part served from the cache when it can be."""
        inp = self.input(loaded, image)
        meta = loaded.meta
        layer = layer or default_layer(loaded.model, meta.arch)
        t = resolve_target(target, meta.class_names)
        cam: CamResult = self.cache.get((*inp.key, layer, t, "gradcam"), lambda: _quiet(grad_cam, loaded.model, inp.x,
                                                                                     layer, t))
        results = {m: self.attribution(loaded, inp, layer, cam.target, m) for m in dict.fromkeys(methods or ())}
        return Explanation(inp.x, inp.view, layer, cam, results, tuple(meta.class_names)), inp

    def attribution(self, loaded: LoadedModel, inp: CachedInput, layer: str, target: int, method: str) -> Attribution:
        """One attribution method's map (target: a class index)."""
        from .attributions import attribute  # local: captum takes a while to import, and Grad-CAM never needs it

        return self.cache.get((*inp.key, layer, target, method),
                              lambda: _quiet(attribute, loaded.model, inp.x, method, target, layer))

    def feature_maps(self, loaded: LoadedModel, inp: CachedInput, layer: str) -> FeatureMaps:
        """Every channel of `layer`'s output for the prepared input."""
        return self.cache.get((*inp.key, layer, None, "feature_maps"), lambda: feature_maps(loaded.model, inp.x, layer))

    def memo(self, key: tuple, compute: Callable[[], T]) -> T:
        """Any other derived result (e.g. a rendered picture) under the same cache and bounds."""
        return self.cache.get(key, compute)


def _quiet(fn: Callable[..., T], *args: object) -> T:
    """Run `fn` with warnings silenced: notes such as "this layer is 1x1" travel in the results instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


__all__ = ["CachedExplainer", "CachedInput", "ResultCache", "approx_bytes", "image_digest", "model_key"]
