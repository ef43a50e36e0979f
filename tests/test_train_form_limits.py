"""The Train form and the server's flags agree on the limits: the epochs slider, its message, the pause limit."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cnnviz.train.config import ConfigError, Limits
from cnnviz.train.form import app_limits, config_from_form, max_epochs, preset_values

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("limits", "end"), [(Limits(), 50), (Limits(max_epochs=3), 3), (Limits(max_epochs=80), 80)])
def test_the_epochs_message_names_where_the_slider_ends(limits, end):
    values = preset_values("demo-digits", limits)
    assert max_epochs(limits) == app_limits(limits).max_epochs == end
    with pytest.raises(ConfigError, match=f"epochs must be a whole number from 1 to {end}, got {end + 1}$"):
        config_from_form("demo-digits", {**values, "epochs": end + 1}, limits, ["digits"])
    assert config_from_form("demo-digits", {**values, "epochs": end}, limits, ["digits"]).epochs == end


def test_the_built_slider_ends_at_the_limit_the_server_checks():
    gr = pytest.importorskip("gradio")
    from cnnviz.ui import build_demo

    demo = build_demo(Limits())
    epochs = next(b for b in demo.blocks.values() if isinstance(b, gr.Slider) and b.label == "Epochs")
    train = next(fn for fn in demo.fns.values() if fn.api_name == "train").fn.__self__
    assert epochs.maximum == train.limits.max_epochs == 50


def test_the_pause_limit_flag(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    import app

    monkeypatch.setattr(logging, "basicConfig", lambda **kw: None)  # main() configures logging for a server
    assert app.parse_args([]).max_pause_seconds == Limits().max_pause_seconds == 120
    assert app.parse_args(["--max-pause-seconds", "0.5"]).max_pause_seconds == 0.5
    for bad in ("0", "-3", "nan"):
        with pytest.raises(SystemExit, match="--max-pause-seconds must be a number of seconds above 0"):
            app.main(["--max-pause-seconds", bad])
