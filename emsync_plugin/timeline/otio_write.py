"""OTIO-family timelines out: the input's tracks written back with a score track.

Through OpenTimelineIO and its adapters, for OTIO JSON and bundles, FCP 7 XML and FCPXML
(an EDL is written as OTIO: CMX 3600 has no audio file track). The score's settings go where
each format keeps notes (OTIO metadata, FCP 7 comments, FCPXML notes and metadata).
"""
from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import opentimelineio as otio

from .. import fileio
from ..errors import EmsyncError, TimelineError
from . import fcpxml, otio_io
from .model import ScoreTrack
from .otio_checks import describe
from .otio_io import is_emsync_track

logger = logging.getLogger(__name__)


def write(source: Path, out: Path, scores: Sequence[ScoreTrack], *, rate: float | None = None) -> Path:
    """Write ``source`` with one audio track per score to ``out`` in the family ``out``'s suffix names.

    Every earlier emsync score track is replaced, so re-running on an edited timeline updates
    the score. Every other track is written back as read.
    """
    out_adapter = otio_io.ADAPTERS[out.suffix.lower()][0]
    _writing(out, out_adapter, lambda: _write(source, out, scores, rate))
    logger.info("wrote %s", out)
    return out


def _write(source: Path, out: Path, scores: Sequence[ScoreTrack], rate: float | None) -> None:
    in_adapter, in_family = otio_io.ADAPTERS[source.suffix.lower()]
    out_adapter, _ = otio_io.ADAPTERS[out.suffix.lower()]
    with tempfile.TemporaryDirectory(prefix="emsync-") as tmp:
        kwargs: dict[str, object] = {}
        edl_start = None
        if in_family == "cmx_3600":
            kwargs["rate"], edl_start = otio_io.edl_rate_and_start(source, rate)
        elif in_family == "otioz":  # unpack, so the media inside can be bundled again
            kwargs["extract_to_directory"] = tmp
        elif in_family == "otiod":
            kwargs["absolute_media_reference_paths"] = True
        timeline = otio_io.load(source, in_adapter, **kwargs)
        timeline_rate = rate or otio_io.timeline_rate(timeline) or 24.0
        if in_family == "fcpx_xml" and timeline.global_start_time is None:
            tc_start = fcpxml.tc_start(source)
            if tc_start:
                timeline.global_start_time = otio.opentime.RationalTime(round(tc_start * timeline_rate), timeline_rate)
        if edl_start is not None and timeline.global_start_time is None:
            # keep the EDL's record start (e.g. 01:00:00:00) in the OTIO written beside it
            timeline.global_start_time = otio.opentime.RationalTime(round(edl_start * timeline_rate), timeline_rate)
        relative = out_adapter == "otio_json" and _relative_media(timeline)
        tracks = add_score_tracks(timeline, scores, timeline_rate)
        if relative:  # the folder stays movable: the score is found beside the timeline, as its media are
            _relative_scores(tracks, out.parent)
        write_kwargs = {}
        if out_adapter in ("otioz", "otiod"):
            write_kwargs["media_policy"] = "MissingIfNotFile"
        with fileio.atomic_path(out) as tmp_out:
            tmp_out.unlink()  # adapters create the file (or the .otiod folder) themselves
            if out_adapter == "fcpx_xml":  # rounded as it was read: FCPXML in, FCPXML out
                fcpxml.write(timeline, tmp_out, rounding=in_family == "fcpx_xml")
            else:
                otio.adapters.write_to_file(timeline, str(tmp_out), adapter_name=out_adapter, **write_kwargs)
            if out_adapter == "fcpx_xml" and timeline.global_start_time is not None:
                fcpxml.set_tc_start(tmp_out, timeline.global_start_time.to_seconds(), timeline_rate)
            if out_adapter == "fcpx_xml":
                _disable_fcpx_clips(tmp_out, [s.name for s in scores if s.muted])
                _say_lost_markers(timeline, tmp_out, out)


def _relative_media(timeline: otio.schema.Timeline) -> bool:
    """Whether every media file the timeline names is a relative path (a movable project folder)."""
    urls = [c.media_reference.target_url for c in timeline.find_clips()
            if isinstance(c.media_reference, otio.schema.ExternalReference) and c.media_reference.target_url]
    return bool(urls) and all("://" not in u and not Path(u).is_absolute() for u in urls)


def _relative_scores(tracks: Sequence[otio.schema.Track], folder: Path) -> None:
    for track in tracks:
        for clip in track.find_clips():
            ref = clip.media_reference
            if isinstance(ref, otio.schema.ExternalReference):
                path = Path(otio.url_utils.filepath_from_url(ref.target_url))
                ref.target_url = Path(os.path.relpath(path, folder.resolve())).as_posix()


def _say_lost_markers(timeline: otio.schema.Timeline, written: Path, out: Path) -> None:
    """The FCPXML adapter drops some markers (those on the stack, on gaps, in nested items): say
    which, so an ``emsync:`` mood marker is not lost silently."""
    names = [m.name for m in _markers(timeline)]
    text = written.read_text(encoding="utf-8", errors="replace")
    kept = re.findall(r'<marker\b[^>]*\bvalue="([^"]*)"', text)
    lost = list(names)
    for name in kept:
        if _xml_attr(name) in map(_xml_attr, lost):
            lost.remove(next(n for n in lost if _xml_attr(n) == _xml_attr(name)))
    if lost:
        moods = [n for n in lost if n.strip().lower().startswith("emsync")]
        logger.warning("%s: FCPXML cannot carry %d marker(s) through the OTIO adapter (%s)%s", out.name, len(lost),
                       ", ".join(repr(n) for n in lost[:3]) + (", ..." if len(lost) > 3 else ""),
                       "; set those scenes' moods with --emotion N=MOOD instead" if moods else "")


def _markers(timeline: otio.schema.Timeline) -> list[otio.schema.Marker]:
    found = list(timeline.tracks.markers)
    for track in timeline.tracks:
        found += list(track.markers)
        for item in track.find_children():
            found += list(getattr(item, "markers", ()))
    return found


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
            f"cannot write this timeline as {describe(adapter)} ({type(exc).__name__}: {detail})", path=out,
            hint="write it as OpenTimelineIO instead (-o NAME.otio)",
        ) from exc


def write_for_video(timeline, out: Path, scores: Sequence[ScoreTrack]) -> Path:
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
    add_score_tracks(result, scores, rate)
    with fileio.atomic_path(out) as tmp_out:
        tmp_out.unlink()
        adapter = otio_io.ADAPTERS[out.suffix.lower()][0]
        _writing(out, adapter, lambda: otio.adapters.write_to_file(result, str(tmp_out), adapter_name=adapter))
        if adapter == "fcpx_xml":
            _disable_fcpx_clips(tmp_out, [s.name for s in scores if s.muted])
    logger.info("wrote %s", out)
    return out


def add_score_tracks(timeline: otio.schema.Timeline, scores: Sequence[ScoreTrack], rate: float) -> list[otio.schema.Track]:
    """Replace every earlier emsync score track by one audio track per score (in order, above
    the other tracks); ``timeline.metadata["emsync"]`` is the first score's settings."""
    for track in list(timeline.tracks):
        if is_emsync_track(track):
            timeline.tracks.remove(track)
    tracks = [_score_track(score, rate) for score in scores]
    timeline.tracks.extend(tracks)
    if scores:
        timeline.metadata["emsync"] = json.loads(json.dumps(scores[0].metadata, default=str))
    return tracks


def _score_track(score: ScoreTrack, rate: float) -> otio.schema.Track:
    """An audio track named ``score.name`` holding one clip of ``score.wav``.

    Settings go under ``metadata["emsync"]`` (OTIO), the clip's FCP 7 ``<comments>`` and the
    FCPXML asset's ``<note>`` and ``<metadata>`` (the formats' own places for them). A muted
    score is a disabled track (OTIO ``enabled``, FCP 7 ``<enabled>FALSE</enabled>``); ducking
    keyframes go under the clip's ``metadata["emsync"]["gain"]`` as ``[seconds, dB]`` pairs.
    """
    frames = int(round(score.duration * rate))
    rng = otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(frames, rate))
    meta = json.loads(json.dumps(score.metadata, default=str))
    sidecar = meta.get("sidecar", "")
    notes = [{"com.emsync.midi": str(score.midi)}, {"com.emsync.settings": str(sidecar)}]
    comments = {
        "mastercomment1": f"{score.name} (emsync)",
        "mastercomment2": f"MIDI: {score.midi}",
        "mastercomment3": f"settings: {sidecar}",
    }
    if "take" in meta:  # only with --takes: a single score is written as before
        notes.append({"com.emsync.take": str(meta["take"])})
        comments["mastercomment4"] = f"take: {meta['take']}"
    ref = otio.schema.ExternalReference(
        target_url=otio.url_utils.url_from_filepath(str(score.wav)),
        available_range=rng,
        metadata={"fcpx": {"note": f"{score.name}: generated by emsync. MIDI {score.midi}; settings {sidecar}",
                           "metadata": notes}},
    )
    clip_meta = {**meta, "gain": [[float(t), float(db)] for t, db in score.gain]} if score.gain else meta
    clip = otio.schema.Clip(
        name=score.name, media_reference=ref, source_range=rng,
        metadata={"emsync": clip_meta, "fcp_xml": {"comments": comments}},
    )
    track_meta: dict[str, object] = {"emsync": meta}
    if score.muted:
        track_meta["fcp_xml"] = {"enabled": "FALSE"}
    track = otio.schema.Track(name=score.name, kind=otio.schema.TrackKind.Audio, metadata=track_meta)
    track.enabled = not score.muted
    lead = int(round(score.start * rate))
    if lead > 0:  # a scored range starts at its in point
        track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(lead, rate))))
    track.append(clip)
    return track


def _disable_fcpx_clips(path: Path, names: Sequence[str]) -> None:
    """FCPXML has no track mute: disable (``enabled="0"``) the connected (lane) score clips named
    ``names``; the adapter writes no ``enabled``."""
    if not names:
        return
    text = path.read_text(encoding="utf-8")
    for name in names:
        quoted = re.escape(f'name="{_xml_attr(name)}"')
        text = re.sub(rf'(<(?:clip|asset-clip) {quoted})(?=[^>]*\blane=)(?![^>]*\benabled=)', r'\1 enabled="0"', text)
    fileio.write_text(path, text)


def _xml_attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def convert(source: Path, target: Path) -> Path:
    """Write the OTIO-family timeline ``source`` as ``target`` (format from its suffix), as an
    editor's export would be: relative media made absolute, FCPXML with its start timecode."""
    in_adapter = otio_io.ADAPTERS[source.suffix.lower()][0]
    out_adapter = otio_io.ADAPTERS[target.suffix.lower()][0]
    timeline = otio_io.load(source, in_adapter)
    for clip in timeline.find_clips():
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ExternalReference) and "://" not in ref.target_url:
            ref.target_url = otio.url_utils.url_from_filepath(str((source.parent / ref.target_url).resolve()))
    with fileio.atomic_path(target) as tmp:
        otio.adapters.write_to_file(timeline, str(tmp), adapter_name=out_adapter)
    start = timeline.global_start_time
    if out_adapter == "fcpx_xml" and start is not None:  # the adapter drops it
        fcpxml.set_tc_start(target, start.to_seconds(), start.rate)
    if out_adapter == "fcpx_xml":
        _say_lost_markers(timeline, target, target)
    return target
