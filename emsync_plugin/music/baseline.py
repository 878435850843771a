"""A rule-based score: a deterministic arranger that needs no model.

Its chords change exactly on every cut, at 0 and on a final tonic chord held to the end, for a
strings pad, a piano, a bass and (aroused scenes) drums. Valence picks the mode, the consonance
and the register; arousal the tempo, the density, the velocity and the drums (the mapping is in
docs/music.md). Each scene gets a whole number of beats, so every cut falls on a beat. It is the
fallback when no generator model is available and the reference the generator is measured against.
"""
from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import pretty_midi

from ..errors import OptionsError
from ..mood import SceneMood

logger = logging.getLogger(__name__)

# General MIDI programs (0-based) and percussion keys; fixed so every synth voices them alike.
PAD_PROGRAM = 48  # String Ensemble 1
PIANO_PROGRAM = 0  # Acoustic Grand Piano
BASS_PROGRAM = 33  # Electric Bass (finger)
KICK, SNARE, CLOSED_HAT, CRASH = 36, 38, 42, 49

# MIDI timing of the written file: 960 ticks per beat at 120 bpm is 1/1920 s per tick.
MIDI_RESOLUTION = 960
MIDI_TEMPO = 120.0

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)

# Progressions as scale degrees (0 = tonic); none repeats a chord, even when it wraps.
_MAJOR_PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 1, 4), (0, 2, 3, 4))
_MINOR_PROGRESSIONS = ((0, 5, 2, 6), (0, 3, 6, 2), (0, 5, 3, 6), (0, 6, 5, 4))

# Cuts closer together than this are one cut; cuts this close to 0 or the end are dropped.
SAME_CUT = 1e-3
# The final tonic chord starts at the last cut instead when it would leave less than this.
_MIN_BEFORE_FINAL = 1.0
_DRUM_LENGTH = 0.12


@dataclass(frozen=True)
class BaselineOptions:
    """Choices of the baseline arranger, validated on creation (:class:`OptionsError`).

    ``key`` is the tonic's pitch class (0 = C .. 11 = B); ``None`` lets ``seed`` choose.
    ``final_hold`` is how long the final tonic chord lasts at most (EMSYNC fades 3 s).
    """

    seed: int = 0
    key: int | None = None
    final_hold: float = 3.0
    min_bpm: float = 60.0
    max_bpm: float = 140.0
    beats_per_chord: int = 4
    drums: bool = True
    drums_arousal: float = 0.3
    humanize: int = 4

    def __post_init__(self) -> None:
        def integer(name: str, low: int, high: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise OptionsError(f"{name} must be a whole number from {low} to {high}, not {value!r}")

        def number(name: str, low: float, high: float) -> None:
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or not low <= value <= high):
                raise OptionsError(f"{name} must be a number from {low} to {high}, not {value!r}")

        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise OptionsError(f"seed must be a whole number, not {self.seed!r}")
        if self.key is not None:
            integer("key", 0, 11)
        number("final_hold", 0.1, 60.0)
        number("min_bpm", 20.0, 300.0)
        number("max_bpm", 20.0, 300.0)
        if self.min_bpm > self.max_bpm:
            raise OptionsError(f"min_bpm ({self.min_bpm}) must not exceed max_bpm ({self.max_bpm})")
        integer("beats_per_chord", 1, 32)
        if not isinstance(self.drums, bool):
            raise OptionsError(f"drums must be true or false, not {self.drums!r}")
        number("drums_arousal", -1.0, 1.0)
        integer("humanize", 0, 30)


@dataclass(frozen=True)
class _Segment:
    """A stretch of music with one mood: a scene, or the final tonic chord."""

    start: float
    end: float
    valence: float
    arousal: float
    final: bool = False


@dataclass(frozen=True)
class _Chord:
    start: float
    end: float
    degree: int
    minor: bool
    harmonic: bool  # minor with a raised seventh (the dominant of a cadence)
    segment: int
    beat: float  # the segment's beat length in seconds


def clean_cuts(cuts: Sequence[float], duration: float) -> list[float]:
    """Return the cuts that will carry a chord: sorted, inside ``(0, duration)``, deduplicated.

    Cuts within :data:`SAME_CUT` of each other, of 0 or of the end are merged or dropped (the
    chord at 0 or the end covers them); a cut outside the timeline is dropped with a warning.
    """
    try:
        times = [float(c) for c in cuts]
    except (TypeError, ValueError) as exc:
        raise OptionsError(f"cut times must be numbers ({exc})") from exc
    if not all(math.isfinite(t) for t in times):
        raise OptionsError(f"cut times must be finite numbers, not {[t for t in times if not math.isfinite(t)]}")
    kept: list[float] = []
    for raw in sorted(times):
        if raw < -SAME_CUT or raw > duration + SAME_CUT:
            logger.warning("cut at %.3f s lies outside the timeline (0 .. %.3f s); ignored", raw, duration)
            continue
        if raw < SAME_CUT or raw > duration - SAME_CUT:
            continue
        if kept and raw - kept[-1] < SAME_CUT:
            continue
        kept.append(raw)
    return kept


def _mood_for(start: float, end: float, moods: Sequence[SceneMood]) -> tuple[float, float]:
    """The (valence, arousal) of the mood overlapping ``start .. end`` most (else the nearest)."""
    if not moods:
        return 0.0, 0.0
    best = max(moods, key=lambda m: (min(end, m.end) - max(start, m.start), -m.start))
    if min(end, best.end) - max(start, best.start) <= 0:
        middle = (start + end) / 2
        best = min(moods, key=lambda m: (max(m.start - middle, middle - m.end, 0.0), m.start))
    return best.valence, best.arousal


def _segments(cuts: list[float], duration: float, moods: Sequence[SceneMood], final_hold: float) -> list[_Segment]:
    bounds = [0.0, *cuts, duration]
    spans = list(zip(bounds[:-1], bounds[1:]))
    last_start, _ = spans[-1]
    final_start = max(last_start, duration - final_hold)
    if final_start - last_start < _MIN_BEFORE_FINAL:
        final_start = last_start
    segments = []
    for start, end in spans[:-1]:
        segments.append(_Segment(start, end, *_mood_for(start, end, moods)))
    mood = _mood_for(last_start, duration, moods)
    if final_start > last_start:
        segments.append(_Segment(last_start, final_start, *mood))
    segments.append(_Segment(final_start, duration, *mood, final=True))
    return segments


def _bpm(arousal: float, options: BaselineOptions) -> float:
    return options.min_bpm + (options.max_bpm - options.min_bpm) * (arousal + 1.0) / 2.0


def _plan_chords(segments: list[_Segment], rng: random.Random, options: BaselineOptions) -> list[_Chord]:
    """Choose the chords: one on every segment start, more every ``beats_per_chord`` beats."""
    chords: list[_Chord] = []
    previous: tuple[int, bool] | None = None
    position = 0
    for index, seg in enumerate(segments):
        minor = seg.valence < 0
        length = seg.end - seg.start
        if seg.final:
            chords.append(_Chord(seg.start, seg.end, 0, minor, False, index, length))
            continue
        target = 60.0 / _bpm(seg.arousal, options)
        beats = max(1, round(length / target))
        beat = length / beats
        progression = rng.choice(_MINOR_PROGRESSIONS if minor else _MAJOR_PROGRESSIONS)
        if previous is None or previous[1] != minor:
            position = 0
        else:
            position = (position + 1) % len(progression)
            if (progression[position], minor) == previous:
                position = (position + 1) % len(progression)
        step = options.beats_per_chord
        starts = [k for k in range(0, beats, step) if k == 0 or beats - k >= min(2, step)]
        for n, first_beat in enumerate(starts):
            if n:
                position = (position + 1) % len(progression)
            last_beat = starts[n + 1] if n + 1 < len(starts) else beats
            end = seg.end if last_beat == beats else seg.start + last_beat * beat
            chords.append(_Chord(seg.start + first_beat * beat, end, progression[position], minor,
                                 False, index, beat))
            previous = (progression[position], minor)
    # A cadence: the chord before the final tonic becomes the dominant (unless it opens the piece).
    if len(chords) >= 2 and chords[-2].start > 0:
        c = chords[-2]
        chords[-2] = _Chord(c.start, c.end, 4, c.minor, c.minor, c.segment, c.beat)
    return chords


def chord_pitch_classes(tonic: int, degree: int, minor: bool, valence: float, harmonic: bool = False) -> list[int]:
    """Pitch classes of the diatonic chord on ``degree``, root first, coloured by valence.

    Thirds are stacked inside the scale (so the mode sets each chord's quality); a very
    positive valence adds a ninth to I and IV, a negative one adds sevenths (and ninths).
    """
    scale = (HARMONIC_MINOR if harmonic else MINOR) if minor else MAJOR
    tones = 3
    if valence < -0.7:
        tones = 5
    elif valence < -0.3:
        tones = 4
    pcs = [(tonic + scale[(degree + 2 * j) % 7]) % 12 for j in range(tones)]
    if valence >= 0.5 and degree in (0, 3):
        pcs.append((tonic + scale[(degree + 1) % 7]) % 12)
    return pcs


def _voicing(pcs: list[int], centre: int, previous: list[int] | None) -> list[int]:
    """A close-position voicing of ``pcs`` near ``centre`` and near the previous voicing."""
    best: tuple[float, list[int]] | None = None
    for inversion in range(len(pcs)):
        order = pcs[inversion:] + pcs[:inversion]
        for octave in range(2, 8):
            pitches = [12 * octave + order[0]]
            for pc in order[1:]:
                pitches.append(pitches[-1] + (pc - pitches[-1]) % 12 or 12)
            if pitches[0] < centre - 10 or pitches[-1] > centre + 16:
                continue
            mean = sum(pitches) / len(pitches)
            anchor = sum(previous) / len(previous) if previous else centre
            cost = abs(mean - anchor) + 0.5 * abs(mean - centre) + 0.01 * inversion
            if best is None or cost < best[0]:
                best = (cost, pitches)
    if best is None:  # cannot happen for pcs inside one octave; keep a safe answer anyway
        return [centre + (pc - centre) % 12 for pc in pcs]
    return best[1]


class _Writer:
    """Adds valid notes (clamped velocity, ends clipped to the duration) to instruments."""

    def __init__(self, duration: float, rng: random.Random, humanize: int):
        self.duration = duration
        self.rng = rng
        self.humanize = humanize

    def add(self, inst: pretty_midi.Instrument, pitch: int, velocity: float, start: float, end: float) -> None:
        end = min(end, self.duration)
        if end - start <= 1e-4 or not 0 <= pitch <= 127:
            return
        jitter = self.rng.randint(-self.humanize, self.humanize) if self.humanize else 0
        vel = int(max(1, min(127, round(velocity + jitter))))
        inst.notes.append(pretty_midi.Note(velocity=vel, pitch=int(pitch), start=start, end=end))


def _piano_pulses_per_beat(arousal: float) -> float:
    if arousal < -0.5:
        return 0.5
    if arousal < 0.0:
        return 1.0
    if arousal < 0.5:
        return 2.0
    return 4.0


def _check_inputs(duration: float, moods: Sequence[SceneMood], options: BaselineOptions) -> float:
    """``duration`` as a float, once it, the moods and the options are known to be usable."""
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration) \
            or duration <= 0:
        raise OptionsError(f"duration must be a positive number of seconds, not {duration!r}")
    if not isinstance(options, BaselineOptions):
        raise OptionsError(f"options must be BaselineOptions, not {type(options).__name__}")
    for mood in moods:
        for name in ("valence", "arousal"):
            value = getattr(mood, name)
            if not -1.0 <= value <= 1.0:
                raise OptionsError(f"mood {name} must be between -1 and 1, not {value}")
    return float(duration)


def _level(arousal: float) -> float:
    """The base velocity of a segment: 50 (calm) to 90 (excited)."""
    return 50.0 + 40.0 * (arousal + 1.0) / 2.0


class _Band:
    """The four instruments and the voicing each chord hands on to the next."""

    def __init__(self, out: _Writer, tonic: int, patterns: dict[int, str]):
        self.out = out
        self.tonic = tonic
        self.patterns = patterns  # arpeggio pattern per segment
        self.pad = pretty_midi.Instrument(PAD_PROGRAM, name="EMSYNC strings")
        self.piano = pretty_midi.Instrument(PIANO_PROGRAM, name="EMSYNC piano")
        self.bass = pretty_midi.Instrument(BASS_PROGRAM, name="EMSYNC bass")
        self.drums = pretty_midi.Instrument(0, is_drum=True, name="EMSYNC drums")
        self.pad_prev: list[int] | None = None
        self.piano_prev: list[int] | None = None

    def play(self, chord: _Chord, seg: _Segment) -> None:
        """Pad, bass and piano for one chord (in that order: the humanising draws follow it)."""
        centre = 60 + round(5 * seg.valence)
        pcs = chord_pitch_classes(self.tonic, chord.degree, chord.minor, seg.valence, chord.harmonic)
        base = _level(seg.arousal)
        self._pad(chord, pcs, centre, base)
        self._bass(chord, seg, pcs, base)
        self._piano(chord, seg, pcs, centre, base)

    def _pad(self, chord: _Chord, pcs: list[int], centre: int, base: float) -> None:
        """The whole chord, restruck on every change and held to the next one."""
        self.pad_prev = _voicing(pcs, centre, self.pad_prev)
        for p in self.pad_prev:
            self.out.add(self.pad, p, base - 8, chord.start, chord.end)

    def _bass(self, chord: _Chord, seg: _Segment, pcs: list[int], base: float) -> None:
        """The root, held (calm), on the beat (moderate) or in eighths (excited)."""
        root = 33 + (pcs[0] - 33) % 12
        fifth = root + 7
        per_beat = 0 if (seg.arousal < -0.3 or seg.final) else (1 if seg.arousal < 0.4 else 2)
        if per_beat == 0:
            self.out.add(self.bass, root, base + 4, chord.start, chord.end)
            return
        step = chord.beat / per_beat
        k = 0
        while chord.start + k * step < chord.end - 1e-4:
            t = chord.start + k * step
            pitch = root if k % 4 in (0, 1) else (fifth if per_beat == 1 else root + 12)
            self.out.add(self.bass, pitch, base + (8 if k == 0 else 0), t, min(t + 0.9 * step, chord.end))
            k += 1

    def _piano(self, chord: _Chord, seg: _Segment, pcs: list[int], centre: int, base: float) -> None:
        """A block chord on the change, then an arpeggio on the pulse (the final chord: held)."""
        triad = _voicing(pcs[:3], centre + 12, self.piano_prev)
        self.piano_prev = triad
        if seg.final:
            for p in triad:
                self.out.add(self.piano, p, base, chord.start, chord.end)
            return
        pulse = chord.beat / _piano_pulses_per_beat(seg.arousal)
        block_end = min(chord.start + pulse, chord.end)
        for p in triad:
            self.out.add(self.piano, p, base + 8, chord.start, block_end)
        pool = sorted({p for p in (q + 12 * o for q in triad for o in (0, 1)) if p <= 108})
        order = _arpeggio(pool, self.patterns[chord.segment])
        hold = pulse * (1.0 if seg.arousal < 0 else 0.8)
        k = 1
        while chord.start + k * pulse < chord.end - 0.05 * pulse:
            t = chord.start + k * pulse
            self.out.add(self.piano, order[(k - 1) % len(order)], base - 4, t, min(t + hold, chord.end))
            k += 1

    def drum(self, seg: _Segment, beat: float) -> None:
        """An aroused segment's kit: a crash on its cut, kick/snare on the beats, hats between."""
        base = _level(seg.arousal)
        self.out.add(self.drums, CRASH, base + 10, seg.start, seg.start + _DRUM_LENGTH)
        self.out.add(self.drums, KICK, base + 10, seg.start, seg.start + _DRUM_LENGTH)
        if seg.final:
            return
        hats = 4 if seg.arousal >= 0.75 else 2
        for b in range(round((seg.end - seg.start) / beat)):
            t = seg.start + b * beat
            if b:  # beat 0 already has its kick (and crash)
                self.out.add(self.drums, KICK if b % 2 == 0 else SNARE, base + (10 if b % 2 == 0 else 5),
                             t, t + _DRUM_LENGTH)
            for h in range(hats):
                th = t + h * beat / hats
                self.out.add(self.drums, CLOSED_HAT, base - 15 + (6 if h == 0 else 0), th,
                             min(th + _DRUM_LENGTH / 2, seg.end))

    def midi(self) -> pretty_midi.PrettyMIDI:
        """The instruments that play, notes in time order, in one MIDI file."""
        pm = pretty_midi.PrettyMIDI(resolution=MIDI_RESOLUTION, initial_tempo=MIDI_TEMPO)
        for inst in (self.pad, self.piano, self.bass, self.drums):
            if inst.notes:
                inst.notes.sort(key=lambda n: (n.start, n.pitch))
                pm.instruments.append(inst)
        return pm


def arrange(cuts: Sequence[float], duration: float, moods: Sequence[SceneMood],
            options: BaselineOptions = BaselineOptions()) -> pretty_midi.PrettyMIDI:
    """Arrange a score of ``duration`` seconds whose chords change exactly on every cut.

    ``cuts`` are seconds from the timeline's start (any order; see :func:`clean_cuts`),
    ``moods`` give valence/arousal over time; each scene takes the mood overlapping it most
    (no moods: neutral). Returns a :class:`pretty_midi.PrettyMIDI` with a strings pad, a
    piano, a bass and (for aroused scenes) drums; no note extends past ``duration``.
    """
    duration = _check_inputs(duration, moods, options)
    rng = random.Random(options.seed)  # one stream, drawn in a fixed order: key, chords, patterns, humanising
    tonic = options.key if options.key is not None else rng.randrange(12)
    kept = clean_cuts(cuts, duration)
    segments = _segments(kept, duration, moods, options.final_hold)
    chords = _plan_chords(segments, rng, options)
    logger.debug("baseline: %d cuts, %d segments, %d chords, tonic %d", len(kept), len(segments),
                 len(chords), tonic)
    patterns = {i: rng.choice(("up", "down", "updown", "alberti")) for i in range(len(segments))}
    band = _Band(_Writer(duration, rng, options.humanize), tonic, patterns)
    for chord in chords:
        band.play(chord, segments[chord.segment])
    if options.drums:
        for index, seg in enumerate(segments):
            if seg.arousal >= options.drums_arousal:
                band.drum(seg, next(c.beat for c in chords if c.segment == index))
    return band.midi()


def _arpeggio(pool: list[int], pattern: str) -> list[int]:
    """The order in which the piano walks the chord tones ``pool`` (ascending)."""
    if len(pool) < 3:
        return pool or [60]
    if pattern == "down":
        return pool[::-1]
    if pattern == "updown":
        return pool + pool[-2:0:-1]
    if pattern == "alberti":
        low, mid, high = pool[0], pool[len(pool) // 2], pool[-1]
        return [low, high, mid, high]
    return pool
