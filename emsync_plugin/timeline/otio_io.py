"""Timelines read and written through OpenTimelineIO and its adapter packages.

Families: OTIO JSON (``.otio``), its bundles (``.otioz``, ``.otiod``), Final Cut Pro 7 XML
(``.xml``: Premiere, Resolve, Hiero, Kdenlive exports; adapter ``otio-fcp-adapter``), FCPXML
(``.fcpxml``; ``otio-fcpx-xml-adapter``) and CMX 3600 EDL (``.edl``; ``otio-cmx3600-adapter``).
Every reader returns an :class:`~emsync_plugin.timeline.model.Edit`; nothing above this room
sees an OTIO object.
"""
from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import opentimelineio as otio

from .. import fileio
from ..errors import TimelineError
from .model import Edit, Marker, ScoreTrack, Shot, VideoTrack

logger = logging.getLogger(__name__)

#: file suffix -> (OTIO adapter name, family name used in ``Timeline.format``)
ADAPTERS = {
    ".otio": ("otio_json", "otio"),
    ".otioz": ("otioz", "otioz"),
    ".otiod": ("otiod", "otiod"),
    ".xml": ("fcp_xml", "fcp_xml"),
    ".fcpxml": ("fcpx_xml", "fcpx_xml"),
    ".edl": ("cmx_3600", "cmx_3600"),
}

#: Frame rates an EDL may be in, smallest first (EDLs do not say).
EDL_RATES = (24.0, 25.0, 30.0, 48.0, 50.0, 60.0)
_TIMECODE = re.compile(r"\b(\d{2}):(\d{2}):(\d{2})([:;.])(\d{2})\b")
_EVENT = re.compile(
    r"^\s*\d+\s+\S+\s+\S+\s+\S+(?:\s+\d+)?\s+"
    r"(\S+)\s+(\S+)\s+(\d{2}:\d{2}:\d{2}[:;.]\d{2})\s+(\S+)\s*$"
)


# ---------------------------------------------------------------------------------------------
# reading


def read(path: Path, *, rate: float | None = None) -> Edit:
    """Read any OTIO-family timeline file into an :class:`Edit`."""
    adapter, family = ADAPTERS[path.suffix.lower()]
    kwargs = {}
    start = None
    if family == "cmx_3600":
        rate, start = _edl_rate_and_start(path, rate)
        kwargs["rate"] = rate
    elif family == "fcpx_xml":
        start = fcpxml_tc_start(path)
    timeline = _load(path, adapter, **kwargs)
    return _to_edit(timeline, path, family, rate=rate, start=start)


def _load(path: Path, adapter: str, **kwargs) -> otio.schema.Timeline:
    if adapter == "fcpx_xml":
        _round_fcpx_times()
    try:
        result = otio.adapters.read_from_file(str(path), adapter_name=adapter, **kwargs)
    except TimelineError:
        raise
    except Exception as exc:  # adapters raise anything from ValueError to KeyError
        raise TimelineError(
            f"cannot read this {_describe(adapter)} file ({type(exc).__name__}: {exc})",
            path=path,
            hint=f"check that it is a complete {_describe(adapter)} export; re-export it from the editor",
        ) from exc
    if isinstance(result, otio.schema.Timeline):
        return result
    timelines = [t for t in _walk_timelines(result)]
    if not timelines:
        raise TimelineError("holds no timeline", path=path, hint="export a sequence/project, not a bin")
    if len(timelines) > 1:
        logger.info("%s holds %d timelines; using the first, %r", path, len(timelines), timelines[0].name)
    return timelines[0]


_FCPX_PATCHED = False


def _round_fcpx_times() -> None:
    """Make the FCPXML adapter round rational times to the nearest frame instead of truncating.

    otio-fcpx-xml-adapter 1.0 turns "157/5s" at 25 fps into ``int(784.999...)`` = 784 frames,
    which opens one-frame gaps (false cuts) between clips. Rounding is exact for every time
    that lies on the frame grid, which is all FCPXML writes for clip boundaries.
    """
    global _FCPX_PATCHED
    if _FCPX_PATCHED:
        return
    from fractions import Fraction

    try:  # the module object OTIO's plugin system loaded (not necessarily the importable one)
        fcpx_xml = otio.adapters.from_name("fcpx_xml").module()
    except Exception:  # pragma: no cover - the adapter is a dependency
        return

    def to_rational_time(rational_number, fps):
        if rational_number in (None, "0s"):
            return otio.opentime.RationalTime(0, int(fps))
        seconds = Fraction(rational_number.rstrip("s"))
        return otio.opentime.RationalTime(round(seconds * Fraction(fps).limit_denominator(1001)), int(fps))

    def _number_of_frames(self, time_value, format_id):
        if time_value in (None, "0s"):
            return 0
        total, rate = self._format_frame_duration(format_id)
        return round(Fraction(time_value.rstrip("s")) * Fraction(rate) / Fraction(total))

    fcpx_xml.to_rational_time = to_rational_time
    fcpx_xml.FcpxXml._number_of_frames = _number_of_frames
    _FCPX_PATCHED = True


_TC_START = re.compile(r"<project\b[^>]*>\s*<sequence\b([^>]*)>", re.S)


def fcpxml_tc_start(path: Path) -> float | None:
    """The first project's sequence start timecode (``tcStart``) in seconds; the adapter drops it."""
    from fractions import Fraction

    match = _TC_START.search(path.read_text(errors="replace"))
    if not match:
        return None
    attr = re.search(r'tcStart="([^"]+)"', match.group(1))
    return float(Fraction(attr.group(1).rstrip("s"))) if attr else None


def set_fcpxml_tc_start(path: Path, seconds: float, rate: float) -> None:
    """Write ``tcStart`` on the first project's sequence (the adapter does not)."""
    from fractions import Fraction

    text = path.read_text()
    match = _TC_START.search(text)
    if not match or "tcStart=" in match.group(1):
        return
    value = Fraction(round(seconds * rate)) / Fraction(rate).limit_denominator(1001)
    tc = f"{value.numerator}/{value.denominator}s" if value.denominator != 1 else f"{value.numerator}s"
    at = match.start(1)
    path.write_text(text[:at] + f' tcStart="{tc}"' + text[at:])


def _walk_timelines(obj):
    if isinstance(obj, otio.schema.Timeline):
        yield obj
    elif isinstance(obj, otio.schema.SerializableCollection):
        for child in obj:
            yield from _walk_timelines(child)


def _describe(adapter: str) -> str:
    return {
        "otio_json": "OpenTimelineIO",
        "otioz": "OTIOZ bundle",
        "otiod": "OTIOD bundle",
        "fcp_xml": "Final Cut Pro 7 XML",
        "fcpx_xml": "FCPXML",
        "cmx_3600": "CMX 3600 EDL",
    }[adapter]


def _to_edit(timeline: otio.schema.Timeline, path: Path, family: str, *, rate=None, start=None) -> Edit:
    rate = rate or _timeline_rate(timeline)
    if rate is None:
        raise TimelineError("has no clips to take a frame rate from", path=path, hint="export a timeline that has video on it")
    if start is None:
        gst = timeline.global_start_time
        start = gst.to_seconds() if gst is not None else 0.0
    duration = timeline.duration().to_seconds() if len(timeline.tracks) else 0.0
    tracks = []
    for i, track in enumerate(timeline.video_tracks(), start=1):
        shots = tuple(_track_shots(track, 0.0, path))
        tracks.append(VideoTrack(name=track.name or f"V{i}", shots=shots, enabled=track.enabled))
    markers = _markers(timeline)
    return Edit(
        name=timeline.name or path.stem,
        rate=rate,
        start=start,
        duration=duration,
        tracks=tuple(tracks),
        markers=tuple(markers),
        path=path,
        format=family,
    )


def _timeline_rate(timeline: otio.schema.Timeline) -> float | None:
    if timeline.global_start_time is not None:
        return float(timeline.global_start_time.rate)
    for clip in timeline.find_clips():
        return float(clip.trimmed_range().duration.rate)
    return None


def _track_shots(track: otio.schema.Track, offset: float, path: Path) -> list[Shot]:
    """Shots of one track in seconds, transitions moved to their midpoints, nested stacks flattened."""
    shots: list[Shot] = []
    items = list(track)
    for item in items:
        if isinstance(item, otio.schema.Transition):
            continue
        rng = item.range_in_parent()
        a = offset + rng.start_time.to_seconds()
        b = a + rng.duration.to_seconds()
        if isinstance(item, otio.schema.Stack):
            shots.extend(_stack_shots(item, a, b, path))
        elif isinstance(item, otio.schema.Clip) and item.enabled:
            media = _media(item, path)
            src0 = item.trimmed_range().start_time.to_seconds()
            shots.append(Shot(a, b, media, src0, src0 + (b - a), item.name or ""))
        else:  # gaps and disabled clips: the picture below shows through
            shots.append(Shot(a, b, None, name=getattr(item, "name", "") or ""))
    # a transition cuts at its midpoint: move the boundary between its neighbours there
    for i, item in enumerate(items):
        if not isinstance(item, otio.schema.Transition):
            continue
        before = sum(1 for x in items[:i] if not isinstance(x, otio.schema.Transition))
        if before == 0 or before >= len(shots):
            continue
        left, right = shots[before - 1], shots[before]
        edit = left.end
        mid = edit + (item.out_offset.to_seconds() - item.in_offset.to_seconds()) / 2
        shots[before - 1] = _retime(left, left.start, mid)
        shots[before] = _retime(right, mid, right.end)
    return shots


def _retime(shot: Shot, start: float, end: float) -> Shot:
    src0 = None if shot.source_start is None else shot.source_start + (start - shot.start)
    return Shot(start, end, shot.media, src0, None if src0 is None else src0 + (end - start), shot.name)


def _stack_shots(stack: otio.schema.Stack, a: float, b: float, path: Path) -> list[Shot]:
    """A compound clip: its own picture edits, seen through its trimmed range."""
    inner_start = stack.trimmed_range().start_time.to_seconds()
    video = [t for t in stack if isinstance(t, otio.schema.Track) and t.kind == otio.schema.TrackKind.Video]
    if not video:
        return [Shot(a, b, None, name=stack.name or "")]
    # flatten: the top track wins where tracks overlap (same rule as the timeline's own tracks)
    layers = [_track_shots(t, a - inner_start, path) for t in video]
    cuts = sorted({a, b, *(t for layer in layers for s in layer for t in (s.start, s.end) if a < t < b)})
    out = []
    for s0, s1 in zip(cuts, cuts[1:]):
        mid = (s0 + s1) / 2
        top = next(
            (s for layer in reversed(layers) for s in layer if not s.is_gap and s.start <= mid < s.end),
            None,
        )
        out.append(_retime(top, s0, s1) if top else Shot(s0, s1, None, name=stack.name or ""))
    return out


def _media(clip: otio.schema.Clip, path: Path) -> str | None:
    """Absolute path (or URL) of a clip's media, None where the file does not name it."""
    ref = clip.media_reference
    if isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
        url = ref.target_url
        if url.startswith("file:"):
            local = Path(otio.url_utils.filepath_from_url(url))
        elif "://" in url:
            return url
        else:
            local = Path(url.replace("\\", "/")) if re.match(r"^[A-Za-z]:\\", url) is None else Path(url)
        if not local.is_absolute() and not re.match(r"^[A-Za-z]:", str(local)):
            local = (path.parent / local).resolve()
        return str(local)
    if isinstance(ref, otio.schema.ImageSequenceReference):
        return ref.target_url_base
    return None


def _markers(timeline: otio.schema.Timeline) -> list[Marker]:
    out = [
        Marker(m.marked_range.start_time.to_seconds(), m.name or "", _comment(m), "timeline")
        for m in timeline.tracks.markers
    ]
    for track in timeline.tracks:
        for m in track.markers:
            out.append(Marker(m.marked_range.start_time.to_seconds(), m.name or "", _comment(m), f"track {track.name}"))
        for item in track:
            if isinstance(item, otio.schema.Transition) or not getattr(item, "markers", None):
                continue
            placed = item.range_in_parent()
            trimmed = item.trimmed_range()
            for m in item.markers:
                t = m.marked_range.start_time - trimmed.start_time
                if t < otio.opentime.RationalTime(0, t.rate) or t >= trimmed.duration:
                    continue  # marker on a part of the clip that was trimmed away
                out.append(
                    Marker((placed.start_time + t).to_seconds(), m.name or "", _comment(m), f"clip marker: {item.name}")
                )
    return out


def _comment(marker) -> str:
    comment = getattr(marker, "comment", "") or ""
    if not comment:
        for value in marker.metadata.values():
            if isinstance(value, Mapping) and isinstance(value.get("comment"), str):  # OTIO's AnyDictionary
                return value["comment"]
    return comment


def _edl_rate_and_start(path: Path, rate: float | None) -> tuple[float, float]:
    """An EDL's rate (``--rate`` or inferred from its frame fields) and its first record time."""
    text = path.read_text(errors="replace")
    frames = [int(m.group(5)) for m in _TIMECODE.finditer(text)]
    drop = any(m.group(4) == ";" for m in _TIMECODE.finditer(text))
    if rate is None:
        if not frames:
            raise TimelineError("has no timecodes", path=path, hint="check it is a CMX 3600 EDL")
        top = max(frames)
        fits = [r for r in EDL_RATES if top < r]
        if not fits:
            raise TimelineError(
                f"has a frame field of {top}, which fits no standard frame rate",
                path=path,
                hint="pass the EDL's rate with --rate (e.g. --rate 25)",
            )
        rate = fits[0]
        if drop and rate == 30.0:
            rate = 30000 / 1001
        logger.info("%s: EDLs carry no frame rate; inferred %.3f fps from its timecodes (use --rate to set it)", path.name, rate)
    elif frames and max(frames) >= round(rate):
        raise TimelineError(
            f"has a frame field of {max(frames)}, impossible at {rate:g} fps",
            path=path,
            hint="pass the EDL's real rate with --rate",
        )
    start = None
    for line in text.splitlines():
        m = _EVENT.match(line)
        if m:
            tc = m.group(3)
            try:
                t = otio.opentime.from_timecode(tc, rate).to_seconds()
            except Exception:
                continue
            start = t if start is None else min(start, t)
    return rate, (start or 0.0)


# ---------------------------------------------------------------------------------------------
# writing


def write(source: Path, out: Path, score: ScoreTrack, *, rate: float | None = None) -> Path:
    """Write ``source`` with a score track to ``out`` in the family ``out``'s suffix names.

    An existing "EMSYNC Score" track is replaced, so re-running on an edited timeline updates
    the score. Every other track is written back as read.
    """
    in_adapter, in_family = ADAPTERS[source.suffix.lower()]
    out_adapter, _ = ADAPTERS[out.suffix.lower()]
    with tempfile.TemporaryDirectory(prefix="emsync-") as tmp:
        kwargs = {}
        edl_start = None
        if in_family == "cmx_3600":
            kwargs["rate"], edl_start = _edl_rate_and_start(source, rate)
        elif in_family == "otioz":  # unpack, so the media inside can be bundled again
            kwargs["extract_to_directory"] = tmp
        elif in_family == "otiod":
            kwargs["absolute_media_reference_paths"] = True
        timeline = _load(source, in_adapter, **kwargs)
        timeline_rate = rate or _timeline_rate(timeline) or 24.0
        if in_family == "fcpx_xml" and timeline.global_start_time is None:
            tc_start = fcpxml_tc_start(source)
            if tc_start:
                timeline.global_start_time = otio.opentime.RationalTime(round(tc_start * timeline_rate), timeline_rate)
        if edl_start is not None and timeline.global_start_time is None:
            # keep the EDL's record start (e.g. 01:00:00:00) in the OTIO written beside it
            timeline.global_start_time = otio.opentime.RationalTime(round(edl_start * timeline_rate), timeline_rate)
        add_score_track(timeline, score, timeline_rate)
        write_kwargs = {}
        if out_adapter in ("otioz", "otiod"):
            write_kwargs["media_policy"] = "MissingIfNotFile"
        with fileio.atomic_path(out) as tmp_out:
            tmp_out.unlink()  # adapters create the file (or the .otiod folder) themselves
            otio.adapters.write_to_file(timeline, str(tmp_out), adapter_name=out_adapter, **write_kwargs)
            if out_adapter == "fcpx_xml" and timeline.global_start_time is not None:
                set_fcpxml_tc_start(tmp_out, timeline.global_start_time.to_seconds(), timeline_rate)
    logger.info("wrote %s", out)
    return out


def write_for_video(timeline, out: Path, score: ScoreTrack) -> Path:
    """A new OTIO timeline for a bare video file: its shots on V1, its sound on A1, the score on A2."""
    rate = timeline.rate
    media = str(timeline.path.resolve())
    url = otio.url_utils.url_from_filepath(media)

    def rng(a: float, b: float) -> otio.opentime.TimeRange:
        start = otio.opentime.RationalTime(round(a * rate), rate)
        return otio.opentime.TimeRange(start, otio.opentime.RationalTime(round(b * rate), rate) - start)

    whole = rng(0.0, timeline.duration)
    result = otio.schema.Timeline(name=timeline.name)
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for s in timeline.scenes:
        ref = otio.schema.ExternalReference(target_url=url, available_range=whole)
        video.append(otio.schema.Clip(name=f"shot {s.index}", media_reference=ref, source_range=rng(s.start, s.end)))
    sound = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    sound.append(otio.schema.Clip(name=timeline.path.name, source_range=whole,
                                  media_reference=otio.schema.ExternalReference(target_url=url, available_range=whole)))
    result.tracks.extend([video, sound])
    add_score_track(result, score, rate)
    with fileio.atomic_path(out) as tmp_out:
        tmp_out.unlink()
        otio.adapters.write_to_file(result, str(tmp_out), adapter_name=ADAPTERS[out.suffix.lower()][0])
    logger.info("wrote %s", out)
    return out


def is_score_track(track: otio.schema.Track, name: str) -> bool:
    """Our track, however the format kept it: by track name (OTIO) or clip names (FCP 7, FCPXML)."""
    if track.kind != otio.schema.TrackKind.Audio:
        return False
    if track.name == name or "emsync" in track.metadata:
        return True
    clips = list(track.find_clips())
    return bool(clips) and all(c.name == name or "emsync" in c.metadata for c in clips)


def add_score_track(timeline: otio.schema.Timeline, score: ScoreTrack, rate: float) -> otio.schema.Track:
    """Replace or add the audio track named ``score.name`` holding one clip of ``score.wav``.

    Settings go under ``metadata["emsync"]`` (OTIO), the clip's FCP 7 ``<comments>`` and the
    FCPXML asset's ``<note>`` and ``<metadata>`` (the formats' own places for them).
    """
    for track in list(timeline.tracks):
        if is_score_track(track, score.name):
            timeline.tracks.remove(track)
    frames = int(round(score.duration * rate))
    rng = otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(frames, rate))
    meta = json.loads(json.dumps(score.metadata, default=str))
    sidecar = meta.get("sidecar", "")
    ref = otio.schema.ExternalReference(
        target_url=otio.url_utils.url_from_filepath(str(score.wav)),
        available_range=rng,
        metadata={
            "fcpx": {
                "note": f"{score.name}: generated by emsync. MIDI {score.midi}; settings {sidecar}",
                "metadata": [{"com.emsync.midi": str(score.midi)}, {"com.emsync.settings": str(sidecar)}],
            }
        },
    )
    clip = otio.schema.Clip(
        name=score.name,
        media_reference=ref,
        source_range=rng,
        metadata={
            "emsync": meta,
            "fcp_xml": {
                "comments": {
                    "mastercomment1": f"{score.name} (emsync)",
                    "mastercomment2": f"MIDI: {score.midi}",
                    "mastercomment3": f"settings: {sidecar}",
                }
            },
        },
    )
    track = otio.schema.Track(name=score.name, kind=otio.schema.TrackKind.Audio, metadata={"emsync": meta})
    track.append(clip)
    timeline.tracks.append(track)
    timeline.metadata["emsync"] = meta
    return track
