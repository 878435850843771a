"""Teacher data for guidance distillation: what the guided decoder played and what it was told."""
import numpy as np
import pytest

from emsync_plugin.music import generator as gen_mod
from emsync_plugin.music.decoding import SamplingOptions
from emsync_plugin.music.generator import Generator
from onnx_models.training import distill

original = gen_mod._conditioning


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    distill.teach(Generator.load(threads=1).path, out, pieces=2, worker=7)
    return out


def test_teacher_pieces_are_the_decoders_own_takes(teacher_dir):
    gen = Generator.load(threads=1)
    z = np.load(teacher_dir / "teacher-7.npz")
    assert gen_mod._conditioning is original  # teach() put the decoder back as it found it
    rng = np.random.default_rng(1007)  # worker 7's stream, as teach() draws it
    cuts, duration, moods = distill.random_timeline(rng)
    seeds = rng.integers(0, 2**31, distill.TAKES)
    for k, seed in enumerate(seeds):
        ref = gen.generate(cuts, duration, moods, SamplingOptions(seed=int(seed)))
        a, b = z["offsets"][k], z["offsets"][k + 1]
        assert z["tokens"][a] == gen.vocab.bos
        assert z["tokens"][a + 1:b].tolist() == ref.tokens
    told = z["bounds"][z["bound_offsets"][0]:z["bound_offsets"][1]]
    assert np.allclose(told[:-1], cuts) and told[-1] == pytest.approx(duration - 2.0, abs=0.011)


def test_teacher_windows_carry_the_moods_and_clocks_the_decoder_fed(teacher_dir):
    gen = Generator.load(threads=1)
    vocab = gen.vocab
    teacher = distill.load_teacher(teacher_dir, vocab)
    assert len(teacher) == 2
    _, _, moods = distill.random_timeline(np.random.default_rng(1007))
    rng = np.random.default_rng(0)
    for _ in range(8):
        ex = distill.teacher_example(teacher, rng, vocab, seq_len=128, start_prob=0.5)
        n = len(ex["tokens"])
        assert 2 <= n <= 129 and all(len(ex[k]) == n for k in ("valence", "arousal", "offset", "since", "mode"))
        on_cut = ex["offset"] < 1e-6
        assert np.all(ex["since"][on_cut] == 0.0)  # a token that lands on a cut is in the new scene
        assert np.all(ex["since"] <= 8.0) and np.all(ex["offset"] <= 8.0)
        told = np.array([m.valence for m in moods], np.float32)
        assert np.all(np.isin(ex["valence"], told))  # the moods fed, bit for bit
        flagged = ex["tokens"][ex["mode"] > 0]
        assert np.all((flagged >= vocab.on_base) & (flagged < vocab.off_base))


def test_agreeing_takes_are_heard_on_the_side_of_zero_they_were_told():
    """``--keep-agreeing``: a minor take told sad is kept, told happy is not; a take told a
    valence near 0 is kept whatever its mode."""
    from emsync_plugin.mood import SceneMood
    from emsync_plugin.music.features import LabelStats
    from emsync_plugin.music.vocab import Note

    stats = LabelStats.from_dict(Generator.load(threads=1).label_stats)
    stats = LabelStats.from_dict({**stats.to_dict(), "mean": {**stats.mean, "mode": 0.0}})
    # A minor (i, iv, V, i) and C major (I, IV, V, I), a chord every 4 s
    minor = [(57, 60, 64), (62, 65, 69), (64, 68, 71), (57, 60, 64)]
    major = [(60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67)]

    def take(chords):
        return [Note(2, p, 4.0 * (i % 4), 4.0 * (i % 4) + 3.9) for i, chord in enumerate(chords) for p in chord]

    def told(v):
        return [SceneMood(0, 0.0, 16.0, v, 0.0)]

    assert distill.agrees(take(minor), 16.0, told(-0.7), stats)
    assert not distill.agrees(take(minor), 16.0, told(0.7), stats)
    assert distill.agrees(take(major), 16.0, told(0.7), stats)
    assert not distill.agrees(take(major), 16.0, told(-0.7), stats)
    assert distill.agrees(take(major), 16.0, told(-0.1), stats)


def test_agreeing_takes_can_also_be_held_to_their_arousal():
    """``--arousal-margin``: held whole-note chords told a high arousal are not kept."""
    from emsync_plugin.mood import SceneMood
    from emsync_plugin.music.features import LabelStats, labels, measure
    from emsync_plugin.music.vocab import Note

    stats = LabelStats.from_dict(Generator.load(threads=1).label_stats)
    notes = [Note(2, p, 4.0 * i, 4.0 * i + 3.9) for i in range(4) for p in (60, 64, 67)]
    heard = labels(measure(notes, 0.0, 16.0), stats)[1]
    told = [SceneMood(0, 0.0, 16.0, 0.0, heard + 0.3)]
    assert distill.agrees(notes, 16.0, told, stats)
    assert distill.agrees(notes, 16.0, told, stats, arousal_margin=0.4)
    assert not distill.agrees(notes, 16.0, told, stats, arousal_margin=0.2)


def test_per_scene_agreement_rejects_a_mode_held_against_a_scene():
    """``--per-scene``: A minor then C major is kept when told sad then happy, not the other
    way round, and one held minor over both is kept only when scenes are not judged alone."""
    from emsync_plugin.mood import SceneMood
    from emsync_plugin.music.features import LabelStats
    from emsync_plugin.music.vocab import Note

    stats = LabelStats.from_dict(Generator.load(threads=1).label_stats)
    stats = LabelStats.from_dict({**stats.to_dict(), "mean": {**stats.mean, "mode": 0.0}})
    minor = [(57, 60, 64), (62, 65, 69), (64, 68, 71), (57, 60, 64)]
    major = [(60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67)]

    def take(*halves):
        return [Note(2, p, 8.0 * h + 2.0 * i, 8.0 * h + 2.0 * i + 1.9)
                for h, chords in enumerate(halves) for i, chord in enumerate(chords) for p in chord]

    def told(a, b):
        return [SceneMood(0, 0.0, 8.0, a, 0.0), SceneMood(1, 8.0, 16.0, b, 0.0)]

    assert distill.agrees(take(minor, major), 16.0, told(-0.7, 0.7), stats, per_scene=True)
    assert not distill.agrees(take(minor, major), 16.0, told(0.7, -0.7), stats, per_scene=True)
    assert distill.agrees(take(minor, minor), 16.0, told(-0.7, 0.7), stats)
    assert not distill.agrees(take(minor, minor), 16.0, told(-0.7, 0.7), stats, per_scene=True)


def test_clarity_rejects_a_take_in_no_clear_key():
    """``--clarity``: C major chords are kept at 0.8; the same chords with the five other pitch
    classes held under them (a key correlation below 0.8) only without it."""
    from emsync_plugin.mood import SceneMood
    from emsync_plugin.music.features import LabelStats, measure
    from emsync_plugin.music.vocab import Note

    stats = LabelStats.from_dict(Generator.load(threads=1).label_stats)
    stats = LabelStats.from_dict({**stats.to_dict(), "mean": {**stats.mean, "mode": 0.0}})
    major = [(60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67)]
    clear = [Note(2, p, 4.0 * i, 4.0 * i + 3.9) for i, chord in enumerate(major) for p in chord]
    blurred = clear + [Note(2, p, 0.0, 16.0) for p in (61, 63, 66, 68, 70)]
    told = [SceneMood(0, 0.0, 16.0, 0.1, 0.0)]  # near 0: kept whatever the mode
    assert measure(clear, 0.0, 16.0).key_strength >= 0.8 > measure(blurred, 0.0, 16.0).key_strength
    assert distill.agrees(clear, 16.0, told, stats, clarity=0.8)
    assert distill.agrees(blurred, 16.0, told, stats)
    assert not distill.agrees(blurred, 16.0, told, stats, clarity=0.8)
