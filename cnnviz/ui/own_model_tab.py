"""'Your model' tab: upload your own .pt (a cnnviz checkpoint, or a state_dict of a registered architecture) as an entry
only you see, and get torchvision's ImageNet weights onto the server. Layout and wiring only: store.user_models and
store.hub_weights do the work."""
from __future__ import annotations

import gradio as gr

from ..lecture.catalog import dataset_choices, model_choices
from ..store.hub_weights import fetch_weights, hub_entries, hub_names, is_cached, size_mb, weights_file
from ..store.user_models import EXPORT_HINT, import_to_workspace
from .common import SessionWorkspace, Shared, guarded, note, refreshed_dropdown, user_error
from .inputs import SafeNumber

NOTE = ("**Bring your own model.** Upload a `.pt` file: a cnnviz checkpoint, or the `state_dict` of one of the "
        "architectures below (`torch.save(model.state_dict(), 'weights.pt')`), with the dataset or class names and the "
        "input size it was trained for. It is checked (size, a safe weights-only read, every layer's shape) and becomes "
        "*your* entry in every checkpoint menu: nobody else on this server sees it. TorchScript files and pickled whole "
        "models are refused, because loading them could run code. " + EXPORT_HINT + " Uploads are capped by the "
        "server's `--max-upload-mb` (10 MB unless raised): a full-size ImageNet network (45-530 MB) is imported on the "
        "server with `python -m cnnviz import FILE --arch NAME` instead.")
NO_DATASET = ""
IMAGENET = "imagenet"


def _dataset_menu() -> list[tuple[str, str]]:
    return [("(none: give class names)", NO_DATASET), ("ImageNet-1k (1000 classes; ImageNet networks)", IMAGENET),
            *dataset_choices()]


def weights_table() -> str:
    """Markdown: each ImageNet network, whether its weights are here, and the file and folder they go in."""
    rows = [f"| `{e.name}` | {e.note} | `{weights_file(e.name).name}` ({size_mb(e.name):.0f} MB) |" for e in hub_entries()]
    folder = weights_file(hub_names()[0]).parent
    return ("| network | weights | file |\n|---|---|---|\n" + "\n".join(rows) +
            f"\n\nFolder: `{folder}` (the torch hub cache; `TORCH_HOME` moves it). Offline, copy the files there or run "
            "`python -m cnnviz fetch-weights NAME` on a machine with a network.")


class OwnModelTab:
    """Components and handlers of the Your model tab."""

    def __init__(self, shared: Shared):
        self.shared = shared
        note(NOTE)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=360):
                self.file = gr.File(label="Your .pt file", file_types=[".pt", ".pth"], type="filepath",
                                    elem_id="own-model-file")
                self.arch = gr.Dropdown(model_choices(), value=None, label="Architecture (for a state_dict)",
                                        elem_id="own-model-arch")
                self.dataset = gr.Dropdown(_dataset_menu(), value=NO_DATASET, label="Dataset it was trained on",
                                           info="sets the classes, grey or colour input and the normalisation")
                self.classes = gr.Textbox(label="…or its class names, comma-separated in output order", max_lines=3)
                # 0, not empty: the browser shows an empty Number as 0 and sends 0
                self.input_size = SafeNumber(0, label="Input size in px (0: the architecture's or dataset's own)",
                                             minimum=0, maximum=512, precision=0)
                self.name = gr.Textbox(label="Name in the menus (empty: the file name)", max_lines=1)
                self.go = gr.Button("Import", variant="primary")
                self.status = gr.Markdown("", elem_id="own-model-status")
            with gr.Column(scale=1, min_width=320):
                gr.Markdown("### Pretrained ImageNet networks")
                self.table = gr.Markdown(weights_table(), elem_id="imagenet-weights")
                self.network = gr.Dropdown(hub_names(), value=hub_names()[0], label="Network")
                self.fetch = gr.Button("Download its weights to this server")
        self._wire()

    def _wire(self) -> None:
        menus = [self.shared.predict_checkpoint, self.shared.explain_checkpoint]
        self.go.click(self.import_model, inputs_kwargs={
            "file": self.file, "arch": self.arch, "dataset": self.dataset, "classes": self.classes,
            "input_size": self.input_size, "name": self.name, "ws": self.shared.workspace},
            outputs=[self.status, *menus], api_name="import_model", concurrency_limit=2)
        self.fetch.click(self.fetch_weights, inputs_kwargs={"network": self.network, "ws": self.shared.workspace},
                         outputs=[self.table, *menus], api_name="fetch_weights", concurrency_id="fetch_weights",
                         concurrency_limit=1)

    @guarded
    def import_model(self, *, file: str | None, arch: str | None, dataset: str | None, classes: str | None,
                     input_size: float | None, name: str | None, ws: SessionWorkspace) -> dict:
        """Check and save an uploaded model as this user's own entry; select it in Predict and Explain."""
        if not file:
            raise user_error("Choose a .pt file first.", title="No file")
        names = [c for c in (classes or "").split(",") if c.strip()]
        done = import_to_workspace(file, ws.workspace, (name or "").strip() or None, arch=arch or None,
                                   dataset=dataset or None, class_names=names or None,
                                   input_size=int(input_size) if input_size else None)
        text = f"Imported **{done.summary}**. It is selected in Predict and Explain, and only you see it."
        return {self.status: text, **{m: refreshed_dropdown(ws, done.name) for m in
                                      (self.shared.predict_checkpoint, self.shared.explain_checkpoint)}}

    @guarded
    def fetch_weights(self, *, network: str, ws: SessionWorkspace) -> dict:
        """Download one network's weights into the hub cache (a progress note while it runs), then list it as cached."""
        if network not in hub_names():
            raise user_error(f"Choose one of: {', '.join(hub_names())}.", title="No such network")
        if not is_cached(network):
            gr.Info(f"Downloading {size_mb(network):.0f} MB of {network} weights; this can take a minute.")
            fetch_weights(network, progress=False)
        gr.Info(f"{network} is ready: choose it in any checkpoint menu.")
        return {self.table: weights_table(), **{m: refreshed_dropdown(ws, network) for m in
                                                (self.shared.predict_checkpoint, self.shared.explain_checkpoint)}}


def build(shared: Shared) -> OwnModelTab:
    """Create the Your model tab in the current Blocks context and wire its events."""
    return OwnModelTab(shared)
