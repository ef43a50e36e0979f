"""What the confusion drill-down shows, as plain values: the matrix picture with its summary and most frequent
mistake, the test images of one cell, and the Grad-CAM pair (true class, predicted class) of one of them.

The numbers come from cnnviz.lecture.drilldown; this module only words and draws them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import PIL.Image

from ..images import model_view, uint8_to_pil
from ..render.lecture_pictures import ConfusionPicture, confusion_picture
from ..render.pictures import overlay, upscale
from ..store.checkpoints import LoadedModel
from .drilldown import cams_for_pair, model_inputs, predict_test_set, trained_dataset, worst_cell
from .errors import LectureError

MAX_IMAGES = 48  # a gallery item is one HTTP request; the most confident mistakes are the instructive ones
THUMB = 96  # side of a gallery thumbnail in px
Grid = tuple[tuple[float, float, float, float], int]  # (matrix box in image pixels, number of classes)


def class_choices(names: Sequence[str]) -> list[tuple[str, str]]:
    """(label, value) per class for a class menu: '3: cat' shown, '3' chosen."""
    return [(f"{i}: {n}", str(i)) for i, n in enumerate(names)]


@dataclass(frozen=True)
class ConfusionOverview:
    """A checkpoint's confusion matrix on its whole test set, worded, with its most frequent mistake."""

    image: PIL.Image.Image
    summary: str  # markdown
    worst: tuple[int, int]  # (true, predicted) of the most frequent mistake; (0, 0) without mistakes
    class_names: tuple[str, ...]
    grid: Grid  # what a click on the image needs to find its cell (see clicked_cell)


def confusion_overview(loaded: LoadedModel) -> ConfusionOverview:
    """The matrix picture, a one-line summary and the worst cell (test-set predictions cached per checkpoint file)."""
    matrix = predict_test_set(loaded).confusion()
    names = tuple(loaded.meta.class_names)
    pic = confusion_picture(matrix, names)
    a, b = worst_cell(matrix)
    wrong = int(matrix.sum() - matrix.trace())
    text = (f"**{loaded.name}**: {wrong} of {int(matrix.sum())} test images are misclassified. The most frequent "
            f"mistake: **{names[a]}** taken for **{names[b]}** ({int(matrix[a, b])}×).") if wrong else \
        f"**{loaded.name}** classifies all {int(matrix.sum())} test images correctly: no mistakes to drill into."
    return ConfusionOverview(pic.image, text, (a, b), names, (tuple(float(v) for v in pic.box), pic.k))


def clicked_cell(grid: Grid | None, index: object) -> tuple[int, int] | None:
    """(true, predicted) under a click at image pixel `index` ([x, y]); None beside the matrix or with no matrix."""
    if grid is None or not isinstance(index, list | tuple) or len(index) != 2:
        return None
    box, k = grid
    return ConfusionPicture(None, tuple(box), int(k)).cell_at(float(index[0]), float(index[1]))


@dataclass(frozen=True)
class CellImages:
    """The test images of one cell, most confident first, captioned '#<test index> · <prediction> ...'."""

    items: list[tuple[PIL.Image.Image, str]]
    text: str  # markdown: how many, and what to do next


def cell_images(loaded: LoadedModel, true: int, pred: int) -> CellImages:
    """Test images of class `true` that the model predicted as `pred` (at most MAX_IMAGES, enlarged)."""
    preds = predict_test_set(loaded)
    idx = preds.cell(true, pred)
    names = loaded.meta.class_names
    what = "correctly classified" if true == pred else f"**{names[true]}** taken for **{names[pred]}**"
    if len(idx) == 0:
        return CellImages([], f"No test image in this cell: {what} never happens. Pick another cell.")
    images = trained_dataset(loaded).test.images
    items = [(upscale(uint8_to_pil(images[i]), THUMB), _caption(int(i), preds.probs[i], true, pred, names))
             for i in idx[:MAX_IMAGES]]
    shown = f" (the {MAX_IMAGES} most confident shown)" if len(idx) > MAX_IMAGES else ""
    return CellImages(items, f"{len(idx)} test images {what}{shown}. Click one to see its Grad-CAM for both classes.")


def _caption(index: int, probs, true: int, pred: int, names) -> str:
    return f"#{index} · {names[pred]} {probs[pred]:.0%} (true {names[true]} {probs[true]:.0%})"


@dataclass(frozen=True)
class CamPair:
    """Grad-CAM of one test image for its true class and for the class the model chose, over what the model sees."""

    true_image: PIL.Image.Image
    pred_image: PIL.Image.Image
    true_label: str
    pred_label: str
    text: str  # markdown


def cell_cams(loaded: LoadedModel, true: int, pred: int, rank: int) -> CamPair | None:
    """The pair for the cell's image number `rank` (0 = most confident); None when the cell is empty."""
    idx = predict_test_set(loaded).cell(true, pred)
    if len(idx) == 0:  # reached by picking an empty cell: nothing to explain, and not an error
        return None
    if not 0 <= rank < len(idx):
        raise LectureError(f"This cell holds {len(idx)} images (0..{len(idx) - 1}); there is no image number {rank}.")
    index = int(idx[rank])
    cam_a, cam_b = cams_for_pair(loaded, index, true, pred)
    names = loaded.meta.class_names
    view = model_view(model_inputs(trained_dataset(loaded).test.images[index:index + 1], loaded), loaded.meta.spec)
    text = (f"Test image #{index}: true class **{names[true]}** (probability {cam_a.probs[true]:.1%}), predicted "
            f"**{names[pred]}** (probability {cam_b.probs[pred]:.1%}). Grad-CAM at `{cam_a.layer}`.")
    return CamPair(overlay(view, cam_a.upsampled, 0.5), overlay(view, cam_b.upsampled, 0.5),
                   f"True: {names[true]} (p = {cam_a.probs[true]:.1%})",
                   f"Predicted: {names[pred]} (p = {cam_b.probs[pred]:.1%})", text)


__all__ = ["MAX_IMAGES", "THUMB", "CamPair", "CellImages", "ConfusionOverview", "cell_cams", "cell_images",
           "class_choices", "clicked_cell", "confusion_overview"]
