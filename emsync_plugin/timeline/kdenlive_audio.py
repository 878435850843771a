"""Kdenlive projects: the sound side of a timeline (the editor's audio clips, emsync's own
score tracks), read from the tracks :class:`~.kdenlive_read.Project` lists."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .kdenlive_xml import SCORE_PROPERTY, prop, to_seconds
from .model import ScoreTrackInfo, Shot

if TYPE_CHECKING:
    from .kdenlive_read import Project, Track


def audio_shots(project: Project, tracks: Sequence[Track]) -> tuple[Shot, ...]:
    """Clips of the audible audio tracks other than emsync's, in timeline seconds."""
    shots = []
    rate = project.rate
    for track in tracks:
        if not track.audio or track.muted or track.ours:
            continue
        for place in track.places:
            if place.element.tag == "tractor":  # a nested sequence's sound is not looked into
                continue
            media, speed = project.media(place.element)
            if media is None:
                continue
            src0 = src1 = None
            if speed is not None and speed > 0:
                step = speed / rate
                src0 = round(float(place.src_in * step), 9)
                src1 = round(float((place.src_in + place.end - place.start) * step), 9)
            shots.append(Shot(to_seconds(place.start, rate), to_seconds(place.end, rate), media, src0, src1,
                              project.clip_name(place.element, place.kid)))
    return tuple(sorted(shots, key=lambda s: (s.start, s.end)))


def score_tracks(path: str | Path, *, sequence: str | None = None) -> list[ScoreTrackInfo]:
    """emsync's score tracks of a project's (open) sequence in the order they were written (top
    first: take 1 is above take 2), with the JSON emsync stored on each (``kdenlive:emsync``:
    the settings plus the MIDI and WAV paths)."""
    from .kdenlive_read import Project

    project = Project.open(path)
    tractor, _ = project.timeline(sequence)
    found = []
    for track in reversed(project.tracks(tractor)):
        if not track.ours:
            continue
        try:
            meta = json.loads(prop(track.element, SCORE_PROPERTY) or "{}")
        except json.JSONDecodeError:
            meta = {}
        found.append(ScoreTrackInfo(track.name, track.muted, meta if isinstance(meta, dict) else {}))
    return found
