"""The baseline arranger: chords on every cut, mood mapping, validity, determinism."""
from __future__ import annotations

import math

import pretty_midi
import pytest

from emsync_plugin.errors import OptionsError
from emsync_plugin.mood import SceneMood
from emsync_plugin.music.baseline import BaselineOptions, arrange, clean_cuts

CUTS = [1.2345, 3.0, 3.5, 7.777, 8.1, 14.2]
DURATION = 20.0


def scene(start, end, valence, arousal, index=0):
    """A scene's mood; the arranger reads only its span, valence and arousal."""
    return SceneMood(index, start, end, valence, arousal)


MIXED = [scene(0.0, 5.0, 0.8, -0.8, 0), scene(5.0, 12.0, -0.6, 0.9, 1), scene(12.0, 20.0, 0.2, 0.1, 2)]


def onsets_at(pm: pretty_midi.PrettyMIDI, t: float, tol: float = 1e-3) -> list[pretty_midi.Note]:
    return [n for inst in pm.instruments for n in inst.notes if abs(n.start - t) <= tol]


def tonal_notes(pm: pretty_midi.PrettyMIDI) -> list[pretty_midi.Note]:
    return [n for inst in pm.instruments if not inst.is_drum for n in inst.notes]


def pitch_classes(notes, start: float = 0.0, end: float = math.inf) -> set[int]:
    return {n.pitch % 12 for n in notes if start <= n.start < end}


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("moods", [MIXED, [scene(0, 20, -0.9, -0.9)], [scene(0, 20, 0.9, 0.9)], []])
def test_chord_at_zero_every_cut_and_end(seed, moods):
    pm = arrange(CUTS, DURATION, moods, BaselineOptions(seed=seed))
    for t in [0.0, *CUTS]:
        assert len({n.pitch for n in onsets_at(pm, t) if n.pitch >= 0}) >= 3, f"no chord at {t}"
    final = onsets_at(pm, DURATION - 3.0)
    held = [n for n in final if n.end == pytest.approx(DURATION, abs=1e-9)]
    assert len({n.pitch for n in held}) >= 3


def test_final_chord_is_tonic_and_starts_at_last_cut_when_close():
    pm = arrange([9.2], 10.0, [scene(0, 10, 0.5, 0.0)], BaselineOptions(key=2))
    final = [n for n in onsets_at(pm, 9.2) if n.end == pytest.approx(10.0)]
    assert len(final) >= 3
    assert min(n.pitch for n in final) % 12 == 2  # the bass holds the tonic
    assert {2, 6, 9} <= {n.pitch % 12 for n in final}  # D major triad


@pytest.mark.parametrize("duration", [0.4, 2.0, 10.01001, 61.3])
def test_notes_valid_and_inside_duration(duration):
    cuts = [duration * f for f in (0.5, 0.1, 0.5, 0.33, 0.9999999)] + [-1.0, duration + 5]
    pm = arrange(cuts, duration, MIXED, BaselineOptions(seed=3))
    notes = [n for inst in pm.instruments for n in inst.notes]
    assert notes
    for n in notes:
        assert 0 <= n.pitch <= 127 and 1 <= n.velocity <= 127
        assert 0 <= n.start < n.end <= duration
    assert pm.get_end_time() == pytest.approx(duration)


def test_clean_cuts_merges_and_drops():
    assert clean_cuts([5.0, 1.0, 1.0004, 0.0, 0.0002, 9.9995, 12.0], 10.0) == [1.0, 5.0]


@pytest.mark.parametrize("valence, present, absent", [(0.7, 4, 3), (0.1, 4, 3), (-0.2, 3, 4), (-0.9, 3, 4)])
def test_valence_sets_mode(valence, present, absent):
    pm = arrange(CUTS, DURATION, [scene(0, DURATION, valence, 0.0)], BaselineOptions(key=0, seed=1))
    pcs = pitch_classes(tonal_notes(pm))
    assert present in pcs and absent not in pcs  # major vs minor third above the tonic C


def test_each_scene_takes_its_own_mood():
    moods = [scene(0, 8.1, 0.8, 0.0), scene(8.1, 20, -0.8, 0.0)]
    pm = arrange(CUTS, DURATION, moods, BaselineOptions(key=0))
    notes = tonal_notes(pm)
    first, second = pitch_classes(notes, 0, 8.1), pitch_classes(notes, 8.1)
    assert 4 in first and 3 not in first
    assert 3 in second and 4 not in second


def test_valence_moves_register():
    low = arrange(CUTS, DURATION, [scene(0, 20, -1.0, 0.0)], BaselineOptions(key=0))
    high = arrange(CUTS, DURATION, [scene(0, 20, 1.0, 0.0)], BaselineOptions(key=0))

    def mean_pad(pm):
        pad = next(i for i in pm.instruments if i.program == 48)
        return sum(n.pitch for n in pad.notes) / len(pad.notes)

    assert mean_pad(high) > mean_pad(low) + 3


def test_arousal_raises_density_velocity_and_drums():
    calm = arrange(CUTS, DURATION, [scene(0, 20, 0.3, -0.8)])
    wild = arrange(CUTS, DURATION, [scene(0, 20, 0.3, 0.8)])
    calm_notes = [n for i in calm.instruments for n in i.notes]
    wild_notes = [n for i in wild.instruments for n in i.notes]
    assert len(wild_notes) / DURATION > 2 * len(calm_notes) / DURATION
    assert len(tonal_notes(wild)) > len(tonal_notes(calm))
    assert sum(n.velocity for n in wild_notes) / len(wild_notes) > sum(n.velocity for n in calm_notes) / len(calm_notes)
    assert not any(i.is_drum for i in calm.instruments)
    assert any(i.is_drum for i in wild.instruments)
    assert not any(i.is_drum for i in arrange(CUTS, DURATION, [scene(0, 20, 0.3, 0.8)],
                                               BaselineOptions(drums=False)).instruments)


def test_long_scene_does_not_drone():
    pm = arrange([], 60.0, [scene(0, 60, 0.0, 0.0)])
    pad = next(i for i in pm.instruments if i.program == 48)
    changes = sorted({round(n.start, 6) for n in pad.notes})
    assert len(changes) >= 8
    assert max(b - a for a, b in zip(changes, changes[1:])) <= 4.5


def _notes(pm):
    return [(i.program, i.is_drum, n.pitch, n.velocity, n.start, n.end) for i in pm.instruments for n in i.notes]


def test_deterministic_per_seed():
    a = arrange(CUTS, DURATION, MIXED, BaselineOptions(seed=42))
    b = arrange(CUTS, DURATION, MIXED, BaselineOptions(seed=42))
    c = arrange(CUTS, DURATION, MIXED, BaselineOptions(seed=43))
    assert _notes(a) == _notes(b)
    assert _notes(a) != _notes(c)


@pytest.mark.parametrize("kwargs", [
    {"seed": 1.5}, {"seed": True}, {"key": 12}, {"key": -1}, {"final_hold": 0.0},
    {"final_hold": float("nan")}, {"min_bpm": 10}, {"min_bpm": 150, "max_bpm": 100},
    {"beats_per_chord": 0}, {"drums": "yes"}, {"drums_arousal": 2.0}, {"humanize": -1},
])
def test_bad_options_raise(kwargs):
    with pytest.raises(OptionsError):
        BaselineOptions(**kwargs)


@pytest.mark.parametrize("args", [(0, 1, 1.5, 0.0), (0, 1, 0.0, -1.01), (2, 1, 0.0, 0.0),
                                  (0, 1, float("nan"), 0.0), (0, 1, "0.5", 0.0)])
def test_bad_moods_raise(args):
    """Out of range (checked by the arranger) or not numbers / ending before they start (by SceneMood)."""
    with pytest.raises(OptionsError):
        arrange([1.0], 2.0, [scene(*args)])


@pytest.mark.parametrize("duration, cuts", [(0.0, []), (-1.0, []), (float("inf"), []), (10.0, [float("nan")])])
def test_bad_inputs_raise(duration, cuts):
    with pytest.raises(OptionsError):
        arrange(cuts, duration, [])
