"""The learned generator continues from kept music (a re-score's kept scenes).

A small timeline (cuts at 2, 4, 6 s, 8 s long) is generated once; scene 2's notes are then kept,
moved by +1 s, in a timeline whose scene 1 is 1 s longer. Inside the kept span the decoder feeds
the kept notes instead of sampling; every cut outside it still gets its chord, the music after
it is primed by it, and the score ends exactly at the timeline's end.
"""
from __future__ import annotations

import numpy as np
import pretty_midi
import pytest

from emsync_plugin.mood import SceneMood
from emsync_plugin.music.chords import chord_onsets
from emsync_plugin.music.decoding import SamplingOptions
from emsync_plugin.music.generator import Generator
from emsync_plugin.music.kept import forced_spans
from emsync_plugin.rescore import KeptSpan

CUTS, DURATION = [2.0, 4.0, 6.0], 8.0
NEW_CUTS, NEW_DURATION = [3.0, 5.0, 7.0], 9.0  # scene 1 one second longer
SPAN = (3.0, 5.0)  # scene 2, moved by +1 s
OPTIONS = SamplingOptions(seed=7)


def moods(cuts, duration):
    bounds = [0.0, *cuts, duration]
    va = [(-0.5, -0.3), (0.6, 0.5), (-0.2, 0.7), (0.4, -0.4)]
    return [SceneMood(i, a, b, *va[i]) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]


@pytest.fixture(scope="module")
def gen():
    return Generator.load(threads=1)


@pytest.fixture(scope="module")
def first(gen):
    return gen.generate(CUTS, DURATION, moods(CUTS, DURATION), OPTIONS)


@pytest.fixture(scope="module")
def span(first):
    """Scene 2's notes (those starting in it, with their real ends), moved by +1 s."""
    notes = tuple(
        (inst.program, inst.is_drum, inst.name,
         pretty_midi.Note(velocity=n.velocity, pitch=n.pitch, start=n.start + 1.0, end=n.end + 1.0))
        for inst in first.midi.instruments for n in inst.notes if 2.0 <= n.start < 4.0)
    assert len(notes) >= 3
    return KeptSpan(*SPAN, notes)


@pytest.fixture(scope="module")
def primed(gen, span):
    return gen.generate(NEW_CUTS, NEW_DURATION, moods(NEW_CUTS, NEW_DURATION), OPTIONS, kept=[span])


def test_the_kept_span_decodes_to_the_kept_notes(gen, span, primed):
    """Inside the span the stream is exactly the kept notes (to the 10 ms unit), those still
    sounding at its end released there; nothing sampled sounds into it."""
    unit = gen.vocab.shift_seconds
    want = sorted((gen.vocab.programs.index(p), n.pitch, round(n.start / unit), round(min(n.end, SPAN[1]) / unit))
                  for p, _, _, n in span.notes)
    got = sorted((n.group, n.pitch, round(n.start / unit), round(n.end / unit))
                 for n in primed.notes if SPAN[0] <= n.start < SPAN[1])
    assert got == want
    assert all(n.end <= SPAN[0] + 1e-9 for n in primed.notes if n.start < SPAN[0])


def test_every_cut_outside_the_span_gets_its_chord_and_the_end_is_exact(gen, primed):
    onsets = chord_onsets(primed.midi, window=0.001)
    for c in [c for c in NEW_CUTS if not SPAN[0] <= c < SPAN[1]]:
        assert np.min(np.abs(onsets - c)) <= gen.vocab.shift_seconds / 2 + 1e-9, f"no chord at the cut {c}"
    assert NEW_DURATION - 3.0 <= onsets.max() <= NEW_DURATION  # the final chord
    assert primed.midi.get_end_time() == pytest.approx(NEW_DURATION)
    assert all(n.start < NEW_DURATION for n in primed.notes)


def test_the_music_after_the_span_is_primed_by_it(gen, primed):
    """Without the kept span the same seed samples different music after it."""
    plain = gen.generate(NEW_CUTS, NEW_DURATION, moods(NEW_CUTS, NEW_DURATION), OPTIONS)
    after = [[(n.group, n.pitch, n.start, n.end) for n in r.notes if n.start >= SPAN[1]] for r in (primed, plain)]
    assert after[0] and after[0] != after[1]


def test_no_kept_music_is_the_plain_generation(gen, first):
    again = gen.generate(CUTS, DURATION, moods(CUTS, DURATION), OPTIONS, kept=())
    assert again.tokens == first.tokens


def test_kept_music_at_the_start_and_at_the_end(gen, span):
    """A kept first scene is fed from the first token; a kept last scene ends the score (its
    final chord is the kept music's) at exactly the timeline's end."""
    d = 4.0
    at_start = KeptSpan(0.0, 2.0, tuple((p, dr, nm, pretty_midi.Note(n.velocity, n.pitch, n.start - 3.0, n.end - 3.0))
                                        for p, dr, nm, n in span.notes))
    r = gen.generate([2.0], d, moods([2.0], d)[:2], OPTIONS, kept=[at_start])
    assert {(n.pitch, round(n.start, 2)) for n in r.notes if n.start < 2.0} == \
        {(n.pitch, round(n.start, 2)) for *_, n in at_start.notes}
    assert np.min(np.abs(chord_onsets(r.midi, window=0.001) - 2.0)) <= 0.005
    at_end = KeptSpan(2.0, 4.0, tuple((p, dr, nm, pretty_midi.Note(n.velocity, n.pitch, n.start - 1.0, n.end - 1.0))
                                      for p, dr, nm, n in span.notes))
    r = gen.generate([2.0], d, moods([2.0], d)[:2], OPTIONS, kept=[at_end])
    assert max(n.end for n in r.notes) <= d + 1e-9 and all(n.start < d for n in r.notes)
    assert {(n.pitch, round(n.start, 2)) for n in r.notes if n.start >= 2.0} == \
        {(n.pitch, round(n.start, 2)) for *_, n in at_end.notes}


def test_windowing_keeps_working_with_forced_tokens(gen):
    """Kept music longer than the context: the cache refills through it and the cuts after it
    still get their chords."""
    dur = 40.0
    cuts = [4.0, 8.0, 30.0, 34.0]
    pitches = [48, 55, 60, 64, 67]
    notes = tuple((0, False, "piano", pretty_midi.Note(80, p + (k % 3), 8.0 + 0.1 * k, 8.0 + 0.1 * k + 0.25))
                  for k in range(215) for p in pitches[k % 2:k % 2 + 3])
    r = gen.generate(cuts, dur, [SceneMood(0, 0, dur, 0.3, 0.5)], OPTIONS, kept=[KeptSpan(8.0, 30.0, notes)])
    assert len(r.tokens) > 2 * gen.block_size
    onsets = chord_onsets(r.midi, window=0.001)
    for c in [4.0, 30.0, 34.0]:
        assert np.min(np.abs(onsets - c)) <= 0.005, f"no chord at the cut {c}"
    assert max(n.end for n in r.notes) == pytest.approx(dur)


def test_forced_spans_map_programs_and_skip_what_the_vocabulary_cannot_play(gen):
    v = gen.vocab
    note = pretty_midi.Note(90, 60, 1.0, 1.5)
    low = pretty_midi.Note(90, v.pitch_min - 1, 1.0, 1.5)
    kept = [KeptSpan(1.0, 2.0, ((v.programs[1], False, "g", note), (0, True, "drums", note), (120, False, "fx", note),
                                (v.programs[0], False, "b", low))),
            KeptSpan(2.0, 3.004, ((v.programs[2], False, "p", note),)), KeptSpan(5.0, 9.0, ())]
    spans = forced_spans(kept, v, 6.0)
    assert [(f.start, f.end) for f in spans] == [(100, 300), (500, 600)]  # touching spans merged, cut at the end
    assert [(n.group, n.pitch) for n in spans[0].notes] == [(1, 60), (2, 60)]
