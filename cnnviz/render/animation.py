"""Frames -> an animated GIF for slides (the learning time-lapse and the forward-pass step-through both use it)."""
from __future__ import annotations

import io
from collections.abc import Sequence

import PIL.Image


def animated_gif(frames: Sequence[PIL.Image.Image], ms_per_frame: int = 700, hold_last: int = 2) -> bytes:
    """GIF bytes that loop for ever; the last frame holds `hold_last` times as long (the audience reads the result)."""
    if not frames:
        raise ValueError("an animation needs at least one frame")
    durations = [int(ms_per_frame)] * (len(frames) - 1) + [int(ms_per_frame) * hold_last]
    buf = io.BytesIO()
    # optimize=False: PIL's palette clean-up re-reads every pixel of every frame and saves only a few per cent.
    frames[0].save(buf, format="GIF", save_all=True, append_images=list(frames[1:]), duration=durations, loop=0,
                   optimize=False)
    return buf.getvalue()


__all__ = ["animated_gif"]
