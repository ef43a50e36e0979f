"""The one receptive-field tracer: against the previous summary's numbers, fields worked by hand, and the input
pixels that actually reach a unit (its input-gradient support)."""
import copy
import math

import pytest
import torch
import torch.nn as nn

from cnnviz.explain.geometry import Axis, Field, layer_fields, layer_geometry
from cnnviz.lecture.summary import summarize
from cnnviz.models import get_model

# (rf, jump, start) of every conv/pool layer as the previous summarize() (its own per-module recurrence) gave
# them, recorded before the two tracers were merged; none of these layers meets a non-global adaptive pool.
RECORDED = {
    ("lenet5", 1, 28): {"features.0": (5, 1, 0.0), "features.2": (6, 2, 0.5), "features.3": (14, 2, 4.5), "features.5": (16, 4, 5.5)},
    ("lenet5_classic", 1, 28): {"features.0": (5, 1, 0.0), "features.2": (6, 2, 0.5), "features.3": (14, 2, 4.5),
                                "features.5": (16, 4, 5.5)},
    ("tinyvgg", 3, 32): {"features.0": (3, 1, 1.0), "features.2": (5, 1, 2.0), "features.4": (6, 2, 2.5), "features.5": (10, 2, 4.5),
                         "features.7": (14, 2, 6.5), "features.9": (16, 4, 7.5)},
    ("vgg11", 3, 32): {"features.0": (3, 1, 0.0), "features.3": (4, 2, 0.5), "features.4": (8, 2, 0.5), "features.7": (10, 4, 1.5),
                       "features.8": (18, 4, 1.5), "features.11": (26, 4, 1.5), "features.14": (30, 8, 3.5),
                       "features.15": (46, 8, 3.5), "features.18": (62, 8, 3.5), "features.21": (70, 16, 7.5),
                       "features.22": (102, 16, 7.5), "features.25": (134, 16, 7.5), "features.28": (150, 32, 15.5),
                       "features.29": (150, 32, 15.5)},
    ("resnet18", 3, 32): {"conv1": (3, 1, 0.0), "relu": (3, 1, 0.0), "layer1.0.conv1": (5, 1, 0.0), "layer1.0.conv2": (7, 1, 0.0),
                          "layer1.0.relu": (7, 1, 0.0), "layer1.1.conv1": (9, 1, 0.0), "layer1.1.conv2": (11, 1, 0.0),
                          "layer1.1.relu": (11, 1, 0.0), "layer2.0.conv1": (13, 2, 0.0), "layer2.0.conv2": (17, 2, 0.0),
                          "layer2.0.downsample.0": (11, 2, 0.0), "layer2.0.downsample.1": (11, 2, 0.0), "layer2.0.relu": (17, 2, 0.0),
                          "layer2.1.conv1": (21, 2, 0.0), "layer2.1.conv2": (25, 2, 0.0), "layer2.1.relu": (25, 2, 0.0),
                          "layer3.0.conv1": (29, 4, 0.0), "layer3.0.conv2": (37, 4, 0.0), "layer3.0.downsample.0": (25, 4, 0.0),
                          "layer3.0.relu": (37, 4, 0.0), "layer3.1.conv1": (45, 4, 0.0), "layer3.1.conv2": (53, 4, 0.0),
                          "layer3.1.relu": (53, 4, 0.0), "layer4.0.conv1": (61, 8, 0.0), "layer4.0.conv2": (77, 8, 0.0),
                          "layer4.0.downsample.0": (53, 8, 0.0), "layer4.0.relu": (77, 8, 0.0), "layer4.1.conv1": (93, 8, 0.0),
                          "layer4.1.conv2": (109, 8, 0.0), "layer4.1.relu": (109, 8, 0.0), "avgpool": (133, 32, 12.0)},
}


class _Stop(Exception):
    """Raised by a forward hook: the forward need not go past the layer under test."""


def _oracle_copy(model: nn.Module) -> nn.Module:
    """A copy whose input gradient is non-zero exactly on the receptive field: positive weights and inputs keep every
    ReLU open, and each max-pool becomes an average pool over the same window (a max sends gradient to one input)."""
    oracle = copy.deepcopy(model).eval()
    for name, m in list(oracle.named_modules()):
        if isinstance(m, nn.MaxPool2d):
            assert m.dilation in (1, (1, 1))
            oracle.set_submodule(name, nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode))
    for p in oracle.parameters():
        p.data = p.data.abs() + 0.01
        p.requires_grad_(False)
    return oracle


def _support(oracle: nn.Module, shape: tuple[int, int, int], layer: str, unit: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """(first, last) input row and column whose gradient of unit (i, j) of `layer`, summed over channels, is non-zero."""
    torch.manual_seed(0)
    x = (torch.rand(1, *shape) + 0.1).requires_grad_(True)
    seen = {}

    def stop(module, inputs, output):
        seen["y"] = output
        raise _Stop

    handle = dict(oracle.named_modules())[layer].register_forward_hook(stop)
    try:
        oracle(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    seen["y"][0, :, unit[0], unit[1]].sum().backward()
    rows, cols = torch.nonzero(x.grad[0].abs().sum(0), as_tuple=True)
    return (int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))


def _box(field: Field, unit: tuple[int, int], shape: tuple[int, int, int]) -> tuple[tuple[int, int], ...]:
    """The field's (first, last) input row and column of unit (i, j), clipped to the image."""
    out = []
    for a, i, n in zip((field.y, field.x), unit, shape[1:]):
        centre, half = a.start + i * a.jump, (a.rf - 1) / 2
        out.append((max(0, math.ceil(centre - half - 1e-9)), min(n - 1, math.floor(centre + half + 1e-9))))
    return tuple(out)


@pytest.mark.parametrize("key", list(RECORDED), ids=lambda k: f"{k[0]}-{k[2]}")
def test_tracer_matches_the_previous_summary(key):
    name, channels, size = key
    model = get_model(name, channels, 10, size)
    expected = RECORDED[key]
    fields = layer_fields(model, (1, channels, size, size), list(expected))
    assert {n: (f.y.rf, f.y.jump, f.y.start) for n, f in fields.items()} == expected
    assert all(f.x == f.y and f.uniform for f in fields.values())
    rows = {r.name: r for r in summarize(model, (channels, size, size)).rows}
    assert {n: (rows[n].rf, rows[n].jump, rows[n].start) for n in expected} == expected
    assert all(type(rows[n].rf) is int and type(rows[n].jump) is int and type(rows[n].start) is float for n in expected)


def _hand_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3), nn.ReLU(),
                         nn.AdaptiveAvgPool2d((3, 3)))


def test_adaptive_pool_worked_by_hand_and_by_gradients():
    # 22 px: conv 3x3 pad 1 (rf 3), pool 2 (rf 3+1 = 4, jump 2, start 0.5), conv 3x3 (rf 4+2*2 = 8, start 0.5+2 = 2.5)
    # on an 11 -> 9 map, then 9 -> 3 adaptive: an ordinary 3x3 stride-3 pool, rf 8+2*2 = 12, jump 6, start 2.5+2 = 4.5.
    # The previous summary treated it as global: rf 8+8*2 = 24, jump 18.
    model, shape = _hand_net(), (1, 22, 22)
    fields = layer_fields(model, (1, *shape), ["0", "2", "3", "5"])
    assert {n: f.y for n, f in fields.items()} == {"0": Axis(0.0, 1.0, 3), "2": Axis(0.5, 2.0, 4), "3": Axis(2.5, 2.0, 8),
                                                   "5": Axis(4.5, 6.0, 12)}
    assert fields["5"].uniform and fields["5"].x == fields["5"].y
    oracle = _oracle_copy(model)
    for unit in [(i, j) for i in range(3) for j in range(3)]:
        assert _support(oracle, shape, "5", unit) == _box(fields["5"], unit, shape), unit
    assert _support(oracle, shape, "3", (4, 4)) == _box(fields["3"], (4, 4), shape) == ((7, 14),) * 2


def test_uneven_adaptive_pool_takes_its_widest_bin():
    # 20 px: the conv map is 8 wide and 8 -> 3 bins are [0,3), [2,6), [5,8): the middle unit sees 4 conv cells,
    # rf 8 + (4-1)*2 = 14, input pixels 3..16.
    model, shape = _hand_net(), (1, 20, 20)
    field = layer_fields(model, (1, *shape), ["5"])["5"]
    assert not field.uniform and field.y.rf == 14
    oracle = _oracle_copy(model)
    assert _support(oracle, shape, "5", (1, 1)) == _box(field, (1, 1), shape) == ((3, 16),) * 2
    rows = [_support(oracle, shape, "5", (i, i))[0] for i in range(3)]
    assert rows == [(0, 10), (3, 16), (9, 19)]  # bins of 3, 4 and 3 cells (the outer ones clipped by the image)
    assert max(hi - lo + 1 for lo, hi in rows) == field.y.rf


@pytest.mark.parametrize("name,size", [("alexnet", 224), ("imagenet-alexnet", 224), ("alexnet", 96)])
def test_alexnet_field_after_its_adaptive_pool(name, size):
    """AdaptiveAvgPool2d((6, 6)) is not global: a 6x6 map passes unchanged, a 2x2 one is copied into 3x3 blocks."""
    classes = 1000 if name.startswith("imagenet") else 10
    pool = "avgpool" if name.startswith("imagenet") else "features.13"
    model, shape = get_model(name, 3, classes, size), (3, size, size)
    fields = layer_fields(model, (1, *shape), ["features.12", pool])
    before, after = fields["features.12"], fields[pool]
    assert before.y == before.x == Axis(31.0, 32.0, 195)
    assert after.y.rf == 195  # the previous summary said 355 at 224 px, 227 at 96 px
    centre = _support(_oracle_copy(model), shape, pool, (3, 3))
    assert centre == _box(after, (3, 3), shape)
    if size == 224:
        assert after == before and centre == ((30, 223),) * 2  # unit 3 is centred on 31 + 3*32 = 127
    else:
        assert not after.uniform and centre == ((0, 95),) * 2  # 195 px fields cover a 96 px image
        cells = torch.rand(1, 4, 2, 2, requires_grad=True)
        out = dict(model.named_modules())[pool](cells)
        for i in range(6):  # output row i reads exactly input row i // 3: a kernel of 1, so rf stays 195
            grad, = torch.autograd.grad(out[0, :, i, i].sum(), cells, retain_graph=True)
            assert torch.nonzero(grad[0].sum(0)).tolist() == [[i // 3, i // 3]]
        assert layer_geometry(model, (1, *shape), [pool])[pool][0][1] == pytest.approx(32 / 3)  # was 0 (in // out)


class _TwoPaths(nn.Module):
    """A 1x1 path and a 5x5 path of one input, combined as `how` says."""

    def __init__(self, how: str):
        super().__init__()
        self.how = how
        self.narrow, self.wide = nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.narrow(x), self.wide(x)
        if self.how == "iadd":  # torchvision's `out += identity`
            a += b
            return a
        if self.how == "cat":
            return torch.cat([a, b], 1)
        return a + b if self.how == "add" else b + a


@pytest.mark.parametrize("how", ["add", "radd", "iadd", "cat"])
def test_combined_paths_see_the_wider_field(how):
    model, shape = nn.Sequential(_TwoPaths(how)), (1, 9, 9)
    fields = layer_fields(model, (1, *shape), ["0.narrow", "0.wide", "0"])
    assert (fields["0.narrow"].y.rf, fields["0.wide"].y.rf, fields["0"].y) == (1, 5, Axis(0.0, 1.0, 5))
    assert _support(_oracle_copy(model), shape, "0", (4, 4)) == _box(fields["0"], (4, 4), shape) == ((2, 6),) * 2


@pytest.mark.parametrize("block", ["layer1.0", "layer2.0"])
def test_resnet_block_field_is_the_wider_of_its_two_paths(block):
    model, shape = get_model("resnet18", 3, 10, 32), (3, 32, 32)
    modules = dict(model.named_modules())
    shortcut = f"{block}.downsample.1" if modules[block].downsample is not None else None
    names = [block, f"{block}.conv1", f"{block}.bn2"] + ([shortcut] if shortcut else [])
    fields = layer_fields(model, (1, *shape), names)
    # The identity shortcut carries the block input's field: what conv1 saw, minus conv1's own 3x3 step.
    into = fields[shortcut].y.rf if shortcut else fields[f"{block}.conv1"].y.rf - 2 * fields[f"{block}.conv1"].y.jump
    main = fields[f"{block}.bn2"].y.rf
    assert fields[block].y.rf == max(main, into) == main > into
    n = 32 // int(fields[block].y.jump)
    assert _support(_oracle_copy(model), shape, block, (n // 2, n // 2)) == _box(fields[block], (n // 2, n // 2), shape)
