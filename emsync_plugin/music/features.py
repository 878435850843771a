"""Emotion labels measured from the notes themselves: the valence/arousal formula of emsync.

The training corpus carries no emotion annotation, so the generator's valence/arousal labels
are derived from the music by one fixed formula (:func:`measure` the raw features: key and
mode, consonance, density, register, polyphony; :func:`labels` their weighted, corpus-normalised
sum), and the same formula measures generated music in the benchmarks. Its sources and every
definition: docs/music.md. The weights and corpus statistics travel inside the model files
(:class:`LabelStats`); valence 0 is the corpus's average window, not an absolute neutral.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .vocab import Note

# Krumhansl & Kessler (1982) probe-tone ratings, tonic first (C, C#, ..., B for C major/minor).
KK_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
KK_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# interval classes (semitones mod 12) counted as consonant: P1/P8, m3, M3, P4, P5, m6, M6
CONSONANT_CLASSES = (0, 3, 4, 5, 7, 8, 9)
# ln(rate + DENSITY_FLOOR): one onset in 4 s is the floor, so a held chord is not -inf
DENSITY_FLOOR = 0.25
Z_CLIP = 3.0

# feature names used by the label formula, in LabelStats order
LABEL_FEATURES = ("mode", "consonance", "log_onset_rate", "log_density", "register", "polyphony")
DEFAULT_VALENCE_WEIGHTS = {"mode": 0.60, "consonance": 0.30, "register": 0.10}
DEFAULT_AROUSAL_WEIGHTS = {"log_onset_rate": 0.55, "log_density": 0.15, "register": 0.20, "polyphony": 0.10}


def _rotated_profiles() -> np.ndarray:
    """The 24 key profiles (12 major then 12 minor), each standardised to mean 0, norm 1."""
    rows = []
    for base in (KK_MAJOR, KK_MINOR):
        b = np.asarray(base, dtype=np.float64)
        for tonic in range(12):
            rows.append(np.roll(b, tonic))
    p = np.asarray(rows)
    p = p - p.mean(axis=1, keepdims=True)
    return p / np.linalg.norm(p, axis=1, keepdims=True)


_PROFILES = _rotated_profiles()
_CONSONANT = np.zeros(12, dtype=bool)
_CONSONANT[list(CONSONANT_CLASSES)] = True


@dataclass(frozen=True)
class Features:
    """Raw musical features of the notes sounding in a window (defined in docs/music.md)."""

    start: float
    end: float
    n_notes: int  # notes sounding in the window
    n_onsets: int  # notes starting in the window
    mode: float  # best major minus best minor key correlation, in [-2, 2]
    key_tonic: int  # 0 = C ... 11 = B; -1 when nothing sounds
    key_mode: str  # "major", "minor" or "" when nothing sounds
    key_strength: float  # correlation of the best key
    consonance: float  # share of consonant vertical pairs, NaN without pairs
    n_pairs: int  # vertical pairs counted for consonance
    density: float  # note onsets per second
    onset_rate: float  # distinct onset times per second
    register: float  # duration-weighted mean MIDI pitch, NaN when nothing sounds
    pitch_range: float  # highest minus lowest sounding pitch (semitones)
    polyphony: float  # mean number of notes sounding while any sounds

    @property
    def empty(self) -> bool:
        return self.n_notes == 0

    @property
    def key(self) -> tuple[int, str]:
        """``(tonic pitch class, "major"|"minor")``; ``(-1, "")`` for an empty window."""
        return self.key_tonic, self.key_mode

    @property
    def key_name(self) -> str:
        return f"{PITCH_NAMES[self.key_tonic]} {self.key_mode}" if self.key_tonic >= 0 else ""

    @property
    def log_density(self) -> float:
        return math.log(self.density + DENSITY_FLOOR)

    @property
    def log_onset_rate(self) -> float:
        return math.log(self.onset_rate + DENSITY_FLOOR)

    def value(self, name: str) -> float:
        """A label feature by name (:data:`LABEL_FEATURES`)."""
        return float(getattr(self, name))


def notes_to_array(notes: Iterable[Note] | np.ndarray) -> np.ndarray:
    """``[group, pitch, start, end]`` rows (float64) from :class:`Note` objects or an array."""
    if isinstance(notes, np.ndarray):
        arr = np.asarray(notes, dtype=np.float64)
        return arr.reshape(-1, 4) if arr.size else np.zeros((0, 4))
    rows = [(n.group, n.pitch, n.start, n.end) for n in notes]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def _empty(start: float, end: float, n_onsets: int = 0) -> Features:
    nan = float("nan")
    return Features(start, end, 0, n_onsets, 0.0, -1, "", 0.0, nan, 0, 0.0, 0.0, nan, 0.0, 0.0)


def key_profiles() -> np.ndarray:
    """The 24 standardised key profiles, rows as in :func:`key_correlations` (a copy)."""
    return _PROFILES.copy()


def key_correlations(histogram: np.ndarray) -> np.ndarray:
    """Pearson correlations of a 12-bin pitch-class histogram with the 24 KK key profiles
    (index ``k < 12``: major with tonic ``k``; ``12 + k``: minor with tonic ``k``). Zeros for a
    flat (or empty) histogram, which matches no key."""
    h = np.asarray(histogram, dtype=np.float64) - np.mean(histogram)
    norm = np.linalg.norm(h)
    if norm < 1e-12:
        return np.zeros(24)
    return _PROFILES @ (h / norm)


def _consonance(pitch: np.ndarray, s: np.ndarray, e: np.ndarray, onsets: np.ndarray) -> tuple[float, int]:
    """The share of consonant pairs among the notes sounding together at each onset, and the
    number of pairs (NaN and 0 without any pair)."""
    if not onsets.size or pitch.size <= 1:
        return float("nan"), 0
    lo = int(pitch.min())
    span = int(pitch.max()) - lo + 1
    # active[t, i]: note i sounds at onset t (its start <= t < its end)
    active = (s[None, :] <= onsets[:, None]) & (e[None, :] > onsets[:, None])
    counts = np.zeros((onsets.size, span))
    rows, cols = np.nonzero(active)
    np.add.at(counts, (rows, pitch[cols] - lo), 1.0)
    diff = np.abs(np.arange(span)[:, None] - np.arange(span)[None, :]) % 12
    cons = _CONSONANT[diff].astype(np.float64)
    k = counts.sum(axis=1)
    pairs = (k * (k - 1) / 2).sum()
    # ordered pairs through the consonance matrix, minus each note paired with itself
    good = (((counts @ cons) * counts).sum() - k.sum()) / 2
    n_pairs = int(round(pairs))
    return (float(good / pairs) if n_pairs > 0 else float("nan")), n_pairs


def _covered(a: np.ndarray, b: np.ndarray) -> float:
    """The length of the union of the intervals ``a[i] .. b[i]``: a new stretch starts where
    an interval begins after everything before it has ended."""
    order = np.argsort(a, kind="stable")
    a, b = a[order], b[order]
    reach = np.maximum.accumulate(b)
    first = np.flatnonzero(np.r_[True, a[1:] > reach[:-1]])
    last = np.r_[first[1:] - 1, a.size - 1]
    return float((reach[last] - a[first]).sum())


def measure(notes: Sequence[Note] | np.ndarray, start: float, end: float) -> Features:
    """Features of the notes sounding or starting in ``[start, end)`` (seconds).

    ``notes`` are :class:`~emsync_plugin.music.vocab.Note` objects or an ``(N, 4)`` array of
    ``[group, pitch, start, end]`` rows (the training cache's layout; faster). The group is
    ignored: every instrument counts alike.
    """
    arr = notes_to_array(notes)
    length = float(end) - float(start)
    if length <= 0 or arr.shape[0] == 0:
        return _empty(start, end)
    s, e = arr[:, 2], np.maximum(arr[:, 3], arr[:, 2])
    sounding = (s < end) & (e > start)
    if not sounding.any():
        return _empty(start, end)
    pitch = arr[sounding, 1].astype(np.int64)
    s, e = s[sounding], e[sounding]
    weight = np.minimum(e, end) - np.maximum(s, start)
    starts_in = s >= start
    n_onsets = int(starts_in.sum())
    total_weight = float(weight.sum())
    if total_weight <= 0:  # zero-length notes only
        weight = np.ones_like(weight)
        total_weight = float(weight.size)

    # ---- key and mode (Krumhansl & Kessler) ------------------------------------------------
    hist = np.bincount(pitch % 12, weights=weight, minlength=12)
    r = key_correlations(hist)
    best = int(np.argmax(r))
    mode = float(r[:12].max() - r[12:].max())

    onsets = np.unique(s[starts_in])
    consonance, n_pairs = _consonance(pitch, s, e, onsets)

    # ---- density, register, range, polyphony -------------------------------------------------
    density = n_onsets / length
    onset_rate = onsets.size / length
    register = float((pitch * weight).sum() / total_weight)
    pitch_range = float(pitch.max() - pitch.min())
    covered = _covered(np.maximum(s, start), np.minimum(e, end))
    polyphony = float(weight.sum() / covered) if covered > 0 else float(pitch.size)

    return Features(
        start=float(start), end=float(end), n_notes=int(pitch.size), n_onsets=n_onsets,
        mode=mode, key_tonic=best % 12, key_mode="major" if best < 12 else "minor",
        key_strength=float(r[best]), consonance=consonance, n_pairs=n_pairs,
        density=float(density), onset_rate=float(onset_rate), register=register,
        pitch_range=pitch_range, polyphony=polyphony,
    )


@dataclass(frozen=True)
class LabelStats:
    """Corpus statistics and weights that turn :class:`Features` into valence/arousal.

    ``mean``/``std`` hold one value per name in :data:`LABEL_FEATURES`; ``valence_weights`` and
    ``arousal_weights`` map feature names to weights; ``valence_scale``/``arousal_scale`` are
    the spreads of the weighted sums on the fitting windows. JSON-serialisable with
    :meth:`to_dict`/:meth:`from_dict`; it travels inside the model files.
    """

    mean: Mapping[str, float]
    std: Mapping[str, float]
    valence_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_VALENCE_WEIGHTS))
    arousal_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_AROUSAL_WEIGHTS))
    valence_scale: float = 1.0
    arousal_scale: float = 1.0
    density_floor: float = DENSITY_FLOOR
    z_clip: float = Z_CLIP
    n_windows: int = 0
    version: int = 2  # 2: arousal from onset rate as well as density

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("mean", "std", "valence_weights", "arousal_weights"):
            d[k] = {name: float(v) for name, v in sorted(dict(getattr(self, k)).items())}
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> LabelStats:
        d = dict(d)
        for k in ("mean", "std", "valence_weights", "arousal_weights"):
            if k in d:
                d[k] = {name: float(v) for name, v in dict(d[k]).items()}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def z(self, features: Features) -> dict[str, float]:
        """Clipped z-scores of the label features; 0 for an undefined (NaN) feature."""
        out = {}
        for name in LABEL_FEATURES:
            if name == "log_density":
                x = math.log(features.density + self.density_floor)
            elif name == "log_onset_rate":
                x = math.log(features.onset_rate + self.density_floor)
            else:
                x = features.value(name)
            sd = self.std.get(name, 1.0) or 1.0
            zv = (x - self.mean.get(name, 0.0)) / sd
            out[name] = 0.0 if not math.isfinite(zv) else max(-self.z_clip, min(self.z_clip, zv))
        return out

    def scores(self, features: Features) -> tuple[float, float]:
        """The unsquashed weighted sums ``(s_v, s_a)``."""
        z = self.z(features)
        # summed in LABEL_FEATURES order, so a JSON round trip gives bit-identical labels
        s_v = sum(self.valence_weights.get(name, 0.0) * z[name] for name in LABEL_FEATURES)
        s_a = sum(self.arousal_weights.get(name, 0.0) * z[name] for name in LABEL_FEATURES)
        return s_v, s_a


def labels(features: Features, stats: LabelStats) -> tuple[float, float]:
    """``(valence, arousal)`` in ``[-1, 1]`` (formula in docs/music.md); ``(0, 0)`` for a
    window where nothing sounds."""
    if features.empty:
        return 0.0, 0.0
    s_v, s_a = stats.scores(features)
    return (math.tanh(s_v / (stats.valence_scale or 1.0)),
            math.tanh(s_a / (stats.arousal_scale or 1.0)))


def fit_stats(features: Iterable[Features], valence_weights: Mapping[str, float] | None = None,
              arousal_weights: Mapping[str, float] | None = None) -> LabelStats:
    """Fit :class:`LabelStats` on the (non-empty) windows of a training corpus.

    Means and standard deviations ignore undefined values (consonance of single lines); the
    scales are the standard deviations of the weighted sums over the same windows.
    """
    feats = [f for f in features if not f.empty]
    if not feats:
        raise ValueError("cannot fit label statistics on no (non-empty) windows")
    vw = dict(valence_weights or DEFAULT_VALENCE_WEIGHTS)
    aw = dict(arousal_weights or DEFAULT_AROUSAL_WEIGHTS)
    mean, std = {}, {}
    for name in LABEL_FEATURES:
        if name in ("log_density", "log_onset_rate"):
            x = np.array([f.value(name) for f in feats])
        else:
            x = np.array([f.value(name) for f in feats], dtype=np.float64)
        x = x[np.isfinite(x)]
        mean[name] = float(x.mean()) if x.size else 0.0
        sd = float(x.std()) if x.size > 1 else 1.0
        std[name] = sd if sd > 1e-9 else 1.0
    unscaled = LabelStats(mean=mean, std=std, valence_weights=vw, arousal_weights=aw)
    sc = np.array([unscaled.scores(f) for f in feats])
    v_scale = float(sc[:, 0].std()) if len(feats) > 1 else 1.0
    a_scale = float(sc[:, 1].std()) if len(feats) > 1 else 1.0
    return LabelStats(mean=mean, std=std, valence_weights=vw, arousal_weights=aw,
                      valence_scale=v_scale if v_scale > 1e-9 else 1.0,
                      arousal_scale=a_scale if a_scale > 1e-9 else 1.0,
                      n_windows=len(feats))
