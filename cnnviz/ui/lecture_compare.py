"""Compare tab: two to four checkpoints on the same image — predictions, Grad-CAM, feature maps at comparable depth,
parameters and FLOPs — and their training curves overlaid."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pandas as pd
import PIL.Image

from ..lecture.comparison import ModelComparison, compare
from ..render.lecture_pictures import METRICS, curves_by_model
from ..render.pictures import feature_grid, overlay
from .common import SessionWorkspace, Shared, checkpoint_choices, guarded, load_model, note, user_error
from .lecture_plots import clear_plots_on
from .picker import example_loader, image_picker, random_test_image
from .uploads import SafeImage

NOTE = ("**What am I looking at?** Several trained networks see the *same* image. For each: its top guesses, where it "
        "looked (Grad-CAM, red = most) and its feature maps at the same *relative* depth (slider: 0 = first "
        "convolution, 1 = last), so a small and a deep network can be compared fairly. The table adds the price: "
        "parameters to store and FLOPs to compute one image. The chart overlays how each one learned.")
TABLE_COLUMNS = ["checkpoint", "architecture", "trained on", "prediction", "confidence", "top 3", "parameters",
                 "FLOPs per image", "feature maps from"]
MAX_CHANNELS = 16  # per model: enough to see the character of a layer, small enough to sit side by side


def default_selection(choices: list[tuple[str, str]]) -> list[str]:
    """The first three checkpoints of the menu (the shipped ones)."""
    return [name for _, name in choices[:3]]


def _row(c: ModelComparison, dataset: str) -> list:
    p = c.prediction
    top3 = ", ".join(f"{label} {prob:.0%}" for label, prob in list(zip(p.labels, p.probs, strict=True))[:3])
    return [c.name, c.arch, dataset, p.labels[0], round(float(p.probs[0]), 4), top3, int(c.params), int(c.flops),
            c.maps_layer]


def curves(checkpoints: list[str] | None, metric: str, ws: SessionWorkspace) -> pd.DataFrame:
    """Long-format training curves of the chosen checkpoints (from their saved history), one series each."""
    if metric not in METRICS:
        raise user_error(f"unknown curve {metric!r}; choose one of: {', '.join(METRICS)}")
    return curves_by_model({name: load_model(name, ws).meta.history for name in checkpoints or []}, metric)


def _models(checkpoints: list[str] | None, ws: SessionWorkspace) -> list:
    names = list(dict.fromkeys(checkpoints or []))  # the same checkpoint twice compares nothing
    if not 2 <= len(names) <= 4:
        raise user_error(f"Choose two to four different checkpoints to compare (you chose {len(names)}).")
    return [load_model(n, ws) for n in names]


@guarded
def run_compare(checkpoints: list[str] | None, image: PIL.Image.Image | None, depth: float, metric: str,
                ws: SessionWorkspace) -> tuple:
    """Each checkpoint on the same image: table (prediction, parameters, FLOPs), Grad-CAM and feature-map galleries,
    and the chosen training curve overlaid."""
    models = _models(checkpoints, ws)
    if image is None:
        raise user_error("Choose an image first: upload one, pick an example or press 'Random test image'.")
    depth = float(depth if depth is not None else 0.5)
    if not 0 <= depth <= 1:
        raise user_error("The depth must be between 0 (first convolution) and 1 (last).")
    rows = compare(models, image, depth=depth)
    datasets = [m.meta.dataset for m in models]
    table = pd.DataFrame([_row(c, d) for c, d in zip(rows, datasets, strict=True)], columns=TABLE_COLUMNS)
    cams = [(overlay(c.view, c.cam.upsampled, 0.5), f"{c.name}: {c.prediction.labels[0]} {c.prediction.probs[0]:.0%}")
            for c in rows]
    maps = [(feature_grid(c.maps, max_channels=MAX_CHANNELS, labels=False),
             f"{c.name} · {c.maps_layer} ({c.maps.maps.shape[0]} channels of {c.maps.maps.shape[1]}×"
             f"{c.maps.maps.shape[2]})") for c in rows]
    grey = [c.name for c, m in zip(rows, models, strict=True) if m.meta.in_channels == 1]
    text = (f"Compared {len(rows)} networks at relative depth {depth:.2f}. Each saw the image its own way: resized to "
            f"its input size" + (f", and in grey for {', '.join(grey)}" if grey else "") + ".")
    return table, cams, maps, curves([m.name for m in models], metric, ws), text


@guarded
def compare_curves(checkpoints: list[str] | None, metric: str, ws: SessionWorkspace) -> pd.DataFrame:
    """Only the overlaid training curves (no image needed)."""
    return curves(list(dict.fromkeys(checkpoints or [])), metric, ws)


@guarded
def random_image(checkpoints: list[str] | None, ws: SessionWorkspace) -> tuple[PIL.Image.Image, str]:
    """A random test image from the dataset of the first chosen checkpoint, with its true label."""
    if not checkpoints:
        raise user_error("Choose the checkpoints first: the image comes from the first one's test set.")
    return random_test_image(checkpoints[0], ws)


@dataclass
class CompareTab:
    checkpoints: gr.Dropdown
    image: SafeImage
    table: gr.Dataframe


def _inputs() -> tuple:
    choices = checkpoint_choices(None)
    checkpoints = gr.Dropdown(choices, value=default_selection(choices), multiselect=True, max_choices=4,
                              label="Checkpoints (two to four)", allow_custom_value=True, elem_id="compare-checkpoints")
    picker = image_picker("Image", "compare-image", 260)
    depth = gr.Slider(0, 1, value=0.5, step=0.05, label="Feature-map depth (0 = first conv, 1 = last conv)")
    metric = gr.Radio([(v, k) for k, v in METRICS.items()], value="val_acc", label="Training curve")
    go = gr.Button("Compare", variant="primary", elem_id="compare-go")
    return checkpoints, picker, depth, metric, go


def build(shared: Shared, tab: gr.Tab) -> CompareTab:
    """Create the tab's components in the current context (inside `tab`) and wire its events."""
    note(NOTE)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            checkpoints, picker, depth, metric, go = _inputs()
        with gr.Column(scale=3):
            text = gr.Markdown("Choose checkpoints and an image, then press Compare.")
            table = gr.Dataframe(headers=TABLE_COLUMNS, label="Side by side", interactive=False, wrap=True)
            cams = gr.Gallery(label="Grad-CAM: where each network looked", columns=4, height=300, format="png",
                              object_fit="contain", elem_classes=["pixelated"], elem_id="compare-cams")
            maps = gr.Gallery(label="Feature maps at comparable depth", columns=4, height=320, format="png",
                              object_fit="contain", elem_classes=["pixelated"], elem_id="compare-maps")
            plot = gr.LinePlot(x="epoch", y="value", color="checkpoint", x_title="epoch", y_title="value",
                               label="Training curves", buttons=["fullscreen", "export"], elem_id="compare-curves")
    image, ws = picker.image, shared.workspace
    heavy = dict(concurrency_id="lecture", concurrency_limit=2)
    compare_inputs, compare_outputs = [checkpoints, image, depth, metric, ws], [table, cams, maps, plot, text]
    clear_plots_on([go.click, image.upload, depth.release, metric.input, checkpoints.input, picker.random.click,
                    picker.gallery.click], [plot])
    gr.on([go.click, image.upload, depth.release], run_compare, compare_inputs, compare_outputs, api_name="compare",
          trigger_mode="always_last", **heavy)
    gr.on([metric.input, checkpoints.input], compare_curves, [checkpoints, metric, ws], plot, api_name="compare_curves",
          api_visibility="undocumented", concurrency_limit=4, trigger_mode="always_last")
    picker.random.click(random_image, [checkpoints, ws], [image, picker.truth], api_name="compare_random_image",
                        api_visibility="undocumented", concurrency_limit=4).success(
        run_compare, compare_inputs, compare_outputs, api_visibility="private", **heavy)
    picker.gallery.click(example_loader(picker), picker.gallery, [image, picker.truth], api_visibility="private",
                         concurrency_limit=4).success(run_compare, compare_inputs, compare_outputs,
                                                      api_visibility="private", **heavy)
    tab.select(refresh_menu, [checkpoints, ws], checkpoints, api_visibility="private", queue=False)
    return CompareTab(checkpoints, image, table)


def refresh_menu(current: list[str] | None, ws: SessionWorkspace) -> gr.Dropdown:
    """This session's checkpoints in the menu; the selection keeps the names that still exist."""
    choices = checkpoint_choices(ws)
    names = {n for _, n in choices}
    kept = [n for n in current or [] if n in names]
    return gr.Dropdown(choices=choices, value=kept or default_selection(choices))
