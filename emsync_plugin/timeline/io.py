"""The front door of the timeline room: which reader or writer a file needs, where a scored
timeline may go, and the few facts about formats the rest of emsync asks (is this a project
that can be snapshotted, did emsync write this file, convert one timeline file to another).
Files are checked here before any parser sees them."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .. import fileio
from ..errors import EmsyncError, OptionsError, TimelineError
from . import fcpxml, limits, otio_checks, otio_io, otio_write
from .model import Edit, ScoreTrack, ScoreTrackInfo, Timeline, VideoTrack, build_timeline

logger = logging.getLogger(__name__)

KDENLIVE_SUFFIXES = (".kdenlive", ".mlt")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mxf", ".mts", ".mpg", ".mpeg")
SUPPORTED = tuple(otio_io.ADAPTERS) + KDENLIVE_SUFFIXES + VIDEO_SUFFIXES
MIN_DURATION = 1.0  # seconds; shorter timelines cannot carry a score


def read_edit(path: str | Path, *, rate: float | None = None) -> Edit:
    """Read the tracks of any supported timeline (or shots of a bare video file).

    Whatever a file does, the outcome is an :class:`Edit` or an ``EmsyncError`` naming it:
    exceptions the readers did not foresee become a TimelineError (``unexpected`` set, the
    traceback at debug level) instead of a crash.
    """
    path = Path(path)
    try:
        return _read_edit(path, rate)
    except EmsyncError:
        raise
    except RecursionError:
        raise TimelineError("refused: it is nested too deeply to read", path=path,
                            hint="re-export the timeline from the editor") from None
    except Exception as exc:  # a reader's bug must not become a crash on the user's file
        logger.debug("unexpected error reading %s", path, exc_info=True)
        error = TimelineError(
            f"cannot read it ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})", path=path,
            hint="re-export the timeline from the editor; if it opens there, please report this file",
        )
        error.unexpected = True
        raise error from exc


def _read_edit(path: Path, rate: float | None) -> Edit:
    suffix = _check_file(path)
    if suffix in KDENLIVE_SUFFIXES or (suffix == ".xml" and _is_mlt(path)):
        from . import kdenlive

        return kdenlive.read(path)
    if suffix in VIDEO_SUFFIXES:
        from . import video

        return video.read(path)
    if suffix in (".xml", ".fcpxml"):
        check_xml(path)
    elif suffix in (".otio", ".edl"):
        limits.check_size(path)
    return otio_io.read(path, rate=rate)


def read_cuts(
    path: str | Path, *, track: str | None = None, rate: float | None = None, min_duration: float = 0.0
) -> Timeline:
    """Read a timeline's cut points and scenes.

    ``track`` picks one video track by number (``2``, ``V2``) or name (then every clip of it cuts,
    titles too); by default the edit points of all enabled video tracks count, overlays over
    picture excepted (``Timeline.overlays``).
    """
    edit = read_edit(path, rate=rate)
    tracks = select_tracks(edit, track)
    timeline = build_timeline(
        edit.name, edit.rate, [t.shots for t in tracks], start=edit.start,
        duration=edit.duration or None, markers=edit.markers, path=edit.path, format=edit.format,
        audio=edit.audio, drop_frame=edit.drop_frame, track_names=[t.name for t in tracks],
    )
    if timeline.duration < min_duration:
        raise TimelineError(
            f"is only {timeline.duration:.2f} s long",
            path=path,
            hint=f"a score needs a timeline of at least {min_duration:g} s; check that the right sequence was exported",
        )
    return timeline


def select_tracks(edit: Edit, track: str | None) -> list[VideoTrack]:
    """The video tracks whose edit points count."""
    if not edit.tracks:
        raise TimelineError(
            "has no video track", path=edit.path,
            hint="emsync takes cuts from the picture: export the timeline with its video tracks",
        )
    if track is None:
        chosen = [t for t in edit.tracks if t.enabled]
        if not chosen:
            raise TimelineError(
                "has no enabled video track", path=edit.path, hint="enable a video track or pick one with --track",
            )
        return chosen
    key = track.strip()
    number = key[1:] if key[:1] in "Vv" and key[1:].isdigit() else key
    if number.isdigit() and 1 <= int(number) <= len(edit.tracks):
        return [edit.tracks[int(number) - 1]]
    named = [t for t in edit.tracks if t.name == key]
    if named:
        return named[:1]
    names = ", ".join(
        f"V{i}" if t.name == f"V{i}" else f"V{i} ({t.name})" for i, t in enumerate(edit.tracks, start=1)
    )
    raise TimelineError(f"has no video track {track!r}", path=edit.path, hint=f"pick one of: {names}")


def write_timeline(timeline: Timeline, out: str | Path, score: ScoreTrack | Sequence[ScoreTrack]) -> Path:
    """Write ``timeline``'s source file with the score track(s) to ``out`` (format from ``out``'s suffix).

    ``score`` is one :class:`ScoreTrack` or several (the first is the main mix, or take 1): one
    audio track each, replacing every earlier emsync score track and nothing else. Written
    atomically; backing up an ``out`` that exists is the caller's job (``pipeline.score``).
    """
    out = Path(out)
    scores = (score,) if isinstance(score, ScoreTrack) else tuple(score)
    if not scores:
        raise OptionsError("no score track to write", path=out)
    source = timeline.path
    if source is None:
        raise TimelineError("this timeline was not read from a file; nothing to write back", path=out)
    if timeline.format == "kdenlive":
        from . import kdenlive

        return kdenlive.write(source, out, scores, backup_source=False)  # pipeline.score keeps the backup
    if timeline.format == "video":  # no timeline to go back to: write a new one
        return otio_write.write_for_video(timeline, out, scores)
    return otio_write.write(source, out, scores, rate=timeline.rate if timeline.format == "cmx_3600" else None)


def read_score_tracks(path: str | Path) -> list[ScoreTrackInfo]:
    """The emsync score tracks a timeline already carries, in the order they were written (the
    main mix or take 1 first); [] if none, or if the file cannot be read (the reader says why
    when the timeline itself is read).

    OTIO family and Kdenlive; a video file or an EDL carries none.
    """
    path = Path(path)
    try:
        suffix = _check_file(path)
        if suffix in KDENLIVE_SUFFIXES or (suffix == ".xml" and _is_mlt(path)):
            from . import kdenlive

            return kdenlive.score_tracks(path)
        if suffix not in otio_io.ADAPTERS or suffix == ".edl":
            return []
        if suffix in (".xml", ".fcpxml"):
            check_xml(path)
        adapter, _ = otio_io.ADAPTERS[suffix]
        found = otio_io.score_tracks(otio_io.load(path, adapter))
        if suffix == ".fcpxml":  # muted = the score clip switched off (the adapter does not read it)
            off = fcpxml.disabled_clip_names(path)
            found = [replace(t, muted=t.muted or t.name in off) for t in found]
        return found
    except Exception:  # noqa: BLE001 - asking must never break scoring
        logger.debug("cannot read the score tracks of %s", path, exc_info=True)
        return []


#: Formats that cannot take a score track in place: a new OTIO timeline is written instead.
_NO_SCORE_TRACK = ("cmx_3600", "video")
_OTIO_OUT = (".otio", ".otioz", ".otiod", ".xml", ".fcpxml")


def output_path(path: Path, timeline: Timeline, output: Path | None, in_place: bool) -> Path:
    """Where the scored timeline goes; refuses to overwrite the input without ``in_place`` and
    output suffixes the timeline's format cannot be written as (OptionsError)."""
    if in_place:
        if output is not None and output.resolve() != path.resolve():
            raise OptionsError("--in-place and -o name different files", hint="use one of them")
        if timeline.format in _NO_SCORE_TRACK:
            raise OptionsError(f"{path.name} cannot take a score track in place", hint="write an OTIO timeline with -o NAME.otio")
        return path
    if output is not None:
        out = output
    else:
        out_suffix = ".otio" if timeline.format in _NO_SCORE_TRACK else path.suffix
        out = path.with_name(f"{path.stem}.emsync{out_suffix}")
    if out.resolve() == path.resolve():
        raise OptionsError(
            f"{path} is the input timeline", hint="pass --in-place to overwrite it (a timestamped backup is kept) or choose another -o"
        )
    _check_output_format(timeline, out)
    return out


def _check_output_format(timeline: Timeline, out: Path) -> None:
    out_suffix = out.suffix.lower()
    if timeline.format == "kdenlive":
        ok = out_suffix in KDENLIVE_SUFFIXES
        want = ".kdenlive"
    elif timeline.format == "video":
        ok, want = out_suffix in _OTIO_OUT, ".otio, .otioz, .otiod, .xml or .fcpxml"
    else:
        ok = out_suffix in otio_io.ADAPTERS and out_suffix != ".edl"
        want = ".otio, .otioz, .otiod, .xml or .fcpxml"
    if not ok:
        raise OptionsError(
            f"cannot write a {timeline.format} timeline as {out.name}", hint=f"name the output with one of: {want}"
        )


def written_by_emsync(path: Path) -> bool:
    """Whether ``path`` is a scored timeline emsync wrote (it names the score track), so that
    overwriting it needs no backup; bundle folders count as ours."""
    try:
        if path.is_dir():
            return True
        with path.open("rb") as f:
            return b"EMSYNC Score" in f.read()
    except OSError:
        return False


def is_project(path: Path) -> bool:
    """Whether ``path`` is a timeline (not a bare video file): one that can be scored in place
    and so is worth a :func:`snapshot` before reading it."""
    return path.suffix.lower() not in VIDEO_SUFFIXES


def snapshot(path: Path) -> fileio.Snapshot | None:
    """What the project at ``path`` is now (None if it cannot be read: the reader says why).

    Of a bundle folder, only the timeline documents inside are compared byte for byte, its
    media by size (hashing gigabytes of media on every run would be slow)."""
    try:
        return fileio.Snapshot.take(path, hashed=otio_checks.is_bundle_document)
    except OSError:
        return None


def convert_timeline(source: Path, target: Path) -> Path:
    """Write the OTIO-family timeline ``source`` as ``target`` (format from its suffix), as an
    editor's export would be: relative media made absolute, FCPXML with its start timecode."""
    return otio_write.convert(source, target)


def _check_file(path: Path) -> str:
    suffix = path.suffix.lower()
    try:
        return _check_path(path, suffix)
    except OSError as exc:  # permissions, a name too long, a dangling link
        raise TimelineError(f"cannot be opened ({exc.strerror or exc})", path=path,
                            hint="check the path and that the file is readable") from None
    except ValueError as exc:  # e.g. a NUL byte in the name
        raise TimelineError(f"is not a usable file name ({exc})", path=path, hint="check the path") from None


def _check_path(path: Path, suffix: str) -> str:
    if not path.exists():
        raise TimelineError("no such file", path=path, hint="check the path (export the timeline from your editor first)")
    if path.is_dir() and suffix != ".otiod":
        found = sorted(p.name for p in path.iterdir() if p.suffix.lower() in SUPPORTED and not p.name.startswith("."))[:3]
        hint = f"name a timeline file in it, e.g. {path / found[0]}" if found else \
            "name a timeline file (.otio, .kdenlive, .xml, .fcpxml, .edl) or a video file, not a folder"
        raise TimelineError("is a folder, not a timeline", path=path, hint=hint)
    if suffix not in SUPPORTED:
        raise TimelineError(
            f"unsupported file type {suffix or '(no extension)'!r}",
            path=path,
            hint="export the timeline as .otio, .kdenlive, FCP 7 .xml, .fcpxml or .edl, or pass a video file",
        )
    if path.is_file() and path.stat().st_size == 0:
        raise TimelineError("is empty", path=path, hint="re-export the timeline from your editor")
    if path.is_dir() and suffix != ".otiod":
        raise TimelineError("is a folder, not a timeline file", path=path, hint="pass the timeline file itself")
    return suffix


def check_xml(path: Path) -> None:
    """Refuse XML entity tricks (billion laughs, external entities, DTD fetches), absurd nesting,
    huge attributes and files, and say where XML is broken (:func:`limits.check_xml`).

    The OTIO adapters parse with the standard library; every XML file is scanned first, so
    nothing they parse can expand entities.
    """
    limits.check_xml(path)


def _is_mlt(path: Path) -> bool:
    """A Kdenlive/MLT document saved with an .xml suffix (FCP 7 XML starts with <xmeml>)."""
    with path.open("rb") as f:
        head = f.read(2048)
    return b"<mlt" in head
