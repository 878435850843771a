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


# A minor (i, iv, V, i) and C major (I, IV, V, I)
MINOR = [(57, 60, 64), (62, 65, 69), (64, 68, 71), (57, 60, 64)]
MAJOR = [(60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67)]


def play(chords, start=0.0, step=4.0, hold=3.9):
    """The chords as notes, one every ``step`` seconds from ``start``, each held ``hold``."""
    from emsync_plugin.music.vocab import Note

    return [Note(2, p, start + step * i, start + step * i + hold) for i, chord in enumerate(chords) for p in chord]


@pytest.fixture(scope="module")
def stats():
    """The shipped label stats."""
    from emsync_plugin.music.features import LabelStats

    return LabelStats.from_dict(Generator.load(threads=1).label_stats)


@pytest.fixture(scope="module")
def centred(stats):
    """The shipped label stats with the mode term measured from 0 (``--valence-centre mode``)."""
    from emsync_plugin.music.features import LabelStats

    return LabelStats.from_dict({**stats.to_dict(), "mean": {**stats.mean, "mode": 0.0}})


def test_agreeing_takes_are_heard_on_the_side_of_zero_they_were_told(centred):
    """``--keep-agreeing``: a minor take told sad is kept, told happy is not; a take told a
    valence near 0 is kept whatever its mode."""
    from emsync_plugin.mood import SceneMood

    def told(v):
        return [SceneMood(0, 0.0, 16.0, v, 0.0)]

    assert distill.agrees(play(MINOR), 16.0, told(-0.7), centred)
    assert not distill.agrees(play(MINOR), 16.0, told(0.7), centred)
    assert distill.agrees(play(MAJOR), 16.0, told(0.7), centred)
    assert not distill.agrees(play(MAJOR), 16.0, told(-0.7), centred)
    assert distill.agrees(play(MAJOR), 16.0, told(-0.1), centred)


def test_agreeing_takes_can_also_be_held_to_their_arousal(stats):
    """``--arousal-margin``: held whole-note chords told a high arousal are not kept."""
    from emsync_plugin.mood import SceneMood
    from emsync_plugin.music.features import labels, measure

    notes = play([(60, 64, 67)] * 4)
    heard = labels(measure(notes, 0.0, 16.0), stats)[1]
    told = [SceneMood(0, 0.0, 16.0, 0.0, heard + 0.3)]
    assert distill.agrees(notes, 16.0, told, stats)
    assert distill.agrees(notes, 16.0, told, stats, distill.Keep(arousal_margin=0.4))
    assert not distill.agrees(notes, 16.0, told, stats, distill.Keep(arousal_margin=0.2))


def test_per_scene_agreement_rejects_a_mode_held_against_a_scene(centred):
    """``--per-scene``: A minor then C major is kept when told sad then happy, not the other
    way round, and one held minor over both is kept only when scenes are not judged alone."""
    from emsync_plugin.mood import SceneMood

    def take(first, second):
        return play(first, 0.0, 2.0, 1.9) + play(second, 8.0, 2.0, 1.9)

    def told(a, b):
        return [SceneMood(0, 0.0, 8.0, a, 0.0), SceneMood(1, 8.0, 16.0, b, 0.0)]

    scenes = distill.Keep(per_scene=True)
    assert distill.agrees(take(MINOR, MAJOR), 16.0, told(-0.7, 0.7), centred, scenes)
    assert not distill.agrees(take(MINOR, MAJOR), 16.0, told(0.7, -0.7), centred, scenes)
    assert distill.agrees(take(MINOR, MINOR), 16.0, told(-0.7, 0.7), centred)
    assert not distill.agrees(take(MINOR, MINOR), 16.0, told(-0.7, 0.7), centred, scenes)


def test_clarity_rejects_a_take_in_no_clear_key(centred):
    """``--clarity``: C major chords are kept at 0.8; the same chords with the five other pitch
    classes held under them (a key correlation below 0.8) only without it."""
    from emsync_plugin.mood import SceneMood
    from emsync_plugin.music.features import measure
    from emsync_plugin.music.vocab import Note

    clear = play(MAJOR)
    blurred = clear + [Note(2, p, 0.0, 16.0) for p in (61, 63, 66, 68, 70)]
    told = [SceneMood(0, 0.0, 16.0, 0.1, 0.0)]  # near 0: kept whatever the mode
    assert measure(clear, 0.0, 16.0).key_strength >= 0.8 > measure(blurred, 0.0, 16.0).key_strength
    assert distill.agrees(clear, 16.0, told, centred, distill.Keep(clarity=0.8))
    assert distill.agrees(blurred, 16.0, told, centred)
    assert not distill.agrees(blurred, 16.0, told, centred, distill.Keep(clarity=0.8))
