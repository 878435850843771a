"""FCPXML through ``otio-fcpx-xml-adapter``, with times rounded to frames and the start timecode kept.

The adapter (1.0) reads NTSC rates as whole numbers (29.97 fps as 29) and truncates rational
times to frames: "157/5s" at 25 fps becomes
``int(784.999...)`` = 784 frames, which opens one-frame gaps (false cuts) between clips. Our
reader and writer are subclasses of the adapter's classes that round instead (exact for every
time on the frame grid, which is all FCPXML writes for clip boundaries); the adapter module
itself is left as it is for anyone else in the process. The adapter also drops the sequence's
``tcStart``: :func:`tc_start` reads it and :func:`set_tc_start` writes it back.
"""
from __future__ import annotations

import functools
import logging
import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from .. import fileio
from . import limits, overlay
from .model import Shot

logger = logging.getLogger(__name__)

_TC_START = re.compile(r"<project\b[^>]*>\s*<sequence\b([^>]*)>", re.S)


def read(path: Path) -> Any:
    """The OTIO object (a Timeline or a collection of them) of an FCPXML file, times rounded."""
    with open(path, encoding="utf-8") as f:  # as the adapter reads it
        text = f.read()
    return _classes()[0](text).to_otio()


def write(timeline: otio.schema.Timeline, path: Path, *, rounding: bool) -> None:
    """Write ``timeline`` as FCPXML to ``path``; ``rounding`` rounds the times of lanes (audio,
    upper video tracks) to frames where the adapter truncates them."""
    if not rounding:
        otio.adapters.write_to_file(timeline, str(path), adapter_name="fcpx_xml")
        return
    text = _classes()[1](timeline).to_xml()
    with open(path, "w", encoding="utf-8") as f:  # as the adapter writes it
        f.write(text)


def _rounded(rational_number: str | None, fps: float) -> otio.opentime.RationalTime:
    """The adapter's ``to_rational_time``, rounding to the nearest frame instead of truncating."""
    if rational_number in (None, "0s"):
        return otio.opentime.RationalTime(0, fps)
    seconds = Fraction(str(rational_number).rstrip("s"))
    return otio.opentime.RationalTime(round(seconds * Fraction(fps).limit_denominator(1001)), fps)


@functools.cache
def _classes() -> tuple[type, type]:
    """(reader, writer): subclasses of the adapter's FcpxXml and FcpxOtio that round times."""
    # the module object OTIO's plugin system loaded (not necessarily the importable one)
    adapter = otio.adapters.from_name("fcpx_xml").module()

    class RoundingReader(adapter.FcpxXml):  # type: ignore[name-defined]
        def __init__(self, xml_string):
            super().__init__(xml_string)
            self._effects = {e.get("id"): e for e in self.fcpx_xml.iterfind("./resources/effect")}

        def _effect(self, element):
            """The ``<effect>`` resource a ``<video>`` generator refers to, else None."""
            if element is None or element.tag != "video":
                return None
            return self._effects.get(element.get("ref"))

        def _timing_clip(self, clip):  # a generator is timed by its own <video>, not by its parent clip
            return clip if self._effect(clip) is not None else super()._timing_clip(clip)

        def _format_id_for_clip(self, clip, default_format):  # an effect has no format
            return default_format if self._effect(clip) is not None else super()._format_id_for_clip(clip, default_format)

        def _build_composable(self, element, default_format):
            """The adapter's clip, a generator given a reference naming its effect, and overlays
            (generators, shrunk or moved clips) marked in the clip's ``fcpx`` metadata."""
            effect = self._effect(element)
            if effect is not None:
                clip = otio.schema.Clip(
                    name=element.get("name") or effect.get("name") or "",
                    media_reference=otio.schema.MissingReference(  # what the writer takes for no media
                        name=effect.get("name") or "", metadata={"fcpx": {"effect": dict(effect.attrib)}}),
                    source_range=self._time_range(element, default_format))
                for marker in element.findall("marker"):
                    clip.markers.append(self._marker(marker, default_format))
                why = overlay.fcpx_generator_reason(effect.get("uid") or "", clip.name)
            else:
                clip = super()._build_composable(element, default_format)
                why = ""
            why = why or overlay.fcpx_transform_reason(self._timing_clip(element))
            if why and isinstance(clip, otio.schema.Clip):
                clip.metadata["fcpx"] = {"overlay": why}
            return clip

        def _format_frame_rate(self, format_id):  # the adapter's int() made 29.97 fps 29 fps
            total, rate = self._format_frame_duration(format_id)
            return float(Fraction(rate) / Fraction(total))

        def _number_of_frames(self, time_value, format_id):
            if time_value in (None, "0s"):
                return 0
            total, rate = self._format_frame_duration(format_id)
            return round(Fraction(time_value.rstrip("s")) * Fraction(rate) / Fraction(total))

        def _time_range(self, element, format_id):
            fps = self._format_frame_rate(format_id)
            return otio.opentime.TimeRange(start_time=_rounded(element.get("start", "0s"), fps),
                                           duration=_rounded(element.get("duration"), fps))

        def _reference_from_id(self, asset_id, default_format):
            asset = self._asset_by_id(asset_id)
            if not asset.get("src", ""):
                return otio.schema.MissingReference()
            fps = self._format_frame_rate(asset.get("format", default_format))
            available_range = otio.opentime.TimeRange(start_time=_rounded(asset.get("start"), fps),
                                                      duration=_rounded(asset.get("duration"), fps))
            asset_clip = self._assetclip_by_ref(asset_id)
            metadata = self._create_metadta(asset_clip) if asset_clip else {}
            return otio.schema.ExternalReference(target_url=asset.get("src"), available_range=available_range,
                                                 metadata={"fcpx": metadata})

    class RoundingWriter(adapter.FcpxOtio):  # type: ignore[name-defined]
        def _find_parent_element(self, spine, trimmed_range, format_id):
            for item in spine.iter():
                if item.tag not in ("clip", "asset-clip", "gap", "ref-clip") or item.get("lane") is not None:
                    continue
                if item.tag == "gap" and item.find("./audio") is not None:
                    continue
                fps = self._frame_rate_from_element(item, format_id)
                offset = _rounded(item.get("offset"), fps)
                if offset > trimmed_range:
                    continue
                if offset + _rounded(item.get("duration"), fps) > trimmed_range:
                    return item
            return None

        def _offset_based_on_parent(self, child, parent, default_format_id):
            parent_fps = self._frame_rate_from_element(parent, default_format_id)
            child_offset = _rounded(child.get("offset"), self._frame_rate_from_element(child, default_format_id))
            return (child_offset - _rounded(parent.get("offset"), parent_fps)) + _rounded(parent.get("start"), parent_fps)

    return RoundingReader, RoundingWriter


def tc_start(path: Path) -> float | None:
    """The first project's sequence start timecode (``tcStart``) in seconds; the adapter drops it."""
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


def tc_format(path: Path) -> str:
    """The first project's sequence timecode format (``tcFormat``: "DF" or "NDF"; "" if unsaid)."""
    match = _TC_START.search(path.read_text(errors="replace"))
    attr = re.search(r'tcFormat="([^"]*)"', match.group(1)) if match else None
    return attr.group(1).strip().upper() if attr else ""


def titles(path: Path) -> list[Shot]:
    """The ``<title>`` elements of the first project's primary storyline as overlay shots in
    timeline seconds: connected ones (``lane`` set) at their parent's offset plus their own offset
    into the parent's media, titles in the storyline itself at their offset. The adapter drops
    them; they are overlays (``covers_frame=False``), so over picture they do not cut."""
    import xml.etree.ElementTree as ET  # the file was checked by limits.check_xml before any parse

    spine = ET.parse(path).getroot().find("./project/sequence/spine")
    if spine is None:
        spine = ET.parse(path).getroot().find(".//project/sequence/spine")
    found: list[Shot] = []
    for item in (spine if spine is not None else ()):
        if item.tag == "title":
            placed = [(item, _time(item.get("offset")))]
        else:
            base = _time(item.get("offset")) - _time(item.get("start"))
            placed = [(t, base + _time(t.get("offset"))) for t in item.findall("title")]
        for title, start in placed:
            end = start + _time(title.get("duration"))
            if math.isfinite(start) and math.isfinite(end) and end > start:
                found.append(Shot(start, end, None, name=title.get("name", "") or "", covers_frame=False,
                                  overlay="title"))
    return found


def _time(value: str | None) -> float:
    """Seconds of an FCPXML time ("157/5s", "10s"); 0 when absent, NaN when not a time."""
    if not value:
        return 0.0
    try:
        return float(Fraction(value.strip().rstrip("s")))
    except (ValueError, ZeroDivisionError, OverflowError):
        return math.nan


def disabled_clip_names(path: Path) -> set[str]:
    """Names of the connected (lane) clips switched off (``enabled="0"``); the adapter reads no
    ``enabled``, and FCPXML has no track mute: this is how a muted score track is kept."""
    import html

    found = set()
    for match in re.finditer(r"<(?:clip|asset-clip)\b([^>]*)>", path.read_text(errors="replace")):
        attrs = match.group(1)
        name = re.search(r'\bname="([^"]*)"', attrs)
        if name and re.search(r'\benabled="0"', attrs) and re.search(r"\blane=", attrs):
            found.add(html.unescape(name.group(1)))
    return found


def set_tc_start(path: Path, seconds: float, rate: float) -> None:
    """Write ``tcStart`` on the first project's sequence (the adapter does not)."""
    text = path.read_text()
    match = _TC_START.search(text)
    if not match or "tcStart=" in match.group(1):
        return
    value = Fraction(round(seconds * rate)) / Fraction(rate).limit_denominator(1001)
    tc = f"{value.numerator}/{value.denominator}s" if value.denominator != 1 else f"{value.numerator}s"
    at = match.start(1)
    fileio.write_text(path, text[:at] + f' tcStart="{tc}"' + text[at:])
