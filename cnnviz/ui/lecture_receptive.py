"""Receptive-field tab: the input region one unit of a layer can see, how it grows with depth, and two architectures
compared by relative depth. Pure geometry: no weights, no training."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import gradio as gr
import pandas as pd
import PIL.Image

from ..data import DatasetUnavailable, get_dataset_info
from ..examples import test_example
from ..images import resize_square
from ..lecture.receptive import FieldBox, draw_fields, field_box, fields_by_depth, spatial_rows
from ..lecture.summary import LayerRow
from ..models import get_model, get_model_info, list_models, model_input_size
from ..render.lecture_pictures import clipped, draw_scale, outline_unit
from .architecture_tab import model_choices, web_datasets
from .common import SessionWorkspace, Shared, checkpoint_choices, checkpoint_entries, guarded, note, user_error
from .lecture_plots import clear_plots_on

NOTE = ("**What am I looking at?** One number deep inside the network depends only on a patch of the input: its "
        "*receptive field*. Pick a layer and a position in that layer's grid; the red box is the patch that number can "
        "see. The second picture shows the centre unit's patch for every convolution and pooling layer (yellow = "
        "shallow, red = deep): the patches grow with depth, which is how later layers see whole objects. The table "
        "compares two architectures at the same relative depth.")
KINDS = ("Conv2d", "MaxPool2d", "AvgPool2d")
DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Geometry:
    """An architecture fed a dataset's images: input shape and its conv/pool layers with their fields."""

    arch: str
    shape: tuple[int, int, int]
    rows: tuple[LayerRow, ...]
    depth_boxes: tuple[FieldBox, ...]

    def row(self, layer: str) -> LayerRow:
        for r in self.rows:
            if r.name == layer:
                return r
        raise user_error(f"{self.arch} has no conv or pooling layer called {layer!r}.")


def input_shape(arch: str, dataset: str) -> tuple[int, int, int]:
    """(C, S, S) the model is fed: ImageNet models their published 3×224, others the dataset's channels and size."""
    if arch not in list_models():
        raise user_error(f"unknown architecture {arch!r}; choose one of: {', '.join(list_models())}")
    if dataset not in web_datasets():
        raise user_error(f"unknown dataset {dataset!r}; choose one of: {', '.join(web_datasets())}")
    if get_model_info(arch).imagenet:
        return 3, 224, 224
    d = get_dataset_info(dataset)
    size = model_input_size(arch, d.size)
    return d.channels, size, size


@functools.lru_cache(maxsize=16)
def geometry(arch: str, dataset: str) -> Geometry:
    """Receptive fields of every conv/pool layer of `arch` on `dataset`'s input shape (cached per pair)."""
    shape = input_shape(arch, dataset)
    model = get_model(arch, shape[0], get_dataset_info(dataset).num_classes, shape[1]).eval()
    rows = tuple(r for r in spatial_rows(model, shape) if r.type in KINDS)
    return Geometry(arch, shape, rows, tuple(fields_by_depth(model, shape)))


@functools.lru_cache(maxsize=8)
def example_picture(dataset: str, channels: int, side: int) -> PIL.Image.Image:
    """Test image 0 of `dataset` (a generated shapes image when it is not on disk), at the model's input size."""
    try:
        img = test_example(dataset, 0).image
    except DatasetUnavailable:
        img = test_example("shapes", 0).image
    img = resize_square(img.convert("RGB"), side)
    return img.convert("L" if channels == 1 else "RGB")


def default_layer(g: Geometry) -> str:
    """A conv layer near the middle: its field is big enough to see and small enough to fit the image."""
    convs = [r.name for r in g.rows if r.type == "Conv2d"] or [r.name for r in g.rows]
    return convs[min(len(convs) - 1, len(convs) // 2)]


def layer_choices(g: Geometry) -> list[tuple[str, str]]:
    return [(f"{r.name} · {r.type} · {r.out_shape[-2]}×{r.out_shape[-1]} · RF {r.rf}", r.name) for r in g.rows]


def layer_menu(g: Geometry, value: str | None) -> tuple[gr.Dropdown, str]:
    """Menu update for `g`'s layers and the layer it selects (`value` when `g` has it, else the default)."""
    choices = layer_choices(g)
    name = value if value in [n for _, n in choices] else default_layer(g)
    return gr.Dropdown(choices=choices, value=name), name


def slider_args(row: LayerRow) -> list[dict]:
    """Keyword arguments of the row and column sliders for a layer's output grid, at its centre unit."""
    return [dict(minimum=0, maximum=max(1, n - 1), value=n // 2, step=1, interactive=n > 1, label=f"{what} (0..{n - 1})")
            for what, n in zip(("Row", "Column"), row.out_shape[-2:], strict=True)]


def sliders(row: LayerRow) -> tuple[gr.Slider, gr.Slider]:
    a, b = slider_args(row)
    return gr.Slider(**a), gr.Slider(**b)


def rf_table(a: Geometry, b: Geometry) -> pd.DataFrame:
    """RF of two architectures at the same relative depth of their conv/pool stacks (0 = first, 1 = last)."""
    rows = []
    for d in DEPTHS:
        row = {"relative depth": d}
        for g in (a, b):
            box = g.depth_boxes[min(len(g.depth_boxes) - 1, round(d * (len(g.depth_boxes) - 1)))]
            side = g.shape[1]
            row[f"{g.arch} layer"] = box.layer
            row[f"{g.arch} RF (px of {side})"] = box.rf
            row[f"{g.arch} RF / input"] = f"{box.rf / side:.0%}"
        rows.append(row)
    return pd.DataFrame(rows)


def rf_curves(a: Geometry, b: Geometry) -> pd.DataFrame:
    """RF as a fraction of the input side against relative depth, one series per architecture."""
    out = []
    for g in (a, b):
        n = max(1, len(g.depth_boxes) - 1)
        out += [{"relative depth": k / n, "RF / input side": box.rf / g.shape[1], "layer": box.layer,
                 "architecture": f"{g.arch} ({g.shape[1]} px)"} for k, box in enumerate(g.depth_boxes)]
    return pd.DataFrame(out, columns=["relative depth", "RF / input side", "layer", "architecture"])


def _caption(g: Geometry, row: LayerRow, box: FieldBox, i: int, j: int) -> str:
    side = g.shape[1]
    text = (f"**{g.arch}**, input {g.shape[0]}×{side}×{side}. Unit ({i}, {j}) of `{row.name}` ({row.type}, output "
            f"{row.out_shape[-2]}×{row.out_shape[-1]}) sees a **{box.rf}×{box.rf} px** patch: rows "
            f"{box.box[1]:g}..{box.box[3]:g}, columns {box.box[0]:g}..{box.box[2]:g}. Neighbouring units are "
            f"{box.jump} px apart (the *jump*), so their patches overlap by {max(0, box.rf - box.jump)} px.")
    if clipped(box, side):
        text += " Part of the patch lies outside the image, in the zero padding: only the inside part is drawn."
    return text


def _unit(arch: str, dataset: str, layer: str | None, row: float | None, col: float | None) -> tuple:
    """(geometry, example picture, zoom, unit image, caption) for unit (row, col) of `layer`."""
    g = geometry(arch, dataset)
    r = g.row(layer or default_layer(g))
    h, w = r.out_shape[-2:]
    i, j = (h // 2 if row is None else int(row)), (w // 2 if col is None else int(col))
    if not (0 <= i < h and 0 <= j < w):
        raise user_error(f"position ({i}, {j}) is outside {r.name}'s {h}×{w} output grid (rows and columns 0..{h - 1}).")
    box = field_box(r, i, j)
    picture = example_picture(dataset, g.shape[0], g.shape[1])
    scale = draw_scale(g.shape[1])
    return g, picture, scale, outline_unit(picture, box, scale), _caption(g, r, box, i, j)


@guarded
def unit_view(arch: str, dataset: str, layer: str | None, row: float | None, col: float | None) -> tuple:
    """Only the chosen unit's field and its caption (what the row/column sliders change)."""
    return _unit(arch, dataset, layer, row, col)[3:]


@guarded
def receptive_field(arch: str, dataset: str, layer: str | None, row: float | None, col: float | None,
                    other: str | None) -> tuple:
    """The chosen unit's field on an example image, the centre fields of every conv/pool layer, and a comparison
    of RF by relative depth with architecture `other`."""
    g, picture, scale, unit, caption = _unit(arch, dataset, layer, row, col)
    growing = draw_fields(picture, list(g.depth_boxes), scale)
    b = geometry(other or arch, dataset)
    return unit, growing, caption, rf_table(g, b), rf_curves(g, b)


@guarded
def choose_layer(arch: str, dataset: str, layer: str | None) -> tuple:
    """Layer menu for an architecture/dataset pair (keeping `layer` if it exists) and row/column sliders at its centre."""
    g = geometry(arch, dataset)
    menu, name = layer_menu(g, layer)
    return (menu, *sliders(g.row(name)))


@guarded
def from_checkpoint(name: str | None, ws: SessionWorkspace) -> tuple[str, str]:
    """Architecture and dataset of a checkpoint (its weights do not change the geometry)."""
    entry = checkpoint_entries(ws).get(str(name))
    if entry is None:
        raise user_error(f"no checkpoint called {name!r}; refresh the page to see the current list")
    if entry.dataset not in web_datasets():
        raise user_error(f"checkpoint {name!r} was trained on {entry.dataset!r}, which this view cannot show")
    return entry.arch, entry.dataset


@dataclass
class ReceptiveTab:
    arch: gr.Dropdown
    dataset: gr.Dropdown
    layer: gr.Dropdown
    unit: gr.Image


def _controls() -> tuple:
    g = geometry("lenet5", "fashion-mnist")  # geometry only (no data): cheap enough to fill the menus at build time
    datasets = [(get_dataset_info(d).title, d) for d in web_datasets()]
    with gr.Row():
        arch = gr.Dropdown(model_choices(), value="lenet5", label="Architecture", scale=2)
        dataset = gr.Dropdown(datasets, value="fashion-mnist", label="Dataset (sets the input shape)", scale=1)
        checkpoint = gr.Dropdown(checkpoint_choices(None), value=None, label="…or take both from a checkpoint",
                                 allow_custom_value=True, info="its weights do not matter here, only its shape")
    layer = gr.Dropdown(layer_choices(g), value=default_layer(g), label="Layer", info="convolution and pooling layers",
                        allow_custom_value=True)  # API callers name layers of other architectures than the menu shows
    row, col = (gr.Slider(**a, elem_id=f"rf-{k}") for a, k in zip(slider_args(g.row(default_layer(g))), ("row", "col"),
                                                                   strict=True))
    return arch, dataset, checkpoint, layer, row, col


def build(shared: Shared, tab: gr.Tab) -> ReceptiveTab:
    """Create the tab's components in the current context (inside `tab`) and wire its events."""
    note(NOTE)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            arch, dataset, checkpoint, layer, row, col = _controls()
            other = gr.Dropdown(model_choices(), value="vgg11", label="Compare with")
        with gr.Column(scale=2):
            caption = gr.Markdown(elem_id="rf-caption")
            with gr.Row():
                unit = gr.Image(label="Receptive field of the chosen unit", format="png", interactive=False,
                                elem_classes=["pixelated"], elem_id="rf-unit")
                growing = gr.Image(label="Growing with depth (centre unit of each conv/pool layer)", format="png",
                                   interactive=False, elem_classes=["pixelated"], elem_id="rf-growing")
    with gr.Row():
        table = gr.Dataframe(label="Receptive field at the same relative depth", interactive=False, wrap=True)
        plot = gr.LinePlot(x="relative depth", y="RF / input side", color="architecture",
                           tooltip=["layer", "RF / input side", "architecture"], label="Receptive field vs depth",
                           x_lim=[0, 1], buttons=["fullscreen", "export"])
    ins, outs = [arch, dataset, layer, row, col, other], [unit, growing, caption, table, plot]
    cheap = dict(concurrency_limit=4, trigger_mode="always_last", show_progress="minimal")
    # The API takes row and column as plain numbers: a slider checks values against the grid it last showed in the
    # caller's session, which belongs to whatever layer that session chose before.
    api_row, api_col = gr.Number(visible=False, precision=0), gr.Number(visible=False, precision=0)
    gr.Button(visible=False).click(receptive_field, [arch, dataset, layer, api_row, api_col, other], outs,
                                   api_name="receptive_field", **cheap)
    gr.on([row.input, col.input], unit_view, ins[:5], [unit, caption], api_visibility="private", **cheap)
    clear_plots_on([tab.select, other.input, arch.input, dataset.input, checkpoint.input], [plot])
    gr.on([tab.select, other.input], receptive_field, ins, outs, api_visibility="private", **cheap)
    menus = gr.on([arch.input, dataset.input, layer.input], choose_layer, [arch, dataset, layer], [layer, row, col],
                  api_visibility="private", **cheap)
    menus.success(receptive_field, ins, outs, api_visibility="private", **cheap)
    tab.select(lambda ws: gr.Dropdown(choices=checkpoint_choices(ws)), shared.workspace, checkpoint,
               api_visibility="private", queue=False)  # this user's own checkpoints too
    checkpoint.input(from_checkpoint, [checkpoint, shared.workspace], [arch, dataset], api_visibility="private",
                     queue=False).success(
        choose_layer, [arch, dataset, layer], [layer, row, col], api_visibility="private", **cheap).success(
        receptive_field, ins, outs, api_visibility="private", **cheap)
    return ReceptiveTab(arch, dataset, layer, unit)
