"""A user's own .pt: a state_dict of a registered architecture or a cnnviz checkpoint becomes their own entry (only
their workspace sees it); TorchScript, pickled whole models, damaged, oversize and mismatched files are refused with a
message that says what to do, and never run code."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from cnnviz.cli.main import main
from cnnviz.examples import first_of_class
from cnnviz.explain.predict import predict_image, probabilities
from cnnviz.models import get_model
from cnnviz.store.checkpoints import CheckpointError, load_checkpoint
from cnnviz.store.model_cache import ModelCache
from cnnviz.store.paths import shipped_checkpoints_dir
from cnnviz.store.user_models import import_to_workspace, load_user_model, read_model_file
from cnnviz.store.workspace import Workspace


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def lenet_state(path, seed=0):
    """A LeNet-5 for 1x28x28 Fashion-MNIST, saved as a plain state_dict; returns the model."""
    torch.manual_seed(seed)
    model = get_model("lenet5", 1, 10, 28).eval()
    torch.save(model.state_dict(), path)
    return model


def test_state_dict_becomes_the_owners_entry_only(home):
    model = lenet_state(home / "my-lenet.pt")
    ann, bob = Workspace.new(), Workspace.new()
    done = import_to_workspace(home / "my-lenet.pt", ann, arch="lenet5", dataset="fashion-mnist")
    assert done.name == "my-lenet" and done.meta.class_names[9] == "Ankle boot" and done.meta.input_size == 28
    assert "my-lenet" in {e.name for e in ann.checkpoints()} and ann.owns(done.path)
    assert "my-lenet" not in {e.name for e in bob.checkpoints()} | {e.name for e in Workspace().checkpoints()}
    cache = ModelCache()
    loaded = cache.open(ann, "my-lenet")
    boot = first_of_class("fashion-mnist", "Ankle boot").image
    pred, x = predict_image(loaded, boot, 10)
    oracle = torch.softmax(model(x), dim=1)[0]  # the user's own module on the same input
    assert torch.allclose(torch.tensor(pred.all_probs), oracle, atol=1e-6)
    with pytest.raises(CheckpointError, match="no checkpoint called 'my-lenet'"):
        cache.open(bob, "my-lenet")
    with pytest.raises(CheckpointError, match="already a checkpoint called 'my-lenet'"):
        import_to_workspace(home / "my-lenet.pt", ann, arch="lenet5", dataset="fashion-mnist")


def test_class_names_and_input_size_instead_of_a_dataset(home):
    lenet_state(home / "w.pt")
    model, meta, source = load_user_model(home / "w.pt", arch="lenet5", class_names=list("ABCDEFGHIJ"), input_size=28)
    assert source == "state_dict" and meta.class_names == tuple("ABCDEFGHIJ") and meta.in_channels == 1
    with pytest.raises(CheckpointError, match="choose the dataset .* or give its class names"):
        load_user_model(home / "w.pt", arch="lenet5")
    with pytest.raises(CheckpointError, match="choose the architecture"):
        load_user_model(home / "w.pt")


def test_a_shape_mismatch_names_the_layer_and_both_shapes(home):
    lenet_state(home / "w.pt")
    with pytest.raises(CheckpointError, match=r"features.0.weight has shape \(6, 1, 5, 5\).*needs \(6, 3, 5, 5\)"
                                              r".*dataset or class names and input size"):
        load_user_model(home / "w.pt", arch="lenet5", dataset="shapes")  # RGB shapes: 3 input channels
    with pytest.raises(CheckpointError, match="do not fit resnet18"):
        load_user_model(home / "w.pt", arch="resnet18", dataset="fashion-mnist")


def test_torchscript_and_pickled_models_are_refused_with_the_export_recipe(home, recwarn):
    model = lenet_state(home / "w.pt")
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 28, 28)), home / "scripted.pt")
    with pytest.raises(CheckpointError, match=r"TorchScript.*torch.save\(model.state_dict\(\), 'weights.pt'\)"):
        read_model_file(home / "scripted.pt")
    torch.save(model, home / "whole.pt")
    with pytest.raises(CheckpointError, match=r"pickled Python object \(cnnviz.models.*state_dict\(\)"):
        read_model_file(home / "whole.pt")


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = "/tmp/cnnviz-test-user-models-pwned"


def test_a_pickle_that_would_run_code_runs_nothing(home):
    if os.path.exists(MARKER):
        os.remove(MARKER)
    torch.save({"fc.weight": _Payload()}, home / "evil.pt")  # torch.save's own zip format, as an attacker would
    with open(home / "evil-legacy.pt", "wb") as f:
        pickle.dump({"fc.weight": _Payload()}, f, protocol=2)  # a bare pickle
    for name in ("evil.pt", "evil-legacy.pt"):
        with pytest.raises(CheckpointError, match=r"pickled Python object \(posix.system\).*refused"):
            load_user_model(home / name, arch="lenet5", dataset="fashion-mnist")
    assert not os.path.exists(MARKER)


def test_empty_corrupt_truncated_and_oversize_files_are_refused(home):
    (home / "empty.pt").write_bytes(b"")
    (home / "noise.pt").write_bytes(os.urandom(4096))
    lenet_state(home / "w.pt")
    blob = (home / "w.pt").read_bytes()
    (home / "cut.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="empty"):
        read_model_file(home / "empty.pt")
    for name in ("noise.pt", "cut.pt"):
        with pytest.raises(CheckpointError, match=f"{name} is not a readable PyTorch file.*damaged or cut off"):
            read_model_file(home / name)
    with pytest.raises(CheckpointError, match="the limit here is 0 MB"):
        read_model_file(home / "w.pt", max_bytes=len(blob) - 1)


def test_a_cnnviz_checkpoint_imports_as_it_is(home):
    shipped = shipped_checkpoints_dir() / "lenet5-digits.pt"
    ws = Workspace.new()
    done = import_to_workspace(shipped, ws, name="digits-copy")
    assert done.source == "cnnviz checkpoint" and done.meta == load_checkpoint(shipped).meta
    with pytest.raises(CheckpointError, match="torchvision's ImageNet network"):
        import_to_workspace(shipped, ws, name="imagenet-resnet18")


def test_an_imagenet_state_dict_keeps_the_1000_classes_and_transforms(home):
    torch.manual_seed(0)
    model = get_model("imagenet-resnet18", 3, 1000).eval()
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 90}, home / "r18.pt")
    loaded_model, meta, _ = load_user_model(home / "r18.pt", arch="imagenet-resnet18")
    assert meta.dataset == "imagenet" and len(meta.class_names) == 1000 and meta.class_names[281] == "tabby"
    x = torch.randn(2, 3, 224, 224)
    assert np.allclose(probabilities(loaded_model, x), probabilities(model, x), atol=1e-6)


def test_cli_import_writes_a_checkpoint_every_command_opens(home, capsys):
    lenet_state(home / "w.pt")
    assert main(["import", str(home / "w.pt"), "--arch", "lenet5", "--dataset", "fashion-mnist", "--name", "mine"]) == 0
    assert "--checkpoint mine" in capsys.readouterr().out
    assert load_checkpoint("mine").meta.dataset == "fashion-mnist"
    assert main(["import", str(home / "w.pt"), "--arch", "lenet5", "--dataset", "fashion-mnist", "--name", "mine"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["import", str(home / "w.pt"), "--arch", "lenet5", "--dataset", "digits", "--name", "x"]) == 2
    assert "has shape" in capsys.readouterr().err
