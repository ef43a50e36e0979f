"""The one error the lecture views raise for a request they cannot answer."""
from __future__ import annotations

from ..explain.layers import ExplainError


class LectureError(ExplainError):
    """A lecture view that cannot be shown (no such layer or position, no time-lapse, ...); the message says why.

    An ExplainError, so every front end that already reports those to the user (the web app, the CLI) reports these too.
    """
