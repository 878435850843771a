"""The gains between the synth and the WAV, each computable one block at a time.

A high-pass that removes the synth's DC offset (its state carried across blocks), the raised-
cosine fade-out ending the file, the look-ahead peak limiter (a block is limited with enough
of its neighbours around it to give the gain a one-shot pass would) and the ducking envelope
under speech (see docs/music.md).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.signal import butter, sosfilt

from ..errors import OptionsError

#: the limiter's attack/release window (seconds)
LIMITER_WINDOW = 0.02
#: the DC-removing high-pass corner (Hz): far below any note
DC_CORNER = 12.0


class DCBlocker:
    """A second-order Butterworth high-pass at DC_CORNER whose state runs on across blocks."""

    def __init__(self, rate: int, channels: int = 2):
        self.sos = butter(2, DC_CORNER, btype="highpass", fs=rate, output="sos")
        self.state = np.zeros((len(self.sos), channels, 2))

    def process(self, audio: np.ndarray) -> np.ndarray:
        """The next block, filtered (float32)."""
        if not len(audio):
            return audio
        # channels as rows: sosfilt runs about twice as fast along contiguous memory
        # (a transposed view keeps its strides through astype: ascontiguousarray makes the rows contiguous)
        out, self.state = sosfilt(self.sos, np.ascontiguousarray(audio.T, dtype=np.float64), zi=self.state)
        return np.ascontiguousarray(out.T, dtype=np.float32)


def fade_gain(first: int, frames: int, total: int, fade: int) -> np.ndarray | None:
    """The fade-out's gain for frames ``[first, first + frames)`` of ``total`` when the last
    ``fade`` frames fade out (``None`` where the block is before the fade)."""
    begin = total - min(fade, total)
    if fade <= 0 or first + frames <= begin:
        return None
    index = np.arange(first, first + frames) - begin
    if fade == 1:
        curve = np.where(index >= 0, 0.0, 1.0)
    else:
        curve = np.where(index >= 0, 0.5 * (1.0 + np.cos(np.pi * np.clip(index, 0, None) / (fade - 1))), 1.0)
        curve[index >= fade - 1] = 0.0
    return curve.astype(np.float32)


def fade_out(audio: np.ndarray, samples: int) -> np.ndarray:
    """Fade the last ``samples`` frames of ``audio`` (in place) with a raised cosine ending at exactly 0."""
    gain = fade_gain(0, len(audio), len(audio), min(samples, len(audio)))
    if gain is not None:
        audio *= gain[:, None].astype(audio.dtype)
    return audio


def limiter_reach(rate: int) -> int:
    """How many frames either side of a frame its limiter gain depends on."""
    half = max(1, int(LIMITER_WINDOW * rate))
    return half + (half | 1) // 2 + 1


def limiter_gain(audio: np.ndarray, ceiling: float, rate: int) -> np.ndarray | None:
    """The per-frame gain of :func:`limit` (``None`` when nothing exceeds ``ceiling``)."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    level = np.maximum(np.abs(audio[:, 0]), np.abs(audio[:, -1]))
    need = np.minimum(1.0, ceiling / np.maximum(level, 1e-12))
    if need.min() >= 1.0:
        return None
    half = max(1, int(LIMITER_WINDOW * rate))
    gain = minimum_filter1d(need, size=2 * half + 1, mode="nearest")
    gain = uniform_filter1d(gain, size=half | 1, mode="nearest")
    return np.minimum(gain, need).astype(np.float32)


def limit(audio: np.ndarray, ceiling: float, rate: int) -> np.ndarray:
    """A look-ahead peak limiter: no sample of the result exceeds ``ceiling`` (linear).

    The gain needed at each frame is spread over LIMITER_WINDOW either side (a minimum filter,
    then a moving average no wider than it), so it never exceeds the need and moves smoothly
    instead of clipping. A block limited with :func:`limiter_reach` frames of context each side
    gets the same gain as in the whole.
    """
    gain = limiter_gain(audio, ceiling, rate)
    if gain is None:
        return audio
    return np.clip(audio * gain[:, None], -ceiling, ceiling)


def speech_regions(speech: Sequence[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """``speech`` checked (:class:`OptionsError`), clipped to ``[0, duration]``, sorted and merged."""
    regions = []
    for item in speech:
        try:
            start, end = (float(v) for v in item)
        except (TypeError, ValueError):
            raise OptionsError(f"a speech region must be (start, end) in seconds, not {item!r}") from None
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise OptionsError(f"a speech region must end after it starts, in finite seconds, not {item!r}")
        start, end = max(start, 0.0), min(end, duration)
        if end > start:
            regions.append((start, end))
    merged: list[tuple[float, float]] = []
    for start, end in sorted(regions):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _ramp(u: np.ndarray) -> np.ndarray:
    """A raised-cosine ramp from 0 (``u <= 0``) to 1 (``u >= 1``)."""
    return 0.5 * (1.0 - np.cos(np.pi * np.clip(u, 0.0, 1.0)))


def _duck_depth(t: np.ndarray, regions: Sequence[tuple[float, float]], attack: float, release: float) -> np.ndarray:
    """How far down (0 = not ducked, 1 = fully) the score is at times ``t``."""
    depth = np.zeros(len(t))
    for start, end in regions:
        if len(t) and (t[-1] < start - attack or t[0] > end + release):
            continue
        down = _ramp((t - (start - attack)) / attack) if attack > 0 else (t >= start).astype(float)
        up = 1.0 - _ramp((t - end) / release) if release > 0 else (t <= end).astype(float)
        depth = np.maximum(depth, np.minimum(down, up))
    return depth


class Ducking:
    """The ducking envelope: ``depth_db`` down under ``regions`` with attack and release ramps.

    Regions closer than attack + release stay ducked in between, so the keyframes (where each
    ramp starts and ends) describe the envelope exactly up to the ramps' shape.
    """

    def __init__(self, regions: Sequence[tuple[float, float]], depth_db: float, attack: float, release: float,
                 duration: float):
        self.depth_db, self.attack, self.release = depth_db, attack, release
        self.spans: list[tuple[float, float]] = []
        for start, end in regions:
            if self.spans and start - self.spans[-1][1] < attack + release:
                self.spans[-1] = (self.spans[-1][0], end)
            else:
                self.spans.append((start, end))
        corners = sorted({min(max(t, 0.0), duration) for start, end in self.spans
                          for t in (start - attack, start, end, end + release)})
        at = _duck_depth(np.array(corners), self.spans, attack, release)
        self.keys = tuple((round(t, 6), round(float(depth_db * d), 3) + 0.0) for t, d in zip(corners, at))

    def gain(self, first: int, frames: int, rate: int) -> np.ndarray:
        """The gain (float32) for frames ``[first, first + frames)``."""
        depth = _duck_depth(np.arange(first, first + frames) / rate, self.spans, self.attack, self.release)
        return (10.0 ** (self.depth_db * depth / 20.0)).astype(np.float32)
