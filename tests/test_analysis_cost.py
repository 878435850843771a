"""What the scene analysis spends its CPU on (issue 15): no BLAS threads spinning beside the
sound analysis, and decoders set up to decode as little as the samples need."""
from __future__ import annotations

import time

import numpy as np
import pytest

from emsync_plugin.emotion import cues


def test_band_levels_sum_the_bins_of_each_band():
    rng = np.random.default_rng(5)
    x = (0.1 * rng.standard_normal(16000 * 3)).astype(np.float32)
    levels, _ = cues.band_levels(x)
    frames = np.lib.stride_tricks.sliding_window_view(x, cues.N_FFT)[::cues.HOP].astype(np.float64)
    spec = np.fft.rfft(frames * np.hanning(cues.N_FFT), axis=1)
    power = np.abs(spec) ** 2 / (cues.N_FFT / 4) ** 2
    first, starts = cues._band_groups(16000, cues.N_FFT)
    edges = first + starts
    want = np.stack([power[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    assert levels.shape == want.shape and len(edges) - 1 >= 16
    assert levels == pytest.approx(10 * np.log10(want + 1e-10), abs=1e-3)
    assert edges[0] == int(np.searchsorted(np.fft.rfftfreq(cues.N_FFT, 1 / 16000), 80.0))
    assert np.all(np.diff(edges) >= 3)


def test_band_levels_spend_their_cpu_on_the_calling_thread():
    """A 0/1 matrix product went to BLAS, whose worker threads spun on the other core: the process
    spent twice the calling thread's CPU time (0.48 against 0.24 CPU-s for these calls)."""
    x = (0.1 * np.random.default_rng(6).standard_normal(16000 * 6)).astype(np.float32)
    cues.band_levels(x)
    time.sleep(0.3)  # threads of anything before (BLAS spins a while after a call) settle
    process, thread = time.process_time(), time.thread_time()
    for _ in range(20):
        cues.band_levels(x)
    process, thread = time.process_time() - process, time.thread_time() - thread
    assert process <= 1.25 * thread + 0.02, (process, thread)
