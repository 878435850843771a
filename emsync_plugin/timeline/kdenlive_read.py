"""Kdenlive projects in: the cuts, guides and clip markers of a ``.kdenlive`` (MLT XML) file.

Our own reader (no OTIO adapter reads Kdenlive's tracks, mixes and sequences) for documents of
Kdenlive 19.04 and newer (document versions 0.98 to 1.1). :class:`Project` is the parsed
document with the lookups the writer (:mod:`.kdenlive_write`) shares; how the format lays out
tracks, mixes and guides is described in ``docs/timeline.md``.
"""
from __future__ import annotations

import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from ..errors import TimelineError
from . import overlay
from .kdenlive_audio import audio_shots
from .kdenlive_markers import clip_markers, guides
from .kdenlive_segments import Segment, resolve_overlaps, to_shots
from .kdenlive_xml import (
    BLACK,
    DOC_VERSION,
    FORMAT,
    HINT_RESAVE,
    SCORE_PROPERTY,
    has_prop,
    int_or_none,
    parse_document,
    parse_time,
    prop,
    to_seconds,
)
from .model import Edit, VideoTrack, is_score_name

logger = logging.getLogger(__name__)

_MAX_NESTING = 8
_FILE_SERVICES = {"avformat", "avformat-novalidate", "qimage", "pixbuf", "timewarp"}
_STILL_SERVICES = {"qimage", "pixbuf"}


@dataclass
class Place:
    """One clip of one playlist: timeline frames [start, end), producer frames from src_in."""

    start: int
    end: int
    element: ET.Element
    src_in: int
    kid: str
    entry: ET.Element | None = None  # the playlist <entry> (its filters move or shrink the clip)


@dataclass
class Track:
    """One Kdenlive track of a timeline tractor."""

    index: int  # position among the timeline tractor's <track> children
    element: ET.Element  # the track tractor (or a bare playlist in old documents)
    audio: bool
    enabled: bool
    name: str
    places: list[Place]
    mixes: list[tuple[int, int]]
    muted: bool = False  # an audio track whose sound is off (hide="audio"/"both")

    @property
    def ours(self) -> bool:
        """One of emsync's score tracks (by name or by the property emsync stores on it)."""
        return self.audio and (is_score_name(self.name) or has_prop(self.element, SCORE_PROPERTY))


class Project:
    """A parsed Kdenlive document and the lookups every step needs."""

    def __init__(self, path: Path, root: ET.Element):
        self.path = path
        self.root = root
        self.by_id: dict[str, ET.Element] = {}
        for child in root:
            if isinstance(child.tag, str) and (element_id := child.get("id")):
                self.by_id.setdefault(element_id, child)
        self.rate = self._rate()
        self.main_bin = self.by_id.get("main_bin")
        if self.main_bin is None or self.main_bin.tag != "playlist":
            self.main_bin = next((p for p in root.iterfind("playlist") if p.get("id") == "main_bin"), None)
        raw_version = prop(self.main_bin, "kdenlive:docproperties.version")
        kdenlivedoc = root.find("kdenlivedoc")
        if not raw_version and kdenlivedoc is not None:
            raw_version = kdenlivedoc.get("version", "")
        try:
            self.version = float(raw_version.replace(",", ".")) if raw_version else 0.0
        except ValueError:
            self.version = 0.0
        if self.version > float(DOC_VERSION):
            logger.warning("%s: document version %s is newer than %s; reading it anyway",
                           path, raw_version, DOC_VERSION)
        root_attr = root.get("root", "")
        if root_attr and root_attr != "$CURRENTPATH":
            self.base = root_attr
        else:
            self.base = str(path.parent.absolute())
        self._bin: dict[str, ET.Element] | None = None

    @classmethod
    def open(cls, path: str | Path) -> Project:
        path = Path(path)
        return cls(path, parse_document(path))

    def error(self, message: str, hint: str | None = None) -> TimelineError:
        return TimelineError(message, path=self.path, hint=hint or HINT_RESAVE)

    def _rate(self) -> Fraction:
        profile = self.root.find("profile")
        if profile is None:
            raise TimelineError("the project has no <profile> (frame rate unknown)", path=self.path,
                                hint=HINT_RESAVE)
        try:
            rate = Fraction(int(profile.get("frame_rate_num", "")), int(profile.get("frame_rate_den", "1") or 1))
        except (ValueError, ZeroDivisionError):
            rate = Fraction(0)
        if rate <= 0:
            raise TimelineError("the project profile has no valid frame rate", path=self.path,
                                hint="Set the project's frame rate in Kdenlive (Project > Project Settings) and save it")
        return rate

    def frames(self, value: str | None, what: str) -> int:
        try:
            return parse_time(value, self.rate)
        except (ValueError, ZeroDivisionError):
            raise self.error(f"bad time value {value!r} in {what}") from None

    # -- bin -----------------------------------------------------------------------------

    @property
    def bin_clips(self) -> dict[str, ET.Element]:
        """``kdenlive:id`` -> the bin producer/chain/sequence listed in ``main_bin``."""
        if self._bin is None:
            self._bin = {}
            for entry in (self.main_bin.iterfind("entry") if self.main_bin is not None else ()):
                element = self.by_id.get(entry.get("producer", ""))
                kid = prop(element, "kdenlive:id")
                if element is not None and kid:
                    self._bin.setdefault(kid, element)
        return self._bin

    def next_clip_id(self) -> int:
        """A ``kdenlive:id`` no clip, sequence or bin folder uses yet."""
        used = [0, 3]  # Kdenlive keeps 1..3 for the bin root, the Sequences folder and sequence
        for p in self.root.iter("property"):
            name = p.get("name", "")
            if name == "kdenlive:id":
                value = int_or_none(p.text)
                if value is not None:
                    used.append(value)
            elif name.startswith("kdenlive:folder."):
                value = int_or_none(name.rsplit(".", 1)[-1])
                if value is not None:
                    used.append(value)
        return max(used) + 1

    # -- timelines -------------------------------------------------------------------------

    def sequences(self) -> list[ET.Element]:
        """The sequence tractors of a 1.1 document (empty for older documents)."""
        return [t for t in self.root.iterfind("tractor") if prop(t, "kdenlive:uuid")]

    def timeline(self, sequence: str | None = None) -> tuple[ET.Element, str]:
        """The timeline tractor to read (the open sequence by default) and the timeline's name."""
        tractors = self.root.findall("tractor")
        if not tractors:
            raise self.error("the project has no timeline (no <tractor>)")
        sequences = self.sequences()
        if sequence is not None:
            found = self._named_sequence(sequence, sequences or tractors)
            return found, self._name(found, sequences)
        if sequences:
            found = self._open_sequence(sequences, tractors)
            return found, self._name(found, sequences)
        return self._main_tractor(tractors), self.path.stem

    def _named_sequence(self, sequence: str, candidates: Sequence[ET.Element]) -> ET.Element:
        wanted = sequence.strip().strip("{}").lower()
        for t in candidates:
            keys = {prop(t, "kdenlive:uuid").strip("{}").lower(), t.get("id", "").strip("{}").lower(),
                    prop(t, "kdenlive:clipname").lower()}
            if wanted in keys:
                return t
        names = ", ".join(prop(t, "kdenlive:clipname") or t.get("id", "") for t in self.sequences()) or "none"
        raise self.error(f"no sequence named {sequence!r} (sequences: {names})",
                         hint="Pass the name or uuid of one of the project's sequences")

    def _open_sequence(self, sequences: Sequence[ET.Element], tractors: Sequence[ET.Element]) -> ET.Element:
        """The sequence open in Kdenlive: the active one, else the project tractor's, else the first."""
        for key in ("kdenlive:docproperties.activetimeline", "kdenlive:docproperties.uuid"):
            wanted = prop(self.main_bin, key).strip()
            for t in sequences:
                if wanted and wanted in (prop(t, "kdenlive:uuid"), t.get("id")):
                    return t
        for t in tractors:
            if prop(t, "kdenlive:projectTractor") == "1":
                first = t.find("track")
                target = self.by_id.get(first.get("producer", "")) if first is not None else None
                if target is not None and target.tag == "tractor":
                    return target
        return sequences[0]

    def _main_tractor(self, tractors: Sequence[ET.Element]) -> ET.Element:
        """The timeline of a document without sequences: the global feed, else the last unused tractor."""
        main = next((t for t in tractors if t.get("global_feed") == "1"), None)
        if main is None:
            referenced = {trk.get("producer") for t in tractors for trk in t.iterfind("track")}
            referenced |= {e.get("producer") for e in self.root.iter("entry")}
            candidates = [t for t in tractors if t.get("id") not in referenced]
            main = (candidates or tractors)[-1]
        return main

    def _name(self, tractor: ET.Element, sequences: Sequence[ET.Element]) -> str:
        if len(sequences) > 1:
            return prop(tractor, "kdenlive:clipname") or self.path.stem
        return self.path.stem

    def is_black(self, element_id: str) -> bool:
        """Whether a timeline's track is Kdenlive's black background (not a real track)."""
        element = self.by_id.get(element_id)
        if element is None:
            return False
        return element_id == BLACK or prop(element, "kdenlive:playlistid") == BLACK or \
            element.tag in ("producer", "chain")

    def tracks(self, tractor: ET.Element) -> list[Track]:
        """The Kdenlive tracks of a timeline tractor, bottom to top (black track skipped)."""
        result: list[Track] = []
        for index, trk in enumerate(tractor.iterfind("track")):
            pid = trk.get("producer", "")
            element = self.by_id.get(pid)
            if element is None:
                raise self.error(f"the timeline refers to a missing track {pid!r}")
            if element.tag == "tractor":
                audio, hide, playlists, mixes = self._track_tractor(element, trk)
            elif element.tag == "playlist":
                if self.is_black(pid):
                    continue
                audio = prop(element, "kdenlive:audio_track") == "1" or trk.get("hide") == "video"
                hide = trk.get("hide", "") or element.get("hide", "")
                playlists, mixes = [element], []
            else:  # the black background producer (or another producer used as a track)
                continue
            enabled = audio or hide not in ("video", "both")
            places = [p for pl in playlists for p in self._places(pl)]
            name = prop(element, "kdenlive:track_name")
            muted = audio and hide in ("audio", "both")
            result.append(Track(index, element, audio, enabled, name, places, mixes, muted))
        return result

    def _track_tractor(self, element: ET.Element, trk: ET.Element
                       ) -> tuple[bool, str, list[ET.Element], list[tuple[int, int]]]:
        """(audio, hide, playlists, mixes) of a track tractor."""
        subs = element.findall("track")
        audio = prop(element, "kdenlive:audio_track") == "1"
        hide = (subs[0].get("hide", "") if subs else "") or trk.get("hide", "")
        playlists = []
        for sub in subs:
            pl = self.by_id.get(sub.get("producer", ""))
            if pl is None:
                raise self.error(f"track {element.get('id')!r} refers to a missing playlist "
                                 f"{sub.get('producer')!r}")
            if pl.tag == "playlist":
                playlists.append(pl)
            if not audio and prop(pl, "kdenlive:audio_track") == "1" and not prop(element, "kdenlive:audio_track"):
                audio = True
        mixes = []
        for tr in element.iterfind("transition"):
            if tr.get("in") is not None and tr.get("out") is not None:
                mixes.append((self.frames(tr.get("in"), f"transition {tr.get('id')}"),
                              self.frames(tr.get("out"), f"transition {tr.get('id')}")))
        return audio, hide, playlists, mixes

    def _places(self, playlist: ET.Element) -> list[Place]:
        where = f"playlist {playlist.get('id')!r}"
        pos = 0
        places = []
        for child in playlist:
            if child.tag == "blank":
                pos += max(0, self.frames(child.get("length"), where))
            elif child.tag == "entry":
                pid = child.get("producer", "")
                element = self.by_id.get(pid)
                if element is None:
                    raise self.error(f"{where} refers to a missing producer {pid!r}")
                start = self.frames(child.get("in"), where) if child.get("in") is not None else (
                    self.frames(element.get("in"), where) if element.get("in") is not None else 0)
                if child.get("out") is not None:
                    out = self.frames(child.get("out"), where)
                elif element.get("out") is not None:
                    out = self.frames(element.get("out"), where)
                else:
                    out = self.frames(prop(element, "length", "1"), where) - 1
                length = out - start + 1
                if length <= 0:
                    continue
                kid = prop(child, "kdenlive:id") or prop(element, "kdenlive:id")
                places.append(Place(pos, pos + length, element, start, kid, child))
                pos += length
        return places

    # -- shots -----------------------------------------------------------------------------

    def segments(self, track: Track, depth: int = 0) -> list[Segment]:
        """The track's picture as segments in frames: gaps filled, mixes cut at their midpoint."""
        result: list[Segment] = []
        pos = 0
        for place in resolve_overlaps(track.places, track.mixes):
            if place.start > pos:
                result.append(Segment(pos, place.start))
            result.extend(self._place_segments(place, depth))
            pos = place.end
        return result

    def _place_segments(self, place: Place, depth: int) -> list[Segment]:
        element = place.element
        name = self.clip_name(element, place.kid)
        if element.tag == "tractor":  # a nested sequence: its visible picture
            if depth >= _MAX_NESTING:
                return [Segment(place.start, place.end, name=name)]
            inner = self.flatten(element, depth + 1)
            lo, hi = place.src_in, place.src_in + place.end - place.start
            offset = place.start - place.src_in
            out: list[Segment] = []
            pos = lo
            for seg in inner:
                a, b = max(seg.start, lo), min(seg.end, hi)
                if a >= b:
                    continue
                if a > pos:
                    out.append(Segment(pos + offset, a + offset, name=name))
                piece = seg.cut(a, b)
                out.append(replace(piece, start=a + offset, end=b + offset, name=piece.name or name))
                pos = b
            if pos < hi:
                out.append(Segment(pos + offset, hi + offset, name=name))
            return out
        media, speed = self.media(element)
        why = self.overlay(place)
        if media is None:
            return [Segment(place.start, place.end, name=name, overlay=why)]
        if speed is None or speed <= 0:
            return [Segment(place.start, place.end, media, name=name, overlay=why)]
        step = speed / self.rate
        return [Segment(place.start, place.end, media, place.src_in * step, step, name, why)]

    def overlay(self, place: Place) -> str:
        """Why a clip does not cover the frame: a title producer, or a transform filter on it."""
        filters = [(prop(f, "mlt_service"), prop(f, "rect") or prop(f, "transition.rect") or prop(f, "geometry"))
                   for holder in (place.entry, place.element) if holder is not None for f in holder.iterfind("filter")]
        profile = self.root.find("profile")
        frame = (int_or_none(profile.get("width")) or 1920, int_or_none(profile.get("height")) or 1080) \
            if profile is not None else (1920, 1080)
        return overlay.kdenlive_reason(prop(place.element, "mlt_service"), filters, frame)

    def flatten(self, tractor: ET.Element, depth: int) -> list[Segment]:
        """The visible picture of a (nested) timeline: topmost clip of its enabled video tracks."""
        layers = [self.segments(t, depth) for t in self.tracks(tractor) if not t.audio and t.enabled]
        bounds = sorted({b for layer in layers for s in layer for b in (s.start, s.end)})
        result: list[Segment] = []
        sources: list[Segment | None] = []
        for a, b in zip(bounds, bounds[1:]):
            top = None
            for layer in reversed(layers):
                top = next((s for s in layer if s.media is not None and s.start <= a and b <= s.end), None)
                if top is not None:
                    break
            if result and sources[-1] is top and result[-1].end == a:
                result[-1] = replace(result[-1], end=b)
                continue
            result.append(top.cut(a, b) if top is not None else Segment(a, b))
            sources.append(top)
        return result

    def media(self, element: ET.Element) -> tuple[str | None, Fraction | None]:
        """Absolute media path of a producer/chain and its speed (``None`` for stills).

        Generators (colour, title, text...) have no media: ``(None, None)``.
        """
        service = prop(element, "mlt_service")
        original = prop(element, "kdenlive:originalurl")
        speed: Fraction | None = Fraction(1)
        if service == "timewarp":
            resource = prop(element, "warp_resource")
            raw_speed = prop(element, "warp_speed")
            if not resource:
                head, _, resource = prop(element, "resource").partition(":")
                raw_speed = raw_speed or head
            try:
                speed = Fraction(raw_speed or "1")
            except (ValueError, ZeroDivisionError):
                speed = None
        else:
            resource = prop(element, "resource")
        if service not in _FILE_SERVICES:
            return None, None
        if service in _STILL_SERVICES:
            speed = None
        resource = original or resource
        if not resource or resource.startswith("<"):
            return None, None
        return self.resolve(resource), speed

    def resolve(self, resource: str) -> str:
        """An absolute path for a resource, relative ones taken from the project's root."""
        if resource.startswith("file://"):
            resource = resource[len("file://"):]
        if resource.startswith("$CURRENTPATH"):  # archived projects
            resource = str(self.path.parent.absolute()) + resource[len("$CURRENTPATH"):]
        if os.path.isabs(resource) or re.match(r"^[A-Za-z]:[\\/]", resource):
            return resource
        return os.path.normpath(os.path.join(self.base, resource))

    def clip_name(self, element: ET.Element, kid: str = "") -> str:
        """The name Kdenlive shows for a clip (bin clip name, else the file name)."""
        bin_clip = self.bin_clips.get(kid) if kid else None
        for source in (bin_clip, element):
            name = prop(source, "kdenlive:clipname")
            if name:
                return name
        resource = prop(element, "warp_resource") or prop(element, "resource")
        if resource and prop(element, "mlt_service") in _FILE_SERVICES:
            return os.path.basename(resource)
        return ""


def read(path: str | Path, *, sequence: str | None = None) -> Edit:
    """Read the video tracks, guides and clip markers of a Kdenlive project.

    ``sequence`` picks a sequence of a 1.1 document by name or uuid; by default the one open in
    Kdenlive (``activetimeline``) is read. Video tracks come bottom (V1) to top, disabled ones
    with ``enabled=False``; gaps, colour and title clips are shots with ``media=None``;
    a nested sequence contributes its own visible shots. ``duration`` covers every track,
    audio included. The name is the file's stem, or the sequence's name when the project has
    several sequences.
    """
    path = Path(path)
    project = Project.open(path)
    tractor, name = project.timeline(sequence)
    tracks = project.tracks(tractor)
    video = [t for t in tracks if not t.audio]
    if not video:
        raise TimelineError("the project has no video track", path=path,
                            hint="Add a video track holding the edit in Kdenlive, or score the exported video instead")
    rate = project.rate
    video_tracks = []
    for number, track in enumerate(video, start=1):
        shots = to_shots(project.segments(track), rate)
        video_tracks.append(VideoTrack(track.name or f"V{number}", shots, track.enabled))
    end = max((p.end for t in tracks if not t.ours for p in t.places), default=0)  # an old score may outlive the picture
    markers = guides(project, tractor) + clip_markers(project, (t for t in video if t.enabled))
    markers.sort(key=lambda m: (m.time, m.origin != "guide", m.name))
    logger.debug("%s: %d video tracks, %d markers, %d frames at %s fps",
                 path, len(video_tracks), len(markers), end, rate)
    return Edit(name=name, rate=float(rate), start=0.0, duration=to_seconds(end, rate),
                tracks=tuple(video_tracks), markers=tuple(markers), path=path, format=FORMAT,
                audio=audio_shots(project, tracks), drop_frame=rate == Fraction(30000, 1001))

