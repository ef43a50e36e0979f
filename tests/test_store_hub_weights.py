"""torchvision's ImageNet networks as checkpoints: weights found in a temp TORCH_HOME under the real torchvision file
names (random values: real weights are never committed), the missing-weights message, and the whole path through
predict, explain and compare with the weights' own transforms and 1000 class names."""
from __future__ import annotations

import json

import pytest
import torch
import torchvision
from PIL import Image

from cnnviz.cli.main import main
from cnnviz.examples import photo_examples
from cnnviz.explain.pipeline import explain_image, run_prediction
from cnnviz.explain.preprocess import model_input
from cnnviz.lecture.comparison import compare
from cnnviz.models import WeightsUnavailable
from cnnviz.store import hub_weights
from cnnviz.store.checkpoints import CheckpointError, load_checkpoint
from cnnviz.store.model_cache import ModelCache
from cnnviz.store.workspace import Workspace

CAT = [p for p, caption in photo_examples() if caption == "tabby cat"][0]


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    """A temp torch hub cache holding random-valued ResNet-18 weights under torchvision's real file name."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CNNVIZ_HOME", str(tmp_path / "home"))
    path = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def test_weights_are_looked_up_under_torchvision_file_names(hub):
    assert hub_weights.weights_file("imagenet-resnet18") == hub
    names = {n: hub_weights.weights_file(n).name for n in hub_weights.hub_names()}
    assert names == {"imagenet-alexnet": "alexnet-owt-7be5be79.pth", "imagenet-vgg16": "vgg16-397923af.pth",
                     "imagenet-resnet18": "resnet18-f37072fd.pth", "imagenet-resnet50": "resnet50-0676ba61.pth"}
    notes = {e.name: e.note for e in hub_weights.hub_entries()}
    assert notes == {"imagenet-alexnet": "needs download", "imagenet-vgg16": "needs download",
                     "imagenet-resnet18": "ImageNet weights", "imagenet-resnet50": "needs download"}


def test_missing_weights_say_which_file_goes_where_and_how_to_fetch_it(hub):
    with pytest.raises(WeightsUnavailable) as err:
        ModelCache().open(Workspace(), "imagenet-resnet50")
    msg = str(err.value)
    assert "resnet50-0676ba61.pth" in msg and str(hub.parent) in msg
    assert "python -m cnnviz fetch-weights imagenet-resnet50" in msg and "TORCH_HOME" in msg


def test_a_failed_download_leaves_no_file_and_gives_the_remedies(hub, monkeypatch):
    def offline(url, dst, hash_prefix=None, progress=True):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailable, match="Name or service not known.*alexnet-owt-7be5be79.pth"):
        hub_weights.fetch_weights("imagenet-alexnet", progress=False)
    assert not hub_weights.is_cached("imagenet-alexnet")
    assert hub_weights.fetch_weights("imagenet-resnet18") == hub  # cached: no download at all


def test_cached_network_has_1000_named_classes_and_the_weights_transforms(hub):
    loaded = ModelCache().open(Workspace(), "imagenet-resnet18")
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    assert loaded.meta.class_names == tuple(weights.meta["categories"]) and loaded.meta.num_classes == 1000
    assert torch.equal(loaded.model.fc.weight, torch.load(hub, weights_only=True)["fc.weight"])
    assert not loaded.model.training
    report = run_prediction(loaded, CAT, 5)
    assert len(report.prediction.all_probs) == 1000 and abs(sum(report.prediction.all_probs) - 1) < 1e-4
    assert set(report.prediction.labels) <= set(weights.meta["categories"])
    assert "network input 3×224×224" in report.details


def test_imagenet_input_is_resized_to_256_then_centre_cropped(hub):
    # A 256 px photo with a 16 px red frame: resize 256 + centre crop 224 (the weights' transforms) cuts the frame off
    # exactly; squashing the whole photo to 224 (the small models' path) would keep it.
    img = Image.new("RGB", (256, 256), (255, 0, 0))
    img.paste((0, 0, 255), (16, 16, 240, 240))
    loaded = load_checkpoint("imagenet-resnet18")
    x = model_input(img, loaded.meta)
    mean = torch.tensor(loaded.meta.mean).view(3, 1, 1)
    std = torch.tensor(loaded.meta.std).view(3, 1, 1)
    pixels = x[0] * std + mean
    assert x.shape == (1, 3, 224, 224)
    assert pixels[0].max() < 0.05 and pixels[2].min() > 0.95  # only blue left: no red anywhere


def test_explain_and_compare_an_imagenet_network_on_a_photo(hub):
    loaded = load_checkpoint("imagenet-resnet18")
    exp = explain_image(loaded, CAT, target="tabby")
    assert exp.layer == "layer4" and exp.cam.cam.shape == (7, 7) and len(exp.class_names) == 1000
    assert exp.class_names[exp.target] == "tabby"
    small = load_checkpoint("lenet5-digits")
    rows = compare([loaded, small], Image.open(CAT).convert("RGB"))
    assert [r.name for r in rows] == ["imagenet-resnet18", "lenet5-digits"]
    assert rows[0].prediction.labels[0] in exp.class_names and rows[1].view.size[0] >= 224


def test_damaged_or_wrong_file_under_the_real_name_is_refused(hub):
    blob = hub.read_bytes()
    hub.write_bytes(blob[: len(blob) // 3])
    with pytest.raises(CheckpointError, match="resnet18-f37072fd.pth .*cannot be read.*delete it"):
        load_checkpoint("imagenet-resnet18")
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), hub)
    with pytest.raises(CheckpointError, match=r"fc.weight has shape \(10, 512\).*needs \(1000, 512\)"):
        load_checkpoint("imagenet-resnet18")


def test_cli_predicts_with_a_cached_network_and_checks_the_cache(hub, capsys):
    assert main(["predict", "--checkpoint", "imagenet-resnet18", "--image", str(CAT), "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["top"]
    categories = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    assert len(top) == 5 and all(categories[t["index"]] == t["label"] for t in top)
    assert main(["fetch-weights", "--check", "all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("imagenet-resnet18") and "cached" in line for line in lines)
    assert any(line.startswith("imagenet-vgg16") and "needs download" in line for line in lines)
    assert main(["predict", "--checkpoint", "imagenet-vgg16", "--image", str(CAT)]) == 2
    assert "fetch-weights imagenet-vgg16" in capsys.readouterr().err
    assert main(["fetch-weights", "imagenet-nope"]) == 2
    assert "choose one of: imagenet-alexnet" in capsys.readouterr().err


def test_lecture_views_take_the_photo_or_say_why_they_cannot(hub):
    from cnnviz.lecture.drilldown import trained_dataset
    from cnnviz.lecture.errors import LectureError
    from cnnviz.lecture.sanity_stream import explained_input

    loaded = load_checkpoint("imagenet-resnet18")
    x, view, source = explained_input(loaded, None)  # the sanity check without an upload: the cat photo
    assert x.shape == (1, 3, 224, 224) and source == "the photo of a tabby cat"
    with pytest.raises(LectureError, match="ImageNet, whose 50,000 test photos do not come with cnnviz"):
        trained_dataset(loaded)  # the confusion drill-down
