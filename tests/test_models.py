"""Model zoo: every entry builds, runs at every dataset shape it supports, and matches its metadata."""
import pytest
import torch

from cnnviz.models import cached_weights_path, get_model, get_model_info, imagenet_classes, list_models, model_input_size
from cnnviz.models.imagenet import WeightsUnavailable, load_pretrained_state

SMALL = [n for n in list_models() if not get_model_info(n).imagenet and n != "alexnet_d2l"]
# (channels, native size) of fashion-mnist/mnist, cifar, digits, shapes-style inputs
SHAPES = [(1, 28), (3, 32), (1, 8), (3, 64)]


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("channels,size", SHAPES)
def test_forward_shape_for_every_dataset_shape(name, channels, size):
    s = model_input_size(name, size)
    model = get_model(name, channels, 7, s).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, s, s))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models())
def test_metadata_is_complete_and_cam_layer_exists(name):
    info = get_model_info(name)
    assert info.title and info.paper and 1980 < info.year < 2030 and len(info.description) > 60
    size = model_input_size(name, 32)
    modules = dict(get_model(name, 3, 10, size).named_modules())
    assert info.cam_layer in modules


@pytest.mark.parametrize("name", [n for n in list_models() if get_model_info(n).reference_params])
def test_parameter_count_matches_published_figure(name):
    c, k, s, expected = get_model_info(name).reference_params
    model = get_model(name, c, k, s)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_alexnet_d2l_runs_at_224_on_grey_images():
    model = get_model("alexnet_d2l", 1, 10, 224).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 224, 224)).shape == (1, 10)


def test_unknown_and_invalid_requests_are_clear():
    with pytest.raises(KeyError, match="choose one of"):
        get_model("lenet6")
    with pytest.raises(ValueError, match="in_channels"):
        get_model("lenet5", in_channels=2)
    with pytest.raises(ValueError, match="at least"):
        get_model("alexnet", 3, 10, input_size=16)


def test_registry_refuses_duplicates():
    from cnnviz.models import register_model

    with pytest.raises(ValueError, match="already registered"):
        register_model("lenet5", family="x", title="x", paper="x", year=2000, input_size=None, cam_layer="x", description="x")


def test_imagenet_weights_load_from_local_hub_cache(tmp_path, monkeypatch):
    """The real loading path: a weights file in the torch hub cache is used with no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(1)
    reference = get_model("imagenet-resnet18", 3, 1000, 224)
    path = cached_weights_path("imagenet-resnet18")
    assert str(tmp_path) in path
    import os

    os.makedirs(os.path.dirname(path))
    torch.save(reference.state_dict(), path)
    loaded = get_model("imagenet-resnet18", 3, 1000, 224, pretrained=True)
    for (k, a), b in zip(reference.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    assert len(imagenet_classes("imagenet-resnet18")) == 1000
    grey = get_model("imagenet-resnet18", 1, 1000, 224, pretrained=True).eval()  # summed first conv
    x = torch.rand(1, 1, 224, 224)
    with torch.no_grad():
        assert torch.allclose(grey(x), loaded.eval()(x.repeat(1, 3, 1, 1)), atol=1e-4)


def test_imagenet_weights_missing_offline_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailable, match="TORCH_HOME") as err:
        load_pretrained_state("imagenet-alexnet")
    assert "alexnet" in str(err.value) and "fetch-weights imagenet-alexnet" in str(err.value)


SCALED = [n for n in list_models() if get_model_info(n).full_width]


def _layout(model):
    """Every leaf layer's name, type, kernel, stride and padding: the architecture without its channel counts."""
    return [(name, type(m).__name__, getattr(m, "kernel_size", None), getattr(m, "stride", None),
             getattr(m, "padding", None)) for name, m in model.named_modules() if not list(m.children())]


def test_each_classic_family_has_a_scaled_variant():
    assert {get_model_info(n).full_width for n in SCALED} >= {"alexnet", "vgg11", "resnet18"}


@pytest.mark.parametrize("name", SCALED)
def test_scaled_variant_keeps_the_layers_and_scales_every_width(name):
    """Same layer sequence, kernels, strides and shortcuts as the full network; each width times `width`."""
    info = get_model_info(name)
    full_name = info.full_width
    size = model_input_size(name, 28)
    scaled, full = get_model(name, 1, 10, size), get_model(full_name, 1, 10, size)
    assert _layout(scaled) == _layout(full)
    full_mods = dict(full.named_modules())
    for layer, m in scaled.named_modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            out = m.out_channels if isinstance(m, torch.nn.Conv2d) else m.out_features
            ref = full_mods[layer].out_channels if isinstance(m, torch.nn.Conv2d) else full_mods[layer].out_features
            assert out == (10 if ref == 10 else round(ref * info.width)), layer
    assert sum(p.numel() for p in scaled.parameters()) < sum(p.numel() for p in full.parameters()) * info.width


@pytest.mark.parametrize("name", SCALED)
def test_scaled_variant_says_so_plainly(name):
    from cnnviz.models import width_label

    info = get_model_info(name)
    label = width_label(info.width)  # e.g. "1/4 width"
    assert f"at {label}" in info.title and f"at {label}" in info.description
    assert info.family == get_model_info(info.full_width).family and info.cam_layer == get_model_info(info.full_width).cam_layer
    # Small enough to ship: at most 8 MB of float32 weights for Fashion-MNIST.
    assert sum(p.numel() for p in get_model(name, 1, 10, model_input_size(name, 28)).parameters()) * 4 <= 8_000_000
