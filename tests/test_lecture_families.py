"""The classic families side by side: the Compare tab's defaults and its mixed-dataset warning, and the Architecture
page's full-width vs scaled counts."""
import PIL.Image

from cnnviz.lecture.architecture_page import architecture_page
from cnnviz.lecture.comparison import FAMILIES_ON_FASHION, comparison_report, default_checkpoints, mixed_datasets_note
from cnnviz.lecture.overview import width_counts
from cnnviz.models import get_model


def test_compare_defaults_to_the_four_families_on_fashion_mnist():
    menu = {"lenet5-fashion-mnist": "fashion-mnist", "lenet5-digits": "digits", "tinyvgg-shapes": "shapes",
            "alexnet-fashion-mnist": "fashion-mnist", "vgg11-fashion-mnist": "fashion-mnist",
            "resnet18-fashion-mnist": "fashion-mnist", "mine": "digits"}
    assert default_checkpoints(menu) == list(FAMILIES_ON_FASHION)
    # Without the shipped families: checkpoints that share the first one's dataset, never a mixed set.
    assert default_checkpoints({"a": "digits", "b": "shapes", "c": "digits"}) == ["a", "c"]
    assert default_checkpoints({}) == []


def test_a_mixed_set_is_named_and_a_same_dataset_set_is_not():
    assert mixed_datasets_note({"a": "fashion-mnist", "b": "fashion-mnist"}) == ""
    note = mixed_datasets_note({"a": "fashion-mnist", "b": "digits", "c": "fashion-mnist"})
    assert "Mixed datasets" in note and "fashion-mnist: a, c" in note and "digits: b" in note
    assert "same dataset" in note  # says how to fix it


def test_the_report_warns_when_the_compared_checkpoints_mix_datasets():
    from cnnviz.store.checkpoints import load_checkpoint

    models = [load_checkpoint("lenet5-fashion-mnist"), load_checkpoint("lenet5-digits")]
    text = comparison_report(models, PIL.Image.new("L", (28, 28), 128), 0.5).text
    assert text.startswith("**Mixed datasets**") and "digits: lenet5-digits" in text


def test_architecture_page_shows_full_and_scaled_counts():
    counts = width_counts("resnet18_quarter", "fashion-mnist")
    assert [c.arch for c in counts] == ["resnet18", "resnet18_quarter"]
    full = get_model("resnet18", 1, 10, 28)
    assert counts[0].params == sum(p.numel() for p in full.parameters())  # against the built model
    assert counts[0].params > 15 * counts[1].params and counts[0].flops > 15 * counts[1].flops  # ~1/16 of each
    header = architecture_page("resnet18_quarter", "fashion-mnist").header
    assert "Full width and scaled" in header and f"{counts[0].params:,}" in header and f"{counts[1].params:,}" in header
    assert "**ResNet-18 at 1/4 width" in header  # the one shown is in bold
    # The full network's page lists its scaled variant too; a family without one shows no table.
    assert "AlexNet at 1/8 width" in architecture_page("alexnet", "fashion-mnist").header
    assert "Full width and scaled" not in architecture_page("lenet5", "fashion-mnist").header
