"""One image through a loaded model, start to finish: decode and prepare it, then predict or explain it. The web tabs,
the CLI and Python callers all go through here, so they load, prepare, choose layers and targets the same way."""
from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import PIL.Image
import torch

from ..images import load_image, model_view, to_model_input
from ..store.checkpoints import CheckpointMeta, describe
from .choices import resolve_target
from .gradcam import CamResult, grad_cam
from .layers import default_layer
from .predict import Prediction, predict_image
from .preprocess import model_input

if TYPE_CHECKING:
    from ..images import InputSpec
    from ..store.checkpoints import LoadedModel
    from .attributions import Attribution


def prepare(source: object, spec: InputSpec | CheckpointMeta) -> tuple[torch.Tensor, PIL.Image.Image]:
    """Decode an image (path, bytes, PIL, array) into the model input [1,C,S,S] and the picture the model sees. Given a
    checkpoint's meta (not only its spec), ImageNet networks get their weights' own transforms (explain.preprocess)."""
    if isinstance(spec, CheckpointMeta):
        x = model_input(source, spec)
        return x, model_view(x, spec.spec)
    x = to_model_input(load_image(source), spec)
    return x, model_view(x, spec)


@dataclass(frozen=True)
class Explanation:
    """One image explained at one layer: what the model saw, its Grad-CAM, and any other attribution maps."""

    x: torch.Tensor  # the model input [1,C,S,S] (feature maps of any layer can be taken from it)
    view: PIL.Image.Image  # the input as the model sees it, upscaled for display
    layer: str  # the Grad-CAM layer actually used (the model's default when none was asked for)
    cam: CamResult
    attributions: dict[str, Attribution]  # method -> map, in the order asked for; same target as `cam`
    class_names: tuple[str, ...]

    @property
    def predicted(self) -> int:
        """Index of the most probable class."""
        return self.cam.predicted

    @property
    def target(self) -> int:
        """Index of the class being explained."""
        return self.cam.target

    @property
    def warnings(self) -> tuple[str, ...]:
        """Notes of the attribution maps (e.g. a 1x1 Grad-CAM layer), each once, sorted."""
        return tuple(sorted({w for a in self.attributions.values() for w in a.warnings}))

    @property
    def headline(self) -> str:
        """Plain text: 'predicted 7 (98.1%), explained 7 at layer features.3'."""
        names, pred = self.class_names, self.predicted
        return (f"predicted {names[pred]} ({self.cam.probs[pred]:.1%}), explained {names[self.target]} "
                f"at layer {self.layer}")

    @property
    def markdown(self) -> str:
        """What was predicted, what is explained, and any Grad-CAM warning (e.g. a 1x1 layer), as markdown."""
        names, cam = self.class_names, self.cam
        pred = cam.predicted
        text = (f"Predicted **{names[pred]}** ({cam.probs[pred]:.1%}); explaining **{names[cam.target]}** at layer "
                f"`{self.layer}` (Grad-CAM resolution {cam.cam.shape[0]}×{cam.cam.shape[1]}).")
        return text + "".join(f"\n\n⚠️ {w}" for w in cam.warnings)


def explain_image(loaded: LoadedModel, image: object, layer: str | None = None, target: int | str | None = None,
                  methods: Sequence[str] = ()) -> Explanation:
    """Grad-CAM of `image` at `layer` (default: the architecture's usual one) for `target` (index, class name or
    'predicted'; default: the predicted class), plus the attribution `methods` (names from attributions.METHODS)."""
    from .attributions import attribute_all  # local: captum takes a while to import, and prediction never needs it

    meta = loaded.meta
    x, view = prepare(image, meta)
    layer = layer or default_layer(loaded.model, meta.arch)
    t = resolve_target(target, meta.class_names)
    with warnings.catch_warnings():  # notes such as "this layer is 1x1" travel in the results instead
        warnings.simplefilter("ignore")
        cam = grad_cam(loaded.model, x, layer, t)
        results = attribute_all(loaded.model, x, cam.target, layer, tuple(methods or ()))
    return Explanation(x, view, layer, cam, results, tuple(meta.class_names))


@dataclass(frozen=True)
class PredictionReport:
    """One image predicted: the top-k, the image as the network sees it, and a one-line summary (markdown)."""

    prediction: Prediction
    view: PIL.Image.Image
    details: str
    ms: float  # wall time of decoding, preprocessing and the forward pass


def run_prediction(loaded: LoadedModel, image: object, topk: int) -> PredictionReport:
    """Top-k classes of `image`, what the network sees, and a summary with the model, input shape and time taken."""
    t0 = time.perf_counter()
    pred, x = predict_image(loaded, image, int(topk))
    ms = (time.perf_counter() - t0) * 1000
    spec = loaded.meta.spec
    details = (f"**{pred.labels[0]}** ({pred.probs[0]:.1%}) · {describe(loaded.meta)} · network input "
               f"{spec.channels}×{spec.size}×{spec.size} · {ms:.0f} ms")
    return PredictionReport(pred, model_view(x, spec), details, ms)


__all__ = ["Explanation", "PredictionReport", "explain_image", "prepare", "run_prediction"]
