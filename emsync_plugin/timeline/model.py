"""The one shape every stage above the readers sees: a ``Timeline`` of ``Scene`` s.

Readers (one module per file family) turn an editor's file into ``Shot`` s per enabled video
track and call :func:`build_timeline`, which owns the rules for what a cut is:

* a cut is an edit point on the picture: the union of the edit points of all enabled video
  tracks (a gap's edges count, a track that ends early cuts where it ends);
* a transition or mix cuts at its midpoint (readers move the shot boundary there);
* an overlay (a shot that does not cover the frame: a title, a lower third, a generator, a
  clip moved or shrunk by a transform, an adjustment layer) does not cut where a lower track
  has picture under it; it is listed in ``Timeline.overlays`` instead. Over black (nothing
  below, e.g. a title on the only track) it is what the viewer sees: a title card, a cut;
* times are seconds from the timeline's start, snapped to the timeline's frame grid.

Frames appear only at the edges (readers and writers), converted with the exact rate.
"""
from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..errors import TimelineError
from . import limits, timecode

logger = logging.getLogger(__name__)

#: What every score track emsync writes is called ("EMSYNC Score", "EMSYNC Score take 2"...).
SCORE_NAME = "EMSYNC Score"

# Two edit points closer than this (in frames) are one cut.
_SAME_FRAME = 0.5


@dataclass(frozen=True)
class Shot:
    """One item of one track (video, or audio in ``Timeline.audio``), in seconds from the timeline's start.

    ``media`` is ``None`` for a gap. ``source_start``/``source_end`` are seconds into the
    media file (its own time, not the timeline's).
    """

    start: float
    end: float
    media: str | None = None
    source_start: float | None = None
    source_end: float | None = None
    name: str = ""
    #: False for an overlay; ``overlay`` says why ("title", "generator", "transform", "adjustment layer")
    covers_frame: bool = True
    overlay: str = ""

    @property
    def is_gap(self) -> bool:
        """No picture of this track here (a gap, a disabled clip): the track below shows."""
        return self.media is None and self.source_start is None


@dataclass(frozen=True)
class VideoTrack:
    """One video track as a reader found it, shots in timeline order."""

    name: str
    shots: tuple[Shot, ...]
    enabled: bool = True


@dataclass(frozen=True)
class Overlay:
    """A part of an upper track's clip that does not cut: it does not cover the frame and a lower
    track has picture under it (``reason``: "title", "generator", "transform", "adjustment layer")."""

    track: str
    start: float
    end: float
    name: str
    reason: str


@dataclass(frozen=True)
class Marker:
    """A named point on the timeline (OTIO marker, Kdenlive guide or clip marker, EDL locator)."""

    time: float
    name: str
    comment: str = ""
    origin: str = ""  # where it was read from, e.g. "guide", "clip marker: Shot 3"


@dataclass(frozen=True)
class Scene:
    """The picture between two cuts; ``index`` counts from 1 as ``emsync cuts`` prints it."""

    index: int
    start: float
    end: float
    media: str | None = None
    source_start: float | None = None
    source_end: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Timeline:
    """What emsync knows about an editor's timeline."""

    name: str
    rate: float
    start: float  # seconds of the global start timecode (01:00:00:00 -> 3600.0)
    duration: float
    cuts: tuple[float, ...]
    scenes: tuple[Scene, ...]
    path: Path | None = None
    format: str = ""  # reader family: "otio", "kdenlive", "fcp_xml", "fcpx_xml", "cmx_3600", "video"
    markers: tuple[Marker, ...] = field(default_factory=tuple)
    #: clips of the enabled audio tracks other than emsync's own score tracks (for speech detection)
    audio: tuple[Shot, ...] = ()
    #: the editor shows drop-frame timecode (29.97/59.94 DF; :func:`.timecode.format_timecode`)
    drop_frame: bool = False
    #: upper-track clips that did not cut (titles, lower thirds...), in time order
    overlays: tuple[Overlay, ...] = ()

    def frames(self, seconds: float) -> int:
        """Nearest frame number of a time in seconds."""
        return int(round(seconds * self.rate))

    def to_json(self) -> dict:
        """The object ``emsync cuts --json`` prints (the bridges parse only this)."""
        return {
            "timeline": self.name,
            "rate": self.rate,
            "start": self.start,
            "duration": self.duration,
            "cuts": list(self.cuts),
            "scenes": [
                {
                    "index": s.index,
                    "start": s.start,
                    "end": s.end,
                    "media": s.media,
                    "source_start": s.source_start,
                    "source_end": s.source_end,
                }
                for s in self.scenes
            ],
            "markers": [asdict(m) for m in self.markers],
            "drop_frame": self.drop_frame,
            "overlays": [asdict(o) for o in self.overlays],
        }


@dataclass(frozen=True)
class Edit:
    """What a reader returns: the file's video tracks before cuts are derived from them.

    ``duration`` is the whole timeline's length (audio included, emsync's own earlier score
    tracks not: they must not outlive a picture that was shortened) in seconds. ``audio`` holds
    the clips of the enabled audio tracks that are not emsync's.
    """

    name: str
    rate: float
    start: float
    duration: float
    tracks: tuple[VideoTrack, ...]  # bottom (V1) to top
    markers: tuple[Marker, ...] = ()
    path: Path | None = None
    format: str = ""
    audio: tuple[Shot, ...] = ()
    drop_frame: bool = False  # the file says its timecode is drop-frame


@dataclass(frozen=True)
class ScoreTrack:
    """What a writer puts back on the timeline: one audio track of one clip from the timeline's start.

    ``muted`` mutes the track where the format has a mute flag; ``gain`` are ducking keyframes
    ``(seconds from the timeline's start, dB)``, written as native volume keyframes where the
    format has them (the ducking is baked into the WAV as well).
    """

    wav: Path  # absolute path of the rendered score
    midi: Path  # absolute path of the MIDI beside it
    duration: float  # seconds; the clip covers the whole timeline
    metadata: dict  # stored under metadata["emsync"] (or the format's equivalent)
    name: str = SCORE_NAME
    muted: bool = False
    gain: tuple[tuple[float, float], ...] = ()
    start: float = 0.0  # seconds from the timeline's start where the clip begins (a scored range's in point)


@dataclass(frozen=True)
class ScoreTrackInfo:
    """An emsync score track a timeline already carries (:func:`.io.read_score_tracks`).

    ``metadata`` is what emsync stored there: the settings dict (OTIO, Kdenlive) or, where the
    format keeps only notes (FCP 7 XML, FCPXML), the ``midi`` and ``sidecar`` paths.
    """

    name: str
    muted: bool
    metadata: dict


def is_score_name(name: str | None) -> bool:
    """Whether a track or clip name is one emsync gives its score tracks."""
    return bool(name) and str(name).startswith(SCORE_NAME)


def snap(seconds: float, rate: float) -> float:
    """Snap a time to the frame grid of ``rate`` (frame-exact rounding)."""
    return round(math.floor(seconds * rate + 0.5 + 1e-9) / rate, 9)  # halves round up


def build_timeline(
    name: str,
    rate: float,
    tracks: Sequence[Sequence[Shot]],
    *,
    start: float = 0.0,
    duration: float | None = None,
    markers: Iterable[Marker] = (),
    path: Path | None = None,
    format: str = "",
    audio: Iterable[Shot] = (),
    drop_frame: bool = False,
    track_names: Sequence[str] = (),
) -> Timeline:
    """Turn the shots of the enabled video tracks into cuts and scenes.

    ``tracks`` are ordered bottom to top (as OTIO, Kdenlive and FCP number them): where two
    tracks overlap, the top one is what the viewer sees and gives the scene its media.
    ``duration`` defaults to the end of the last shot; pass the whole timeline's length (audio
    included) when it is known. Overlays over picture are taken out first (:func:`hide_overlays`;
    ``track_names`` name them, default V1, V2...).
    """
    rate, start, tracks, duration, markers = _checked(name, rate, start, tracks, duration, markers, path)
    half = _SAME_FRAME / rate
    tracks, overlays = hide_overlays(tracks, track_names, rate)
    tracks = [merge_through_edits(track, half) for track in tracks]
    shots = [s for track in tracks for s in track if s.end - s.start > 0]
    end = max((s.end for s in shots), default=0.0)
    duration = snap(duration if duration is not None else end, rate)
    cuts = _cuts(shots, rate, duration)
    scenes = _scenes(tracks, cuts, duration)
    return Timeline(
        name=name,
        rate=rate,
        start=start,
        duration=duration,
        cuts=tuple(cuts),
        scenes=tuple(scenes),
        path=path,
        format=format,
        markers=tuple(sorted(markers, key=lambda m: m.time)),
        audio=tuple(audio),
        drop_frame=bool(drop_frame) and timecode.drop_frames(rate) > 0,  # DF exists only at 29.97/59.94
        overlays=overlays,
    )


def _cuts(shots: Sequence[Shot], rate: float, duration: float) -> list[float]:
    """Every shot edge snapped to the frame grid, inside the timeline, edges within half a frame as one."""
    half = _SAME_FRAME / rate
    points = sorted(t for shot in shots for t in (snap(shot.start, rate), snap(shot.end, rate))
                    if half < t < duration - half)
    cuts: list[float] = []
    for t in points:
        if not cuts or t - cuts[-1] > half:
            cuts.append(t)
    return cuts


def _scenes(tracks: Sequence[Sequence[Shot]], cuts: Sequence[float], duration: float) -> list[Scene]:
    """The picture between consecutive cuts: the visible shot's media and source range."""
    bounds = [0.0, *cuts, duration]
    scenes = []
    finder = _ShotFinder(tracks)
    for i, (a, b) in enumerate(zip(bounds, bounds[1:]), start=1):
        seen = finder.visible((a + b) / 2)
        if seen is None or seen.media is None:  # black, or a clip whose media the file does not name
            scenes.append(Scene(i, a, b))
            continue
        src0 = None if seen.source_start is None else round(seen.source_start + (a - seen.start), 6) + 0.0
        src1 = None if seen.source_start is None else round(seen.source_start + (b - seen.start), 6) + 0.0
        scenes.append(Scene(i, a, b, seen.media, src0, src1))
    return scenes


def hide_overlays(
    tracks: Sequence[Sequence[Shot]], names: Sequence[str], rate: float
) -> tuple[list[list[Shot]], tuple[Overlay, ...]]:
    """The tracks with each overlay taken out where a lower track has picture, and those hidden
    parts as :class:`Overlay` s. Where nothing is below (black), an overlay stays picture."""
    out = [list(t) for t in tracks]
    if all(s.covers_frame for t in out for s in t):
        return out, ()
    found: list[Overlay] = []
    below: list[tuple[float, float]] = []  # picture of the tracks below, merged intervals
    for i, track in enumerate(out):
        name = names[i] if i < len(names) and names[i] else f"V{i + 1}"
        out[i], hidden = _hide_in_track(track, below, name, rate)
        found.extend(hidden)
        below = _union(below, [(s.start, s.end) for s in out[i] if not s.is_gap or not s.covers_frame])
    return out, tuple(sorted(found, key=lambda o: (o.start, o.track)))


def _hide_in_track(track: list[Shot], below: list[tuple[float, float]], name: str, rate: float
                   ) -> tuple[list[Shot], list[Overlay]]:
    """One track's shots with its overlays cut away over ``below``, and what was cut away."""
    kept: list[Shot] = []
    found: list[Overlay] = []
    for shot in track:
        if shot.covers_frame:
            kept.append(shot)
            continue
        for a, b, hidden in _pieces(shot.start, shot.end, below):
            if not hidden:
                kept.append(_retimed(shot, a, b))
            elif snap(b, rate) > snap(a, rate):
                found.append(Overlay(name, snap(a, rate), snap(b, rate), shot.name, shot.overlay or "overlay"))
    if not found:
        return kept, found
    # a gap's edges would still cut where the hidden overlay began or ended (a track that ends
    # in a gap "ends early"); beside picture they repeat its clips' edges, so they can go
    return [s for s in kept if not (s.is_gap and s.covers_frame)], found


def _pieces(a: float, b: float, covered: list[tuple[float, float]]) -> list[tuple[float, float, bool]]:
    """``[a, b)`` cut at the edges of the ``covered`` intervals: (start, end, covered?)."""
    out = []
    t = a
    j = max(0, bisect.bisect_right(covered, (a, math.inf)) - 1)
    for c0, c1 in covered[j:]:
        if c0 >= b:
            break
        if c1 <= t:
            continue
        if c0 > t:
            out.append((t, c0, False))
        out.append((max(t, c0), min(b, c1), True))
        t = min(b, c1)
    if t < b:
        out.append((t, b, False))
    return out


def _union(intervals: list[tuple[float, float]], more: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(intervals + [x for x in more if x[1] > x[0]]):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _retimed(shot: Shot, a: float, b: float) -> Shot:
    """The part ``[a, b)`` of a shot, source times moved with it."""
    src0 = None if shot.source_start is None else shot.source_start + (a - shot.start)
    return replace(shot, start=a, end=b, source_start=src0, source_end=None if src0 is None else src0 + (b - a))


_HINT = "check the frame rate and the clip times in the editor and export again"
_IN_PARTS = "score the timeline in parts (one reel or sequence at a time)"


def _checked(name, rate, start, tracks, duration, markers, path):
    """Refuse numbers no editor writes (NaN, infinite or absurd rates and times) before any
    arithmetic on them, and more shots than :data:`limits.MAX_SHOTS`."""
    rate = _checked_rate(rate, path)
    if not (math.isfinite(start) and abs(start) <= limits.MAX_START):
        raise TimelineError(f"refused: the start timecode ({start:g} s) is not a time", path=path, hint=_HINT)
    tracks = _checked_tracks(tracks, path)
    duration = _checked_duration(duration, path)
    return rate, start + 0.0, tracks, duration, _checked_markers(markers, name, path)


def _checked_rate(rate, path) -> float:
    try:
        rate = float(rate)
    except (TypeError, ValueError, OverflowError):
        rate = math.nan
    if not (math.isfinite(rate) and 0 < rate <= limits.MAX_RATE):
        raise TimelineError(f"refused: the frame rate {rate:g} is not a frame rate (0 to {limits.MAX_RATE:g} fps)",
                            path=path, hint=_HINT)
    return rate


def _checked_tracks(tracks, path) -> list[list[Shot]]:
    """The shots, refused when too many or at impossible times; impossible source times dropped."""
    tracks = [list(t) for t in tracks]
    count = sum(len(t) for t in tracks)
    if count > limits.MAX_SHOTS:
        raise TimelineError(f"refused: the video tracks hold {count:,} clips and gaps (at most {limits.MAX_SHOTS:,})",
                            path=path, hint=_IN_PARTS)
    bound = limits.MAX_DURATION
    for track in tracks:
        for s in track:
            if not (math.isfinite(s.start) and math.isfinite(s.end) and abs(s.start) <= bound and abs(s.end) <= bound):
                raise TimelineError(
                    f"refused: the clip {s.name[:60]!r} lies at {s.start:g}-{s.end:g} s, outside 0-{bound / 3600:g} hours",
                    path=path, hint=_HINT,
                )
    for i, track in enumerate(tracks):  # source times are informative: drop impossible ones
        if any(not _finite(s.source_start) or not _finite(s.source_end) for s in track):
            tracks[i] = [s if _finite(s.source_start) and _finite(s.source_end)
                         else replace(s, source_start=None, source_end=None) for s in track]
    return tracks


def _checked_duration(duration, path) -> float | None:
    bound = limits.MAX_DURATION
    if duration is not None and not (math.isfinite(duration) and 0 <= duration <= bound):
        if math.isfinite(duration) and duration < 0:
            return None  # the shots say how long it is
        raise TimelineError(f"refused: the timeline is {duration:g} s long (at most {bound / 3600:g} hours)",
                            path=path, hint=_IN_PARTS)
    return duration


def _checked_markers(markers, name, path) -> list[Marker]:
    markers = list(markers)
    kept = [m for m in markers if math.isfinite(m.time) and abs(m.time) <= limits.MAX_DURATION]
    if len(kept) < len(markers):
        logger.warning("%s: ignoring %d marker(s) at impossible times", path or name, len(markers) - len(kept))
    if len(kept) > limits.MAX_MARKERS:
        raise TimelineError(f"refused: the timeline has {len(kept):,} markers (at most {limits.MAX_MARKERS:,})",
                            path=path, hint="remove markers emsync does not need")
    return kept


def _finite(x: float | None) -> bool:
    return x is None or (isinstance(x, (int, float)) and math.isfinite(x) and abs(x) <= 1e12)


def merge_through_edits(track: Sequence[Shot], tolerance: float) -> list[Shot]:
    """Join edit points nobody can see: gap after gap, and a clip continued by its next frames.

    A "through edit" (the same media split in two with contiguous source frames) does not
    change the picture, so it is not a cut.
    """
    out: list[Shot] = []
    for shot in track:
        prev = out[-1] if out else None
        if prev is not None and abs(prev.end - shot.start) <= tolerance:
            both_gaps = prev.is_gap and shot.is_gap
            same_clip = (
                not prev.is_gap and not shot.is_gap
                and (prev.media, prev.name) == (shot.media, shot.name)
                and prev.source_end is not None and shot.source_start is not None
                and abs(prev.source_end - shot.source_start) <= tolerance
            )
            if both_gaps or same_clip:
                out[-1] = replace(prev, end=shot.end, source_end=shot.source_end)
                continue
        out.append(shot)
    return out


def _visible_shot(tracks: Sequence[Sequence[Shot]], t: float) -> Shot | None:
    """The shot the viewer sees at time ``t``: the topmost non-gap one covering it."""
    return _ShotFinder(tracks).visible(t)


class _ShotFinder:
    """:func:`_visible_shot` for many times. Each track becomes disjoint pieces (where shots of
    one track overlap, the one starting first wins), so a lookup is a bisection: 100,000 clips
    stay fast."""

    def __init__(self, tracks: Sequence[Sequence[Shot]]):
        self.layers = []
        for track in reversed(tracks):  # top first
            starts, ends, owners = [], [], []
            covered = -math.inf
            for s in sorted((s for s in track if not s.is_gap), key=lambda s: s.start):
                a = max(s.start, covered)
                if s.end > a:
                    starts.append(a)
                    ends.append(s.end)
                    owners.append(s)
                    covered = s.end
            self.layers.append((starts, ends, owners))

    def visible(self, t: float) -> Shot | None:
        for starts, ends, owners in self.layers:
            j = bisect.bisect_right(starts, t) - 1
            if j >= 0 and t < ends[j]:
                return owners[j]
        return None
