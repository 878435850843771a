"""Orchestration styles: how a generated score is voiced and played.

A style is data (:data:`STYLES`): the parts it plays the generated groups on (General MIDI
program, octave doubling, voicing, legato, strum, which arousal a part needs, swells into cuts),
a drum kit or none (:mod:`.drums`), a velocity curve over arousal, and the texture of calm
scenes (at most three voices a part, the accompaniment breathing between two-bar phrases).
:func:`apply_style` applies it after generation, scene by scene: what a scene gets depends only on its own notes,
mood and span and the seed, so a re-score that keeps a scene's notes keeps its orchestration and
drums too. The generated notes are the learned part; everything here is rules.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pretty_midi

from ..errors import OptionsError
from .drums import KITS, drum_instruments, restrike, scene_drums
from .groups import PREFIX, instrument_group
from .pulse import estimate_pulse

if TYPE_CHECKING:
    from ..mood import SceneMood

CHORD_GROUPS = ("piano", "strings")  # the generator's accompaniment; its "guitar" carries the line
_CHORD = 0.03  # onsets this close are one chord
_EXPRESSION = 11  # MIDI controller of a swell


@dataclass(frozen=True)
class Part:
    """One instrument of a style, named ``"EMSYNC <group>"``, playing the generated ``plays`` groups."""

    group: str
    program: int
    plays: tuple[str, ...]
    transpose: int = 0  # semitones (an octave doubling is a second part at +-12)
    velocity: int = 0  # added to the style's curve
    voices: int = 0  # at most this many notes per chord (top and bottom kept); 0: all
    legato: bool = False  # each note held to the part's next onset (pads)
    min_gap: float = 0.0  # seconds: onsets closer than this to the part's last one are left out (slow)
    strum: float = 0.0  # seconds between a chord's notes, low to high
    from_arousal: float = -1.0  # plays only in scenes of at least this arousal
    swell: float = 0.0  # seconds: plays only this long before each cut, swelling into it
    low: int = 0  # lowest pitch it plays (lower notes go up an octave)


@dataclass(frozen=True)
class Style:
    """A named orchestration (see :data:`STYLES`)."""

    name: str
    description: str
    parts: tuple[Part, ...] = ()
    kit: str | None = None  # a key of drums.KITS, or no drums
    velocity: tuple[float, float] = (40.0, 110.0)  # at arousal -1 and +1
    thin_below: float = -1.0  # in scenes calmer than this, a part sounds at most three notes at once
    breathe_below: float = -1.0  # in scenes calmer than this, the accompaniment rests between phrases
    reverb: int = 40  # MIDI controller 91 of every part


_ALL = ("bass", "guitar", "piano", "strings")
STYLES: dict[str, Style] = {s.name: s for s in (
    Style("cinematic", "strings carry the chords over octave-doubled bass, horns swell into cuts, timpani", (
        Part("strings", 48, ("guitar",) + CHORD_GROUPS, velocity=4),
        Part("strings", 48, ("guitar",), transpose=12, velocity=-8, from_arousal=0.55),  # violins an octave up: tutti
        Part("bass", 43, ("bass",), low=28),
        Part("bass", 42, ("bass",), transpose=12, velocity=-6),
        Part("brass", 60, CHORD_GROUPS, velocity=6, from_arousal=-0.5, swell=2.0, low=41),
    ), kit="cinematic", velocity=(34.0, 112.0), thin_below=-0.3, breathe_below=-0.2, reverb=70),
    Style("piano", "solo piano, no drums", (
        Part("piano", 0, _ALL),
    ), velocity=(34.0, 108.0), thin_below=-0.3, breathe_below=0.0, reverb=40),
    Style("ambient", "pads, slow, no drums", (
        Part("pad", 94, CHORD_GROUPS, legato=True, min_gap=1.0),
        Part("bass", 49, ("bass",), legato=True, min_gap=1.0, velocity=-4),
        Part("lead", 92, ("guitar",), legato=True, min_gap=0.6, velocity=-8),
    ), velocity=(34.0, 100.0), thin_below=0.0, reverb=100),
    Style("acoustic", "guitar, bass, light percussion", (
        Part("guitar", 24, CHORD_GROUPS, strum=0.018),
        Part("guitar", 25, ("guitar",), velocity=6),
        Part("bass", 32, ("bass",), velocity=4),
    ), kit="acoustic", velocity=(38.0, 108.0), thin_below=-0.3, breathe_below=-0.2, reverb=40),
    Style("electronic", "synth bass, pads, drum kit", (
        Part("pad", 90, CHORD_GROUPS, velocity=-6),
        Part("lead", 80, ("guitar",), velocity=-14),
        Part("bass", 39, ("bass",)),  # Synth Bass 2 holds its notes (Synth Bass 1 decays 27 dB in a second)
    ), kit="electronic", velocity=(40.0, 112.0), thin_below=-0.3, breathe_below=-0.3, reverb=60),
)}
DEFAULT_STYLE = "cinematic"


def check_style(name: str) -> str:
    """``name`` if it is a style, else an :class:`OptionsError` listing them."""
    if name not in STYLES:
        raise OptionsError(f"unknown style {name!r}", hint=f"choose one of: {', '.join(STYLES)} (emsync styles)")
    return name


@dataclass(frozen=True)
class _Scene:
    start: float
    end: float
    arousal: float
    notes: dict[str, list[pretty_midi.Note]]  # generated group -> the notes that start in the scene


def apply_style(midi: pretty_midi.PrettyMIDI, style: str, cuts: Sequence[float], duration: float,
                moods: Sequence[SceneMood], seed: int = 0) -> pretty_midi.PrettyMIDI:
    """A new MIDI: ``midi``'s notes orchestrated in ``style`` (programs, doublings, drums, dynamics).

    Drum instruments in ``midi`` (the baseline arranger's) are replaced by the style's kit.
    """
    chosen = STYLES[check_style(style)]
    out = pretty_midi.PrettyMIDI(resolution=midi.resolution, initial_tempo=120.0)
    insts = [pretty_midi.Instrument(p.program, name=PREFIX + p.group) for p in chosen.parts]
    scenes = _scenes(midi, cuts, duration, moods)
    drums = []
    for k, scene in enumerate(scenes):
        breathing = _breathe(scene) if scene.arousal < chosen.breathe_below else scene
        for part, inst in zip(chosen.parts, insts):
            inst.notes += _play(part, chosen, breathing, k > 0, k < len(scenes) - 1)
        if chosen.kit is not None:
            everything = [n for group in scene.notes.values() for n in group]
            drums += scene_drums(scene.start, scene.end, scene.arousal, everything, KITS[chosen.kit], seed,
                                 cut_at_start=k > 0, cut_at_end=k < len(scenes) - 1)
    for part, inst in zip(chosen.parts, insts):
        inst.control_changes.append(pretty_midi.ControlChange(91, chosen.reverb, 0.0))
        if part.swell:
            inst.control_changes += _swells(part, scenes)
    out.instruments = [i for i in insts if i.notes]
    if chosen.kit is not None:
        out.instruments += drum_instruments(drums, KITS[chosen.kit])
    for inst in out.instruments:
        restrike(inst.notes)
        inst.control_changes.sort(key=lambda c: c.time)
    return out


def _scenes(midi: pretty_midi.PrettyMIDI, cuts: Sequence[float], duration: float,
            moods: Sequence[SceneMood]) -> list[_Scene]:
    """The score's scenes (cut to cut) with their arousal and generated notes by group."""
    bounds = [0.0, *sorted(c for c in cuts if 0.0 < c < duration), float(duration)]
    scenes = []
    for k, (start, end) in enumerate(zip(bounds, bounds[1:])):
        mood = next((m for m in moods if m.start - 1e-3 <= start < m.end - 1e-3), moods[k] if k < len(moods) else None)
        notes: dict[str, list[pretty_midi.Note]] = {}
        for inst in midi.instruments:
            group = instrument_group(inst)
            if inst.is_drum or group == "drums":
                continue
            group = group if group in _ALL else "piano"
            last = k == len(bounds) - 2
            notes.setdefault(group, []).extend(
                n for n in inst.notes if start - 1e-6 <= n.start < end - 1e-6 or (last and n.start >= end - 1e-6))
        scenes.append(_Scene(start, end, mood.arousal if mood is not None else 0.0, notes))
    return scenes


def _breathe(scene: _Scene) -> _Scene:
    """``scene`` with its accompaniment resting for the second half of every second bar of its
    pulse (the line and the bass play on: a breath between two-bar phrases), never in the last
    half second."""
    pulse = estimate_pulse([n.start for group in scene.notes.values() for n in group])
    if pulse is None:
        return scene
    beats = pulse.beats(scene.start, scene.end)
    rests = [(beats[b], beats[b + 2]) for b in range(6, len(beats) - 2, 8) if beats[b + 2] <= scene.end - 0.5]
    if not rests:
        return scene
    notes = dict(scene.notes)
    for group in CHORD_GROUPS:
        kept = []
        for n in notes.get(group, ()):
            if any(a - 1e-6 <= n.start < b for a, b in rests):
                continue
            end = min([a for a, _ in rests if n.start < a < n.end] + [n.end])
            kept.append(n if end == n.end else pretty_midi.Note(n.velocity, n.pitch, n.start, end))
        notes[group] = kept
    return replace(scene, notes=notes)


def velocity(style: Style, arousal: float) -> float:
    """The style's velocity at ``arousal`` (before a part's offset)."""
    low, high = style.velocity
    return low + (high - low) * (min(max(arousal, -1.0), 1.0) + 1.0) / 2.0


def _play(part: Part, style: Style, scene: _Scene, cut_at_start: bool, cut_at_end: bool) -> list[pretty_midi.Note]:
    """The notes ``part`` plays in ``scene``."""
    if scene.arousal < part.from_arousal:
        return []
    source = sorted((n for g in part.plays for n in scene.notes.get(g, ())), key=lambda n: (n.start, n.pitch))
    if part.swell:
        if not cut_at_end:
            return []
        window = max(scene.start, scene.end - part.swell)
        source = [pretty_midi.Note(n.velocity, n.pitch, max(n.start, window), scene.end)
                  for n in source if n.end > window + 0.05]
    chords = _chords(source, part.min_gap, scene.start if cut_at_start else None)
    voices = part.voices or (3 if scene.arousal < style.thin_below else 0)
    base = velocity(style, scene.arousal) + part.velocity
    played = []
    for k, chord in enumerate(chords):
        if voices:  # the lowest and the highest distinct pitches (two groups may double one)
            chord = sorted({n.pitch: n for n in sorted(chord, key=lambda n: n.end)}.values(), key=lambda n: n.pitch)
            chord = chord[:1] + chord[max(1, len(chord) - voices + 1):]
        until = chords[k + 1][0].start if part.legato and k + 1 < len(chords) else None
        accent = 8 if cut_at_start and abs(chord[0].start - scene.start) < 0.05 else 0
        for j, n in enumerate(chord):
            pitch = n.pitch + part.transpose
            while pitch < part.low:
                pitch += 12
            start = n.start + j * part.strum
            end = max(n.end, until) if until is not None else n.end
            if pitch <= 127 and end > start:
                played.append(pretty_midi.Note(int(min(127, max(1, round(base + accent)))), pitch, start, end))
    if part.swell:
        return _held(played)
    return _capped(_unique(played), voices) if voices else _unique(played)


def _chords(notes: Sequence[pretty_midi.Note], min_gap: float, keep: float | None) -> list[list[pretty_midi.Note]]:
    """``notes`` as chords (onsets within ``_CHORD``), those closer than ``min_gap`` to the last
    kept one left out (never the chord at ``keep``, a cut)."""
    chords: list[list[pretty_midi.Note]] = []
    last = -1e9
    for n in notes:
        if chords and n.start - chords[-1][0].start <= _CHORD:
            chords[-1].append(n)
            continue
        on_cut = keep is not None and abs(n.start - keep) < 0.05
        if n.start - last < min_gap and not on_cut:
            continue
        chords.append([n])
        last = n.start
    return [sorted(c, key=lambda n: n.pitch) for c in chords]


def _held(notes: list[pretty_midi.Note]) -> list[pretty_midi.Note]:
    """A pitch held while it sounds: notes of one pitch that touch or overlap become one."""
    merged: list[pretty_midi.Note] = []
    for n in sorted(notes, key=lambda n: (n.pitch, n.start)):
        last = merged[-1] if merged else None
        if last is not None and last.pitch == n.pitch and n.start <= last.end + 1e-6:
            last.end = max(last.end, n.end)
        else:
            merged.append(pretty_midi.Note(n.velocity, n.pitch, n.start, n.end))
    return sorted(merged, key=lambda n: (n.start, n.pitch))


def _capped(notes: list[pretty_midi.Note], voices: int) -> list[pretty_midi.Note]:
    """At most ``voices`` notes sounding at once: a new onset ends the longest-held notes."""
    sounding: list[pretty_midi.Note] = []
    for n in notes:  # sorted by onset
        sounding = [m for m in sounding if m.end > n.start + 1e-6]
        chord = [m for m in sounding if abs(m.start - n.start) <= _CHORD]
        held = sorted((m for m in sounding if m not in chord), key=lambda m: m.start)
        for m in held[:max(0, len(sounding) + 1 - voices)]:
            m.end = max(m.start + 0.05, n.start)
            sounding.remove(m)
        sounding.append(n)
    return notes


def _unique(notes: list[pretty_midi.Note]) -> list[pretty_midi.Note]:
    """One note per pitch and onset (doublings of a part onto itself are one note)."""
    seen: dict[tuple[int, int], pretty_midi.Note] = {}
    for n in notes:
        key = (n.pitch, round(n.start * 1000))
        if key not in seen or seen[key].end < n.end:
            seen[key] = n
    return sorted(seen.values(), key=lambda n: (n.start, n.pitch))


def _swells(part: Part, scenes: Sequence[_Scene]) -> list[pretty_midi.ControlChange]:
    """Expression rising from soft to full over the ``part.swell`` seconds before each cut."""
    changes = []
    for scene in scenes[:-1]:
        if scene.arousal < part.from_arousal:
            continue
        window = max(scene.start, scene.end - part.swell)
        steps = 12
        for k in range(steps + 1):
            changes.append(pretty_midi.ControlChange(_EXPRESSION, int(round(30 + 97 * k / steps)),
                                                     window + (scene.end - window) * k / (steps + 1)))
    return changes
