"""Picture and sound cues of a scene, and the valence/arousal they suggest.

Picture: brightness, saturation, colourfulness (Hasler & Süsstrunk 2003) and motion energy of
the sampled frames; sound: loudness, spectral flux and onset rate at 16 kHz; plus the scene's
length (the cut rate). :func:`cue_mood` maps them to valence (Valdez & Mehrabian 1994) and
arousal (after Hanjalic & Xu 2005). Definitions, formulas and weights: ``docs/emotion.md``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

AUDIO_RATE = 16000
N_FFT = 1024
HOP = 256
FLUX_LAG = 2
SILENCE_DB = -120.0

# normalisation of the mood formula (docs/emotion.md)
BRIGHTNESS_MID, BRIGHTNESS_HALF = 0.45, 0.30
SATURATION_FULL, COLOURFUL_FULL = 0.70, 109.0
MOTION_FULL = 0.5
MOTION_CONTRAST_FLOOR = 0.05
PACE_FLOOR, PACE_TAU = 0.5, 3.0
LOUD_FLOOR, LOUD_SPAN = -60.0, 45.0
FLUX_FLOOR, FLUX_SPAN, ONSETS_FULL = 0.8, 4.0, 4.0
W_MOTION, W_PACE, W_LOUD, W_ACTIVITY, W_COLOUR = 0.30, 0.20, 0.20, 0.15, 0.15
# Valdez & Mehrabian (1994): pleasure and arousal from brightness and saturation
VM_PLEASURE = (0.69, 0.22)
VM_AROUSAL = (-0.31, 0.60)


@dataclass(frozen=True)
class CueFeatures:
    """The measured cues of one scene (definitions: docs/emotion.md)."""

    duration: float
    brightness: float
    saturation: float
    colourfulness: float
    motion: float
    loudness: float
    flux: float
    onset_rate: float
    frames: int = 0

    def to_json(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


# ------------------------------------------------------------------------------------ picture


def _luma(rgb: np.ndarray) -> np.ndarray:
    f = rgb.astype(np.float32)
    return (0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]) / 255.0


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003) colourfulness M of one RGB uint8 frame."""
    f = rgb.astype(np.float32)
    rg = f[..., 0] - f[..., 1]
    yb = 0.5 * (f[..., 0] + f[..., 1]) - f[..., 2]
    std = math.sqrt(float(rg.var()) + float(yb.var()))
    mean = math.sqrt(float(rg.mean()) ** 2 + float(yb.mean()) ** 2)
    return std + 0.3 * mean


class FrameStats(NamedTuple):
    """What the picture cues take from one frame (:func:`frame_stats`)."""

    luma: float  # mean luma 0..1
    chroma: float  # mean max(R,G,B) - min(R,G,B)
    value: float  # mean max(R,G,B)
    colourful: float  # Hasler & Süsstrunk M
    small: np.ndarray  # luma at half resolution (the motion cue compares these)
    spread: float  # its standard deviation


def frame_stats(rgb: np.ndarray) -> FrameStats:
    """The statistics of one RGB uint8 frame that the picture cues use."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB frame, got shape {rgb.shape}")
    luma = _luma(rgb)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = np.maximum(np.maximum(r, g), b).astype(np.float32)  # ~15x faster than rgb.max(axis=2)
    mn = np.minimum(np.minimum(r, g), b).astype(np.float32)
    small = luma[::2, ::2]
    return FrameStats(float(luma.mean()), float((mx - mn).mean()), float(mx.mean()), colourfulness(rgb),
                      small, float(small.std()))


class PictureCues:
    """Accumulates the picture cues of a scene one frame at a time (keeps one small frame)."""

    def __init__(self):
        self.n = 0
        self._luma = 0.0
        self._chroma = 0.0
        self._value = 0.0
        self._colourful = 0.0
        self._diffs: list[float] = []
        self._prev: np.ndarray | None = None
        self._prev_id: int | None = None
        self._prev_std = 0.0

    def add(self, rgb: np.ndarray | None, frame_id: int | None = None, follows: bool = True,
            stats: FrameStats | None = None) -> None:
        """Add one RGB uint8 frame (or its ``stats``, :func:`frame_stats`). The same decoded frame
        twice (same ``frame_id``) adds no motion; nor does a frame that does not ``follow`` the one
        before (the first of a new pair when frames are sampled in pairs)."""
        st = stats if stats is not None else frame_stats(np.asarray(rgb))
        self._luma += st.luma
        self._chroma += st.chroma
        self._value += st.value
        self._colourful += st.colourful
        small, spread = st.small, st.spread
        if (follows and self._prev is not None and self._prev.shape == small.shape
                and (frame_id is None or frame_id != self._prev_id)):
            contrast = 0.5 * (spread + self._prev_std) + MOTION_CONTRAST_FLOOR
            self._diffs.append(float(np.abs(small - self._prev).mean()) / contrast)
        self._prev, self._prev_id, self._prev_std = small, frame_id, spread
        self.n += 1

    def values(self) -> dict:
        if self.n == 0:
            return dict(brightness=0.0, saturation=0.0, colourfulness=0.0, motion=0.0, frames=0)
        return dict(
            brightness=self._luma / self.n,
            saturation=self._chroma / self._value if self._value > 0 else 0.0,
            colourfulness=self._colourful / self.n,
            motion=float(np.mean(self._diffs)) if self._diffs else 0.0,
            frames=self.n,
        )


# ------------------------------------------------------------------------------------ sound


def _band_groups(rate: int, n_fft: int, lo: float = 80.0, hi: float = 7600.0, bands: int = 24,
                 min_bins: int = 3) -> tuple[int, np.ndarray]:
    """Log-spaced bands of at least ``min_bins`` FFT bins, contiguous: ``(first bin, starts)``, the
    bands being bins ``first + starts[j]`` up to the next start (the last to the end of the slice
    :func:`band_levels` takes)."""
    hi = min(hi, rate / 2 * 0.95)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    edges = np.geomspace(lo, hi, bands + 1)
    groups, start = [], int(np.searchsorted(freqs, lo))
    for e in edges[1:]:
        stop = int(np.searchsorted(freqs, e))
        if stop - start >= min_bins:
            groups.append((start, stop))
            start = stop
    if start < int(np.searchsorted(freqs, hi)) and groups:
        groups[-1] = (groups[-1][0], int(np.searchsorted(freqs, hi)))
    first = groups[0][0]
    return first, np.array([a - first for a, _ in groups] + [groups[-1][1] - first], np.intp)


_BANDS: dict[tuple[int, int], tuple[int, np.ndarray]] = {}


def band_levels(samples: np.ndarray, rate: int = AUDIO_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Band levels in dB (frames × bands; a full-scale sine is ≈ 0 dB in its band) and frame RMS dB.

    The bins of each band are summed with ``np.add.reduceat`` rather than a product with a 0/1
    matrix: a matrix product goes to BLAS, whose worker threads then spin on the other core (on
    2 cores, as much CPU time again as the scene's sound analysis itself; ``docs/emotion.md``)."""
    x = np.asarray(samples, np.float32).reshape(-1)
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    n = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(x, (n, N_FFT), (x.strides[0] * HOP, x.strides[0]), writeable=False)
    window = np.hanning(N_FFT).astype(np.float32)
    spec = np.fft.rfft(frames * window, axis=1)
    power = (spec.real**2 + spec.imag**2) / (N_FFT / 4) ** 2
    key = (rate, N_FFT)
    if key not in _BANDS:
        _BANDS[key] = _band_groups(rate, N_FFT)
    first, starts = _BANDS[key]
    bands = np.add.reduceat(power[:, first:first + starts[-1]], starts[:-1], axis=1, dtype=np.float64)
    levels = 10.0 * np.log10(bands + 1e-10)
    rms = 10.0 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    return levels.astype(np.float32), rms


def flux_curve(levels: np.ndarray, lag: int = FLUX_LAG) -> np.ndarray:
    """Mean positive rise of band level (dB) from ``lag`` frames earlier, one value per frame."""
    if len(levels) <= lag:
        return np.zeros(len(levels), np.float32)
    rise = np.maximum(levels[lag:] - levels[:-lag], 0.0).mean(axis=1)
    return np.concatenate([np.zeros(lag, np.float32), rise.astype(np.float32)])


def pick_onsets(flux: np.ndarray, frame_db: np.ndarray, hop_s: float = HOP / AUDIO_RATE) -> np.ndarray:
    """Frame indices of onsets in a flux curve (docs/emotion.md)."""
    n = len(flux)
    if n < 3:
        return np.array([], int)
    w_max = max(1, round(0.048 / hop_s))
    w_mean = max(1, round(0.160 / hop_s))
    gap = max(1, round(0.064 / hop_s))
    padded = np.pad(flux, w_max, mode="edge")
    local_max = np.lib.stride_tricks.sliding_window_view(padded, 2 * w_max + 1).max(axis=1)
    kernel = np.ones(2 * w_mean + 1) / (2 * w_mean + 1)
    local_mean = np.convolve(np.pad(flux, w_mean, mode="edge"), kernel, mode="valid")
    ok = (flux >= local_max) & (flux >= local_mean + 2.0) & (flux >= 3.0) & (frame_db > -55.0)
    out: list[int] = []
    last = -gap
    for i in np.flatnonzero(ok).tolist():
        if i - last >= gap:
            out.append(i)
            last = i
    return np.array(out, int)


def sound_cues(samples: np.ndarray | None, duration: float, rate: int = AUDIO_RATE) -> dict:
    """``loudness`` (RMS dBFS), ``flux`` (dB) and ``onset_rate`` (1/s) of a scene's sound."""
    if samples is None or len(samples) == 0:
        return dict(loudness=SILENCE_DB, flux=0.0, onset_rate=0.0)
    x = np.asarray(samples, np.float32).reshape(-1)
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    loudness = max(SILENCE_DB, 20.0 * math.log10(rms)) if rms > 0 else SILENCE_DB
    if loudness <= SILENCE_DB + 1e-6:
        return dict(loudness=SILENCE_DB, flux=0.0, onset_rate=0.0)
    levels, frame_db = band_levels(x, rate)
    flux = flux_curve(levels)
    onsets = pick_onsets(flux, frame_db, HOP / rate)
    seconds = max(duration, len(x) / rate, 1e-6)
    return dict(loudness=loudness, flux=float(flux.mean()), onset_rate=len(onsets) / seconds)


# ------------------------------------------------------------------------------------ features → mood


def cue_features(frames, samples: np.ndarray | None, duration: float, rate: int = AUDIO_RATE) -> CueFeatures:
    """All cues of a scene from its frames (iterable of RGB uint8) and its mono sound."""
    pic = PictureCues()
    for f in frames:
        pic.add(f)
    return CueFeatures(duration=duration, **pic.values(), **sound_cues(samples, duration, rate))


def _clip(x: float, lo: float = -1.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


def terms(f: CueFeatures) -> dict[str, float]:
    """The normalised terms of the mood formula (for explanations and tests)."""
    b = _clip((f.brightness - BRIGHTNESS_MID) / BRIGHTNESS_HALF)
    chroma = 0.5 * min(f.saturation / SATURATION_FULL, 1.0) + 0.5 * min(f.colourfulness / COLOURFUL_FULL, 1.0)
    s = 2.0 * chroma - 1.0
    return {
        "brightness": b,
        "saturation": s,
        "motion": min(f.motion / MOTION_FULL, 1.0),
        "pace": math.exp(-max(0.0, f.duration - PACE_FLOOR) / PACE_TAU),
        "energy": _clip((f.loudness - LOUD_FLOOR) / LOUD_SPAN, 0.0, 1.0),
        "activity": 0.5 * _clip((f.flux - FLUX_FLOOR) / FLUX_SPAN, 0.0, 1.0) + 0.5 * min(f.onset_rate / ONSETS_FULL, 1.0),
        "colour_arousal": 0.5 * (1.0 + _clip(VM_AROUSAL[0] * b + VM_AROUSAL[1] * s)),
    }


def cue_mood(f: CueFeatures) -> tuple[float, float]:
    """(valence, arousal) in −1..1 from a scene's cues (formula: docs/emotion.md)."""
    t = terms(f)
    # Valdez & Mehrabian (1994): pleasure = .69 brightness + .22 saturation
    valence = _clip(VM_PLEASURE[0] * t["brightness"] + VM_PLEASURE[1] * t["saturation"])
    # Hanjalic & Xu (2005): arousal from motion, cut rate and sound energy (+ sound activity,
    # + Valdez & Mehrabian's colour arousal)
    a01 = (
        W_MOTION * t["motion"] + W_PACE * t["pace"] + W_LOUD * t["energy"]
        + W_ACTIVITY * t["activity"] + W_COLOUR * t["colour_arousal"]
    )
    return valence, _clip(2.0 * a01 - 1.0)
