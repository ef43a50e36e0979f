"""cnnviz.explain / cnnviz.explain.attributions: numbers checked against captum, by hand, and on a trained model."""
from __future__ import annotations

import argparse
import time

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from scipy.stats import spearmanr

import cnnviz.explain as ex
from cnnviz.explain.attributions import METHODS, attribute, attribute_all
from cnnviz.explain.geometry import layer_geometry
from cnnviz.explain.gradcam import grad_cam, grad_cam_batch
from cnnviz.explain.hooks import has_hooks
from cnnviz.explain.layers import ExplainError, default_layer, normalize01
from cnnviz.models import get_model, get_model_info, list_models, model_input_size

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _close(ours: np.ndarray, ref: np.ndarray, tol: float = 1e-5) -> None:
    """|ours - ref| <= tol relative to the map's scale (random-init maps are ~1e-4, so an absolute 1e-5 proves little)."""
    scale = max(float(np.abs(ref).max()), 1e-12)
    assert float(np.abs(ours - ref).max()) <= tol * scale, (float(np.abs(ours - ref).max()), scale)


ORACLE_CASES = [
    ("lenet5", 1, 28, ["features.0", "features.3"]),
    ("lenet5", 3, 32, ["features.1", "features.3"]),
    ("vgg11", 3, 32, ["features.4", "features.11", "features.25"]),
    ("resnet18", 3, 28, ["layer4", "layer2.0.conv1", "layer1.0.relu"]),  # layer1.0.relu runs twice: last call
    ("resnet18", 3, 32, ["layer4", "layer3", "relu"]),
]


@pytest.mark.parametrize("arch,channels,size,layers", ORACLE_CASES)
def test_grad_cam_matches_captum_layer_grad_cam(arch, channels, size, layers):
    torch.manual_seed(0)
    model = get_model(arch, channels, 10, size).eval()
    x = torch.randn(3, channels, size, size)
    targets = [2, 5, 9]
    modules = dict(model.named_modules())
    for layer in layers:
        ours = grad_cam_batch(model, x, layer, targets)
        ref = LayerGradCam(model, modules[layer]).attribute(x, target=targets, relu_attributions=True).detach()  # [B,1,h,w]
        assert ref.max() > 0
        _close(np.stack([r.cam for r in ours]), ref[:, 0].numpy())
        # Without alignment our upsampling is captum's bilinear interpolation, normalised to [0,1].
        stretched = grad_cam_batch(model, x, layer, targets, align=False)
        up = LayerAttribution.interpolate(ref, (size, size), interpolate_mode="bilinear")[:, 0].numpy()
        for r, u in zip(stretched, up):
            _close(r.upsampled, normalize01(u))
    assert not has_hooks(model)


def test_receptive_field_geometry_worked_by_hand():
    # TinyVGG at 32 px: 3x3 convs without padding shift the centre by 1 px each, a 2x2 pool by half a (current) jump.
    tiny = get_model("tinyvgg", 3, 10, 32)
    geo = layer_geometry(tiny, (1, 3, 32, 32), ["features.0", "features.4", "features.7", "features"])
    assert geo == {"features.0": ((1.0, 1.0),) * 2, "features.4": ((2.5, 2.0),) * 2, "features.7": ((6.5, 2.0),) * 2,
                   "features": ((7.5, 4.0),) * 2}
    # ResNet: stride-2 3x3 convs with padding 1 centre unit 0 on pixel 0 (the 1x1 shortcut agrees).
    assert layer_geometry(get_model("resnet18", 3, 10, 32), (1, 3, 32, 32), ["layer4"]) == {"layer4": ((0.0, 8.0),) * 2}
    # VGG (padded convs, 2x2 pools): geometry is exactly the stretched bilinear one, so both upsamplings agree.
    vgg = get_model("vgg11", 3, 10, 32)
    assert ex.cam_geometry(vgg, (3, 32, 32), "features.25") == ((7.5, 16.0),) * 2
    x = torch.randn(1, 3, 32, 32)
    np.testing.assert_allclose(grad_cam(vgg, x, "features.25").upsampled, grad_cam(vgg, x, "features.25", align=False).upsampled,
                               atol=1e-5)
    # A single hot cell of TinyVGG's features.7 lands on its receptive-field centre, 6.5 + 2*i.
    hot = torch.zeros(1, 10, 10)
    hot[0, 1, 2] = 1
    up = ex.upsample_cam(hot, (32, 32), ((6.5, 2.0), (6.5, 2.0)))[0].numpy()
    assert np.isclose(up[8:10, 10:12], up.max()).all()  # the peak straddles pixels 8..9 x 10..11 (centre 8.5, 10.5)
    assert np.isclose(up, up.max()).sum() == 4


@pytest.mark.parametrize("arch,channels,size,layer", [("resnet18", 3, 32, "layer3"), ("lenet5", 1, 28, "features.3")])
def test_batch_equals_one_at_a_time(arch, channels, size, layer):
    torch.manual_seed(1)
    model = get_model(arch, channels, 10, size).eval()
    x = torch.randn(4, channels, size, size)
    targets = [0, 3, 7, 9]
    batch = grad_cam_batch(model, x, layer, targets)
    for i, res in enumerate(batch):
        one = grad_cam(model, x[i], layer, targets[i])
        assert one.target == res.target == targets[i]
        _close(res.cam, one.cam)
        np.testing.assert_allclose(res.upsampled, one.upsampled, atol=1e-5)
        np.testing.assert_allclose(res.probs, one.probs, atol=1e-6)
    default = grad_cam_batch(model, x, layer)  # default targets: each image's own prediction
    assert [r.target for r in default] == [int(np.argmax(r.probs)) for r in default]


def test_conv_layers_and_default_layer():
    assert ex.conv_layers(get_model("lenet5", 1, 10, 28), (1, 28, 28)) == ["features", *(f"features.{i}" for i in range(6))]
    resnet = ex.conv_layers(get_model("resnet18", 3, 10, 32), (3, 32, 32))
    assert {"conv1", "relu", "layer3", "layer4", "layer4.1.conv2"} <= set(resnet) and "fc" not in resnet
    plain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3), nn.Flatten(), nn.Linear(8, 2))
    assert default_layer(plain) == "2" and default_layer(plain, "not-a-model") == "2"


@pytest.mark.parametrize("arch", [a for a in list_models() if not get_model_info(a).imagenet])
def test_registry_cam_layer_has_feature_maps(arch):
    info = get_model_info(arch)
    size = model_input_size(arch, 32)
    model = get_model(arch, 3, 10, size)
    assert default_layer(model, arch) == info.cam_layer
    assert info.cam_layer in ex.conv_layers(model, (3, size, size))


def test_feature_maps_statistics_and_order():
    model, x = get_model("tinyvgg", 3, 10, 32), torch.randn(3, 32, 32)
    fm = ex.feature_maps(model, x, "features.2")
    assert fm.maps.shape == (10, 28, 28) and fm.maps.dtype == np.float32
    np.testing.assert_allclose(fm.mean, fm.maps.mean((1, 2)), rtol=1e-6)
    np.testing.assert_allclose(fm.frac_active, (fm.maps > 0).mean((1, 2)))
    order = fm.order("mean")
    assert sorted(order) == list(range(10)) and np.all(np.diff(fm.mean[order]) <= 0)
    with pytest.raises(ExplainError, match="not feature maps"):
        ex.feature_maps(model, x, "classifier.1")
    with pytest.raises(ExplainError, match="unknown layer"):
        ex.feature_maps(model, x, "features.99")


def test_filters_rgb_mean_and_channel():
    vgg = get_model("vgg11", 3, 10, 32)
    first = ex.filters(vgg)
    assert first.layer == "features.0" and first.rgb and first.tiles.shape == (64, 3, 3, 3)
    np.testing.assert_array_equal(first.tiles[5, :, :, 2], vgg.features[0].weight[5, 2].detach().numpy())
    deep = ex.filters(vgg, "features.4")
    assert not deep.rgb and deep.tiles.shape == (128, 3, 3)
    np.testing.assert_allclose(deep.tiles, vgg.features[4].weight.detach().mean(1).numpy(), rtol=1e-5, atol=1e-7)
    one = ex.filters(vgg, "features.4", in_channel=7)
    np.testing.assert_array_equal(one.tiles, vgg.features[4].weight[:, 7].detach().numpy())
    assert ex.filters(get_model("lenet5", 1, 10, 28)).tiles.shape == (6, 5, 5)
    with pytest.raises(ExplainError, match="not a Conv2d"):
        ex.filters(vgg, "features.2")


def test_degenerate_maps_give_zeros_and_warnings():
    assert not normalize01(np.full((4, 4), 3.0)).any()
    assert np.isfinite(normalize01(np.array([[np.nan, 1.0, np.inf]]))).all()
    # every channel positive, every weight negative: all evidence against the class -> cam is zero, not NaN
    net = nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.fill_(1.0), net[0].bias.fill_(0.0), net[4].weight.copy_(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
    res = grad_cam(net.eval(), torch.rand(1, 1, 5, 5) + 0.1, "0", target=0)
    assert not res.cam.any() and not res.upsampled.any() and np.isfinite(res.upsampled).all()
    with pytest.warns(UserWarning, match="no spatial information"):
        one = grad_cam(net, torch.rand(1, 1, 5, 5), "2")
    assert one.cam.shape == (1, 1) and "no spatial information" in one.warnings[0]


def test_attribution_methods_are_finite_and_guided_grad_cam_matches_captum():
    from captum.attr import GuidedGradCam

    torch.manual_seed(0)
    model = get_model("vgg11", 3, 10, 32).eval()  # inplace ReLUs: the guided methods hook them
    x = torch.randn(1, 3, 32, 32)
    results = attribute_all(model, x, target=4, layer="features.18")
    assert list(results) == list(METHODS)
    for name, res in results.items():
        assert res.target == 4 and res.heat.shape == (32, 32), name
        assert np.isfinite(res.heat).all() and res.heat.min() >= 0 and res.heat.max() == pytest.approx(1.0), name
    assert results["gradcam"].layer == results["guided-gradcam"].layer == "features.18"
    # VGG is padded, so our receptive-field placement equals captum's stretch and the products must agree.
    ref = GuidedGradCam(model, model.features[18]).attribute(x.clone().requires_grad_(True), target=4,
                                                             interpolate_mode="bilinear").detach()[0].numpy()
    assert np.abs(ref).max() > 0
    _close(results["guided-gradcam"].attr, ref, tol=1e-4)
    assert not has_hooks(model)
    with pytest.raises(ExplainError, match="unknown method"):
        attribute(model, x, "lime")


def test_saliency_and_integrated_gradients_against_autograd():
    torch.manual_seed(0)
    model = get_model("lenet5", 1, 10, 28).eval()
    x = torch.randn(1, 1, 28, 28)
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(leaf)[0, 6], leaf)
    np.testing.assert_allclose(attribute(model, x, "saliency", target=6).attr, grad[0].numpy(), rtol=1e-5, atol=1e-8)
    ig = attribute(model, x, "ig", target=6).attr  # completeness: sum of IG = f(x) - f(baseline 0)
    with torch.no_grad():
        delta = float(model(x)[0, 6] - model(torch.zeros_like(x))[0, 6])
    assert ig.sum() == pytest.approx(delta, rel=0.05, abs=1e-3)


def test_cascading_randomization_from_the_top():
    torch.manual_seed(0)
    model = get_model("tinyvgg", 3, 5, 32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    steps = [(name, m) for name, m in ex.cascading_randomization(model, copy_each=True)]
    assert [name for name, _ in steps] == ["classifier.1", "features.7", "features.5", "features.2", "features.0"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the original is untouched
    first, last = steps[0][1].state_dict(), steps[-1][1].state_dict()
    assert not torch.equal(first["classifier.1.weight"], before["classifier.1.weight"])
    assert torch.equal(first["features.0.weight"], before["features.0.weight"])  # lower layers untouched so far
    assert all(not torch.equal(last[k], before[k]) for k in before)
    again = [m for _, m in ex.cascading_randomization(model, seed=0)][-1]
    assert all(torch.equal(again.state_dict()[k], last[k]) for k in last)  # reproducible from the seed


# --- a trained model: sanity check (Adebayo et al. 2018) and localisation (pointing game) ------------------------

@pytest.fixture(scope="module")
def trained():
    """TinyVGG (width 32) trained 4 epochs on `shapes` with a plain loop: ~25 s on one core."""
    from cnnviz.data import load_dataset

    ds = load_dataset("shapes")
    mean, std = torch.tensor(ds.info.mean).view(1, 3, 1, 1), torch.tensor(ds.info.std).view(1, 3, 1, 1)

    def norm(u8: torch.Tensor) -> torch.Tensor:
        return (u8.float() / 255 - mean) / std

    torch.manual_seed(0)
    model = get_model("tinyvgg", 3, len(ds.info.class_names), 32, width=32)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = norm(ds.train.images), ds.train.labels
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(4):  # one torch thread (see conftest's one_torch_thread): the numbers below are for that setting
        model.train()
        for idx in torch.randperm(len(y), generator=gen).split(64):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    xt, yt = norm(ds.test.images[:500]), ds.test.labels[:500]
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    print(f"\ntrained tinyvgg on shapes in {time.perf_counter() - start:.1f} s: test accuracy {acc:.3f}")
    assert acc >= 0.75, f"training broke: test accuracy {acc:.3f}"
    return model, xt, yt, ds.test.masks[:500].numpy()


def _spearman(a: list, b: list) -> tuple[float, float, int]:
    """Mean Spearman rank correlation of the layer-resolution maps over image pairs: counting a constant map
    (no evidence at all, correlation undefined) as 0, and over the defined pairs only; plus the constant count."""
    rs = np.array([spearmanr(p.cam.ravel(), q.cam.ravel()).statistic if p.cam.std() > 0 and q.cam.std() > 0 else np.nan
                   for p, q in zip(a, b)])
    return float(np.nan_to_num(rs).mean()), float(np.nanmean(rs)), int(np.isnan(rs).sum())


def test_sanity_check_randomised_weights_change_grad_cam(trained):
    model, xt, _, _ = trained
    x = xt[:200]
    layer = default_layer(model, "tinyvgg")
    ref = grad_cam_batch(model, x, layer)
    rows = []
    for name, randomized in ex.cascading_randomization(model, seed=0):
        rows.append((name, *_spearman(ref, grad_cam_batch(randomized, x, layer, [r.target for r in ref]))))
    print("\ncascading randomisation (top first), mean Spearman vs trained Grad-CAM [constant maps as 0 / defined pairs "
          "only / constant count]:\n  " + "\n  ".join(f"{n:<13} {a:.3f} / {b:.3f} / {c}" for n, a, b, c in rows))
    _, rho, rho_defined, _ = rows[-1]
    assert rho < 0.3 and rho_defined < 0.3, rows  # well below 0.5
    assert rows[0][2] < 0.5  # randomising only the classifier already scrambles the class evidence
    other = grad_cam_batch(model, x, layer, [(r.target + 1) % 5 for r in ref])
    rho_other, rho_other_defined, _ = _spearman(ref, other)
    differs = np.mean([np.abs(p.upsampled - q.upsampled).max() > 0.2 for p, q in zip(ref, other)])
    print(f"predicted vs another class: mean Spearman {rho_other:.3f} (defined pairs {rho_other_defined:.3f}); "
          f"maps differ by > 0.2 somewhere on {differs:.0%} of images")
    assert rho_other_defined < 0.7 and differs > 0.9


def _hit_rate(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image: is the map's peak (first maximal pixel) inside the object mask?"""
    return masks.reshape(len(masks), -1)[np.arange(len(masks)), maps.reshape(len(maps), -1).argmax(1)]


def test_pointing_game_on_shapes(trained):
    model, xt, _, masks = trained
    layer = default_layer(model, "tinyvgg")
    aligned = _hit_rate(np.stack([c.upsampled for c in grad_cam_batch(model, xt, layer)]), masks)
    stretched = _hit_rate(np.stack([c.upsampled for c in grad_cam_batch(model, xt, layer, align=False)]), masks)
    random = _hit_rate(np.random.default_rng(0).random(masks.shape), masks)  # a random map's peak: a random pixel
    centre = masks[:, 15, 15]
    off = ~masks[:, 15, 15] & ~masks[:, 16, 16]  # objects that miss the image centre
    print(f"\npointing game, {len(masks)} shapes test images, TinyVGG {layer}: Grad-CAM peak inside the object "
          f"{aligned.mean():.1%} (stretched like captum: {stretched.mean():.1%}); random map {random.mean():.1%} "
          f"(mask area {masks.mean():.1%}); always-centre {centre.mean():.1%}\n"
          f"  {off.sum()} off-centre objects: Grad-CAM {aligned[off].mean():.1%} (stretched {stretched[off].mean():.1%}), "
          f"random {random[off].mean():.1%} (mask area {masks[off].mean():.1%}), always-centre 0%")
    assert aligned.mean() >= 0.45 and aligned.mean() >= 3 * random.mean()
    assert aligned[off].mean() >= 0.35 and aligned[off].mean() >= 3 * masks[off].mean()  # follows the object
    assert aligned.mean() > stretched.mean()


# --- the CLI ------------------------------------------------------------------------------------------------------

@pytest.fixture()
def cli_args(tmp_path):
    """A random TinyVGG checkpoint, a PNG, and a factory of `explain` Namespaces (paths relative to tmp_path)."""
    from cnnviz.store.checkpoints import build_meta, save_checkpoint

    torch.manual_seed(0)
    meta = build_meta(arch="tinyvgg", dataset="shapes", class_names=("circle", "square", "triangle", "cross", "star"),
                      in_channels=3, input_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    save_checkpoint(get_model("tinyvgg", 3, 5, 32), meta, tmp_path / "tv.pt")
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    (tmp_path / "NOTIMAGE").write_text("hello")

    def make(**changes) -> argparse.Namespace:
        base = dict(checkpoint="tv.pt", image="img.png", method="gradcam", layer=None, target=None, out="x.png", dpi=60)
        args = {**base, **changes}
        for key in ("checkpoint", "image", "out"):
            args[key] = str(tmp_path / args[key])
        return argparse.Namespace(**args)

    return make


def test_cli_writes_figures(cli_args, capsys):
    from cnnviz.cli.explain import run

    one, every = cli_args(out="a.png"), cli_args(out="all.png", method="all", target="star", layer="features.5")
    assert run(one) == 0 and "predicted" in capsys.readouterr().out
    assert run(every) == 0 and "explained star at layer features.5" in capsys.readouterr().out
    assert PIL.Image.open(every.out).size[0] > PIL.Image.open(one.out).size[0] > 200


@pytest.mark.parametrize("change,message", [
    (dict(image="missing.png"), "no image file"), (dict(image="NOTIMAGE"), "not an image"),
    (dict(checkpoint="nowhere/none.pt"), "no checkpoint"), (dict(layer="features.42"), "unknown layer"),
    (dict(layer="classifier.1"), "not feature maps"), (dict(target="7"), "out of range"),
    (dict(target="hexagon"), "unknown target class"), (dict(out="no/such/dir/x.png"), "cannot write"),
])
def test_cli_errors_are_one_line(cli_args, capsys, change, message):
    from cnnviz.cli.explain import run

    assert run(cli_args(**change)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err and "Traceback" not in err


# --- the one pipeline and the views behind the Explain, Predict and Architecture tabs -----------------------------

@pytest.fixture()
def loaded_tv(cli_args):
    """The random TinyVGG checkpoint of `cli_args`, loaded, and the path of its PNG."""
    from cnnviz.store.checkpoints import load_checkpoint

    args = cli_args()
    return load_checkpoint(args.checkpoint), args.image


def test_explain_image_is_grad_cam_plus_the_asked_methods(loaded_tv):
    from cnnviz.explain.pipeline import explain_image, prepare

    loaded, image = loaded_tv
    exp = explain_image(loaded, image, None, "star", ("saliency", "gradcam"))
    x, view = prepare(image, loaded.meta.spec)
    assert exp.layer == default_layer(loaded.model, "tinyvgg") and exp.target == 4  # 'star', by name
    assert torch.equal(exp.x, x) and exp.view.size == view.size and list(exp.attributions) == ["saliency", "gradcam"]
    cam = grad_cam(loaded.model, x, exp.layer, 4)
    _close(exp.cam.cam, cam.cam)
    _close(exp.attributions["gradcam"].heat, exp.cam.upsampled)
    assert all(a.target == 4 for a in exp.attributions.values())
    assert exp.headline.endswith(f"explained star at layer {exp.layer}") and exp.headline.startswith("predicted ")
    assert exp.markdown.startswith("Predicted **") and f"at layer `{exp.layer}`" in exp.markdown
    for same in (None, "", "predicted"):  # what the menu and the command line send for "the predicted class"
        assert explain_image(loaded, image, "features.0", same).target == exp.predicted
    assert explain_image(loaded, image, "features.0").attributions == {}  # Grad-CAM only unless methods are asked for
    with pytest.raises(ExplainError, match="out of range"):
        explain_image(loaded, image, None, "9")


def test_one_by_one_layers_warn_in_the_results_not_as_python_warnings(tmp_path, recwarn):
    from cnnviz.explain.pipeline import explain_image
    from cnnviz.store.checkpoints import build_meta, load_checkpoint, save_checkpoint

    meta = build_meta(arch="tinyvgg", dataset="shapes", class_names=("a", "b"), in_channels=3, input_size=16,
                      mean=(0.5,) * 3, std=(0.25,) * 3)
    save_checkpoint(get_model("tinyvgg", 3, 2, 16), meta, tmp_path / "small.pt")
    loaded, image = load_checkpoint(tmp_path / "small.pt"), PIL.Image.new("RGB", (16, 16), (200, 30, 30))
    with_cam = explain_image(loaded, image, "features.9", None, ("gradcam", "saliency"))
    assert with_cam.cam.cam.shape == (1, 1) and with_cam.warnings == with_cam.cam.warnings and "1x1" in with_cam.warnings[0]
    assert "⚠️" in with_cam.markdown  # the tab always shows the Grad-CAM, so it always says so
    assert explain_image(loaded, image, "features.9", None, ("saliency",)).warnings == ()  # saliency uses no layer
    assert not [w for w in recwarn if "1x1" in str(w.message)]


def test_layer_and_target_menus_and_the_filters_a_layer_shows(loaded_tv):
    from cnnviz.explain.choices import PREDICTED, layer_choices, nearest_conv, resolve_target, target_choices

    loaded, _ = loaded_tv
    model = loaded.model
    labels = dict((v, k) for k, v in layer_choices(loaded))
    assert labels["features.0"].startswith("features.0 · Conv2d · ") and "classifier.1" not in labels
    assert target_choices(("cat", "dog")) == [("the predicted class", PREDICTED), ("0: cat", "0"), ("1: dog", "1")]
    names = loaded.meta.class_names
    assert [resolve_target(t, names) for t in (None, "", PREDICTED, "3", 3, "Star")] == [None, None, None, 3, 3, 4]
    with pytest.raises(ExplainError, match="unknown target class"):
        resolve_target("hexagon", names)
    modules = list(model.named_modules())
    after_conv = next(n for (p, m), (n, _) in zip(modules, modules[1:]) if isinstance(m, nn.Conv2d))
    conv_before = next(p for (p, m), (n, _) in zip(modules, modules[1:]) if isinstance(m, nn.Conv2d))
    assert nearest_conv(model, conv_before) == conv_before and nearest_conv(model, after_conv) == conv_before
    assert nearest_conv(model, "features") is None  # the container comes before any conv in named_modules


def test_feature_map_and_filter_pictures_say_what_they_show(loaded_tv):
    from cnnviz.explain.pipeline import prepare
    from cnnviz.render.explain_pictures import feature_map_view, filter_view

    loaded, image = loaded_tv
    x, _ = prepare(image, loaded.meta.spec)
    grid, caption = feature_map_view(loaded.model, x, "features.0", "max", 4)
    channels = loaded.model.features[0].out_channels
    assert isinstance(grid, PIL.Image.Image) and f"4 of {channels} channels, each 30×30, strongest peak first" in caption
    with pytest.raises(ExplainError, match="cannot sort by"):
        feature_map_view(loaded.model, x, "features.0", "median", 4)
    picture, caption = filter_view(loaded.model, "features.1")
    assert picture is not None and caption.startswith("`features.0` (the convolution feeding `features.1`)")
    assert "shown in colour" in caption  # RGB first layer
    assert filter_view(loaded.model, "features") == (None, "No convolution at or before this layer, so there are no "
                                                           "filters to show.")


def test_run_prediction_reports_what_the_predict_tab_shows(loaded_tv):
    from cnnviz.explain.pipeline import run_prediction

    loaded, image = loaded_tv
    report = run_prediction(loaded, image, 3)
    assert len(report.prediction.labels) == 3 and report.prediction.labels[0] in loaded.meta.class_names
    assert report.details.startswith(f"**{report.prediction.labels[0]}** (") and "network input 3×32×32" in report.details
    assert report.view.size[0] >= 224 and report.ms >= 0


def test_architecture_page_follows_the_one_input_shape_rule():
    from cnnviz.lecture.architecture_page import TABLE_COLUMNS, architecture_page, human
    from cnnviz.lecture.catalog import check_offered, dataset_choices, model_choices, web_datasets
    from cnnviz.models import input_shape

    page = architecture_page("lenet5", "fashion-mnist")
    assert "LeNet-5" in page.header and "1×28×28" in page.header and "61,706" in page.totals
    assert page.rows[0][:3] == ("features.0", "Conv2d", "6×28×28") and len(page.rows) == 12
    assert all(len(r) == len(TABLE_COLUMNS) for r in page.rows) and "arch-conv" in page.diagram
    shape = input_shape("vgg11", "digits")
    assert f"{shape.channels}×{shape.size}×{shape.size}, resized from 8 px" in architecture_page("vgg11", "digits").header
    assert "ImageNet input (3×224×224, 1000 classes)" in architecture_page("imagenet-alexnet", "digits").header
    assert "folder" not in web_datasets() and ("LeNet-5 (ReLU, max-pool) [1998]", "lenet5") in model_choices()
    assert [v for _, v in dataset_choices()] == web_datasets()
    with pytest.raises(KeyError, match="choose one of"):
        check_offered("lenet5", "folder")
    assert human(12_345) == "12.3 k" and human(4.2e9) == "4.2 G" and human(12) == "12"
