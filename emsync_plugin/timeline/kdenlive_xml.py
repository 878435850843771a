"""Kdenlive's MLT XML: times, properties, safe parsing and the elements Kdenlive writes.

Shared by the reader (:mod:`.kdenlive_read`), the writer (:mod:`.kdenlive_write`) and the
sample-project maker in ``scripts/``, so that all three spell the format the same way. Times
are frames (``"250"``), MLT clocks (``"00:00:10.000"``) or SMPTE timecodes; the writers use
the clock form, as Kdenlive does.
"""
from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from ..errors import TimelineError
from . import limits

FORMAT = "kdenlive"
#: Property holding emsync's metadata (JSON) on the score track and its clips.
SCORE_PROPERTY = "kdenlive:emsync"
#: The newest Kdenlive document version this reader knows.
DOC_VERSION = "1.1"
INTERNAL = "237"  # Kdenlive's value of ``internal_added`` for its own filters/transitions
BLACK = "black_track"
HINT_RESAVE = "Open it in Kdenlive and save it again, or restore it from a backup"


def parse_time(value: str | None, rate: Fraction) -> int:
    """Frames of an MLT time value at ``rate``.

    Accepts a frame count (``"362"``), an MLT clock (``"00:00:14.480"``, ``","`` as decimal
    mark too) and an SMPTE timecode (``"00:00:14:12"``, ``";"`` before the frames for drop
    frame). Raises ``ValueError`` on anything else.
    """
    text = (value or "").strip()
    if not text:
        raise ValueError("empty time value")
    if ":" not in text:
        return round(Fraction(text.replace(",", ".")))
    if "." in text or "," in text:  # clock: [[HH:]MM:]SS.fff
        return _clock_frames(text, rate)
    return _timecode_frames(text, rate)


def _clock_frames(text: str, rate: Fraction) -> int:
    parts = text.replace(",", ".").split(":")
    if len(parts) > 3:
        raise ValueError(f"bad clock value {text!r}")
    seconds = Fraction(parts[-1])
    minutes = int(parts[-2]) if len(parts) >= 2 else 0
    hours = int(parts[-3]) if len(parts) == 3 else 0
    sign = -1 if text.startswith("-") else 1
    total = abs(hours) * 3600 + minutes * 60 + seconds
    return sign * round(total * rate)


def _timecode_frames(text: str, rate: Fraction) -> int:
    fields = re.split(r"[:;]", text)  # SMPTE: HH:MM:SS:FF or HH:MM:SS;FF
    if len(fields) != 4:
        raise ValueError(f"bad timecode {text!r}")
    hours, minutes, seconds, frames = (int(f) for f in fields)
    base = round(rate)
    count = (hours * 3600 + minutes * 60 + seconds) * base + frames
    if ";" in text and base % 30 == 0:  # drop frame: 2 (4 at 60p) numbers skipped a minute
        drop = 2 * (base // 30)
        total_minutes = hours * 60 + minutes
        count -= drop * (total_minutes - total_minutes // 10)
    return count


def clock(frames: int, rate: Fraction) -> str:
    """The MLT clock string (``HH:MM:SS.mmm``) of a frame count, as Kdenlive writes it."""
    ms = round(Fraction(frames) / rate * 1000)
    sign = "-" if ms < 0 else ""
    hours, rest = divmod(abs(ms), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def to_seconds(frames: int | Fraction, rate: Fraction) -> float:
    return round(float(Fraction(frames) / rate), 9)



def prop(element: ET.Element | None, name: str, default: str = "") -> str:
    """Text of ``<property name=...>`` of an MLT element (``default`` when absent)."""
    if element is None:
        return default
    for p in element.iterfind("property"):
        if p.get("name") == name:
            return p.text or ""
    return default


def has_prop(element: ET.Element, name: str) -> bool:
    return any(p.get("name") == name for p in element.iterfind("property"))


def set_prop(element: ET.Element, name: str, value: str, unit: str = " ", depth: int = 1) -> ET.Element:
    """Set (or add, after the last property) an MLT property; return the property element."""
    for p in element.iterfind("property"):
        if p.get("name") == name:
            p.text = value
            return p
    p = ET.Element("property", {"name": name})
    p.text = value
    props = element.findall("property")
    index = list(element).index(props[-1]) + 1 if props else 0
    insert_child(element, index, p, unit, depth)
    return p


def int_or_none(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def insert_child(parent: ET.Element, index: int, element: ET.Element, unit: str, depth: int) -> None:
    """Insert ``element`` into ``parent`` (at ``depth``, the root being 0), indented like its siblings."""
    children = list(parent)
    inner_ws = "\n" + unit * (depth + 1)
    ET.indent(element, space=unit, level=depth + 1)
    index = max(0, min(index, len(children)))
    if not children:
        parent.text = inner_ws
        element.tail = "\n" + unit * depth
    elif index == len(children):
        last = children[-1]
        element.tail = last.tail if last.tail is not None else "\n" + unit * depth
        last.tail = inner_ws
    else:
        element.tail = inner_ws
    parent.insert(index, element)


def remove_child(parent: ET.Element, element: ET.Element) -> None:
    """Remove ``element`` from ``parent`` keeping the closing indentation right."""
    children = list(parent)
    i = children.index(element)
    if i == len(children) - 1 and i > 0:
        children[i - 1].tail = element.tail
    parent.remove(element)



def parse_document(path: Path) -> ET.Element:
    """Parse ``path`` safely (defusedxml, comments kept) and return the ``<mlt>`` root."""
    try:
        limits.check_size(path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise TimelineError("file not found", path=path, hint="Check the path of the Kdenlive project") from None
    except OSError as exc:
        raise TimelineError(f"cannot read the file ({exc.strerror or exc})", path=path,
                            hint="Check that the file is readable") from None
    parser = DefusedXMLParser(target=ET.TreeBuilder(insert_comments=True, insert_pis=True),
                                  forbid_dtd=False, forbid_entities=True, forbid_external=True)
    if not data.strip():
        raise TimelineError("the file is empty", path=path, hint=HINT_RESAVE)
    if not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise TimelineError("not an XML file (a Kdenlive project is MLT XML)", path=path,
                            hint="Choose a .kdenlive file saved by Kdenlive 19.04 or newer")
    limits.check_xml(path, data)  # entities, DTD fetches, nesting, huge attributes, encodings
    stage = "feed"
    try:
        parser.feed(data)
        stage = "close"  # everything was read: an error now means the document ends too early
        root = parser.close()
    except DefusedXmlException as exc:
        raise TimelineError(
            f"refusing to read XML with entity or external declarations ({type(exc).__name__})",
            path=path,
            hint="Kdenlive never writes these; the file may be an entity-expansion attack. Re-save the project from Kdenlive",
        ) from None
    except ET.ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        if stage == "close":
            reason = f"truncated XML: the file ends inside the document (line {line})"
        else:
            reason = f"malformed XML (line {line}, column {column})"
        raise TimelineError(reason, path=path, hint=HINT_RESAVE) from None
    if root is None or root.tag != "mlt":
        tag = getattr(root, "tag", "?")
        raise TimelineError(f"not a Kdenlive project (the root element is <{tag}>, not <mlt>)", path=path,
                            hint="Choose a .kdenlive file saved by Kdenlive 19.04 or newer")
    return root



class Ids:
    """Fresh element ids in Kdenlive's style (``chain7``, ``tractor5``...)."""

    def __init__(self, root: ET.Element):
        self.used: set[str] = {el.get("id") or "" for el in root.iter()} - {""}

    def new(self, prefix: str) -> str:
        numbers = [int(m.group(1)) for i in self.used if (m := re.fullmatch(re.escape(prefix) + r"(\d+)", i))]
        n = max(numbers, default=-1) + 1
        while f"{prefix}{n}" in self.used:
            n += 1
        self.used.add(f"{prefix}{n}")
        return f"{prefix}{n}"


def new_element(tag: str, attrs: dict[str, str] | None = None, props: Sequence[tuple[str, str]] = ()) -> ET.Element:
    element = ET.Element(tag, attrs or {})
    for name, value in props:
        p = ET.SubElement(element, "property", {"name": name})
        p.text = value
    return element


def indent_unit(root: ET.Element) -> str:
    text = root.text or ""
    unit = text.rsplit("\n", 1)[-1] if "\n" in text else ""
    return unit if unit and not unit.strip() else " "


def media_clip(tag: str, element_id: str, resource: str, length: int, kid: str, control: str,
                rate: Fraction, *, name: str, clip_type: str, audio_index: int | None,
                video_index: int | None, timeline: str | None, extra: Sequence[tuple[str, str]] = ()) -> ET.Element:
    """A producer/chain of a media file, as a bin clip or (``timeline``) a track instance.

    ``timeline`` is ``"audio"`` or ``"video"`` for the instance used on a track of that kind.
    """
    props: list[tuple[str, str]] = [
        ("length", str(length)),
        ("eof", "pause"),
        ("resource", resource),
        ("mlt_service", "avformat-novalidate"),
        ("seekable", "1"),
    ]
    if audio_index is not None:
        props.append(("audio_index", str(audio_index)))
    if video_index is not None:
        props.append(("video_index", str(video_index)))
    props += [
        ("mute_on_pause", "0"),
        ("kdenlive:clipname", name),
        ("kdenlive:clip_type", clip_type),
        ("kdenlive:folderid", "-1"),
        ("kdenlive:id", kid),
        ("kdenlive:control_uuid", control),
        *extra,
    ]
    if timeline is not None:
        props += [("xml", "was here"),
                  ("set.test_audio", "0" if timeline == "audio" else "1"),
                  ("set.test_image", "1" if timeline == "audio" else "0")]
    attrs = {"id": element_id, "in": clock(0, rate), "out": clock(length - 1, rate)}
    if tag == "chain":
        attrs.pop("in")
    return new_element(tag, attrs, props)


def track_tractor(tractor_id: str, playlists: Sequence[str], *, audio: bool, name: str, frames: int,
                   rate: Fraction, ids: Ids, extra: Sequence[tuple[str, str]] = ()) -> ET.Element:
    """A Kdenlive track: a tractor of two playlists (+ the internal audio filters)."""
    props = []
    if audio:
        props.append(("kdenlive:audio_track", "1"))
    props += [("kdenlive:trackheight", "67"), ("kdenlive:timeline_active", "1"), ("kdenlive:collapsed", "0")]
    if name:
        props.append(("kdenlive:track_name", name))
    props += [("kdenlive:thumbs_format", ""), ("kdenlive:audio_rec", ""), *extra]
    attrs = {"id": tractor_id, "in": clock(0, rate)}
    if frames > 0:
        attrs["out"] = clock(frames - 1, rate)
    tractor = new_element("tractor", attrs, props)
    for pid in playlists:
        ET.SubElement(tractor, "track", {"hide": "video" if audio else "audio", "producer": pid})
    if audio:
        for fprops in AUDIO_FILTERS:
            tractor.append(new_element("filter", {"id": ids.new("filter")}, fprops))
    return tractor


AUDIO_FILTERS = (  # the disabled volume/panner/level filters Kdenlive puts on every audio track
    [("window", "75"), ("max_gain", "20dB"), ("mlt_service", "volume"), ("internal_added", INTERNAL), ("disable", "1")],
    [("channel", "-1"), ("mlt_service", "panner"), ("internal_added", INTERNAL), ("start", "0.5"), ("disable", "1")],
    [("iec_scale", "0"), ("mlt_service", "audiolevel"), ("internal_added", INTERNAL), ("dbpeak", "1"), ("disable", "1")],
)


def audio_mix(transition_id: str, b_track: int) -> ET.Element:
    """Kdenlive's internal transition summing the audio of track ``b_track`` into the mix."""
    return new_element("transition", {"id": transition_id}, [
        ("a_track", "0"), ("b_track", str(b_track)), ("mlt_service", "mix"), ("kdenlive_id", "mix"),
        ("internal_added", INTERNAL), ("always_active", "1"), ("accepts_blanks", "1"), ("sum", "1"),
    ])


def video_blend(transition_id: str, b_track: int) -> ET.Element:
    """Kdenlive's internal transition compositing video track ``b_track`` over the ones below."""
    return new_element("transition", {"id": transition_id}, [
        ("a_track", "0"), ("b_track", str(b_track)), ("compositing", "0"), ("distort", "0"),
        ("rotate_center", "0"), ("mlt_service", "qtblend"), ("kdenlive_id", "qtblend"),
        ("internal_added", INTERNAL), ("always_active", "1"),
    ])


def new_entry(producer: str, start: int, end: int, kid: str, rate: Fraction) -> ET.Element:
    """A playlist entry of producer frames [start, end] (inclusive, as MLT counts)."""
    return new_element("entry", {"producer": producer, "in": clock(start, rate), "out": clock(end, rate)},
                    [("kdenlive:id", kid)])



def serialize(root: ET.Element) -> str:
    text = ET.tostring(root, encoding="unicode", short_empty_elements=True)
    return "<?xml version='1.0' encoding='utf-8'?>\n" + text.replace(" />", "/>") + "\n"


def stable_uuid(*parts: str) -> str:
    """A uuid in Kdenlive's braces, derived from ``parts`` so that rewriting gives the same file."""
    return "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, "emsync:" + ":".join(parts))) + "}"
