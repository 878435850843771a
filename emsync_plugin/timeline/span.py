"""Part of a timeline: the range an editor scores (a reel, a scene, the span between marks).

``position`` reads ``--in``/``--out`` as the editor writes them (seconds from the timeline's
start, or timeline timecode as the editor sees it, start timecode included); ``crop`` gives the
:class:`~.model.Timeline` of that range, so every later stage works on it as on a whole one.
"""
from __future__ import annotations

import math
from dataclasses import replace

from ..errors import OptionsError
from .model import Marker, Scene, Shot, Timeline
from .timecode import format_timecode, parse_timecode


def position(text: str, timeline: Timeline, option: str = "--in") -> float:
    """Seconds from the timeline's start of ``text``: a number of seconds, or a timecode."""
    text = str(text).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_timecode(text, timeline.rate, True if timeline.drop_frame and ";" in text else None) - timeline.start
        except ValueError as exc:
            raise OptionsError(f"{option} {text}: {exc}",
                               hint=f"give seconds from the timeline's start or its timecode, e.g. "
                                    f"{format_timecode(timeline.start + 10, timeline.rate, timeline.drop_frame)}") from None
    if not math.isfinite(seconds):
        raise OptionsError(f"{option} {text} is not a time", hint="give seconds or a timecode")
    return seconds


def crop(timeline: Timeline, start: float | None, end: float | None) -> Timeline:
    """The timeline from ``start`` to ``end`` seconds (None: its start / end), snapped to frames.

    Scenes are clipped to the range and numbered from 1; the result's own start timecode is the
    in point's, so times in it are seconds from the in point. OptionsError for an empty range.
    """
    if start is None and end is None:
        return timeline
    a = _snap(timeline, 0.0 if start is None else start)
    b = _snap(timeline, timeline.duration if end is None else end)
    tc = lambda s: format_timecode(timeline.start + s, timeline.rate, timeline.drop_frame)
    if not 0.0 <= a < b <= timeline.duration + 0.5 / timeline.rate:
        raise OptionsError(
            f"--in {tc(a)} --out {tc(b)} is not a range of {timeline.name} ({tc(0)} to {tc(timeline.duration)})",
            hint="choose an in point before the out point, both inside the timeline",
        )
    b = min(b, timeline.duration)
    scenes = [_clip(s, a, b) for s in timeline.scenes if s.end > a and s.start < b]
    return replace(
        timeline,
        start=timeline.start + a,
        duration=b - a,
        cuts=tuple(c - a for c in timeline.cuts if a < c < b),
        scenes=tuple(replace(s, index=i) for i, s in enumerate(scenes, 1)),
        markers=tuple(Marker(m.time - a, m.name, m.comment, m.origin) for m in timeline.markers if a <= m.time < b),
        audio=tuple(_clip_shot(s, a, b) for s in timeline.audio if s.end > a and s.start < b),
        overlays=tuple(replace(o, start=max(o.start, a) - a, end=min(o.end, b) - a)
                       for o in timeline.overlays if o.end > a and o.start < b),
    )


def _snap(timeline: Timeline, seconds: float) -> float:
    """The nearest frame's time (halves round up, as cuts do)."""
    return math.floor(seconds * timeline.rate + 0.5) / timeline.rate


def _clip(scene: Scene, a: float, b: float) -> Scene:
    start, end = max(scene.start, a), min(scene.end, b)
    source_start = None if scene.source_start is None else scene.source_start + (start - scene.start)
    source_end = None if scene.source_start is None else scene.source_start + (end - scene.start)
    return Scene(scene.index, start - a, end - a, scene.media, source_start, source_end)


def _clip_shot(shot: Shot, a: float, b: float) -> Shot:
    start, end = max(shot.start, a), min(shot.end, b)
    source_start = None if shot.source_start is None else shot.source_start + (start - shot.start)
    source_end = None if shot.source_start is None else shot.source_start + (end - shot.start)
    return replace(shot, start=start - a, end=end - a, source_start=source_start, source_end=source_end)
