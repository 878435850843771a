"""Emotion classes → valence/arousal, face/cue fusion, and smoothing across scenes.

Each expression class sits at its Russell & Mehrabian (1977) pleasure/arousal coordinates scaled
to ±0.8, as in EMSYNC; a class distribution maps to the expected value of that Gaussian mixture
(:func:`expected_va`). Faces and cues are blended by how much face a scene shows (:func:`fuse`),
and scenes are smoothed with similar neighbours only, so a real change at a cut stays sharp
(:func:`smooth`). Tables and reasons: ``docs/emotion.md``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

#: The face model's classes, in FER2013 order.
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Russell & Mehrabian (1977) pleasure/arousal of each class's term (docs/emotion.md).
RUSSELL_MEHRABIAN_1977: dict[str, tuple[float, float]] = {
    "angry": (-0.51, 0.59),
    "disgust": (-0.60, 0.35),
    "fear": (-0.64, 0.60),
    "happy": (0.81, 0.51),
    "sad": (-0.63, -0.27),
    "surprise": (0.40, 0.67),
    "neutral": (0.0, 0.0),
}

#: Largest magnitude of a class centre after scaling.
CENTRE_MAX = 0.8
_SCALE = CENTRE_MAX / max(abs(c) for va in RUSSELL_MEHRABIAN_1977.values() for c in va)

#: Class centres used for the mapping: the table above scaled to ±0.8.
CENTRES: dict[str, tuple[float, float]] = {
    k: (round(v * _SCALE, 4), round(a * _SCALE, 4)) for k, (v, a) in RUSSELL_MEHRABIAN_1977.items()
}

#: Width of each class's Gaussian (EMSYNC's per-class Gaussian; only :func:`spread` uses it).
CLASS_SIGMA = 0.2

FACE_MAX = 0.8
MIN_ALPHA = 0.15
SMOOTH_THRESHOLD = 0.35
RELIABLE_SECONDS = 2.0


def normalise(probs: Mapping[str, float]) -> dict[str, float]:
    """Probabilities over the known classes, summing to 1 (unknown class names are ignored)."""
    known = {k: max(0.0, float(p)) for k, p in probs.items() if k in CENTRES and math.isfinite(float(p))}
    total = sum(known.values())
    if total <= 0.0:
        raise ValueError(f"no probability mass on the known classes {CLASSES}: {dict(probs)}")
    return {k: p / total for k, p in known.items()}


def expected_va(probs: Mapping[str, float]) -> tuple[float, float]:
    """Valence/arousal of a class distribution: the expected value of EMSYNC's Gaussian mixture."""
    p = normalise(probs)
    v = sum(w * CENTRES[k][0] for k, w in p.items())
    a = sum(w * CENTRES[k][1] for k, w in p.items())
    return v, a


def spread(probs: Mapping[str, float], sigma: float = CLASS_SIGMA) -> float:
    """Standard deviation of the mixture around its mean (0.2 for a certain class, larger when torn)."""
    p = normalise(probs)
    mv, ma = expected_va(p)
    var = sum(w * ((CENTRES[k][0] - mv) ** 2 + (CENTRES[k][1] - ma) ** 2) / 2 for k, w in p.items())
    return math.sqrt(sigma**2 + var)


def face_alpha(coverage: float, weight: float) -> float:
    """Weight of the face estimate in the fusion (docs/emotion.md); 0 below MIN_ALPHA."""
    coverage = min(1.0, max(0.0, coverage))
    weight = min(1.0, max(0.0, weight))
    alpha = FACE_MAX * coverage * weight
    return alpha if alpha >= MIN_ALPHA else 0.0


def fuse(faces_va: tuple[float, float] | None, alpha: float, cues_va: tuple[float, float]) -> tuple[float, float]:
    """``α · faces + (1 − α) · cues``; cues only when there is no face estimate."""
    if faces_va is None or alpha <= 0.0:
        return cues_va
    alpha = min(1.0, alpha)
    return (
        alpha * faces_va[0] + (1 - alpha) * cues_va[0],
        alpha * faces_va[1] + (1 - alpha) * cues_va[1],
    )


def reliability(duration: float) -> float:
    return min(1.0, max(0.1, duration / RELIABLE_SECONDS))


def smooth(
    values: Sequence[tuple[float, float]],
    durations: Sequence[float],
    locked: Sequence[bool],
    threshold: float = SMOOTH_THRESHOLD,
) -> list[tuple[float, float]]:
    """Edge-preserving smoothing of per-scene (valence, arousal) in timeline order.

    A scene is averaged with its immediate neighbours whose mood lies within ``threshold`` of
    its own; ``locked`` scenes are returned unchanged and are never used as neighbours. The
    input is not modified (every scene is smoothed from the original values, not from already
    smoothed ones).
    """
    n = len(values)
    if not (len(durations) == len(locked) == n):
        raise ValueError("values, durations and locked must have the same length")
    out = []
    for i, (v, a) in enumerate(values):
        if locked[i]:
            out.append((v, a))
            continue
        w = 2.0 * reliability(durations[i])
        sv, sa, sw = w * v, w * a, w
        for j in (i - 1, i + 1):
            if 0 <= j < n and not locked[j]:
                nv, na = values[j]
                if math.hypot(nv - v, na - a) <= threshold:
                    r = reliability(durations[j])
                    sv, sa, sw = sv + r * nv, sa + r * na, sw + r
        out.append((sv / sw, sa / sw))
    return out


def clip_va(v: float, a: float, limit: float = 1.0) -> tuple[float, float]:
    return max(-limit, min(limit, v)), max(-limit, min(limit, a))
