"""Your own images: an ImageFolder-style directory (root/class_name/*.png|jpg|...), decoded safely."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..images import ImageError, load_image, resize_square
from .cache import cached, fingerprint
from .registry import NEEDS_FOLDER, Dataset, DatasetInfo, LoadRequest, Split, register_dataset
from .sampling import stratified_split

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
DEFAULT_SIZE = 64
MIN_SIZE, MAX_SIZE = 8, 512
_STREAM = 0xF01D  # keeps the split's random stream apart from other uses of the seed

FOLDER = DatasetInfo(
    name="folder", title="Your image folder",
    description="Your own images, one subfolder per class (like torchvision's ImageFolder). "
                "They are resized and centre-cropped to a square, then split 80/20 by class.",
    channels=3, size=DEFAULT_SIZE, class_names=(),
    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), offline=False,  # ImageNet's: a prior for photos
    source="your files",
)


def scan_folder(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names (sorted subfolder names) and (file, class index) for every image-like file."""
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; give a folder with one subfolder of images per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [(f, k) for k, c in enumerate(classes) for f in sorted((root / c).rglob("*"))
             if f.is_file() and f.suffix.lower() in EXTENSIONS and not f.name.startswith(".")]
    if not classes:
        raise ValueError(f"{root} has no subfolders; put each class's images in its own subfolder, e.g. {root}/cats/1.jpg")
    if not files:
        raise ValueError(f"{root} has class folders ({', '.join(classes)}) but no images ({', '.join(sorted(EXTENSIONS))})")
    return classes, files


def _decode(files: list[tuple[Path, int]], size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode and square every file: uint8 [N, S, S, 3], labels [N], and the names of files skipped."""
    pixels, labels, skipped = [], [], []
    for path, k in files:
        try:
            img = resize_square(load_image(path), size)
        except ImageError as exc:
            skipped.append(f"{path.name} ({exc})")
            continue
        pixels.append(np.asarray(img, dtype=np.uint8))
        labels.append(k)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable file(s): {'; '.join(skipped[:5])}"
                      + (" ..." if len(skipped) > 5 else ""), stacklevel=2)
    stack = np.stack(pixels) if pixels else np.zeros((0, size, size, 3), np.uint8)
    return stack, np.asarray(labels, dtype=np.int64), skipped


def _build(root: Path, size: int, seed: int) -> Dataset:
    classes, files = scan_folder(root)
    pixels, labels, _ = _decode(files, size)
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError(f"{root}: need readable images in at least 2 class folders, found {len(present)}")
    if len(present) < len(classes):  # drop empty classes so every class can be predicted
        keep = [classes[k] for k in present]
        warnings.warn(f"{root}: no readable images in {sorted(set(classes) - set(keep))}; leaving them out", stacklevel=2)
        classes, labels = keep, np.searchsorted(present, labels)
    grey = bool(np.all(pixels[..., 0] == pixels[..., 1]) and np.all(pixels[..., 1] == pixels[..., 2]))
    images = pixels[..., :1] if grey else pixels  # [N, S, S, C]
    train_idx, test_idx = stratified_split(labels, 0.2, np.random.default_rng([_STREAM, seed]))
    train_px = images[train_idx].astype(np.float64) / 255.0
    mean, std = train_px.mean(axis=(0, 1, 2)), train_px.std(axis=(0, 1, 2))
    info = DatasetInfo(
        name="folder", title=f"Folder: {root.name}",
        description=f"{len(labels)} of your images from {root} in {len(classes)} classes, one subfolder each. "
                    f"Resized and centre-cropped to {size}x{size}, split 80/20 by class.",
        channels=images.shape[-1], size=size, class_names=tuple(classes),
        mean=tuple(round(float(m), 4) for m in mean), std=tuple(round(max(float(s), 1e-3), 4) for s in std),
        offline=False, source=f"local folder {root}",
    )
    chw = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    lab = torch.from_numpy(labels)

    def split(idx: np.ndarray) -> Split:
        t = torch.from_numpy(idx)
        return Split(images=chw[t].contiguous(), labels=lab[t])

    return Dataset(info=info, train=split(train_idx), test=split(test_idx))


def _load(req: LoadRequest) -> Dataset:
    if not req.path:
        raise ValueError("the folder dataset needs a folder path: load_dataset('folder', path='my_images/')")
    size = DEFAULT_SIZE if req.size is None else req.size
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be a whole number of px from {MIN_SIZE} to {MAX_SIZE}, got {size!r}")
    root = Path(req.path).expanduser().resolve()
    _, files = scan_folder(root)
    key = ("folder", str(root), size, req.seed, fingerprint(f for f, _ in files))
    return cached(key, lambda: _build(root, size, req.seed))


register_dataset(FOLDER, _load, lambda data_dir: NEEDS_FOLDER)
