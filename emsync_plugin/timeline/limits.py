"""What a timeline file may ask of emsync, checked before anyone parses it.

Editors hand emsync files from strangers. Nothing a file says may make emsync expand
entities, fetch a DTD, recurse without end, hold gigabytes in memory or run for hours; such
files are refused with a :class:`~emsync_plugin.errors.TimelineError` that names the limit.
The limits are far above what any editor writes (a feature film's timeline has a few
thousand clips, a few levels of nesting, and a few MB of XML).
"""
from __future__ import annotations

import logging
import re
import xml.parsers.expat
from pathlib import Path

from ..errors import TimelineError

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 256 * 1024 * 1024  # a timeline file (XML, JSON, EDL), or content.otio in a bundle
MAX_XML_DEPTH = 256  # element nesting
MAX_ATTRIBUTE = 4 * 1024 * 1024  # characters in one XML attribute value
MAX_JSON_DEPTH = 512  # nesting of OTIO JSON objects and lists
MAX_STACK_NESTING = 32  # compound clips / nested sequences inside each other
MAX_SHOTS = 250_000  # clips and gaps on all video tracks together
MAX_MARKERS = 100_000
MAX_RATE = 1000.0  # frames per second
MAX_DURATION = 48 * 3600.0  # seconds: a timeline (and any time in it)
MAX_START = 10 * 24 * 3600.0  # seconds: the global start timecode

#: Bundles (.otioz): members, their total unpacked size, and the packing ratio of a big member.
MAX_MEMBERS = 10_000
MAX_UNPACKED = 16 * 1024**3
MAX_RATIO = 200  # unpacked / packed, for members over 1 MiB (zip bombs pack ~1000:1)

_HINT = "editors do not write such files; re-export the timeline from the editor"


def check_size(path: Path, size: int | None = None, what: str = "the file") -> None:
    """Refuse a timeline file larger than :data:`MAX_FILE_BYTES` before reading it."""
    size = path.stat().st_size if size is None else size
    if size > MAX_FILE_BYTES:
        raise TimelineError(
            f"refused: {what} is {size / 1024**2:.0f} MB, more than the {MAX_FILE_BYTES // 1024**2} MB a timeline may be",
            path=path, hint=_HINT,
        )


class _RefusedError(Exception):
    def __init__(self, reason: str):
        self.reason = reason


def check_xml(path: Path, data: bytes | None = None) -> None:
    """Scan XML once, streaming, before a real parser sees it.

    Refused: entity declarations (billion laughs) and external entities or DTD fetches
    (nothing is ever fetched: expat is told not to read external DTDs), nesting deeper than
    :data:`MAX_XML_DEPTH`, attribute values longer than :data:`MAX_ATTRIBUTE`, files larger
    than :data:`MAX_FILE_BYTES`, unknown encodings and XML that is not well-formed (with the
    line, and whether it looks truncated).
    """
    if data is None:
        check_size(path)
        data = path.read_bytes()
    else:
        check_size(path, len(data))
    parser = xml.parsers.expat.ParserCreate()
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    depth = 0

    def start(name, attrs):
        nonlocal depth
        depth += 1
        if depth > MAX_XML_DEPTH:
            raise _RefusedError(f"elements are nested more than {MAX_XML_DEPTH} deep")
        for key, value in attrs.items():
            if len(value) > MAX_ATTRIBUTE:
                raise _RefusedError(f"the attribute {key[:40]!r} of <{name[:40]}> is {len(value):,} characters long")

    def end(name):
        nonlocal depth
        depth -= 1

    def entity(name, *args):
        raise _RefusedError(f"the file declares XML entities (entity {str(name)[:40]!r})")

    def external(*args):
        raise _RefusedError("the file refers to an external entity")

    def doctype(name, system_id, public_id, has_internal_subset):
        if system_id or public_id:
            raise _RefusedError(f"the file refers to an external DTD ({str(system_id or public_id)[:80]!r})")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.EntityDeclHandler = entity
    parser.UnparsedEntityDeclHandler = entity
    parser.ExternalEntityRefHandler = external
    parser.StartDoctypeDeclHandler = doctype
    try:
        parser.Parse(data, True)
    except _RefusedError as exc:
        raise TimelineError(f"refused: {exc.reason}", path=path, hint=_HINT) from None
    except xml.parsers.expat.ExpatError as exc:
        message = xml.parsers.expat.errors.messages.get(exc.code, str(exc))
        errors = xml.parsers.expat.errors
        ends_early = {errors.codes[errors.XML_ERROR_NO_ELEMENTS], errors.codes[errors.XML_ERROR_UNCLOSED_TOKEN],
                      errors.codes[errors.XML_ERROR_PARTIAL_CHAR]}
        truncated = exc.code in ends_early or exc.lineno >= data.rstrip().count(b"\n") + 1
        reason = f"is not well-formed XML ({message}, line {exc.lineno}, column {exc.offset})"
        if truncated:
            reason += "; it may be truncated"
        raise TimelineError(reason, path=path, hint="re-export the timeline from the editor") from None
    except (LookupError, ValueError, UnicodeError) as exc:  # e.g. encoding="UTF-999"
        raise TimelineError(f"cannot be read as XML ({type(exc).__name__}: {exc})", path=path,
                            hint="re-export the timeline from the editor (as UTF-8)") from None


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_JSON_BRACKETS = re.compile(rb"[\[\]{}]")


def check_json(path: Path, data: bytes) -> None:
    """Refuse JSON nested deeper than :data:`MAX_JSON_DEPTH` (OTIO's parser recurses)."""
    check_size(path, len(data))
    depth = deepest = 0
    for m in _JSON_BRACKETS.finditer(_JSON_STRING.sub(b'""', data)):
        depth += 1 if m.group() in b"[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_JSON_DEPTH:
                raise TimelineError(f"refused: its JSON is nested more than {MAX_JSON_DEPTH} deep", path=path, hint=_HINT)
