"""Overview tab: the whole network at a glance for one image (every stage's strongest channels, the logits and the
softmax), a step-through of the stages with an animated GIF for slides, and one unit's arithmetic. Layout and wiring
only: the forward pass, the unit's numbers and the pictures are cnnviz.lecture.forward_pass, .unit_arithmetic and
cnnviz.render.forward_pass_picture."""
from __future__ import annotations

import gradio as gr
import PIL.Image

from ..lecture.forward_pass import overview, write_overview_gif
from ..lecture.unit_arithmetic import default_unit, explain_unit, unit_stages
from ..render.forward_pass_picture import ForwardPassPicture, highlight
from ..store.scratch import ScratchFolder
from .common import SessionWorkspace, Shared, checkpoint_choices, checkpoint_dropdown, guarded, load_model, note, user_error
from .inputs import SafeNumber, SafeSlider
from .picker import image_picker

NOTE = ("**What am I looking at?** One image going through the whole network, left to right: the input, then every "
        "convolution, normalisation, activation and pooling stage (a residual block is one column; its arc is the "
        "shortcut), each showing its strongest channels, then the classifier's logits and the softmax probabilities. "
        "Click any tile (or a logit's bar) to see how that one number was computed: the patch of the image it sees, "
        "the kernel, the products, their sum plus the bias and the activation, with the model's own value beside it.")
EMPTY = "Pick an example, upload an image or take a random test image: the whole forward pass appears here."
CHEAP = dict(concurrency_limit=4, trigger_mode="always_last", show_progress="minimal")
PRIVATE = dict(api_visibility="private", **CHEAP)


class OverviewTab:
    """The tab's components (made in the current context) and its handlers: keyword inputs, {component: value} out."""

    def __init__(self, shared: Shared, tab: gr.Tab) -> None:
        self.gifs = ScratchFolder("cnnviz-overview-gifs-")  # made on the first GIF, not when the app is built
        note(NOTE)
        self.pic_state = gr.State(None)  # the last ForwardPassPicture: step-through and clicks need no model work
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                self.checkpoint = checkpoint_dropdown(elem_id="overview-checkpoint")
                self.picker = image_picker("Image", "overview-image", 220, gallery_id="overview-examples",
                                           elem_classes=("pixelated", "upscale"))
                self.go = gr.Button("Show the forward pass", variant="primary", elem_id="overview-go")
            with gr.Column(scale=4):
                # No label: it would sit over the picture's own title; the caption says what a click does.
                self.picture = gr.Image(label="The whole network for this image", show_label=False, format="png",
                                        interactive=False, buttons=["download", "fullscreen"], elem_id="overview-picture")
                self.caption = gr.Markdown(EMPTY, elem_id="overview-caption")
                with gr.Row():
                    self.step = SafeSlider(0, 1, value=0, step=1, label="Step through the stages", scale=3,
                                           elem_id="overview-step")
                    self.gif_btn = gr.Button("Animated GIF for slides", scale=1)
                self.gif = gr.File(label="Forward pass as an animated GIF", height=90, elem_id="overview-gif")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                self.stage = gr.Dropdown(label="Stage", allow_custom_value=True, elem_id="overview-stage",
                                         info="convolutions, what follows them, pools, blocks, fully connected")
                with gr.Row():
                    self.channel = SafeNumber(0, label="Channel (or unit)", precision=0, minimum=0)
                    self.row = SafeNumber(0, label="Row", precision=0, minimum=0)
                    self.col = SafeNumber(0, label="Column", precision=0, minimum=0)
                self.unit_btn = gr.Button("Show this unit's arithmetic", elem_id="overview-unit-go")
            with gr.Column(scale=4):
                self.unit_picture = gr.Image(label="One unit's arithmetic", show_label=False, format="png",
                                             interactive=False, buttons=["download", "fullscreen"], elem_id="overview-unit")
                self.unit_text = gr.Markdown(elem_id="overview-unit-text")
        self._wire(shared, tab)

    def _wire(self, shared: Shared, tab: gr.Tab) -> None:
        ws = shared.workspace
        image = self.picker.image
        # The API's parameter order is these dicts' order (gradio_client callers pass them positionally).
        pass_in = {"checkpoint": self.checkpoint, "image": image, "ws": ws}
        unit_in = {**pass_in, "stage": self.stage, "channel": self.channel, "row": self.row, "col": self.col}
        unit_out = [self.unit_picture, self.unit_text]
        menus_out = [self.caption, self.step, self.stage, self.channel, self.row, self.col]
        # Public endpoints first: a private listener of the same function would otherwise take its default api_name.
        shown = self.go.click(self.overview, inputs_kwargs=pass_in, outputs=[self.picture, self.pic_state],
                              api_name="overview", concurrency_id="overview", **CHEAP)
        self.unit_btn.click(self.unit, inputs_kwargs=unit_in, outputs=unit_out, api_name="unit",
                            concurrency_id="overview", **CHEAP)
        self.gif_btn.click(self.export_gif, inputs_kwargs=pass_in, outputs=self.gif, api_name="overview_gif",
                           concurrency_id="overview", concurrency_limit=2)
        auto = gr.on([image.change, self.checkpoint.input], self.overview, inputs_kwargs=pass_in,
                     outputs=[self.picture, self.pic_state], concurrency_id="overview", **PRIVATE)
        for event in (shown, auto):
            event.success(self.menus, inputs_kwargs={"state": self.pic_state}, outputs=menus_out, **PRIVATE).success(
                self.unit, inputs_kwargs=unit_in, outputs=unit_out, concurrency_id="overview", **PRIVATE)
        self.step.input(self.show_step, inputs_kwargs={"state": self.pic_state, "step": self.step}, outputs=self.picture,
                        **PRIVATE)
        self.picture.select(self.pick_unit, inputs_kwargs={"state": self.pic_state},
                            outputs=[self.stage, self.channel, self.row, self.col, self.step, self.picture],
                            api_visibility="private", queue=False).success(
            self.unit, inputs_kwargs=unit_in, outputs=unit_out, concurrency_id="overview", **PRIVATE)
        self.picker.random.click(self.picker.show_random, inputs_kwargs={"checkpoint": self.checkpoint, "ws": ws},
                                 outputs=[image, self.picker.truth], api_visibility="private", concurrency_limit=4)
        self.picker.wire_examples(self.checkpoint, ws, api_visibility="private")  # the checkpoint's dataset's examples
        tab.select(self.refresh_checkpoints, inputs_kwargs={"checkpoint": self.checkpoint, "ws": ws},
                   outputs=self.checkpoint, api_visibility="private", queue=False)  # this user's own runs too
        # The picker opens with an example: the first visit shows its forward pass (LeNet: a fraction of a second).
        tab.select(self.first_visit, inputs_kwargs={**unit_in, "state": self.pic_state},
                   outputs=[self.picture, self.pic_state, *menus_out, *unit_out], concurrency_id="overview", **PRIVATE)

    @guarded
    def overview(self, *, checkpoint: str | None, image: PIL.Image.Image | None, ws: SessionWorkspace) -> dict:
        """The overview picture of `image` under `checkpoint` (and, for the page, the picture's layout)."""
        if image is None:
            return {self.picture: None, self.pic_state: None}
        fp, pic = overview(load_model(checkpoint, ws), image)
        # Kept per session: the picture (step-through, clicks) and the menus, not the activations (VGG-16: 100+ MB).
        return {self.picture: pic.image, self.pic_state: (pic, fp.caption, unit_stages(fp), default_unit(fp))}

    @guarded
    def first_visit(self, *, state: tuple | None, **inputs: object) -> dict:
        """On the tab's first opening: the overview of the image already in the picker, its menus and first unit."""
        if state is not None or inputs["image"] is None:
            return gr.skip()
        shown = self.overview(checkpoint=inputs["checkpoint"], image=inputs["image"], ws=inputs["ws"])
        menus = self.menus(state=shown[self.pic_state])
        stage, channel, row, col = shown[self.pic_state][3]
        unit = self.unit(**{**inputs, "stage": stage, "channel": channel, "row": row, "col": col})
        return {**shown, **menus, **unit}

    def menus(self, *, state: tuple | None) -> dict:
        """Caption, step slider and unit menus for the network shown, set to its first convolution's strongest unit."""
        if state is None:
            return {self.caption: EMPTY}
        pic, caption, stages, (stage, channel, row, col) = state
        return {self.caption: caption, self.step: gr.Slider(0, len(pic.columns) - 1, value=0, step=1),
                self.stage: gr.Dropdown(choices=stages, value=stage), self.channel: channel,
                self.row: row or 0, self.col: col or 0}

    @guarded
    def unit(self, *, checkpoint: str | None, image: PIL.Image.Image | None, stage: str | None, channel: float | None,
             row: float | None, col: float | None, ws: SessionWorkspace) -> dict:
        """How one unit's value was computed: receptive field, patch, kernel, products, sum + bias, activation."""
        if image is None:
            return {self.unit_picture: None, self.unit_text: EMPTY}
        if not stage:
            return {self.unit_picture: None, self.unit_text: "Choose a stage, a channel and a position first."}
        u, picture = explain_unit(load_model(checkpoint, ws), image, stage, channel if channel is not None else 0, row, col)
        return {self.unit_picture: picture, self.unit_text: u.markdown}

    def pick_unit(self, evt: gr.SelectData, *, state: tuple | None) -> dict:
        """A click on the overview -> that stage (highlighted on the slider) and, on a tile, that unit."""
        index = evt.index if isinstance(evt.index, (list, tuple)) and len(evt.index) == 2 else None
        pic: ForwardPassPicture | None = state[0] if state else None
        hit = pic.hit(float(index[0]), float(index[1])) if pic is not None and index is not None else None
        if hit is None:
            return gr.skip()
        if hit.channel is None or hit.stage not in state[2]:  # the input, the bars: highlight the stage only
            return {self.step: hit.column, self.picture: highlight(pic, hit.column)}
        return {self.stage: hit.stage, self.channel: hit.channel, self.row: hit.row or 0, self.col: hit.col or 0,
                self.step: hit.column, self.picture: highlight(pic, hit.column)}  # the same layout: clicks still map

    def show_step(self, *, state: tuple | None, step: float | None) -> dict:
        """The overview with one stage highlighted (no model work: the last picture is kept per session)."""
        if state is None:
            return {self.picture: gr.skip()}
        pic = state[0]
        k = min(max(int(step or 0), 0), len(pic.columns) - 1)
        return {self.picture: highlight(pic, k)}

    @guarded
    def export_gif(self, *, checkpoint: str | None, image: PIL.Image.Image | None, ws: SessionWorkspace) -> dict:
        """The step-through as an animated GIF file, for slides."""
        if image is None:
            raise user_error(EMPTY, title="No image yet")
        _, pic = overview(load_model(checkpoint, ws), image)
        return {self.gif: str(write_overview_gif(pic, self.gifs.path()))}

    def refresh_checkpoints(self, *, checkpoint: str | None, ws: SessionWorkspace) -> dict:
        """The checkpoint menu with this session's checkpoints, keeping the current choice."""
        choices = checkpoint_choices(ws)
        names = [n for _, n in choices]
        return {self.checkpoint: gr.Dropdown(choices=choices, value=checkpoint if checkpoint in names else
                                             (names[0] if names else None))}


def build(shared: Shared, tab: gr.Tab) -> OverviewTab:
    """Create the tab's components in the current context (inside `tab`) and wire its events."""
    return OverviewTab(shared, tab)
