"""Shared by the real datasets: where their files may live, downloading them, and the error naming every remedy."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from . import registry
from .registry import DatasetUnavailable, LoadRequest

T = TypeVar("T")


@dataclass(frozen=True)
class RealSpec:
    """Where one real dataset's files live and how to get them."""

    name: str  # registry name, also the folder under the system dataset root
    title: str
    torchvision_class: str  # e.g. "FashionMNIST"; its download() fetches into the data dir
    layouts: tuple[str, ...]  # sub-folders of the data dir that may hold the files, preferred first
    files_hint: str  # the file names, for the error message
    apt_package: str | None = None  # Debian package that installs the files, where one exists


def candidate_dirs(spec: RealSpec, data_dir: Path) -> list[Path]:
    """Folders to search, in order: the data dir's layouts, then the system dataset dir."""
    system = registry.SYSTEM_DATA_ROOT / spec.name
    return [data_dir / sub for sub in spec.layouts] + [system] + [system / sub for sub in spec.layouts]


def unavailable_message(spec: RealSpec, data_dir: Path, cause: BaseException | None = None) -> str:
    """One readable paragraph naming every way to make the dataset available."""
    system = registry.SYSTEM_DATA_ROOT / spec.name
    where = " or ".join(str(data_dir / sub) + "/" for sub in spec.layouts)
    fixes = [f"put the files ({spec.files_hint}) in {where} (the data dir is {data_dir}; change it with --data-dir "
             f"or the CNNVIZ_DATA environment variable)"]
    if spec.apt_package:
        fixes.append(f"install Debian's package with `apt-get install {spec.apt_package}`, which puts them in {system}/")
    else:
        fixes.append(f"copy them into the system dataset folder {system}/")
    fixes.append(f"connect to the internet and rerun with download enabled (download=True), which fetches them with "
                 f"torchvision into {data_dir}")
    text = (f"{spec.title} is not available on this machine. Any one of these fixes it: "
            f"{fixes[0]}; or {fixes[1]}; or {fixes[2]}.")
    if cause is not None:
        detail = " ".join(str(cause).split())  # torchvision's messages span lines; keep one paragraph
        text += f" (The download failed: {type(cause).__name__}: {detail})"
    return text


def torchvision_download(spec: RealSpec, data_dir: Path) -> None:
    """Fetch the original files with torchvision (progress bar, md5 check) into its usual layout under data_dir."""
    from torchvision import datasets  # lazy: torchvision's import is slow and only needed here

    cls = getattr(datasets, spec.torchvision_class)
    # Only the class's download(): its constructor would then parse every file again (and
    # unpickle CIFAR without restrictions); we parse them ourselves. download() reads only root.
    obj = cls.__new__(cls)
    obj.root = str(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    obj.download()


def locate_or_download(spec: RealSpec, req: LoadRequest, locate: Callable[[Path], T | None]) -> T:
    """Run `locate(data_dir)`; if it finds nothing, download (when allowed) and locate again, else raise."""
    found = locate(req.data_dir)
    if found is not None:
        return found
    if not req.download:
        raise DatasetUnavailable(unavailable_message(spec, req.data_dir))
    try:
        torchvision_download(spec, req.data_dir)
    except Exception as exc:  # any network, disk or archive failure: the user needs the remedies, not a traceback
        raise DatasetUnavailable(unavailable_message(spec, req.data_dir, exc)) from exc
    found = locate(req.data_dir)
    if found is None:
        raise DatasetUnavailable(unavailable_message(spec, req.data_dir, RuntimeError("no files after download")))
    return found


def status(locate: Callable[[Path], object | None], data_dir: Path) -> str:
    """'offline-ready' when the files are on disk, else 'needs download'."""
    return registry.OFFLINE_READY if locate(data_dir) is not None else registry.NEEDS_DOWNLOAD
