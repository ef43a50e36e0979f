"""The shipped checkpoints: each loads, matches its manifest entry and its architecture, and still classifies real test
images (a few hundred, so nothing is retrained or fully re-evaluated here)."""
import json
from pathlib import Path

import pytest
import torch

import cnnviz
from cnnviz.lecture.comparison import FAMILIES_ON_FASHION
from cnnviz.models import get_model, get_model_info
from cnnviz.store.checkpoints import load_checkpoint
from cnnviz.train.evaluate import evaluate_checkpoint

SHIPPED_DIR = Path(cnnviz.__file__).parent / "shipped" / "checkpoints"
MANIFEST = json.loads((SHIPPED_DIR / "manifest.json").read_text())
FASHION = [e for e in MANIFEST if e["dataset"] == "fashion-mnist"]


def test_the_four_classic_families_ship_trained_on_fashion_mnist():
    names = {e["name"] for e in MANIFEST}
    assert set(FAMILIES_ON_FASHION) <= names
    families = {get_model_info(e["arch"]).family for e in FASHION}
    assert families >= {"LeNet", "AlexNet", "VGG", "ResNet"}
    for name in ("lenet5-fashion-mnist", "lenet5-digits", "tinyvgg-shapes"):  # the older ones stay
        assert name in names


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["name"] for e in MANIFEST])
def test_manifest_entry_matches_its_checkpoint(entry):
    path = SHIPPED_DIR / f"{entry['name']}.pt"
    assert path.stat().st_size == entry["bytes"] <= 8_000_000
    loaded = load_checkpoint(path)
    meta = loaded.meta
    assert (meta.arch, meta.dataset, len(meta.history)) == (entry["arch"], entry["dataset"], entry["epochs"])
    assert meta.metrics["test_acc"] == pytest.approx(entry["test_acc"], abs=5e-5)
    assert entry["command"].startswith("python -m cnnviz train ") and f"--out {entry['name']}" in entry["command"]
    # The weights fit the registered architecture exactly (same names, same shapes).
    fresh = get_model(meta.arch, meta.in_channels, meta.num_classes, meta.input_size, **meta.arch_kwargs)
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {k: v.shape for k, v in loaded.model.state_dict().items()}


@pytest.mark.parametrize("entry", FASHION, ids=[e["name"] for e in FASHION])
def test_fashion_checkpoint_classifies_real_test_images(entry):
    assert entry["test_acc"] >= 0.88
    if entry["name"] != "lenet5-fashion-mnist":  # shipped before wall and CPU times were recorded
        assert entry["wall_seconds"] > 0 and entry["cpu_seconds"] > 0
    loaded = load_checkpoint(SHIPPED_DIR / f"{entry['name']}.pt")
    torch.manual_seed(0)
    result = evaluate_checkpoint(loaded, subset=300)  # 300 stratified test images: seconds, not minutes
    # 300 images give about +-2 points of noise around the full-test-set figure.
    assert result["num_test"] == 300 and result["test_acc"] >= entry["test_acc"] - 0.07


def test_each_lecture_preset_is_what_its_shipped_checkpoint_was_trained_with():
    from cnnviz.train.config import validate
    from cnnviz.train.presets import PRESETS

    lecture = {name: p for name, p in PRESETS.items() if name.startswith("lecture-")}
    assert set(lecture) == {"lecture-lenet", "lecture-alexnet", "lecture-vgg", "lecture-resnet"}
    by_preset = {e["command"].split("--preset ")[1].split()[0]: e for e in MANIFEST if "--preset" in e["command"]}
    for name, preset in lecture.items():
        validate(preset.config)
        assert preset.config.dataset == "fashion-mnist"
        entry = by_preset.get(name) or by_preset["demo-fashion-mnist"]  # lecture-lenet repeats demo-fashion-mnist
        trained = load_checkpoint(SHIPPED_DIR / f"{entry['name']}.pt").meta.config
        now = preset.config.to_dict()
        keys = set(trained) - {"device", "data_dir", "folder_path"}  # settings added since training are not compared
        assert {k: trained[k] for k in keys} == {k: now.get(k) for k in keys}, name
