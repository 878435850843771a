"""Kdenlive guides and clip markers, as :class:`~.model.Marker` in timeline seconds.

Guides are the JSON of ``kdenlive:sequenceproperties.guides`` (1.1) or
``kdenlive:docproperties.guides`` (19.x-22.x), with the older ``kdenlive:guide.<seconds>``
properties and ``<guide>`` elements as fallbacks. Clip markers belong to bin clips and are
placed at every use of the clip whose trimmed range shows the marked frame.
"""
from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from fractions import Fraction
from typing import TYPE_CHECKING

from .kdenlive_xml import has_prop, parse_time, prop, to_seconds
from .model import Marker

if TYPE_CHECKING:  # the reader imports this module
    from .kdenlive_read import Place, Project, Track

logger = logging.getLogger(__name__)

_Frames = list[tuple[int, str]]  # (frame, comment)


def guides(project: Project, tractor: ET.Element) -> list[Marker]:
    """The timeline's guides (all document generations)."""
    raw = _guides_json(project, tractor)
    markers = [Marker(to_seconds(frame, project.rate), text, "", "guide")
               for frame, text in _marker_json(project, raw, "guides")]
    if raw is None and project.main_bin is not None:  # before Kdenlive 19.04
        markers += [Marker(to_seconds(frame, project.rate), text, "", "guide") for frame, text in _old_guides(project)]
    return markers


def _guides_json(project: Project, tractor: ET.Element) -> str | None:
    if has_prop(tractor, "kdenlive:sequenceproperties.guides"):
        return prop(tractor, "kdenlive:sequenceproperties.guides")
    if project.main_bin is not None and has_prop(project.main_bin, "kdenlive:docproperties.guides"):
        main_uuid = prop(project.main_bin, "kdenlive:docproperties.uuid")
        if not prop(tractor, "kdenlive:uuid") or prop(tractor, "kdenlive:uuid") == main_uuid:
            return prop(project.main_bin, "kdenlive:docproperties.guides")
    return None


def _old_guides(project: Project) -> _Frames:
    """Guides of documents older than 19.04: ``kdenlive:guide.<seconds>`` and ``<guide>``."""
    found: list[tuple[str, str]] = []
    for p in project.main_bin.iterfind("property") if project.main_bin is not None else ():
        name = p.get("name", "")
        if name.startswith("kdenlive:guide."):
            found.append((name[len("kdenlive:guide."):], p.text or ""))
    found += [(g.get("time") or "", g.get("comment", "")) for g in project.root.iter("guide")]
    result = []
    for secs, text in found:
        try:
            result.append((round(Fraction(secs.replace(",", ".")) * project.rate), text))
        except (ValueError, ZeroDivisionError):
            continue
    return result


def _marker_json(project: Project, raw: str | None, what: str) -> _Frames:
    """``(frame, comment)`` pairs of a Kdenlive marker list (JSON); bad data is skipped."""
    if raw is None or not raw.strip():
        return []
    try:
        items = json.loads(raw)
    except json.JSONDecodeError:
        logger.warning("%s: cannot parse the %s (not JSON); ignoring them", project.path, what)
        return []
    result = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict) or "pos" not in item:
            continue
        try:
            frame = parse_time(str(item["pos"]), project.rate)
        except (ValueError, ZeroDivisionError):
            continue
        result.append((frame, str(item.get("comment", ""))))
    return result


def clip_markers(project: Project, tracks: Iterable[Track]) -> list[Marker]:
    """Markers of the clips on ``tracks``, at every placement showing the marked frame."""
    legacy = _old_clip_markers(project)
    cache: dict[int, _Frames] = {}
    seen: set[tuple[int, str]] = set()
    markers: list[Marker] = []
    for track in tracks:
        for place in track.places:
            source = project.bin_clips.get(place.kid, place.element)
            if id(source) not in cache:
                raw = prop(source, "kdenlive:markers") or prop(place.element, "kdenlive:markers")
                cache[id(source)] = _marker_json(project, raw, "clip markers") + legacy.get(place.kid, [])
            if not cache[id(source)]:
                continue
            name = project.clip_name(place.element, place.kid)
            for frame, comment in _placed(project, place, cache[id(source)]):
                if (frame, comment) not in seen:
                    seen.add((frame, comment))
                    markers.append(Marker(to_seconds(frame, project.rate), comment, "", f"clip marker: {name}"))
    return markers


def _old_clip_markers(project: Project) -> dict[str, _Frames]:
    """``kdenlive:marker.<clip id>:<seconds> = type:comment`` properties of old documents."""
    legacy: dict[str, _Frames] = {}
    for p in project.main_bin.iterfind("property") if project.main_bin is not None else ():
        name = p.get("name", "")
        if name.startswith("kdenlive:marker."):
            clip_id, _, secs = name[len("kdenlive:marker."):].partition(":")
            try:
                frame = round(Fraction(secs.replace(",", ".")) * project.rate)
            except (ValueError, ZeroDivisionError):
                continue
            legacy.setdefault(clip_id, []).append((frame, (p.text or "").partition(":")[2]))
    return legacy


def _placed(project: Project, place: Place, marks: _Frames) -> _Frames:
    """The marks (clip frames) that ``place`` shows, as timeline frames."""
    speed: Fraction | None = Fraction(1)
    if prop(place.element, "mlt_service") == "timewarp":
        _, speed = project.media(place.element)
    if not speed or speed <= 0:
        return []
    last = place.src_in + place.end - place.start - 1
    result = []
    for pos, comment in marks:
        at = Fraction(pos) / speed
        if place.src_in <= at <= last:
            result.append((place.start + round(at - place.src_in), comment))
    return result
