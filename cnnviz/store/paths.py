"""Where cnnviz reads and writes files; every directory can be moved with an environment variable."""
from __future__ import annotations

import os
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]  # cnnviz/store/paths.py -> the checkout


def checkpoints_dir() -> Path:
    """Shipped and saved checkpoints: $CNNVIZ_CHECKPOINTS, else the repository's checkpoints/."""
    return Path(os.environ.get("CNNVIZ_CHECKPOINTS", REPO_DIR / "checkpoints"))


def runs_dir() -> Path:
    """One folder per training run: $CNNVIZ_RUNS, else the repository's runs/."""
    return Path(os.environ.get("CNNVIZ_RUNS", REPO_DIR / "runs"))


def assets_dir() -> Path:
    """Example images shipped with the repository."""
    return REPO_DIR / "assets"
