"""Timecode as editors read it: the one place seconds become ``HH:MM:SS:FF`` (or ``HH:MM:SS;FF``).

Drop-frame (DF) timecode is SMPTE's way of keeping 29.97 and 59.94 fps labels near the wall
clock: frame *numbers* 00 and 01 (04 at 59.94: 00-03) are skipped at the start of every minute
except every tenth. No frame is dropped, only labels; an editor shows DF with ``;`` before the
frames. Other rates have no drop-frame form and are always shown non-drop.
"""
from __future__ import annotations

import re

_PATTERN = re.compile(r"^\s*(-?)(\d{1,3})[:;.,](\d{2})[:;.,](\d{2})([:;.,])(\d{2,3})\s*$")


def drop_frames(rate: float) -> int:
    """Frame labels DF skips each minute at ``rate`` (2 at 29.97, 4 at 59.94), 0 where DF does not exist."""
    if abs(rate - 30000 / 1001) < 0.01:
        return 2
    if abs(rate - 60000 / 1001) < 0.01:
        return 4
    return 0


def format_timecode(seconds: float, rate: float, drop_frame: bool = False) -> str:
    """``HH:MM:SS:FF`` at the nominal, rounded rate, as editors display positions.

    With ``drop_frame`` at 29.97 or 59.94 fps: SMPTE drop-frame labels, ``HH:MM:SS;FF``; at
    other rates ``drop_frame`` is ignored (there is no drop-frame form).
    """
    fps = max(1, int(round(rate)))  # a timeline below 1 fps still prints (found by fuzzing)
    frames = int(round(seconds * rate))
    drop = drop_frames(rate) if drop_frame else 0
    if not drop:
        s, f = divmod(frames, fps)
        return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{f:02d}"
    sign = "-" if frames < 0 else ""
    label = _drop_label(abs(frames), fps, drop)
    s, f = divmod(label, fps)
    return f"{sign}{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d};{f:02d}"


def _drop_label(frame: int, fps: int, drop: int) -> int:
    """The frame count a DF label spells (HH:MM:SS;FF read as non-drop) for a real frame number."""
    per_ten = fps * 600 - drop * 9  # real frames in ten minutes (17982 at 29.97)
    per_minute = fps * 60 - drop  # real frames in a minute that drops (1798)
    tens, rest = divmod(frame, per_ten)
    skipped = drop * 9 * tens
    if rest > drop:
        skipped += drop * ((rest - drop) // per_minute)
    return frame + skipped


def parse_timecode(text: str, rate: float, drop_frame: bool | None = None) -> float:
    """Seconds of a timecode string at ``rate``; ``;`` (or ``.``/``,``) before the frames means
    drop-frame unless ``drop_frame`` says otherwise. ValueError for what is not a timecode or a
    label drop-frame skips (e.g. ``00:01:00;00``)."""
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a timecode (HH:MM:SS:FF)")
    sign, hh, mm, ss, sep, ff = match.groups()
    h, m, s, f = int(hh), int(mm), int(ss), int(ff)
    fps = max(1, int(round(rate)))
    if m > 59 or s > 59 or f >= fps:
        raise ValueError(f"{text!r} is not a timecode at {rate:g} fps")
    df = (sep != ":") if drop_frame is None else drop_frame
    drop = drop_frames(rate) if df else 0
    minutes = h * 60 + m
    if drop and s == 0 and f < drop and m % 10:
        raise ValueError(f"{text!r} is a label drop-frame timecode skips")
    frame = (minutes * 60 + s) * fps + f - drop * (minutes - minutes // 10)
    return (-frame if sign else frame) / rate
