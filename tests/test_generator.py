"""The shipped learned generator: verified, loaded from its own metadata, chords on every cut.

Golden output: a fixed seed gives the same tokens as recorded when the model was exported
(``onnx_models/golden.json``), so an accidental change to the model file, the vocabulary, the
conditioning or the decoder shows up here. The int8 build's integer kernels differ by CPU
(AVX2, AVX-VNNI, AVX-512 VNNI), so its digest is stored per CPU class.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence

import numpy as np
import pytest

from emsync_plugin import models
from emsync_plugin.errors import ModelError, OptionsError
from emsync_plugin.mood import SceneMood
from emsync_plugin.music.chords import chord_onsets
from emsync_plugin.music.decoding import SamplingOptions
from emsync_plugin.music.generator import Generator
from onnx_models.training.golden import cpu_class, digest

SAMPLE_CUTS = [6.8, 13.8, 21.8, 26.8, 31.4, 37.4]
SAMPLE_DURATION = 45.8


@pytest.fixture(scope="module")
def gen():
    return Generator.load(threads=1)


def golden():
    return json.loads((models.model_dir() / "golden.json").read_text())


def test_metadata_carries_the_vocabulary_and_config(gen):
    meta = models.metadata(gen.session)
    assert gen.vocab.size == json.loads(meta["emsync.config"])["vocab_size"]
    assert json.loads(meta["emsync.conditioning"])["offset"][1] == gen.cap == 8.0
    assert len(meta["emsync.data_sha256"]) == 64
    assert meta["emsync.interface"] == "kv-per-layer-v2"
    kv = [f"{kind}_{i}" for i in range(gen.n_layer) for kind in ("key", "value")]
    names = [i.name for i in gen.session.get_inputs()]
    assert names == json.loads(meta["emsync.inputs"]) == ["input_ids", "valence", "arousal", "offset", "past_length",
                                                           *[f"past_{k}" for k in kv]]
    outputs = [o.name for o in gen.session.get_outputs()]
    assert outputs == json.loads(meta["emsync.outputs"]) == ["logits", *[f"present_{k}" for k in kv]]


def moods_of(g: dict) -> list[SceneMood]:
    return [SceneMood(i, **m) for i, m in enumerate(g["moods"])]


def assert_chords_on_cuts(r, cuts, duration, unit):
    """A chord within half a decoder time unit (5 ms, a third of a 60 fps frame) of every
    cut, and the final chord held to the end with nothing after it."""
    onsets = chord_onsets(r.midi, window=0.001)
    for c in cuts:
        assert np.min(np.abs(onsets - c)) <= unit / 2 + 1e-9, f"no chord at the cut {c}"
    assert max(n.end for n in r.notes) == pytest.approx(duration)
    assert all(n.start < duration for n in r.notes)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_golden_output_for_a_fixed_seed(precision):
    """Each shipped build gives the stored tokens for a fixed seed (onnx_models/golden.json).

    fp32 is exact everywhere. int8: the digest recorded for this CPU class; on a class with no
    recorded digest, the first 40 tokens (they agree across classes) and a well-formed score."""
    g = golden()
    gen = Generator.load(threads=1, precision=precision)
    r = gen.generate(g["cuts"], g["duration"], moods_of(g), SamplingOptions(**g["options"]))
    assert r.tokens[:40] == g[precision]["first_tokens"]
    if precision == "fp32":
        assert digest(r.tokens) == g["fp32"]["tokens_sha256"] == g["tokens_sha256"]
        assert len(r.tokens) == g["fp32"]["n_tokens"]
        return
    recorded = g["int8"]["by_cpu"].get(cpu_class())
    if recorded is not None:
        assert (len(r.tokens), digest(r.tokens)) == (recorded["n_tokens"], recorded["tokens_sha256"])
    else:
        assert_chords_on_cuts(r, g["cuts"], g["duration"], gen.vocab.shift_seconds)


def test_cpu_classes_are_read_from_the_cpu_flags():
    assert cpu_class("fpu sse2 avx2 avx512f avx512bw avx512_vnni") == "avx512_vnni"
    assert cpu_class("fpu sse2 avx2 avx_vnni") == "avx_vnni"
    assert cpu_class("fpu sse2 avx2 avx512f avx512bw") == "avx512bw"
    assert cpu_class("fpu sse2 avx2") == "avx2"
    assert cpu_class("fpu sse2") == "other"
    assert digest([1, 2]) == hashlib.sha256(np.asarray([1, 2], np.int64).tobytes()).hexdigest()


def test_int8_build_carries_the_same_metadata_and_is_smaller():
    fp32, int8 = Generator.load(precision="fp32"), Generator.load(precision="int8")
    assert int8.vocab.to_json() == fp32.vocab.to_json() and int8.config == fp32.config
    assert int8.label_stats == fp32.label_stats
    meta = models.metadata(int8.session)
    assert meta["emsync.precision"] == "int8"
    q = json.loads(meta["emsync.quantization"])
    assert q["heldout_loss_int8"] - q["heldout_loss_fp32"] < 0.01
    assert int8.path.stat().st_size < 0.4 * fp32.path.stat().st_size
    with pytest.raises(OptionsError, match="precision"):
        Generator.load(precision="fp16")


@pytest.mark.parametrize("seed,guidance", [(0, None), (1, None), (2, 0.0), (3, 2.0)])
def test_chord_on_every_cut_and_exact_length(gen, seed, guidance):
    moods = [SceneMood(0, 0, 13.8, -0.6, -0.4), SceneMood(1, 13.8, 31.4, 0.7, 0.6),
             SceneMood(2, 31.4, SAMPLE_DURATION, 0.0, 0.8)]
    opts = SamplingOptions(seed=seed) if guidance is None else SamplingOptions(seed=seed, guidance=guidance)
    r = gen.generate(SAMPLE_CUTS, SAMPLE_DURATION, moods, opts)
    assert_chords_on_cuts(r, SAMPLE_CUTS, SAMPLE_DURATION, gen.vocab.shift_seconds)
    last = max(chord_onsets(r.midi, window=0.001))
    assert SAMPLE_DURATION - 3.5 <= last <= SAMPLE_DURATION
    assert r.midi.get_end_time() == pytest.approx(SAMPLE_DURATION)


def test_windowed_generation_past_the_context(gen):
    dur = 140.0  # several context windows
    cuts = list(np.arange(7.0, dur - 3, 7.0))
    r = gen.generate(cuts, dur, [SceneMood(0, 0, dur, 0.3, 0.5)], SamplingOptions(seed=4))
    assert r.steps > gen.block_size
    assert_chords_on_cuts(r, cuts, dur, gen.vocab.shift_seconds)


def test_tampered_model_is_refused(tmp_path):
    src = models.model_dir()
    shutil.copy(src / "manifest.json", tmp_path / "manifest.json")
    data = bytearray((src / "generator.onnx").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "generator.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum mismatch"):
        Generator.load(tmp_path)


def test_sampling_options_are_validated():
    with pytest.raises(OptionsError):
        SamplingOptions(temperature=0)
    with pytest.raises(OptionsError):
        SamplingOptions(top_p=1.5)
    with pytest.raises(OptionsError, match="guidance"):
        SamplingOptions(guidance=-1)


def test_score_options_check_sampling_up_front():
    from emsync_plugin.pipeline import ScoreOptions

    with pytest.raises(OptionsError, match="guidance"):
        ScoreOptions(guidance=9.0)
    assert ScoreOptions(guidance=1.5, temperature=0.9).sampling() == SamplingOptions(guidance=1.5, temperature=0.9)


def test_guided_generation_is_deterministic_and_differs_from_unguided(gen):
    moods = [SceneMood(0, 0, 12.0, -0.8, 0.8)]  # arousal: what the model itself follows
    a = gen.generate([6.0], 12.0, moods, SamplingOptions(seed=5, guidance=2.0))
    b = gen.generate([6.0], 12.0, moods, SamplingOptions(seed=5, guidance=2.0))
    c = gen.generate([6.0], 12.0, moods, SamplingOptions(seed=5, guidance=0.0))
    assert a.tokens == b.tokens
    assert a.tokens != c.tokens


@pytest.mark.parametrize("meta", [{}, {"emsync.vocab": "{not json", "emsync.config": "{}"}, "no config"])
def test_a_model_without_readable_metadata_is_a_clear_error(monkeypatch, meta):
    """An ONNX file that is not one of ours (or was exported without its metadata) is refused
    with an error naming the file, not a KeyError from deep inside."""
    real = models.metadata
    if meta == "no config":
        meta = {k: v for k, v in real(Generator.load().session).items() if k != "emsync.config"}
    monkeypatch.setattr(models, "metadata", lambda sess: dict(meta))
    with pytest.raises(ModelError, match="not an emsync generator") as err:
        Generator.load()
    assert "generator.onnx" in str(err.value) and "export" in str(err.value)


def test_a_model_of_the_stacked_cache_interface_is_refused_with_a_re_export_hint(monkeypatch):
    """A generator exported before the per-layer in-place cache (one stacked past_key_values) is
    not run: the error names both interfaces and the re-export command."""
    real = models.metadata
    old = {k: v for k, v in real(Generator.load().session).items() if k != "emsync.interface"}
    old["emsync.inputs"] = json.dumps(["input_ids", "valence", "arousal", "offset", "past_key_values"])
    old["emsync.outputs"] = json.dumps(["logits", "present_key_values"])
    monkeypatch.setattr(models, "metadata", lambda sess: dict(old))
    with pytest.raises(ModelError, match="kv-per-layer-v2") as err:
        Generator.load()
    assert "--weights-onnx" in str(err.value)


def test_the_cache_is_written_in_place_and_equals_one_call(gen):
    """Steps append to the preallocated cache in place (no copy of it is returned) and give the
    logits of feeding everything in one call; so do several tokens at once on a filled cache,
    which ONNX Runtime takes one row at a time."""
    rng = np.random.default_rng(3)
    n, rows = 12, 2
    ids = rng.integers(4, gen.vocab.size, (rows, n))
    val, aro = (rng.uniform(-1, 1, (rows, n)).astype(np.float32) for _ in range(2))
    off = rng.uniform(0, 8, (rows, n)).astype(np.float32)
    whole = gen._run(ids, val, aro, off, gen._empty_cache(rows))
    cache = gen._empty_cache(rows)
    buffer = cache.data
    parts = [gen._run(ids[:, :5], val[:, :5], aro[:, :5], off[:, :5], cache)]
    for t in range(5, 8):
        parts.append(gen._run(ids[:, t:t + 1], val[:, t:t + 1], aro[:, t:t + 1], off[:, t:t + 1], cache))
    parts.append(gen._run(ids[:, 8:], val[:, 8:], aro[:, 8:], off[:, 8:], cache))
    assert cache.data is buffer and cache.length == n
    assert (np.abs(buffer[:, :, :, :, :n]).max(axis=-1) > 0).all() and not buffer[:, :, :, :, n:].any()
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=2e-5)


def test_guidance_chooses_notes_and_leaves_timing_to_the_model(gen):
    """Guidance against the neutral mood re-weighs the note-ons and the key tokens only, each
    group keeping its total: every other token keeps the model's conditional log-probability,
    so guidance cannot make a note likelier than the time shift that lands on a cut."""
    rng = np.random.default_rng(0)
    v = gen.vocab
    assert v.keys == 24  # the shipped model states keys
    logits = rng.normal(size=(2, 1, v.size)).astype(np.float32)
    out = gen._guide(logits, 1.5)
    cond = logits[0, -1].astype(np.float64)
    lc = cond - np.log(np.exp(cond).sum())
    others = np.r_[0:v.on_base, v.off_base:v.shift_end]
    np.testing.assert_allclose(out[others], lc[others], atol=1e-9)
    ref = logits[1, -1].astype(np.float64)
    for group in (slice(v.on_base, v.off_base), slice(v.shift_end, v.size)):
        assert np.log(np.exp(out[group]).sum()) == pytest.approx(np.log(np.exp(lc[group]).sum()), abs=1e-9)
        want = lc[group] + 1.5 * (lc[group] - (ref - np.log(np.exp(ref).sum()))[group])
        np.testing.assert_allclose(out[group] - out[group].max(), want - want.max(), atol=1e-9)  # the guided ranking
    np.testing.assert_array_equal(gen._guide(logits[:1], 1.5), cond)  # one row: the model alone
    np.testing.assert_array_equal(gen._guide(logits, 0.0), cond)  # g = 0: the model alone
    same = gen._guide(np.stack([logits[0], logits[0]]), 3.0)
    np.testing.assert_allclose(same, lc, atol=1e-9)  # no difference to amplify


def test_guidance_also_chooses_the_key_of_a_scene(gen, monkeypatch):
    """With key tokens, guidance re-weighs MAJOR against MINOR as it does the note-ons, and
    the pair keeps its total."""
    import dataclasses

    v = dataclasses.replace(gen.vocab, keys=2)
    monkeypatch.setattr(gen, "vocab", v)
    logits = np.zeros((2, 1, v.size), np.float32)
    logits[0, 0, v.key(True)], logits[1, 0, v.key(True)] = 1.0, 2.0  # the mood makes MAJOR less likely
    out = gen._guide(logits, 2.0)
    pair = out[[v.key(True), v.key(False)]]
    assert pair[0] - pair[1] == pytest.approx(1.0 + 2.0 * (1.0 - 2.0), abs=1e-9)  # MAJOR's log-odds: 1, told 2
    cond = logits[0, 0].astype(np.float64)
    assert np.logaddexp(*pair) == pytest.approx(np.logaddexp(*cond[[v.key(True), v.key(False)]])
                                                - np.log(np.exp(cond).sum()), abs=1e-9)


def dense_kept_span(start: float, end: float):
    """Kept music dense enough to fill the context while it is fed (three notes every 50 ms)."""
    import pretty_midi

    from emsync_plugin.rescore import KeptSpan

    pitches = [48, 55, 60, 64, 67]
    count = int((end - start) / 0.05) - 6
    notes = tuple((0, False, "piano", pretty_midi.Note(80, p + (k % 3), start + 0.05 * k, start + 0.05 * k + 0.25))
                  for k in range(count) for p in pitches[k % 2:k % 2 + 3])
    return KeptSpan(start, end, notes)


def test_takes_decoded_together_are_the_takes_decoded_alone(gen, monkeypatch):
    """generate_many: each take's tokens are generate()'s for its options, with and without
    guidance, across new windows and kept music (the takes reach it at different steps, so their
    caches part ways), and takes in step share each model call."""
    dur, cuts = 13.0, [2.0, 9.0, 11.0]
    moods = [SceneMood(0, 0, 9.0, 0.6, -0.4), SceneMood(1, 9.0, dur, -0.5, 0.7)]
    options = [SamplingOptions(seed=1), SamplingOptions(seed=2), SamplingOptions(seed=3, guidance=0.0)]
    kept = [dense_kept_span(3.0, 9.0)]
    alone = [gen.generate(cuts, dur, moods, o, kept=kept) for o in options]
    rows: list[int] = []
    real = gen._run
    monkeypatch.setattr(gen, "_run", lambda ids, *rest: rows.append(len(ids)) or real(ids, *rest))
    together = gen.generate_many(cuts, dur, moods, options, kept=kept)
    assert [r.tokens for r in together] == [r.tokens for r in alone]
    assert [r.steps for r in together] == [r.steps for r in alone]
    assert min(len(r.tokens) for r in alone) > gen.block_size  # windows renewed
    assert max(rows) == 5  # the three takes' rows (2 + 2 + 1) in one call
    assert len(rows) < sum(r.steps for r in alone)
    assert_chords_on_cuts(together[2], [2.0, 9.0, 11.0], dur, gen.vocab.shift_seconds)


def test_takes_in_step_share_every_call_until_they_finish(gen, monkeypatch):
    dur = 10.0
    moods = [SceneMood(0, 0, dur, 0.2, 0.3)]
    rows: list[int] = []
    real = gen._run
    monkeypatch.setattr(gen, "_run", lambda ids, *rest: rows.append(len(ids)) or real(ids, *rest))
    out = gen.generate_many([5.0], dur, moods, [SamplingOptions(seed=s) for s in range(3)])
    steps = sorted(r.steps for r in out)
    assert len(rows) == steps[-1]  # one call a step for all takes together
    assert rows[:steps[0]] == [6] * steps[0] and rows[-1] == 2  # a finished take drops out
    assert gen.generate_many([5.0], dur, moods, []) == []


class RecordedMoods(Sequence):
    """Moods filled while the music is generated: records which scene is read, and how far the
    music had got by then."""

    def __init__(self, moods, clocks):
        self.moods, self.clocks, self.reads = moods, clocks, []

    def __len__(self):
        return len(self.moods)

    def __getitem__(self, i):
        self.reads.append((i, max(self.clocks, default=0)))
        return self.moods[i]


@pytest.mark.parametrize("takes", [1, 2])
def test_moods_are_read_when_the_music_reaches_their_scene(gen, monkeypatch, takes):
    """A scene's mood is first read when some take's clock reaches the scene, in scene order,
    not all before the music starts (the pipeline analyses scenes meanwhile)."""
    from emsync_plugin.music import decoding

    bounds = [0.0, 3.0, 6.0, 9.5, 12.0]
    plain = [SceneMood(i, a, b, (-1) ** i * 0.5, 0.2 * i) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    unit = gen.vocab.shift_seconds
    times: list[float] = []
    advance = decoding.Clock.advance

    def advance_and_log(clock, token):
        advance(clock, token)
        times.append(clock.now * unit)

    monkeypatch.setattr(decoding.Clock, "advance", advance_and_log)
    moods = RecordedMoods(plain, times)
    options = [SamplingOptions(seed=s) for s in range(takes)]
    got = gen.generate_many(bounds[1:-1], bounds[-1], moods, options)
    first = {}
    for i, reached in moods.reads:
        first.setdefault(i, reached)
    assert list(first) == [0, 1, 2, 3]
    for i, reached in first.items():
        assert reached >= plain[i].start - 1e-9, f"scene {i} read at {reached} s, before it starts"
    assert first[3] >= 9.5 and first[1] < 6.0  # read as the music got there
    monkeypatch.setattr(decoding.Clock, "advance", advance)
    assert [r.tokens for r in got] == [r.tokens for r in gen.generate_many(bounds[1:-1], bounds[-1], plain, options)]


def test_a_shorter_context_renews_windows_sooner_and_changes_nothing_before(gen, monkeypatch):
    """``context``: the window holds at most that many tokens; a new one keeps the last half.
    Before the first renewal the music is the whole-context decoder's."""
    g = golden()
    moods = moods_of(g)
    whole = gen.generate(g["cuts"], g["duration"], moods, SamplingOptions(**g["options"]))
    assert gen.generate(g["cuts"], g["duration"], moods,
                        SamplingOptions(**{**g["options"], "context": len(whole.tokens) + 1})).tokens == whole.tokens
    fresh: list[tuple[int, int]] = []
    real = gen._run
    monkeypatch.setattr(gen, "_run", lambda ids, val, aro, off, cache: fresh.append((ids.shape[1], cache.length))
                        or real(ids, val, aro, off, cache))
    short = gen.generate(g["cuts"], g["duration"], moods, SamplingOptions(**{**g["options"], "context": 64}))
    assert short.tokens[:63] == whole.tokens[:63] and short.tokens != whole.tokens
    assert max(p for _, p in fresh) == 62  # at most 63 entries seen at once
    assert fresh.count((32, 0)) >= len(short.tokens) // 32 - 2  # renewed every 31 tokens from the last 32
    assert_chords_on_cuts(short, g["cuts"], g["duration"], gen.vocab.shift_seconds)
    with pytest.raises(OptionsError, match="context"):
        SamplingOptions(context=8)


def test_int8_takes_are_decoded_one_after_the_other_as_alone(monkeypatch):
    """The int8 build quantises a call's activations over all its rows (takes batched together
    would part ways within tens of tokens), so its takes do not share calls: each is generate()'s."""
    gen8 = Generator.load(threads=1, precision="int8")
    assert not gen8.takes_share_calls and Generator.load(threads=1).takes_share_calls
    dur, moods = 8.0, [SceneMood(0, 0, 8.0, -0.3, 0.6)]
    options = [SamplingOptions(seed=1), SamplingOptions(seed=2, guidance=0.0)]
    alone = [gen8.generate([4.0], dur, moods, o).tokens for o in options]
    rows: list[int] = []
    real = gen8._run
    monkeypatch.setattr(gen8, "_run", lambda ids, *rest: rows.append(len(ids)) or real(ids, *rest))
    assert [r.tokens for r in gen8.generate_many([4.0], dur, moods, options)] == alone
    assert sorted(set(rows)) == [1, 2]
