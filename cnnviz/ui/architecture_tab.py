"""Architecture tab: a model on a dataset's input shape, as a per-layer table, totals and a diagram."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from ..data import get_dataset_info
from ..lecture.summary import summarize
from ..models import get_model, get_model_info, list_models, model_input_size
from ..render.diagram import layer_diagram
from .common import Shared, guarded, note

NOTE = ("**What am I looking at?** Every layer of the network, in order, for one input image. *Output* is the shape of "
        "what the layer hands on (channels × height × width), *parameters* the numbers training adjusts, *FLOPs* the "
        "arithmetic for one image (multiply and add counted separately), and *RF* the receptive field: how many input "
        "pixels one output value can see.")
TABLE_COLUMNS = ["layer", "type", "output", "parameters", "FLOPs", "RF (px)", "jump"]


@dataclass
class ArchHandles:
    model: gr.Dropdown
    dataset: gr.Dropdown
    header: gr.Markdown
    totals: gr.HTML
    diagram: gr.HTML
    table: gr.Dataframe


def web_datasets() -> list[str]:
    """Datasets the web UI offers ('folder' needs a server path, so it stays a CLI feature)."""
    from ..data import list_datasets

    return [d for d in list_datasets() if d != "folder"]


def human(n: float) -> str:
    """12,345 -> '12.3 k'; 4.2e9 -> '4.20 G'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f}"


def _input_spec(arch: str, dataset: str) -> tuple[int, int, int, str]:
    """(channels, side, classes, note) the model is built for."""
    info = get_model_info(arch)
    if info.imagenet:  # torchvision's ImageNet models are shown as published
        return 3, 224, 1000, "ImageNet input (3×224×224, 1000 classes); the dataset choice does not apply"
    d = get_dataset_info(dataset)
    size = model_input_size(arch, d.size)
    resized = f", resized from {d.size} px" if size != d.size else ""
    return d.channels, size, d.num_classes, f"{d.title}: {d.channels}×{size}×{size}{resized}, {d.num_classes} classes"


def _totals_html(total_params: int, total_flops: int, convs: int, fcs: int, rf: int | None) -> str:
    cells = [("parameters", f"{total_params:,}", f"{total_params * 4 / 1e6:.2f} MB as float32"),
             ("FLOPs per image", human(total_flops), f"{total_flops:,}"),
             ("layers with weights", f"{convs + fcs}", f"{convs} conv, {fcs} fully connected"),
             ("largest receptive field", f"{rf} px" if rf else "–", "of the last conv/pool layer")]
    inner = "".join(f"<div class='total'><div class='total-value'>{v}</div><div class='total-label'>{k}</div>"
                    f"<div class='total-sub'>{s}</div></div>" for k, v, s in cells)
    return f"<div class='totals'>{inner}</div>"


@functools.lru_cache(maxsize=16)
def architecture_view(arch: str, dataset: str) -> tuple[str, str, str, pd.DataFrame]:
    """(header markdown, totals HTML, diagram HTML, table) for `arch` fed `dataset`'s images; cached per pair."""
    info = get_model_info(arch)
    channels, size, classes, shape_note = _input_spec(arch, dataset)
    model = get_model(arch, channels, classes, size)
    s = summarize(model, (channels, size, size))
    table = pd.DataFrame([[r.name, r.type, "×".join(map(str, r.out_shape[1:])), f"{r.params:,}", human(r.flops),
                           r.rf if r.rf is not None else "", r.jump if r.jump is not None else ""] for r in s.rows],
                         columns=TABLE_COLUMNS)
    convs = sum(r.type == "Conv2d" for r in s.rows)
    fcs = sum(r.type == "Linear" for r in s.rows)
    rf = max((r.rf for r in s.rows if r.rf is not None), default=None)
    header = (f"### {info.title} ({info.year})\n*{info.paper}*\n\n{info.description}\n\n**Input:** {shape_note}")
    return header, _totals_html(s.total_params, s.total_flops, convs, fcs, rf), layer_diagram(model, s), table


@guarded
def show_architecture(arch: str, dataset: str) -> tuple[str, str, str, pd.DataFrame]:
    """Describe `arch` on `dataset`: header, totals, diagram and per-layer table."""
    if arch not in list_models():
        raise KeyError(f"unknown model {arch!r}; choose one of: {', '.join(list_models())}")
    if dataset not in web_datasets():
        raise KeyError(f"unknown dataset {dataset!r}; choose one of: {', '.join(web_datasets())}")
    return architecture_view(arch, dataset)


def model_choices() -> list[tuple[str, str]]:
    """(title [year], name) for every registered model."""
    return [(f"{get_model_info(m).title} [{get_model_info(m).year}]", m) for m in list_models()]


def build(shared: Shared) -> ArchHandles:
    """Create the tab's components in the current Blocks context and wire its events."""
    note(NOTE)
    with gr.Row():
        model = gr.Dropdown(model_choices(), value="lenet5", label="Model", scale=2)
        dataset = gr.Dropdown([(get_dataset_info(d).title, d) for d in web_datasets()], value="fashion-mnist",
                              label="Dataset (sets the input shape)", scale=1)
    first = architecture_view("lenet5", "fashion-mnist")  # filled in at build time: no extra request on page load
    header = gr.Markdown(first[0], label="Description")
    totals = gr.HTML(first[1], label="Totals")
    diagram = gr.HTML(first[2], label="Layer stack")
    table = gr.Dataframe(first[3], headers=TABLE_COLUMNS, label="Per-layer table", interactive=False, wrap=True,
                         max_height=520, elem_classes=["layer-table"])
    outputs = [header, totals, diagram, table]
    gr.on([model.change, dataset.change], show_architecture, [model, dataset], outputs, api_name="architecture",
          concurrency_limit=2)
    return ArchHandles(model, dataset, header, totals, diagram, table)

