"""One unit's arithmetic (cnnviz.lecture.unit_arithmetic) against the model's own activations: convolutions with and
without padding, stride and bias, first and deeper layers, the batch norm and activation after them, pools, residual
blocks and fully connected layers; the patch is the image's own pixels; the receptive field is the tracer's."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnviz.examples import test_example as example_image
from cnnviz.explain.geometry import layer_fields
from cnnviz.explain.pipeline import prepare
from cnnviz.lecture.errors import LectureError
from cnnviz.lecture.forward_pass import run_forward_pass
from cnnviz.lecture.unit_arithmetic import default_unit, explain_unit, unit_arithmetic, unit_stages
from cnnviz.models import get_model
from cnnviz.store.checkpoints import load_checkpoint
from cnnviz.store.paths import shipped_checkpoints_dir

TOL = dict(rel=1e-4, abs=1e-5)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def own_output(model: nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    """The named module's output, with a plain forward hook (cloned: an in-place ReLU may follow)."""
    out = {}

    def hook(_m, _i, o):  # returns None: a returned tensor would replace the module's output
        out.setdefault("v", o.clone())

    handle = dict(model.named_modules())[name].register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return out["v"][0]


def two_convs(stride: int, padding: int, bias: bool) -> nn.Module:
    """A first conv and a deeper one with the geometry under test, batch norm with real statistics, ReLU."""
    torch.manual_seed(stride * 10 + padding + bias)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=stride, padding=padding, bias=bias), nn.ReLU(),
                          nn.Conv2d(4, 5, 5, stride=stride, padding=padding, bias=bias), nn.BatchNorm2d(5), nn.ReLU(),
                          nn.Flatten(), nn.LazyLinear(3))
    model(torch.zeros(1, 3, 24, 24))  # materialise the lazy layer
    bn = model[3]
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
    return model.eval()


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_units_equal_the_models_activation(stride, padding, bias):
    model = two_convs(stride, padding, bias)
    x = torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    fp = run_forward_pass(model, x)
    for layer, after in (("0", "1"), ("2", "4")):  # first layer, deeper layer (conv -> BN -> ReLU)
        conv_out = own_output(model, x, layer)
        c, h, w = conv_out.shape
        for ch, r, q in ((0, 0, 0), (c - 1, h - 1, w - 1), (1, h // 2, w // 3)):  # corners read the padding
            u = unit_arithmetic(model, x, layer, ch, r, q, fp=fp)
            assert u.total == pytest.approx(float(conv_out[ch, r, q]), **TOL)
            assert u.model_total == pytest.approx(float(conv_out[ch, r, q]), abs=1e-7)
            assert (u.bias != 0) == bias and u.first_layer == (layer == "0")
            assert sum(t.contribution for t in u.terms) + u.bias == pytest.approx(u.total, abs=1e-9)
            for t in u.terms:
                assert t.products.sum() == pytest.approx(t.contribution, abs=1e-9)
                np.testing.assert_allclose(t.products, t.patch * t.kernel)
            # the same unit seen after the ReLU (first) or after BN and ReLU (deeper): the activation applied
            v = unit_arithmetic(model, x, after, ch, r, q, fp=fp)
            assert v.value == pytest.approx(float(own_output(model, x, after)[ch, r, q]), **TOL)
            assert v.value == pytest.approx(v.model_value, **TOL) and len(v.steps) == (1 if layer == "0" else 2)


def test_a_first_layer_patch_is_the_images_own_pixels_and_padding_reads_zero():
    model = two_convs(1, 2, True)
    x = torch.randn(1, 3, 24, 24)
    u = unit_arithmetic(model, x, "0", 2, 5, 7)
    assert [t.label for t in u.terms] == ["R", "G", "B"]  # an image's channels in their own order
    red = next(t for t in u.terms if t.label == "R")
    np.testing.assert_allclose(red.patch, x[0, 0, 3:6, 5:8].numpy(), rtol=1e-6)  # 3x3, padding 2: rows 5-2..5, columns 7-2..7
    np.testing.assert_allclose(red.kernel, model[0].weight[2, 0].detach().numpy(), rtol=1e-6)
    corner = unit_arithmetic(model, x, "0", 0, 0, 0)
    t = corner.terms[0]
    assert t.padded[:2].all() and t.padded[:, :2].all() and not t.padded[2:, 2:].any()
    assert (t.patch[t.padded] == 0).all()


def test_terms_of_a_deep_unit_are_ranked_by_size():
    model = two_convs(1, 0, True)
    u = unit_arithmetic(model, torch.randn(1, 3, 24, 24), "2", 3, 4, 4)
    sizes = [abs(t.contribution) for t in u.terms]
    assert sizes == sorted(sizes, reverse=True) and len(u.terms) == 4
    assert {t.label for t in u.terms} == {f"input channel {i}" for i in range(4)}


@pytest.mark.parametrize("pool", [nn.MaxPool2d(3, stride=2, padding=1), nn.MaxPool2d(2, ceil_mode=True),
                                  nn.AvgPool2d(3, stride=2, padding=1), nn.AvgPool2d(3, stride=2, ceil_mode=True,
                                                                                     count_include_pad=False),
                                  nn.AdaptiveAvgPool2d(3), nn.AdaptiveMaxPool2d((2, 3))], ids=repr)
def test_pool_units_equal_the_models_activation(pool):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), pool, nn.Flatten()).eval()
    x = torch.randn(1, 1, 12, 12)
    out = own_output(model, x, "1")
    c, h, w = out.shape
    for r, q in ((0, 0), (h - 1, w - 1), (h // 2, 0)):
        u = unit_arithmetic(model, x, "1", c - 1, r, q)
        assert u.kind == "pool" and u.total == pytest.approx(float(out[c - 1, r, q]), **TOL)


@pytest.mark.parametrize("arch", ["lenet5", "tinyvgg", "resnet18", "alexnet"])
def test_every_unit_stage_of_a_registered_family_equals_the_model(arch):
    size = 64 if arch == "alexnet" else 32
    model = get_model(arch, 3, 10, size).eval()
    torch.manual_seed(0)
    for m in model.modules():  # batch norm with statistics of its own, not the identity it starts as
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, size, size)
    fp = run_forward_pass(model, x)
    names = unit_stages(fp)
    if arch == "resnet18":  # the first blocks, the first with a 1x1 shortcut, the head
        names = ["conv1", "bn1", "relu", "layer1.0", "layer2.0", "avgpool", "fc"]
    for name in names:
        s = fp.stages[fp.index(name)]
        c = s.out_shape[0] - 1
        r, q = (s.out_shape[1] // 2, s.out_shape[2] - 1) if s.spatial else (None, None)
        u = unit_arithmetic(model, x, name, c, r, q, fp=fp)
        own = own_output(model, x, name)
        assert u.value == pytest.approx(float(own[c] if r is None else own[c, r, q]), **TOL), name
    block = unit_arithmetic(model, x, "layer2.0", 3, 2, 2, fp=fp) if arch == "resnet18" else None
    if block is not None:
        assert [t.label for t in block.terms] == ["main path", "shortcut"]
        main = own_output(model, x, "layer2.0.bn2")[3, 2, 2]
        short = own_output(model, x, "layer2.0.downsample")[3, 2, 2]
        assert block.total == pytest.approx(max(0.0, float(main + short)), **TOL)


def test_a_conv_inside_a_block_can_be_asked_for_by_name():
    model, x = get_model("resnet18", 3, 10, 32).eval(), torch.randn(1, 3, 32, 32)
    u = unit_arithmetic(model, x, "layer3.0.conv1", 7, 1, 2)
    assert u.total == pytest.approx(float(own_output(model, x, "layer3.0.conv1")[7, 1, 2]), **TOL)
    assert len(u.terms) == 128 and "stride 2" in u.operation and "no bias" in u.operation


def test_the_receptive_field_is_the_tracers():
    model = get_model("lenet5", 1, 10, 28).eval()
    x = torch.randn(1, 1, 28, 28)
    assert unit_arithmetic(model, x, "features.0", 0, 0, 0).field == (-2.0, -2.0, 2.0, 2.0)
    u = unit_arithmetic(model, x, "features.4", 1, 3, 5)
    f = layer_fields(model, x.shape, ["features.3"])["features.3"]
    assert u.rf == f.y.rf == 14 and u.field[0] == f.x.start + 5 * f.x.jump - (f.x.rf - 1) / 2


def test_bad_units_get_messages_that_say_what_to_choose():
    model, x = get_model("lenet5", 1, 10, 28).eval(), torch.randn(1, 1, 28, 28)
    with pytest.raises(LectureError, match="choose a channel from 0 to 5"):
        unit_arithmetic(model, x, "features.0", 6, 0, 0)
    with pytest.raises(LectureError, match="choose a row from 0 to 27"):
        unit_arithmetic(model, x, "features.1", 0, 28, 0)
    with pytest.raises(LectureError, match="hands its input on unchanged"):
        unit_arithmetic(model, x, "classifier.0", 0)
    with pytest.raises(LectureError, match="no stage called 'nope'"):
        unit_arithmetic(model, x, "nope", 0, 0, 0)


def test_a_shipped_checkpoint_on_a_real_image():
    loaded = load_checkpoint(shipped_checkpoints_dir() / "lenet5-fashion-mnist.pt")
    image = example_image("fashion-mnist", index=0).image
    fp = run_forward_pass(loaded.model, prepare(image, loaded.meta.spec)[0])
    stage, channel, row, col = default_unit(fp)
    conv = fp.values[fp.index("features.0")]
    assert stage == "features.0" and conv[channel, row, col] == conv[channel].max()
    u, picture = explain_unit(loaded, image, "classifier.2", 5)  # a fully connected unit, after its ReLU
    assert u.kind == "linear" and len(u.terms) == 400 and u.value == pytest.approx(u.model_value, **TOL)
    assert "the model's own value" in u.markdown and picture.width >= 900
