"""Timecode as editors read it: the one place seconds become ``HH:MM:SS:FF``."""
from __future__ import annotations


def format_timecode(seconds: float, rate: float) -> str:
    """``HH:MM:SS:FF`` (non-drop) at the nominal, rounded rate, as editors display positions."""
    fps = max(1, int(round(rate)))  # a timeline below 1 fps still prints (found by fuzzing)
    frames = int(round(seconds * rate))
    s, f = divmod(frames, fps)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{f:02d}"
