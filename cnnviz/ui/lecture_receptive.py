"""Receptive-field tab: the input region one unit of a layer can see, how it grows with depth, and two architectures
compared by relative depth. Layout and wiring only: the geometry, tables and pictures are
cnnviz.lecture.receptive_tables."""
from __future__ import annotations

import gradio as gr

from ..data import get_dataset_info
from ..lecture.catalog import model_choices, web_datasets
from ..lecture.receptive_tables import Geometry, geometry, rf_curves, rf_table, unit_field
from ..lecture.summary import LayerRow
from ..models import get_model_info
from .common import SessionWorkspace, Shared, checkpoint_choices, checkpoint_entries, guarded, note, user_error
from .inputs import SafeNumber, SafeSlider
from .lecture_plots import clear_plots_on

NOTE = ("**What am I looking at?** One number deep inside the network depends only on a patch of the input: its "
        "*receptive field*. Pick a layer and a position in that layer's grid; the red box is the patch that number can "
        "see. The second picture shows the centre unit's patch for every convolution and pooling layer (yellow = "
        "shallow, red = deep): the patches grow with depth, which is how later layers see whole objects. The table "
        "compares two architectures at the same relative depth.")
CHEAP = dict(concurrency_limit=4, trigger_mode="always_last", show_progress="minimal")
PRIVATE = dict(api_visibility="private", **CHEAP)


def offered_geometry(arch: str, dataset: str) -> Geometry:
    """The geometry of a pair, accepting only the datasets this web app offers."""
    return geometry(arch, dataset, tuple(web_datasets()))


def slider_args(row: LayerRow) -> list[dict]:
    """Keyword arguments of the row and column sliders for a layer's output grid, at its centre unit."""
    return [dict(minimum=0, maximum=max(1, n - 1), value=n // 2, step=1, interactive=n > 1, label=f"{what} (0..{n - 1})")
            for what, n in zip(("Row", "Column"), row.out_shape[-2:], strict=True)]


class ReceptiveTab:
    """The tab's components (made in the current context) and its handlers: keyword inputs, {component: value} out."""

    def __init__(self, shared: Shared, tab: gr.Tab) -> None:
        note(NOTE)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                self._controls()
                self.other = gr.Dropdown(model_choices(), value="vgg11", label="Compare with")
            with gr.Column(scale=2):
                self.caption = gr.Markdown(elem_id="rf-caption")
                with gr.Row():
                    self.unit = gr.Image(label="Receptive field of the chosen unit", format="png", interactive=False,
                                         elem_classes=["pixelated"], elem_id="rf-unit")
                    self.growing = gr.Image(label="Growing with depth (centre unit of each conv/pool layer)",
                                            format="png", interactive=False, elem_classes=["pixelated"],
                                            elem_id="rf-growing")
        with gr.Row():
            self.table = gr.Dataframe(label="Receptive field at the same relative depth", interactive=False, wrap=True)
            self.plot = gr.LinePlot(x="relative depth", y="RF / input side", color="architecture",
                                    tooltip=["layer", "RF / input side", "architecture"], label="Receptive field vs depth",
                                    x_lim=[0, 1], buttons=["fullscreen", "export"])
        self._wire(shared, tab)

    def _controls(self) -> None:
        g = offered_geometry("lenet5", "fashion-mnist")  # geometry only (no data): cheap enough at build time
        datasets = [(get_dataset_info(d).title, d) for d in web_datasets()]
        with gr.Row():
            self.arch = gr.Dropdown(model_choices(), value="lenet5", label="Architecture", scale=2)
            self.dataset = gr.Dropdown(datasets, value="fashion-mnist", label="Dataset (sets the input shape)", scale=1)
            self.checkpoint = gr.Dropdown(checkpoint_choices(None), value=None, label="…or take both from a checkpoint",
                                          allow_custom_value=True, info="its weights do not matter here, only its shape")
        self.layer = gr.Dropdown(g.layer_choices(), value=g.default_layer(), label="Layer",
                                 info="convolution and pooling layers",
                                 allow_custom_value=True)  # API callers name layers of other architectures than the menu
        self.row, self.col = (SafeSlider(**a, elem_id=f"rf-{k}")
                              for a, k in zip(slider_args(g.row(g.default_layer())), ("row", "col"), strict=True))

    def _wire(self, shared: Shared, tab: gr.Tab) -> None:
        unit_in = {"arch": self.arch, "dataset": self.dataset, "layer": self.layer, "row": self.row, "col": self.col}
        field_in = {**unit_in, "other": self.other}
        field_out = [self.unit, self.growing, self.caption, self.table, self.plot]
        menu_in, menu_out = {"arch": self.arch, "dataset": self.dataset, "layer": self.layer}, [self.layer, self.row, self.col]
        # The API takes row and column as plain numbers: a slider checks values against the grid it last showed in the
        # caller's session, which belongs to whatever layer that session chose before.
        api_row, api_col = SafeNumber(visible=False, precision=0, label="row"), SafeNumber(visible=False, precision=0, label="col")
        gr.Button(visible=False).click(self.receptive_field, inputs_kwargs={**field_in, "row": api_row, "col": api_col},
                                       outputs=field_out, api_name="receptive_field", **CHEAP)
        gr.on([self.row.input, self.col.input], self.unit_view, inputs_kwargs=unit_in, outputs=[self.unit, self.caption],
              **PRIVATE)
        clear_plots_on([tab.select, self.other.input, self.arch.input, self.dataset.input, self.checkpoint.input],
                       [self.plot])
        gr.on([tab.select, self.other.input], self.receptive_field, inputs_kwargs=field_in, outputs=field_out, **PRIVATE)
        menus = gr.on([self.arch.input, self.dataset.input, self.layer.input], self.choose_layer,
                      inputs_kwargs=menu_in, outputs=menu_out, **PRIVATE)
        menus.success(self.receptive_field, inputs_kwargs=field_in, outputs=field_out, **PRIVATE)
        tab.select(self.refresh_checkpoints, inputs_kwargs={"ws": shared.workspace}, outputs=self.checkpoint,
                   api_visibility="private", queue=False)  # this user's own checkpoints too
        self.checkpoint.input(self.from_checkpoint, inputs_kwargs={"name": self.checkpoint, "ws": shared.workspace},
                              outputs=[self.arch, self.dataset], api_visibility="private", queue=False).success(
            self.choose_layer, inputs_kwargs=menu_in, outputs=menu_out, **PRIVATE).success(
            self.receptive_field, inputs_kwargs=field_in, outputs=field_out, **PRIVATE)

    @guarded
    def receptive_field(self, *, arch: str, dataset: str, layer: str | None, row: float | None, col: float | None,
                        other: str | None) -> dict:
        """The chosen unit's field on an example image, the centre fields of every conv/pool layer, and a comparison
        of RF by relative depth with architecture `other`."""
        view = unit_field(offered_geometry(arch, dataset), dataset, layer, row, col)
        growing = view.growing()
        b = offered_geometry(other or arch, dataset)
        return {self.unit: view.image, self.growing: growing, self.caption: view.caption,
                self.table: rf_table(view.geometry, b), self.plot: rf_curves(view.geometry, b)}

    @guarded
    def unit_view(self, *, arch: str, dataset: str, layer: str | None, row: float | None, col: float | None) -> dict:
        """Only the chosen unit's field and its caption (what the row/column sliders change)."""
        view = unit_field(offered_geometry(arch, dataset), dataset, layer, row, col)
        return {self.unit: view.image, self.caption: view.caption}

    @guarded
    def choose_layer(self, *, arch: str, dataset: str, layer: str | None) -> dict:
        """Layer menu for an architecture/dataset pair (keeping `layer` if it exists), sliders at its centre unit."""
        g = offered_geometry(arch, dataset)
        name = g.pick_layer(layer)
        row, col = slider_args(g.row(name))
        return {self.layer: gr.Dropdown(choices=g.layer_choices(), value=name), self.row: gr.Slider(**row),
                self.col: gr.Slider(**col)}

    @guarded
    def from_checkpoint(self, *, name: str | None, ws: SessionWorkspace) -> dict:
        """Architecture and dataset of a checkpoint (its weights do not change the geometry)."""
        entry = checkpoint_entries(ws).get(str(name))
        if entry is None:
            raise user_error(f"no checkpoint called {name!r}; refresh the page to see the current list")
        if entry.dataset not in web_datasets() and get_model_info(entry.arch).imagenet:
            return {self.arch: entry.arch}  # ImageNet networks are 3x224 whatever the dataset menu says
        if entry.dataset not in web_datasets():
            raise user_error(f"checkpoint {name!r} was trained on {entry.dataset!r}, which this view cannot show")
        return {self.arch: entry.arch, self.dataset: entry.dataset}

    def refresh_checkpoints(self, *, ws: SessionWorkspace) -> dict:
        """The checkpoint menu with this session's checkpoints."""
        return {self.checkpoint: gr.Dropdown(choices=checkpoint_choices(ws))}


def build(shared: Shared, tab: gr.Tab) -> ReceptiveTab:
    """Create the tab's components in the current context (inside `tab`) and wire its events."""
    return ReceptiveTab(shared, tab)
