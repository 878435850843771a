"""The small RGB pictures a decoded frame is looked at as (and kept as, in a batch).

:func:`to_rgb` scales an ``av.VideoFrame`` down and converts it to RGB in one libswscale step
(sample aspect ratio applied); :class:`Developed` keeps only those pictures of a frame (a 1080p
frame holds 3 MB, a 320-pixel picture 0.2 MB), and what the analysis measured in it.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

_local = threading.local()  # each thread's scaler (to_rgb)


def _small_size(frame, max_width: int) -> tuple[int, int]:
    """Display size of a frame scaled to at most ``max_width`` (sample aspect ratio applied)."""
    sar = getattr(frame, "sample_aspect_ratio", None)
    try:
        sar = float(Fraction(sar)) if sar else 1.0
    except (TypeError, ValueError, ZeroDivisionError):
        sar = 1.0
    sar = sar if sar > 0 else 1.0
    disp_w = frame.width * sar
    w = min(max_width, disp_w)
    return _even(w), _even(w * frame.height / disp_w)


class Developed:
    """A decoded frame kept only as the small RGB pictures :func:`to_rgb` makes of it (a 1080p
    frame holds 3 MB; a 320-pixel picture 0.2 MB)."""

    __slots__ = ("pts", "pictures", "found")

    def __init__(self, frame: Any, widths: Sequence[int]):
        self.pts = frame.pts
        self.pictures: dict[int, np.ndarray] = {}
        self.found: dict[Any, Any] = {}  # what the analysis measured in it (scenes may share a frame)
        self.add(frame, widths)

    def add(self, frame: Any, widths: Sequence[int]) -> Developed:
        """Also keep ``frame`` (the one this was made of) at ``widths``."""
        for w in widths:
            if w not in self.pictures:
                self.pictures[w] = to_rgb(frame, w)
        return self


def to_rgb(frame, max_width: int) -> np.ndarray:
    """An ``av.VideoFrame`` (or a :class:`Developed` one, at a width it keeps) as an RGB uint8
    array at most ``max_width`` wide. Each thread keeps one scaler, unthreaded (the analysis
    runs a thread per core): ``frame.reformat`` made a scaler, and started its threads, per frame."""
    if isinstance(frame, Developed):
        return frame.pictures[max_width]
    w, h = _small_size(frame, max_width)
    scaler = getattr(_local, "scaler", None)
    if scaler is None:
        from av.video.reformatter import VideoReformatter

        scaler = _local.scaler = VideoReformatter()
    return scaler.reformat(frame, width=w, height=h, format="rgb24", interpolation="AREA", threads=1).to_ndarray()


def _even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)
