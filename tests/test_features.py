"""The emotion-label formula: mode, consonance, density and register move the labels as the
literature says, keys are found, empty windows are neutral and the statistics round-trip."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from emsync_plugin.music.features import (
    LABEL_FEATURES,
    LabelStats,
    fit_stats,
    key_correlations,
    labels,
    measure,
)
from emsync_plugin.music.vocab import Note

BASS, GUITAR, PIANO, STRINGS = range(4)


def progression(minor: bool = False, per_chord: int = 1, transpose: int = 0, seconds: float = 8.0):
    """I-IV-V-I twice as piano triads over a bass root, one chord a second; ``per_chord`` > 1
    re-strikes every chord that many times in the same second (the same music, denser)."""
    third = 3 if minor else 4
    sixth = 8 if minor else 9  # iv in minor has a minor third too: F-Ab-C
    voicings = {0: (0, third, 7), 5: (5, sixth, 12), 7: (7, 11, 14)}  # V keeps its leading tone
    notes, t = [], 0.0
    step = seconds / 8 / per_chord
    for degree in (0, 5, 7, 0) * 2:
        for _ in range(per_chord):
            for iv in voicings[degree]:
                notes.append(Note(PIANO, 60 + iv + transpose, t, t + step))
            notes.append(Note(BASS, 36 + degree + transpose, t, t + step))
            t += step
    return notes


def scale(tonic: int = 60, steps=(0, 2, 4, 5, 7, 9, 11, 12), dur: float = 0.5):
    return [Note(GUITAR, tonic + s, i * dur, (i + 1) * dur) for i, s in enumerate(steps)]


@pytest.fixture(scope="module")
def stats() -> LabelStats:
    """Statistics fitted on a small, varied 'corpus' of windows, as prepare_data does."""
    windows = []
    for minor in (False, True):
        for per_chord in (1, 2, 4):
            for transpose in (-7, 0, 5):
                notes = progression(minor, per_chord, transpose)
                windows += [measure(notes, 0, 8), measure(notes, 0, 4), measure(notes, 4, 8)]
    windows.append(measure(scale(), 0, 4))
    return fit_stats(windows)


def test_major_scores_higher_valence_than_minor(stats):
    major = measure(progression(minor=False), 0, 8)
    minor = measure(progression(minor=True), 0, 8)
    assert major.mode > 0 > minor.mode
    assert major.key == (0, "major") and minor.key == (0, "minor")
    v_major, _ = labels(major, stats)
    v_minor, _ = labels(minor, stats)
    assert v_major > v_minor + 0.3


def test_double_density_scores_higher_arousal(stats):
    slow = measure(progression(per_chord=1), 0, 8)
    fast = measure(progression(per_chord=2), 0, 8)
    assert fast.density == pytest.approx(2 * slow.density)
    assert fast.register == pytest.approx(slow.register)
    _, a_slow = labels(slow, stats)
    _, a_fast = labels(fast, stats)
    assert a_fast > a_slow + 0.2


def test_higher_register_raises_valence_a_little(stats):
    low = measure(progression(transpose=0), 0, 8)
    high = measure(progression(transpose=12), 0, 8)
    assert high.register == pytest.approx(low.register + 12)
    assert high.mode == pytest.approx(low.mode) and high.consonance == pytest.approx(low.consonance)
    v_low, _ = labels(low, stats)
    v_high, _ = labels(high, stats)
    assert 0 < v_high - v_low < 0.5  # a bit, less than the major/minor difference


@pytest.mark.parametrize("tonic", [60, 62, 67, 70])
def test_major_scale_key_is_found(tonic):
    f = measure(scale(tonic), 0, 4)
    assert f.key == (tonic % 12, "major")
    assert f.mode > 0
    assert f.consonance != f.consonance  # NaN: a single line has no vertical pairs
    assert f.density == pytest.approx(2.0) and f.polyphony == pytest.approx(1.0)


def test_harmonic_minor_scale_is_minor():
    f = measure(scale(57, steps=(0, 2, 3, 5, 7, 8, 11, 12)), 0, 4)  # A harmonic minor
    assert f.key == (9, "minor") and f.mode < 0


def test_consonance_counts_vertical_pairs():
    cluster = [Note(PIANO, p, 0.0, 1.0) for p in (60, 61, 62)]  # seconds only: dissonant
    triad = [Note(PIANO, p, 0.0, 1.0) for p in (60, 64, 67)]
    sus = [Note(PIANO, p, 0.0, 1.0) for p in (60, 62, 67)]  # C-D, C-G, D-G: one second
    assert measure(cluster, 0, 1).consonance == 0.0
    assert measure(sus, 0, 1).consonance == pytest.approx(2 / 3)
    assert measure(triad, 0, 1).consonance == 1.0
    assert measure(triad, 0, 1).n_pairs == 3
    # a held note sounding into the window pairs with the window's onsets
    held = [Note(BASS, 48, 0.0, 4.0), Note(PIANO, 54, 2.0, 3.0)]  # tritone
    f = measure(held, 1.0, 4.0)
    assert f.n_pairs == 1 and f.consonance == 0.0
    assert f.n_notes == 2 and f.n_onsets == 1


def test_density_register_polyphony_are_duration_weighted():
    notes = [Note(PIANO, 60, 0.0, 3.0), Note(PIANO, 72, 0.0, 1.0), Note(PIANO, 64, 5.0, 6.0)]
    f = measure(notes, 0, 8)
    assert f.density == pytest.approx(3 / 8)
    assert f.register == pytest.approx((60 * 3 + 72 * 1 + 64 * 1) / 5)
    assert f.pitch_range == 12
    assert f.polyphony == pytest.approx(5 / 4)  # 5 note-seconds over 4 s of sound


def test_window_clips_notes():
    notes = [Note(PIANO, 60, 0.0, 10.0), Note(PIANO, 67, 9.0, 10.0)]
    f = measure(notes, 8.0, 10.0)
    assert f.n_notes == 2 and f.n_onsets == 1
    assert f.register == pytest.approx((60 * 2 + 67 * 1) / 3)
    assert measure(notes, 10.0, 12.0).empty  # a note ending at 10 does not sound at 10


def test_array_input_matches_notes():
    notes = progression(minor=True, per_chord=3)
    arr = np.array([[n.group, n.pitch, n.start, n.end] for n in notes], dtype=np.float64)
    assert measure(arr, 1.0, 5.0) == measure(notes, 1.0, 5.0)


@pytest.mark.parametrize("notes,start,end", [([], 0, 4), (scale(), 10, 14), (scale(), 3, 3)])
def test_empty_window_is_neutral(stats, notes, start, end):
    f = measure(notes, start, end)
    assert f.empty and f.key == (-1, "")
    assert labels(f, stats) == (0.0, 0.0)


def test_labels_stay_in_range(stats):
    extreme = [Note(PIANO, p, i * 0.01, i * 0.01 + 0.01) for i, p in enumerate([100, 101, 102] * 300)]
    v, a = labels(measure(extreme, 0, 9), stats)
    assert -1 <= v <= 1 and -1 <= a <= 1 and a > 0.9


def test_flat_histogram_matches_no_key():
    assert np.all(key_correlations(np.ones(12)) == 0)
    assert np.all(key_correlations(np.zeros(12)) == 0)


def test_stats_round_trip_through_json(stats):
    assert set(stats.mean) == set(LABEL_FEATURES) == set(stats.std)
    assert stats.n_windows > 0 and stats.valence_scale > 0 and stats.arousal_scale > 0
    text = json.dumps(stats.to_dict())
    back = LabelStats.from_dict(json.loads(text))
    assert back == stats
    f = measure(progression(minor=True, per_chord=2), 0, 8)
    assert labels(f, back) == labels(f, stats)


def test_fitted_scores_have_unit_spread(stats):
    windows = [measure(progression(m, k, t), 0, 8) for m in (False, True) for k in (1, 2, 4) for t in (-7, 0, 5)]
    v = np.array([stats.scores(w)[0] for w in windows]) / stats.valence_scale
    assert 0.5 < v.std() < 2.0
    assert all(math.isfinite(x) for w in windows for x in labels(w, stats))


def test_fit_needs_windows():
    with pytest.raises(ValueError):
        fit_stats([measure([], 0, 1)])
