"""A fake of DaVinci Resolve's scripting API, for testing ``resolve_bridge`` without Resolve.

It follows the API as documented in Resolve's ``Developer/Scripting/README.txt`` (the 2025
edition, Resolve 19/20): the classes Resolve, ProjectManager, Project, MediaPool, Folder,
MediaPoolItem, Timeline and TimelineItem have only documented methods (a call to anything else
is an AttributeError), with the documented signatures and return conventions:

* setters and actions return ``True``/``False``; lookups return ``None`` (objects) or ``""``
  (strings) when nothing matches, lists are returned empty rather than ``None``;
* track indices are 1-based, ``1 <= index <= GetTrackCount(trackType)``; an out-of-range index
  is refused (``False`` / ``[]``);
* positions are frames: ``Timeline.GetStartFrame()`` is the first frame (86400 for a
  01:00:00:00 start at 24 fps), ``TimelineItem.GetStart()/GetEnd()`` are timeline frames with
  ``GetEnd() - GetStart() == GetDuration()``;
* ``MediaPool.AppendToTimeline([{clipInfo}])`` works on the project's *current* timeline,
  takes "mediaPoolItem", "startFrame", "endFrame" (inclusive), "mediaType" (1 video, 2 audio),
  "trackIndex" and "recordFrame" (a timeline frame), and overwrites what it lands on;
* ``Timeline.Export(fileName, exportType, exportSubtype)`` writes a real file for
  ``EXPORT_OTIO`` (OTIO JSON) and ``EXPORT_FCP_7_XML`` (through the ``otio-fcp-adapter``) holding
  the timeline's video and audio tracks, name, rate and start timecode. ``EXPORT_OTIO`` exists
  only when the fake is built with ``otio=True`` (older Resolve versions lack it).

What it does not model: the Fusion object and its UIManager (``Fusion()`` returns ``None``),
rendering, markers, grades, transitions/effects, linked audio of video clips, compound and
multicam clips, ripple deletes, partial import errors, media relinking, Resolve's handling of
a file imported twice (the fake refuses the second import into the same bin), and the
version-specific quirks of the real application (e.g. setters that return True but do nothing).
"""
from __future__ import annotations

import itertools
import os
import wave
from dataclasses import dataclass, field
from pathlib import Path

import opentimelineio as otio

_ids = itertools.count(1)

AUDIO_SUFFIXES = {".wav", ".aif", ".aiff", ".mp3", ".flac"}
VIDEO_SUFFIXES = {".mov", ".mp4", ".mxf", ".mkv", ".avi"}
AUDIO_SUBTYPES = {"mono", "stereo", "lrc", "lcr", "lrcs", "lcrs", "quad", "5.0", "5.0film", "5.1", "5.1film",
                  "7.0", "7.0film", "7.1", "7.1film"} | {f"adaptive{i}" for i in range(1, 37)}


class FakeResolve:
    """``resolve``: the root object (``DaVinciResolveScript.scriptapp("Resolve")``)."""

    EXPORT_AAF = 1
    EXPORT_DRT = 2
    EXPORT_EDL = 3
    EXPORT_FCP_7_XML = 4
    EXPORT_FCPXML_1_8 = 5
    EXPORT_FCPXML_1_9 = 6
    EXPORT_FCPXML_1_10 = 7
    EXPORT_TEXT_CSV = 8
    EXPORT_TEXT_TAB = 9
    EXPORT_NONE = 100
    EXPORT_AAF_NEW = 101
    EXPORT_AAF_EXISTING = 102
    EXPORT_CDL = 103
    EXPORT_SDL = 104
    EXPORT_MISSING_CLIPS = 105

    def __init__(self, project: FakeProject | None = None, *, otio: bool = True, version=(19, 1, 4, 11, "")):
        if otio:
            self.EXPORT_OTIO = 10  # instance attribute: absent on "older" fakes
        self._version = list(version)
        self._manager = FakeProjectManager(project)
        if project is not None:
            project._resolve = self

    def GetProjectManager(self):
        return self._manager

    def GetProductName(self):
        return "DaVinci Resolve"

    def GetVersion(self):
        return list(self._version)

    def GetVersionString(self):
        major, minor, patch, build, suffix = self._version
        return f"{major}.{minor}.{patch}{suffix}.{build}"

    def Fusion(self):
        return None  # not modelled


class FakeProjectManager:
    def __init__(self, project):
        self._project = project

    def GetCurrentProject(self):
        return self._project

    def SaveProject(self):
        return self._project is not None


class FakeProject:
    def __init__(self, name: str = "Project", rate: float = 24.0):
        self._name = name
        self._rate = rate
        self._id = f"project-{next(_ids)}"
        self._pool = FakeMediaPool(self)
        self._timelines: list[FakeTimeline] = []
        self._current: FakeTimeline | None = None
        self._resolve = None

    # documented
    def GetName(self):
        return self._name

    def GetUniqueId(self):
        return self._id

    def GetMediaPool(self):
        return self._pool

    def GetTimelineCount(self):
        return len(self._timelines)

    def GetTimelineByIndex(self, idx):
        return self._timelines[idx - 1] if 1 <= idx <= len(self._timelines) else None

    def GetCurrentTimeline(self):
        return self._current

    def SetCurrentTimeline(self, timeline):
        if timeline in self._timelines:
            self._current = timeline
            return True
        return False

    def GetSetting(self, settingName=None):
        settings = {"timelineFrameRate": _rate_text(self._rate), "timelinePlaybackFrameRate": _rate_text(self._rate)}
        return dict(settings) if settingName is None else settings.get(settingName, "")

    # test helper (not API)
    def add_timeline(self, timeline: FakeTimeline, current: bool = True) -> FakeTimeline:
        timeline._project = self
        self._timelines.append(timeline)
        if current or self._current is None:
            self._current = timeline
        return timeline


class FakeFolder:
    def __init__(self, name: str):
        self._name = name
        self._id = f"folder-{next(_ids)}"
        self._clips: list[FakeMediaPoolItem] = []
        self._subfolders: list[FakeFolder] = []

    def GetName(self):
        return self._name

    def GetUniqueId(self):
        return self._id

    def GetClipList(self):
        return list(self._clips)

    def GetSubFolderList(self):
        return list(self._subfolders)

    def GetIsFolderStale(self):
        return False


class FakeMediaPoolItem:
    def __init__(self, path: Path, rate: float, *, timeline: bool = False):
        self._path = Path(path)
        self._id = f"clip-{next(_ids)}"
        self._metadata: dict[str, str] = {}
        self._third_party: dict[str, str] = {}
        if timeline:  # the media pool item of a timeline (Timeline.GetMediaPoolItem)
            self._has_video = self._has_audio = False
            self._frames = None
            self._properties = {"Clip Name": self._path.name, "Type": "Timeline"}
            return
        suffix = self._path.suffix.lower()
        self._has_video = suffix in VIDEO_SUFFIXES
        self._has_audio = suffix in AUDIO_SUFFIXES or self._has_video
        self._frames = None
        if suffix == ".wav":
            with wave.open(str(self._path), "rb") as w:
                self._frames = int(round(w.getnframes() / w.getframerate() * rate))
        self._properties = {
            "Clip Name": self._path.name, "File Name": self._path.name, "File Path": str(self._path),
            "Type": "Video + Audio" if self._has_video else "Audio", "FPS": _rate_text(rate),
            "Frames": "" if self._frames is None else str(self._frames),
        }

    def GetName(self):
        return self._path.name

    def GetMediaId(self):
        return self._id

    def GetUniqueId(self):
        return self._id

    def GetMetadata(self, metadataType=None):
        return dict(self._metadata) if metadataType is None else self._metadata.get(metadataType, "")

    def SetMetadata(self, metadataType, metadataValue=None):
        if isinstance(metadataType, dict):
            if not all(isinstance(v, str) for v in metadataType.values()):
                return False
            self._metadata.update(metadataType)
            return True
        if not isinstance(metadataValue, str):
            return False
        self._metadata[metadataType] = metadataValue
        return True

    def GetThirdPartyMetadata(self, metadataType=None):
        return dict(self._third_party) if metadataType is None else self._third_party.get(metadataType, "")

    def SetThirdPartyMetadata(self, metadataType, metadataValue=None):
        if isinstance(metadataType, dict):
            if not all(isinstance(v, str) for v in metadataType.values()):
                return False
            self._third_party.update(metadataType)
            return True
        if not isinstance(metadataValue, str):
            return False
        self._third_party[metadataType] = metadataValue
        return True

    def GetClipProperty(self, propertyName=None):
        return dict(self._properties) if propertyName is None else self._properties.get(propertyName, "")

    def SetClipProperty(self, propertyName, propertyValue):
        if propertyName in ("File Path", "Type", "FPS", "Frames"):
            return False  # read-only in Resolve
        self._properties[propertyName] = str(propertyValue)
        return True


class FakeMediaPool:
    def __init__(self, project: FakeProject):
        self._project = project
        self._root = FakeFolder("Master")
        self._current = self._root

    def GetRootFolder(self):
        return self._root

    def AddSubFolder(self, folder, name):
        if not isinstance(folder, FakeFolder) or not isinstance(name, str) or not name:
            return None
        sub = FakeFolder(name)
        folder._subfolders.append(sub)
        return sub

    def GetCurrentFolder(self):
        return self._current

    def SetCurrentFolder(self, folder):
        if isinstance(folder, FakeFolder):
            self._current = folder
            return True
        return False

    def ImportMedia(self, items):
        """``ImportMedia([paths])`` or ``ImportMedia([{"FilePath": ...}])``: the created items."""
        created = []
        for entry in items if isinstance(items, list) else []:
            path = entry.get("FilePath") if isinstance(entry, dict) else entry
            if not isinstance(path, str) or not os.path.isfile(path):
                continue
            if Path(path).suffix.lower() not in AUDIO_SUFFIXES | VIDEO_SUFFIXES:
                continue  # e.g. .mid: not media to Resolve
            if any(c.GetClipProperty("File Path") == path for c in self._current._clips):
                continue
            clip = FakeMediaPoolItem(Path(path), self._project._rate)
            self._current._clips.append(clip)
            created.append(clip)
        return created

    def DeleteClips(self, clips):
        found = False
        for folder in _walk(self._root):
            for clip in list(folder._clips):
                if clip in clips:
                    folder._clips.remove(clip)
                    found = True
        return found

    def AppendToTimeline(self, *clips):
        """Append media pool items (or clipInfo dicts) to the current timeline; [] on failure."""
        timeline = self._project.GetCurrentTimeline()
        if timeline is None:
            return []
        if len(clips) == 1 and isinstance(clips[0], list):
            clips = tuple(clips[0])
        infos = [c if isinstance(c, dict) else {"mediaPoolItem": c} for c in clips]
        planned = []
        for info in infos:
            plan = timeline._plan(info)
            if plan is None:
                return []
            planned.append(plan)
        return [item for plan in planned for item in timeline._place(*plan)]

    def GetUniqueId(self):
        return f"pool-of-{self._project._id}"


@dataclass
class _Track:
    name: str
    subtype: str = ""
    enabled: bool = True
    locked: bool = False
    items: list = field(default_factory=list)


class FakeTimeline:
    """A timeline. Build it with :meth:`add_clip` (test helper), then use the documented methods."""

    def __init__(self, name: str = "Timeline 1", rate: float = 24.0, start_frame: int = 86400,
                 video_tracks: int = 1, audio_tracks: int = 1, end_frame_inclusive: bool = True,
                 marks: dict | None = None, drop_frame: bool = False):
        self._inclusive = end_frame_inclusive  # the README does not say: tests try both
        self._marks = dict(marks or {})
        self._drop = drop_frame
        self._name = name
        self._rate = rate
        self._start = start_frame
        self._id = f"timeline-{next(_ids)}"
        self._project: FakeProject | None = None
        self._tracks = {
            "video": [_Track(f"Video {i}") for i in range(1, video_tracks + 1)],
            "audio": [_Track(f"Audio {i}", "stereo") for i in range(1, audio_tracks + 1)],
            "subtitle": [],
        }
        self._mpi = FakeMediaPoolItem(Path(name), rate, timeline=True)

    # -- test helpers (not API) ---------------------------------------------------------------
    def add_clip(self, media: Path, record: int, frames: int, source_start: int = 0, track: int = 1,
                 kind: str = "video") -> FakeTimelineItem:
        """Put ``frames`` frames of ``media`` at timeline frame ``record`` on track ``kind`` ``track``."""
        pool = self._project.GetMediaPool() if self._project else None
        mpi = None
        if pool is not None:
            mpi = next((c for c in _walk_clips(pool._root) if c.GetClipProperty("File Path") == str(media)), None)
            if mpi is None:
                mpi = FakeMediaPoolItem(Path(media), self._rate)
                pool._root._clips.append(mpi)
        item = FakeTimelineItem(self, kind, mpi, Path(media).name, record, frames, source_start)
        self._tracks[kind][track - 1].items.append(item)
        return item

    def snapshot(self) -> dict:
        """Everything visible on the timeline, for before/after comparisons."""
        return {
            kind: [(t.name, t.subtype, t.locked, [(i.GetName(), i._start, i._frames, i._source_start) for i in t.items])
                   for t in tracks]
            for kind, tracks in self._tracks.items()
        }

    # -- documented API ----------------------------------------------------------------------
    def GetName(self):
        return self._name

    def SetName(self, timelineName):
        if not isinstance(timelineName, str) or not timelineName:
            return False
        self._name = timelineName
        return True

    def GetUniqueId(self):
        return self._id

    def GetStartFrame(self):
        return self._start

    def GetEndFrame(self):
        return self._start + self._length()

    def GetStartTimecode(self):
        fps = int(round(self._rate))
        f = self._start
        return f"{f // (3600 * fps):02d}:{f // (60 * fps) % 60:02d}:{f // fps % 60:02d}:{f % fps:02d}"

    def GetSetting(self, settingName=None):
        settings = {"timelineFrameRate": _rate_text(self._rate), "timelineDropFrameTimecode": "1" if self._drop else "0"}
        return dict(settings) if settingName is None else settings.get(settingName, "")

    def GetMarkInOut(self):
        """Resolve 19.1+: {"video": {"in", "out"}, "audio": {...}}, frames from the start; keys omitted if unset."""
        return {k: dict(v) for k, v in self._marks.items()}

    def GetTrackCount(self, trackType):
        return len(self._tracks.get(trackType, []))

    def AddTrack(self, trackType, subTrackType=None):
        if trackType not in self._tracks:
            return False
        options = subTrackType if isinstance(subTrackType, dict) else {"audioType": subTrackType}
        subtype = ""
        if trackType == "audio":
            subtype = options.get("audioType") or "mono"
            if subtype not in AUDIO_SUBTYPES:
                return False
        tracks = self._tracks[trackType]
        name = f"{trackType.capitalize()} {len(tracks) + 1}"
        index = options.get("index")
        track = _Track(name, subtype)
        if isinstance(index, int) and 1 <= index <= len(tracks):
            tracks.insert(index - 1, track)
        else:
            tracks.append(track)
        return True

    def DeleteTrack(self, trackType, trackIndex):
        if not self._valid(trackType, trackIndex):
            return False
        del self._tracks[trackType][trackIndex - 1]
        return True

    def GetTrackSubType(self, trackType, trackIndex):
        return self._tracks[trackType][trackIndex - 1].subtype if self._valid(trackType, trackIndex) else ""

    def GetTrackName(self, trackType, trackIndex):
        return self._tracks[trackType][trackIndex - 1].name if self._valid(trackType, trackIndex) else ""

    def SetTrackName(self, trackType, trackIndex, name):
        if not self._valid(trackType, trackIndex) or not isinstance(name, str):
            return False
        self._tracks[trackType][trackIndex - 1].name = name
        return True

    def SetTrackEnable(self, trackType, trackIndex, enabled):
        if not self._valid(trackType, trackIndex):
            return False
        self._tracks[trackType][trackIndex - 1].enabled = bool(enabled)
        return True

    def GetIsTrackEnabled(self, trackType, trackIndex):
        return self._valid(trackType, trackIndex) and self._tracks[trackType][trackIndex - 1].enabled

    def SetTrackLock(self, trackType, trackIndex, locked):
        if not self._valid(trackType, trackIndex):
            return False
        self._tracks[trackType][trackIndex - 1].locked = bool(locked)
        return True

    def GetIsTrackLocked(self, trackType, trackIndex):
        return self._valid(trackType, trackIndex) and self._tracks[trackType][trackIndex - 1].locked

    def GetItemListInTrack(self, trackType, index):
        if not self._valid(trackType, index):
            return []
        return sorted(self._tracks[trackType][index - 1].items, key=lambda i: i._start)

    def DeleteClips(self, timelineItems, ripple=False):
        if not timelineItems or ripple:  # ripple deletes are not modelled
            return False
        owners = []
        for item in timelineItems:
            track = next((t for t in self._all_tracks() if item in t.items), None)
            if track is None or track.locked:
                return False
            owners.append((track, item))
        for track, item in owners:
            track.items.remove(item)
        return True

    def GetMediaPoolItem(self):
        return self._mpi

    def Export(self, fileName, exportType, exportSubtype=None):
        """Write the timeline as OTIO or FCP 7 XML; other types are not modelled (False)."""
        resolve = self._project._resolve if self._project else None
        folder = os.path.dirname(fileName) or "."
        if not os.path.isdir(folder):
            return False
        if exportType in (FakeResolve.EXPORT_AAF, FakeResolve.EXPORT_EDL) and exportSubtype is None:
            return False  # required for AAF and EDL
        otio_kind = getattr(resolve, "EXPORT_OTIO", None) if resolve is not None else None
        if otio_kind is not None and exportType == otio_kind:
            adapter = "otio_json"
        elif exportType == FakeResolve.EXPORT_FCP_7_XML:
            adapter = "fcp_xml"
        else:
            return False
        otio.adapters.write_to_file(self._to_otio(), fileName, adapter_name=adapter)
        return True

    # -- internals -----------------------------------------------------------------------------
    def _valid(self, trackType, index) -> bool:
        return trackType in self._tracks and isinstance(index, int) and 1 <= index <= len(self._tracks[trackType])

    def _all_tracks(self):
        return [t for tracks in self._tracks.values() for t in tracks]

    def _length(self) -> int:
        ends = [i._start + i._frames for t in self._all_tracks() for i in t.items]
        return max(ends, default=self._start) - self._start

    def _plan(self, info: dict):
        mpi = info.get("mediaPoolItem")
        if not isinstance(mpi, FakeMediaPoolItem) or mpi._frames is None and not mpi._has_video:
            return None
        media_type = info.get("mediaType")
        if media_type not in (None, 1, 2):
            return None
        kind = "audio" if media_type == 2 or not mpi._has_video else "video"
        if kind == "video" and not mpi._has_video or kind == "audio" and not mpi._has_audio:
            return None
        index = info.get("trackIndex", 1)
        if not self._valid(kind, index) or self._tracks[kind][index - 1].locked:
            return None
        start = info.get("startFrame", 0)
        last = info.get("endFrame", (mpi._frames or 1) - 1)
        if not isinstance(start, (int, float)) or not isinstance(last, (int, float)) or last < start or start < 0:
            return None
        limit = mpi._frames - 1 if self._inclusive else mpi._frames
        if mpi._frames is not None and last > limit:
            return None  # beyond the end of the media
        track = self._tracks[kind][index - 1]
        record = info.get("recordFrame")
        if record is None:
            record = max((i._start + i._frames for i in track.items), default=self._start)
        return kind, index, mpi, int(record), int(last - start + (1 if self._inclusive else 0)), int(start)

    def _place(self, kind, index, mpi, record, frames, source_start):
        track = self._tracks[kind][index - 1]
        end = record + frames
        kept = []
        for item in track.items:  # overwrite: cut what the new clip lands on
            a, b = item._start, item._start + item._frames
            if b <= record or a >= end:
                kept.append(item)
                continue
            if a < record:
                kept.append(FakeTimelineItem(self, kind, item._mpi, item._name, a, record - a, item._source_start))
            if b > end:
                kept.append(FakeTimelineItem(self, kind, item._mpi, item._name, end, b - end,
                                             item._source_start + (end - a)))
        new = FakeTimelineItem(self, kind, mpi, mpi.GetName(), record, frames, source_start)
        track.items = kept + [new]
        return [new]

    def _to_otio(self) -> otio.schema.Timeline:
        rate = self._rate
        tl = otio.schema.Timeline(name=self._name, global_start_time=otio.opentime.RationalTime(self._start, rate))
        for kind, otio_kind in (("video", otio.schema.TrackKind.Video), ("audio", otio.schema.TrackKind.Audio)):
            for track in self._tracks[kind]:
                out = otio.schema.Track(name=track.name, kind=otio_kind)
                out.enabled = track.enabled
                cursor = self._start
                for item in sorted(track.items, key=lambda i: i._start):
                    if item._start > cursor:
                        out.append(otio.schema.Gap(source_range=_range(0, item._start - cursor, rate)))
                    path = item._mpi.GetClipProperty("File Path") if item._mpi else ""
                    ref = None
                    if path:  # the media's extent: the fake knows only what the timeline uses of it
                        ref = otio.schema.ExternalReference(
                            target_url=otio.url_utils.url_from_filepath(path),
                            available_range=_range(0, item._source_start + item._frames, rate),
                        )
                    out.append(otio.schema.Clip(name=item._name, media_reference=ref,
                                                source_range=_range(item._source_start, item._frames, rate)))
                    cursor = item._start + item._frames
                tl.tracks.append(out)
        return tl


class FakeTimelineItem:
    def __init__(self, timeline, kind, mpi, name, start, frames, source_start):
        self._timeline = timeline
        self._kind = kind
        self._mpi = mpi
        self._name = name
        self._start = int(start)
        self._frames = int(frames)
        self._source_start = int(source_start)
        self._id = f"item-{next(_ids)}"

    def GetName(self):
        return self._name

    def GetUniqueId(self):
        return self._id

    def GetStart(self, subframe_precision=False):
        return float(self._start) if subframe_precision else self._start

    def GetEnd(self, subframe_precision=False):
        end = self._start + self._frames
        return float(end) if subframe_precision else end

    def GetDuration(self, subframe_precision=False):
        return float(self._frames) if subframe_precision else self._frames

    def GetLeftOffset(self, subframe_precision=False):
        return float(self._source_start) if subframe_precision else self._source_start

    def GetSourceStartFrame(self):
        return self._source_start

    def GetSourceEndFrame(self):
        return self._source_start + self._frames - 1

    def GetMediaPoolItem(self):
        return self._mpi

    def GetTrackTypeAndIndex(self):
        for kind, tracks in self._timeline._tracks.items():
            for i, track in enumerate(tracks, start=1):
                if self in track.items:
                    return [kind, i]
        return []


def _range(start, frames, rate):
    return otio.opentime.TimeRange(otio.opentime.RationalTime(start, rate), otio.opentime.RationalTime(frames, rate))


def _rate_text(rate: float) -> str:
    return str(int(rate)) if float(rate).is_integer() else f"{rate:.3f}"


def _walk(folder: FakeFolder):
    yield folder
    for sub in folder._subfolders:
        yield from _walk(sub)


def _walk_clips(folder: FakeFolder):
    for f in _walk(folder):
        yield from f._clips


# ---------------------------------------------------------------------------------------------
# Fusion's UIManager, strict
#
# What Resolve documents of the UIManager is the "UIManager" part of its
# ``Developer/Workflow Integrations/README.txt`` (Resolve 18-20): the UIDispatcher's AddWindow,
# RunLoop and ExitLoop, the UIManager's FindWindow/FindWindows/QueueEvent, the common attributes
# (Enabled, Hidden, Visible, Font, WindowTitle, BackgroundColor, Geometry, ToolTip, StatusTip,
# StyleSheet, WindowOpacity, MinimumSize, MaximumSize, FixedSize), each element's attributes,
# functions and events, HGroup/VGroup/HGap/VGap layout with Weight, and the Events attribute.
# The fake accepts exactly those, so a typo in a widget type, a property, a method or an event
# fails a test. The README says it "does not list all available elements": the one element used
# beyond it is ``ui.Timer({"ID", "Interval", "SingleShot"})`` with Start()/Stop() and a Timeout
# event handled on the dispatcher (``disp.On[ID].Timeout``), as Resolve scripts in the wild use it;
# there is no progress-bar element, so a disabled Slider shows progress.

UI_COMMON = frozenset({"ID", "Weight", "Events", "Enabled", "Hidden", "Visible", "Font", "WindowTitle",
                       "BackgroundColor", "Geometry", "ToolTip", "StatusTip", "StyleSheet", "WindowOpacity",
                       "MinimumSize", "MaximumSize", "FixedSize"})
UI_ELEMENTS = {
    "Label": {"Text", "Alignment", "FrameStyle", "WordWrap", "Indent", "Margin"},
    "Button": {"Text", "Down", "Checkable", "Checked", "Icon", "IconSize", "Flat"},
    "CheckBox": {"Text", "Down", "Checkable", "Checked", "Tristate", "CheckState"},
    "ComboBox": {"ItemText", "Editable", "CurrentIndex", "CurrentText", "Count"},
    "SpinBox": {"Value", "Minimum", "Maximum", "SingleStep", "Prefix", "Suffix", "Alignment", "ReadOnly", "Wrapping"},
    "Slider": {"Value", "Minimum", "Maximum", "SingleStep", "PageStep", "Orientation", "Tracking", "SliderPosition"},
    "LineEdit": {"Text", "PlaceholderText", "Font", "MaxLength", "ReadOnly", "Modified", "ClearButtonEnabled"},
    "TextEdit": {"Text", "PlaceholderText", "HTML", "Font", "Alignment", "ReadOnly", "TextColor",
                 "TextBackgroundColor", "TabStopWidth", "Lexer", "LexerColors"},
    "ColorPicker": {"Text", "Color", "Tracking", "DoAlpha"},
    "Icon": {"File"},
    "TabBar": {"CurrentIndex", "TabsClosable", "Expanding", "AutoHide", "Movable", "DrawBase", "UsesScrollButtons",
               "DocumentMode", "ChangeCurrentOnDrag"},
    "Tree": {"ColumnCount", "SortingEnabled", "HeaderHidden", "RootIsDecorated", "WordWrap", "SelectionMode",
             "AlternatingRowColors", "UniformRowHeights", "Indentation"},
    "VGroup": set(), "HGroup": set(), "VGap": set(), "HGap": set(),
    "Timer": {"Interval", "SingleShot"},  # beyond the README (see above)
}
UI_FONT = frozenset({"Family", "StyleName", "PointSize", "PixelSize", "Bold", "Italic", "Underline", "Overline",
                     "StrikeOut", "Kerning", "Weight", "Stretch", "MonoSpaced"})
UI_METHODS = {
    "Button": {"Click", "Toggle", "AnimateClick"}, "CheckBox": {"Click", "Toggle", "AnimateClick"},
    "ComboBox": {"AddItem", "AddItems", "Clear", "Count"}, "TextEdit": {"Append", "Clear", "InsertPlainText"},
    "LineEdit": {"Clear", "SelectAll"}, "Slider": {"SetRange"}, "SpinBox": {"SetRange"}, "Timer": {"Start", "Stop"},
}
UI_ELEMENT_METHODS = frozenset({"Show", "Hide", "Raise", "Lower", "Close", "Find", "GetChildren", "Update", "Repaint",
                                "GetItems", "RecalcLayout"})
UI_EVENTS = {
    "Button": {"Clicked", "Toggled", "Pressed", "Released"}, "CheckBox": {"Clicked", "Toggled", "Pressed", "Released"},
    "ComboBox": {"CurrentIndexChanged", "CurrentTextChanged", "Activated"}, "SpinBox": {"ValueChanged", "EditingFinished"},
    "Slider": {"ValueChanged", "SliderMoved"}, "LineEdit": {"TextChanged", "TextEdited", "EditingFinished", "ReturnPressed"},
    "TextEdit": {"TextChanged"}, "Window": {"Close", "Show", "Hide", "Resize", "KeyPress"}, "Timer": {"Timeout"},
}


class FakeElement:
    """A UIManager element: only its documented attributes and functions exist."""

    def __init__(self, kind: str, props: dict, children: list):
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_props", {})
        object.__setattr__(self, "_children", list(children))
        object.__setattr__(self, "_items", [])
        object.__setattr__(self, "_active", False)
        for name, value in props.items():
            setattr(self, name, value)

    def _allowed(self) -> set:
        return set(UI_ELEMENTS[self._kind]) | (set(UI_COMMON) if self._kind not in ("Timer",) else {"ID"})

    def __setattr__(self, name, value):
        if name not in self._allowed():
            raise AttributeError(f"UIManager {self._kind} has no attribute {name!r}")
        self._props[name] = value

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in UI_METHODS.get(self._kind, set()) | UI_ELEMENT_METHODS:
            return getattr(self, "_m_" + name, lambda *a: None)
        if name not in self._allowed():
            raise AttributeError(f"UIManager {self._kind} has no attribute {name!r}")
        if name == "CurrentText":
            index = self._props.get("CurrentIndex", 0)
            return self._items[index] if 0 <= index < len(self._items) else ""
        return self._props.get(name, {"Enabled": True, "Hidden": False, "Visible": True}.get(name, ""))

    def _m_AddItems(self, items):  # noqa: N802 (UIManager's names)
        self._items.extend(items)

    def _m_AddItem(self, item):  # noqa: N802
        self._items.append(item)

    def _m_Start(self):  # noqa: N802
        object.__setattr__(self, "_active", True)

    def _m_Stop(self):  # noqa: N802
        object.__setattr__(self, "_active", False)

    def _m_Append(self, text):  # noqa: N802
        self._props["Text"] = (self._props.get("Text") or "") + ("\n" if self._props.get("Text") else "") + text


class FakeFont:
    def __init__(self, props: dict):
        bad = set(props) - UI_FONT
        if bad:
            raise AttributeError(f"UIManager Font has no attribute {sorted(bad)[0]!r}")
        self.props = dict(props)


class FakeUIManager:
    """``fusion.UIManager``: makes the documented elements; FindWindow finds windows by ID."""

    def __init__(self):
        self.windows: list[FakeWindow] = []
        self.timers: list[FakeElement] = []

    def __getattr__(self, kind):
        if kind == "Font":
            return FakeFont
        if kind not in UI_ELEMENTS:
            raise AttributeError(f"UIManager has no element {kind!r}")

        def make(*args):
            props = next((a for a in args if isinstance(a, dict)), {})
            children = next((a for a in args if isinstance(a, list)), [])
            element = FakeElement(kind, props, children)
            if kind == "Timer":
                self.timers.append(element)
            return element
        return make

    def FindWindow(self, wid):  # noqa: N802
        return next((w for w in self.windows if wid == w.ID), None)


class _Handlers:
    """``win.On.<ID>``: only the events the element has can be handled."""

    def __init__(self, events: set, label: str):
        object.__setattr__(self, "_events", events)
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_set", {})

    def __setattr__(self, name, fn):
        if name not in self._events:
            raise AttributeError(f"{self._label} has no event {name!r}")
        self._set[name] = fn

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._set:
            raise AttributeError(f"{self._label}: no handler for {name!r}")
        return self._set[name]


class _On:
    def __init__(self, lookup):
        object.__setattr__(self, "_lookup", lookup)
        object.__setattr__(self, "_made", {})

    def __getattr__(self, wid):
        if wid.startswith("_"):
            raise AttributeError(wid)
        if wid not in self._made:
            kind = self._lookup(wid)
            if kind is None:
                raise AttributeError(f"no element with ID {wid!r}")
            self._made[wid] = _Handlers(UI_EVENTS.get(kind, set()), f"{kind} {wid!r}")
        return self._made[wid]

    __getitem__ = __getattr__


class FakeWindow:
    """A window of ``disp.AddWindow``; ``click(ID)`` is the editor clicking a button."""

    def __init__(self, props: dict, layout: FakeElement):
        bad = set(props) - UI_COMMON
        if bad:
            raise AttributeError(f"UIManager window has no attribute {sorted(bad)[0]!r}")
        self.ID, self.props, self.shown, self.items = props.get("ID"), dict(props), False, {}
        stack = [layout]
        while stack:
            w = stack.pop()
            if w._props.get("ID"):
                self.items[w._props["ID"]] = w
            stack.extend(w._children)
        self.On = _On(lambda wid: "Window" if wid == self.ID else (self.items[wid]._kind if wid in self.items else None))

    def GetItems(self):  # noqa: N802
        return dict(self.items)

    def Find(self, wid):  # noqa: N802
        return self.items.get(wid)

    def Show(self):  # noqa: N802
        self.shown = True

    def Hide(self):  # noqa: N802
        self.shown = False

    def Raise(self):  # noqa: N802
        self.raised = True

    def click(self, wid):
        assert self.items[wid].Enabled, f"{wid} is disabled"
        getattr(self.On, wid).Clicked({"who": wid})

    def close(self):
        getattr(self.On, self.ID).Close({"who": self.ID})


class FakeDispatcher:
    """``bmd.UIDispatcher(ui)``. ``users[window ID]``: what the editor does each time a loop
    starts on that window (a function or a list of them, taken in turn); then timers fire until
    ExitLoop (a loop with nothing left to wait for is an error: Resolve would hang)."""

    def __init__(self, manager: FakeUIManager, users: dict):
        self.manager, self.users, self.running, self.loops = manager, dict(users), False, 0
        self.On = _On(lambda wid: "Timer" if any(t._props.get("ID") == wid for t in manager.timers) else None)

    def AddWindow(self, props, layout):  # noqa: N802
        win = FakeWindow(props, layout)
        self.manager.windows.append(win)
        return win

    def RunLoop(self):  # noqa: N802
        self.running = True
        self.loops += 1
        win = next((w for w in reversed(self.manager.windows) if w.shown), None)
        assert win is not None, "RunLoop without a shown window"
        todo = self.users.get(win.ID)
        if isinstance(todo, list):
            user = todo.pop(0) if todo else None
        else:
            user, self.users[win.ID] = todo, []
        if user is not None:
            user(win, self)
        self.pump(lambda: not self.running)

    def pump(self, until, limit: float = 60.0):
        """Fire the active timers until ``until()`` holds."""
        import time

        deadline = time.monotonic() + limit
        while not until():
            active = [t for t in self.manager.timers if t._active]
            if not active:
                raise AssertionError("the loop would wait forever: no user action left and no timer running")
            if time.monotonic() > deadline:
                raise AssertionError("timed out pumping the UIManager timers")
            for t in active:
                handler = getattr(self.On, t._props["ID"])
                handler.Timeout({"who": t._props["ID"]})
                if t._props.get("SingleShot"):
                    t._active = False
            time.sleep(0.002)

    def ExitLoop(self, code=0):  # noqa: N802
        self.running = False


class FakeFusion:
    """``fusion`` with its UIManager; ``bmd`` gives the dispatcher (see :func:`fake_fusion`)."""

    def __init__(self):
        self.UIManager = FakeUIManager()


def fake_fusion(users: dict):
    """(fusion, bmd, dispatcher) for a script run whose editor does ``users`` (see FakeDispatcher)."""
    fusion = FakeFusion()
    disp = FakeDispatcher(fusion.UIManager, users)
    bmd = type("Bmd", (), {"UIDispatcher": staticmethod(lambda ui: disp)})()
    return fusion, bmd, disp
