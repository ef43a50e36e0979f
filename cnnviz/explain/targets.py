"""Which class to explain: a class index or a class name, as a student types it."""
from __future__ import annotations

from .layers import ExplainError


def parse_target(text: str | None, class_names: tuple[str, ...] | list[str]) -> int | None:
    """A class index ('3') or a class name ('cat', case-insensitive) -> index; None stays None."""
    if text is None or str(text).strip() == "":
        return None
    text = str(text).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(class_names):
            raise ExplainError(f"target {index} is out of range: the model has {len(class_names)} classes "
                               f"(0..{len(class_names) - 1})")
        return index
    lowered = [c.lower() for c in class_names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    raise ExplainError(f"unknown target class {text!r}; classes: {', '.join(class_names[:20])}"
                       + (" ..." if len(class_names) > 20 else ""))
