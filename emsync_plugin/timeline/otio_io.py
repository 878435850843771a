"""Timelines read and written through OpenTimelineIO and its adapter packages.

Families: OTIO JSON (``.otio``), its bundles (``.otioz``, ``.otiod``), Final Cut Pro 7 XML
(``.xml``: Premiere, Resolve, Hiero, Kdenlive exports; adapter ``otio-fcp-adapter``), FCPXML
(``.fcpxml``; ``otio-fcpx-xml-adapter``) and CMX 3600 EDL (``.edl``; ``otio-cmx3600-adapter``).
Every reader returns an :class:`~emsync_plugin.timeline.model.Edit`; nothing above this room
sees an OTIO object.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import stat
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import opentimelineio as otio

from .. import fileio
from ..errors import EmsyncError, TimelineError
from . import limits
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
    return _guarded(path, adapter, lambda: _to_edit(timeline, path, family, rate=rate, start=start))


def _guarded(path: Path, adapter: str, job):
    """Run ``job``; whatever an adapter or OTIO raises becomes a TimelineError naming the file."""
    try:
        return job()
    except EmsyncError:
        raise
    except RecursionError:
        raise TimelineError(
            "refused: it is nested too deeply to read", path=path, hint="re-export the timeline from the editor",
        ) from None
    except MemoryError:
        raise TimelineError(
            "refused: it needs more memory than this machine has", path=path,
            hint="re-export the timeline from the editor; split it into reels if it is really that large",
        ) from None
    except Exception as exc:  # adapters and OTIO raise anything from ValueError to KeyError
        detail = " ".join(str(exc).split())[:300]
        raise TimelineError(
            f"cannot read this {_describe(adapter)} file ({type(exc).__name__}: {detail})",
            path=path,
            hint=f"check that it is a complete {_describe(adapter)} export; re-export it from the editor",
        ) from exc


def _load(path: Path, adapter: str, **kwargs) -> otio.schema.Timeline:
    if adapter == "fcpx_xml":
        _round_fcpx_times()
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
        result = _guarded(path, adapter, lambda: otio.adapters.read_from_string(data.decode("utf-8"), "otio_json"))
        if adapter == "otiod" and kwargs.get("absolute_media_reference_paths"):
            _guarded(path, adapter, lambda: _absolute_media(result, path))
    else:
        result = _guarded(path, adapter, lambda: otio.adapters.read_from_file(str(path), adapter_name=adapter, **kwargs))
    if isinstance(result, otio.schema.Timeline):
        return result
    timelines = _guarded(path, adapter, lambda: list(_walk_timelines(result)))
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


_SCHEMA = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.(\d{1,6})$")
_ITEM = ("color", "effects", "enabled", "markers", "metadata", "name", "source_range")
_REF = ("available_image_bounds", "available_range", "metadata", "name")
_EFFECT = ("effect_name", "enabled", "metadata", "name")
#: The fields of the OTIO schemas a timeline holds (all versions); an OTIO object stored under
#: any other key is refused (OpenTimelineIO 0.18 can crash later on such "dynamic fields").
_FIELDS = {
    "Clip": {*_ITEM, "media_references", "active_media_reference_key", "media_reference"},
    "Gap": {*_ITEM}, "Track": {*_ITEM, "children", "kind"}, "Stack": {*_ITEM, "children"},
    "Timeline": {"global_start_time", "metadata", "name", "tracks"},
    "Transition": {"in_offset", "metadata", "name", "out_offset", "transition_type"},
    "Marker": {"color", "comment", "marked_range", "metadata", "name", "range"},
    "ExternalReference": {*_REF, "target_url"}, "MissingReference": {*_REF},
    "GeneratorReference": {*_REF, "generator_kind", "parameters"},
    "ImageSequenceReference": {*_REF, "frame_step", "frame_zero_padding", "missing_frame_policy", "name_prefix",
                               "name_suffix", "rate", "start_frame", "target_url_base"},
    "SerializableCollection": {"children", "metadata", "name"},
    "Effect": {*_EFFECT}, "TimeEffect": {*_EFFECT}, "LinearTimeWarp": {*_EFFECT, "time_scalar"},
    "FreezeFrame": {*_EFFECT, "time_scalar"},
}


def check_otio_json(path: Path, data: bytes) -> None:
    """Check OTIO JSON in Python before OpenTimelineIO's C++ reader sees it.

    OpenTimelineIO 0.18 crashes the whole process (a segmentation fault, found by fuzzing)
    on an ``OTIO_SCHEMA`` version it has to upgrade while the object already holds the new
    version's fields (``"Clip.1"`` with ``media_references``), on versions like
    ``"Clip.-1"``, and - on a later read - after reading an object with a key given twice
    (its error path corrupts memory). Such files, OTIO objects under keys their schema does
    not have, JSON that does not parse and JSON nested deeper than
    :data:`limits.MAX_JSON_DEPTH` are refused here.
    """
    limits.check_json(path, data)
    hint = "re-export the timeline from the editor (or from OpenTimelineIO)"

    def hook(pairs: list) -> dict:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen = set()
            twice = next(k for k, _ in pairs if k in seen or seen.add(k))
            raise TimelineError(f"is not a valid OpenTimelineIO file (the key {twice[:40]!r} appears twice in one object)",
                                path=path, hint=hint)
        schema = obj.get("OTIO_SCHEMA")
        if schema is not None:
            m = _SCHEMA.match(schema) if isinstance(schema, str) else None
            if m is None:
                raise TimelineError(f"is not a valid OpenTimelineIO file (OTIO_SCHEMA {str(schema)[:60]!r})",
                                    path=path, hint=hint)
            if m.group(1) == "Clip" and int(m.group(2)) < 2 and "media_references" in obj:
                raise TimelineError(
                    f"is not a valid OpenTimelineIO file (a {schema} clip with the media_references of Clip.2)",
                    path=path, hint=hint,
                )
            fields = _FIELDS.get(m.group(1))
            if fields is not None:
                for key, value in obj.items():
                    if key not in fields and key != "OTIO_SCHEMA" and _holds_schema(value):
                        raise TimelineError(
                            f"is not a valid OpenTimelineIO file (an OTIO object under {key[:40]!r} of a {schema})",
                            path=path, hint=hint,
                        )
        return obj

    try:
        json.loads(data, object_pairs_hook=hook)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise TimelineError(f"cannot read it: not valid JSON ({' '.join(str(exc).split())[:160]}); it may be truncated",
                            path=path, hint=hint) from None
    except RecursionError:
        raise TimelineError("refused: its JSON is nested too deeply", path=path, hint=hint) from None


def _holds_schema(value) -> bool:
    if isinstance(value, dict):
        return "OTIO_SCHEMA" in value or any(_holds_schema(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_schema(v) for v in value)
    return False


def _bundle_members(path: Path, z: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The members of an OTIOZ bundle, refused if any could land outside the folder it is
    unpacked to (``../``, absolute or drive paths, symlinks) or if they are too many or too big."""
    members = z.infolist()
    if len(members) > limits.MAX_MEMBERS:
        raise TimelineError(f"refused: the bundle has {len(members):,} members (at most {limits.MAX_MEMBERS:,})",
                            path=path, hint="editors do not write such bundles; re-export it")
    total = 0
    for info in members:
        name = info.filename
        parts = re.split(r"[\\/]", name)
        if (name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts or "\0" in name):
            raise TimelineError(f"refused: the bundle member {name[:120]!r} points outside the bundle",
                                path=path, hint="this is not a bundle OpenTimelineIO wrote; do not use it")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise TimelineError(f"refused: the bundle member {name[:120]!r} is a symbolic link",
                                path=path, hint="this is not a bundle OpenTimelineIO wrote; do not use it")
        total += info.file_size
        big = info.file_size > 1024 * 1024
        if total > limits.MAX_UNPACKED or (big and info.file_size > limits.MAX_RATIO * max(info.compress_size, 1)):
            raise TimelineError(
                f"refused: the bundle unpacks to more than it may ({name[:120]!r}: {info.file_size:,} bytes "
                f"from {info.compress_size:,}); it looks like a zip bomb",
                path=path, hint="this is not a bundle OpenTimelineIO wrote; do not use it")
    return members


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, path: Path) -> bytes:
    """A member's bytes, never more than ``limit`` (the header's size may lie)."""
    with z.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TimelineError(f"refused: the bundle member {info.filename[:120]!r} unpacks to more than {limit:,} bytes",
                            path=path, hint="this is not a bundle OpenTimelineIO wrote; do not use it")
    return data


def read_otioz(path: Path, extract_to: str | Path | None = None) -> otio.schema.Timeline:
    """Read an ``.otioz`` bundle ourselves (not with the adapter, which trusts the archive).

    Members are checked (:func:`_bundle_members`) before anything is read; ``extract_to`` (a
    private temporary folder) receives the media, member by member, never through a symlink,
    each no larger than its header says; clips pointing at bundled media are relinked there.
    """
    def job():
        with zipfile.ZipFile(path) as z:
            members = _bundle_members(path, z)
            content = next((m for m in members if m.filename == "content.otio"), None)
            if content is None:
                raise TimelineError("is not an OTIOZ bundle (no content.otio inside)", path=path,
                                    hint="re-export the bundle from OpenTimelineIO")
            data = _read_member(z, content, limits.MAX_FILE_BYTES, path)
            check_otio_json(path, data)
            timeline = otio.adapters.read_from_string(data.decode("utf-8"), adapter_name="otio_json")
            if extract_to is not None:
                _extract(path, z, members, Path(extract_to))
                _relink(timeline, Path(extract_to))
            return timeline

    return _guarded(path, "otioz", job)


def _extract(path: Path, z: zipfile.ZipFile, members: list[zipfile.ZipInfo], folder: Path) -> None:
    root = folder.resolve()
    for info in members:
        if info.is_dir() or info.filename == "content.otio":
            continue
        dest = (root / info.filename).resolve()
        if root not in dest.parents:
            raise TimelineError(f"refused: the bundle member {info.filename[:120]!r} points outside the bundle",
                                path=path, hint="this is not a bundle OpenTimelineIO wrote; do not use it")
        dest.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        written = 0
        with z.open(info) as src, os.fdopen(os.open(dest, flags, 0o600), "wb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > info.file_size:
                    raise TimelineError(f"refused: the bundle member {info.filename[:120]!r} is larger than it says",
                                        path=path, hint="this is not a bundle OpenTimelineIO wrote; do not use it")
                out.write(chunk)


def _relink(timeline: otio.schema.Timeline, folder: Path) -> None:
    """Point clips at media unpacked from the bundle (so writing a bundle again includes them)."""
    for clip in timeline.find_clips():
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ExternalReference) and ref.target_url and "://" not in ref.target_url:
            local = (folder / ref.target_url).resolve()
            if folder.resolve() in local.parents and local.is_file():
                ref.target_url = otio.url_utils.url_from_filepath(str(local))


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
    if not attr:
        return None
    try:
        seconds = float(Fraction(attr.group(1).strip().rstrip("s")))
    except (ValueError, ZeroDivisionError, OverflowError):
        seconds = math.nan
    if not (math.isfinite(seconds) and abs(seconds) <= limits.MAX_START):
        logger.warning("%s: ignoring the sequence's start timecode tcStart=%r (not a time)", path, attr.group(1)[:40])
        return None
    return seconds


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
    fileio.write_text(path, text[:at] + f' tcStart="{tc}"' + text[at:])


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


def _track_shots(track: otio.schema.Track, offset: float, path: Path, depth: int = 0) -> list[Shot]:
    """Shots of one track in seconds, transitions moved to their midpoints, nested stacks flattened."""
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
    return Shot(start, end, shot.media, src0, None if src0 is None else src0 + (end - start), shot.name)


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
    # flatten: the top track wins where tracks overlap (same rule as the timeline's own tracks)
    layers = [_track_shots(t, a - inner_start, path, depth) for t in video]
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
    out_adapter = ADAPTERS[out.suffix.lower()][0]
    _writing(out, out_adapter, lambda: _write(source, out, score, rate))
    logger.info("wrote %s", out)
    return out


def _write(source: Path, out: Path, score: ScoreTrack, rate: float | None) -> None:
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


def _writing(out: Path, adapter: str, job) -> None:
    """Run an adapter's writer; what it raises on a timeline it cannot express (a timecode rate
    SMPTE does not have, a clip FCPXML cannot place - found by fuzzing) is a TimelineError."""
    try:
        job()
    except (EmsyncError, OSError):
        raise
    except Exception as exc:  # noqa: BLE001 - the adapters raise anything
        detail = " ".join(str(exc).split())[:200]
        raise TimelineError(
            f"cannot write this timeline as {_describe(adapter)} ({type(exc).__name__}: {detail})", path=out,
            hint="write it as OpenTimelineIO instead (-o NAME.otio)",
        ) from exc


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
        adapter = ADAPTERS[out.suffix.lower()][0]
        _writing(out, adapter, lambda: otio.adapters.write_to_file(result, str(tmp_out), adapter_name=adapter))
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
