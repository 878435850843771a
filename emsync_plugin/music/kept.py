"""Kept music in decoder time: a re-score's kept spans as forced tokens for the generator.

Inside a kept span the generator does not sample: the span's notes are fed through the model as
tokens (:func:`forced_tokens`), so the music after it continues from them, and the cuts inside
it are the kept music's (:func:`outside_kept`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .decoding import Clock
from .vocab import Note, Vocab

if TYPE_CHECKING:
    from ..rescore import KeptSpan


@dataclass(frozen=True)
class Forced:
    """A kept span in decoder time units, with the kept notes the vocabulary can play."""

    start: int
    end: int
    notes: tuple[Note, ...]  # seconds, absolute


def forced_spans(kept: Sequence[KeptSpan], vocab: Vocab, duration: float) -> list[Forced]:
    """The kept spans in decoder time units (overlapping or touching ones merged, cut at the
    end), each with its notes in the vocabulary's groups: a note's General MIDI program picks
    the group; drums, other programs and pitches out of range are left out (the splice still
    puts them in the final score)."""
    unit = vocab.shift_seconds
    end = int(round(duration / unit))
    merged: list[list] = []
    for span in sorted(kept, key=lambda k: k.start):
        a, b = max(0, int(round(span.start / unit))), min(end, int(round(span.end / unit)))
        if b <= a:
            continue
        notes = [Note(vocab.programs.index(prog), int(n.pitch), float(n.start), float(n.end))
                 for prog, drum, _, n in span.notes
                 if not drum and prog in vocab.programs and vocab.pitch_min <= n.pitch <= vocab.pitch_max]
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
            merged[-1][2].extend(notes)
        else:
            merged.append([a, b, notes])
    return [Forced(a, b, tuple(sorted(notes, key=lambda n: (n.start, n.group, n.pitch)))) for a, b, notes in merged]


def outside_kept(targets: list[int], forced: Sequence[Forced]) -> list[int]:
    """The clock's targets without those inside kept spans (or at their start): those chords
    are the kept music's. A final chord inside kept music moves to the span's end (at the
    timeline's end the clock finishes there instead)."""
    final = next((f.end for f in forced if f.start <= targets[-1] < f.end), targets[-1])
    return sorted({t for t in targets[:-1] + [final] if not any(f.start <= t < f.end for f in forced)})


def forced_tokens(span: Forced, clock: Clock) -> list[int]:
    """The tokens of a kept span from ``clock.now`` (its start): what sounds there is
    released, the kept notes follow, and time moves on to the span's end, where the kept
    notes still sounding are released."""
    v, unit = clock.vocab, clock.vocab.shift_seconds
    length = span.end - clock.now
    if length <= 0:
        return []
    notes = []
    for n in span.notes:
        a = max(0, int(round(n.start / unit)) - clock.now)
        if a < length:
            b = min(length, max(a + 1, int(round(n.end / unit)) - clock.now))
            notes.append(Note(n.group, n.pitch, a * unit, b * unit))
    tokens, _ = v.encode(notes)
    moved = sum(v.shift_units(t) for t in tokens if v.kind(t) == "shift")
    return [v.note_off(*k) for k in sorted(clock.sounding)] + tokens + v.shifts(length - moved)
