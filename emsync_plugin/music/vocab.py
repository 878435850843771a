"""The event vocabulary of the learned generator (EMSYNC-style, after Performance RNN).

A piece is a stream of tokens:

* ``NOTE_ON(group, pitch)`` and ``NOTE_OFF(group, pitch)`` for each instrument group;
* ``SHIFT(k)``: move time forward by ``k`` units of ``shift_ms`` milliseconds (absolute time,
  no bar grid; longer gaps chain several shifts);
* ``CHORD``: emitted just before the note-ons of an onset with at least ``chord_notes``
  simultaneous notes (EMSYNC's chord token), so a chord can be asked for at a cut;
* ``PAD``, ``BOS``, ``EOS``;
* with ``keys``: a key token after ``BOS`` and after the time shift that reaches a scene
  boundary: the key the scene is in (``keys=24``: C major .. B minor) or only its mode
  (``keys=2``: MAJOR, MINOR), stated once so that the notes can follow it.

Everything that defines the vocabulary (groups, General MIDI programs, pitch range, shift unit
and count) is a :class:`Vocab` built from a JSON dict that travels inside the model files
(ONNX ``metadata_props`` and the training checkpoint). The runtime never repeats it.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property

SPECIALS = ("PAD", "BOS", "EOS", "CHORD")
PITCH_CLASSES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")


@dataclass(frozen=True)
class Note:
    group: int  # index into Vocab.groups
    pitch: int
    start: float  # seconds
    end: float


@dataclass(frozen=True)
class Vocab:
    groups: tuple[str, ...]
    programs: tuple[int, ...]  # General MIDI program per group (0-based)
    pitch_min: int
    pitch_max: int  # inclusive
    shift_ms: int
    max_shift: int  # SHIFT(1) .. SHIFT(max_shift)
    chord_notes: int = 3
    keys: int = 0  # key tokens at scene starts: 0 (none), 2 (the mode) or 24 (tonic and mode)

    def __post_init__(self):
        if self.keys not in (0, 2, 24):
            raise ValueError(f"keys must be 0, 2 or 24, not {self.keys}")

    # ---- layout: specials | note-on (group-major) | note-off | shifts | keys ----------
    # (computed once: the decoder reads them for every token)
    @cached_property
    def n_pitches(self) -> int:
        return self.pitch_max - self.pitch_min + 1

    @cached_property
    def on_base(self) -> int:
        return len(SPECIALS)

    @cached_property
    def off_base(self) -> int:
        return self.on_base + len(self.groups) * self.n_pitches

    @cached_property
    def shift_base(self) -> int:
        return self.off_base + len(self.groups) * self.n_pitches

    @cached_property
    def shift_end(self) -> int:
        return self.shift_base + self.max_shift

    @cached_property
    def size(self) -> int:
        return self.shift_end + self.keys

    @cached_property
    def shift_seconds(self) -> float:
        return self.shift_ms / 1000.0

    def special(self, name: str) -> int:
        return SPECIALS.index(name)

    @cached_property
    def pad(self) -> int:
        return self.special("PAD")

    @cached_property
    def bos(self) -> int:
        return self.special("BOS")

    @cached_property
    def eos(self) -> int:
        return self.special("EOS")

    @cached_property
    def chord(self) -> int:
        return self.special("CHORD")

    def key(self, major: bool, tonic: int = 0) -> int:
        """The token of a key: ``tonic`` a pitch class (not told with ``keys=2``)."""
        if self.keys == 2:
            return self.shift_end + (0 if major else 1)
        if self.keys == 24:
            return self.shift_end + (0 if major else 12) + tonic % 12
        raise ValueError("this vocabulary has no key tokens")

    def key_of(self, token: int) -> tuple[int | None, bool]:
        """``(tonic, major)`` of a key token; the tonic is None with ``keys=2``."""
        i = token - self.shift_end
        if self.keys == 2:
            return None, i == 0
        return i % 12, i < 12

    def note_on(self, group: int, pitch: int) -> int:
        return self.on_base + group * self.n_pitches + (pitch - self.pitch_min)

    def note_off(self, group: int, pitch: int) -> int:
        return self.off_base + group * self.n_pitches + (pitch - self.pitch_min)

    def shift(self, units: int) -> int:
        if not 1 <= units <= self.max_shift:
            raise ValueError(f"shift of {units} units is outside 1..{self.max_shift}")
        return self.shift_base + units - 1

    def shifts(self, units: int) -> list[int]:
        """The SHIFT tokens that move time on by ``units`` (longest first; none for 0)."""
        out = []
        while units > 0:
            k = min(units, self.max_shift)
            out.append(self.shift(k))
            units -= k
        return out

    def kind(self, token: int) -> str:
        """"special", "on", "off", "shift" or "key"."""
        if token < self.on_base:
            return "special"
        if token < self.off_base:
            return "on"
        if token < self.shift_base:
            return "off"
        if token < self.shift_end:
            return "shift"
        if token < self.size:
            return "key"
        raise ValueError(f"token {token} is outside the vocabulary of {self.size}")

    def shift_units(self, token: int) -> int:
        return token - self.shift_base + 1

    def group_pitch(self, token: int) -> tuple[int, int]:
        base = self.on_base if token < self.off_base else self.off_base
        g, p = divmod(token - base, self.n_pitches)
        return g, p + self.pitch_min

    def name(self, token: int) -> str:
        kind = self.kind(token)
        if kind == "special":
            return SPECIALS[token]
        if kind == "shift":
            return f"SHIFT_{self.shift_units(token) * self.shift_ms}ms"
        if kind == "key":
            tonic, major = self.key_of(token)
            mode = "MAJOR" if major else "MINOR"
            return mode if tonic is None else f"KEY_{PITCH_CLASSES[tonic]}_{mode}"
        g, p = self.group_pitch(token)
        return f"{'ON' if kind == 'on' else 'OFF'}_{self.groups[g]}_{p}"

    # ---- (de)serialisation ---------------------------------------------------------------
    def to_json(self) -> str:
        d = asdict(self)
        if not self.keys:
            del d["keys"]  # a vocabulary without key tokens reads as it did before they existed
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | dict) -> Vocab:
        d = json.loads(text) if isinstance(text, str) else dict(text)
        d["groups"] = tuple(d["groups"])
        d["programs"] = tuple(d["programs"])
        return cls(**d)

    # ---- notes <-> tokens ------------------------------------------------------------------
    def encode(self, notes: Iterable[Note]) -> tuple[list[int], list[float]]:
        """Tokens for ``notes`` and the time (seconds) at which each token sits.

        Times are quantised to the shift unit; pitches outside the range are folded in by
        octaves; a note that would end where it starts lasts one unit.
        """
        unit = self.shift_seconds
        events: dict[int, tuple[list, list]] = {}
        for n in notes:
            pitch = n.pitch
            while pitch < self.pitch_min:
                pitch += 12
            while pitch > self.pitch_max:
                pitch -= 12
            a = int(round(n.start / unit))
            b = max(a + 1, int(round(n.end / unit)))
            events.setdefault(a, ([], []))[1].append((n.group, pitch))
            events.setdefault(b, ([], []))[0].append((n.group, pitch))
        tokens: list[int] = []
        times: list[float] = []
        sounding: dict[tuple[int, int], int] = {}
        now = 0
        for step in sorted(events):
            offs, ons = events[step]
            for tok in self.shifts(step - now):
                tokens.append(tok)
                times.append(now * unit)
                now += self.shift_units(tok)
            for key in sorted(set(offs)):
                if sounding.get(key, 0) > 0:
                    sounding[key] -= 1
                    tokens.append(self.note_off(*key))
                    times.append(now * unit)
            ons = sorted(set(ons))
            # a re-struck note that is still sounding is released first
            for key in ons:
                if sounding.get(key, 0) > 0:
                    sounding[key] -= 1
                    tokens.append(self.note_off(*key))
                    times.append(now * unit)
            if len(ons) >= self.chord_notes:
                tokens.append(self.chord)
                times.append(now * unit)
            for key in ons:
                sounding[key] = sounding.get(key, 0) + 1
                tokens.append(self.note_on(*key))
                times.append(now * unit)
        return tokens, times

    def decode(self, tokens: Sequence[int], end: float | None = None) -> list[Note]:
        """Notes from tokens; notes still sounding are closed at ``end`` (default: last time)."""
        unit = self.shift_seconds
        now = 0
        open_: dict[tuple[int, int], list[int]] = {}
        notes: list[Note] = []
        for t in tokens:
            kind = self.kind(int(t))
            if kind == "shift":
                now += self.shift_units(int(t))
            elif kind == "on":
                open_.setdefault(self.group_pitch(int(t)), []).append(now)
            elif kind == "off":
                key = self.group_pitch(int(t))
                if open_.get(key):
                    start = open_[key].pop(0)
                    if now > start:
                        notes.append(Note(key[0], key[1], start * unit, now * unit))
            elif int(t) == self.eos:
                break
        stop = end if end is not None else now * unit
        for key, starts in open_.items():
            for start in starts:
                if stop > start * unit:
                    notes.append(Note(key[0], key[1], start * unit, stop))
        notes.sort(key=lambda n: (n.start, n.group, n.pitch))
        return notes


def boundary_offsets(times: Sequence[float], boundaries: Sequence[float], cap: float) -> list[float]:
    """For each token time, seconds until the next boundary at or after it, capped at ``cap``."""
    import bisect

    bs = sorted(boundaries)
    out = []
    for t in times:
        i = bisect.bisect_left(bs, t - 1e-9)
        out.append(min(cap, bs[i] - t) if i < len(bs) else cap)
    return out
