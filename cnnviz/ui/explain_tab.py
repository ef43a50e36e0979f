"""Explain tab: one layer's feature maps and filters, Grad-CAM with an opacity slider, other attributions side by side."""
from __future__ import annotations

import gradio as gr
import PIL.Image

from ..explain.attributions import METHODS, TITLES
from ..explain.choices import PREDICTED, layer_choices, resolve_target, target_choices
from ..explain.layers import ExplainError, default_layer
from ..explain.pipeline import explain_image, prepare
from ..render.explain_pictures import cam_overlay, feature_map_view, filter_view, methods_picture
from ..render.pictures import overlay
from ..store.checkpoints import LoadedModel
from .common import SessionWorkspace, Shared, guarded, load_model, note
from .inputs import SafeSlider

NOTE = ("**What am I looking at?** Inside the network for one image. *Feature maps*: what each channel of the chosen "
        "layer responds to (bright = strong). *Filters*: the learned kernels of that layer's convolution. *Grad-CAM*: "
        "where in the image the chosen layer found evidence for the target class (red = most). The attribution methods "
        "answer the same question in other ways; when they agree, trust them more.")
EMPTY = "Choose an image in the Predict tab (or upload one here), then press Explain."
OTHER_METHODS = [m for m in METHODS if m != "gradcam"]
SORTS = [("strongest mean first", "mean"), ("strongest peak first", "max"), ("most active first", "frac_active"),
         ("channel order", "none")]


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
                self.opacity = SafeSlider(0, 1, value=0.5, step=0.05, label="Heat-map opacity")
                gr.HTML("<div class='cam-legend'><span>low</span><div class='jet-bar'></div><span>high</span></div>")
            with gr.Column(scale=2, min_width=320):
                with gr.Row():
                    self.sort = gr.Dropdown(SORTS, value="mean", label="Sort channels")
                    self.max_maps = SafeSlider(4, 128, value=64, step=4, label="Channels shown")
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
        # The API's parameter order is this dict's order (gradio_client callers pass them positionally too).
        ins = {"checkpoint": self.checkpoint, "image": self.image, "layer": self.layer, "target": self.target,
               "opacity": self.opacity, "methods": self.methods, "sort": self.sort, "max_maps": self.max_maps, "ws": ws}
        outs = [self.summary, self.cam, self.fmaps, self.fm_caption, self.filters, self.filters_caption, self.methods_img,
                self.layer, self.target, self.cam_state]
        common = dict(concurrency_id="explain", concurrency_limit=2, trigger_mode="always_last")
        gr.on([self.go.click, self.tab.select, self.layer.input, self.target.input, self.image.upload, self.methods.input],
              self.explain, inputs_kwargs=ins, outputs=outs, api_name="explain", **common)
        gr.on([self.checkpoint.input], self.explain_new_model, inputs_kwargs=ins, outputs=outs,
              api_visibility="private", **common)
        self.checkpoint.change(self.layers, inputs_kwargs={"checkpoint": self.checkpoint, "ws": ws},
                               outputs=[self.layer, self.target], api_name="layers", api_visibility="undocumented",
                               **common)
        gr.on([self.sort.input, self.max_maps.release], self.feature_maps,
              inputs_kwargs={k: ins[k] for k in ("checkpoint", "image", "layer", "sort", "max_maps", "ws")},
              outputs=[self.fmaps, self.fm_caption], api_name="feature_maps", **common)
        gr.on([self.opacity.release], self.reblend, inputs_kwargs={"opacity": self.opacity, "cam_state": self.cam_state},
              outputs=self.cam, api_name="overlay", api_visibility="undocumented", concurrency_limit=4)
        self.checkpoint.input(None, self.checkpoint, self.shared.predict_checkpoint, js="(x) => x",
                              api_visibility="private", queue=False)

    def menus(self, loaded: LoadedModel, layer: str | None, target: str) -> dict:
        """Layer and target menu updates for a model, with the given selections."""
        layer = layer or default_layer(loaded.model, loaded.meta.arch)
        return {self.layer: gr.Dropdown(choices=layer_choices(loaded), value=layer),
                self.target: gr.Dropdown(choices=target_choices(loaded.meta.class_names), value=target)}

    @guarded
    def layers(self, *, checkpoint: str, ws: SessionWorkspace) -> dict:
        """Layer and target menus for a checkpoint (default: the architecture's Grad-CAM layer, the predicted class)."""
        return self.menus(load_model(checkpoint, ws), None, PREDICTED)

    @guarded
    def explain(self, *, checkpoint: str, image: PIL.Image.Image | None, layer: str | None, target: str | None,
                opacity: float, methods: list[str] | None, sort: str | None, max_maps: float | None,
                ws: SessionWorkspace) -> dict:
        """Grad-CAM overlay, feature maps, filters and the chosen attribution methods for one image and layer."""
        loaded = load_model(checkpoint, ws)
        layer = layer or default_layer(loaded.model, loaded.meta.arch)
        t = resolve_target(target, loaded.meta.class_names)  # a bad target is refused even before an image is given
        menus = self.menus(loaded, layer, PREDICTED if t is None else str(t))
        if image is None:
            return {self.summary: EMPTY, self.cam: None, self.fmaps: None, self.fm_caption: "", self.filters: None,
                    self.filters_caption: "", self.methods_img: None, **menus, self.cam_state: None}
        exp = explain_image(loaded, image, layer, t, methods or ())
        fm, fm_caption = feature_map_view(loaded.model, exp.x, layer, sort, max_maps)
        flt, flt_caption = filter_view(loaded.model, layer)
        return {self.summary: exp.markdown, self.cam: cam_overlay(exp, opacity), self.fmaps: fm,
                self.fm_caption: fm_caption, self.filters: flt, self.filters_caption: flt_caption,
                self.methods_img: methods_picture(exp, opacity), **menus,
                self.cam_state: (exp.view, exp.cam.upsampled)}

    def explain_new_model(self, **inputs: object) -> dict:
        """A different checkpoint: its default layer and the predicted class, whatever the old menus said."""
        return self.explain(**{**inputs, "layer": None, "target": None})

    @guarded
    def feature_maps(self, *, checkpoint: str, image: PIL.Image.Image | None, layer: str | None, sort: str | None,
                     max_maps: float | None, ws: SessionWorkspace) -> dict:
        """Every channel of one layer's output as a grid (sorted by a statistic), and a caption."""
        if image is None:
            return {self.fmaps: None, self.fm_caption: EMPTY}
        loaded = load_model(checkpoint, ws)
        if not layer:
            raise ExplainError("choose a layer first")
        x, _ = prepare(image, loaded.meta.spec)
        fm, caption = feature_map_view(loaded.model, x, layer, sort, max_maps)
        return {self.fmaps: fm, self.fm_caption: caption}

    def reblend(self, *, opacity: float, cam_state: tuple | None) -> dict:
        """Re-blend the last Grad-CAM at a new opacity (no model call)."""
        if cam_state is None:
            return {self.cam: gr.skip()}  # nothing explained yet in this session: leave the picture alone
        view, heat = cam_state
        return {self.cam: overlay(view, heat, float(opacity))}


def build(shared: Shared, tab: gr.Tab) -> ExplainTab:
    """Create the Explain tab in the current Blocks context (inside `tab`) and wire its events."""
    return ExplainTab(shared, tab)
