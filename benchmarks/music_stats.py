"""Statistics of a list of notes, shared by the generator benchmarks (numpy only)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])


def pitch_class_entropy(notes, by_count: bool = False) -> float:
    """Entropy (bits) of the duration-weighted pitch-class histogram (``by_count``: each note
    counts once); 3.58 is uniform."""
    h = np.zeros(12)
    for n in notes:
        h[n.pitch % 12] += 1.0 if by_count else n.end - n.start
    if h.sum() == 0:
        return 0.0
    p = h / h.sum()
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def scale_consistency(notes) -> float:
    """Largest share of notes (by count) inside one major scale (its relative minor included)."""
    if not notes:
        return 0.0
    pcs = np.array([n.pitch % 12 for n in notes])
    best = 0.0
    for tonic in range(12):
        scale = (MAJOR + tonic) % 12
        best = max(best, float(np.isin(pcs, scale).mean()))
    return best


def new_pitch_class_at_cuts(notes, cuts: Sequence[float], window: float = 0.05) -> list[bool]:
    """For each cut, whether the notes starting within ``window`` of it bring a pitch class
    that none of the notes sounding just before (started earlier, still on at ``cut - window``) has."""
    out = []
    for c in cuts:
        struck = {n.pitch % 12 for n in notes if abs(n.start - c) <= window}
        held = {n.pitch % 12 for n in notes if n.start < c - window and n.end > c - window}
        out.append(bool(struck - held))
    return out


def _grid(notes, duration: float, step: float = 0.05) -> np.ndarray:
    n = max(1, int(np.ceil(duration / step)))
    count = np.zeros(n)
    for note in notes:
        a, b = int(note.start / step), int(np.ceil(note.end / step))
        count[a:min(b, n)] += 1
    return count


def polyphony(notes, duration: float) -> float:
    """Mean number of notes sounding, over the time something sounds."""
    g = _grid(notes, duration)
    return float(g[g > 0].mean()) if (g > 0).any() else 0.0


def empty_share(notes, duration: float) -> float:
    """Share of time with no note sounding."""
    return float((_grid(notes, duration) == 0).mean())


def note_density(notes, duration: float) -> float:
    return len(notes) / max(duration, 1e-9)


def longest_loop(tokens: Sequence[int], min_len: int = 4, max_len: int = 32) -> int:
    """Most consecutive repeats of any token pattern of length min_len..max_len (1 = no loop)."""
    t = list(tokens)
    best = 1
    for n in range(min_len, max_len + 1):
        i = 0
        while i + 2 * n <= len(t):
            reps = 1
            while i + (reps + 1) * n <= len(t) and t[i + reps * n:i + (reps + 1) * n] == t[i:i + n]:
                reps += 1
            best = max(best, reps)
            i += max(1, (reps - 1) * n) if reps > 1 else 1
    return best


def summary(notes, duration: float, tokens: Sequence[int] | None = None) -> dict:
    out = {
        "pc_entropy": pitch_class_entropy(notes),
        "scale_consistency": scale_consistency(notes),
        "polyphony": polyphony(notes, duration),
        "notes_per_s": note_density(notes, duration),
        "empty_share": empty_share(notes, duration),
    }
    if tokens is not None:
        out["max_loop_repeats"] = longest_loop(tokens)
    return out
