"""Gradio plumbing shared by the lecture tabs: a workaround for LinePlot legends that keep their first series."""
from __future__ import annotations

from collections.abc import Sequence

import gradio as gr

# Gradio 6.31's native plots build the colour scale once, from the first data they show; later values only replace
# the data, so a series name not seen before is drawn without a colour (i.e. not at all). Clearing the plot in the
# browser first (no server round trip) makes the next value build a fresh chart. Checked in Chromium.
CLEAR_JS = "() => null"


def clear_plots_on(triggers: Sequence, plots: Sequence[gr.LinePlot]) -> None:
    """Empty `plots` in the browser as soon as one of `triggers` fires, before the handler's answer arrives."""
    outputs = list(plots)
    gr.on(list(triggers), None, None, outputs if len(outputs) > 1 else outputs[0],
          js=f"() => [{', '.join(['null'] * len(outputs))}]" if len(outputs) > 1 else CLEAR_JS,
          queue=False, api_visibility="private")
