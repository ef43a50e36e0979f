"""Lecture views built on the core: per-layer summary, receptive fields, model comparison, confusion drill-down,
learning time-lapse, the whole forward pass of one image and one unit's arithmetic.

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
    "default_checkpoints": ".comparison",
    "mixed_datasets_note": ".comparison",
    "width_counts": ".overview",
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
    "ForwardPass": ".forward_pass",
    "Stage": ".forward_pass",
    "forward_pass": ".forward_pass",
    "run_forward_pass": ".forward_pass",
    "overview": ".forward_pass",
    "write_overview_gif": ".forward_pass",
    "UnitArithmetic": ".unit_arithmetic",
    "unit_arithmetic": ".unit_arithmetic",
    "explain_unit": ".unit_arithmetic",
    "unit_stages": ".unit_arithmetic",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
