"""A plain `pip install .` works: build the wheel, install it into a folder, and run it from another folder with only
the installed copy importable. Shipped checkpoints and examples come from package data; runs and checkpoints saved by
name go to the current folder or $CNNVIZ_HOME, never into the install."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import PIL.Image
import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("lenet5-digits", "lenet5-fashion-mnist", "tinyvgg-shapes", "alexnet-fashion-mnist", "vgg11-fashion-mnist",
           "resnet18-fashion-mnist")
pytestmark = pytest.mark.slow  # builds a wheel and trains a tiny model (about half a minute)


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from a copy of the sources (the checkout's build/ is never used) and installed into site/."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    shutil.copytree(REPO / "cnnviz", src / "cnnviz", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "wheels"), str(src)],
                   cwd=tmp, check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp / "wheels").glob("cnnviz-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"cnnviz/shipped/checkpoints/{n}.pt" for n in SHIPPED} | {"cnnviz/shipped/checkpoints/manifest.json",
                                                                       "cnnviz/shipped/examples/digits_7.png",
                                                                       "cnnviz/shipped/data/digits.npz"} <= names
    # Every shipped file travels (a new kind of file needs its glob in pyproject's package-data).
    shipped = {f"cnnviz/{p.as_posix()}" for p in files_under(src / "cnnviz") if p.parts[0] == "shipped"}
    assert shipped - names == set(), f"not in the wheel (add a package-data glob): {sorted(shipped - names)}"
    subprocess.run([*pip, "install", "--no-deps", "--no-compile", "-q", "--target", str(tmp / "site"), str(wheel)],
                   cwd=tmp, check=True, capture_output=True, timeout=300)
    return tmp / "site"


def cnnviz(site: Path, cwd: Path, *args: str, home: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m cnnviz ARGS` in `cwd` with only the installed copy importable (no CNNVIZ_* folder variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNNVIZ_") and k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), MPLBACKEND="Agg", GRADIO_ANALYTICS_ENABLED="False", PYTHONDONTWRITEBYTECODE="1")
    if home is not None:
        env["CNNVIZ_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "cnnviz", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_installed_copy_runs_from_another_folder(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    before = files_under(installed)
    probe = subprocess.run([sys.executable, "-c", "import cnnviz; print(cnnviz.__file__)"], cwd=work, capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": str(installed)}, timeout=60)
    assert Path(probe.stdout.strip()).resolve().is_relative_to(installed.resolve()), probe  # not the checkout

    listed = cnnviz(installed, work, "list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert all(name in listed.stdout for name in SHIPPED), listed.stdout

    image = work / "digit.png"
    PIL.Image.new("L", (28, 28)).save(image)
    predicted = cnnviz(installed, work, "predict", "--checkpoint", "lenet5-digits", "--image", str(image))
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert predicted.stdout.strip(), "predict printed nothing"

    # A run and a checkpoint saved by name land in the current folder, then (with CNNVIZ_HOME) in the data home.
    trained = cnnviz(installed, work, "train", "--preset", "demo-digits", "--epochs", "1", "--out", "mine")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (work / "checkpoints" / "mine.pt").is_file() and list((work / "runs").glob("*/model.pt"))
    home = tmp_path / "home"
    trained = cnnviz(installed, work, "train", "--preset", "demo-digits", "--epochs", "1", "--out", "theirs", home=home)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (home / "checkpoints" / "theirs.pt").is_file() and list((home / "runs").glob("*/model.pt"))
    assert not (work / "checkpoints" / "theirs.pt").exists()
    listed = cnnviz(installed, work, "list", home=home)
    assert listed.returncode == 0 and "theirs" in listed.stdout and all(n in listed.stdout for n in SHIPPED), listed.stdout

    assert files_under(installed) == before  # nothing written into the install


def test_serve_help_runs_from_the_installed_copy(installed: Path, tmp_path: Path) -> None:
    out = cnnviz(installed, tmp_path, "serve", "--help", timeout=120)
    if out.returncode != 0 and "invalid choice" in out.stderr:
        pytest.skip("this cnnviz has no `serve` command yet")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage" in out.stdout.lower()
