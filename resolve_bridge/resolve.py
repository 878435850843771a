"""The Resolve side of the script: calls to Resolve's scripting API, and where runs are kept.

Finds the current project and timeline, exports the timeline (OTIO, else FCP 7 XML), imports
the WAV into the media pool bin "EMSYNC", places it on the audio track "EMSYNC Score" and keeps
the settings of a run as JSON metadata on the media pool items. Only methods documented in
Resolve's ``Developer/Scripting/README.txt`` are called; those that older versions lack go
through :func:`call_optional`. Errors the editor can fix are :class:`BridgeError`.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .options import BIN_NAME, METADATA_KEY, TRACK_NAME, BridgeError

logger = logging.getLogger(__name__)

WORKDIR_ENV = "EMSYNC_RESOLVE_DIR"


def get_resolve(ns: dict):
    """The ``resolve`` object: injected by Resolve into the script's globals ``ns`` for menu
    scripts, else via its scripting module."""
    if ns.get("resolve") is not None:
        return ns["resolve"]
    bmd = ns.get("bmd")
    if bmd is not None:
        try:
            found = bmd.scriptapp("Resolve")
            if found:
                return found
        except Exception:
            logger.debug("bmd.scriptapp failed", exc_info=True)
    try:
        import DaVinciResolveScript as dvr_script  # noqa: N813 (Resolve's module name)

        found = dvr_script.scriptapp("Resolve")
        if found:
            return found
    except Exception:
        logger.debug("DaVinciResolveScript not importable", exc_info=True)
    raise BridgeError(
        "DaVinci Resolve is not reachable from here. Run EMSYNC Score inside Resolve, from Workspace > Scripts > "
        "Utility (install it with emsync-resolve-install, then restart Resolve); this works in the free edition too. "
        "Scripts started outside Resolve need DaVinci Resolve Studio with Preferences > System > General > "
        "External scripting using set to Local"
    )


def current_timeline(resolve):
    """(project, timeline) or a BridgeError telling the user what to open."""
    project = resolve.GetProjectManager().GetCurrentProject()
    if not project:
        raise BridgeError("No project is open. Open a project and a timeline, then run EMSYNC Score again")
    timeline = project.GetCurrentTimeline()
    if not timeline:
        raise BridgeError("The project has no current timeline. Open the timeline to score in the Edit page")
    return project, timeline


def _timecode(seconds: float, rate: float, drop_frame: bool) -> str:
    try:
        from emsync_plugin.timeline.timecode import format_timecode
    except ImportError:  # Resolve's Python without emsync: non-drop-frame is close enough for a label
        fps = int(round(rate))
        f = int(round(seconds * rate))
        return f"{f // (3600 * fps):02d}:{f // (60 * fps) % 60:02d}:{f // fps % 60:02d}:{f % fps:02d}"
    return format_timecode(seconds, rate, drop_frame=drop_frame)


@dataclass(frozen=True)
class Marks:
    """The part of a timeline to score: between its mark in and out, else all of it (frames)."""

    rate: float
    start_frame: int  # the timeline's first frame
    length: int  # frames in the timeline
    drop_frame: bool  # the timeline shows drop-frame timecode
    mark_in: int | None = None  # frames from the timeline's start
    mark_out: int | None = None  # the last marked frame (inclusive), frames from the start

    @property
    def in_frame(self) -> int:
        """The timeline frame the score starts at."""
        return self.start_frame + (self.mark_in or 0)

    @property
    def range_in(self) -> float | None:
        """ScoreOptions.range_in: seconds from the timeline's start (None: from the start)."""
        return None if self.mark_in is None else self.mark_in / self.rate

    @property
    def range_out(self) -> float | None:
        """ScoreOptions.range_out: seconds from the timeline's start, just after the last marked frame."""
        return None if self.mark_out is None else (self.mark_out + 1) / self.rate

    def timecode(self, frame: int) -> str:
        return _timecode(frame / self.rate, self.rate, self.drop_frame)

    @property
    def in_timecode(self) -> str:
        return self.timecode(self.in_frame)

    def describe(self) -> str:
        """The range as the editor sees it, in the timeline's timecode."""
        last = self.start_frame + (self.length if self.mark_out is None else self.mark_out + 1)
        span = f"{self.in_timecode} to {self.timecode(last)} ({last - self.in_frame} frames)"
        if self.mark_in is None and self.mark_out is None:
            return f"Range: the whole timeline, {span}. Set a mark in/out to score part of it."
        return f"Range: the timeline's marks, {span}."


def marks(timeline) -> Marks:
    """The timeline's mark in/out (``Timeline.GetMarkInOut``, Resolve 19.1 and later).

    The README's example ``{'video': {'in': 0, 'out': 134}, 'audio': {...}}`` gives frames from the
    timeline's start with keys left out when not set; the video marks are used, else the audio
    ones. The mark out is the last frame inside the range, as the Edit page shows it. Without
    marks (or on older versions) the whole timeline is scored.
    """
    rate = _rate(timeline)
    start = int(timeline.GetStartFrame())
    length = max(0, int(call_optional(timeline, "GetEndFrame") or start) - start)
    drop = str(call_optional(timeline, "GetSetting", "timelineDropFrameTimecode") or "0").strip() in ("1", "true", "True")
    found = call_optional(timeline, "GetMarkInOut")
    pair: dict = {}
    if isinstance(found, dict):
        pair = next((found[k] for k in ("video", "audio") if isinstance(found.get(k), dict) and found[k]), {})
    mark_in, mark_out = pair.get("in"), pair.get("out")
    mark_in = int(mark_in) if isinstance(mark_in, (int, float)) and 0 <= mark_in < max(length, 1) else None
    mark_out = int(mark_out) if isinstance(mark_out, (int, float)) and mark_out >= 0 else None
    if mark_out is not None and length:
        mark_out = min(mark_out, length - 1)
    if mark_in is not None and mark_out is not None and mark_out < mark_in:
        raise BridgeError("The timeline's mark out is before its mark in. Set them again (I and O in the Edit page)")
    return Marks(rate, start, length, drop, mark_in, mark_out)


def _rate(timeline) -> float:
    text = str(call_optional(timeline, "GetSetting", "timelineFrameRate") or "").split()
    try:
        rate = float(text[0]) if text else 0.0
    except ValueError:
        rate = 0.0
    return rate if rate > 0 else 24.0


def find_score_track(timeline) -> int | None:
    """1-based index of the first audio track named "EMSYNC Score", or None."""
    for index in range(1, int(timeline.GetTrackCount("audio") or 0) + 1):
        if (timeline.GetTrackName("audio", index) or "") == TRACK_NAME:
            return index
    return None


def check_unlocked(timeline) -> None:
    """A BridgeError when the "EMSYNC Score" track is locked: said before any work starts."""
    existing = find_score_track(timeline)
    if existing is not None and call_optional(timeline, "GetIsTrackLocked", "audio", existing):
        raise BridgeError(f"The audio track A{existing} '{TRACK_NAME}' is locked. Unlock it and run EMSYNC Score again")


def call_optional(obj, method: str, *args):
    """Call a documented method that older Resolve versions may lack; None when absent."""
    fn = getattr(obj, method, None)
    if not callable(fn):
        return None
    try:
        return fn(*args)
    except Exception:
        logger.debug("%s%r failed", method, args, exc_info=True)
        return None


def _decode_settings(text) -> dict | None:
    if isinstance(text, str) and text.strip():
        text = text.strip()
        if text.startswith(METADATA_KEY + " "):  # the "Comments" fallback
            text = text[len(METADATA_KEY) + 1:]
        try:
            value = json.loads(text)
            return value if isinstance(value, dict) else None
        except ValueError:
            return None
    return None


def read_settings(timeline) -> dict | None:
    """The settings a previous run stored: on the score clip's media, else on the timeline."""
    index = find_score_track(timeline)
    sources = []
    if index is not None:
        for item in timeline.GetItemListInTrack("audio", index) or []:
            sources.append(call_optional(item, "GetMediaPoolItem"))
    sources.append(call_optional(timeline, "GetMediaPoolItem"))
    for mpi in sources:
        if not mpi:
            continue
        found = _decode_settings(call_optional(mpi, "GetThirdPartyMetadata", METADATA_KEY))
        if found is None:
            found = _decode_settings(call_optional(mpi, "GetMetadata", "Comments"))
        if found is not None:
            return found
    return None


def store_settings(mpi, settings: dict) -> bool:
    """Put the settings on a media pool item under the third-party metadata key "emsync".

    ``SetThirdPartyMetadata`` exists since Resolve 19.0.2; before that the JSON goes into the
    standard "Comments" field, prefixed with "emsync ".
    """
    text = json.dumps(settings, sort_keys=True)
    if call_optional(mpi, "SetThirdPartyMetadata", {METADATA_KEY: text}):
        return True
    return bool(call_optional(mpi, "SetMetadata", {"Comments": f"{METADATA_KEY} {text}"}))


def export_timeline(resolve, timeline, folder: Path) -> Path:
    """Export ``timeline`` into ``folder``: OTIO when this Resolve can, else FCP 7 XML."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = _safe(timeline.GetName() or "timeline")
    none = getattr(resolve, "EXPORT_NONE", None)
    tried = []
    for const, suffix in (("EXPORT_OTIO", ".otio"), ("EXPORT_FCP_7_XML", ".xml")):
        kind = getattr(resolve, const, None)
        if kind is None:
            continue
        target = folder / f"{stem}{suffix}"
        ok = timeline.Export(str(target), kind, none) if none is not None else timeline.Export(str(target), kind)
        if ok and target.exists() and target.stat().st_size > 0:
            logger.info("exported %s as %s", timeline.GetName(), target)
            return target
        tried.append(const)
        if target.exists():
            target.unlink()
    raise BridgeError(
        f"Resolve could not export the timeline {timeline.GetName()!r} ({', '.join(tried) or 'no export format'}) "
        f"to {folder}. Check that the folder is writable and the timeline is not empty"
    )


def _score_bin(pool):
    """The media pool bin "EMSYNC", made if missing (the root folder if Resolve refuses)."""
    root = pool.GetRootFolder()
    folder = next((f for f in (root.GetSubFolderList() or []) if f.GetName() == BIN_NAME), None)
    return folder if folder is not None else pool.AddSubFolder(root, BIN_NAME) or root


def import_score(project, wav: Path):
    """Import the WAV into the media pool bin "EMSYNC" and return its MediaPoolItem.

    Resolve cannot use a MIDI file as media, so the MIDI only appears in the stored settings.
    """
    pool = project.GetMediaPool()
    folder = _score_bin(pool)
    previous = pool.GetCurrentFolder()
    pool.SetCurrentFolder(folder)
    try:
        items = pool.ImportMedia([str(wav)]) or []
    finally:
        if previous:
            pool.SetCurrentFolder(previous)
    if items:
        return items[0]
    # e.g. the same file is already in the bin
    found = [c for c in folder.GetClipList() or [] if _same_path(call_optional(c, "GetClipProperty", "File Path"), wav)]
    if not found:
        raise BridgeError(
            f"Resolve refused to import {wav}. Check that the file plays in the Media page and import it by hand"
        )
    return found[0]


def place_score(project, timeline, mpi, frames: int, record: int | None = None) -> tuple[int, object, int]:
    """Put ``frames`` frames of ``mpi`` on the "EMSYNC Score" audio track at timeline frame
    ``record`` (default: the start); returns (track index, item, frames placed)."""
    if project.GetCurrentTimeline() is not timeline and not _same_timeline(project.GetCurrentTimeline(), timeline):
        project.SetCurrentTimeline(timeline)  # AppendToTimeline works on the current timeline
    index = find_score_track(timeline)
    if index is None:
        if not timeline.AddTrack("audio", "stereo"):
            raise BridgeError("Resolve could not add an audio track. Add one named 'EMSYNC Score' by hand and run again")
        index = int(timeline.GetTrackCount("audio"))
        timeline.SetTrackName("audio", index, TRACK_NAME)
    else:
        old = timeline.GetItemListInTrack("audio", index) or []
        if old and not timeline.DeleteClips(list(old), False):
            raise BridgeError(f"Resolve could not clear the audio track A{index} '{TRACK_NAME}'. Unlock it and run again")
    record = int(timeline.GetStartFrame()) if record is None else int(record)
    item = _append(project, mpi, index, record, max(0, frames - 1))  # endFrame read as inclusive first
    placed = _length(item)
    if placed is not None and placed != frames and abs(placed - frames) == 1 and timeline.DeleteClips([item], False):
        # the README does not say whether endFrame is inclusive: correct by the frame it was off
        logger.info("the score clip was %d frames, not %d: placing it again", placed, frames)
        item = _append(project, mpi, index, record, max(0, frames - 1 + frames - placed))
        placed = _length(item)
    if placed is not None and placed != frames:
        logger.warning("the score clip is %d frames long, the score %d", placed, frames)
    return index, item, frames if placed is None else placed


def _append(project, mpi, index: int, record: int, end_frame: int):
    """``AppendToTimeline`` of one audio clip; the TimelineItem, or a BridgeError."""
    clip = {"mediaPoolItem": mpi, "startFrame": 0, "endFrame": end_frame, "mediaType": 2,  # audio only
            "trackIndex": index, "recordFrame": record}
    placed = project.GetMediaPool().AppendToTimeline([clip]) or []
    if not placed:
        raise BridgeError(
            f"Resolve did not place the score on A{index} '{TRACK_NAME}'. Drag it from the media pool bin "
            f"'{BIN_NAME}' onto the track at frame {record}"
        )
    return placed[0]


def _length(item) -> int | None:
    """The clip's length in frames (GetDuration, else GetEnd - GetStart); None when unknown."""
    duration = call_optional(item, "GetDuration")
    if isinstance(duration, (int, float)):
        return int(round(duration))
    start, end = call_optional(item, "GetStart"), call_optional(item, "GetEnd")
    if isinstance(start, (int, float)) and isinstance(end, (int, float)):
        return int(round(end - start))
    return None


def _same_timeline(a, b) -> bool:
    if a is None or b is None:
        return False
    ida, idb = call_optional(a, "GetUniqueId"), call_optional(b, "GetUniqueId")
    return ida is not None and ida == idb


def _same_path(a, b) -> bool:
    if not a:
        return False
    try:
        return os.path.normcase(os.path.realpath(str(a))) == os.path.normcase(os.path.realpath(str(b)))
    except OSError:
        return False


def _safe(name: str) -> str:
    """A file-name-safe version of a Resolve project/timeline name."""
    cleaned = re.sub(r"[^\w.\- ]+", "_", str(name)).strip(" .")
    return cleaned[:80] or "untitled"


def data_dir() -> Path:
    """Where runs are kept: $EMSYNC_RESOLVE_DIR, else the platform's per-user data folder."""
    if os.environ.get(WORKDIR_ENV):
        return Path(os.environ[WORKDIR_ENV]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "emsync" / "resolve"


def _timeline_folder(project, timeline) -> Path:
    """Where the runs of one timeline are kept: one folder per project and timeline name."""
    return data_dir() / _safe(project.GetName() or "project") / _safe(timeline.GetName() or "timeline")


def run_folder(project, timeline) -> Path:
    """A new folder per run: the WAV of each run keeps its own path (Resolve caches by path)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = _timeline_folder(project, timeline)
    folder = base / stamp
    n = 1
    while folder.exists():
        folder = base / f"{stamp}-{n}"
        n += 1
    return folder



def previous_sidecar(project, timeline, settings: dict | None) -> Path | None:
    """The settings file of the timeline's last score, whose music a re-score keeps.

    The one the score clip (or the timeline) names in its stored settings, else the newest one
    among the timeline's kept run folders; None when there is none (a first score).
    """
    named = (settings or {}).get("sidecar")
    if isinstance(named, str) and named and Path(named).is_file():
        return Path(named)
    base = _timeline_folder(project, timeline)
    try:
        found = [f for f in base.glob("*/*.emsync.json") if f.is_file()]
    except OSError:
        return None
    return max(found, key=lambda f: (f.stat().st_mtime, f.parent.name)) if found else None
