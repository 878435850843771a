"""The decoder's rules on their own: a real vocabulary (the shipped model's), hand-made scores."""
from __future__ import annotations

import numpy as np
import pytest

from emsync_plugin import models
from emsync_plugin.errors import OptionsError
from emsync_plugin.music import decoding as D
from emsync_plugin.music.features import key_correlations
from emsync_plugin.music.vocab import Vocab

pytestmark = pytest.mark.skipif(
    "generator.onnx" not in models.manifest()["files"], reason="the learned generator is not shipped yet"
)


@pytest.fixture(scope="module")
def vocab():
    sess = models.session(models.find("generator.onnx"), 1)
    return Vocab.from_json(models.metadata(sess)["emsync.vocab"])


def _play(clock, vocab, pitches, group=2):
    for p in pitches:
        clock.advance(vocab.note_on(group, p))
        clock.advance(vocab.shift(10))
        clock.advance(vocab.note_off(group, p))


def test_the_key_is_read_in_the_asked_mode_and_follows_the_music(vocab):
    clock = D.Clock(vocab, [500], 1000)
    _play(clock, vocab, [60, 64, 67, 72, 65, 69, 67])  # C major, 7 onsets: not yet
    assert clock.key(major=True) == -1
    _play(clock, vocab, [60])
    assert D.TONIC_ONSETS == 8
    assert clock.key(major=True) == 0  # C major
    assert clock.key(major=False) == 12 + 9  # read in minor: A minor, the relative key
    _play(clock, vocab, [62, 66, 69, 74, 67, 71, 74, 62] * 4)  # then D major for a while
    assert clock.key(major=True) == 2
    assert clock.onsets == 40  # the whole count stays; the recent one fades


@pytest.mark.parametrize("valence", [0.8, -0.8])
def test_mode_steering_favours_the_mode_of_the_valence(vocab, valence):
    clock = D.Clock(vocab, [500], 1000)
    _play(clock, vocab, [57, 60, 64, 69, 64, 60, 57, 69])  # A minor arpeggios
    clock.valence = valence
    logits = np.zeros(vocab.size)
    logits[vocab.note_on(2, 61)] = D.NEG  # a forbidden note stays forbidden
    D.steer_mode(3.0)(logits, clock)
    assert logits[vocab.note_on(2, 61)] == D.NEG
    assert np.all(logits[vocab.off_base:] == 0)  # only note-ons move
    on = logits[vocab.on_base:vocab.off_base].reshape(len(vocab.groups), vocab.n_pitches)[2]
    by_pc = {pc: on[(np.arange(vocab.n_pitches) + vocab.pitch_min) % 12 == pc].max() for pc in range(12)}
    if valence > 0:  # A C E read in major is A major (C major is close): A leads, C# beats C
        assert clock.key(major=True) == 9
        assert by_pc[9] == max(by_pc.values()) and by_pc[1] > by_pc[0]
    else:  # A harmonic minor: A leads, G# (leading tone) beats G, and C beats C#
        assert by_pc[9] == max(by_pc.values()) and by_pc[8] > by_pc[7] and by_pc[0] > by_pc[1]
    # which note, not whether a note: the note-ons' total probability is what it was
    allowed = logits[vocab.on_base:vocab.off_base] > D.NEG / 2
    total = np.log(np.exp(logits[vocab.on_base:vocab.off_base][allowed]).sum())
    assert total == pytest.approx(np.log(allowed.sum()), abs=1e-9)
    # sampling only from the steered note-ons gives a pitch-class histogram in the asked mode
    p = np.exp(on - on.max()) * (on > D.NEG / 2)
    hist = np.bincount((np.arange(vocab.n_pitches) + vocab.pitch_min) % 12, weights=p / p.sum(), minlength=12)
    best = int(np.argmax(key_correlations(hist)))
    assert best == (9 if valence > 0 else 21)  # A major / A minor


def test_no_steering_without_valence_onsets_or_strength(vocab):
    clock = D.Clock(vocab, [500], 1000)
    logits = np.zeros(vocab.size)
    clock.valence = 0.9
    D.steer_mode(3.0)(logits, clock)  # no key yet
    _play(clock, vocab, [60, 64, 67, 72, 65, 69, 67, 60])
    D.steer_mode(0.0)(logits, clock)
    clock.valence = 0.0
    D.steer_mode(3.0)(logits, clock)
    assert np.all(logits == 0)


def test_steering_options_are_validated():
    with pytest.raises(OptionsError, match="mode steering"):
        D.SamplingOptions(mode_steering=-1)


def test_steered_music_measures_in_the_asked_direction():
    """End to end with the shipped model: asking for high valence gives music the label
    formula measures happier than asking for low valence, seed for seed."""
    from emsync_plugin.music.features import LabelStats, labels, measure
    from emsync_plugin.music.generator import Generator, SceneMood

    gen = Generator.load(threads=1)
    stats = LabelStats.from_dict(gen.label_stats)
    got = {}
    for v in (-0.8, 0.8):
        got[v] = [labels(measure(gen.generate([6.0, 12.0], 18.0, [SceneMood(0, 18.0, v, 0.0)],
                                              D.SamplingOptions(seed=s, mode_steering=3.0)).notes, 0, 18.0), stats)[0]
                  for s in range(3)]
    assert np.mean(got[0.8]) > np.mean(got[-0.8]) + 0.3


def test_without_the_guarantee_a_shift_never_jumps_the_final_chord(vocab):
    """A cut just before the final chord: without the guarantee a long shift may pass the cut
    but must stop on the final chord, which is then still required (it once skipped both and
    stalled at the end of the timeline)."""
    clock = D.Clock(vocab, [150, 180], 200)  # a cut at 1.5 s, the final chord at 1.8 s
    clock.advance(vocab.shift(100))
    logits = np.zeros(vocab.size)
    D.cut_rules(False)(logits, clock)
    allowed = [vocab.shift_units(t) for t in range(vocab.shift_base, vocab.size) if logits[t] > D.NEG / 2]
    assert max(allowed) == 80  # past the cut at 150, up to the final chord at 180
    clock.advance(vocab.shift(80))
    assert clock.now == 180 and clock.cut == 180  # the skipped cut is gone, the final one is not
    logits = np.zeros(vocab.size)
    D.cut_rules(False)(logits, clock)
    assert np.all(logits[vocab.shift_base:] == D.NEG)  # stay: the chord comes first
    assert np.all(logits[vocab.on_base:vocab.off_base] == D.NEG) and logits[vocab.chord] == 0


def test_a_note_is_not_released_where_it_was_struck(vocab):
    clock = D.Clock(vocab, [500], 1000)
    clock.advance(vocab.note_on(2, 60))
    logits = np.zeros(vocab.size)
    D.well_formed(logits, clock)
    assert logits[vocab.note_off(2, 60)] == D.NEG  # it would last no time at all
    clock.advance(vocab.shift(1))
    logits = np.zeros(vocab.size)
    D.well_formed(logits, clock)
    assert logits[vocab.note_off(2, 60)] == 0 and logits[vocab.note_on(2, 60)] == D.NEG


def test_the_chord_on_a_cut_changes_the_harmony(vocab):
    """Held notes at a cut: the cut's chord is pushed off their pitch classes (a quiet scene
    once re-struck one triad at every cut for 45 s)."""
    clock = D.Clock(vocab, [100, 300], 400)
    for p in (48, 52, 55):  # C major held into the cut
        clock.advance(vocab.note_on(2, p))
    clock.advance(vocab.shift(100))
    assert clock.now == clock.cut == 100 and clock.before_cut == {0, 4, 7}
    rule = D.fresh_chord_at_cuts(2.0)
    logits = np.zeros(vocab.size)
    rule(logits, clock)
    assert np.all(logits == 0)  # before the CHORD token nothing changes
    clock.advance(vocab.chord)
    logits = np.zeros(vocab.size)
    logits[vocab.note_on(2, 60)] = D.NEG
    rule(logits, clock)
    assert logits[vocab.note_on(1, 64)] == -2.0 and logits[vocab.note_on(0, 43)] == -2.0  # E, G in any group
    assert logits[vocab.note_on(2, 53)] == 0 and logits[vocab.note_on(2, 57)] == 0  # F, A: a new chord
    assert logits[vocab.note_on(2, 60)] == D.NEG  # forbidden stays forbidden
    assert np.all(logits[vocab.off_base:] == 0)
