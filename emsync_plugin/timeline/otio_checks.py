"""Checks of OTIO data before OpenTimelineIO's C++ code sees it, and the OTIOZ reader.

OpenTimelineIO 0.18 can crash the whole process (segmentation faults found by fuzzing) on
some damaged OTIO JSON, and its OTIOZ adapter trusts the archive (paths, sizes, symlinks).
Everything here refuses such input with a TimelineError naming the file instead.
"""
from __future__ import annotations

import json
import os
import re
import stat
import zipfile
from pathlib import Path

import opentimelineio as otio

from ..errors import EmsyncError, TimelineError
from . import limits


def guarded(path: Path, adapter: str, job):
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
            f"cannot read this {describe(adapter)} file ({type(exc).__name__}: {detail})",
            path=path,
            hint=f"check that it is a complete {describe(adapter)} export; re-export it from the editor",
        ) from exc



def describe(adapter: str) -> str:
    return {
        "otio_json": "OpenTimelineIO",
        "otioz": "OTIOZ bundle",
        "otiod": "OTIOD bundle",
        "fcp_xml": "Final Cut Pro 7 XML",
        "fcpx_xml": "FCPXML",
        "cmx_3600": "CMX 3600 EDL",
    }[adapter]



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
            twice = _first_repeat([k for k, _ in pairs])
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


def _first_repeat(keys: list[str]) -> str:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    return ""


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

    return guarded(path, "otioz", job)


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


def is_bundle_document(member: Path) -> bool:
    """Whether a file inside an ``.otiod`` bundle is its timeline (the rest is media)."""
    return member.name.endswith(".otio")
