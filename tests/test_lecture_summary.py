"""Architecture summary: totals equal sum(p.numel()), FLOPs and receptive fields checked by hand."""
import pytest
import torch.nn as nn

from cnnviz.lecture.summary import summarize
from cnnviz.models import get_model, get_model_info, list_models, model_input_size


@pytest.mark.parametrize("name", [n for n in list_models() if not get_model_info(n).imagenet and n != "alexnet_d2l"])
def test_totals_match_the_model(name):
    size = model_input_size(name, 32)
    model = get_model(name, 3, 10, size)
    s = summarize(model, (3, size, size))
    total = sum(p.numel() for p in model.parameters())
    assert s.total_params == total == sum(r.params for r in s.rows)
    assert s.total_flops > 0 and s.rows[-1].out_shape == (1, 10)


def test_lenet_rows_by_hand():
    s = summarize(get_model("lenet5", 1, 10, 28), (1, 28, 28))
    rows = {r.name: r for r in s.rows}
    conv1, pool1, conv2, pool2 = rows["features.0"], rows["features.2"], rows["features.3"], rows["features.5"]
    assert conv1.out_shape == (1, 6, 28, 28) and conv1.params == 6 * 25 + 6
    assert conv1.flops == 2 * 6 * 28 * 28 * 25  # a multiply and an add per kernel tap
    assert (conv1.rf, conv1.jump) == (5, 1)
    assert (pool1.rf, pool1.jump) == (6, 2)
    assert (conv2.rf, conv2.jump) == (14, 2)  # 6 + (5-1)*2
    assert (pool2.rf, pool2.jump) == (16, 4)
    assert s.total_params == 61_706


def test_receptive_field_through_residual_additions():
    """ResNet's shortcut add is not a module: the wider branch's field must still propagate."""
    s = summarize(get_model("resnet18", 3, 10, 32), (3, 32, 32))
    rows = {r.name: r for r in s.rows}
    assert (rows["conv1"].rf, rows["layer1.0.conv2"].rf) == (3, 7)
    assert rows["layer2.0.conv1"].jump == 2 and rows["layer4.1.conv2"].jump == 8
    assert rows["layer4.1.conv2"].rf > rows["layer3.1.conv2"].rf > rows["layer2.1.conv2"].rf


def test_summary_leaves_model_unchanged():
    model = get_model("vgg11", 3, 10, 32).train()
    summarize(model, (3, 32, 32))
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())
    assert isinstance(model.features[0], nn.Conv2d)


@pytest.mark.parametrize("size", [96, 224])
def test_alexnet_field_stops_at_its_adaptive_pool(size):
    """AdaptiveAvgPool2d((6, 6)) is not global: at 224 px it meets a 6x6 map (identity), at 96 px a 2x2 one that it
    copies into 3x3 blocks (kernel 1). The old per-module recurrence said rf 355 and 227."""
    s = summarize(get_model("alexnet", 3, 10, size), (3, size, size))
    rows = {r.name: r for r in s.rows}
    assert (rows["features.12"].rf, rows["features.12"].jump, rows["features.12"].start) == (195, 32, 31.0)
    assert rows["features.13"].rf == 195 and rows["classifier.0"].rf is None
    if size == 224:
        assert (rows["features.13"].jump, rows["features.13"].start) == (32, 31.0)
    else:  # uneven bins: units are placed as an even split of 2 cells into 6, 32/3 px apart
        assert rows["features.13"].jump == pytest.approx(32 / 3) and "10.7" in s.table()
