"""What a re-score keeps: scenes are matched to the previous score by their picture, not their place.

A scene's identity is the picture that defines it (source media and source range, or the length
of a black gap). A scene of the new timeline whose identity and mood match a scene of the
previous score keeps that scene's notes, moved to where it now sits; every other scene gets new
music. ``plan`` decides, ``kept_notes`` hands the generator the music to keep, and the sidecar
records each scene's identity and notes so that the next run can do the same.
"""
from __future__ import annotations

import bisect
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pretty_midi

from .errors import OptionsError, TimelineError
from .mood import SceneMood
from .timeline import Scene, Timeline

logger = logging.getLogger(__name__)

KEPT, MOVED, REGENERATED, NEW = "kept", "moved", "regenerated", "new"
MOOD_TOLERANCE = 0.05  # valence/arousal differences below this are the same mood (analysis noise)


@dataclass(frozen=True)
class Identity:
    """The picture that defines a scene: media file name and source range in seconds, or, for
    black (no media), only the scene's length."""

    media: str
    source_start: float | None
    source_end: float | None
    duration: float

    @classmethod
    def of(cls, scene: Scene) -> Identity:
        media = os.path.basename(scene.media.replace("\\", "/")) if scene.media else ""
        return cls(media, scene.source_start, scene.source_end, scene.end - scene.start)

    def same(self, other: Identity, tolerance: float) -> bool:
        """The same picture, to within ``tolerance`` seconds (half a frame)."""
        if self.media != other.media:
            return False
        if self.source_start is None or other.source_start is None:
            return self.source_start == other.source_start and abs(self.duration - other.duration) <= tolerance
        assert self.source_end is not None and other.source_end is not None
        return abs(self.source_start - other.source_start) <= tolerance and \
            abs(self.source_end - other.source_end) <= tolerance

    def to_json(self) -> dict:
        return {"media": self.media, "source_start": self.source_start, "source_end": self.source_end,
                "duration": self.duration}

    @classmethod
    def from_json(cls, data: object) -> Identity:
        if not isinstance(data, dict) or not isinstance(data.get("media"), str):
            raise ValueError("identity is not an object with a media name")
        start, end = data.get("source_start"), data.get("source_end")
        return cls(data["media"], _optional_number(start), _optional_number(end), _number(data.get("duration")))


@dataclass(frozen=True)
class StoredNote:
    """One note of a stored score, in seconds from the start of the timeline it was made for."""

    instrument: int  # index into the stored score's instruments
    pitch: int
    velocity: int
    start: float
    end: float


@dataclass(frozen=True)
class PreviousScene:
    index: int
    start: float
    end: float
    identity: Identity
    valence: float
    arousal: float
    source: str
    notes: tuple[StoredNote, ...]


@dataclass(frozen=True)
class Previous:
    """A previous score as its sidecar recorded it."""

    path: Path
    engine: str
    model_sha256: str | None
    instruments: tuple[tuple[int, bool, str], ...]  # (program, is_drum, name)
    scenes: tuple[PreviousScene, ...]


@dataclass(frozen=True)
class Decision:
    """What happens to scene ``index`` of the new timeline, and why."""

    index: int
    action: str  # KEPT | MOVED | REGENERATED | NEW
    previous: int | None = None  # the scene of the previous score whose music it keeps or replaces
    shift: float = 0.0  # seconds the kept music moved
    reason: str = ""

    @property
    def keeps_music(self) -> bool:
        return self.action in (KEPT, MOVED)

    def describe(self) -> str:
        if self.action == KEPT:
            return "kept"
        if self.action == MOVED:
            return f"moved {self.shift:+.2f} s (was scene {self.previous})"
        return f"{self.action} ({self.reason})" if self.reason else self.action


def read_previous(data: dict, path: Path, take: int = 1) -> Previous:
    """The previous score in a sidecar dict (already checked by ``sidecar.read_sidecar``): the
    music of ``take`` when it recorded several.

    A sidecar without the per-scene music (written before re-scoring existed, or edited by
    hand) is a TimelineError naming the file; the caller then scores afresh.
    """
    hint = "emsync scores every scene afresh this time"
    try:
        data = _with_take(data, take)
        instruments = tuple((int(i["program"]), bool(i["is_drum"]), str(i.get("name", ""))) for i in data["instruments"])
        scenes = tuple(_previous_scene(s, len(instruments)) for s in data["scenes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise TimelineError(f"does not record the music of each scene ({exc})", path=path, hint=hint) from None
    if not scenes:
        raise TimelineError("records no scenes", path=path, hint=hint)
    sha = data.get("model_sha256")
    return Previous(path, str(data.get("engine", "")), sha if isinstance(sha, str) else None, instruments, scenes)


def _with_take(data: dict, take: int) -> dict:
    """``data`` with the notes of ``take`` in its scenes (take 1's are there already)."""
    takes = data.get("takes")
    if take == 1 or not takes:
        if take != 1:
            raise ValueError(f"take {take} is not in it")
        return data
    chosen = next((t for t in takes if isinstance(t, dict) and t.get("take") == take), None)
    if chosen is None:
        raise ValueError(f"take {take} is not in it")
    if len(chosen["notes"]) != len(data["scenes"]):
        raise ValueError(f"take {take} has notes for {len(chosen['notes'])} scenes, not {len(data['scenes'])}")
    scenes = [{**scene, "notes": notes} for scene, notes in zip(data["scenes"], chosen["notes"])]
    return {**data, "instruments": chosen["instruments"], "scenes": scenes}


def _previous_scene(s: dict, n_instruments: int) -> PreviousScene:
    notes = []
    for row in s["notes"]:
        inst, pitch, vel, start, end = row
        if not (isinstance(inst, int) and 0 <= inst < n_instruments and isinstance(pitch, int) and 0 <= pitch < 128
                and isinstance(vel, int) and 0 < vel < 128):
            raise ValueError(f"scene {s.get('index')} has a note that is not [instrument, pitch, velocity, start, end]")
        start, end = _number(start), _number(end)
        if end < start or start < 0:
            raise ValueError(f"scene {s.get('index')} has a note that ends before it starts")
        notes.append(StoredNote(inst, pitch, vel, start, end))
    if isinstance(s["index"], bool) or not isinstance(s["index"], int):
        raise ValueError("a scene has no index")
    return PreviousScene(s["index"], _number(s["start"]), _number(s["end"]), Identity.from_json(s["identity"]),
                         _number(s["valence"]), _number(s["arousal"]), str(s.get("source", "")), tuple(notes))


def plan(timeline: Timeline, moods: Sequence[SceneMood], previous: Previous | None, *,
         regenerate: Iterable[int] = (), lock: Iterable[int] = (), model_sha256: str | None = None) -> list[Decision]:
    """For each scene of ``timeline``: keep, move or regenerate its music.

    ``regenerate`` forces new music for those scenes; ``lock`` keeps a scene's music whatever
    its mood now says, and is an OptionsError if its picture changed (its music cannot fit).
    """
    regenerate, lock = set(regenerate), set(lock)
    _check_numbers(timeline, regenerate | lock)
    if previous is None:
        if lock:
            raise OptionsError(f"--lock {_numbers(lock)}: there is no previous score to keep",
                               hint="score once without --lock, then lock the scenes you approved")
        return [Decision(s.index, NEW) for s in timeline.scenes]
    tolerance = 0.5 / timeline.rate
    stale_model = previous.model_sha256 != model_sha256
    unused = list(previous.scenes)
    last = max(previous.scenes, key=lambda p: p.end)
    decisions = []
    for scene, mood in zip(timeline.scenes, moods):
        match = _match(Identity.of(scene), scene, unused, tolerance)
        if match is not None:
            unused.remove(match)
        d = _decide(scene, mood, match, regenerate, lock, stale_model, tolerance)
        if match is None:
            d = _trimmed(scene, unused) or d
        if d.keeps_music and scene is timeline.scenes[-1] and match is not last and scene.index not in lock:
            d = Decision(scene.index, REGENERATED, d.previous, reason="it now ends the timeline (final chord)")
        decisions.append(d)
    return decisions


def _decide(scene: Scene, mood: SceneMood, match: PreviousScene | None, regenerate: set[int], lock: set[int],
            stale_model: bool, tolerance: float) -> Decision:
    if match is None:
        if scene.index in lock:
            raise OptionsError(f"--lock {scene.index}: scene {scene.index}'s picture changed, so its music no longer fits",
                               hint=f"drop --lock {scene.index} to let emsync write new music for it")
        return Decision(scene.index, NEW, reason="new or changed picture")
    if scene.index in regenerate:
        return Decision(scene.index, REGENERATED, match.index, reason="you asked")
    if scene.index not in lock:
        if abs(match.valence - mood.valence) > MOOD_TOLERANCE or abs(match.arousal - mood.arousal) > MOOD_TOLERANCE:
            return Decision(scene.index, REGENERATED, match.index, reason="mood changed")
        if stale_model:
            return Decision(scene.index, REGENERATED, match.index, reason="the generator model changed")
    shift = scene.start - match.start
    if abs(shift) <= tolerance:
        return Decision(scene.index, KEPT, match.index)
    return Decision(scene.index, MOVED, match.index, shift=shift)


def _trimmed(scene: Scene, candidates: Sequence[PreviousScene]) -> Decision | None:
    """A scene whose picture overlaps a previous scene's (the same media): that scene, trimmed."""
    me = Identity.of(scene)
    if me.source_start is None or me.source_end is None:
        return None
    for p in candidates:
        other = p.identity
        if other.media == me.media and other.source_start is not None and other.source_end is not None \
                and min(other.source_end, me.source_end) > max(other.source_start, me.source_start):
            return Decision(scene.index, REGENERATED, p.index, reason="picture trimmed")
    return None


def _match(identity: Identity, scene: Scene, candidates: Sequence[PreviousScene], tolerance: float) -> PreviousScene | None:
    """The previous scene with the same picture; of several, the one nearest in time."""
    same = [p for p in candidates if p.identity.same(identity, tolerance)]
    return min(same, key=lambda p: abs(p.start - scene.start), default=None)


@dataclass(frozen=True)
class KeptSpan:
    """Music kept from the previous score: ``notes`` (absolute times in the new timeline) as
    ``(program, is_drum, name, pretty_midi.Note)``, belonging to ``start`` .. ``end``."""

    start: float
    end: float
    notes: tuple[tuple[int, bool, str, pretty_midi.Note], ...]


def kept_spans(timeline: Timeline, decisions: Sequence[Decision], previous: Previous | None) -> list[KeptSpan]:
    """The kept and moved scenes' music, placed where each scene now sits."""
    if previous is None:
        return []
    by_index = {p.index: p for p in previous.scenes}
    spans = []
    for scene, d in zip(timeline.scenes, decisions):
        if not d.keeps_music or d.previous not in by_index:
            continue
        shift = d.shift if d.action == MOVED else 0.0  # kept music stays exactly where it was
        notes = tuple(
            (*previous.instruments[n.instrument],
             pretty_midi.Note(velocity=n.velocity, pitch=n.pitch, start=n.start + shift, end=n.end + shift))
            for n in by_index[d.previous].notes
        )
        spans.append(KeptSpan(scene.start, scene.end, notes))
    return spans


def splice(midi: pretty_midi.PrettyMIDI, spans: Sequence[KeptSpan], duration: float) -> pretty_midi.PrettyMIDI:
    """``midi`` with the kept spans' music in place of its own there.

    New notes that start inside a kept span are dropped, new notes that sound into one end at
    its start, and the kept notes go in note for note (cut at the timeline's end).
    """
    if not spans:
        return midi
    bounds = sorted((s.start, s.end) for s in spans)
    out = pretty_midi.PrettyMIDI(resolution=midi.resolution, initial_tempo=120.0)
    tracks: dict[tuple[int, bool, str], pretty_midi.Instrument] = {}
    for inst in midi.instruments:
        track = _track(out, tracks, (inst.program, inst.is_drum, inst.name))
        for n in inst.notes:
            note = _outside(n, bounds)
            if note is not None:
                track.notes.append(note)
    for span in spans:
        for program, is_drum, name, n in span.notes:
            if n.start < duration:
                end = min(n.end, duration)
                _track(out, tracks, (program, is_drum, name)).notes.append(
                    pretty_midi.Note(velocity=n.velocity, pitch=n.pitch, start=n.start, end=end))
    for inst in out.instruments:
        inst.notes.sort(key=lambda n: (n.start, n.pitch))
    out.instruments = [i for i in out.instruments if i.notes]
    return out


def _track(pm: pretty_midi.PrettyMIDI, tracks: dict, key: tuple[int, bool, str]) -> pretty_midi.Instrument:
    if key not in tracks:
        program, is_drum, name = key
        tracks[key] = pretty_midi.Instrument(program=program, is_drum=is_drum, name=name)
        pm.instruments.append(tracks[key])
    return tracks[key]


def _outside(note: pretty_midi.Note, bounds: Sequence[tuple[float, float]]) -> pretty_midi.Note | None:
    """The part of a new note before the first kept span it meets; None if it starts inside one."""
    end = note.end
    for start, stop in bounds:
        if start - 1e-9 <= note.start < stop - 1e-9:
            return None
        if note.start < start < end:
            end = start
    return pretty_midi.Note(velocity=note.velocity, pitch=note.pitch, start=note.start, end=end)


def notes_by_scene(midi: pretty_midi.PrettyMIDI, timeline: Timeline) -> tuple[list[dict], list[list[list]]]:
    """The score's instruments and, per scene, the notes that start in it as ``[instrument, pitch,
    velocity, start, end]``: what the sidecar stores so that a re-score can keep them."""
    instruments = [{"program": i.program, "is_drum": i.is_drum, "name": i.name} for i in midi.instruments]
    starts = [s.start for s in timeline.scenes]
    per_scene: list[list[list]] = [[] for _ in timeline.scenes]
    for k, inst in enumerate(midi.instruments):
        for n in inst.notes:
            per_scene[_scene_index(starts, n.start)].append([k, int(n.pitch), int(n.velocity), float(n.start), float(n.end)])
    for notes in per_scene:
        notes.sort(key=lambda r: (r[3], r[0], r[1]))
    return instruments, per_scene


def _scene_index(starts: Sequence[float], t: float) -> int:
    return max(0, bisect.bisect_right(starts, t + 1e-9) - 1)


def _check_numbers(timeline: Timeline, numbers: set[int]) -> None:
    bad = sorted(n for n in numbers if not 1 <= n <= len(timeline.scenes))
    if bad:
        raise OptionsError(f"scene {_numbers(bad)} is not in the timeline ({len(timeline.scenes)} scenes)",
                           hint="use the scene numbers `emsync cuts` prints")


def _numbers(numbers: Iterable[int]) -> str:
    return ",".join(str(n) for n in sorted(numbers))


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{str(value)[:40]!r} is not a number")
    return float(value)


def _optional_number(value: object) -> float | None:
    return None if value is None else _number(value)


def log_decisions(name: str, decisions: Sequence[Decision], previous: Previous | None) -> None:
    """What a re-score of the timeline ``name`` keeps, scene by scene (nothing on a first score)."""
    if previous is None:
        return
    kept = sum(d.keeps_music for d in decisions)
    logger.info("%s: re-scoring against %s: %d of %d scenes keep their music", name, previous.path.name,
                kept, len(decisions))
    if kept == 0:
        logger.info("no scene of %s matches the previous score (another timeline, or every picture changed)", name)
    for d in decisions:
        logger.info("scene %d: %s", d.index, d.describe())
