"""Example images: real test-split samples of a dataset, and the files in cnnviz/shipped/examples (package data).

`python -m cnnviz.examples` regenerates cnnviz/shipped/examples/ from the offline datasets (run it in a checkout).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import PIL.Image

from .data import DatasetUnavailable, get_dataset_info, load_dataset
from .images import load_image, uint8_to_pil
from .store.paths import examples_dir, photos_dir

# dataset -> classes written to shipped/examples (real test images; a few per dataset keeps the menu short)
ASSET_CLASSES = {"fashion-mnist": ("Sneaker", "Trouser", "Bag", "Ankle boot", "Dress"),
                 "digits": ("3", "7"), "shapes": ("star", "triangle", "circle")}


@dataclass(frozen=True)
class Example:
    """One test image at its native size, with its true label and where it came from."""

    image: PIL.Image.Image
    label: str
    dataset: str
    index: int


def test_example(dataset: str, index: int | None = None, rng: random.Random | None = None) -> Example:
    """Test image `index` of `dataset` (a random one when None); DatasetUnavailable when the data is missing. ImageNet
    networks have no test split here: they get one of the shipped photos."""
    if dataset == PHOTO_DATASET:
        photos = photo_examples()
        index = (rng or random.Random()).randrange(len(photos)) if index is None else int(index) % len(photos)
        return Example(load_image(photos[index][0]), photos[index][1], "shipped photos", index)
    ds = load_dataset(dataset, download=False)
    n = len(ds.test)
    if index is None:
        index = (rng or random.Random()).randrange(n)
    index = int(index) % n
    label = ds.info.class_names[int(ds.test.labels[index])]
    return Example(uint8_to_pil(ds.test.images[index]), label, dataset, index)


def first_of_class(dataset: str, class_name: str) -> Example:
    """The first test image whose label is `class_name`."""
    ds = load_dataset(dataset, download=False)
    k = ds.info.class_names.index(class_name)
    index = int((ds.test.labels == k).nonzero()[0, 0])
    return Example(uint8_to_pil(ds.test.images[index]), class_name, dataset, index)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def asset_examples() -> list[tuple[Path, str]]:
    """(path, caption) for every PNG in the shipped examples, named `<dataset>_<class>.png`."""
    folder = examples_dir()
    out = []
    for path in sorted(folder.glob("*.png")):
        dataset, _, slug = path.stem.partition("_")
        try:  # the class's own spelling, e.g. 'Ankle boot'
            names = {_slug(n): n for n in get_dataset_info(dataset).class_names}
        except KeyError:
            names = {}
        out.append((path, f"{names.get(slug, slug.replace('-', ' '))} ({dataset})"))
    return out


# shipped/photos/<file> -> what it shows (CREDITS.md there: author and licence of each)
PHOTO_CAPTIONS = {"chelsea-cat.jpg": "tabby cat", "coffee-cup.jpg": "cup of coffee", "astronaut.jpg": "astronaut",
                  "rocket.jpg": "rocket launch"}
PHOTO_DATASET = "imagenet"  # the dataset name of torchvision's ImageNet weights (store.hub_weights.DATASET)


def photo_examples() -> list[tuple[Path, str]]:
    """(path, caption) for the real photos shipped for the ImageNet networks, in a fixed order."""
    folder = photos_dir()
    return [(folder / name, caption) for name, caption in PHOTO_CAPTIONS.items() if (folder / name).is_file()]


def examples_for(dataset: str | None) -> list[tuple[Path, str]]:
    """(path, caption) of the examples that fit a checkpoint trained on `dataset`: its own shipped test images, the
    photos for ImageNet networks, none for other datasets (a bag shown to a shapes model only teaches confusion)."""
    if dataset == PHOTO_DATASET:
        return photo_examples()
    return [(p, c) for p, c in asset_examples() if p.stem.partition("_")[0] == dataset]


def write_asset_examples(folder: Path | None = None) -> list[Path]:
    """Write one native-size PNG per class in ASSET_CLASSES (datasets that are not on disk are skipped)."""
    folder = folder or examples_dir()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for dataset, classes in ASSET_CLASSES.items():
        for cls in classes:
            try:
                ex = first_of_class(dataset, cls)
            except DatasetUnavailable:
                break
            path = folder / f"{dataset}_{_slug(cls)}.png"
            ex.image.save(path, format="PNG", optimize=True)
            written.append(path)
    return written


if __name__ == "__main__":
    for p in write_asset_examples():
        print(p)
