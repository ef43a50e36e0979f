"""cnnviz.data: tiny files in the real on-disk formats, the real Fashion-MNIST, shapes, folders, subsets."""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

import cnnviz.data as data
from cnnviz.data import DatasetCorrupt, DatasetUnavailable, load_dataset, realdata, registry
from cnnviz.data.idx import parse_idx

FMNIST_SYSTEM = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No system dataset dir, no CNNVIZ_DATA, no cached datasets from other tests."""
    monkeypatch.setattr(registry, "SYSTEM_DATA_ROOT", tmp_path / "system")
    monkeypatch.delenv("CNNVIZ_DATA", raising=False)
    data.clear_cache()
    yield tmp_path
    data.clear_cache()


def write_idx(path: Path, arr: np.ndarray, gz: bool = True) -> None:
    """The real IDX layout: 0, 0, type 0x08 (uint8), ndim, big-endian uint32 dims, then the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(blob)


def make_idx_set(folder: Path, n_train: int = 30, n_test: int = 20, gz: bool = True, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte": np.arange(n_train) % 10,
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.permutation(np.arange(n_test) % 10)}
    for stem, arr in arrays.items():
        write_idx(folder / (stem + (".gz" if gz else "")), arr, gz)
    return arrays


def write_pickle(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))  # protocol 2, as the Python 2 originals


def make_cifar10(folder: Path, per_batch: int = 4, meta: bool = True) -> tuple[np.ndarray, list[int], np.ndarray, list[int]]:
    rng = np.random.default_rng(1)
    train_x = rng.integers(0, 256, (5 * per_batch, 3072), dtype=np.uint8)
    train_y = [int(v) for v in rng.integers(0, 10, 5 * per_batch)]
    for b in range(5):
        sl = slice(b * per_batch, (b + 1) * per_batch)
        write_pickle(folder / f"data_batch_{b + 1}", {b"batch_label": b"training batch", b"data": train_x[sl],
                                                      b"labels": train_y[sl]})
    test_x, test_y = rng.integers(0, 256, (6, 3072), dtype=np.uint8), [9, 8, 7, 0, 1, 2]
    write_pickle(folder / "test_batch", {b"data": test_x, b"labels": test_y})
    if meta:
        write_pickle(folder / "batches.meta", {b"label_names": [f"class-{i}".encode() for i in range(10)]})
    return train_x, train_y, test_x, test_y


# ---------- registry ----------

def test_list_datasets_order() -> None:
    assert data.list_datasets() == ["fashion-mnist", "mnist", "cifar10", "cifar100", "digits", "shapes", "folder"]


@pytest.mark.parametrize("name", data.list_datasets())
def test_info_is_consistent(name: str, tmp_path: Path) -> None:
    info = data.get_dataset_info(name)
    assert info.name == name and info.title and info.source
    assert info.description.count(". ") >= 1 and info.description.endswith(".")  # two sentences
    assert info.channels in (1, 3) and len(info.mean) == len(info.std) == info.channels
    assert all(0 < m < 1 for m in info.mean) and all(0 < s < 1 for s in info.std)
    assert len(info.class_names) == info.num_classes == len(set(info.class_names))
    assert info.size >= 8
    assert info.offline == (name in ("digits", "shapes"))
    expected = {"digits": "offline-ready", "shapes": "offline-ready", "folder": "needs a folder path"}
    assert data.availability(name, tmp_path / "empty") == expected.get(name, "needs download")


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(KeyError, match="fashion-mnist.*shapes"):
        data.get_dataset_info("imagenet-21k")
    with pytest.raises(KeyError, match="cifar10"):
        load_dataset("nope")


def test_resolve_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert data.resolve_data_dir() == tmp_path.resolve() / "data"
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path / "env"))
    assert data.resolve_data_dir() == tmp_path / "env"
    assert data.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"


# ---------- IDX (Fashion-MNIST, MNIST) ----------

@pytest.mark.parametrize("name,layout,gz", [
    ("fashion-mnist", "FashionMNIST/raw", True), ("fashion-mnist", "FashionMNIST/raw", False),
    ("fashion-mnist", "fashion-mnist", True), ("mnist", "MNIST/raw", True), ("mnist", "mnist", False),
])
def test_idx_round_trip(tmp_path: Path, name: str, layout: str, gz: bool) -> None:
    arrays = make_idx_set(tmp_path / "d" / layout, gz=gz)
    assert data.availability(name, tmp_path / "d") == "offline-ready"
    ds = load_dataset(name, data_dir=tmp_path / "d", download=False)
    assert ds.train.images.shape == (30, 1, 28, 28) and ds.train.images.dtype == torch.uint8
    assert np.array_equal(ds.train.images[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(ds.test.images[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    assert ds.test.labels.dtype == torch.int64
    assert np.array_equal(ds.test.labels.numpy(), arrays["t10k-labels-idx1-ubyte"])


def test_system_dir_is_used(tmp_path: Path) -> None:
    arrays = make_idx_set(registry.SYSTEM_DATA_ROOT / "fashion-mnist")
    ds = load_dataset("fashion-mnist", data_dir=tmp_path / "empty", download=False)
    assert np.array_equal(ds.train.labels.numpy(), arrays["train-labels-idx1-ubyte"])


def test_parse_idx_checks_header() -> None:
    good = bytes([0, 0, 8, 2]) + struct.pack(">2I", 2, 3) + bytes(range(6))
    assert parse_idx(good).tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(DatasetCorrupt, match="magic"):
        parse_idx(b"\x1f\x8b" + good[2:])
    with pytest.raises(DatasetCorrupt, match="truncated"):
        parse_idx(good[:-1])
    with pytest.raises(DatasetCorrupt, match="holds 7 data bytes"):
        parse_idx(good + b"\x00")  # trailing bytes mean the header and data disagree too
    with pytest.raises(DatasetCorrupt, match="unsupported"):
        parse_idx(bytes([0, 0, 0x42, 2]) + good[4:])


def test_corrupt_idx_files_named(tmp_path: Path) -> None:
    folder = tmp_path / "d" / "FashionMNIST" / "raw"
    make_idx_set(folder)
    victim = folder / "train-images-idx3-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:-100])  # truncated gzip stream
    with pytest.raises(DatasetCorrupt, match="train-images-idx3-ubyte.gz") as err:
        load_dataset("fashion-mnist", data_dir=tmp_path / "d", download=False)
    assert isinstance(err.value, ValueError) and isinstance(err.value, DatasetUnavailable)
    # A well-formed gzip whose IDX header claims more images than it holds.
    write_idx(victim, np.zeros((30, 28, 28)))
    raw = gzip.decompress(victim.read_bytes())
    victim.write_bytes(gzip.compress(raw[:-28 * 28]))
    with pytest.raises(DatasetCorrupt, match="train-images-idx3-ubyte.gz.*truncated"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "d", download=False)


def test_real_fashion_mnist() -> None:
    registry.SYSTEM_DATA_ROOT = Path("/usr/share/datasets")  # the autouse fixture restores it
    if not all((FMNIST_SYSTEM / f).is_file() for f in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")):
        pytest.fail(f"the real Fashion-MNIST is missing from {FMNIST_SYSTEM}: run `apt-get install dataset-fashion-mnist`")
    ds = load_dataset("fashion-mnist", data_dir="/nonexistent-cnnviz-data", download=False)
    assert ds.train.images.shape == (60000, 1, 28, 28) and ds.test.images.shape == (10000, 1, 28, 28)
    assert ds.train.labels.bincount().tolist() == [6000] * 10
    assert ds.test.labels.bincount().tolist() == [1000] * 10
    assert ds.train.labels[:5].tolist() == [9, 0, 0, 3, 0]  # the published first training labels
    assert ds.info.class_names[9] == "Ankle boot"
    x = ds.train.images.float() / 255
    assert abs(x.mean().item() - ds.info.mean[0]) < 1e-3 and abs(x.std().item() - ds.info.std[0]) < 1e-3


# ---------- unavailable and download ----------

def test_unavailable_names_every_remedy(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("mnist", data_dir=empty, download=False)
    msg = str(err.value)
    assert str(empty / "MNIST" / "raw") in msg and str(registry.SYSTEM_DATA_ROOT / "mnist") in msg
    assert "internet" in msg and "download=True" in msg and "\n" not in msg
    with pytest.raises(DatasetUnavailable, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", data_dir=empty, download=False)


def test_download_failure_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(spec: realdata.RealSpec, data_dir: Path) -> None:
        raise URLError("Temporary failure\nin name resolution")
    monkeypatch.setattr(realdata, "torchvision_download", offline)
    with pytest.raises(DatasetUnavailable, match="cifar-10-batches-py.*internet.*failure in name resolution"):
        load_dataset("cifar10", data_dir=tmp_path / "d")  # no (?s): the message is one line


def test_download_then_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake(spec: realdata.RealSpec, data_dir: Path) -> None:  # writes what torchvision's download would
        calls.append(spec.torchvision_class)
        make_idx_set(data_dir / "MNIST" / "raw", gz=False)
    monkeypatch.setattr(realdata, "torchvision_download", fake)
    ds = load_dataset("mnist", data_dir=tmp_path / "d")
    assert calls == ["MNIST"] and len(ds.train) == 30
    load_dataset("mnist", data_dir=tmp_path / "d")
    assert calls == ["MNIST"]  # found on disk the second time


def test_torchvision_download_lands_where_we_look(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.mnist as tv_mnist
    urls = []

    def fake_mnist(url: str, download_root: str, filename: str, md5: str) -> None:  # no network: write the file
        urls.append(url)
        stem = filename.removesuffix(".gz")
        arr = np.zeros((3, 28, 28)) if "images" in stem else np.arange(3)
        write_idx(Path(download_root) / filename, arr)

    def fake_cifar(url: str, download_root: str, filename: str, md5: str) -> None:
        urls.append(url)
        make_cifar10(Path(download_root) / "cifar-10-batches-py")
    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", fake_mnist)
    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", fake_cifar)
    assert len(load_dataset("fashion-mnist", data_dir=tmp_path / "d").test) == 3
    assert len(load_dataset("cifar10", data_dir=tmp_path / "d").train) == 20
    assert len(urls) == 5 and "t10k-labels-idx1-ubyte.gz" in urls[3] and urls[4].endswith("cifar-10-python.tar.gz")
    assert (tmp_path / "d" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()


# ---------- CIFAR ----------

def test_cifar10_round_trip(tmp_path: Path) -> None:
    train_x, train_y, test_x, test_y = make_cifar10(tmp_path / "d" / "cifar-10-batches-py")
    ds = load_dataset("cifar10", data_dir=tmp_path / "d", download=False)
    assert ds.train.images.shape == (20, 3, 32, 32) and ds.train.images.is_contiguous()
    assert np.array_equal(ds.train.images.numpy().reshape(20, 3072), train_x)
    assert ds.train.labels.tolist() == train_y and ds.test.labels.tolist() == test_y
    # Row layout: 1024 red values, then green, then blue, each row-major 32x32.
    assert ds.test.images[2, 1, 3, 5].item() == test_x[2, 1024 + 3 * 32 + 5]
    assert ds.info.class_names == tuple(f"class-{i}" for i in range(10))  # read from batches.meta


def test_cifar100_round_trip_and_fallback_names(tmp_path: Path) -> None:
    folder = tmp_path / "d" / "cifar-100-python"
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (7, 3072), dtype=np.uint8)
    write_pickle(folder / "train", {b"data": x, b"fine_labels": [0, 99, 5, 5, 1, 2, 3], b"coarse_labels": [0] * 7})
    write_pickle(folder / "test", {b"data": x[:2], b"fine_labels": [42, 7], b"coarse_labels": [0, 0]})
    ds = load_dataset("cifar100", data_dir=tmp_path / "d", download=False)
    assert ds.info.num_classes == 100 and ds.info.class_names[:2] == ("apple", "aquarium_fish")
    assert ds.train.labels.tolist() == [0, 99, 5, 5, 1, 2, 3] and ds.test.labels.tolist() == [42, 7]
    assert np.array_equal(ds.test.images.numpy().reshape(2, 3072), x[:2])
    data.clear_cache()
    write_pickle(folder / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                                   b"coarse_label_names": [b"c"] * 20})
    assert load_dataset("cifar100", data_dir=tmp_path / "d", download=False).info.class_names[42] == "f42"


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_cifar_pickle_with_foreign_globals_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "d" / "cifar-10-batches-py"
    make_cifar10(folder)
    marker = tmp_path / "pwned"
    write_pickle(folder / "data_batch_3", {b"data": _Evil(marker), b"labels": [0]})
    with pytest.raises(DatasetCorrupt, match="(?s)data_batch_3.*refused.*os.system|posix.system"):
        load_dataset("cifar10", data_dir=tmp_path / "d", download=False)
    assert not marker.exists()


def test_cifar_bad_shapes_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "d" / "cifar-10-batches-py"
    make_cifar10(folder)
    write_pickle(folder / "test_batch", {b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]})
    with pytest.raises(DatasetCorrupt, match="test_batch"):
        load_dataset("cifar10", data_dir=tmp_path / "d", download=False)


# ---------- subsets and the cache ----------

def test_subset_is_stratified_and_deterministic() -> None:
    a = load_dataset("digits", subset=50, seed=3)
    b = load_dataset("digits", subset=50, seed=3)
    c = load_dataset("digits", subset=50, seed=4)
    assert len(a.train) == len(a.test) == 50
    assert a.train.labels.bincount(minlength=10).tolist() == [5] * 10
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.train.images, c.train.images)
    big = load_dataset("digits", subset=1000)
    assert len(big.train) == 1000 and len(big.test) == len(load_dataset("digits").test)  # test: min(N, len)


def test_subset_of_unbalanced_labels_keeps_every_class() -> None:
    from cnnviz.data.sampling import stratified_counts
    assert stratified_counts(np.array([90, 9, 1]), 10).tolist() == [8, 1, 1]  # proportional would give class 2 none
    assert stratified_counts(np.array([50, 50]), 7).tolist() == [4, 3]
    assert stratified_counts(np.array([3, 0, 3]), 100).tolist() == [3, 0, 3]  # never more than a class has
    picks = {tuple(stratified_counts(np.full(10, 100), 3, np.random.default_rng(s)).tolist()) for s in range(20)}
    assert len(picks) > 5 and all(sum(p) == 3 and max(p) == 1 for p in picks)  # ties broken by the seed


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "10"])
def test_invalid_subset(bad: object) -> None:
    with pytest.raises(ValueError, match="subset"):
        load_dataset("digits", subset=bad)


def test_callers_cannot_corrupt_the_cache() -> None:
    first = load_dataset("digits")
    keep = first.train.images.clone()
    first.train.images.zero_()
    first.train.labels.fill_(7)
    again = load_dataset("digits")
    assert torch.equal(again.train.images, keep) and not torch.all(again.train.labels == 7)


# ---------- digits ----------

def test_digits() -> None:
    a, b = load_dataset("digits", seed=0), load_dataset("digits", seed=9)
    assert len(a.train) + len(a.test) == 1797 and a.train.images.shape[1:] == (1, 8, 8)
    assert a.train.images.max().item() == 255 and a.train.images.min().item() == 0
    assert torch.equal(a.test.images, b.test.images)  # the split never depends on the seed
    counts = a.test.labels.bincount().tolist()
    assert max(counts) - min(counts) <= 2 and 350 <= len(a.test) <= 370
    x = a.train.images.float() / 255
    assert abs(x.mean().item() - a.info.mean[0]) < 2e-3 and abs(x.std().item() - a.info.std[0]) < 2e-3


def test_shipped_digits_are_exactly_scikit_learns() -> None:
    from cnnviz.data.digits import load_raw
    images, labels = load_raw()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and labels.shape == (1797,)
    assert images.min() == 0 and images.max() == 16  # block counts, as in the UCI files
    # The UCI page's class counts for its test set, which is what scikit-learn bundles.
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # load_digits().images[0] (a 0), as printed in scikit-learn's documentation.
    assert images[0].tolist()[:2] == [[0, 0, 5, 13, 9, 1, 0, 0], [0, 0, 13, 15, 10, 15, 5, 0]] and labels[0] == 0
    # sha256 of load_digits().images.astype(uint8) and .target.astype(uint8) from scikit-learn 1.9.1, taken when
    # the file was made: every pixel and label is scikit-learn's.
    assert hashlib.sha256(images.tobytes()).hexdigest() == "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3"
    assert hashlib.sha256(labels.astype(np.uint8).tobytes()).hexdigest() == \
        "8ba4f891220f5e4c9c819638d1602d74b83618f167043c6da52a2a247841ddf0"


def test_loading_digits_needs_no_scikit_learn() -> None:
    code = ("import sys; sys.modules['sklearn'] = None\n"  # any `import sklearn` now raises ImportError
            "from cnnviz import load_dataset; d = load_dataset('digits'); print(len(d.train) + len(d.test))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "1797", out.stderr[-2000:]


# ---------- shapes ----------

def _ring(mask: np.ndarray, width: int = 2) -> np.ndarray:
    grown = mask.copy()
    for _ in range(width):
        g = grown.copy()
        g[1:] |= grown[:-1]
        g[:-1] |= grown[1:]
        g[:, 1:] |= grown[:, :-1]
        g[:, :-1] |= grown[:, 1:]
        grown = g
    return grown & ~mask


def test_shapes() -> None:
    start = time.perf_counter()
    ds = load_dataset("shapes", seed=0)
    assert time.perf_counter() - start < 5  # vectorised; ~0.7 s on 2 cores (a per-image loop takes far longer)
    assert ds.train.images.shape == (6000, 3, 32, 32) and ds.test.images.shape == (1000, 3, 32, 32)
    assert ds.train.labels.bincount().tolist() == [1200] * 5
    masks = ds.train.masks.numpy()
    assert masks.shape == (6000, 32, 32) and masks.sum(axis=(1, 2)).min() >= 20
    border = masks[:, 0].any() or masks[:, -1].any() or masks[:, :, 0].any() or masks[:, :, -1].any()
    assert not border  # every object lies inside the image, off the border
    imgs = ds.train.images.numpy().astype(np.float64) / 255
    for i in range(0, 6000, 37):  # the object stands out from the background right around it
        inside = imgs[i][:, masks[i]].mean(axis=1)
        around = imgs[i][:, _ring(masks[i])].mean(axis=1)
        assert np.abs(inside - around).max() > 0.15, i
    x = ds.train.images.float() / 255
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.tensor(ds.info.mean), atol=0.01)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.tensor(ds.info.std), atol=0.01)


def test_shapes_determinism_and_no_overlap() -> None:
    a, b, c = load_dataset("shapes", seed=1), load_dataset("shapes", seed=1), load_dataset("shapes", seed=2)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.masks, b.test.masks)
    assert torch.equal(a.train.labels, b.train.labels)
    assert not torch.equal(a.train.images, c.train.images)
    data.clear_cache()  # regenerate from scratch: still identical
    assert torch.equal(load_dataset("shapes", seed=1).test.images, a.test.images)

    def digests(images: torch.Tensor) -> set[str]:
        return {hashlib.sha1(row.tobytes()).hexdigest() for row in images.numpy()}
    assert not digests(a.train.images) & digests(a.test.images)


# ---------- folder ----------

def _make_folder(root: Path, grey: bool = False) -> None:
    rng = np.random.default_rng(0)
    for k, (cls, colour) in enumerate((("cats", (220, 40, 40)), ("dogs", (40, 40, 220)))):
        (root / cls).mkdir(parents=True)
        for i in range(5):
            arr = np.clip(np.array(colour) + rng.integers(-20, 20, (24 + 8 * i, 30, 3)), 0, 255).astype(np.uint8)
            img = Image.fromarray(arr).convert("L") if grey else Image.fromarray(arr)
            img.save(root / cls / f"{i}.{'png' if k == 0 else 'jpg'}")
    (root / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "dogs" / "notes.txt").write_text("not an image, ignored")


def test_folder_loader(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    _make_folder(root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset("folder", path=str(root), size=16, seed=0)
    assert any("skipped 1" in str(w.message) and "broken.png" in str(w.message) for w in caught)
    assert ds.info.class_names == ("cats", "dogs") and ds.info.channels == 3 and ds.info.size == 16
    assert len(ds.train) == 8 and len(ds.test) == 2 and ds.test.labels.tolist() == [0, 1]
    assert ds.train.images.shape == (8, 3, 16, 16)
    red = ds.train.images[ds.train.labels == 0].float().mean(dim=(0, 2, 3))
    assert red[0] > 180 and red[2] < 80  # cats are the red ones
    x = ds.train.images.float() / 255
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.tensor(ds.info.mean), atol=1e-3)
    assert data.get_dataset_info("folder").class_names == ()  # the generic entry stays generic


def test_folder_greyscale_and_errors(tmp_path: Path) -> None:
    _make_folder(tmp_path / "grey", grey=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dataset("folder", path=str(tmp_path / "grey"))
    assert ds.info.channels == 1 and ds.train.images.shape[1:] == (1, 64, 64)
    with pytest.raises(ValueError, match="folder path"):
        load_dataset("folder")
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match="no subfolders"):
        load_dataset("folder", path=str(tmp_path / "none"))
    (tmp_path / "none" / "a").mkdir()
    (tmp_path / "none" / "a" / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="no images"):
        load_dataset("folder", path=str(tmp_path / "none"))
    with pytest.raises(ValueError, match="size"):
        load_dataset("folder", path=str(tmp_path / "grey"), size=4)
