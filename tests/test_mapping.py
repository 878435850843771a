"""Expression classes → valence/arousal (EMSYNC's Gaussian-mixture mean), fusion, smoothing."""
from __future__ import annotations

import math

import pytest

from emsync_plugin.emotion import mapping
from emsync_plugin.emotion.mapping import CENTRES, CLASSES, RUSSELL_MEHRABIAN_1977


def flat(pairs):
    return [x for pair in pairs for x in pair]


def test_centres_are_russell_mehrabian_scaled_to_0_8():
    assert set(CENTRES) == set(CLASSES) == set(RUSSELL_MEHRABIAN_1977)
    assert max(abs(c) for va in CENTRES.values() for c in va) == pytest.approx(0.8)
    scale = 0.8 / 0.81  # happy's pleasure is the largest coordinate in the table
    for k, (v, a) in RUSSELL_MEHRABIAN_1977.items():
        assert CENTRES[k] == pytest.approx((v * scale, a * scale), abs=1e-4)
    # the quadrants the circumplex puts them in
    assert CENTRES["happy"][0] > 0.7 and CENTRES["happy"][1] > 0.4
    assert CENTRES["sad"][0] < -0.5 and CENTRES["sad"][1] < 0
    for k in ("angry", "fear", "disgust"):
        assert CENTRES[k][0] < -0.4 and CENTRES[k][1] > 0.3
    assert CENTRES["surprise"][0] > 0 and CENTRES["surprise"][1] > 0.6
    assert CENTRES["neutral"] == (0.0, 0.0)


def test_expected_value_is_the_probability_weighted_mean_of_centres():
    for k in CLASSES:
        assert mapping.expected_va({k: 1.0}) == pytest.approx(CENTRES[k])
    half = mapping.expected_va({"happy": 0.5, "sad": 0.5})
    assert half == pytest.approx(((CENTRES["happy"][0] + CENTRES["sad"][0]) / 2, (CENTRES["happy"][1] + CENTRES["sad"][1]) / 2))
    probs = {"angry": 0.1, "disgust": 0.05, "fear": 0.05, "happy": 0.5, "sad": 0.1, "surprise": 0.1, "neutral": 0.1}
    v = sum(p * CENTRES[k][0] for k, p in probs.items())
    a = sum(p * CENTRES[k][1] for k, p in probs.items())
    assert mapping.expected_va(probs) == pytest.approx((v, a))
    # unnormalised input is normalised; unknown classes are ignored
    assert mapping.expected_va({"happy": 2.0, "contempt": 5.0}) == pytest.approx(CENTRES["happy"])
    with pytest.raises(ValueError):
        mapping.expected_va({})
    with pytest.raises(ValueError):
        mapping.expected_va({"contempt": 1.0})


def test_spread_grows_when_the_classifier_is_torn():
    assert mapping.spread({"happy": 1.0}) == pytest.approx(mapping.CLASS_SIGMA)
    torn = mapping.spread({"happy": 0.5, "sad": 0.5})
    assert torn > 0.5


def test_fusion_weight_from_coverage_and_confidence():
    assert mapping.face_alpha(0.0, 1.0) == 0.0
    assert mapping.face_alpha(1.0, 1.0) == pytest.approx(mapping.FACE_MAX)
    assert mapping.face_alpha(0.5, 0.8) == pytest.approx(mapping.FACE_MAX * 0.4)
    assert mapping.face_alpha(0.1, 0.5) == 0.0  # a glimpse of a doubtful face does not count
    assert mapping.face_alpha(5.0, 2.0) == pytest.approx(mapping.FACE_MAX)  # clipped
    cues, faces = (0.0, -0.5), (0.8, 0.5)
    assert mapping.fuse(None, 0.7, cues) == cues  # no faces: cues only
    assert mapping.fuse(faces, 0.0, cues) == cues
    assert mapping.fuse(faces, 0.5, cues) == pytest.approx((0.4, 0.0))


def test_smoothing_averages_similar_neighbours():
    values = [(0.10, 0.0), (0.30, 0.1), (0.20, 0.0)]
    out = mapping.smooth(values, [4.0] * 3, [False] * 3)
    assert out[1] == pytest.approx(((2 * 0.3 + 0.1 + 0.2) / 4, (2 * 0.1 + 0 + 0) / 4))
    assert out[0] == pytest.approx(((2 * 0.1 + 0.3) / 3, (0 + 0.1) / 3))
    assert values == [(0.10, 0.0), (0.30, 0.1), (0.20, 0.0)]  # the input is left alone


def test_smoothing_keeps_a_real_change_sharp():
    sad, happy = (-0.6, -0.3), (0.7, 0.5)
    values = [sad, sad, happy, happy]
    out = mapping.smooth(values, [5.0] * 4, [False] * 4)
    assert flat(out) == pytest.approx(flat(values))  # nothing crosses the cut between 2 and 3
    # a small wobble next to the change is smoothed only with its own side
    values = [(-0.6, -0.3), (-0.5, -0.2), (0.7, 0.5)]
    out = mapping.smooth(values, [5.0] * 3, [False] * 3)
    assert out[2] == pytest.approx((0.7, 0.5))
    assert out[1][0] == pytest.approx((2 * -0.5 - 0.6) / 3)


def test_locked_scenes_are_not_smoothed_and_do_not_pull():
    values = [(0.2, 0.2), (0.3, 0.3), (0.25, 0.2)]
    out = mapping.smooth(values, [4.0] * 3, [False, True, False])
    assert out[1] == (0.3, 0.3)
    assert out[0] == pytest.approx((0.2, 0.2)) and out[2] == pytest.approx((0.25, 0.2))


def test_short_scenes_lean_on_their_neighbours():
    values = [(0.0, 0.0), (0.3, 0.0), (0.0, 0.0)]
    long_mid = mapping.smooth(values, [4.0, 4.0, 4.0], [False] * 3)[1][0]
    short_mid = mapping.smooth(values, [4.0, 0.2, 4.0], [False] * 3)[1][0]
    assert short_mid < long_mid < 0.3
    assert short_mid == pytest.approx(2 * 0.1 * 0.3 / (2 * 0.1 + 2))
    with pytest.raises(ValueError):
        mapping.smooth(values, [1.0], [False] * 3)


def test_threshold_is_a_distance_in_the_plane():
    a, b = (0.0, 0.0), (0.3, 0.3)  # 0.42 apart: more than the threshold
    assert math.hypot(0.3, 0.3) > mapping.SMOOTH_THRESHOLD
    assert flat(mapping.smooth([a, b], [4, 4], [False, False])) == pytest.approx(flat([a, b]))
