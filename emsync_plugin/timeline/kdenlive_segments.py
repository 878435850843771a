"""Kdenlive picture in frames: a track's clips with same-track mixes cut at their midpoint, and
the pieces of picture (segments) turned into :class:`~.model.Shot` s in seconds.

Frame arithmetic only, for :mod:`.kdenlive_read`; no XML here.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING

from .kdenlive_xml import to_seconds
from .model import Shot

if TYPE_CHECKING:
    from .kdenlive_read import Place


@dataclass
class Segment:
    """A piece of picture in frames; ``step`` is media seconds per timeline frame."""

    start: int
    end: int
    media: str | None = None
    src: Fraction | None = None
    step: Fraction | None = None
    name: str = ""
    overlay: str = ""  # why it does not cover the frame (:mod:`.overlay`), "" if it does

    def cut(self, start: int, end: int) -> Segment:
        src = None if self.src is None or self.step is None else self.src + (start - self.start) * self.step
        return replace(self, start=start, end=end, src=src)


def resolve_overlaps(places: Sequence[Place], mixes: Sequence[tuple[int, int]]) -> list[Place]:
    """Places of both playlists of a track in order, overlaps (mixes) cut at their midpoint.

    The midpoint is that of the mix transition covering the overlap (``(in + out) // 2``), or
    of the overlap itself when there is no transition; the earlier clip ends and the later one
    starts there.
    """
    result: list[Place] = []
    for place in sorted(places, key=lambda p: (p.start, p.end)):
        place = replace(place)
        if result and place.start < result[-1].end:
            prev = result[-1]
            lo, hi = place.start, min(prev.end, place.end)
            mid = next(((a + b) // 2 for a, b in mixes if a < hi and b > lo), lo + (hi - lo) // 2)
            mid = max(lo, min(hi, mid))
            tail = None
            if prev.end > place.end:  # the later clip lies inside the earlier one
                tail = replace(prev, start=place.end, src_in=prev.src_in + place.end - prev.start)
            result[-1] = replace(prev, end=mid)
            if result[-1].end <= result[-1].start:
                result.pop()
            place = replace(place, start=mid, src_in=place.src_in + mid - place.start)
            if place.end > place.start:
                result.append(place)
            if tail is not None:
                result.append(tail)
        else:
            result.append(place)
    return result


def to_shots(segments: Iterable[Segment], rate: Fraction) -> tuple[Shot, ...]:
    """Segments as :class:`Shot` s in seconds (empty ones dropped; a gap keeps a name only if it has one)."""
    shots = []
    for s in segments:
        if s.end <= s.start:
            continue
        src0 = src1 = None
        if s.media is not None and s.src is not None and s.step is not None:
            src0 = round(float(s.src), 9)
            src1 = round(float(s.src + (s.end - s.start) * s.step), 9)
        shots.append(Shot(to_seconds(s.start, rate), to_seconds(s.end, rate), s.media, src0, src1,
                          s.name if s.media is not None or s.name else "", not s.overlay, s.overlay))
    return tuple(shots)
