"""Explain tab: one layer's feature maps and filters, Grad-CAM with an opacity slider, other attributions side by side."""
from __future__ import annotations

import warnings

import gradio as gr
import PIL.Image

from ..explain.attributions import METHODS, TITLES, attribute_all
from ..explain.gradcam import CamResult, grad_cam
from ..explain.layers import ExplainError, default_layer
from ..explain.targets import parse_target
from ..images import model_view, to_model_input
from ..render.figures import figure_to_image, methods_figure
from ..render.pictures import overlay
from ..store.checkpoints import LoadedModel
from .common import SessionWorkspace, Shared, guarded, load_model, note
from .explain_layers import filters_view, fm_view, layer_choices

NOTE = ("**What am I looking at?** Inside the network for one image. *Feature maps*: what each channel of the chosen "
        "layer responds to (bright = strong). *Filters*: the learned kernels of that layer's convolution. *Grad-CAM*: "
        "where in the image the chosen layer found evidence for the target class (red = most). The attribution methods "
        "answer the same question in other ways; when they agree, trust them more.")
EMPTY = "Choose an image in the Predict tab (or upload one here), then press Explain."
OTHER_METHODS = [m for m in METHODS if m != "gradcam"]
SORTS = [("strongest mean first", "mean"), ("strongest peak first", "max"), ("most active first", "frac_active"),
         ("channel order", "none")]
PREDICTED = "predicted"


def target_choices(class_names: tuple[str, ...]) -> list[tuple[str, str]]:
    """'the predicted class', then every class as 'index: name'."""
    return [("the predicted class", PREDICTED)] + [(f"{i}: {n}", str(i)) for i, n in enumerate(class_names)]


def menus(loaded: LoadedModel, layer: str | None, target: str) -> tuple[gr.Dropdown, gr.Dropdown]:
    """Layer and target dropdown updates for a model, with the given selections."""
    layer = layer or default_layer(loaded.model, loaded.meta.arch)
    return (gr.Dropdown(choices=layer_choices(loaded), value=layer),
            gr.Dropdown(choices=target_choices(loaded.meta.class_names), value=target))


def cam_summary(cam: CamResult, layer: str, names: tuple[str, ...]) -> str:
    """What was predicted, what is explained, and any warning (e.g. a 1x1 layer)."""
    pred = cam.predicted
    text = (f"Predicted **{names[pred]}** ({cam.probs[pred]:.1%}); explaining **{names[cam.target]}** at layer "
            f"`{layer}` (Grad-CAM resolution {cam.cam.shape[0]}×{cam.cam.shape[1]}).")
    return text + "".join(f"\n\n⚠️ {w}" for w in cam.warnings)


class ExplainTab:
    """Components and handlers of the Explain tab."""

    def __init__(self, shared: Shared, tab: gr.Tab):
        self.shared, self.tab = shared, tab
        note(NOTE)
        self.cam_state = gr.State(None)  # (model view, heat map) of the last Grad-CAM, for re-blending on the slider
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                self._inputs()
            with gr.Column(scale=2):
                self._outputs()
        self._wire()

    def _inputs(self) -> None:
        self.checkpoint = self.shared.explain_checkpoint
        self.checkpoint.render()
        self.image = self.shared.explain_image
        self.image.render()
        self.layer = gr.Dropdown(label="Layer", allow_custom_value=True, info="convolutions, activations, pooling, blocks")
        self.target = gr.Dropdown([("the predicted class", PREDICTED)], value=PREDICTED, label="Target class",
                                  allow_custom_value=True)
        self.methods = gr.CheckboxGroup([(TITLES[m], m) for m in OTHER_METHODS], value=OTHER_METHODS,
                                        label="Attribution methods to compare")
        self.go = gr.Button("Explain", variant="primary", elem_id="explain-go")

    def _outputs(self) -> None:
        self.summary = gr.Markdown(EMPTY, label="Summary", elem_id="explain-summary")
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                self.cam = gr.Image(label="Grad-CAM overlay", format="png", interactive=False, height=320,
                                    elem_classes=["pixelated"], elem_id="explain-cam")
                self.opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Heat-map opacity")
                gr.HTML("<div class='cam-legend'><span>low</span><div class='jet-bar'></div><span>high</span></div>")
            with gr.Column(scale=2, min_width=320):
                with gr.Row():
                    self.sort = gr.Dropdown(SORTS, value="mean", label="Sort channels")
                    self.max_maps = gr.Slider(4, 128, value=64, step=4, label="Channels shown")
                self.fmaps = gr.Image(label="Feature maps", format="png", interactive=False, elem_classes=["pixelated"],
                                      elem_id="explain-fmaps")
                self.fm_caption = gr.Markdown(label="About the feature maps")
        self.methods_img = gr.Image(label="Attribution methods side by side", format="png", interactive=False,
                                    elem_id="explain-methods")
        self.filters = gr.Image(label="Filters", format="png", interactive=False, elem_classes=["pixelated"],
                                height=260, elem_id="explain-filters")
        self.filters_caption = gr.Markdown(label="About the filters")

    def _wire(self) -> None:
        ws = self.shared.workspace
        ins = [self.checkpoint, self.image, self.layer, self.target, self.opacity, self.methods, self.sort, self.max_maps,
               ws]
        outs = [self.summary, self.cam, self.fmaps, self.fm_caption, self.filters, self.filters_caption, self.methods_img,
                self.layer, self.target, self.cam_state]
        common = dict(concurrency_id="explain", concurrency_limit=2, trigger_mode="always_last")
        gr.on([self.go.click, self.tab.select, self.layer.input, self.target.input, self.image.upload, self.methods.input],
              self.explain, ins, outs, api_name="explain", **common)
        gr.on([self.checkpoint.input], self.explain_new_model, ins, outs, api_visibility="private", **common)
        self.checkpoint.change(self.layers, [self.checkpoint, ws], [self.layer, self.target], api_name="layers",
                               api_visibility="undocumented", **common)
        gr.on([self.sort.input, self.max_maps.release], self.feature_maps,
              [self.checkpoint, self.image, self.layer, self.sort, self.max_maps, ws], [self.fmaps, self.fm_caption],
              api_name="feature_maps", **common)
        gr.on([self.opacity.release], self.reblend, [self.opacity, self.cam_state], self.cam, api_name="overlay",
              api_visibility="undocumented", concurrency_limit=4)
        self.checkpoint.input(None, self.checkpoint, self.shared.predict_checkpoint, js="(x) => x",
                              api_visibility="private", queue=False)

    @guarded
    def layers(self, checkpoint: str, ws: SessionWorkspace) -> tuple[gr.Dropdown, gr.Dropdown]:
        """Layer and target menus for a checkpoint (default: the architecture's Grad-CAM layer, the predicted class)."""
        return menus(load_model(checkpoint, ws), None, PREDICTED)

    @guarded
    def explain(self, checkpoint, image: PIL.Image.Image | None, layer, target, opacity, methods, sort, max_maps,
                ws: SessionWorkspace):
        """Grad-CAM overlay, feature maps, filters and the chosen attribution methods for one image and layer."""
        loaded = load_model(checkpoint, ws)
        meta = loaded.meta
        layer = layer or default_layer(loaded.model, meta.arch)
        t = None if target in (None, "", PREDICTED) else parse_target(str(target), meta.class_names)
        layer_menu, target_menu = menus(loaded, layer, PREDICTED if t is None else str(t))
        if image is None:
            return EMPTY, None, None, "", None, "", None, layer_menu, target_menu, None
        x = to_model_input(image, meta.spec)
        view = model_view(x, meta.spec)
        with warnings.catch_warnings():  # notes such as "this layer is 1x1" are shown in the summary instead
            warnings.simplefilter("ignore")
            cam = grad_cam(loaded.model, x, layer, t)
            results = attribute_all(loaded.model, x, cam.target, layer, methods or [])
        fm, fm_caption = fm_view(loaded.model, x, layer, sort, max_maps)
        flt, flt_caption = filters_view(loaded.model, layer)
        fig = figure_to_image(methods_figure(view, results, meta.class_names, alpha=float(opacity)), dpi=100) \
            if results else None
        return (cam_summary(cam, layer, meta.class_names), overlay(view, cam.upsampled, float(opacity)), fm, fm_caption,
                flt, flt_caption, fig, layer_menu, target_menu, (view, cam.upsampled))

    def explain_new_model(self, checkpoint, image, layer, target, opacity, methods, sort, max_maps, ws):
        """A different checkpoint: its default layer and the predicted class, whatever the old menus said."""
        return self.explain(checkpoint, image, None, None, opacity, methods, sort, max_maps, ws)

    @guarded
    def feature_maps(self, checkpoint, image: PIL.Image.Image | None, layer, sort, max_maps, ws: SessionWorkspace):
        """Every channel of one layer's output as a grid (sorted by a statistic), and a caption."""
        if image is None:
            return None, EMPTY
        loaded = load_model(checkpoint, ws)
        if not layer:
            raise ExplainError("choose a layer first")
        return fm_view(loaded.model, to_model_input(image, loaded.meta.spec), layer, sort, max_maps)

    def reblend(self, opacity: float, cam_state) -> PIL.Image.Image | None:
        """Re-blend the last Grad-CAM at a new opacity (no model call)."""
        if cam_state is None:
            return gr.skip()
        view, heat = cam_state
        return overlay(view, heat, float(opacity))


def build(shared: Shared, tab: gr.Tab) -> ExplainTab:
    """Create the Explain tab in the current Blocks context (inside `tab`) and wire its events."""
    return ExplainTab(shared, tab)
