"""cnnviz.explain.hooks: clones survive inplace ReLU, hooks never outlive their block, a hand-worked Grad-CAM, threads."""
from __future__ import annotations

import copy
import gc
import threading
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from cnnviz.explain.gradcam import grad_cam, grad_cam_batch
from cnnviz.explain.hooks import LayerError, capture, has_hooks, model_lock, output_shapes
from cnnviz.explain.maps import feature_maps
from cnnviz.models import get_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- a network small enough to work out on paper -------------------------------------------------------------
# x (3x3):        conv "0": channel 0 kernel [[1,0],[0,1]], channel 1 kernel [[0,1],[-1,0]], no bias
#  1 2 0          A0 = [[2,5],[0,2]]     A1 = [[2,-1],[-1,3]]
#  0 1 3          ReLU(inplace) "1" -> R0 = [[2,5],[0,2]], R1 = [[2,0],[0,3]]
#  2 0 1          avg-pool "2" -> p = [9/4, 5/4]; linear "4" W = [[1,-2],[0.5,1]] -> logits [-1/4, 19/8]
X_HAND = torch.tensor([[[[1.0, 2, 0], [0, 1, 3], [2, 0, 1]]]])


def hand_net() -> nn.Sequential:
    net = nn.Sequential(nn.Conv2d(1, 2, 2, bias=False), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[[[1.0, 0], [0, 1]]], [[[0.0, 1], [-1, 0]]]]))
        net[4].weight.copy_(torch.tensor([[1.0, -2], [0.5, 1]]))
    return net.eval()


def test_hand_computed_feature_maps_keep_negative_values_despite_inplace_relu():
    fm = feature_maps(hand_net(), X_HAND, "0")
    np.testing.assert_array_equal(fm.maps, [[[2, 5], [0, 2]], [[2, -1], [-1, 3]]])
    np.testing.assert_array_equal(fm.mean, [9 / 4, 3 / 4])
    np.testing.assert_array_equal(fm.min, [0, -1])
    np.testing.assert_array_equal(fm.frac_active, [3 / 4, 2 / 4])
    np.testing.assert_array_equal(feature_maps(hand_net(), X_HAND, "1").maps, [[[2, 5], [0, 2]], [[2, 0], [0, 3]]])


def test_hand_computed_grad_cam():
    # Target 1 (the prediction): dy1/dA_k = W[1,k]/4 where A_k > 0 (relu'(0) = 0), so
    # alpha_0 = mean(0.125*[[1,1],[0,1]]) = 0.09375, alpha_1 = mean(0.25*[[1,0],[0,1]]) = 0.125,
    # cam = relu(0.09375*A0 + 0.125*A1) = relu([[0.4375, 0.34375], [-0.125, 0.5625]]).
    res = grad_cam(hand_net(), X_HAND, "0")
    assert res.target == 1
    np.testing.assert_array_equal(res.cam, [[0.4375, 0.34375], [0.0, 0.5625]])
    # Target 0: alpha_0 = mean(0.25*mask0) = 0.1875, alpha_1 = mean(-0.5*mask1) = -0.25
    # cam = relu(0.1875*A0 - 0.25*A1) = relu([[-0.125, 1.1875], [0.25, -0.375]])
    np.testing.assert_array_equal(grad_cam(hand_net(), X_HAND, "0", target=0).cam, [[0.0, 1.1875], [0.25, 0.0]])
    # At the ReLU output the gradient is W[1,k]/4 everywhere: cam = 0.125*R0 + 0.25*R1
    np.testing.assert_array_equal(grad_cam(hand_net(), X_HAND, "1").cam, [[0.75, 0.625], [0.0, 1.0]])
    # probabilities are the softmax of the hand-computed logits
    np.testing.assert_allclose(res.probs, torch.softmax(torch.tensor([-0.25, 2.375]), 0).numpy(), rtol=1e-6)
    up = res.upsampled
    assert up.shape == (3, 3) and up.min() == 0 and up.max() == 1 and np.isfinite(up).all()


def _inplace(model: nn.Module, flag: bool) -> nn.Module:
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = flag
    return model


@pytest.mark.parametrize("arch,size,conv,cam_layer", [("vgg11", 32, "features.4", "features.8"),
                                                      ("alexnet", 64, "features.3", "features.6")])
def test_inplace_relu_gives_same_maps_and_grad_cam(arch, size, conv, cam_layer):
    torch.manual_seed(0)
    base = get_model(arch, 3, 10, size).eval()
    x = torch.randn(2, 3, size, size)
    inplace, plain = _inplace(base, True), _inplace(base, False)
    assert any(isinstance(m, nn.ReLU) and m.inplace for m in inplace.modules())
    a, b = feature_maps(inplace, x, conv), feature_maps(plain, x, conv)
    assert a.min.min() < 0  # the conv output is captured before the inplace ReLU zeroes it
    np.testing.assert_allclose(a.maps, b.maps, atol=1e-6, rtol=0)
    for layer in (conv, cam_layer):
        ca, cb = grad_cam_batch(inplace, x, layer, [3, 7]), grad_cam_batch(plain, x, layer, [3, 7])
        assert max(r.cam.max() for r in ca) > 0  # a random net may have no positive evidence for one image
        for r, s in zip(ca, cb):
            np.testing.assert_allclose(r.cam, s.cam, atol=1e-6 * max(1.0, float(s.cam.max())), rtol=0)
            np.testing.assert_allclose(r.upsampled, s.upsampled, atol=1e-6 * 10, rtol=0)


def _assert_clean(model: nn.Module, training: dict, requires: dict) -> None:
    assert not has_hooks(model)
    for m in model.modules():
        assert not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks
    assert {m: m.training for m in model.modules()} == training
    assert {p: p.requires_grad for p in model.parameters()} == requires


def _state(model: nn.Module) -> tuple[dict, dict]:
    return {m: m.training for m in model.modules()}, {p: p.requires_grad for p in model.parameters()}


def test_hooks_removed_and_flags_restored_after_success_and_exceptions():
    torch.manual_seed(0)
    model = get_model("resnet18", 3, 10, 32)
    model.train()
    model.layer1.eval()  # mixed flags must come back exactly
    model.fc.weight.requires_grad_(False)
    training, requires = _state(model)
    x = torch.randn(1, 3, 32, 32)
    with capture(model, ["layer2", "layer1.0.relu"], gradients=True) as cap:
        assert not model.training and not any(p.requires_grad for p in model.parameters())
        model(x).sum().backward()
    assert cap.activation("layer2").shape == (1, 128, 16, 16) and cap.gradient("layer2").shape == (1, 128, 16, 16)
    _assert_clean(model, training, requires)
    with pytest.raises(RuntimeError, match="boom"):  # never swallowed
        with capture(model, ["layer3"], gradients=True):
            model(x)
            raise RuntimeError("boom")
    _assert_clean(model, training, requires)
    with pytest.raises(LayerError, match="unknown layer"):
        with capture(model, ["nope"]):
            pass
    _assert_clean(model, training, requires)
    grad_cam(model, x, "layer4")
    _assert_clean(model, training, requires)
    with pytest.raises(ValueError, match="out of range"):
        grad_cam(model, x, "layer4", target=99)
    _assert_clean(model, training, requires)
    free: list[bool] = []
    other = threading.Thread(target=lambda: free.append(model_lock(model).acquire(blocking=False)))
    other.start()
    other.join()
    assert free == [True]  # the lock was released too


def test_output_shapes_leaves_model_clean():
    model = get_model("lenet5", 1, 10, 28)
    training, requires = _state(model)
    shapes = output_shapes(model, torch.zeros(1, 1, 28, 28))
    assert shapes["features.0"] == (1, 6, 28, 28) and shapes["classifier.5"] == (1, 10)
    _assert_clean(model, training, requires)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():  # isinstance() pokes deprecated lazy attributes of some torch objects
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def test_hundred_calls_do_not_grow_memory():
    torch.manual_seed(0)
    model = get_model("tinyvgg", 3, 10, 64, width=32).eval()
    x = torch.randn(1, 3, 64, 64)
    for _ in range(10):  # warm-up: allocator pools, oneDNN primitive caches, the geometry cache
        grad_cam(model, x, "features.2")
    tensors, rss = _live_tensors(), _rss_bytes()
    for _ in range(100):
        grad_cam(model, x, "features.2")
    assert _live_tensors() <= tensors + 2  # nothing captured is kept alive by leftover hooks or graphs
    grown = (_rss_bytes() - rss) / 2**20
    # a leaked graph or activation set per call would be >= 1.5 MiB (several [1,32,60,60] float maps): >= 150 MiB
    assert grown < 30, f"RSS grew by {grown:.1f} MiB over 100 calls"
    assert not has_hooks(model)


def test_threads_sharing_one_model_get_the_sequential_maps():
    from cnnviz.explain.attributions import attribute

    torch.manual_seed(0)
    model = get_model("tinyvgg", 3, 10, 32, width=16).eval()
    xs = torch.randn(6, 3, 32, 32)
    expected = [grad_cam(model, xs[i], "features.5", target=i % 10).cam for i in range(6)]
    got: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                attribute(model, xs[i], "guided-backprop", target=1)  # hooks every ReLU while it runs
                got[i] = grad_cam(model, xs[i], "features.5", target=i % 10).cam
        except BaseException as exc:  # surfaced below: a thread's exception must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(6):
        np.testing.assert_array_equal(got[i], expected[i])
    assert not has_hooks(model)
