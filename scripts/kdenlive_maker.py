"""Write a new, minimal Kdenlive project: the bundled sample's ``sample.kdenlive`` and test projects.

Not part of the plugin (emsync only ever adds a track to the user's own projects): used by
``scripts/make_sample.py`` and by the tests, which import it from this folder. It builds the
document from the same MLT elements the writer uses (:mod:`emsync_plugin.timeline.kdenlive_xml`).
"""
from __future__ import annotations

import json
import logging
import math
import os
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from emsync_plugin.errors import OptionsError
from emsync_plugin.fileio import write_text
from emsync_plugin.timeline.kdenlive_xml import (
    AUDIO_FILTERS,
    BLACK,
    DOC_VERSION,
    Ids,
    audio_mix,
    clock,
    media_clip,
    new_element,
    new_entry,
    prop,
    serialize,
    stable_uuid,
    track_tractor,
    video_blend,
)
from emsync_plugin.timeline.model import Marker

logger = logging.getLogger(__name__)

_KDENLIVE_VERSION = "25.04.0"
_MLT_VERSION = "7.22.0"
_GUIDE_CATEGORIES = [
    {"color": c, "comment": f"Category {i + 1}", "index": i}
    for i, c in enumerate(
        ["#9b59b6", "#3daee9", "#1abc9c", "#1cdc9a", "#c9ce3b", "#fdbc4b", "#f39c1f", "#f47750", "#da4453"]
    )
]


def _probe(media: Path, rate: Fraction) -> tuple[int | None, int | None, int | None]:
    """(length in frames, audio stream index, video stream index) of a media file, if readable."""
    try:
        import av  # lazily: only new projects need it

        with av.open(str(media)) as container:
            audio = next((s.index for s in container.streams if s.type == "audio"), -1)
            video = next((s.index for s in container.streams if s.type == "video"), -1)
            seconds = None
            if container.duration:
                seconds = Fraction(container.duration, 1_000_000)
            return (math.floor(seconds * rate) if seconds else None), audio, video
    except Exception as exc:  # noqa: BLE001 - any decoder failure: fall back to the clip ranges
        logger.debug("cannot probe %s: %s", media, exc)
        return None, None, None


def write_project(
    path: str | Path,
    *,
    name: str,
    rate_num: int,
    rate_den: int,
    width: int,
    height: int,
    clips: Sequence[tuple[str, float, float]],
    guides: Sequence[Marker] = (),
) -> Path:
    """Write a new Kdenlive project (document version 1.1, one sequence) and return its path.

    The sequence ``name`` has one video track (V1) and one audio track (A1) holding ``clips``
    back to back; each clip is ``(media, source_in, source_out)`` in seconds of an audio+video
    file, its picture on V1 and its sound on A1 (grouped as Kdenlive groups a split clip).
    ``guides`` become the sequence's guides (``Marker.name`` is the guide's text). Relative
    media paths are taken from the current directory, like any path.

    Media inside the project's folder (or below it) are written relative to that folder and
    the ``<mlt>`` element gets no ``root`` attribute: Kdenlive and melt then resolve them
    against the folder holding the ``.kdenlive`` file, so the folder can be copied elsewhere.
    Media outside the folder are written as absolute paths. Loadable by Kdenlive 23.08+ and
    renderable by ``melt``.
    """
    path = Path(path)
    if rate_num <= 0 or rate_den <= 0 or width <= 0 or height <= 0:
        raise OptionsError(f"impossible profile {width}x{height} at {rate_num}/{rate_den} fps", path=path,
                           hint="Give a positive size and frame rate")
    if not clips:
        raise OptionsError("no clips to put on the timeline", path=path, hint="Give at least one clip")
    rate = Fraction(rate_num, rate_den)
    placed = _place(path, clips, rate)
    total = sum(p.frames for p in placed)

    ids = Ids(ET.Element("mlt"))
    root = ET.Element("mlt", {"LC_NUMERIC": "C", "producer": "main_bin", "version": _MLT_VERSION})
    root.append(_profile(width, height, rate_num, rate_den))
    media = _media(placed, name, rate, ids)
    tracks = _tracks(placed, media, total, rate, ids)
    sequence = _sequence(name, tracks, guides, total, rate, ids)
    main_bin = _main_bin(name, sequence.get("id", ""), [m.bin for m in media.values()], total, rate)
    project_tractor = new_element("tractor", {"id": ids.new("tractor"), "in": clock(0, rate),
                                              "out": clock(total - 1, rate)}, [("kdenlive:projectTractor", "1")])
    ET.SubElement(project_tractor, "track", {"producer": sequence.get("id", ""), "in": clock(0, rate),
                                             "out": clock(total - 1, rate)})
    for element in [*(m.bin for m in media.values()), *tracks.elements(media), sequence, main_bin, project_tractor]:
        root.append(element)
    ET.indent(root, space=" ")
    write_text(path, serialize(root))
    logger.info("wrote %s: %d clips, %.3f s", path, len(placed), float(total / rate))
    return path


@dataclass(frozen=True)
class _Placed:
    """One clip of the new timeline: its media, as written, and its source frames."""

    absolute: Path
    resource: str
    first: int
    frames: int


@dataclass(frozen=True)
class _Media:
    """A media file's bin clip and its instances on the audio and video tracks."""

    kid: str
    bin: ET.Element
    audio: ET.Element
    video: ET.Element


@dataclass(frozen=True)
class _Tracks:
    """The black background, the A1 and V1 tracks (two playlists each) and the A/V groups."""

    black: ET.Element
    audio_playlists: tuple[ET.Element, ET.Element]
    video_playlists: tuple[ET.Element, ET.Element]
    audio: ET.Element
    video: ET.Element
    groups: list[dict]

    def elements(self, media: dict[Path, _Media]) -> list[ET.Element]:
        """In the order Kdenlive writes them: each track after its playlists and clip instances."""
        return [self.black, *(m.audio for m in media.values()), *self.audio_playlists, self.audio,
                *(m.video for m in media.values()), *self.video_playlists, self.video]


def _place(path: Path, clips: Sequence[tuple[str, float, float]], rate: Fraction) -> list[_Placed]:
    """The clips in frames; media inside the project's folder become relative paths."""
    folder = path.parent.absolute()
    placed = []
    for media, start, end in clips:
        first, stop = round(Fraction(start) * rate), round(Fraction(end) * rate)
        if first < 0 or stop <= first:
            raise OptionsError(f"clip {media}: impossible range {start}-{end} s", path=path,
                               hint="Give source_in < source_out, both >= 0")
        # a relative media path is relative to the project's folder (not the working directory)
        absolute = Path(os.path.abspath(Path(folder) / media))
        rel = os.path.relpath(absolute, folder)
        resource = Path(rel).as_posix() if not rel.startswith("..") else absolute.as_posix()
        placed.append(_Placed(absolute, resource, first, stop - first))
    return placed


def _profile(width: int, height: int, rate_num: int, rate_den: int) -> ET.Element:
    g = math.gcd(width, height)
    return ET.Element("profile", {
        "description": f"{width}x{height} {float(Fraction(rate_num, rate_den)):g} fps",
        "width": str(width), "height": str(height),
        "progressive": "1", "sample_aspect_num": "1", "sample_aspect_den": "1",
        "display_aspect_num": str(width // g), "display_aspect_den": str(height // g),
        "frame_rate_num": str(rate_num), "frame_rate_den": str(rate_den),
        "colorspace": "709" if height >= 720 else "601",
    })


def _media(placed: list[_Placed], name: str, rate: Fraction, ids: Ids) -> dict[Path, _Media]:
    """One bin clip (and one instance per track) per media file, in order of first use."""
    media: dict[Path, _Media] = {}
    next_kid = 4  # 2: the Sequences folder, 3: the sequence
    for p in placed:
        if p.absolute in media:
            continue
        probed, audio_index, video_index = _probe(p.absolute, rate)
        needed = max(q.first + q.frames for q in placed if q.absolute == p.absolute)
        length = max(probed or 0, needed)
        kid, control = str(next_kid), stable_uuid(name, str(p.absolute))
        next_kid += 1

        def chain(timeline: str | None, p: _Placed = p, length: int = length, kid: str = kid,
                  control: str = control, audio_index: int | None = audio_index,
                  video_index: int | None = video_index) -> ET.Element:
            return media_clip("chain", ids.new("chain"), p.resource, length, kid, control, rate, name=p.absolute.name,
                              clip_type="0", audio_index=audio_index, video_index=video_index, timeline=timeline)

        bin_el = chain(None)
        audio_el = chain("audio")
        media[p.absolute] = _Media(kid, bin_el, audio_el, chain("video"))
    return media


def _tracks(placed: list[_Placed], media: dict[Path, _Media], total: int, rate: Fraction, ids: Ids) -> _Tracks:
    """A1 and V1 holding the clips back to back, each clip's two halves grouped (AVSplit)."""
    black = new_element("producer", {"id": "black_track", "in": clock(0, rate), "out": clock(max(total - 1, 0), rate)}, [
        ("length", "2147483647"), ("eof", "continue"), ("resource", "black"), ("aspect_ratio", "1"),
        ("mlt_service", "color"), ("kdenlive:playlistid", BLACK), ("mlt_image_format", "rgba"),
        ("set.test_audio", "0"),
    ])
    audio_ids = (ids.new("playlist"), ids.new("playlist"))
    audio_pl = tuple(new_element("playlist", {"id": i}, [("kdenlive:audio_track", "1")]) for i in audio_ids)
    video_ids = (ids.new("playlist"), ids.new("playlist"))
    video_pl = tuple(new_element("playlist", {"id": i}) for i in video_ids)
    groups = []
    pos = 0
    for p in placed:
        m = media[p.absolute]
        audio_pl[0].append(new_entry(m.audio.get("id", ""), p.first, p.first + p.frames - 1, m.kid, rate))
        video_pl[0].append(new_entry(m.video.get("id", ""), p.first, p.first + p.frames - 1, m.kid, rate))
        groups.append({"children": [{"data": f"0:{pos}", "leaf": "clip", "type": "Leaf"},
                                    {"data": f"1:{pos}", "leaf": "clip", "type": "Leaf"}], "type": "AVSplit"})
        pos += p.frames
    audio = track_tractor(ids.new("tractor"), audio_ids, audio=True, name="", frames=total, rate=rate, ids=ids)
    video = track_tractor(ids.new("tractor"), video_ids, audio=False, name="", frames=total, rate=rate, ids=ids)
    return _Tracks(black, (audio_pl[0], audio_pl[1]), (video_pl[0], video_pl[1]), audio, video, groups)


def _sequence(name: str, tracks: _Tracks, guides: Sequence[Marker], total: int, rate: Fraction, ids: Ids) -> ET.Element:
    """The sequence tractor: the three tracks, Kdenlive's internal mix and blend, its settings."""
    seq_uuid = stable_uuid(name, "sequence")
    guide_json = [{"comment": g.name, "pos": round(Fraction(g.time) * rate), "type": 0} for g in guides]
    sequence = new_element("tractor", {"id": seq_uuid, "in": clock(0, rate), "out": clock(total - 1, rate)}, [
        ("kdenlive:uuid", seq_uuid),
        ("kdenlive:control_uuid", seq_uuid),
        ("kdenlive:clipname", name),
        ("kdenlive:sequenceproperties.hasAudio", "1"),
        ("kdenlive:sequenceproperties.hasVideo", "1"),
        ("kdenlive:sequenceproperties.activeTrack", "1"),
        ("kdenlive:sequenceproperties.tracksCount", "2"),
        ("kdenlive:sequenceproperties.tracks", "2"),
        ("kdenlive:sequenceproperties.documentuuid", seq_uuid),
        ("kdenlive:duration", clock(total, rate)),
        ("kdenlive:maxduration", str(total)),
        ("kdenlive:producer_type", "17"),
        ("kdenlive:id", "3"),
        ("kdenlive:clip_type", "0"),
        ("kdenlive:folderid", "2"),
        ("kdenlive:sequenceproperties.audioTarget", "0"),
        ("kdenlive:sequenceproperties.videoTarget", "1"),
        ("kdenlive:sequenceproperties.disablepreview", "0"),
        ("kdenlive:sequenceproperties.position", "0"),
        ("kdenlive:sequenceproperties.scrollPos", "0"),
        ("kdenlive:sequenceproperties.verticalzoom", "1"),
        ("kdenlive:sequenceproperties.zonein", "0"),
        ("kdenlive:sequenceproperties.zoneout", str(total)),
        ("kdenlive:sequenceproperties.zoom", "8"),
        ("kdenlive:sequenceproperties.groups", json.dumps(tracks.groups, indent=4) + "\n"),
        ("kdenlive:sequenceproperties.guides", json.dumps(guide_json, indent=4) + "\n"),
    ])
    for producer in (tracks.black.get("id", ""), tracks.audio.get("id", ""), tracks.video.get("id", "")):
        ET.SubElement(sequence, "track", {"producer": producer})
    sequence.append(audio_mix(ids.new("transition"), 1))
    sequence.append(video_blend(ids.new("transition"), 2))
    for fprops in AUDIO_FILTERS[:2]:
        sequence.append(new_element("filter", {"id": ids.new("filter")}, fprops))

    return sequence


def _main_bin(name: str, seq_uuid: str, bin_elements: list[ET.Element], total: int, rate: Fraction) -> ET.Element:
    """The bin: the sequence and the media clips, with the document's properties."""
    main_bin = new_element("playlist", {"id": "main_bin"}, [
        ("kdenlive:folder.-1.2", "Sequences"),
        ("kdenlive:sequenceFolder", "2"),
        ("kdenlive:docproperties.audioChannels", "2"),
        # Kdenlive uses a creation timestamp in ms; a stable number keeps rewritten files identical
        ("kdenlive:docproperties.documentid", str(uuid.uuid5(uuid.NAMESPACE_URL, "emsync:" + name).int % 10**13)),
        ("kdenlive:docproperties.enableproxy", "0"),
        ("kdenlive:docproperties.generateproxy", "0"),
        ("kdenlive:docproperties.guidesCategories", json.dumps(_GUIDE_CATEGORIES, indent=4) + "\n"),
        ("kdenlive:docproperties.kdenliveversion", _KDENLIVE_VERSION),
        ("kdenlive:docproperties.seekOffset", "30000"),
        ("kdenlive:docproperties.uuid", seq_uuid),
        ("kdenlive:docproperties.version", DOC_VERSION),
        ("kdenlive:expandedFolders", ""),
        ("kdenlive:documentnotes", ""),
        ("kdenlive:docproperties.opensequences", seq_uuid),
        ("kdenlive:docproperties.activetimeline", seq_uuid),
        ("xml_retain", "1"),
    ])
    ET.SubElement(main_bin, "entry", {"producer": seq_uuid, "in": clock(0, rate), "out": clock(total - 1, rate)})
    for bin_el in bin_elements:
        ET.SubElement(main_bin, "entry", {"producer": bin_el.get("id", ""), "in": clock(0, rate),
                                          "out": clock(int(prop(bin_el, "length")) - 1, rate)})
    return main_bin


