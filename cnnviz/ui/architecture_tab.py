"""Architecture tab: a model on a dataset's input shape, as a per-layer table, totals and a diagram."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from ..lecture.architecture_page import TABLE_COLUMNS, ArchitecturePage, architecture_page
from ..lecture.catalog import check_offered, dataset_choices, model_choices
from .common import Shared, guarded, note

NOTE = ("**What am I looking at?** Every layer of the network, in order, for one input image. *Output* is the shape of "
        "what the layer hands on (channels × height × width), *parameters* the numbers training adjusts, *FLOPs* the "
        "arithmetic for one image (multiply and add counted separately), and *RF* the receptive field: how many input "
        "pixels one output value can see.")
FIRST = ("lenet5", "fashion-mnist")  # what the page opens with


def table_frame(page: ArchitecturePage) -> pd.DataFrame:
    """The per-layer rows as the table component takes them."""
    return pd.DataFrame([list(r) for r in page.rows], columns=list(TABLE_COLUMNS))


class ArchitectureTab:
    """Components and handler of the Architecture tab."""

    def __init__(self) -> None:
        note(NOTE)
        with gr.Row():
            self.model = gr.Dropdown(model_choices(), value=FIRST[0], label="Model", scale=2)
            self.dataset = gr.Dropdown(dataset_choices(), value=FIRST[1], label="Dataset (sets the input shape)",
                                       scale=1)
        first = architecture_page(*FIRST)  # filled in at build time: no extra request on page load
        self.header = gr.Markdown(first.header, label="Description")
        self.totals = gr.HTML(first.totals, label="Totals")
        self.diagram = gr.HTML(first.diagram, label="Layer stack")
        self.table = gr.Dataframe(table_frame(first), headers=list(TABLE_COLUMNS), label="Per-layer table",
                                  interactive=False, wrap=True, max_height=520, elem_classes=["layer-table"])
        gr.on([self.model.change, self.dataset.change], self.show_architecture,
              inputs_kwargs={"arch": self.model, "dataset": self.dataset},
              outputs=[self.header, self.totals, self.diagram, self.table], api_name="architecture",
              concurrency_limit=2)

    @guarded
    def show_architecture(self, *, arch: str, dataset: str) -> dict:
        """Describe `arch` on `dataset`: header, totals, diagram and per-layer table."""
        check_offered(arch, dataset)
        page = architecture_page(arch, dataset)
        return {self.header: page.header, self.totals: page.totals, self.diagram: page.diagram,
                self.table: table_frame(page)}


def build(shared: Shared) -> ArchitectureTab:
    """Create the tab's components in the current Blocks context and wire its events."""
    return ArchitectureTab()


# Other tabs import these from here; they now live in the core (cnnviz.lecture.catalog).
__all__ = ["ArchitectureTab", "build", "table_frame"]
