"""Statistics of a list of notes, shared by the generator benchmarks (numpy only)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])

#: key profiles the decoder and the label formula do NOT use (they use Krumhansl-Kessler's):
#: Temperley-Kostka-Payne (Temperley 2007) and Aarden-Essen (Aarden 2003), the weights music21
#: 10 ships (``music21.analysis.discrete``; ``Stream.analyze('key')`` is Aarden-Essen's).
PROFILES = {
    "temperley": ((0.748, 0.06, 0.488, 0.082, 0.67, 0.46, 0.096, 0.715, 0.104, 0.366, 0.057, 0.4),
                  (0.712, 0.084, 0.474, 0.618, 0.049, 0.46, 0.105, 0.747, 0.404, 0.067, 0.133, 0.33)),
    "aarden": ((17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587, 0.291248, 22.062, 0.145624, 8.15494,
                0.232998, 4.95122),
               (18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362, 0.702494, 18.6161, 4.56621, 1.93186,
                7.37619, 1.75623)),
}


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


def mode_score(notes, profile: str = "temperley") -> float:
    """Best major key's correlation minus best minor key's (Pearson, duration-weighted
    pitch-class histogram against the 12 rotations of ``PROFILES[profile]``, as music21's key
    finder does): > 0 reads major. 0 for no notes."""
    h = np.zeros(12)
    for n in notes:
        h[n.pitch % 12] += n.end - n.start
    if h.sum() == 0 or np.ptp(h) == 0:
        return 0.0
    best = []
    for prof in PROFILES[profile]:
        rot = np.array([np.roll(prof, t) for t in range(12)])
        best.append(max(float(np.corrcoef(h, r)[0, 1]) for r in rot))
    return best[0] - best[1]


def chance_hits(chords: np.ndarray, duration: float, tolerance: float, n: int = 2000, seed: int = 0) -> float:
    """Share of random times (uniform over the score) within ``tolerance`` of a chord onset:
    the rate a score's chords would hit cuts that fell anywhere."""
    if not len(chords):
        return 0.0
    t = np.random.default_rng(seed).uniform(0, duration, n)
    return float((np.min(np.abs(t[:, None] - np.asarray(chords)[None, :]), axis=1) <= tolerance).mean())


def groups_sounding(notes) -> int:
    """Number of instrument groups with at least one note."""
    return len({n.group for n in notes})


def harmony_changes(notes, cuts: Sequence[float]) -> float:
    """Share of cuts where the notes starting within 50 ms bring a pitch class not sounding
    just before (see :func:`new_pitch_class_at_cuts`); nan without cuts."""
    got = new_pitch_class_at_cuts(notes, cuts)
    return float(np.mean(got)) if got else float("nan")


def longest_rest(notes, duration: float, step: float = 0.05) -> float:
    """Longest stretch (s) with no note sounding."""
    g = _grid(notes, duration, step) == 0
    best = run = 0
    for x in g:
        run = run + 1 if x else 0
        best = max(best, run)
    return best * step


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
