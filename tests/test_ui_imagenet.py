"""The launched app with torchvision's ImageNet networks (random weights under the real file names in a temp
TORCH_HOME) and a user's own uploaded state_dict: Predict, Explain and Compare on a real photo, the missing-weights
message, and an upload that works for its owner only."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("gradio")
import torch  # noqa: E402
import torchvision  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from test_ui_api import running_app  # noqa: E402  (pytest puts tests/ on sys.path)

from cnnviz.examples import photo_examples  # noqa: E402
from cnnviz.models import get_model  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
CAT = str([p for p, caption in photo_examples() if caption == "tabby cat"][0])
CATEGORIES = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("imagenet-app")
    weights = tmp / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    weights.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp / "torch"))
        with running_app(tmp) as url:
            yield url, tmp


@pytest.fixture(scope="module")
def client(app) -> Iterator[Client]:
    c = Client(app[0], verbose=False)
    yield c
    c.close()


def test_every_menu_lists_the_imagenet_networks_and_what_each_needs(app):
    from cnnviz.ui.common import checkpoint_choices

    labels = dict((name, label) for label, name in checkpoint_choices(None))
    assert labels["imagenet-resnet18"] == "imagenet-resnet18  (ResNet-18 on imagenet, ImageNet weights)"
    for name in ("imagenet-alexnet", "imagenet-vgg16", "imagenet-resnet50"):
        assert labels[name].endswith(", needs download)")
    assert list(labels)[0] != "imagenet-alexnet"  # the shipped small models stay the default choice


def test_predict_a_photo_with_1000_imagenet_classes(client):
    probs, view, details = client.predict("imagenet-resnet18", handle_file(CAT), 5, api_name="/predict")
    assert len(probs["confidences"]) == 5 and {c["label"] for c in probs["confidences"]} <= set(CATEGORIES)
    assert "network input 3×224×224" in details and "ResNet-18" in details


def test_a_network_without_weights_says_what_to_do(client):
    with pytest.raises(AppError, match=r"vgg16-397923af.pth.*fetch-weights imagenet-vgg16"):
        client.predict("imagenet-vgg16", handle_file(CAT), 5, api_name="/predict")


def test_explain_and_compare_with_an_imagenet_network(client):
    out = client.predict(checkpoint="imagenet-resnet18", image=handle_file(CAT), layer="", target="281",
                         opacity=0.5, methods=[], sort="mean", max_maps=16, api_name="/explain")
    summary, layer_menu, target_menu = out[0], out[-2], out[-1]
    assert "explaining **tabby**" in summary and "7×7" in summary
    assert layer_menu["value"] == "layer4" and len(target_menu["choices"]) == 1001
    table, cams, maps, curves, text = client.predict(["imagenet-resnet18", "lenet5-digits"], handle_file(CAT), 0.5,
                                                     "val_acc", api_name="/compare")
    rows = [dict(zip(table["headers"], r, strict=True)) for r in table["data"]]
    assert [r["checkpoint"] for r in rows] == ["imagenet-resnet18", "lenet5-digits"]
    assert int(rows[0]["parameters"]) == 11_689_512  # ResNet-18's published count


def test_random_example_of_an_imagenet_network_is_a_photo(client):
    _image, truth = client.predict("imagenet-resnet18", api_name="/random_example")
    assert truth.split(" (")[0] in {caption for _, caption in photo_examples()}


def test_uploaded_state_dict_works_for_its_owner_only(app, client, tmp_path):
    torch.manual_seed(1)
    torch.save(get_model("lenet5", 1, 10, 28).state_dict(), tmp_path / "mine.pt")
    status, *_ = client.predict(file=handle_file(str(tmp_path / "mine.pt")), arch="lenet5", dataset="fashion-mnist",
                                classes="", input_size=None, name="my-lenet", api_name="/import_model")
    assert "Imported **my-lenet" in status and "only you see it" in status
    probs, _view, details = client.predict("my-lenet", handle_file(CAT), 3, api_name="/predict")
    assert "network input 1×28×28" in details and len(probs["confidences"]) == 3
    other = Client(app[0], verbose=False)
    try:
        with pytest.raises(AppError, match="no checkpoint called 'my-lenet'"):
            other.predict("my-lenet", handle_file(CAT), 3, api_name="/predict")
    finally:
        other.close()


def test_torchscript_upload_is_refused_with_the_export_recipe(client, tmp_path):
    model = get_model("lenet5", 1, 10, 28).eval()
    with pytest.warns(FutureWarning):  # torch deprecates jit.save; users still have such files
        torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 28, 28)), tmp_path / "scripted.pt")
    with pytest.raises(AppError, match=r"TorchScript.*torch.save\(model.state_dict\(\)"):
        client.predict(file=handle_file(str(tmp_path / "scripted.pt")), arch="lenet5", dataset="fashion-mnist",
                       classes="", input_size=None, name="", api_name="/import_model")


def test_download_button_reports_a_failed_download_and_lists_cached_weights(client, monkeypatch):
    def offline(url, dst, hash_prefix=None, progress=True):  # the app runs in this process: no real download
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(AppError, match=r"Could not download .*alexnet-owt-7be5be79.pth.*fetch-weights"):
        client.predict(network="imagenet-alexnet", api_name="/fetch_weights")
    table, predict_menu, _explain_menu = client.predict(network="imagenet-resnet18", api_name="/fetch_weights")
    assert "| `imagenet-resnet18` | ImageNet weights |" in table and "| `imagenet-alexnet` | needs download |" in table
    assert predict_menu["value"] == "imagenet-resnet18"
