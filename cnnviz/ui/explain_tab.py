"""Explain tab: one layer's feature maps and filters, Grad-CAM with an opacity slider, other attributions on request.

Responsiveness (issue 16): a click answers with Grad-CAM and the feature maps, in one plain answer (not a stream:
gradio_client fetches a streamed answer's pictures twice, once per message). What the student asked for besides comes
in a chained second step: the ticked attribution methods (Occlusion and Integrated Gradients are the slow ones) and,
only while their panel is open, the filters. Every result goes through one bounded cache (cnnviz.explain.cache), so a
room full of students explaining the same example costs one model call, and opening the tab again repeats nothing.
"""
from __future__ import annotations

import logging

import gradio as gr
import PIL.Image

from ..explain.attributions import METHODS, TITLES
from ..explain.cache import CachedExplainer, CachedInput
from ..explain.choices import PREDICTED, layer_choices, resolve_target, target_choices
from ..explain.layers import default_layer
from ..explain.pipeline import Explanation
from ..render.explain_pictures import cached_feature_map_view, cached_filter_view, cached_methods_picture, explain_pictures
from ..render.pictures import overlay
from ..store.checkpoints import LoadedModel
from .common import SessionWorkspace, Shared, guarded, load_model, note
from .inputs import SafeSlider

log = logging.getLogger("cnnviz.ui")
NOTE = ("**What am I looking at?** Inside the network for one image. *Feature maps*: what each channel of the chosen "
        "layer responds to (bright = strong). *Filters*: the learned kernels of that layer's convolution. *Grad-CAM*: "
        "where in the image the chosen layer found evidence for the target class (red = most). The attribution methods "
        "answer the same question in other ways; when they agree, trust them more.")
EMPTY = "Choose an image in the Predict tab (or upload one here), then press Explain."
OTHER_METHODS = [m for m in METHODS if m != "gradcam"]
SORTS = [("strongest mean first", "mean"), ("strongest peak first", "max"), ("most active first", "frac_active"),
         ("channel order", "none")]
DEFAULTS = dict(opacity=0.5, sort="mean", max_maps=64)


class ExplainTab:
    """Components and handlers of the Explain tab."""

    def __init__(self, shared: Shared, tab: gr.Tab):
        self.shared, self.tab = shared, tab
        self.explainer = CachedExplainer()  # this app's result cache, shared by every session
        note(NOTE)
        first = self._first_open()  # the tab opens with its image already explained (no empty panels, no request)
        self.cam_state = gr.State(first.get("cam_state"))  # (model view, heat map) of the last Grad-CAM
        self.shown = gr.State(first.get("shown"))  # what the panels show: opening the tab again repeats nothing
        self.filters_shown = gr.State(None)  # None: the filters panel is closed; else the (checkpoint, layer) it shows
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                self._inputs(first)
            with gr.Column(scale=2):
                self._outputs(first)
        self._wire()

    def _inputs(self, first: dict) -> None:
        self.checkpoint = self.shared.explain_checkpoint
        self.checkpoint.render()
        self.image = self.shared.explain_image
        self.image.render()
        # No initial value: an API call without a layer gets its architecture's default layer.
        self.layer = gr.Dropdown(first.get("layers", []), value=None, label="Layer", allow_custom_value=True,
                                 info="convolutions, activations, pooling, blocks (empty: the usual Grad-CAM layer)",
                                 elem_id="explain-layer")
        self.target = gr.Dropdown(first.get("targets", [("the predicted class", PREDICTED)]), value=PREDICTED,
                                  label="Target class", allow_custom_value=True)
        self.methods = gr.CheckboxGroup([(TITLES[m], m) for m in OTHER_METHODS], value=[],
                                        label="Compare with other attribution methods",
                                        info="each is computed when you tick it; Occlusion and Integrated Gradients "
                                             "take longest")
        # The API's `methods`: an API call gets them in the same answer; the page never fills this (its ticked
        # methods come as a second step, so a click never waits for them).
        self.api_methods = gr.CheckboxGroup([(TITLES[m], m) for m in OTHER_METHODS], value=[], visible=False,
                                            label="Other attribution methods")
        self.go = gr.Button("Explain", variant="primary", elem_id="explain-go")

    def _outputs(self, first: dict) -> None:
        self.summary = gr.Markdown(first.get("summary", EMPTY), label="Summary", elem_id="explain-summary")
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                self.cam = gr.Image(first.get("cam"), label="Grad-CAM overlay", format="png", interactive=False,
                                    height=320, elem_classes=["pixelated"], elem_id="explain-cam")
                self.opacity = SafeSlider(0, 1, value=DEFAULTS["opacity"], step=0.05, label="Heat-map opacity")
                gr.HTML("<div class='cam-legend'><span>low</span><div class='jet-bar'></div><span>high</span></div>")
            with gr.Column(scale=2, min_width=320):
                with gr.Row():
                    self.sort = gr.Dropdown(SORTS, value=DEFAULTS["sort"], label="Sort channels")
                    self.max_maps = SafeSlider(4, 128, value=DEFAULTS["max_maps"], step=4, label="Channels shown")
                self.fmaps = gr.Image(first.get("fmaps"), label="Feature maps", format="png", interactive=False,
                                      elem_classes=["pixelated"], elem_id="explain-fmaps")
                self.fm_caption = gr.Markdown(first.get("fm_caption"), label="About the feature maps")
        self.methods_img = gr.Image(label="Attribution methods side by side (tick them on the left)", format="png",
                                    interactive=False, elem_id="explain-methods")
        # Closed at first: its picture is made and sent only once the student opens it (and while it stays open).
        with gr.Accordion("Filters: the learned kernels of this layer's convolution", open=False,
                          elem_id="explain-filters-panel") as self.filters_panel:
            self.filters = gr.Image(label="Filters", format="png", interactive=False, elem_classes=["pixelated"],
                                    height=260, elem_id="explain-filters")
            self.filters_caption = gr.Markdown(label="About the filters", elem_id="explain-filters-caption")

    def _wire(self) -> None:
        ws = self.shared.workspace
        # The API's parameter order is this dict's order (gradio_client callers pass them positionally too).
        ins = {"checkpoint": self.checkpoint, "image": self.image, "layer": self.layer, "target": self.target,
               "opacity": self.opacity, "methods": self.api_methods, "sort": self.sort, "max_maps": self.max_maps,
               "ws": ws, "shown": self.shown}
        outs = [self.summary, self.cam, self.fmaps, self.fm_caption, self.methods_img, self.layer, self.target,
                self.cam_state, self.shown]
        common = dict(concurrency_id="explain", concurrency_limit=2, trigger_mode="always_last",
                      show_progress="minimal")  # no overlay and ticking timer on every output: less for the browser to draw
        # The second step: what else the student asked for (ticked methods, the open filters panel), once the first
        # answer is on screen; with neither, it answers at once with nothing.
        more_ins = {**{k: ins[k] for k in ("checkpoint", "image", "layer", "target", "opacity")},
                    "methods": self.methods, "filters_shown": self.filters_shown, "ws": ws}
        more_outs = [self.methods_img, self.filters, self.filters_caption, self.filters_shown]
        more = dict(fn=self.follow_up, inputs_kwargs=more_ins, outputs=more_outs, api_visibility="private",
                    concurrency_id="explain-more", concurrency_limit=2, trigger_mode="always_last", show_progress="minimal")
        gr.on([self.go.click, self.layer.input, self.target.input, self.image.upload], self.explain,
              inputs_kwargs=ins, outputs=outs, api_name="explain", **common).then(**more)
        # Opening the tab explains a newly carried image with Grad-CAM only (cached), and repeats nothing shown already.
        self.tab.select(self.explain_on_open, inputs_kwargs={k: v for k, v in ins.items() if k != "methods"},
                        outputs=outs, api_visibility="private", **common)
        gr.on([self.checkpoint.input], self.explain_new_model, inputs_kwargs=ins, outputs=outs,
              api_visibility="private", **common).then(**more)
        self.methods.input(self.attributions, inputs_kwargs={**{k: ins[k] for k in ("checkpoint", "image", "layer",
                                                                                    "target", "opacity")},
                                                             "methods": self.methods, "ws": ws},
                           outputs=self.methods_img, api_name="attributions", **common)
        self.checkpoint.change(self.layers, inputs_kwargs={"checkpoint": self.checkpoint, "ws": ws},
                               outputs=[self.layer, self.target], api_name="layers", api_visibility="undocumented",
                               **common).then(**{**more, "fn": self.refresh_filters,
                                                 "inputs_kwargs": {k: more_ins[k] for k in ("checkpoint", "layer",
                                                                                            "filters_shown", "ws")},
                                                 "outputs": more_outs[1:]})
        filters_ins = {"checkpoint": self.checkpoint, "layer": self.layer, "ws": ws}
        self.filters_panel.expand(self.show_filters, inputs_kwargs=filters_ins, outputs=more_outs[1:],
                                  api_name="filters", **common)
        self.filters_panel.collapse(lambda: None, outputs=self.filters_shown, api_visibility="private", queue=False)
        gr.on([self.sort.input, self.max_maps.release], self.feature_maps,
              inputs_kwargs={k: ins[k] for k in ("checkpoint", "image", "layer", "sort", "max_maps", "ws")},
              outputs=[self.fmaps, self.fm_caption], api_name="feature_maps", **common)
        gr.on([self.opacity.release], self.reblend, inputs_kwargs={"opacity": self.opacity, "cam_state": self.cam_state},
              outputs=self.cam, api_name="overlay", api_visibility="undocumented", concurrency_limit=4)
        self.checkpoint.input(None, self.checkpoint, self.shared.predict_checkpoint, js="(x) => x",
                              api_visibility="private", queue=False)

    def _first_open(self) -> dict:
        """Grad-CAM and feature maps of the image the tab opens with, under the default checkpoint."""
        name, image = self.shared.explain_checkpoint.value, self.shared.explain_image.value
        path = image.get("path") if isinstance(image, dict) else None
        if not name or not path:
            return {}
        try:
            loaded = load_model(name, self.shared.workspace.value)
            exp, inp = self.explainer.explain(loaded, path)
            pics = explain_pictures(self.explainer, loaded, exp, inp, **DEFAULTS)
        except Exception:  # the page still works without it; a real request shows the error
            log.warning("no first-open explanation with %s", name, exc_info=True)
            return {}
        return {"summary": exp.markdown, "cam": pics.cam, "fmaps": pics.fmaps, "fm_caption": pics.fm_caption,
                "layers": layer_choices(loaded), "targets": target_choices(loaded.meta.class_names),
                "cam_state": (exp.view, exp.cam.upsampled), "shown": self._shown_key(name, inp, exp.layer, None)}

    def menus(self, loaded: LoadedModel, layer: str | None, target: str, same_model: bool = False) -> dict:
        """Layer and target menu updates for a model, with the given selections (only those when the menus already
        list this model's layers and classes: an ImageNet network's 1001 targets are not sent, nor redrawn, per click)."""
        layer = layer or default_layer(loaded.model, loaded.meta.arch)
        if same_model:
            return {self.layer: gr.Dropdown(value=layer), self.target: gr.Dropdown(value=target)}
        return {self.layer: gr.Dropdown(choices=layer_choices(loaded), value=layer),
                self.target: gr.Dropdown(choices=target_choices(loaded.meta.class_names), value=target)}

    @staticmethod
    def _same_model(shown: tuple | None, checkpoint: str, inp: CachedInput) -> bool:
        """The panels' last explanation was made with this very checkpoint (name and file)."""
        return bool(shown) and shown[0] == checkpoint and shown[1][0] == inp.key[0]

    @staticmethod
    def _shown_key(checkpoint: str, inp: CachedInput, layer: str, target: int | None) -> tuple:
        return checkpoint, inp.key, layer, target

    @guarded
    def layers(self, *, checkpoint: str, ws: SessionWorkspace) -> dict:
        """Layer and target menus for a checkpoint (default: the architecture's Grad-CAM layer, the predicted class)."""
        return self.menus(load_model(checkpoint, ws), None, PREDICTED)

    def _first_step(self, checkpoint: str, loaded: LoadedModel, image: PIL.Image.Image, layer: str, t: int | None,
                    opacity: float, sort: str | None, max_maps: float | None,
                    shown: tuple | None) -> tuple[dict, Explanation, CachedInput]:
        """Grad-CAM overlay and feature maps (no other method): what every click answers with at once. `shown`: the
        panels' last explanation (its checkpoint's menus are on screen already)."""
        exp, inp = self.explainer.explain(loaded, image, layer, t)
        pics = explain_pictures(self.explainer, loaded, exp, inp, opacity, sort, max_maps)
        shown = {self.summary: exp.markdown, self.cam: pics.cam, self.fmaps: pics.fmaps, self.fm_caption: pics.fm_caption,
                 **self.menus(loaded, layer, PREDICTED if t is None else str(t), self._same_model(shown, checkpoint, inp)),
                 self.cam_state: (exp.view, exp.cam.upsampled), self.shown: self._shown_key(checkpoint, inp, layer, t)}
        return shown, exp, inp

    def _methods_picture(self, loaded: LoadedModel, image: PIL.Image.Image, layer: str, t: int | None,
                         methods: list[str], opacity: float) -> PIL.Image.Image | None:
        exp, inp = self.explainer.explain(loaded, image, layer, t, [m for m in methods if m in METHODS] or ())
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            self.explainer.explain(loaded, image, layer, t, unknown)  # raises the registry's clear message
        return cached_methods_picture(self.explainer, exp, inp, opacity)

    @guarded
    def explain(self, *, checkpoint: str, image: PIL.Image.Image | None, layer: str | None = None,
                target: str | None = None, opacity: float = 0.5, methods: list[str] | None = None,
                sort: str | None = "mean", max_maps: float | None = 64, ws: SessionWorkspace,
                shown: tuple | None = None) -> dict:
        """Grad-CAM overlay and feature maps for one image and layer, and the other attribution methods side by side
        when any are asked for, in one answer. (The page asks for its ticked methods in a second step.)"""
        loaded = load_model(checkpoint, ws)
        layer = layer or default_layer(loaded.model, loaded.meta.arch)
        t = resolve_target(target, loaded.meta.class_names)  # a bad target is refused even before an image is given
        if image is None:
            return {self.summary: EMPTY, self.cam: None, self.fmaps: None, self.fm_caption: "", self.methods_img: None,
                    **self.menus(loaded, layer, PREDICTED if t is None else str(t)), self.cam_state: None,
                    self.shown: None}
        first, *_ = self._first_step(checkpoint, loaded, image, layer, t, opacity, sort, max_maps, shown)
        methods_img = self._methods_picture(loaded, image, layer, t, list(methods), opacity) if methods else None
        return {**first, self.methods_img: methods_img}

    def explain_new_model(self, **inputs: object) -> dict:
        """A different checkpoint: its default layer and the predicted class, whatever the old menus said."""
        return self.explain(**{**inputs, "layer": None, "target": None})

    @guarded
    def explain_on_open(self, *, checkpoint: str, image: PIL.Image.Image | None, layer: str | None,
                        target: str | None, opacity: float, sort: str | None, max_maps: float | None,
                        shown: tuple | None, ws: SessionWorkspace) -> dict:
        """Opening the tab: nothing to do when the panels already show this image; else its Grad-CAM, no methods."""
        if image is None:
            return gr.skip()
        loaded = load_model(checkpoint, ws)
        layer = layer or default_layer(loaded.model, loaded.meta.arch)
        t = resolve_target(target, loaded.meta.class_names)
        if shown == self._shown_key(checkpoint, self.explainer.input(loaded, image), layer, t):
            return gr.skip()
        first, *_ = self._first_step(checkpoint, loaded, image, layer, t, opacity, sort, max_maps, shown)
        return {**first, self.methods_img: None}

    @guarded
    def show_filters(self, *, checkpoint: str, layer: str | None = None, ws: SessionWorkspace) -> dict:
        """The kernels of the convolution at (or just before) a layer (default: the Grad-CAM layer), and a caption."""
        loaded = load_model(checkpoint, ws)
        layer = layer or default_layer(loaded.model, loaded.meta.arch)
        picture, caption = cached_filter_view(self.explainer, loaded, layer)
        return {self.filters: picture, self.filters_caption: caption, self.filters_shown: (checkpoint, layer)}

    def _filters_update(self, checkpoint: str, layer: str | None, filters_shown: tuple | None,
                        ws: SessionWorkspace) -> dict:
        """While the filters panel is open, the filters of the layer now chosen ({} when closed or unchanged)."""
        if filters_shown is None:
            return {}
        loaded = load_model(checkpoint, ws)
        layer = layer or default_layer(loaded.model, loaded.meta.arch)
        if (checkpoint, layer) == tuple(filters_shown) or layer not in dict(loaded.model.named_modules()):
            return {}  # unchanged; or a layer of the previous model, whose menu update follows with its own
        return self.show_filters(checkpoint=checkpoint, layer=layer, ws=ws)

    @guarded
    def refresh_filters(self, *, checkpoint: str, layer: str | None, filters_shown: tuple | None,
                        ws: SessionWorkspace) -> dict:
        """Another checkpoint's menus: the open panel's filters follow."""
        return self._filters_update(checkpoint, layer, filters_shown, ws) or gr.skip()

    @guarded
    def follow_up(self, *, checkpoint: str, image: PIL.Image.Image | None, layer: str | None, target: str | None,
                  opacity: float, methods: list[str] | None, filters_shown: tuple | None, ws: SessionWorkspace) -> dict:
        """The second step of a click: the ticked methods side by side, and the open panel's filters if the layer
        changed; nothing (and no model work) when neither was asked for."""
        out = self._filters_update(checkpoint, layer, filters_shown, ws)
        if methods and image is not None:
            out.update(self.attributions(checkpoint=checkpoint, image=image, layer=layer, target=target,
                                         opacity=opacity, methods=methods, ws=ws))
        return out or gr.skip()

    @guarded
    def attributions(self, *, checkpoint: str, image: PIL.Image.Image | None, layer: str | None = None,
                     target: str | None = None, opacity: float = 0.5, methods: list[str] | None = None,
                     ws: SessionWorkspace) -> dict:
        """The ticked attribution methods side by side (the Grad-CAM and the input come from the cache)."""
        if image is None:
            return {self.methods_img: None}
        loaded = load_model(checkpoint, ws)
        layer = layer or default_layer(loaded.model, loaded.meta.arch)
        t = resolve_target(target, loaded.meta.class_names)
        return {self.methods_img: self._methods_picture(loaded, image, layer, t, list(methods or []), opacity)}

    @guarded
    def feature_maps(self, *, checkpoint: str, image: PIL.Image.Image | None, layer: str | None = None,
                     sort: str | None = "mean", max_maps: float | None = 64, ws: SessionWorkspace) -> dict:
        """Every channel of one layer's output (default: the architecture's Grad-CAM layer) as a grid, sorted by a
        statistic, and a caption."""
        if image is None:
            return {self.fmaps: None, self.fm_caption: EMPTY}
        loaded = load_model(checkpoint, ws)
        layer = layer or default_layer(loaded.model, loaded.meta.arch)
        inp = self.explainer.input(loaded, image)  # the meta: ImageNet networks get their weights' own transforms
        fm, caption = cached_feature_map_view(self.explainer, loaded, inp, layer, sort, max_maps)
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
