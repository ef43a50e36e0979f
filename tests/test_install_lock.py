"""Reproducible installs: requirements-lock.txt pins every transitive version of requirements*.txt, agrees with their
pins and with pyproject's bounds, and is what this environment has installed (scripts/setup.sh installs from it)."""
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("requirements.txt", "requirements-dev.txt", "requirements-cluster.txt")  # -cluster: the optional Ray extra


def pins(name: str) -> dict[str, str]:
    """{canonical name: version} of the `name==version` lines of a requirements file."""
    out = {}
    for line in (REPO / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)(\s*;.*)?", line)
            assert match, f"{name}: not an exact pin: {line!r}"
            out[canonicalize_name(match[1])] = match[2]
    return out


LOCK = pins("requirements-lock.txt")


def test_the_lock_agrees_with_the_top_level_pins() -> None:
    for name in TOP_LEVEL:
        for package, version in pins(name).items():
            assert LOCK.get(package) == version, f"{name} pins {package}=={version}, the lock {LOCK.get(package)}: run make lock"
    assert LOCK["torch"] == "2.14.1" and LOCK["torchvision"] == "0.29.1"  # the versions that install from local files


def test_pyproject_bounds_admit_the_pinned_versions() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    top = pins("requirements.txt")
    for line in project["dependencies"]:
        req = Requirement(line)
        package = canonicalize_name(req.name)
        assert package in top, f"pyproject depends on {req.name}, which requirements.txt does not pin"
        assert req.specifier.contains(top[package]), f"pyproject's {line!r} excludes the tested {top[package]}"
    gradio = next(Requirement(d) for d in project["dependencies"] if d.startswith("gradio"))
    assert not gradio.specifier.contains("6.32.0") and gradio.specifier.contains("6.31.9")  # the patched minor only
    assert "scikit-learn" not in " ".join(project["dependencies"]) + (REPO / "requirements.txt").read_text()
    cluster = {canonicalize_name(Requirement(d).name): str(Requirement(d).specifier) for d in
               project["optional-dependencies"]["cluster"]}
    assert cluster == {p: f"=={v}" for p, v in pins("requirements-cluster.txt").items()}  # `pip install cnnviz[cluster]`


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def closure() -> dict[str, str]:
    """{canonical name: installed version} of requirements*.txt and everything they require, markers evaluated (the
    optional Ray extra when it is installed: `make test` and CI add it, a plain set-up does not)."""
    names = [n for n in TOP_LEVEL if n != "requirements-cluster.txt" or _installed("ray")]
    todo = [Requirement(f"{p}") for name in names for p in pins(name)]
    seen: dict[str, str] = {}
    while todo:
        req = todo.pop()
        package = canonicalize_name(req.name)
        if package in seen:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req.name} is required but not installed: rerun scripts/setup.sh")
        seen[package] = dist.version
        for line in dist.requires or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in ("", *req.extras)):
                todo.append(sub)  # e.g. torch asks for cuda-toolkit[cublas,...]: those extras' packages count too
    return seen


def test_this_environment_is_the_locked_one() -> None:
    installed = closure()
    missing = sorted(set(installed) - set(LOCK))
    assert missing == [], f"installed and required but not in the lock (run make lock): {missing}"
    wrong = {p: (v, LOCK[p]) for p, v in installed.items() if Version(v) != Version(LOCK[p])}
    assert wrong == {}, f"installed vs locked versions differ (rerun scripts/setup.sh): {wrong}"
