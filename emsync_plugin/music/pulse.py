"""The pulse of a stretch of generated music, estimated from its note onsets.

The generated music has no bar grid or tempo map: its notes fall on a grid the model learned,
at whatever rate the mood asked for. A drum part locks to it through :func:`estimate_pulse`:
the onsets (chords merged) are compared with themselves at every lag (an autocorrelation of the
onset train, each onset a Gaussian of ``_WIDTH`` seconds), the lags are weighted by a tempo
prior centred on ``_PREFERRED`` seconds per beat (as beat trackers do, so that a run of eighth
notes reads as a beat of two of them, not a beat of one), and the beat's phase is the one that
puts the most onsets on it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Beats from 0.3 to 1.2 s (200 to 50 BPM) are considered, on a log-Gaussian prior around 0.6 s
# (100 BPM) an octave wide, and moved into _OCTAVE_RANGE when the onsets allow it; onsets within
# _MERGE of each other are one (a chord); each onset is a Gaussian of _WIDTH seconds when onset
# trains are compared.
_SHORTEST, _LONGEST = 0.3, 1.2
_PREFERRED, _OCTAVES = 0.6, 1.0
_OCTAVE_RANGE = (0.4, 0.8)  # the beat is moved into this octave (75-150 BPM) where the onsets allow
_MERGE = 0.03
_WIDTH = 0.02
_STEP = 0.002
_SNAP = 0.3  # a beat moves onto an onset this close (a share of the period)
#: Fewer onsets than this say nothing about a pulse.
MIN_ONSETS = 4


@dataclass(frozen=True)
class Pulse:
    """Beats every ``period`` seconds, one of them at ``phase`` (seconds, absolute); ``strength``
    is the share of ``onsets`` within 10 % of a beat or a half beat (0..1)."""

    period: float
    phase: float
    strength: float
    onsets: tuple[float, ...] = ()  # the merged onsets it was estimated from

    def beats(self, start: float, end: float) -> list[float]:
        """The beats in ``[start, end)``: the ``period`` apart, each moved onto an onset within
        ``_SNAP`` of a period of it (so they follow the music when its grid shifts)."""
        onsets = np.array(self.onsets)
        t = self.phase + math.ceil((start - self.phase) / self.period - 1e-9) * self.period
        beats: list[float] = []
        while t < end - 1e-9:
            if len(onsets):
                near = float(onsets[int(np.argmin(np.abs(onsets - t)))])
                if abs(near - t) <= _SNAP * self.period and near >= start - 1e-9 and (not beats or near > beats[-1]):
                    t = near
            if t < end - 1e-9 and (not beats or t > beats[-1] + 0.5 * self.period):
                beats.append(t)
            t += self.period
        return beats


def merge_onsets(onsets: Sequence[float], window: float = _MERGE) -> np.ndarray:
    """``onsets`` sorted, those within ``window`` of the previous kept one dropped (a chord is one onset)."""
    kept: list[float] = []
    for t in sorted(float(o) for o in onsets):
        if not kept or t - kept[-1] > window:
            kept.append(t)
    return np.array(kept)


def estimate_pulse(onsets: Sequence[float]) -> Pulse | None:
    """The beat that best explains ``onsets`` (seconds), or ``None`` for fewer than ``MIN_ONSETS``."""
    times = merge_onsets(onsets)
    if len(times) < MIN_ONSETS:
        return None
    period = _period(times)
    phase = _phase(times, period)
    return Pulse(period, phase, _strength(times, period, phase), tuple(float(t) for t in times))


def _period(times: np.ndarray) -> float:
    """The lag at which the onset train best matches itself, weighted by the tempo prior, then
    moved by octaves into ``_OCTAVE_RANGE`` when the train matches itself there at least half as well."""
    gaps = _gaps(times, 2 * _LONGEST)
    lags = np.arange(_SHORTEST, _LONGEST + _STEP / 2, _STEP)
    score = _match(gaps, lags) * _prior(lags)
    if not np.any(score > 1e-6):  # onsets too sparse for any lag: the prior's beat
        return _PREFERRED
    period = float(lags[int(np.argmax(score))])
    low, high = _OCTAVE_RANGE
    while period > high and _match(gaps, np.array([period / 2]))[0] >= 0.5 * _match(gaps, np.array([period]))[0]:
        period /= 2
    while period < low and _match(gaps, np.array([period * 2]))[0] >= 0.5 * _match(gaps, np.array([period]))[0]:
        period *= 2
    return _refine(gaps, _duple(gaps, period))


def _duple(gaps: np.ndarray, period: float) -> float:
    """``period``, or two or four thirds of it when the onsets divide it in three rather than two
    (a run of onsets 0.2 s apart is a beat of two or four of them, not of three): the drum
    grooves divide a beat in two and four, so their strokes then fall on the music's onsets."""
    third, half = _match(gaps, np.array([period / 3, period / 2]))
    if third <= half:
        return period
    options = np.array([2 * period / 3, 4 * period / 3])
    options = options[(options >= _SHORTEST) & (options <= _LONGEST)]
    if not options.size:
        return period
    low, high = _OCTAVE_RANGE
    in_range = ((options >= low) & (options <= high)) + 0.5
    return float(options[int(np.argmax(_match(gaps, options) * _prior(options) * in_range))])


def _prior(lags: np.ndarray) -> np.ndarray:
    """The tempo prior: a log-Gaussian around ``_PREFERRED`` seconds, ``_OCTAVES`` wide."""
    return np.exp(-0.5 * (np.log2(lags / _PREFERRED) / _OCTAVES) ** 2)


def _gaps(times: np.ndarray, longest: float) -> np.ndarray:
    """Every gap shorter than ``longest`` between two of the sorted ``times`` (linear in their number)."""
    found = [np.empty(0)]
    for k in range(1, len(times)):
        d = times[k:] - times[:-k]  # grows with k for every pair: stop once none is short enough
        d = d[d < longest]
        if not d.size:
            break
        found.append(d)
    return np.concatenate(found)


def _match(gaps: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """How many onset pairs are each lag apart (each pair a Gaussian of the onsets' width)."""
    return np.exp(-0.5 * ((gaps[None, :] - lags[:, None]) / (_WIDTH * math.sqrt(2))) ** 2).sum(axis=1)


def _refine(gaps: np.ndarray, period: float) -> float:
    """``period`` moved to the mean of the gaps that are close to a whole number of it."""
    beats = np.round(gaps / period)
    close = (beats >= 1) & (np.abs(gaps - beats * period) < 0.1 * period)
    if not np.any(close):
        return period
    return float(np.sum(gaps[close]) / np.sum(beats[close]))


def _phase(times: np.ndarray, period: float) -> float:
    """The beat position (in ``[times[0], times[0] + period)``) with the most onsets on it."""
    angles = 2 * math.pi * (times - times[0]) / period
    offsets = np.linspace(0.0, 2 * math.pi, 72, endpoint=False)
    # a von Mises bump per onset: how many onsets sit on a beat at each candidate phase
    fit = np.exp(4.0 * np.cos(angles[None, :] - offsets[:, None])).sum(axis=1)
    best = float(offsets[int(np.argmax(fit))])
    return float(times[0] + best / (2 * math.pi) * period)


def _strength(times: np.ndarray, period: float, phase: float) -> float:
    position = ((times - phase) / period * 2) % 1.0  # on a half-beat grid
    return float(np.mean(np.minimum(position, 1.0 - position) < 0.2))
