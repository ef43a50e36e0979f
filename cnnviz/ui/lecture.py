"""Lecture features: time-lapse & replay, confusion drill-down, compare, the explanation sanity check and receptive
fields, one tab each. `build_lecture_tabs(shared)` adds them to the enclosing `gr.Tabs`.

Every tab follows one pattern: a class whose `__init__` lays out its components, whose `_wire` connects them by
name (`inputs_kwargs={"checkpoint": ..., "ws": ...}`, the keywords being the API's parameter names), and whose
handlers take keyword-only arguments and return `{component: value}` (outputs left out stay unchanged). What they
show is computed in the core: cnnviz.lecture.replay, .drilldown_views, .comparison, .sanity_stream and
.receptive_tables."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from . import lecture_compare, lecture_drilldown, lecture_receptive, lecture_sanity, lecture_timelapse
from .common import Shared


@dataclass
class LectureTabs:
    timelapse: lecture_timelapse.TimelapseTab
    drilldown: lecture_drilldown.DrilldownTab
    compare: lecture_compare.CompareTab
    sanity: lecture_sanity.SanityTab
    receptive: lecture_receptive.ReceptiveTab


def build_lecture_tabs(shared: Shared) -> LectureTabs:
    """Create the five lecture tabs inside the current `gr.Tabs` context and wire their events."""
    with gr.Tab("Time-lapse & replay", id="timelapse") as tab:
        timelapse = lecture_timelapse.build(shared, tab)
    with gr.Tab("Confusion drill-down", id="drilldown") as tab:
        drilldown = lecture_drilldown.build(shared, tab)
    with gr.Tab("Compare", id="compare") as tab:
        compare = lecture_compare.build(shared, tab)
    with gr.Tab("Is this explanation real?", id="sanity") as tab:
        sanity = lecture_sanity.build(shared, tab)
    with gr.Tab("Receptive field", id="receptive") as tab:
        receptive = lecture_receptive.build(shared, tab)
    return LectureTabs(timelapse, drilldown, compare, sanity, receptive)


__all__ = ["LectureTabs", "build_lecture_tabs"]
