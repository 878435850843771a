"""A rule-based drum part, scene by scene, locked to the pulse of the generated music.

The training corpus has no drums, so nothing here is learned: each scene gets a groove from a
small library written for each kit (:data:`KITS`), picked by the scene's arousal level (none
when calm, a soft pulse, a groove, a full groove when tense or energetic) and laid on the beat
that :func:`.pulse.estimate_pulse` finds in the scene's own notes; a fill leads into the cut
that ends the scene and an accent (crash, kick, timpani) lands on the cut that starts it.
What a scene gets depends only on its own notes, mood, span and the seed, so a re-score that
keeps a scene's music keeps its drums.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pretty_midi

from .groups import PREFIX
from .pulse import Pulse, estimate_pulse

#: The name of the drum part (and of its timpani): the "drums" group (stems, report, sidecar).
DRUMS_NAME = PREFIX + "drums"
TIMPANI_PROGRAM = 47  # General MIDI timpani (0-based), a melodic instrument
# Arousal at and above which each level starts: 0 none, 1 soft pulse, 2 groove, 3 full groove.
LEVELS = (-0.3, 0.2, 0.55)
_STEPS = 4  # grid steps per beat (sixteenth notes)
_HIT = 0.12  # seconds a drum note is held (the percussion channel ignores it)

# General MIDI percussion keys; "timpani" is played on the melodic timpani instead.
KEYS = {"kick": 36, "snare": 38, "side": 37, "clap": 39, "hat": 42, "pedal": 44, "open": 46, "ride": 51,
        "crash": 49, "crash2": 57, "floor": 41, "tom_low": 43, "tom_mid": 47, "tom_high": 50,
        "shaker": 70, "tambourine": 54, "bell": 53}

# A groove is one bar of four beats: per part sixteen steps, a digit 1-9 its strength, "." a rest.
Groove = dict[str, str]


@dataclass(frozen=True)
class Kit:
    """A drum kit and its library: grooves per level (variants), fills per level, the cut accent."""

    name: str
    program: int  # the General MIDI drum kit (bank 128 preset)
    grooves: dict[int, tuple[Groove, ...]]  # level -> variants; a level without grooves plays nothing
    fills: dict[int, tuple[str, ...]]  # level -> the parts of a fill, struck one a step, last step before the cut
    accent: tuple[str, ...]  # the parts struck on a cut
    velocity: tuple[float, float] = (40.0, 112.0)  # at arousal -1 and +1 (a strength-9 step)
    max_level: int = 3


def _bar(**parts: str) -> Groove:
    for name, steps in parts.items():
        assert len(steps) == 16 and (name in KEYS or name == "timpani"), name
    return dict(parts)


KITS: dict[str, Kit] = {k.name: k for k in (
    Kit("cinematic", 8, {
        1: (_bar(floor="6.......4.......", timpani="5..............."),),
        2: (_bar(floor="7.....5.7.....5.", tom_low="....6.......6...", kick="8.......7......."),
            _bar(floor="7..5..5.7..5..5.", snare="....4.......4...", kick="8.......7.......")),
        3: (_bar(floor="8.6.7.6.8.6.7.66", tom_low="..7...7...7...7.", kick="9..6..7.9..6..7.", snare="....8.......8..5"),
            _bar(floor="8.668.668.668.66", kick="9.....7.9.....7.", snare="....8.......8...", crash2="9...............")),
    }, {1: ("timpani",) * 4, 2: ("tom_low",) * 2 + ("floor",) * 2,
        3: ("tom_high", "tom_high", "tom_mid", "tom_mid", "tom_low", "tom_low", "floor", "floor")},
        ("crash2", "kick", "timpani"), (40.0, 115.0)),
    Kit("acoustic", 40, {
        1: (_bar(shaker="5.3.5.3.5.3.5.3.", kick="5..............."),),
        2: (_bar(shaker="6.4.6.4.6.4.6.4.", kick="6.......5.......", side="....6.......6..."),
            _bar(tambourine="....6.......6...", shaker="5353535353535353", kick="6.....4.5......."),),
    }, {1: ("shaker",) * 2, 2: ("side", "side", "tom_low", "tom_low")},
        ("crash", "kick"), (38.0, 100.0), max_level=2),
    Kit("electronic", 25, {
        1: (_bar(hat="..5...5...5...5.", kick="6.......6......."),),
        2: (_bar(hat="6.4.6.4.6.4.6.4.", kick="8.......8.......", clap="....7.......7..."),
            _bar(hat="6.4.6.4.6.4.6.4.", kick="8.....6...8.....", clap="....7.......7...")),
        3: (_bar(hat="7575757575757575", kick="9...9...9...9...", clap="....8.......8...", open="..6...6...6...6."),
            _bar(hat="7575757575757575", kick="9..7..9.9..7..9.", clap="....8.......8..6")),
    }, {1: ("hat",) * 4, 2: ("clap",) * 4, 3: ("snare",) * 4 + ("clap",) * 4},
        ("crash", "kick"), (45.0, 115.0)),
)}


@dataclass(frozen=True)
class Hit:
    """One stroke: ``part`` (a key of :data:`KEYS`) at ``time`` seconds, ``velocity`` 1-127."""

    part: str
    time: float
    velocity: int
    pitch: int = 0  # the timpani's note; 0 for the kit


def level(arousal: float, kit: Kit) -> int:
    """The drum level of a scene of ``arousal``: 0 (none) .. 3 (full groove), at most the kit's."""
    return min(sum(arousal >= t for t in LEVELS), kit.max_level)


def scene_drums(start: float, end: float, arousal: float, notes: Sequence[pretty_midi.Note], kit: Kit, seed: int,
                cut_at_start: bool, cut_at_end: bool) -> list[Hit]:
    """The strokes of one scene ``start`` .. ``end``: its groove, the fill into the cut that ends it
    (``cut_at_end``) and the accent on the cut that starts it (``cut_at_start``); none for a calm
    scene (level 0) or one without notes. Too few onsets for a pulse: a 0.6 s beat from the first one."""
    lev = level(arousal, kit)
    if not notes or lev == 0:  # calm: no percussion at all; no notes: nothing to play along with
        return []
    rng = np.random.default_rng(_key(seed, end - start, arousal))
    first = min(n.start for n in notes)
    pulse = estimate_pulse([n.start for n in notes]) or Pulse(0.6, first, 0.0, (first,))
    base = kit.velocity[0] + (kit.velocity[1] - kit.velocity[0]) * (arousal + 1.0) / 2.0
    hits: list[Hit] = []
    if cut_at_start:
        hits += [Hit(part, start, _velocity(base * 1.1, rng), _timpani(notes, start))
                 for part in kit.accent]
    fill_from = end
    if cut_at_end and end - start > 2 * pulse.period:
        fill = kit.fills.get(lev, ())
        sub = pulse.period / _STEPS
        fill_from = end - len(fill) * sub
        hits += [Hit(part, end - (len(fill) - k) * sub, _velocity(base * (0.55 + 0.45 * (k + 1) / len(fill)), rng),
                     _timpani(notes, end - (len(fill) - k) * sub)) for k, part in enumerate(fill)]
    grooves = kit.grooves.get(lev, ())
    if grooves:
        groove = grooves[int(rng.integers(len(grooves)))]
        hits += _groove(groove, pulse, start + 0.25 * pulse.period, fill_from - 0.5 * pulse.period / _STEPS,
                        base, notes, rng)
    return sorted(hits, key=lambda h: (h.time, h.part))


def _groove(groove: Groove, pulse: Pulse, start: float, end: float, base: float,
            notes: Sequence[pretty_midi.Note], rng: np.random.Generator) -> list[Hit]:
    """The groove's strokes on the pulse's sixteenth-note grid from the first beat at ``start``."""
    beats = pulse.beats(start, end)
    hits = []
    for b, beat in enumerate(beats):
        sub = ((beats[b + 1] if b + 1 < len(beats) else beat + pulse.period) - beat) / _STEPS
        for s in range(_STEPS):
            t = beat + s * sub
            if t >= end:
                break
            step = (b % 4) * _STEPS + s
            for part, steps in groove.items():
                if steps[step] != ".":
                    hits.append(Hit(part, t, _velocity(base * int(steps[step]) / 9.0, rng), _timpani(notes, t)))
    return hits


def _velocity(value: float, rng: np.random.Generator) -> int:
    return int(min(127, max(1, round(value + rng.normal(0.0, 2.0)))))


def _timpani(notes: Sequence[pretty_midi.Note], t: float) -> int:
    """The timpani's note at ``t``: the pitch class of the lowest note sounding, from F2 to E3."""
    sounding = [n for n in notes if n.start <= t + 0.05 and n.end > t] or \
        sorted(notes, key=lambda n: abs(n.start - t))[:3]
    if not sounding:
        return 43
    low = min(n.pitch for n in sounding)
    return 41 + (low - 41) % 12


def _key(seed: int, length: float, arousal: float) -> list[int]:
    """The random state of a scene: from the seed and the scene itself (not where it sits)."""
    return [seed & 0xFFFFFFFF, int(round(length * 1000)) & 0xFFFFFFFF, int(round((arousal + 1) * 1000))]


def drum_instruments(hits: Sequence[Hit], kit: Kit) -> list[pretty_midi.Instrument]:
    """The hits as the kit (percussion channel) and the timpani, both named ``"EMSYNC drums"``."""
    drums = pretty_midi.Instrument(kit.program, is_drum=True, name=DRUMS_NAME)
    timpani = pretty_midi.Instrument(TIMPANI_PROGRAM, name=DRUMS_NAME)
    for h in hits:
        if h.part == "timpani":
            timpani.notes.append(pretty_midi.Note(h.velocity, h.pitch, h.time, h.time + 0.9))
        else:
            drums.notes.append(pretty_midi.Note(h.velocity, KEYS[h.part], h.time, h.time + _HIT))
    for inst in (drums, timpani):
        restrike(inst.notes)
    return [inst for inst in (drums, timpani) if inst.notes]


def restrike(notes: list[pretty_midi.Note]) -> None:
    """Sort ``notes``; each ends where the next one of its pitch starts (a roll restrikes the drum,
    a part never overlaps a pitch with itself)."""
    notes.sort(key=lambda n: (n.start, n.pitch))
    last: dict[int, pretty_midi.Note] = {}
    for n in notes:
        prev = last.get(n.pitch)
        if prev is not None and prev.end > n.start:
            prev.end = max(prev.start + 1e-3, n.start)
        last[n.pitch] = n

