"""Emotion classes → valence/arousal, face/cue fusion, and smoothing across scenes.

Classes to valence/arousal (EMSYNC, Sulun, Viana & Davies 2025, arXiv:2502.10154, §"mapping")
    The face model outputs probabilities over seven discrete classes (FER2013 order: angry,
    disgust, fear, happy, sad, surprise, neutral); the music generator wants continuous
    valence/arousal. As in EMSYNC, each class is placed at its coordinates in the
    pleasure/arousal plane measured by Russell & Mehrabian (1977, "Evidence for a three-factor
    theory of emotions", *J. Research in Personality* 11:273-294; the values as tabulated for
    these terms in later work, e.g. Gebhard 2005, "ALMA: a layered model of affect", AAMAS):

    =========  =========  =======
    class      pleasure   arousal
    =========  =========  =======
    angry        −0.51      0.59
    disgust      −0.60      0.35
    fear         −0.64      0.60
    happy         0.81      0.51
    sad          −0.63     −0.27
    surprise      0.40      0.67
    neutral       0.00      0.00   (the origin: no published term; neutral by definition)
    =========  =========  =======

    and the coordinates are scaled by ``0.8 / 0.81`` so that the largest magnitude (happy's
    pleasure) is 0.8: the centres stay inside the generator's −1..1 range with headroom.

    EMSYNC treats each class ``k`` as a Gaussian ``N(μₖ, σ²I)`` centred on its coordinates and the
    classifier's output ``p`` as mixture weights. The mixture's expected value is the
    probability-weighted mean of the centres, ``E[x] = Σₖ pₖ μₖ`` (the shared σ drops out),
    which is what :func:`expected_va` returns; :func:`spread` gives the mixture's standard
    deviation around that mean (``σ² + Σₖ pₖ‖μₖ − E[x]‖²``, per axis averaged), a measure of
    how undecided the classifier is.

Fusion of faces and cues (:func:`fuse`)
    ``x = α · x_faces + (1 − α) · x_cues`` with ``α = FACE_MAX · coverage · weight``:
    ``coverage`` is the fraction of the scene's analysed frames in which a face was found,
    ``weight`` the mean face weight of those frames (``faces.frame_face_probs``: detection
    confidence × face size, in [0, 1]). ``FACE_MAX = 0.8``: even a scene full of large confident
    faces keeps 20 % of the picture-and-sound cues (a smiling face in a storm is not pure joy).
    No faces → ``α = 0`` → cues only. Below ``MIN_ALPHA = 0.15`` (a face glimpsed in one or two
    frames, or small and doubtful) the faces are ignored: such a detection is more often a
    false one (Haar cascades fire on textures) than the scene's character.

Smoothing across scenes (:func:`smooth`)
    Per-scene estimates are noisy (a few frames, a short shot), so each analysed scene is
    averaged with its immediate neighbours - but only with neighbours whose mood is within
    ``SMOOTH_THRESHOLD`` (Euclidean distance in the valence/arousal plane) of its own, so a real
    change of mood at a cut is kept sharp (an edge-preserving filter in the manner of a
    bilateral/sigma filter, Lee 1983 "Digital image smoothing and the sigma filter"). Weights:
    the scene itself ``2·r``, each admitted neighbour ``r``, with ``r = clip(duration / 2 s, 0.1,
    1)`` the reliability of a scene's estimate (a 3-frame shot counts less than a 5 s one).
    Scenes whose mood was set by the editor (CLI, marker, whole-timeline values) or that have no
    picture are *locked*: never smoothed and never pulling their neighbours.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

#: The face model's classes, in FER2013 order.
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Russell & Mehrabian (1977) pleasure/arousal of each class's term (see the module docstring).
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
    """Weight of the face estimate in the fusion (see the module docstring); 0 below MIN_ALPHA."""
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
