"""The decoder's rules on their own: a real vocabulary (the shipped model's), hand-made scores."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from emsync_plugin import models
from emsync_plugin.errors import OptionsError
from emsync_plugin.mood import SceneMood
from emsync_plugin.music import decoding as dec
from emsync_plugin.music.features import key_correlations
from emsync_plugin.music.vocab import Note, Vocab

# A tiny hand-made vocabulary for the rules' unit tests: 2 groups x 5 pitches (60-64), shifts of
# 1..10 units. Layout: PAD BOS EOS CHORD | 10 note-ons (4-13) | 10 note-offs (14-23) | 10 shifts (24-33).
TINY = Vocab(groups=("low", "high"), programs=(0, 48), pitch_min=60, pitch_max=64, shift_ms=10, max_shift=10)


@pytest.fixture(scope="module")
def vocab():
    """The shipped model's vocabulary without its key tokens: the rules for a keyless model (the
    key read from the notes); the keyed paths have their own tests below."""
    sess = models.session(models.find("generator.onnx"), 1)
    return dataclasses.replace(Vocab.from_json(models.metadata(sess)["emsync.vocab"]), keys=0)


def _play(clock, vocab, pitches, group=2):
    for p in pitches:
        clock.advance(vocab.note_on(group, p))
        clock.advance(vocab.shift(10))
        clock.advance(vocab.note_off(group, p))


def test_the_key_is_read_in_the_asked_mode_and_follows_the_music(vocab):
    clock = dec.Clock(vocab, [500], 1000)
    _play(clock, vocab, [60, 64, 67, 72, 65, 69, 67])  # C major, 7 onsets: not yet
    assert clock.key(major=True) == -1
    _play(clock, vocab, [60])
    assert dec.TONIC_ONSETS == 8
    assert clock.key(major=True) == 0  # C major
    assert clock.key(major=False) == 12 + 9  # read in minor: A minor, the relative key
    _play(clock, vocab, [62, 66, 69, 74, 67, 71, 74, 62] * 4)  # then D major for a while
    assert clock.key(major=True) == 2
    assert clock.onsets == 40  # the whole count stays; the recent one fades


@pytest.mark.parametrize("valence", [0.8, -0.8])
def test_mode_steering_favours_the_mode_of_the_valence(vocab, valence):
    clock = dec.Clock(vocab, [500], 1000)
    _play(clock, vocab, [57, 60, 64, 69, 64, 60, 57, 69])  # A minor arpeggios
    clock.valence = valence
    logits = np.zeros(vocab.size)
    logits[vocab.note_on(2, 61)] = dec.NEG  # a forbidden note stays forbidden
    dec.steer_mode(3.0)(logits, clock)
    assert logits[vocab.note_on(2, 61)] == dec.NEG
    assert np.all(logits[vocab.off_base:] == 0)  # only note-ons move
    on = logits[vocab.on_base:vocab.off_base].reshape(len(vocab.groups), vocab.n_pitches)[2]
    by_pc = {pc: on[(np.arange(vocab.n_pitches) + vocab.pitch_min) % 12 == pc].max() for pc in range(12)}
    if valence > 0:  # A C E read in major is A major (C major is close): A leads, C# beats C
        assert clock.key(major=True) == 9
        assert by_pc[9] == max(by_pc.values()) and by_pc[1] > by_pc[0]
    else:  # A harmonic minor: A leads, G# (leading tone) beats G, and C beats C#
        assert by_pc[9] == max(by_pc.values()) and by_pc[8] > by_pc[7] and by_pc[0] > by_pc[1]
    # which note, not whether a note: the note-ons' total probability is what it was
    allowed = logits[vocab.on_base:vocab.off_base] > dec.NEG / 2
    total = np.log(np.exp(logits[vocab.on_base:vocab.off_base][allowed]).sum())
    assert total == pytest.approx(np.log(allowed.sum()), abs=1e-9)
    # sampling only from the steered note-ons gives a pitch-class histogram in the asked mode
    p = np.exp(on - on.max()) * (on > dec.NEG / 2)
    hist = np.bincount((np.arange(vocab.n_pitches) + vocab.pitch_min) % 12, weights=p / p.sum(), minlength=12)
    best = int(np.argmax(key_correlations(hist)))
    assert best == (9 if valence > 0 else 21)  # A major / A minor


def test_no_steering_without_valence_onsets_or_strength(vocab):
    clock = dec.Clock(vocab, [500], 1000)
    logits = np.zeros(vocab.size)
    clock.valence = 0.9
    dec.steer_mode(3.0)(logits, clock)  # no key yet
    _play(clock, vocab, [60, 64, 67, 72, 65, 69, 67, 60])
    dec.steer_mode(0.0)(logits, clock)
    clock.valence = 0.0
    dec.steer_mode(3.0)(logits, clock)
    assert np.all(logits == 0)


def test_steering_options_are_validated():
    with pytest.raises(OptionsError, match="mode steering"):
        dec.SamplingOptions(mode_steering=-1)


def test_steered_music_measures_in_the_asked_direction():
    """End to end with the shipped model: asking for high valence gives music the label
    formula measures happier than asking for low valence, seed for seed."""
    from emsync_plugin.music.features import LabelStats, labels, measure
    from emsync_plugin.music.generator import Generator

    gen = Generator.load(threads=1)
    stats = LabelStats.from_dict(gen.label_stats)
    got = {}
    for v in (-0.8, 0.8):
        got[v] = [labels(measure(gen.generate([6.0, 12.0], 18.0, [SceneMood(0, 0, 18.0, v, 0.0)],
                                              dec.SamplingOptions(seed=s, mode_steering=3.0)).notes, 0, 18.0), stats)[0]
                  for s in range(3)]
    assert np.mean(got[0.8]) > np.mean(got[-0.8]) + 0.3


def test_without_the_guarantee_a_shift_never_jumps_the_final_chord(vocab):
    """A cut just before the final chord: without the guarantee a long shift may pass the cut
    but must stop on the final chord, which is then still required (it once skipped both and
    stalled at the end of the timeline)."""
    clock = dec.Clock(vocab, [150, 180], 200)  # a cut at 1.5 s, the final chord at 1.8 s
    clock.advance(vocab.shift(100))
    logits = np.zeros(vocab.size)
    dec.cut_rules(False)(logits, clock)
    allowed = [vocab.shift_units(t) for t in range(vocab.shift_base, vocab.size) if logits[t] > dec.NEG / 2]
    assert max(allowed) == 80  # past the cut at 150, up to the final chord at 180
    clock.advance(vocab.shift(80))
    assert clock.now == 180 and clock.cut == 180  # the skipped cut is gone, the final one is not
    logits = np.zeros(vocab.size)
    dec.cut_rules(False)(logits, clock)
    assert np.all(logits[vocab.shift_base:] == dec.NEG)  # stay: the chord comes first
    assert np.all(logits[vocab.on_base:vocab.off_base] == dec.NEG) and logits[vocab.chord] == 0


def test_a_note_is_not_released_where_it_was_struck(vocab):
    clock = dec.Clock(vocab, [500], 1000)
    clock.advance(vocab.note_on(2, 60))
    logits = np.zeros(vocab.size)
    dec.well_formed(logits, clock)
    assert logits[vocab.note_off(2, 60)] == dec.NEG  # it would last no time at all
    clock.advance(vocab.shift(1))
    logits = np.zeros(vocab.size)
    dec.well_formed(logits, clock)
    assert logits[vocab.note_off(2, 60)] == 0 and logits[vocab.note_on(2, 60)] == dec.NEG


def test_the_chord_on_a_cut_changes_the_harmony(vocab):
    """Held notes at a cut: the cut's chord is pushed off their pitch classes (a quiet scene
    once re-struck one triad at every cut for 45 s)."""
    clock = dec.Clock(vocab, [100, 300], 400)
    for p in (48, 52, 55):  # C major held into the cut
        clock.advance(vocab.note_on(2, p))
    clock.advance(vocab.shift(100))
    assert clock.now == clock.cut == 100 and clock.before_cut == {0, 4, 7}
    rule = dec.fresh_chord_at_cuts(2.0)
    logits = np.zeros(vocab.size)
    rule(logits, clock)
    assert np.all(logits == 0)  # before the CHORD token nothing changes
    clock.advance(vocab.chord)
    logits = np.zeros(vocab.size)
    logits[vocab.note_on(2, 60)] = dec.NEG
    rule(logits, clock)
    assert logits[vocab.note_on(1, 64)] == -2.0 and logits[vocab.note_on(0, 43)] == -2.0  # E, G in any group
    assert logits[vocab.note_on(2, 53)] == 0 and logits[vocab.note_on(2, 57)] == 0  # F, A: a new chord
    assert logits[vocab.note_on(2, 60)] == dec.NEG  # forbidden stays forbidden
    assert np.all(logits[vocab.off_base:] == 0)


# ---- the rules one by one, on the tiny vocabulary ------------------------------------------------


def _allowed(logits):
    return {int(t) for t in np.flatnonzero(logits > dec.NEG / 2)}


def _shifts_allowed(logits):
    return sorted(TINY.shift_units(t) for t in _allowed(logits) if TINY.kind(t) == "shift")


def test_tiny_vocabulary_layout():
    assert (TINY.on_base, TINY.off_base, TINY.shift_base, TINY.size) == (4, 14, 24, 34)


def test_key_tokens_end_the_vocabulary():
    """keys=2: MAJOR, MINOR; keys=24: C major .. B major, C minor .. B minor (key_correlations'
    order). Decoding skips them; a vocabulary without them serialises as before they existed."""
    modal, keyed = dataclasses.replace(TINY, keys=2), dataclasses.replace(TINY, keys=24)
    assert (modal.shift_end, modal.size, modal.key(True), modal.key(False, tonic=9)) == (34, 36, 34, 35)
    assert (keyed.size, keyed.key(True, 0), keyed.key(True, 11), keyed.key(False, 9), keyed.key(False, 21)) == (58, 34, 45, 55, 55)
    assert [keyed.kind(t) for t in (33, 34, 57)] == ["shift", "key", "key"]
    assert (modal.name(34), modal.name(35), keyed.name(34), keyed.name(55)) == ("MAJOR", "MINOR", "KEY_C_MAJOR", "KEY_A_MINOR")
    assert (modal.key_of(35), keyed.key_of(55), keyed.key_of(45)) == ((None, False), (9, False), (11, True))
    for v in (modal, keyed):
        assert Vocab.from_json(v.to_json()) == v
    assert "keys" not in TINY.to_json() and Vocab.from_json(TINY.to_json()) == TINY
    with pytest.raises(ValueError):
        TINY.key(True)
    with pytest.raises(ValueError):
        keyed.kind(58)
    with pytest.raises(ValueError):
        dataclasses.replace(TINY, keys=12)
    notes = [Note(0, 60, 0.0, 0.05), Note(1, 62, 0.05, 0.1)]
    tokens, _ = keyed.encode(notes)
    assert keyed.decode([keyed.key(False, 9), *tokens[:3], keyed.key(True, 0), *tokens[3:]]) == notes


def test_a_key_token_comes_first_and_after_each_cut_and_nowhere_else():
    """With key tokens, well_formed allows only them where a scene starts (the start, and after
    the time shift that reaches or passes a cut) and never elsewhere; the cut's chord follows.
    Mode steering moves the major keys up and the minor ones down by strength x valence."""
    keyed = dataclasses.replace(TINY, keys=24)
    keys = set(range(34, 58))
    clock = dec.Clock(keyed, [0, 7, 12, 20], 30)

    def allowed():
        logits = np.zeros(keyed.size)
        dec.well_formed(logits, clock)
        dec.cut_rules(False)(logits, clock)
        return _allowed(logits)

    assert allowed() == keys
    clock.advance(keyed.key(False, 9))
    assert not keys & allowed() and keyed.chord in allowed()
    for t in (keyed.chord, keyed.note_on(0, 60), keyed.note_on(0, 62), keyed.note_on(1, 64), keyed.shift(3)):
        clock.advance(t)
    assert not clock.key_due and not keys & allowed()
    clock.advance(keyed.shift(4))  # lands on the cut at 7
    assert clock.now == 7 and allowed() == keys
    clock.advance(keyed.key(True, 0))
    clock.advance(keyed.shift(10))  # passes the cut at 12 without the guarantee
    assert clock.now == 17 and clock.key_due
    assert dec.Clock(TINY, [0, 7], 30).key_due is False
    clock.valence = -0.5
    logits = np.zeros(keyed.size)
    dec.well_formed(logits, clock)
    dec.steer_mode(2.0)(logits, clock)  # the key leans to the valence's mode, nothing else moves
    assert np.all(logits[34:46] == -1.0) and np.all(logits[46:58] == 1.0) and _allowed(logits) == keys


@pytest.mark.parametrize("on", [True, False])
def test_hold_tonic_keeps_the_first_key_s_tonic_at_cuts(on):
    """The first key is the model's to choose; at a cut, with the rule on, only the major and
    minor key of that tonic remain (their scores kept); off, or without keys=24, nothing moves."""
    keyed = dataclasses.replace(TINY, keys=24)
    clock = dec.Clock(keyed, [0, 7, 20], 30)
    rule = dec.hold_tonic(on)
    logits = np.arange(keyed.size, dtype=float)
    rule(logits, clock)
    assert np.array_equal(logits, np.arange(keyed.size))  # no tonic yet
    clock.advance(keyed.key(False, 9))  # A minor
    assert clock.tonic == 9
    clock.advance(keyed.shift(7))
    assert clock.key_due
    logits = np.arange(keyed.size, dtype=float)
    rule(logits, clock)
    a_major, a_minor = keyed.key(True, 9), keyed.key(False, 9)
    if on:
        assert _allowed(logits) - set(range(keyed.shift_end)) == {a_major, a_minor}
        assert (logits[a_major], logits[a_minor]) == (a_major, a_minor)
    else:
        assert np.array_equal(logits, np.arange(keyed.size))
    modal = dec.Clock(dataclasses.replace(TINY, keys=2), [0, 7], 30)
    modal.advance(modal.vocab.key(False))
    assert modal.tonic == -1


def test_mode_steering_follows_the_stated_tonic_in_the_asked_mode(vocab):
    """With tonic-and-mode key tokens, steering reads the tonic from the model's key token,
    not from the notes: after "E minor" and C major arpeggios (read in minor: A minor), valence
    -0.8 favours E, and E harmonic minor's leading tone D# over D."""
    keyed = dataclasses.replace(vocab, keys=24)
    clock = dec.Clock(keyed, [0, 500], 1000)
    clock.advance(keyed.key(False, 4))
    _play(clock, keyed, [60, 64, 67, 72, 64, 67, 60, 72])  # C major notes
    clock.valence = -0.8
    logits = np.zeros(keyed.size)
    dec.steer_mode(3.0)(logits, clock)
    on = logits[keyed.on_base:keyed.off_base].reshape(len(keyed.groups), keyed.n_pitches)[2]
    by_pc = {pc: on[(np.arange(keyed.n_pitches) + keyed.pitch_min) % 12 == pc].max() for pc in range(12)}
    assert by_pc[4] == max(by_pc.values()) and by_pc[3] > by_pc[2]  # E leads; D# (leading tone) beats D
    assert clock.key(major=False) != 12 + 4  # the notes alone read another minor key


def test_cut_rules_clamp_time_to_land_exactly_on_the_next_cut():
    clock = dec.Clock(TINY, [0, 7, 20], 30)  # the chord at 0 is already struck; a cut at 7, the final chord at 20
    clock.next_cut = 1
    clock.advance(TINY.shift(3))
    logits = np.zeros(TINY.size)
    dec.cut_rules(True)(logits, clock)
    assert _shifts_allowed(logits) == [1, 2, 3, 4]  # 3 + 4 = 7: up to the cut, never past it
    assert np.all(logits[:TINY.shift_base] == 0)  # notes and the chord token are untouched


def test_cut_rules_demand_the_chord_token_then_its_notes_at_a_cut():
    clock = dec.Clock(TINY, [0, 7, 20], 30)
    clock.next_cut = 1
    clock.advance(TINY.note_on(0, 60))
    clock.advance(TINY.shift(7))
    assert clock.now == clock.cut == 7
    rule = dec.cut_rules(True)
    logits = np.zeros(TINY.size)
    rule(logits, clock)
    # at the cut: no time shift and no note-on before the CHORD token; releases stay allowed
    assert _allowed(logits) == {TINY.pad, TINY.bos, TINY.eos, TINY.chord} | set(range(TINY.off_base, TINY.shift_base))
    clock.advance(TINY.chord)
    logits = np.zeros(TINY.size)
    rule(logits, clock)
    # after it: only note-ons (and specials, which well_formed rules out) until the chord is complete
    assert _allowed(logits) == {0, 1, 2, 3} | set(range(TINY.on_base, TINY.off_base))
    for p in (61, 62):
        clock.advance(TINY.note_on(1, p))
        logits = np.zeros(TINY.size)
        rule(logits, clock)
        assert not _shifts_allowed(logits)  # two notes are not a chord yet
    clock.advance(TINY.note_on(1, 64))
    assert clock.next_cut == 2 and clock.cut == 20  # the third note satisfies the cut
    logits = np.zeros(TINY.size)
    rule(logits, clock)
    assert _shifts_allowed(logits) == list(range(1, 11))  # time may move on (13 units to the final chord)


def test_cut_rules_never_cross_the_end_nor_wait_past_the_final_chord():
    clock = dec.Clock(TINY, [0, 25], 27)
    clock.next_cut = 1
    clock.advance(TINY.shift(10))
    clock.advance(TINY.shift(10))
    logits = np.zeros(TINY.size)
    dec.cut_rules(True)(logits, clock)
    assert _shifts_allowed(logits) == [1, 2, 3, 4, 5]  # the final chord at 25
    clock = dec.Clock(TINY, [30], 30)
    clock.finished = False
    clock.now = 30
    clock.next_cut = 1  # everything done, at the end: time stands still
    logits = np.zeros(TINY.size)
    dec.cut_rules(True)(logits, clock)
    assert not _shifts_allowed(logits)


def test_without_the_guarantee_other_cuts_may_be_passed():
    clock = dec.Clock(TINY, [0, 5, 30], 40)
    clock.next_cut = 1
    logits = np.zeros(TINY.size)
    dec.cut_rules(False)(logits, clock)
    assert _shifts_allowed(logits) == list(range(1, 11))  # past the cut at 5
    logits = np.zeros(TINY.size)
    dec.cut_rules(True)(logits, clock)
    assert _shifts_allowed(logits) == [1, 2, 3, 4, 5]  # with it: to the cut


def test_time_stops_where_kept_music_starts_even_without_the_guarantee():
    clock = dec.Clock(TINY, [0, 30], 40, stops=[6])  # kept music from 6 (the generator feeds it there)
    clock.next_cut = 1
    for guarantee in (True, False):
        logits = np.zeros(TINY.size)
        dec.cut_rules(guarantee)(logits, clock)
        assert _shifts_allowed(logits) == [1, 2, 3, 4, 5, 6]
    clock.advance(TINY.shift(6))
    assert clock.stop == 6
    clock.advance(TINY.shift(10))
    assert clock.stop is None


def test_resume_after_kept_music_points_at_the_next_cut_or_finishes():
    clock = dec.Clock(TINY, [0, 5, 20, 30], 40)
    clock.next_cut = 1
    for tok in TINY.shifts(20):  # forced through the cut at 5 (kept music's) onto the one at 20
        clock.advance(tok)
    clock.resume()
    assert (clock.cut, clock.finished) == (20, False)
    clock.now = 40  # kept music up to the end: done
    clock.resume()
    assert clock.finished


def test_limit_polyphony_blocks_new_notes_when_full():
    clock = dec.Clock(TINY, [0, 50], 60)
    clock.next_cut = 1
    for p in (60, 61, 62):
        clock.advance(TINY.note_on(0, p))
    rule = dec.limit_polyphony(3)
    logits = np.zeros(TINY.size)
    rule(logits, clock)
    assert np.all(logits[TINY.on_base:TINY.off_base] == dec.NEG)  # full: no new note
    assert np.all(logits[TINY.off_base:] == 0) and logits[TINY.chord] == 0  # releases, shifts, the chord token
    clock.advance(TINY.shift(1))
    clock.advance(TINY.note_off(0, 60))
    logits = np.zeros(TINY.size)
    rule(logits, clock)
    assert np.all(logits == 0)  # room for one more


def test_limit_polyphony_makes_room_for_the_chord_on_a_cut():
    clock = dec.Clock(TINY, [0, 10, 50], 60)
    clock.next_cut = 1
    for p in (60, 61):
        clock.advance(TINY.note_on(0, p))
    clock.advance(TINY.shift(10))
    assert clock.now == clock.cut == 10
    rule = dec.limit_polyphony(4)  # 2 sounding + a 3-note chord > 4: release first
    logits = np.zeros(TINY.size)
    rule(logits, clock)
    assert logits[TINY.chord] == dec.NEG and np.all(logits[TINY.on_base:TINY.off_base] == dec.NEG)
    assert np.all(logits[TINY.off_base:TINY.shift_base] == 0)
    clock.advance(TINY.note_off(0, 60))  # 1 + 3 <= 4: the chord may come
    logits = np.zeros(TINY.size)
    rule(logits, clock)
    assert logits[TINY.chord] == 0
    clock.advance(TINY.chord)
    for p in (62, 63, 64):  # the chord's notes are never blocked, even beyond the limit
        logits = np.zeros(TINY.size)
        rule(logits, clock)
        assert np.all(logits == 0)
        clock.advance(TINY.note_on(1, p))


def test_keep_time_moving_allows_only_shifts_after_enough_events():
    clock = dec.Clock(TINY, [0, 50], 60)
    rule = dec.keep_time_moving(3)
    for p in (60, 61):
        clock.advance(TINY.note_on(0, p))
    logits = np.zeros(TINY.size)
    rule(logits, clock)
    assert np.all(logits == 0)  # 2 events at this instant
    clock.advance(TINY.note_on(0, 62))
    logits = np.zeros(TINY.size)
    rule(logits, clock)
    assert np.all(logits[:TINY.shift_base] == dec.NEG) and np.all(logits[TINY.shift_base:] == 0)
    logits = np.zeros(TINY.size)
    logits[TINY.shift_base:] = dec.NEG  # no shift is allowed (at a cut): the rule stands aside
    rule(logits, clock)
    assert np.all(logits[:TINY.shift_base] == 0)
    clock.advance(TINY.shift(1))
    logits = np.zeros(TINY.size)
    rule(logits, clock)
    assert np.all(logits == 0)  # time moved: the count starts again


def test_release_long_notes_allows_only_their_release():
    clock = dec.Clock(TINY, [0, 50], 60)
    clock.advance(TINY.note_on(0, 60))
    clock.advance(TINY.shift(2))
    clock.advance(TINY.note_on(1, 63))
    clock.advance(TINY.shift(2))  # 60 has sounded 4 units, 63 two
    rule = dec.release_long_notes(4)
    logits = np.zeros(TINY.size)
    logits[TINY.shift_base] = 1.5
    rule(logits, clock)
    assert _allowed(logits) == {TINY.note_off(0, 60)}
    assert logits[TINY.note_off(0, 60)] == 0  # its score is kept
    logits = np.zeros(TINY.size)
    logits[TINY.note_off(0, 60)] = dec.NEG  # releasing is not allowed now (say, a chord is being struck)
    rule(logits, clock)
    assert np.count_nonzero(logits == 0) == TINY.size - 1  # then the rule waits
    clock.advance(TINY.note_off(0, 60))
    logits = np.zeros(TINY.size)
    rule(logits, clock)
    assert np.all(logits == 0)  # nothing stale any more
