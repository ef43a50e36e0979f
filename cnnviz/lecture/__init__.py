"""Lecture views built on the core: per-layer summary, receptive fields, model comparison, confusion drill-down,
learning time-lapse.

Names are exported lazily: importing this package imports none of its modules.
"""
from .._lazy import lazy_exports

_EXPORTS = {
    "Summary": ".summary",
    "LayerRow": ".summary",
    "summarize": ".summary",
    "FieldBox": ".receptive",
    "field_box": ".receptive",
    "fields_by_depth": ".receptive",
    "ModelComparison": ".comparison",
    "compare": ".comparison",
    "TestSetPredictions": ".drilldown",
    "predict_test_set": ".drilldown",
    "cams_for_pair": ".drilldown",
    "TimelapseRecorder": ".timelapse",
    "architecture_overview": ".overview",
    "architecture_page": ".architecture_page",
    "web_datasets": ".catalog",
    "model_choices": ".catalog",
    "LectureError": ".errors",
    "timelapse_gif": ".timelapse",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
