"""Number and slider inputs whose bad values get a message naming the setting, not a generic server error.

Stock gr.Number and gr.Slider compare the payload with their bounds before our handler runs, so an API client's None,
"nan" or "abc" fails with "upstream app raised an exception", and a NaN passes the bounds check unnoticed (then
breaks rounding, or the handler). These subclasses check first: same frontend, same API schema, same values for good
input, and a gr.Error that starts with the component's label for bad input.
"""
from __future__ import annotations

import math

import gradio as gr

from .common import shorten, user_error
from .uploads import _no_stub_files

TITLE = "Invalid setting"


def _fmt(x: float) -> str:
    """1 -> '1', 0.05 -> '0.05', 1e-06 -> '1e-06': bounds as a person would write them."""
    return f"{x:g}" if isinstance(x, float) else str(x)


def _range(minimum: float | None, maximum: float | None) -> str:
    """' from 1 to 50', ' of at least 0', ... or '' when unbounded."""
    if minimum is not None and maximum is not None:
        return f" from {_fmt(minimum)} to {_fmt(maximum)}"
    if minimum is not None:
        return f" of at least {_fmt(minimum)}"
    return f" of at most {_fmt(maximum)}" if maximum is not None else ""


def _as_number(payload: object) -> int | float | None:
    """The payload as a real number (numeric strings too, as API clients may send them); None when it is not one."""
    if isinstance(payload, bool):  # JSON true is not a setting of 1
        return None
    if isinstance(payload, (int, float)):
        return payload
    if isinstance(payload, str):
        try:
            return float(payload.strip())
        except ValueError:
            return None
    return None


def checked_number(payload: object, label: object, minimum: float | None, maximum: float | None,
                   precision: int | None, required: bool) -> int | float | None:
    """`payload` as gradio's Number/Slider would pass it on, or a gr.Error naming `label` and the allowed range."""
    name = str(label) if label else "This setting"
    if payload is None:
        if not required:
            return None  # an empty number box: the handler decides what "empty" means (e.g. subset 0 = all images)
        raise user_error(f"{name} needs a value: a number{_range(minimum, maximum)}.", title=TITLE)
    value = _as_number(payload)
    if value is None or not math.isfinite(value):
        raise user_error(f"{name} must be a number{_range(minimum, maximum)}, got {shorten(repr(payload))}.",
                         title=TITLE)
    # Gradio's own wording ("less than minimum value"), with the setting's name in front.
    if minimum is not None and value < minimum:
        raise user_error(f"{name}: {_fmt(value)} is less than minimum value {_fmt(minimum)}.", title=TITLE)
    if maximum is not None and value > maximum:
        raise user_error(f"{name}: {_fmt(value)} is greater than maximum value {_fmt(maximum)}.", title=TITLE)
    return gr.Number.round_to_precision(value, precision)


with _no_stub_files():

    class SafeNumber(gr.Number):
        """gr.Number that refuses a non-numeric or non-finite value with a message naming it; empty stays None."""

        def get_block_name(self) -> str:
            return "number"  # reuse the stock Number frontend

        def get_block_class(self) -> str:
            return "number"

        def preprocess(self, payload: object) -> int | float | None:
            """The number, rounded to `precision`, within the bounds; None for an empty box."""
            return checked_number(payload, self.label, self.minimum, self.maximum, self.precision, required=False)

    class SafeSlider(gr.Slider):
        """gr.Slider that refuses a missing, non-numeric or non-finite value with a message naming it."""

        def get_block_name(self) -> str:
            return "slider"  # reuse the stock Slider frontend

        def get_block_class(self) -> str:
            return "slider"

        def preprocess(self, payload: object) -> int | float:
            """The slider's value, rounded to its precision, within its range (a slider is never empty)."""
            return checked_number(payload, self.label, self.minimum, self.maximum, self.precision, required=True)


__all__ = ["SafeNumber", "SafeSlider", "checked_number"]
