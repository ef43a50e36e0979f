"""Where cnnviz reads and writes files.

Read-only package data (travels inside the installed package, found with importlib.resources):
  cnnviz/shipped/checkpoints/  the shipped checkpoints and their manifest.json
  cnnviz/shipped/examples/     the example images
  cnnviz/shipped/photos/       real photos for the ImageNet networks (CREDITS.md: source and licence of each)
  cnnviz/shipped/data/         the 8x8 digits (digits.npz, read by cnnviz.data.digits, a layer below this one)
User data (written; never inside the package): the data home is $CNNVIZ_HOME, else the current folder, holding
  runs/ ($CNNVIZ_RUNS), checkpoints/ saved by name ($CNNVIZ_CHECKPOINTS) and data/ ($CNNVIZ_DATA, see
  cnnviz.data.resolve_data_dir); each variable moves one folder.
"""
from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

SHIPPED = "shipped"


def _package_dir(*parts: str) -> Path:
    """A folder of package data as a real path (cnnviz is installed as plain files, never zipped)."""
    return Path(os.fspath(files("cnnviz").joinpath(SHIPPED, *parts)))


def shipped_checkpoints_dir() -> Path:
    """The checkpoints that come with cnnviz (read-only package data)."""
    return _package_dir("checkpoints")


def examples_dir() -> Path:
    """The example images that come with cnnviz (read-only package data)."""
    return _package_dir("examples")


def photos_dir() -> Path:
    """Real photos for the ImageNet networks, with their CREDITS.md (read-only package data)."""
    return _package_dir("photos")


def home_dir() -> Path:
    """The user data home: $CNNVIZ_HOME, else the current folder (absolute)."""
    return Path(os.environ.get("CNNVIZ_HOME") or ".").expanduser().resolve()


def checkpoints_dir() -> Path:
    """Checkpoints saved by name (`train --out`): $CNNVIZ_CHECKPOINTS, else <home>/checkpoints."""
    env = os.environ.get("CNNVIZ_CHECKPOINTS")
    return Path(env).expanduser() if env else home_dir() / "checkpoints"


def runs_dir() -> Path:
    """One folder per training run: $CNNVIZ_RUNS, else <home>/runs."""
    env = os.environ.get("CNNVIZ_RUNS")
    return Path(env).expanduser() if env else home_dir() / "runs"
