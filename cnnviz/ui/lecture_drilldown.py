"""Confusion drill-down tab: a checkpoint's confusion matrix; pick a cell (true A, predicted B) by clicking or with
two menus; see those test images, most confident mistakes first; pick one for Grad-CAM of A and of B side by side.
Layout and wiring only: the numbers, words and pictures are cnnviz.lecture.drilldown_views."""
from __future__ import annotations

import gradio as gr

from ..lecture.drilldown import parse_class
from ..lecture.drilldown_views import (
    ConfusionOverview,
    cell_cams,
    cell_images,
    class_choices,
    clicked_cell,
    confusion_overview,
)
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
)
from .inputs import SafeNumber

NOTE = ("**What am I looking at?** Row = the true class, column = what the network answered; the diagonal holds the "
        "right answers. **Click a cell** (or use the two menus) to see exactly which test images were mistaken, the "
        "most confident mistakes first. Click an image: on the left, where the network found evidence for the *true* "
        "class; on the right, evidence for the class it *chose* (Grad-CAM, red = most). Often the mistake makes sense.")
HEAVY = dict(concurrency_id="lecture", concurrency_limit=2)
PRIVATE = dict(api_visibility="private", **HEAVY)


def _cell(loaded: LoadedModel, true: object, pred: object) -> tuple[int, int]:
    """The menus' (true, predicted) values as class indices of `loaded`."""
    names = loaded.meta.class_names
    return parse_class(true, names, "true"), parse_class(pred, names, "predicted")


class DrilldownTab:
    """The tab's components (made in the current context) and its handlers: keyword inputs, {component: value} out."""

    def __init__(self, shared: Shared, tab: gr.Tab) -> None:
        note(NOTE)
        with gr.Row():
            self.checkpoint = checkpoint_dropdown()
            self.true = gr.Dropdown(label="True class (row)", allow_custom_value=True)
            self.pred = gr.Dropdown(label="Predicted class (column)", allow_custom_value=True)
            self.rank = SafeNumber(0, label="Image in the cell (0 = most confident; Enter)", precision=0, minimum=0)
        self.summary = gr.Markdown("Choose a checkpoint: its confusion matrix on the whole test set appears here.")
        self._outputs()
        self.grid = gr.State(None)  # (matrix box in image pixels, number of classes) of the picture on screen
        self._wire(shared, tab)

    def _outputs(self) -> None:
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=360):
                self.matrix = gr.Image(label="Confusion matrix: click a cell", format="png", interactive=False,
                                       height=520, buttons=["fullscreen"], elem_id="drilldown-matrix")
            with gr.Column(scale=1, min_width=360):
                self.gallery = gr.Gallery(label="Test images in the cell (most confident first)", columns=6, height=360,
                                          format="png", object_fit="contain", allow_preview=False,
                                          elem_classes=["pixelated"], elem_id="drilldown-gallery")
                self.cell_text = gr.Markdown()
                with gr.Row():
                    self.cam_true = gr.Image(label="Evidence for the true class", format="png", interactive=False,
                                             height=260, elem_classes=["pixelated"], elem_id="drilldown-cam-true")
                    self.cam_pred = gr.Image(label="Evidence for the predicted class", format="png", interactive=False,
                                             height=260, elem_classes=["pixelated"], elem_id="drilldown-cam-pred")
                self.cam_text = gr.Markdown()

    def _wire(self, shared: Shared, tab: gr.Tab) -> None:
        ws = shared.workspace
        cell_in = {"checkpoint": self.checkpoint, "true": self.true, "pred": self.pred, "ws": ws}
        cams_in = {"checkpoint": self.checkpoint, "true": self.true, "pred": self.pred, "rank": self.rank, "ws": ws}
        overview_out = [self.matrix, self.summary, self.true, self.pred, self.grid]
        cell_out, cams_out = [self.gallery, self.cell_text, self.rank], [self.cam_true, self.cam_pred, self.cam_text]
        # Public endpoints first: a private listener of the same function would otherwise take its default api_name.
        shown = self.checkpoint.input(self.confusion, inputs_kwargs={"checkpoint": self.checkpoint, "ws": ws},
                                      outputs=overview_out, api_name="confusion", trigger_mode="always_last", **HEAVY)
        picked = gr.on([self.true.input, self.pred.input], self.drilldown_cell, inputs_kwargs=cell_in, outputs=cell_out,
                       api_name="drilldown_cell", trigger_mode="always_last", **HEAVY)
        self.rank.submit(self.drilldown_cams, inputs_kwargs=cams_in, outputs=cams_out, api_name="drilldown_cams",
                         **HEAVY)
        picked.success(self.drilldown_cams, inputs_kwargs=cams_in, outputs=cams_out, **PRIVATE)
        clicked = self.matrix.select(self.pick_cell, inputs_kwargs={"grid": self.grid}, outputs=[self.true, self.pred],
                                     api_visibility="private", queue=False)
        for event in (shown, clicked):
            event.success(self.drilldown_cell, inputs_kwargs=cell_in, outputs=cell_out, **PRIVATE).success(
                self.drilldown_cams, inputs_kwargs=cams_in, outputs=cams_out, **PRIVATE)
        self.gallery.select(self.select_rank, outputs=self.rank, api_visibility="private", queue=False).success(
            self.drilldown_cams, inputs_kwargs=cams_in, outputs=cams_out, **PRIVATE)
        tab.select(self.first_visit, inputs_kwargs={"checkpoint": self.checkpoint, "grid": self.grid, "ws": ws},
                   outputs=[self.checkpoint, *overview_out, *cell_out, *cams_out], trigger_mode="always_last",
                   **PRIVATE)

    @guarded
    def confusion(self, *, checkpoint: str | None, ws: SessionWorkspace) -> dict:
        """Confusion matrix of a checkpoint on its whole test set, and menus set to its most frequent mistake."""
        return self._overview(confusion_overview(load_model(checkpoint, ws)))

    def _overview(self, o: ConfusionOverview) -> dict:
        menus = [gr.Dropdown(choices=class_choices(o.class_names), value=str(c)) for c in o.worst]
        return {self.matrix: o.image, self.summary: o.summary, self.true: menus[0], self.pred: menus[1],
                self.grid: o.grid}

    @guarded
    def pick_cell(self, evt: gr.SelectData, *, grid) -> dict:
        """A click on the matrix image -> (true, predicted) menu values; clicks beside the matrix change nothing."""
        cell = clicked_cell(grid, evt.index)
        return gr.skip() if cell is None else {self.true: str(cell[0]), self.pred: str(cell[1])}

    @guarded
    def drilldown_cell(self, *, checkpoint: str | None, true, pred, ws: SessionWorkspace) -> dict:
        """Test images of class `true` that the model predicted as `pred`, most confident first (captioned
        '#<index> ...'), and image number 0 for the CAM view."""
        loaded = load_model(checkpoint, ws)
        cell = cell_images(loaded, *_cell(loaded, true, pred))
        return {self.gallery: cell.items, self.cell_text: cell.text, self.rank: 0}

    @guarded
    def drilldown_cams(self, *, checkpoint: str | None, true, pred, rank: float | None, ws: SessionWorkspace) -> dict:
        """Grad-CAM of the cell's image number `rank` (0 = most confident) for the true and for the predicted class."""
        loaded = load_model(checkpoint, ws)
        pair = cell_cams(loaded, *_cell(loaded, true, pred), int(rank or 0))
        if pair is None:  # an empty cell: nothing to explain, no error pop-up
            return {self.cam_true: None, self.cam_pred: None, self.cam_text: ""}
        return {self.cam_true: gr.Image(pair.true_image, label=pair.true_label),
                self.cam_pred: gr.Image(pair.pred_image, label=pair.pred_label), self.cam_text: pair.text}

    @guarded
    def first_visit(self, *, checkpoint: str | None, grid, ws: SessionWorkspace) -> dict:
        """Opening the tab: a fresh checkpoint menu, then matrix, worst cell and its first CAMs, unless already shown."""
        if grid is not None:
            return gr.skip()
        choices = checkpoint_choices(ws)
        names = [n for _, n in choices]
        name = checkpoint if checkpoint in names else default_checkpoint(choices)
        menu = {self.checkpoint: gr.Dropdown(choices=choices, value=name)}
        if not name:
            return menu
        overview = confusion_overview(load_model(name, ws))
        true, pred = (str(c) for c in overview.worst)
        return {**menu, **self._overview(overview), **self.drilldown_cell(checkpoint=name, true=true, pred=pred, ws=ws),
                **self.drilldown_cams(checkpoint=name, true=true, pred=pred, rank=0, ws=ws)}

    def select_rank(self, evt: gr.SelectData) -> dict:
        """Gallery click -> its position in the cell (0 = most confident mistake)."""
        return {self.rank: int(evt.index)}


def build(shared: Shared, tab: gr.Tab) -> DrilldownTab:
    """Create the tab's components in the current context (inside `tab`) and wire its events."""
    return DrilldownTab(shared, tab)
