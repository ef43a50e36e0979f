"""The forward pass stage by stage (cnnviz.lecture.forward_pass) and its picture (cnnviz.render.forward_pass_picture):
every registered family's stages in forward order, each stage's numbers equal to the model's own, the strongest
channels, clicks mapped back to units, the step-through and the GIF."""
from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn as nn
import torchvision.models.resnet as tv_resnet

from cnnviz.examples import test_example as example_image
from cnnviz.explain.predict import predict_image
from cnnviz.lecture.forward_pass import forward_pass, overview, run_forward_pass, write_overview_gif
from cnnviz.models import get_model, get_model_info, list_models
from cnnviz.models.resnet import BasicBlock
from cnnviz.render.forward_pass_picture import forward_pass_gif, forward_pass_picture, highlight
from cnnviz.store.checkpoints import load_checkpoint
from cnnviz.store.paths import shipped_checkpoints_dir

BLOCKS = (BasicBlock, tv_resnet.BasicBlock, tv_resnet.Bottleneck)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_input(arch: str) -> tuple[nn.Module, torch.Tensor]:
    """The model at a small input it accepts (ImageNet models at 64 px: the stages are the same at 224).

    Built on the meta device and then given scaled random weights: PyTorch's own initialisation of VGG-16's 138 M
    parameters took most of this file's time, and the stages do not depend on how the weights were drawn."""
    info = get_model_info(arch)
    size = 64 if info.imagenet else (info.input_size or max(info.min_size, 32))
    with torch.device("meta"):
        model = get_model(arch, 3, 10, size)
    model = model.to_empty(device="cpu").eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 1 / max(1, p[0].numel()) ** 0.5 if p.dim() > 1 else 0.1, generator=g)
        for name, b in model.named_buffers():
            b.fill_(1 if name.endswith("running_var") else 0)
    return model, torch.randn(1, 3, size, size, generator=g)


def expected_stages(model: nn.Module) -> list[str]:
    """Independent of the code under test: leaves in definition order, a residual block as one stage."""
    names, inside = [], None
    for name, m in model.named_modules():
        if not name or (inside and name.startswith(inside + ".")):
            continue
        if isinstance(m, BLOCKS):
            names.append(name)
            inside = name
        elif not list(m.children()):
            names.append(name)
    return names


def hooked_outputs(model: nn.Module, x: torch.Tensor, names: list[str]) -> tuple[list[str], dict[str, torch.Tensor]]:
    """Call order and cloned outputs of named modules, with plain forward hooks."""
    modules, order, outs = dict(model.named_modules()), [], {}

    def make(n):
        def hook(_m, _i, out):
            if n not in order:
                order.append(n)
            outs[n] = out.detach().clone()
        return hook

    handles = [modules[n].register_forward_hook(make(n)) for n in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return order, outs


@pytest.mark.parametrize("arch", list_models())
def test_every_stage_of_each_registered_family_in_forward_order(arch):
    model, x = small_input(arch)
    fp = run_forward_pass(model, x, arch=arch)
    names = expected_stages(model)
    order, outs = hooked_outputs(model, x, names)
    assert order == names  # the zoo defines its modules in the order they run
    assert [s.name for s in fp.stages] == ["input", *names, "softmax"]
    for stage, value in zip(fp.stages[1:-1], fp.values[1:-1]):
        assert value.shape == stage.out_shape == tuple(outs[stage.name].shape[1:])
        np.testing.assert_allclose(value, outs[stage.name][0].numpy(), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        probs = torch.softmax(model(x)[0], 0).numpy()
    np.testing.assert_allclose(fp.probs, probs, rtol=1e-5, atol=1e-7)
    assert fp.stages[-2].kind == "logits" and fp.stages[-1].kind == "softmax"
    assert all(s.kind != "other" for s in fp.stages), [s for s in fp.stages if s.kind == "other"]


def test_lenet_stages_read_like_the_paper():
    model, x = small_input("lenet5")
    fp = run_forward_pass(model, x)
    assert [s.kind for s in fp.stages] == ["input", "conv", "activation", "pool", "conv", "activation", "pool", "flatten",
                                           "linear", "activation", "linear", "activation", "logits", "softmax"]
    assert [s.detail for s in fp.stages[1:4]] == ["5×5 conv", "ReLU", "2×2 max-pool /2"]
    assert [s.name for s in fp.stages if not s.shown] == ["classifier.0"]  # Flatten repeats the numbers before it


@pytest.mark.parametrize("arch", ["resnet18", "imagenet-resnet50"])
def test_residual_blocks_are_one_stage_each_with_their_shortcut(arch):
    model, x = small_input(arch)
    fp = run_forward_pass(model, x)
    blocks = [s for s in fp.stages if s.kind == "block"]
    assert len(blocks) == (8 if arch == "resnet18" else 16)
    by_name = {s.name: s for s in blocks}
    assert by_name["layer1.1"].shortcut == "identity"
    assert by_name["layer2.0"].shortcut == "1×1 conv /2 + BN"  # the block halves the grid: its shortcut must too
    assert not any(s.name.startswith("layer1.0.") for s in fp.stages)  # a block's insides are not stages


def test_a_conv_stage_is_the_conv_output_even_before_an_inplace_relu():
    model, x = small_input("alexnet")  # ReLU(inplace=True) right after each conv
    fp = run_forward_pass(model, x)
    conv, relu = fp.values[fp.index("features.0")], fp.values[fp.index("features.1")]
    assert conv.min() < 0
    np.testing.assert_allclose(relu, np.maximum(conv, 0), atol=1e-6)


def test_strongest_channels_are_ranked_by_mean_absolute_activation_along_a_run():
    model, x = small_input("lenet5")
    fp = run_forward_pass(model, x)
    pool = fp.index("features.2")
    strength = np.abs(fp.values[pool]).mean(axis=(1, 2))
    shown, hidden = fp.strongest_channels(pool, 4)
    assert list(shown) == list(np.argsort(-strength, kind="stable")[:4]) and hidden == 2
    # conv -> ReLU -> pool show the same channels, so the eye can follow one channel along the run
    assert list(fp.strongest_channels(fp.index("features.0"), 4)[0]) == list(shown)
    assert list(fp.group(fp.index("features.1"))) == [1, 2, 3]


def shipped(name: str):
    return load_checkpoint(shipped_checkpoints_dir() / f"{name}.pt")


def test_a_checkpoint_on_a_real_image_predicts_what_the_predict_tab_predicts():
    loaded, ex = shipped("tinyvgg-shapes"), example_image("shapes", index=3)
    fp = forward_pass(loaded, ex.image)
    pred, _ = predict_image(loaded, ex.image, 5)
    assert fp.class_names[fp.predicted] == pred.labels[0]
    np.testing.assert_allclose(fp.probs, pred.all_probs, rtol=1e-5, atol=1e-6)
    assert fp.view.size == (224, 224)  # the input as the network sees it (32 px at 7x)


def test_the_picture_has_a_column_per_shown_stage_and_clicks_find_the_unit():
    loaded, ex = shipped("lenet5-digits"), example_image("digits", index=0)
    fp, pic = overview(loaded, ex.image)
    assert [c.name for c in pic.columns] == [s.name for s in fp.stages if s.shown]
    column = next(c for c in pic.columns if c.name == "features.3")
    channel, (x0, y0, x1, y1), h, w = column.tiles[1]
    assert channel == fp.strongest_channels(fp.index("features.3"), 6)[0][1]
    # the centre of the tile's pixel at (row 2, col 3) of the 6x6 map
    hit = pic.hit(x0 + (3.5 / w) * (x1 - x0), y0 + (2.5 / h) * (y1 - y0))
    assert (hit.stage, hit.channel, hit.row, hit.col) == ("features.3", channel, 2, 3)
    fc = next(c for c in pic.columns if c.name == "classifier.1")  # 120 units drawn as an 11x11 grid
    _, (fx0, fy0, fx1, fy1), gh, gw = fc.tiles[0]
    hit = pic.hit(fx0 + (2.5 / gw) * (fx1 - fx0), fy0 + (1.5 / gh) * (fy1 - fy0))
    assert (hit.stage, hit.channel, hit.row) == ("classifier.1", 1 * gw + 2, None)
    assert pic.hit(pic.image.width - 1, pic.image.height - 1) is None  # the legend band
    logits = next(c for c in pic.columns if c.name == "classifier.5")
    top, (bx0, by0, bx1, by1), _, _ = logits.tiles[0]  # the most probable class's bar comes first
    assert top == fp.predicted and pic.hit((bx0 + bx1) / 2, (by0 + by1) / 2).channel == fp.predicted


def test_the_step_highlight_keeps_one_column_and_fades_the_rest():
    model, x = small_input("tinyvgg")
    pic = forward_pass_picture(run_forward_pass(model, x))
    k = 3
    x0, y0, x1, y1 = pic.columns[k].box
    img = np.asarray(highlight(pic, k), np.int16)
    base = np.asarray(pic.image, np.int16)
    inside = (slice(y0 + 6, y1 - 6), slice(x0 + 6, x1 - 6))
    assert np.array_equal(img[inside], base[inside])
    outside = (slice(y0, y1), slice(x1 + 2, x1 + 80))
    assert (img[outside] >= base[outside]).all() and img[outside].mean() > base[outside].mean()
    with pytest.raises(ValueError, match="outside"):
        highlight(pic, len(pic.columns))


def test_the_gif_steps_through_every_column_then_shows_the_whole(tmp_path):
    model, x = small_input("lenet5")
    pic = forward_pass_picture(run_forward_pass(model, x, arch="lenet5"))
    gif = PIL.Image.open(io.BytesIO(forward_pass_gif(pic, ms_per_frame=300)))
    assert gif.n_frames == len(pic.columns) + 1 and gif.info["loop"] == 0
    path = write_overview_gif(pic, tmp_path)
    assert path.parent == tmp_path and path.name.startswith("lenet5-forward-pass-") and path.suffix == ".gif"
    assert PIL.Image.open(path).n_frames == len(pic.columns) + 1


def test_deep_networks_wrap_onto_rows_with_fewer_tiles():
    model, x = small_input("vgg16")
    pic = forward_pass_picture(run_forward_pass(model, x))
    rows = {c.box[1] for c in pic.columns[:-2]}  # the bars sit beside the rows
    assert len(rows) >= 3 and max(len(c.tiles) for c in pic.columns[:-2]) == 4
    assert pic.image.width < 2000
