"""ITU-R BS.1770 integrated loudness measured block by block.

The K-weighting filter (pyloudnorm's coefficients) keeps its state from one block to the next,
and only the energy of each 100 ms step is kept: a 400 ms gating block with 75 % overlap is
four consecutive steps, so the gates (absolute -70 LUFS, relative -10 LU) are applied at the
end from a few numbers per second of programme, as pyloudnorm does on the whole signal.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.signal import sosfilt

#: the absolute gate: quieter than this counts as silence
SILENCE_LUFS = -70.0
_STEPS_PER_BLOCK = 4  # 400 ms gating blocks in 100 ms steps (75 % overlap)


def k_weighting(rate: int) -> np.ndarray:
    """The K-weighting filter at ``rate`` as second-order sections (pyloudnorm's design)."""
    from pyloudnorm.iirfilter import IIRfilter

    stages = [IIRfilter(4.0, 1 / math.sqrt(2), 1500.0, rate, "high_shelf"), IIRfilter(0.0, 0.5, 38.0, rate, "high_pass")]
    return np.array([np.concatenate([s.b / s.a[0], s.a / s.a[0]]) for s in stages])


class LoudnessMeter:
    """Feed stereo blocks in order with :meth:`add`; read :meth:`integrated` at any point."""

    def __init__(self, rate: int, channels: int = 2, *, first: int = 0, state: np.ndarray | None = None):
        """A meter starting at frame ``first`` (a whole number of 100 ms steps: a multiple of
        ``rate / 10`` frames) with the K-weighting filter in ``state`` (see :attr:`state`)."""
        self.rate = rate
        self.sos = k_weighting(rate)
        self.state = np.zeros((len(self.sos), channels, 2)) if state is None else state
        self.frames = first
        self.offset = first * 10 // rate
        self.steps: list[np.ndarray] = []  # per 100 ms step: the K-weighted energy sum per channel
        self.partial = np.zeros(channels)

    def _edge(self, k: int) -> int:
        return (k + self.offset) * self.rate // 10

    def add(self, audio: np.ndarray) -> None:
        """Measure the next ``audio`` frames (2-D, one column per channel)."""
        if not len(audio):
            return
        # channels as rows: sosfilt runs about twice as fast along contiguous memory
        # (a transposed view keeps its strides through astype: ascontiguousarray makes the rows contiguous)
        weighted, self.state = sosfilt(self.sos, np.ascontiguousarray(audio.T, dtype=np.float64), zi=self.state)
        energy = np.square(weighted).T
        first, end = self.frames, self.frames + len(audio)
        k = len(self.steps) + 1
        cuts = []
        while self._edge(k) <= end:
            cuts.append(self._edge(k) - first)
            k += 1
        pieces = np.split(energy, cuts)
        for piece in pieces[:-1]:
            self.steps.append(self.partial + piece.sum(axis=0))
            self.partial = np.zeros_like(self.partial)
        self.partial = self.partial + pieces[-1].sum(axis=0)
        self.frames = end

    def energies(self) -> np.ndarray:
        """Each 100 ms step's energy per channel so far, the last step partial."""
        return np.array(self.steps + [self.partial])

    def integrated(self) -> float:
        """The gated integrated loudness in LUFS (``-inf`` for silence)."""
        return gated(self.energies(), self.frames, self.rate)


def gated(energies: np.ndarray, frames: int, rate: int) -> float:
    """The integrated loudness (LUFS, ``-inf`` for silence) of ``frames`` frames from their 100 ms
    steps' energies per channel (:meth:`LoudnessMeter.energies`); shorter than 400 ms, the whole
    is one block."""
    if not frames:
        return -math.inf
    steps = energies.sum(axis=1)
    seconds = frames / rate
    block = min(0.4, seconds)
    count = int(np.round((seconds - block) / (block / _STEPS_PER_BLOCK))) + 1 if block == 0.4 else 1
    cumulative = np.concatenate([[0.0], np.cumsum(steps)])
    span = _STEPS_PER_BLOCK if block == 0.4 else len(steps)
    ends = np.minimum(np.arange(count) + span, len(steps))
    energy = (cumulative[ends] - cumulative[:count]) / (block * rate)
    with np.errstate(divide="ignore"):
        loud = -0.691 + 10.0 * np.log10(energy)
    absolute = energy[loud >= SILENCE_LUFS]
    if not len(absolute):
        return -math.inf
    relative = -0.691 + 10.0 * math.log10(absolute.mean()) - 10.0
    kept = energy[(loud > relative) & (loud > SILENCE_LUFS)]
    if not len(kept) or kept.mean() <= 0:
        return -math.inf
    return -0.691 + 10.0 * math.log10(kept.mean())


def integrated_loudness(audio: np.ndarray, rate: int) -> float:
    """BS.1770 integrated loudness of ``audio`` in LUFS (``-inf`` for silence)."""
    if len(audio) == 0 or not np.any(audio):
        return -math.inf
    audio = np.asarray(audio, dtype=np.float64)
    meter = LoudnessMeter(rate, 1 if audio.ndim == 1 else audio.shape[1])
    meter.add(audio.reshape(len(audio), -1))
    return meter.integrated()
