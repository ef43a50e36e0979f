"""The 'is this explanation real?' test as a stream for a lecture: after each randomisation step (Adebayo et al.
2018, cnnviz.explain.sanity) a status line, the grid of maps so far and the rank correlations so far."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pandas as pd
import PIL.Image
import torch

from ..examples import PHOTO_DATASET, photo_examples
from ..explain.predict import predict_tensor
from ..explain.preprocess import model_input
from ..explain.sanity import SanityStep, sanity_check
from ..images import model_view
from ..render.lecture_pictures import sanity_frame, sanity_grid
from ..store.checkpoints import LoadedModel
from .drilldown import model_inputs, trained_dataset


@dataclass(frozen=True)
class SanityUpdate:
    """Everything shown after one step: the first is the trained model, then one per randomised layer."""

    status: str  # markdown
    grid: PIL.Image.Image  # Grad-CAM and Guided Backprop maps per step so far
    rho: pd.DataFrame  # long format: step, layer, rho, method


def sanity_stream(loaded: LoadedModel, image: PIL.Image.Image | None) -> Iterator[SanityUpdate]:
    """Randomise `loaded`'s layers from the top, explaining `image` (None: test image 0) after each step."""
    x, view, source = explained_input(loaded, image)
    total = sum(1 for n, m in loaded.model.named_modules() if n and any(True for _ in m.parameters(recurse=False)))
    top = predict_tensor(loaded, x, 1)  # the trained model's prediction is the class explained at every step
    target = f"the predicted class {top.labels[0]} ({top.probs[0]:.0%})"
    steps: list[SanityStep] = []
    for step in sanity_check(loaded.model, x):
        steps.append(step)
        yield SanityUpdate(status(steps, total, source, target), sanity_grid(view, steps), sanity_frame(steps))


def explained_input(loaded: LoadedModel, image: PIL.Image.Image | None) -> tuple[torch.Tensor, PIL.Image.Image, str]:
    """(model input [1,C,S,S], what the network sees, where the image came from)."""
    if image is None and loaded.meta.dataset == PHOTO_DATASET:  # ImageNet networks: no test split, the first photo
        path, caption = photo_examples()[0]
        x = model_input(path, loaded.meta)
        return x, model_view(x, loaded.meta.spec), f"the photo of a {caption}"
    if image is None:
        x = model_inputs(trained_dataset(loaded).test.images[:1], loaded)
        return x, model_view(x, loaded.meta.spec), f"test image 0 of {loaded.meta.dataset}"
    x = model_input(image, loaded.meta)  # ImageNet networks: their weights' own transforms
    return x, model_view(x, loaded.meta.spec), "your image"


def status(steps: Sequence[SanityStep], total: int, source: str, target: str) -> str:
    """Markdown: how far the randomisation got and, once every layer is random, how much each map still agrees."""
    last = steps[-1]
    done = len(steps) - 1
    head = (f"Explaining **{target}** on {source}. " + (f"Randomised {done} of {total} layers; last: `{last.layer}`."
                                                      if done else "Trained model explained; now randomising…"))
    if done < total:
        return head
    return (head + f"\n\n**Finished.** After randomising every layer: Grad-CAM rho = **{last.rho_gradcam:+.2f}**, "
            f"Guided Backprop rho = **{last.rho_guided_backprop:+.2f}**. The closer to 1, the less the map depends on "
            "what the network learned.")


__all__ = ["SanityUpdate", "explained_input", "sanity_stream", "status"]
