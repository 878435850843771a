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
        "DaVinci Resolve is not reachable. Run EMSYNC Score from Workspace > Scripts inside Resolve "
        "(install it with emsync-resolve-install), or enable external scripting in Preferences > General"
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


def place_score(project, timeline, mpi, frames: int) -> tuple[int, object]:
    """Put ``mpi`` at the start of the "EMSYNC Score" audio track; returns (track index, item)."""
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
    clip = {
        "mediaPoolItem": mpi,
        "startFrame": 0,
        "endFrame": max(0, frames - 1),  # inclusive
        "mediaType": 2,  # audio only
        "trackIndex": index,
        "recordFrame": int(timeline.GetStartFrame()),
    }
    placed = project.GetMediaPool().AppendToTimeline([clip]) or []
    if not placed:
        raise BridgeError(
            f"Resolve did not place the score on A{index} '{TRACK_NAME}'. Drag it from the media pool bin "
            f"'{BIN_NAME}' onto the track at the timeline's start"
        )
    return index, placed[0]


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
