"""The rule-based drum part: locked to the music's pulse, by arousal, fills and accents on cuts (issue 14)."""
from __future__ import annotations

import numpy as np
import pretty_midi
import pytest

from emsync_plugin import rescore
from emsync_plugin.mood import SceneMood
from emsync_plugin.music.drums import DRUMS_NAME, KEYS, KITS, level
from emsync_plugin.music.generator import Generator
from emsync_plugin.music.groups import instrument_group
from emsync_plugin.music.pulse import estimate_pulse, merge_onsets
from emsync_plugin.music.styles import apply_style
from emsync_plugin.options import ScoreOptions

CUTS = (8.0, 16.0)
DURATION = 24.0
# a held-out-like timeline: tense, calm, energetic
MOODS = (SceneMood(1, 0.0, 8.0, -0.3, 0.8), SceneMood(2, 8.0, 16.0, 0.2, -0.8), SceneMood(3, 16.0, 24.0, 0.5, 0.7))


@pytest.fixture(scope="module")
def generated() -> pretty_midi.PrettyMIDI:
    return Generator.load().generate(CUTS, DURATION, MOODS, ScoreOptions(seed=3).sampling()).midi


def drum_times(midi: pretty_midi.PrettyMIDI) -> list[tuple[float, int, int, bool]]:
    """(time, pitch, velocity, on the kit) of every note of the drums group."""
    return sorted((round(n.start, 6), n.pitch, n.velocity, i.is_drum) for i in midi.instruments
                  if instrument_group(i) == "drums" for n in i.notes)


def test_a_steady_pulse_is_found_with_its_phase():
    rng = np.random.default_rng(1)
    for period, phase in ((0.45, 0.1), (0.6, 0.37), (0.8, 0.05)):
        beats = phase + period * np.arange(20)
        # chords on the beats, an off-beat now and then, a beat missing now and then
        onsets = np.concatenate([np.delete(beats, [5, 11, 17]), beats[::4] + period / 2, beats + 0.01])
        onsets = onsets + rng.normal(0.0, 0.004, len(onsets))
        pulse = estimate_pulse(onsets)
        assert pulse is not None
        assert pulse.period == pytest.approx(period, rel=0.01)
        off = (pulse.phase - phase) / period % 1.0
        assert min(off, 1.0 - off) * period < 0.01
        assert pulse.strength > 0.9
    eighths = 0.2 + 0.3 * np.arange(30)  # a run of eighth notes: a beat of two of them, not of one
    assert estimate_pulse(eighths).period == pytest.approx(0.6, rel=0.01)
    fast = 0.1 + 0.2 * np.arange(40)  # every 0.2 s: a beat of two or four of them (the grooves' halves), not of three
    assert min(abs(estimate_pulse(fast).period - b) for b in (0.4, 0.8)) < 0.004
    triplets = np.sort(np.r_[0.6 * np.arange(14), 0.6 * np.arange(14) + 0.2])  # on 1 and 2 of each three
    pulse = estimate_pulse(triplets)
    quarters = (triplets - pulse.phase) / (pulse.period / 4)  # the grooves' finest step
    assert np.abs(quarters - np.round(quarters)).max() < 0.05
    assert estimate_pulse([0.0, 0.5, 1.0]) is None


def test_arousal_levels():
    kit = KITS["cinematic"]
    assert [level(a, kit) for a in (-0.8, -0.3, 0.0, 0.3, 0.8)] == [0, 1, 1, 2, 3]
    assert level(0.9, KITS["acoustic"]) == 2  # light percussion only


@pytest.mark.parametrize("style", ["cinematic", "electronic", "acoustic"])
def test_tense_scenes_get_a_groove_locked_to_the_music_and_the_calm_one_none(generated, style):
    arranged = apply_style(generated, style, CUTS, DURATION, MOODS, seed=3)
    hits = drum_times(arranged)
    for mood in MOODS:
        notes = [n for i in generated.instruments for n in i.notes if mood.start <= n.start < mood.end]
        pulse = estimate_pulse([n.start for n in notes])
        if level(mood.arousal, KITS[style]) == 0:  # calm: no stroke at all, not even a fill or an accent
            assert not [h for h in hits if mood.start <= h[0] < mood.end], f"{style}: calm scene {mood.index} has drums"
            continue
        fill = 0.0 if mood.end == DURATION else len(KITS[style].fills[level(mood.arousal, KITS[style])]) * pulse.period / 4
        body = [h for h in hits if mood.start + 0.05 < h[0] < mood.end - fill - 0.002]  # not the accent, not the fill
        rate = len(body) / (mood.end - mood.start - fill)
        assert rate >= 2.0, f"{style}: scene {mood.index} has {rate:.1f} drum onsets/s"
        # locked to the music: its onsets (chords merged) land on drum strokes
        music = merge_onsets([n.start for n in notes if n.start < mood.end - fill - 0.002])
        strokes = np.array([h[0] for h in body])
        on = [np.min(np.abs(strokes - t)) < 0.015 for t in music if t > body[0][0] - 0.01]
        assert np.mean(on) >= 0.8, f"{style}: scene {mood.index}: {np.mean(on):.0%} of the music's onsets on a stroke"


@pytest.mark.parametrize("style", ["cinematic", "electronic", "acoustic"])
def test_a_fill_leads_into_each_cut_and_an_accent_lands_on_it(generated, style):
    arranged = apply_style(generated, style, CUTS, DURATION, MOODS, seed=3)
    hits = drum_times(arranged)
    kit = KITS[style]
    for cut, before, after in zip(CUTS, MOODS, MOODS[1:]):
        on = [h for h in hits if abs(h[0] - cut) < 0.002]
        if level(after.arousal, kit) == 0:  # into a calm scene: the drums stop on the cut
            assert on == [], f"{style}: an accent on {cut}, into a calm scene"
        else:
            assert {KEYS[p] for p in kit.accent if p != "timpani"} <= {h[1] for h in on if h[3]}, f"no accent on {cut}"
        if level(before.arousal, kit) == 0:
            continue  # out of a calm scene: no fill (the accent on the cut is the next scene's)
        fill = kit.fills[level(before.arousal, kit)]
        notes = [n for i in generated.instruments for n in i.notes if before.start <= n.start < before.end]
        sixteenth = estimate_pulse([n.start for n in notes]).period / 4
        lead = [h for h in hits if cut - len(fill) * sixteenth - 0.002 < h[0] < cut - 0.002]
        assert len(lead) == len(fill), f"{style}: no fill before {cut}"  # the fill alone: the groove stopped
        assert abs(max(h[0] for h in lead) - (cut - sixteenth)) < 0.002  # its last stroke a sixteenth before
        assert lead[-1][2] > lead[0][2]  # rising into the cut


def test_a_kept_scene_keeps_its_drums_wherever_it_moves(generated):
    """A re-score with scene 2 kept (and moved 1 s later) and new music around it: same drums in it.
    Scene 2 is styled as quiet (arousal -0.2: a soft pulse) rather than calm, so it has drums."""
    quiet = (MOODS[0], SceneMood(2, 8.0, 16.0, 0.2, -0.2), MOODS[2])
    before = apply_style(generated, "cinematic", CUTS, DURATION, quiet, seed=3)
    shift = 1.0
    cuts = (CUTS[0] + shift, CUTS[1] + shift)
    moods = (SceneMood(1, 0.0, 9.0, -0.3, 0.8), SceneMood(2, 9.0, 17.0, 0.2, -0.2), SceneMood(3, 17.0, 25.0, 0.5, 0.7))
    kept = rescore.KeptSpan(9.0, 17.0, tuple(
        (i.program, i.is_drum, i.name, pretty_midi.Note(n.velocity, n.pitch, n.start + shift, n.end + shift))
        for i in generated.instruments for n in i.notes if 8.0 <= n.start < 16.0))
    other = Generator.load().generate(cuts, 25.0, moods, ScoreOptions(seed=4).sampling(), kept=[kept]).midi
    after = apply_style(rescore.splice(other, [kept], 25.0), "cinematic", cuts, 25.0, moods, seed=3)

    def scene(midi, start, end, offset=0.0):
        return [(round(t - offset, 6), p, v, d) for t, p, v, d in drum_times(midi) if start <= t < end]

    assert scene(after, 9.0, 17.0, shift) == scene(before, 8.0, 16.0)
    assert len(scene(after, 9.0, 17.0, shift)) > 10  # it has drums: a soft pulse
    assert scene(after, 0.0, 9.0) != scene(before, 0.0, 8.0)  # new music around it, new drums


def test_no_music_no_drums():
    assert apply_style(pretty_midi.PrettyMIDI(), "electronic", [2.0], 4.0, []).instruments == []


def test_drums_are_their_own_group(generated):
    arranged = apply_style(generated, "cinematic", CUTS, DURATION, MOODS, seed=3)
    drums = [i for i in arranged.instruments if i.name == DRUMS_NAME]
    assert {i.is_drum for i in drums} == {True, False}  # the kit and the timpani
    assert {instrument_group(i) for i in drums} == {"drums"}
    assert all(i.program == 47 for i in drums if not i.is_drum)
