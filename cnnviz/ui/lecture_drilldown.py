"""Confusion drill-down tab: a checkpoint's confusion matrix; pick a cell (true A, predicted B) by clicking or with
two menus; see those test images, most confident mistakes first; pick one for Grad-CAM of A and of B side by side."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..explain.targets import parse_target
from ..images import model_view, uint8_to_pil
from ..lecture.drilldown import cams_for_pair, model_inputs, predict_test_set, trained_dataset
from ..render.lecture_pictures import ConfusionPicture, confusion_picture, worst_cell
from ..render.pictures import overlay, upscale
from ..store.checkpoints import LoadedModel
from .common import (
    SessionWorkspace,
    Shared,
    checkpoint_choices,
    checkpoint_dropdown,
    default_checkpoint,
    guarded,
    load_model,
    note,
    user_error,
)

NOTE = ("**What am I looking at?** Row = the true class, column = what the network answered; the diagonal holds the "
        "right answers. **Click a cell** (or use the two menus) to see exactly which test images were mistaken, the "
        "most confident mistakes first. Click an image: on the left, where the network found evidence for the *true* "
        "class; on the right, evidence for the class it *chose* (Grad-CAM, red = most). Often the mistake makes sense.")
MAX_IMAGES = 48  # a gallery item is one HTTP request; the most confident mistakes are the instructive ones
THUMB = 96


def class_choices(names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(f"{i}: {n}", str(i)) for i, n in enumerate(names)]


def parse_class(text, loaded: LoadedModel, what: str) -> int:
    """A class index or name -> index; empty is an error naming what is missing."""
    index = parse_target(None if text is None else str(text), loaded.meta.class_names)
    if index is None:
        raise user_error(f"Choose the {what} class.")
    return index


def _confusion(checkpoint: str | None, ws: SessionWorkspace) -> tuple:
    """(picture, summary, worst true class, worst predicted class, class names, click geometry) of a checkpoint."""
    loaded = load_model(checkpoint, ws)
    preds = predict_test_set(loaded)  # cached per checkpoint file: the second visit is instant
    matrix = preds.confusion()
    names = loaded.meta.class_names
    pic = confusion_picture(matrix, names)
    a, b = worst_cell(matrix)
    wrong = int(matrix.sum() - matrix.trace())
    text = (f"**{loaded.name}**: {wrong} of {int(matrix.sum())} test images are misclassified. The most frequent "
            f"mistake: **{names[a]}** taken for **{names[b]}** ({int(matrix[a, b])}×).") if wrong else \
        f"**{loaded.name}** classifies all {int(matrix.sum())} test images correctly: no mistakes to drill into."
    return pic.image, text, str(a), str(b), names, (tuple(float(v) for v in pic.box), pic.k)


@guarded
def confusion(checkpoint: str | None, ws: SessionWorkspace) -> tuple:
    """Confusion matrix of a checkpoint on its whole test set, and menus set to its most frequent mistake."""
    image, text, a, b, names, geometry = _confusion(checkpoint, ws)
    return image, text, *(gr.Dropdown(choices=class_choices(names), value=c) for c in (a, b)), geometry


@guarded
def pick_cell(geometry, evt: gr.SelectData) -> tuple:
    """A click on the matrix image -> (true, predicted) menu values; clicks beside the matrix change nothing."""
    if geometry is None or not isinstance(evt.index, list | tuple) or len(evt.index) != 2:
        return gr.skip(), gr.skip()
    box, k = geometry
    cell = ConfusionPicture(None, tuple(box), int(k)).cell_at(float(evt.index[0]), float(evt.index[1]))
    if cell is None:
        return gr.skip(), gr.skip()
    return str(cell[0]), str(cell[1])


def _caption(index: int, probs, true: int, pred: int, names) -> str:
    return f"#{index} · {names[pred]} {probs[pred]:.0%} (true {names[true]} {probs[true]:.0%})"


@guarded
def drilldown_cell(checkpoint: str | None, true, pred, ws: SessionWorkspace) -> tuple[list, str, int]:
    """Test images of class `true` that the model predicted as `pred`, most confident first (captioned '#<index> ...'),
    and image number 0 for the CAM view."""
    loaded = load_model(checkpoint, ws)
    a, b = parse_class(true, loaded, "true"), parse_class(pred, loaded, "predicted")
    preds = predict_test_set(loaded)
    idx = preds.cell(a, b)
    names = loaded.meta.class_names
    what = "correctly classified" if a == b else f"**{names[a]}** taken for **{names[b]}**"
    if len(idx) == 0:
        return [], f"No test image in this cell: {what} never happens. Pick another cell.", 0
    images = trained_dataset(loaded).test.images
    items = [(upscale(uint8_to_pil(images[i]), THUMB), _caption(int(i), preds.probs[i], a, b, names))
             for i in idx[:MAX_IMAGES]]
    shown = f" (the {MAX_IMAGES} most confident shown)" if len(idx) > MAX_IMAGES else ""
    return items, f"{len(idx)} test images {what}{shown}. Click one to see its Grad-CAM for both classes.", 0


@guarded
def drilldown_cams(checkpoint: str | None, true, pred, rank: float | None, ws: SessionWorkspace) -> tuple:
    """Grad-CAM of the cell's image number `rank` (0 = most confident) for the true and for the predicted class."""
    loaded = load_model(checkpoint, ws)
    a, b = parse_class(true, loaded, "true"), parse_class(pred, loaded, "predicted")
    idx = predict_test_set(loaded).cell(a, b)
    if len(idx) == 0:  # reached by picking an empty cell: nothing to explain, no error pop-up
        return None, None, ""
    r = int(rank or 0)
    if not 0 <= r < len(idx):
        raise user_error(f"This cell holds {len(idx)} images (0..{len(idx) - 1}); there is no image number {r}.")
    index = int(idx[r])
    cam_a, cam_b = cams_for_pair(loaded, index, a, b)
    names = loaded.meta.class_names
    view = model_view(model_inputs(trained_dataset(loaded).test.images[index:index + 1], loaded), loaded.meta.spec)
    text = (f"Test image #{index}: true class **{names[a]}** (probability {cam_a.probs[a]:.1%}), predicted "
            f"**{names[b]}** (probability {cam_b.probs[b]:.1%}). Grad-CAM at `{cam_a.layer}`.")
    return (gr.Image(overlay(view, cam_a.upsampled, 0.5), label=f"True: {names[a]} (p = {cam_a.probs[a]:.1%})"),
            gr.Image(overlay(view, cam_b.upsampled, 0.5), label=f"Predicted: {names[b]} (p = {cam_b.probs[b]:.1%})"), text)


@guarded
def first_visit(checkpoint: str | None, geometry, ws: SessionWorkspace) -> tuple:
    """Opening the tab: a fresh checkpoint menu, then matrix, worst cell and its first CAMs, unless already shown."""
    if geometry is not None:
        return (gr.skip(),) * 12
    choices = checkpoint_choices(ws)
    names = [n for _, n in choices]
    name = checkpoint if checkpoint in names else default_checkpoint(choices)
    menu = gr.Dropdown(choices=choices, value=name)
    if not name:
        return menu, *(gr.skip(),) * 11
    image, text, a, b, classes, geometry = _confusion(name, ws)
    menus = [gr.Dropdown(choices=class_choices(classes), value=c) for c in (a, b)]
    return menu, image, text, *menus, geometry, *drilldown_cell(name, a, b, ws), *drilldown_cams(name, a, b, 0, ws)


def select_rank(evt: gr.SelectData) -> int:
    """Gallery click -> its position in the cell (0 = most confident mistake)."""
    return int(evt.index)


@dataclass
class DrilldownTab:
    checkpoint: gr.Dropdown
    matrix: gr.Image
    gallery: gr.Gallery


def _outputs() -> tuple:
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=360):
            matrix = gr.Image(label="Confusion matrix: click a cell", format="png", interactive=False, height=520,
                              buttons=["fullscreen"], elem_id="drilldown-matrix")
        with gr.Column(scale=1, min_width=360):
            gallery = gr.Gallery(label="Test images in the cell (most confident first)", columns=6, height=360,
                                 format="png", object_fit="contain", allow_preview=False, elem_classes=["pixelated"],
                                 elem_id="drilldown-gallery")
            cell_text = gr.Markdown()
            with gr.Row():
                cam_a = gr.Image(label="Evidence for the true class", format="png", interactive=False, height=260,
                                 elem_classes=["pixelated"], elem_id="drilldown-cam-true")
                cam_b = gr.Image(label="Evidence for the predicted class", format="png", interactive=False,
                                 height=260, elem_classes=["pixelated"], elem_id="drilldown-cam-pred")
            cam_text = gr.Markdown()
    return matrix, gallery, cell_text, cam_a, cam_b, cam_text


def build(shared: Shared, tab: gr.Tab) -> DrilldownTab:
    """Create the tab's components in the current context (inside `tab`) and wire its events."""
    note(NOTE)
    with gr.Row():
        checkpoint = checkpoint_dropdown()
        true = gr.Dropdown(label="True class (row)", allow_custom_value=True)
        pred = gr.Dropdown(label="Predicted class (column)", allow_custom_value=True)
        rank = gr.Number(0, label="Image in the cell (0 = most confident; Enter)", precision=0, minimum=0)
    summary = gr.Markdown("Choose a checkpoint: its confusion matrix on the whole test set appears here.")
    matrix, gallery, cell_text, cam_a, cam_b, cam_text = _outputs()
    geometry = gr.State(None)  # (matrix box in image pixels, number of classes) of the picture on screen
    heavy = dict(concurrency_id="lecture", concurrency_limit=2)
    private = dict(api_visibility="private", **heavy)
    ws = shared.workspace
    cell_in, cell_out = [checkpoint, true, pred, ws], [gallery, cell_text, rank]
    cams_in, cams_out = [checkpoint, true, pred, rank, ws], [cam_a, cam_b, cam_text]

    # Public endpoints first: a private listener of the same function would otherwise take its default api_name.
    shown = checkpoint.input(confusion, [checkpoint, ws], [matrix, summary, true, pred, geometry], api_name="confusion",
                             trigger_mode="always_last", **heavy)
    picked = gr.on([true.input, pred.input], drilldown_cell, cell_in, cell_out, api_name="drilldown_cell",
                   trigger_mode="always_last", **heavy)
    rank.submit(drilldown_cams, cams_in, cams_out, api_name="drilldown_cams", **heavy)
    picked.success(drilldown_cams, cams_in, cams_out, **private)
    clicked = matrix.select(pick_cell, geometry, [true, pred], api_visibility="private", queue=False)
    for event in (shown, clicked):
        event.success(drilldown_cell, cell_in, cell_out, **private).success(drilldown_cams, cams_in, cams_out, **private)
    gallery.select(select_rank, None, rank, api_visibility="private", queue=False).success(
        drilldown_cams, cams_in, cams_out, **private)
    all_out = [matrix, summary, true, pred, geometry, *cell_out, *cams_out]
    tab.select(first_visit, [checkpoint, geometry, ws], [checkpoint, *all_out], trigger_mode="always_last", **private)
    return DrilldownTab(checkpoint, matrix, gallery)
