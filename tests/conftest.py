"""Shared fixtures: isolated checkpoints/ and runs/ folders, so tests never touch the repository's own."""
import os

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture
def workdirs(tmp_path, monkeypatch):
    """Point checkpoints/ and runs/ at fresh temporary folders for one test."""
    ck, runs = tmp_path / "checkpoints", tmp_path / "runs"
    ck.mkdir()
    runs.mkdir()
    monkeypatch.setenv("CNNVIZ_CHECKPOINTS", str(ck))
    monkeypatch.setenv("CNNVIZ_RUNS", str(runs))
    return ck, runs
