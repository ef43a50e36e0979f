"""What the Compare and sanity-check tabs show before anyone presses a button: their default example, already done.

Computed once per process (when the page is built) and kept, keyed like every explanation result (checkpoint files
and image content), so a second page build or a test that builds the app again pays nothing.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import pandas as pd
import PIL.Image

from ..explain.cache import ResultCache, image_digest, model_key
from ..explain.predict import predict_tensor
from ..images import load_image
from ..store.checkpoints import LoadedModel
from .comparison import ComparisonReport, comparison_report, training_curves
from .sanity_stream import SanityUpdate, explained_input, sanity_stream

_DONE = ResultCache(max_entries=16)  # a handful of defaults; the results are pure functions of weights and image

SANITY_FIRST = ("**The trained network, explained**: Grad-CAM and Guided Backprop of {target} on {source}. "
                "Press the button to randomise its layers from the top and see which map changes.")


@dataclass(frozen=True)
class FirstComparison:
    report: ComparisonReport
    curves: pd.DataFrame
    image_digest: str  # of the image compared (explain.cache.image_digest), to tell whether it is still shown


def first_comparison(models: Sequence[LoadedModel], image: object, depth: float, metric: str,
                     history_of: Callable[[str], Sequence[Mapping]]) -> FirstComparison:
    """`comparison_report` and the overlaid curves of `models` on `image` (a path or picture), computed once."""
    img = load_image(image)
    digest = image_digest(img)
    key = ("compare", tuple(model_key(m) for m in models), digest, float(depth), metric)
    return _DONE.get(key, lambda: FirstComparison(comparison_report(list(models), img, depth),
                                                  training_curves([m.name for m in models], metric, history_of), digest))


def first_sanity(loaded: LoadedModel, image: object) -> SanityUpdate:
    """The sanity check's first step (the trained model explained, nothing randomised yet), computed once."""
    img: PIL.Image.Image = load_image(image)

    def compute() -> SanityUpdate:
        stream = sanity_stream(loaded, img)
        try:
            update = next(stream)
        finally:
            stream.close()
        top = predict_tensor(loaded, explained_input(loaded, img)[0], 1)
        target = f"**{top.labels[0]}** ({top.probs[0]:.0%}, the predicted class)"
        return replace(update, status=SANITY_FIRST.format(target=target, source="this example"))

    return _DONE.get(("sanity", model_key(loaded), image_digest(img)), compute)


__all__ = ["FirstComparison", "first_comparison", "first_sanity"]
