"""What a chord onset is: the one definition the report, the tests and the benchmarks share."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pretty_midi

CHORD_WINDOW = 0.05  # seconds either side of a cut
CHORD_NOTES = 3


def chord_onsets(midi: pretty_midi.PrettyMIDI, window: float = CHORD_WINDOW, min_notes: int = CHORD_NOTES) -> np.ndarray:
    """Times where ``min_notes`` or more notes (drums excluded) start within ``window``."""
    starts = np.sort([n.start for inst in midi.instruments if not inst.is_drum for n in inst.notes])
    if len(starts) < min_notes:
        return np.array([])
    out: list[float] = []
    for i, t in enumerate(starts):
        j = np.searchsorted(starts, t + window, side="right")
        if j - i >= min_notes and (not out or t - out[-1] > window):
            out.append(float(t))
    return np.array(out)


def cut_hits(cuts: Sequence[float], midi: pretty_midi.PrettyMIDI, tolerance: float = CHORD_WINDOW) -> list[bool]:
    """For each cut, whether a chord starts within ``tolerance`` of it."""
    onsets = chord_onsets(midi)
    return [bool(len(onsets)) and float(np.min(np.abs(onsets - c))) <= tolerance for c in cuts]
