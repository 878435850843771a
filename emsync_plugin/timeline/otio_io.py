"""OTIO-family timelines in: read through OpenTimelineIO and its adapter packages.

Families: OTIO JSON (``.otio``), its bundles (``.otioz``, ``.otiod``), Final Cut Pro 7 XML
(``.xml``: Premiere, Resolve, Hiero, Kdenlive exports; adapter ``otio-fcp-adapter``), FCPXML
(``.fcpxml``; ``otio-fcpx-xml-adapter``) and CMX 3600 EDL (``.edl``; ``otio-cmx3600-adapter``).
Every reader returns an :class:`~emsync_plugin.timeline.model.Edit`; nothing above this room
sees an OTIO object. Input is checked first (:mod:`.otio_checks`); writing is :mod:`.otio_write`.
"""
from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import opentimelineio as otio

from ..errors import TimelineError
from . import fcpxml, limits, overlay
from .model import Edit, Marker, ScoreTrackInfo, Shot, VideoTrack, is_score_name
from .otio_checks import check_otio_json, guarded, read_otioz

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



def read(path: Path, *, rate: float | None = None) -> Edit:
    """Read any OTIO-family timeline file into an :class:`Edit`."""
    adapter, family = ADAPTERS[path.suffix.lower()]
    kwargs = {}
    start = None
    if family == "cmx_3600":
        rate, start = edl_rate_and_start(path, rate)
        kwargs["rate"] = rate
    elif family == "fcpx_xml":
        start = fcpxml.tc_start(path)
    timeline = load(path, adapter, **kwargs)
    edit = guarded(path, adapter, lambda: _to_edit(timeline, path, family, rate=rate, start=start))
    if family == "fcpx_xml":  # the adapter drops <title> elements: they come back as an overlay track
        titles = fcpxml.titles(path)
        if titles:
            edit = replace(edit, tracks=(*edit.tracks, VideoTrack("titles", tuple(titles))))
    return replace(edit, drop_frame=_drop_frame(timeline, path, family))


def _drop_frame(timeline: otio.schema.Timeline, path: Path, family: str) -> bool:
    """Whether the editor shows this timeline in drop-frame timecode, from the format's own flag:
    EDL ``FCM: DROP FRAME`` (or ``;`` timecodes), FCPXML ``tcFormat="DF"``, FCP 7
    ``<timecode><displayformat>DF``; OTIO JSON has no flag of its own, so what an adapter kept in
    the timeline's metadata (an FCP 7 ``timecode``, a ``drop_frame`` key)."""
    if family == "cmx_3600":
        return edl_drop_frame(path.read_text(errors="replace"))
    if family == "fcpx_xml":
        return fcpxml.tc_format(path) == "DF"
    for value in timeline.metadata.values():
        if not isinstance(value, Mapping):
            continue
        tc = value.get("timecode")
        if isinstance(tc, Mapping) and str(tc.get("displayformat", "")).upper() == "DF":
            return True
        if value.get("drop_frame") is True or str(value.get("tcFormat", "")).upper() == "DF":
            return True
    return False


def edl_drop_frame(text: str) -> bool:
    """An EDL's timecode mode: its first ``FCM:`` line, else ``;`` before the frames of a timecode."""
    for line in text.splitlines():
        if line.strip().upper().startswith("FCM:"):
            return "NON" not in line.upper() and "DROP" in line.upper()
    return any(m.group(4) == ";" for m in _TIMECODE.finditer(text))



def load(path: Path, adapter: str, **kwargs) -> otio.schema.Timeline:
    if adapter == "otioz":
        result = read_otioz(path, kwargs.get("extract_to_directory"))
    elif adapter in ("otio_json", "otiod"):
        # parsed from a string we checked: OpenTimelineIO's own file reader was seen to crash
        # the process (segmentation fault) on damaged files while fuzzing
        content = path / "content.otio" if adapter == "otiod" else path
        if adapter == "otiod" and not content.is_file():
            raise TimelineError("is not an OTIOD bundle (no content.otio inside)", path=path,
                                hint="pass the .otiod folder written by OpenTimelineIO, or its content.otio")
        data = _read_bytes(content)
        check_otio_json(content, data)
        result = guarded(path, adapter, lambda: otio.adapters.read_from_string(data.decode("utf-8"), "otio_json"))
        if adapter == "otiod" and kwargs.get("absolute_media_reference_paths"):
            guarded(path, adapter, lambda: _absolute_media(result, path))
    elif adapter == "fcpx_xml":
        result = guarded(path, adapter, lambda: fcpxml.read(path))
    else:
        result = guarded(path, adapter, lambda: otio.adapters.read_from_file(str(path), adapter_name=adapter, **kwargs))
    if isinstance(result, otio.schema.Timeline):
        return result
    timelines = guarded(path, adapter, lambda: list(_walk_timelines(result)))
    if not timelines:
        raise TimelineError("holds no timeline", path=path, hint="export a sequence/project, not a bin")
    if len(timelines) > 1:
        logger.info("%s holds %d timelines; using the first, %r", path, len(timelines), timelines[0].name)
    return timelines[0]


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TimelineError(f"cannot be read ({exc.strerror or exc})", path=path, hint="check that the file is readable") from None


def _absolute_media(result, folder: Path) -> None:
    """What the otiod adapter's ``absolute_media_reference_paths`` does: bundle-relative media
    made absolute (so the timeline can be written elsewhere)."""
    from urllib.parse import urlparse

    for clip in result.find_clips():
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
            rel = urlparse(ref.target_url).path
            ref.target_url = otio.url_utils.url_from_filepath(os.path.join(str(folder), rel))


def _walk_timelines(obj):
    if isinstance(obj, otio.schema.Timeline):
        yield obj
    elif isinstance(obj, otio.schema.SerializableCollection):
        for child in obj:
            yield from _walk_timelines(child)


def _to_edit(timeline: otio.schema.Timeline, path: Path, family: str, *, rate=None, start=None) -> Edit:
    rate = rate or timeline_rate(timeline)
    if rate is None:
        raise TimelineError("has no clips to take a frame rate from", path=path, hint="export a timeline that has video on it")
    if start is None:
        gst = timeline.global_start_time
        start = gst.to_seconds() if gst is not None else 0.0
    duration = _duration(timeline)
    frame = overlay.fcp7_frame(timeline.metadata.get("fcp_xml", {})) if family == "fcp_xml" else None
    tracks = []
    for i, track in enumerate(timeline.video_tracks(), start=1):
        shots = tuple(_track_shots(track, 0.0, path, frame=frame))
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
        audio=tuple(_audio_shots(timeline, path)),
    )


def is_emsync_track(track: object) -> bool:
    """One of emsync's score tracks, however the format kept it: by track name (OTIO), emsync
    metadata, or the names/metadata of its clips (FCP 7 XML and FCPXML drop track names)."""
    if not isinstance(track, otio.schema.Track) or track.kind != otio.schema.TrackKind.Audio:
        return False
    if is_score_name(track.name) or "emsync" in track.metadata:
        return True
    clips = list(track.find_clips())
    return bool(clips) and all(is_score_name(c.name) or "emsync" in c.metadata for c in clips)


def is_muted(track: otio.schema.Track) -> bool:
    """A disabled track: OTIO's ``enabled`` flag or FCP 7 XML's ``<enabled>FALSE</enabled>``
    (which the FCP 7 adapter keeps only as metadata)."""
    fcp = track.metadata.get("fcp_xml")
    fcp_off = isinstance(fcp, Mapping) and str(fcp.get("enabled", "")).upper() == "FALSE"
    return not track.enabled or fcp_off


def _duration(timeline: otio.schema.Timeline) -> float:
    """The timeline's length without emsync's own earlier score tracks (a score written for a
    longer cut must not keep a black tail after the picture was shortened)."""
    if not len(timeline.tracks):
        return 0.0
    stack = timeline.tracks
    ours = [t for t in stack if is_emsync_track(t)]
    if not ours or stack.source_range is not None:
        return timeline.duration().to_seconds()
    return max((t.duration().to_seconds() for t in stack if not is_emsync_track(t)), default=0.0)


def _audio_shots(timeline: otio.schema.Timeline, path: Path) -> list[Shot]:
    """Clips of the enabled audio tracks other than emsync's, in timeline seconds (nested
    stacks are not looked into)."""
    shots: list[Shot] = []
    for track in timeline.audio_tracks():
        if is_muted(track) or is_emsync_track(track):
            continue
        for item, start, trimmed in _placed(list(track)):
            if not isinstance(item, otio.schema.Clip) or not item.enabled:
                continue
            a = start.to_seconds()
            b = a + trimmed.duration.to_seconds()
            src0 = trimmed.start_time.to_seconds()
            shots.append(Shot(a, b, _media(item, path), src0, src0 + (b - a), item.name or ""))
    shots.sort(key=lambda s: (s.start, s.end))
    return shots


def score_tracks(timeline: otio.schema.Timeline) -> list[ScoreTrackInfo]:
    """The emsync score tracks of an OTIO timeline in track order (as written: take 1 first),
    with what emsync stored."""
    found = []
    for track in timeline.tracks:
        if not is_emsync_track(track):
            continue
        clips = list(track.find_clips())
        name = track.name if is_score_name(track.name) else next((c.name for c in clips if c.name), track.name)
        muted = is_muted(track) or (bool(clips) and not any(c.enabled for c in clips))
        found.append(ScoreTrackInfo(name or "", muted, _stored(track, clips)))
    return found


def _stored(track: otio.schema.Track, clips: list) -> dict:
    """What emsync kept on a score track: OTIO metadata, else the FCP 7 comments or FCPXML notes."""
    for holder in (track, *clips):
        meta = holder.metadata.get("emsync")
        if isinstance(meta, Mapping):
            return {str(k): _plain(v) for k, v in meta.items()}
    out: dict = {}
    for clip in clips:
        comments = clip.metadata.get("fcp_xml", {}).get("comments", {}) if isinstance(
            clip.metadata.get("fcp_xml"), Mapping) else {}
        for value in (comments.values() if isinstance(comments, Mapping) else ()):
            key, sep, rest = str(value).partition(": ")
            if sep and key in ("MIDI", "settings", "take"):
                out[{"MIDI": "midi", "settings": "sidecar"}.get(key, key)] = rest
        fcpx = getattr(clip.media_reference, "metadata", {}).get("fcpx", {})
        for entry in (fcpx.get("metadata", ()) if isinstance(fcpx, Mapping) else ()):
            for key, value in (entry.items() if isinstance(entry, Mapping) else ()):
                if str(key).startswith("com.emsync."):
                    out[{"settings": "sidecar"}.get(key[len("com.emsync."):], key[len("com.emsync."):])] = value
    return out


def _plain(value: object) -> object:
    """OTIO's AnyDictionary/AnyVector as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "AnyVector":
        return [_plain(v) for v in value]  # type: ignore[attr-defined]
    return value


def timeline_rate(timeline: otio.schema.Timeline) -> float | None:
    if timeline.global_start_time is not None:
        return float(timeline.global_start_time.rate)
    for clip in timeline.find_clips():
        return float(clip.trimmed_range().duration.rate)
    return None


def _track_shots(track: otio.schema.Track, offset: float, path: Path, depth: int = 0,
                 frame: tuple[float, float] | None = None) -> list[Shot]:
    """Shots of one track in seconds, transitions moved to their midpoints, nested stacks flattened;
    overlays (generators, titles, FCP 7 clips shrunk by Basic Motion in a ``frame`` of that size)
    marked as not covering the frame."""
    shots: list[Shot] = []
    items = list(track)
    for item, start, trimmed in _placed(items):
        a = offset + start.to_seconds()
        b = a + trimmed.duration.to_seconds()
        if isinstance(item, otio.schema.Stack):
            shots.extend(_stack_shots(item, a, b, path, depth + 1))
        elif isinstance(item, otio.schema.Clip) and item.enabled:
            media = _media(item, path)
            src0 = trimmed.start_time.to_seconds()
            why = _overlay_reason(item, frame)
            shots.append(Shot(a, b, media, src0, src0 + (b - a), item.name or "", not why, why))
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


def _overlay_reason(clip: otio.schema.Clip, frame: tuple[float, float] | None) -> str:
    """Why a clip does not cover the frame ("" if it does): a generator other than a solid or
    colour matte (OTIO ``GeneratorReference``, FCP 7 generator items), an FCP 7 transform, or what
    :mod:`.fcpxml`'s reader found (FCPXML generators and transforms)."""
    ref = clip.media_reference
    fcpx = clip.metadata.get("fcpx")
    if isinstance(fcpx, Mapping) and fcpx.get("overlay"):  # worked out by fcpxml's reader
        return str(fcpx["overlay"])
    fcp = clip.metadata.get("fcp_xml")
    if isinstance(ref, otio.schema.GeneratorReference):
        ref_fcp = ref.metadata.get("fcp_xml")
        category = str(ref_fcp.get("effectcategory", "")) if isinstance(ref_fcp, Mapping) else ""
        alpha = str(fcp.get("alphatype", "")) if isinstance(fcp, Mapping) else ""
        return overlay.generator_reason(ref.generator_kind or "", clip.name or ref.name or "", category, alpha)
    if isinstance(fcp, Mapping) and "filter" in fcp:
        media_md = ref.metadata.get("fcp_xml", {}) if ref is not None else {}
        return overlay.fcp7_transform_reason(fcp, media_md if isinstance(media_md, Mapping) else {}, frame)
    return ""


def _placed(items):
    """``(item, start in the track, trimmed range)`` of a track's items, transitions skipped.

    What ``item.range_in_parent()`` gives, in one pass: OpenTimelineIO sums the items before
    each one on every call, which made 100,000 clips take minutes.
    """
    pos = None
    for item in items:
        if isinstance(item, otio.schema.Transition):
            continue
        trimmed = item.trimmed_range()
        if pos is None:
            pos = otio.opentime.RationalTime(0, trimmed.duration.rate)
        yield item, pos, trimmed
        pos = pos + trimmed.duration


def _retime(shot: Shot, start: float, end: float) -> Shot:
    src0 = None if shot.source_start is None else shot.source_start + (start - shot.start)
    return replace(shot, start=start, end=end, source_start=src0, source_end=None if src0 is None else src0 + (end - start))


def _stack_shots(stack: otio.schema.Stack, a: float, b: float, path: Path, depth: int = 1) -> list[Shot]:
    """A compound clip: its own picture edits, seen through its trimmed range."""
    if depth > limits.MAX_STACK_NESTING:
        raise TimelineError(
            f"refused: compound clips are nested more than {limits.MAX_STACK_NESTING} deep", path=path,
            hint="flatten the nested sequences in the editor and export again",
        )
    inner_start = stack.trimmed_range().start_time.to_seconds()
    video = [t for t in stack if isinstance(t, otio.schema.Track) and t.kind == otio.schema.TrackKind.Video]
    if not video:
        return [Shot(a, b, None, name=stack.name or "")]
    layers = [_track_shots(t, a - inner_start, path, depth) for t in video]
    return _flatten(layers, a, b, stack.name or "")


def _flatten(layers: list[list[Shot]], a: float, b: float, name: str) -> list[Shot]:
    """One track of the picture seen: the top track wins where tracks overlap (the timeline's own
    rule); an overlay inside a compound clip shows only over black there (its pieces over a clip
    are that clip's, joined again as through edits)."""
    cuts = sorted({a, b, *(t for layer in layers for s in layer for t in (s.start, s.end) if a < t < b)})
    out = []
    for s0, s1 in zip(cuts, cuts[1:]):
        mid = (s0 + s1) / 2
        seen = [s for layer in reversed(layers) for s in layer if not s.is_gap and s.start <= mid < s.end]
        top = next((s for s in seen if s.covers_frame), seen[0] if seen else None)
        out.append(_retime(top, s0, s1) if top else Shot(s0, s1, None, name=name))
    return out


def _media(clip: otio.schema.Clip, path: Path) -> str | None:
    """Absolute path (or URL) of a clip's media, None where the file does not name it.

    Paths are data: Windows paths and ``file://`` URLs from other machines are kept as the
    path they name (reported as missing media later), never interpreted further.
    """
    try:
        return _media_path(clip, path)
    except (ValueError, OSError, UnicodeError):  # e.g. a NUL byte or an undecodable URL
        ref = clip.media_reference
        return getattr(ref, "target_url", None) or None


def _media_path(clip: otio.schema.Clip, path: Path) -> str | None:
    ref = clip.media_reference
    if isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
        return _local(ref.target_url, str(path.parent))
    if isinstance(ref, otio.schema.ImageSequenceReference):
        return ref.target_url_base
    return None


@functools.lru_cache(maxsize=4096)  # long timelines use the same media many times
def _local(url: str, folder: str) -> str:
    if url.startswith("file:"):
        local = Path(otio.url_utils.filepath_from_url(url))
    elif "://" in url:
        return url
    else:
        local = Path(url.replace("\\", "/")) if re.match(r"^[A-Za-z]:\\", url) is None else Path(url)
    if not local.is_absolute() and not re.match(r"^[A-Za-z]:", str(local)):
        local = (Path(folder) / local).resolve()
    return str(local)


def _markers(timeline: otio.schema.Timeline) -> list[Marker]:
    out = [
        Marker(m.marked_range.start_time.to_seconds(), m.name or "", _comment(m), "timeline")
        for m in timeline.tracks.markers
    ]
    for track in timeline.tracks:
        for m in track.markers:
            out.append(Marker(m.marked_range.start_time.to_seconds(), m.name or "", _comment(m), f"track {track.name}"))
        if not isinstance(track, otio.schema.Track):
            continue
        for item, start, trimmed in _placed(list(track)):
            if not getattr(item, "markers", None):
                continue
            for m in item.markers:
                t = m.marked_range.start_time - trimmed.start_time
                if t < otio.opentime.RationalTime(0, t.rate) or t >= trimmed.duration:
                    continue  # marker on a part of the clip that was trimmed away
                out.append(
                    Marker((start + t).to_seconds(), m.name or "", _comment(m), f"clip marker: {item.name}")
                )
    return out


def _comment(marker) -> str:
    comment = getattr(marker, "comment", "") or ""
    if not comment:
        for value in marker.metadata.values():
            if isinstance(value, Mapping) and isinstance(value.get("comment"), str):  # OTIO's AnyDictionary
                return value["comment"]
    return comment


def edl_rate_and_start(path: Path, rate: float | None) -> tuple[float, float]:
    """An EDL's rate (``--rate`` or inferred from its frame fields) and its first record time."""
    text = path.read_text(errors="replace")
    frames = [int(m.group(5)) for m in _TIMECODE.finditer(text)]
    drop = edl_drop_frame(text)
    if rate is None:
        if not frames:
            raise TimelineError("has no timecodes", path=path, hint="check it is a CMX 3600 EDL")
        top = max(frames)
        # drop-frame exists only at 29.97 and 59.94: a DF EDL is one of those, whatever its frame fields
        fits = [r for r in ((30.0, 60.0) if drop else EDL_RATES) if top < r]
        if not fits:
            raise TimelineError(
                f"has a frame field of {top}, which fits no standard frame rate",
                path=path,
                hint="pass the EDL's rate with --rate (e.g. --rate 25)",
            )
        rate = fits[0] * 1000 / 1001 if drop else fits[0]
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
