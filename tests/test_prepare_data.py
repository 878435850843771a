"""Training-data preparation on a few real corpus files (the same code path as the full run),
and the training examples cut from them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

music21 = pytest.importorskip("music21")

from emsync_plugin.music.features import LabelStats  # noqa: E402
from emsync_plugin.music.vocab import Note, Vocab  # noqa: E402
from onnx_models.training import dataset  # noqa: E402
from onnx_models.training import prepare_data as pd  # noqa: E402

BASS, GUITAR, PIANO, STRINGS = range(4)
FILES = {
    "chorale": "bach/bwv66.6.mxl",
    "abc": "nottingham-dataset/reelsa-c.abc",
    "roman": "bach/choraleAnalyses/riemenschneider001.rntxt",
    "mass": "palestrina/Agnus_01.krn",
}


def _corpus_file(rel: str) -> tuple[str, str]:
    for r, path in pd.corpus_files():
        if r == rel:
            return r, path
    pytest.skip(f"{rel} is not in this music21's corpus")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cache")
    files = [_corpus_file(rel) for rel in FILES.values()]
    stats = pd.prepare(out, workers=1, progress=False, files=files)
    return out, stats


def _pieces(out: Path, rel: str):
    index = json.loads((out / "index.json").read_text())
    notes, offsets, meta, key = pd.read_npz(out / pd.npz_name(rel))
    assert key == pd.cache_key(rel)
    entries = [p for p in index["pieces"] if p["source"] == rel]
    return [(e, notes[offsets[e["row"]]:offsets[e["row"] + 1]]) for e in entries]


def test_vocab_spec_builds_the_vocabulary():
    v = Vocab.from_json(pd.VOCAB_SPEC)
    assert v.groups == ("bass", "guitar", "piano", "strings") and v.programs == (33, 25, 0, 48)
    assert (v.pitch_min, v.pitch_max, v.shift_ms, v.max_shift, v.chord_notes) == (21, 108, 10, 100, 3)


def test_chorale_bass_voice_and_tempo(prepared):
    out, _ = prepared
    (entry, notes), = _pieces(out, FILES["chorale"])
    assert entry["tempo_source"] == "score" and entry["qpm"] == 96.0  # its <sound tempo="96">
    # 36 quarter notes at 96 a minute
    assert entry["seconds"] == pytest.approx(36 * 60 / 96, abs=1e-3)
    assert notes[:, 3].max() == pytest.approx(22.5, abs=1e-3) and notes[:, 2].min() == 0.0
    groups = set(notes[:, 0].astype(int).tolist())
    assert GUITAR not in groups
    assert entry["arrangement"] in ("strings+bass", "piano+bass", "piano")
    if BASS in groups:  # the bass voice is the lowest part, and only it
        bass = notes[notes[:, 0] == BASS]
        upper = notes[notes[:, 0] != BASS]
        assert bass[:, 1].mean() < upper[:, 1].mean() - 10
        assert bass[:, 1].min() >= 35 and bass[:, 1].max() <= 64
    assert np.all(notes[:, 3] > notes[:, 2])
    assert np.all(np.diff(notes[:, 2]) >= 0)  # sorted by start
    assert entry["split"] == pd.split_of(entry["id"])


def test_abc_tunes_with_chord_symbols_get_piano_chords_and_bass(prepared):
    out, _ = prepared
    pieces = _pieces(out, FILES["abc"])
    assert [e["tune"] for e, _ in pieces] == [0, 1]  # two tunes in one file
    (entry, notes) = pieces[0]
    assert entry["name"] == "Cuckoo's Nest" and entry["chords"] == "symbols"
    assert entry["tempo_source"] == "default" and entry["qpm"] == 100.0  # 4/4: quarter = 100
    assert set(notes[:, 0].astype(int).tolist()) == {BASS, GUITAR, PIANO}
    # the first chord symbol is "D": a D major piano chord and a D in the bass
    first_chord = notes[(notes[:, 0] == PIANO) & (notes[:, 2] == notes[notes[:, 0] == PIANO, 2].min())]
    assert sorted(set((first_chord[:, 1] % 12).astype(int).tolist())) == [2, 6, 9]
    first_bass = notes[notes[:, 0] == BASS][0]
    assert int(first_bass[1]) % 12 == 2 and 36 <= first_bass[1] <= 47
    # the melody ("A|" pickup then "A/2d/2...") is on guitar at 100 qpm: an eighth is 0.3 s
    melody = notes[notes[:, 0] == GUITAR]
    assert melody[0, 1] == 69 and melody[1, 2] - melody[0, 2] == pytest.approx(0.6, abs=1e-4)


def test_roman_numerals_are_realised(prepared):
    out, _ = prepared
    (entry, notes), = _pieces(out, FILES["roman"])
    assert entry["chords"] == "roman" and entry["name"] == "Aus meines Herzens Grunde"
    assert set(notes[:, 0].astype(int).tolist()) == {BASS, PIANO}
    # the opening I in G major
    first = notes[notes[:, 2] == 0.0]
    assert sorted(set((first[first[:, 0] == PIANO, 1] % 12).astype(int).tolist())) == [2, 7, 11]


def test_palestrina_default_tempo_is_a_half_note_tactus(prepared):
    out, _ = prepared
    (entry, notes), = _pieces(out, FILES["mass"])
    assert entry["tempo_source"] == "default" and entry["qpm"] == 140.0
    assert STRINGS in notes[:, 0] or PIANO in notes[:, 0]


def test_index_stats_and_cache(prepared):
    out, stats = prepared
    assert (out / "index.json").exists() and (out / "stats.json").exists()
    on_disk = json.loads((out / "stats.json").read_text())
    assert on_disk["data_sha256"] == stats["data_sha256"] and len(stats["data_sha256"]) == 64
    ls = LabelStats.from_dict(on_disk["label_stats"])
    assert ls.n_windows > 5 and ls.valence_scale > 0
    assert stats["totals"]["by_split"]["all"]["pieces"] == 5
    assert stats["parse"]["files_parsed"] == 4
    files = [_corpus_file(rel) for rel in FILES.values()]
    again = pd.prepare(out, workers=1, progress=False, files=files)  # everything cached
    assert again["parse"]["files_parsed"] == 0 and again["parse"]["files_cached"] == 4
    assert again["data_sha256"] == stats["data_sha256"]
    assert again["label_stats"] == stats["label_stats"]


def test_split_is_fixed_and_about_five_percent():
    ids = [f"essenFolksong/x.abc#{i}" for i in range(4000)]
    held = [pd.split_of(i) == "heldout" for i in ids]
    assert 0.035 < np.mean(held) < 0.065
    assert held == [pd.split_of(i) == "heldout" for i in ids]


def test_benchmark_heldout_set_is_held_out_and_well_formed():
    """benchmarks/data/heldout (what bench_generator.py runs on) comes from the held-out split only."""
    here = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "heldout"
    timelines = json.loads((here / "timelines.json").read_text())["timelines"]
    with np.load(here / "windows.npz") as z:
        ids, notes, offsets, labels = z["ids"].tolist(), z["notes"], z["offsets"], z["labels"]
    assert {pd.split_of(t["source"]) for t in timelines} | {pd.split_of(i) for i in ids} == {"heldout"}
    assert len(timelines) >= 20 and len(ids) == len(offsets) - 1 == len(labels) >= 100
    assert notes[:, 2].min() >= 0 and notes[:, 3].max() <= 24.0 + 1e-4 and (notes[:, 3] >= notes[:, 2]).all()
    for t in timelines:
        edges = [m[:2] for m in t["moods"]]
        assert edges[0][0] == 0 and edges[-1][1] == t["duration"]
        assert [e[1] for e in edges[:-1]] == [e[0] for e in edges[1:]] == t["cuts"]
        assert all(-1 <= m[2] <= 1 and -1 <= m[3] <= 1 for m in t["moods"])


def test_corpus_files_skip_test_files():
    files = pd.corpus_files()
    assert len(files) > 3000
    assert not any(rel.startswith(("demos/", "theoryExercises/")) for rel, _ in files)


# ---- training examples ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def ex_setup(prepared):
    out, _ = prepared
    vocab = Vocab.from_json(pd.VOCAB_SPEC)
    stats = dataset.load_label_stats(out)
    pieces = {p.id: p for p in dataset.iter_pieces(out, None)}
    return vocab, stats, pieces


def test_iter_pieces_reads_the_cache(prepared, ex_setup):
    out, _ = prepared
    _, _, pieces = ex_setup
    assert len(pieces) == 5
    train = list(dataset.iter_pieces(out, "train"))
    held = list(dataset.iter_pieces(out, "heldout"))
    assert len(train) + len(held) == 5
    p = pieces[FILES["chorale"] + "#0"]
    assert np.asarray(p).shape == (len(p), 4) and p.seconds == pytest.approx(22.5, abs=1e-3)


@pytest.mark.parametrize("seed", range(6))
def test_make_example_arrays_are_aligned(ex_setup, seed):
    vocab, stats, pieces = ex_setup
    piece = pieces[FILES["roman"] + "#0"]
    ex = dataset.make_example(piece, np.random.default_rng(seed), vocab, stats, seq_len=128)
    n = len(ex["tokens"])
    assert 2 <= n <= 129
    for k in ("valence", "arousal", "offset", "mode", "time"):
        assert ex[k].shape == (n,) and ex[k].dtype == np.float32
    assert set(np.unique(ex["mode"])) <= {0.0, 1.0}
    assert ex["tokens"].dtype == np.int64
    assert np.all((ex["tokens"] >= 0) & (ex["tokens"] < vocab.size))
    assert np.all((ex["valence"] >= -1) & (ex["valence"] <= 1) & (ex["arousal"] >= -1) & (ex["arousal"] <= 1))
    assert np.all((ex["offset"] >= 0) & (ex["offset"] <= 8.0))
    assert np.all(np.diff(ex["time"]) >= 0)
    # conditioning is read on the clock after each token (a shift moves it on): offsets
    # count down to each boundary, are 0 on the shift that lands on it and on the tokens
    # there, and the labels change only there
    tok = ex["tokens"]
    after = ex["time"] + np.where(tok >= vocab.shift_base, tok - vocab.shift_base + 1, 0) * vocab.shift_seconds
    for b in ex["boundaries"]:
        at = np.abs(after - b) < 1e-4
        assert at.any() and np.all(ex["offset"][at] == 0)
        landing = np.flatnonzero(at & (tok >= vocab.shift_base))
        assert np.all(np.abs(ex["time"][landing] - b) > 1e-4)  # it starts before the cut
    leaving = (tok >= vocab.shift_base) & (ex["offset"] > 0)
    assert not np.any(leaving & (np.abs(after - ex["time"]) < 1e-6))
    change = np.flatnonzero((np.diff(ex["valence"]) != 0) | (np.diff(ex["arousal"]) != 0)) + 1
    for i in change:
        assert ex["offset"][i] == 0 or tok[i] == vocab.eos
    # since: 0 where a boundary opens a scene, then the clock's distance from it
    since = ex["since"]
    assert since.shape == (n,) and np.all((since >= 0) & (since <= 8.0))
    for b in ex["boundaries"]:
        at = np.abs(after - b) < 1e-4
        assert np.all(since[at & (ex["offset"] == 0)] == 0)
        nxt = min([c for c in ex["boundaries"] if c > b + 1e-4], default=np.inf)
        scene = (after > b + 1e-4) & (after < nxt - 1e-4)  # the scene b opens, on the same clock
        assert np.allclose(since[scene], np.minimum(after[scene] - b, 8.0), atol=1e-4)


def test_boundaries_fall_on_chords(ex_setup):
    vocab, stats, pieces = ex_setup
    hits = total = 0
    for seed in range(20):
        for key in (FILES["chorale"] + "#0", FILES["roman"] + "#0", FILES["abc"] + "#0"):
            ex = dataset.make_example(pieces[key], np.random.default_rng(seed), vocab, stats, seq_len=256)
            for b in ex["boundaries"]:
                at = np.flatnonzero(np.abs(ex["time"] - b) < 1e-4)
                total += 1
                hits += bool(np.any(ex["tokens"][at] == vocab.chord))
    assert total > 40 and hits / total > 0.9
    assert dataset.chord_share(ex, vocab) is None or 0 <= dataset.chord_share(ex, vocab) <= 1
    gaps = []
    for seed in range(20):
        ex = dataset.make_example(pieces[FILES["roman"] + "#0"], np.random.default_rng(seed), vocab, stats, 512)
        gaps += np.diff(ex["boundaries"]).tolist()
    assert min(gaps) >= 2.0 - 1e-6 and max(gaps) <= 12.0 + 1e-6


def test_make_example_is_deterministic_for_a_seed(ex_setup):
    vocab, stats, pieces = ex_setup
    piece = pieces[FILES["chorale"] + "#0"]
    a = dataset.make_example(piece, np.random.default_rng(7), vocab, stats)
    b = dataset.make_example(piece, np.random.default_rng(7), vocab, stats)
    c = dataset.make_example(piece, np.random.default_rng(8), vocab, stats)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in ("tokens", "valence", "offset") if len(a[k]) == len(c[k]))


def test_windows_are_exact_slices_of_the_whole_stream(ex_setup, monkeypatch):
    """Without augmentation, every window is a contiguous stretch of the encoded piece; BOS
    windows start it, EOS windows end it."""
    vocab, stats, pieces = ex_setup
    monkeypatch.setattr(dataset, "TRANSPOSE", (0, 0))
    monkeypatch.setattr(dataset, "STRETCH", (1.0, 1.0))
    monkeypatch.setattr(dataset, "WARP", 0.0)
    monkeypatch.setattr(dataset, "MODE_FLIP_PROB", 0.0)
    from numpy.lib.stride_tricks import sliding_window_view

    for key in (FILES["chorale"] + "#0", FILES["mass"] + "#0"):
        arr = np.asarray(pieces[key], dtype=np.float64)
        unit = vocab.shift_seconds
        sa = np.round(arr[:, 2] / unit).astype(int)
        sb = np.maximum(sa + 1, np.round(arr[:, 3] / unit).astype(int))
        full, _ = vocab.encode(Note(int(g), int(p), a * unit, b * unit)
                               for g, p, a, b in zip(arr[:, 0], arr[:, 1], sa, sb))
        full = np.asarray(full)
        seen_bos = seen_mid = 0
        for seed in range(15):
            ex = dataset.make_example(pieces[key], np.random.default_rng(seed), vocab, stats, seq_len=96,
                                      start_prob=0.3)
            t = ex["tokens"]
            body = t[(t != vocab.bos) & (t != vocab.eos)]
            hits = np.flatnonzero((sliding_window_view(full, len(body)) == body).all(axis=1))
            assert hits.size, f"window {seed} of {key} is not a slice of the stream"
            if t[0] == vocab.bos:
                seen_bos += 1
                assert hits[0] == 0
            else:
                seen_mid += 1
            if t[-1] == vocab.eos:
                assert hits[-1] + len(body) == len(full)
        assert seen_bos and seen_mid


def test_short_piece_gives_bos_to_eos(ex_setup):
    vocab, stats, _ = ex_setup
    notes = np.array([[PIANO, p, i * 0.5, i * 0.5 + 0.5] for i, p in enumerate([60, 64, 67, 72] * 3)], np.float32)
    ex = dataset.make_example(notes, np.random.default_rng(0), vocab, stats, seq_len=512)
    assert ex["tokens"][0] == vocab.bos and ex["tokens"][-1] == vocab.eos
    assert len(ex["tokens"]) == 1 + 12 * 2 + 12 + 1  # BOS, ON and OFF each, 12 shifts, EOS
    assert dataset.make_example(np.zeros((0, 4), np.float32), np.random.default_rng(0), vocab, stats) is None


def test_boundaries_bend_the_clock_off_the_beat(ex_setup, monkeypatch):
    """Cuts do not fall on the beat: boundaries move off the music's onsets and the run-up
    is stretched or hurried (by at most 25 %) so that the chord still lands on them."""
    vocab, stats, _ = ex_setup
    monkeypatch.setattr(dataset, "TRANSPOSE", (0, 0))
    monkeypatch.setattr(dataset, "STRETCH", (1.0, 1.0))
    notes = np.array([[PIANO, p + 12 * (i % 2), i * 0.5, i * 0.5 + 0.45] for i in range(120) for p in (60, 64, 67)],
                     np.float32)
    off_beat = total = 0
    for seed in range(12):
        ex = dataset.make_example(notes, np.random.default_rng(seed), vocab, stats, seq_len=512, start_prob=1.0)
        tok, t = ex["tokens"], ex["time"].astype(np.float64)
        after = t + np.where(tok >= vocab.shift_base, tok - vocab.shift_base + 1, 0) * vocab.shift_seconds
        for b in ex["boundaries"]:
            at = np.abs(t - b) < 1e-4
            assert np.any(tok[at] == vocab.chord), f"no chord on the moved boundary {b}"
            assert np.all(ex["offset"][np.abs(after - b) < 1e-4] == 0)
            total += 1
            off_beat += abs(b / 0.5 - round(b / 0.5)) > 0.02
        onsets = np.unique(t[tok == vocab.chord])
        gaps = np.diff(onsets)
        assert np.all((gaps >= 0.5 * 0.75 - 0.011) & (gaps <= 0.5 * 1.25 + 0.011)), gaps
    assert total > 30 and off_beat / total > 0.5


@pytest.mark.parametrize("window_mode", [False, True])
def test_scenes_change_mode_with_their_valence(ex_setup, monkeypatch, window_mode):
    """Some scenes of a major piece move to the parallel (harmonic) minor: E and A become Eb
    and Ab in C major, the leading tone B stays, and the flipped scenes' valence, measured
    after the flip (by the scene's notes, or the window's in the scene's mode), is lower than
    the untouched scenes'. Without the flip nothing moves."""
    vocab, stats, _ = ex_setup
    monkeypatch.setattr(dataset, "WINDOW_MODE", window_mode)
    monkeypatch.setattr(dataset, "TRANSPOSE", (0, 0))
    monkeypatch.setattr(dataset, "STRETCH", (1.0, 1.0))
    monkeypatch.setattr(dataset, "WARP", 0.0)
    monkeypatch.setattr(dataset, "MODE_FLIP_PROB", 1.0)
    # I - IV - V7 - I in C major, half a second per chord
    chords = [(48, 60, 64, 67), (53, 60, 65, 69), (55, 59, 65, 67), (48, 60, 64, 67)]
    notes = np.array([[PIANO, p, i * 0.5, i * 0.5 + 0.45] for i in range(240) for p in chords[i % 4]], np.float32)
    minor_v, major_v = [], []
    for seed in range(10):
        ex = dataset.make_example(notes, np.random.default_rng(seed), vocab, stats, seq_len=512, start_prob=1.0)
        tok = ex["tokens"]
        ons = [(i, vocab.group_pitch(int(t))[1] % 12) for i, t in enumerate(tok) if vocab.kind(int(t)) == "on"]
        pcs = {pc for _, pc in ons}
        assert pcs <= {0, 2, 3, 4, 5, 7, 8, 9, 11} and 11 in pcs  # nothing else moves
        edges = np.r_[0.0, ex["boundaries"], np.inf]
        for a, b in zip(edges[:-1], edges[1:]):
            inside = [pc for i, pc in ons if a - 1e-4 <= ex["time"][i] < b - 1e-4]
            if len(inside) < 8:
                continue
            v = ex["valence"][[i for i, _ in ons if a - 1e-4 <= ex["time"][i] < b - 1e-4]]
            assert np.all(v == v[0])  # one label per scene
            flat, natural = {3, 8} & set(inside), {4, 9} & set(inside)
            assert not (flat and natural), "a scene is in one mode"
            (minor_v if flat else major_v).append(float(v[0]))
        # the loss's mode flags: exactly the note-ons of the thirds and sixths, flipped or not
        flagged = {i for i in np.flatnonzero(ex["mode"])}
        assert flagged == {i for i, pc in ons if pc in (3, 4, 8, 9)} and flagged
    assert len(minor_v) > 5 and len(major_v) > 5
    assert max(minor_v) < min(major_v)
    monkeypatch.setattr(dataset, "MODE_FLIP_PROB", 0.0)
    ex = dataset.make_example(notes, np.random.default_rng(0), vocab, stats, seq_len=512, start_prob=1.0)
    assert not {vocab.group_pitch(int(t))[1] % 12 for t in ex["tokens"] if vocab.kind(int(t)) == "on"} & {3, 8}


def test_whole_flips_move_every_scene_of_the_window(ex_setup, monkeypatch):
    """dataset.WHOLE_FLIP_PROB = 1: a flipped window is in the parallel minor throughout (Eb and
    Ab, never E or A), so the mode it chose is held; at 0 some windows mix both modes."""
    vocab, stats, _ = ex_setup
    monkeypatch.setattr(dataset, "TRANSPOSE", (0, 0))
    monkeypatch.setattr(dataset, "STRETCH", (1.0, 1.0))
    monkeypatch.setattr(dataset, "MODE_FLIP_PROB", 1.0)
    chords = [(48, 60, 64, 67), (53, 60, 65, 69), (55, 59, 65, 67), (48, 60, 64, 67)]
    notes = np.array([[PIANO, p, i * 0.5, i * 0.5 + 0.45] for i in range(240) for p in chords[i % 4]], np.float32)

    def mixed(whole: float) -> int:
        monkeypatch.setattr(dataset, "WHOLE_FLIP_PROB", whole)
        count = 0
        for seed in range(10):
            ex = dataset.make_example(notes, np.random.default_rng(seed), vocab, stats, seq_len=512, start_prob=1.0)
            pcs = {vocab.group_pitch(int(t))[1] % 12 for t in ex["tokens"] if vocab.kind(int(t)) == "on"}
            if whole == 1.0:
                assert {3, 8} <= pcs and not {4, 9} & pcs
            count += bool({3, 8} & pcs and {4, 9} & pcs)
        return count

    mixed(1.0)
    assert mixed(0.0) > 3


def test_window_mode_labels_each_scene_with_the_windows_mode_in_its_flip_state(ex_setup, monkeypatch):
    """dataset.WINDOW_MODE: a scene's mode term is the whole window's mode, as written or moved
    to the parallel minor, so with valence read from the mode alone every scene gets one of two
    labels (minor below major); measured scene by scene, short scenes spread over many values."""
    import dataclasses

    vocab, stats, _ = ex_setup
    stats = dataclasses.replace(stats, valence_weights={"mode": 1.0})
    monkeypatch.setattr(dataset, "TRANSPOSE", (0, 0))
    monkeypatch.setattr(dataset, "STRETCH", (1.0, 1.0))
    monkeypatch.setattr(dataset, "WARP", 0.0)
    monkeypatch.setattr(dataset, "MODE_FLIP_PROB", 1.0)
    chords = [(48, 60, 64, 67), (53, 60, 65, 69), (55, 59, 65, 67), (55, 62, 67, 71), (48, 60, 64, 67)]
    notes = np.array([[PIANO, p, i * 0.5, i * 0.5 + 0.45] for i in range(240) for p in chords[i % 5]], np.float32)
    seen = {}
    for window_mode in (False, True):
        monkeypatch.setattr(dataset, "WINDOW_MODE", window_mode)
        labels = set()
        for seed in range(10):
            ex = dataset.make_example(notes, np.random.default_rng(seed), vocab, stats, seq_len=512, start_prob=1.0)
            labels |= {round(float(v), 6) for v in ex["valence"]}
        seen[window_mode] = labels
    assert len(seen[True]) == 2 and min(seen[True]) < 0 < max(seen[True])
    assert len(seen[False]) > 4


def test_mode_loss_weight_multiplies_the_flagged_predictions():
    """train.weighted_loss: a flagged target weighs ``mode_weight`` times more (on top of the
    approach weight); the loss is normalised by the total weight."""
    torch = pytest.importorskip("torch")
    from onnx_models.training.train import weighted_loss

    logits = torch.zeros(1, 4, 3)
    logits[0, 0, 0] = 5.0  # target 0 at position 0 is cheap, the rest cost log 3
    y = torch.tensor([[0, 1, 2, -1]])
    offset = torch.tensor([[9.0, 9.0, 0.5, 9.0]])
    mode = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    ce = torch.nn.functional.cross_entropy(logits[0], torch.tensor([0, 1, 2, 0]), reduction="none")
    got = weighted_loss(logits, y, offset, 3.0, mode=mode, mode_weight=4.0)
    want = (4 * ce[0] + 1 * ce[1] + 12 * ce[2]) / (4 + 1 + 12)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    assert weighted_loss(logits, y, offset, 1.0).item() == pytest.approx(ce[:3].mean().item(), rel=1e-6)


def test_start_prob_is_read_when_a_window_is_made(ex_setup, monkeypatch):
    """``train.py --start-prob`` sets ``dataset.START_PROB`` after import: a long piece's windows
    then start at BOS as often as it says."""
    vocab, stats, _ = ex_setup
    notes = np.array([[PIANO, p, i * 0.5, i * 0.5 + 0.45] for i in range(600) for p in (60, 64, 67)], np.float32)

    def starts(prob):
        monkeypatch.setattr(dataset, "START_PROB", prob)
        return sum(dataset.make_example(notes, np.random.default_rng(s), vocab, stats, seq_len=128)["tokens"][0] == vocab.bos
                   for s in range(20))

    assert starts(1.0) == 20
    assert starts(0.0) == 0


@pytest.mark.parametrize("start_prob,keys", [(1.0, 2), (0.0, 2), (1.0, 24), (0.0, 24)])
def test_key_tokens_open_every_scene_in_its_flip_state(ex_setup, monkeypatch, start_prob, keys):
    """A vocabulary with ``keys``: a key token opens each scene, right after BOS or after the
    time shift that reaches the boundary (or first, in a window that starts inside a scene),
    with that token's conditioning; it is C minor (or MINOR) exactly where the scene's notes
    were moved to the parallel minor (Eb, Ab), else C major, and the rest of the stream is the
    example without it."""
    import dataclasses

    vocab, stats, _ = ex_setup
    modal = dataclasses.replace(vocab, keys=keys)
    for name, value in (("TRANSPOSE", (0, 0)), ("STRETCH", (1.0, 1.0)), ("WARP", 0.0), ("MODE_FLIP_PROB", 1.0)):
        monkeypatch.setattr(dataset, name, value)
    chords = [(48, 60, 64, 67), (53, 60, 65, 69), (55, 59, 65, 67), (48, 60, 64, 67)]
    notes = np.array([[PIANO, p, i * 0.5, i * 0.5 + 0.45] for i in range(240) for p in chords[i % 4]], np.float32)
    seen = set()
    for seed in range(8):
        plain = dataset.make_example(notes, np.random.default_rng(seed), vocab, stats, seq_len=256, start_prob=start_prob)
        ex = dataset.make_example(notes, np.random.default_rng(seed), modal, stats, seq_len=256, start_prob=start_prob)
        tok = ex["tokens"]
        marks = np.flatnonzero(tok >= modal.shift_end)
        assert len(tok) == 257 and all(len(a) == len(tok) for k, a in ex.items() if k != "boundaries")
        rest = np.delete(np.arange(len(tok)), marks)
        assert np.array_equal(tok[rest], plain["tokens"][:len(rest)])
        for k in ("valence", "arousal", "offset", "since"):
            assert np.array_equal(ex[k][rest], plain[k][:len(rest)])
        first = 1 if start_prob == 1.0 else 0
        assert marks[0] == first and (first == 0 or tok[0] == modal.bos)
        for b in ex["boundaries"][ex["boundaries"] < ex["time"][-1] - 1e-4]:  # one per scene
            assert np.sum(np.abs(ex["time"][marks] - b) < 1e-4) == 1
        for i in marks[1:]:
            assert modal.kind(int(tok[i - 1])) == "shift" and ex["offset"][i] == 0 == ex["since"][i]
            assert np.isclose(ex["time"][i], ex["boundaries"], atol=1e-4).any()
        edges = np.r_[ex["time"][marks], np.inf]
        for i, a, b in zip(marks, edges[:-1], edges[1:]):
            pcs = {modal.group_pitch(int(t))[1] % 12 for t, at in zip(tok, ex["time"])
                   if modal.kind(int(t)) == "on" and a - 1e-4 <= at < b - 1e-4}
            if {3, 4, 8, 9} & pcs:
                minor = bool({3, 8} & pcs)
                assert tok[i] == modal.key(major=not minor, tonic=0) and ex["mode"][i] == 1.0
                seen.add(minor)
    assert seen == {True, False}


def test_modulation_moves_the_key_at_cuts_and_the_key_token_says_where(ex_setup, monkeypatch):
    """dataset.MODULATE_PROB = 1: every scene after the first is in a new key (a move of 1-6
    semitones either way from the scene before, held), its notes are the piece's moved there
    pitch class for pitch class, and its key token names the new tonic; the window's first
    scene stays in C."""
    import dataclasses

    vocab, stats, _ = ex_setup
    keyed = dataclasses.replace(vocab, keys=24)
    for name, value in (("TRANSPOSE", (0, 0)), ("STRETCH", (1.0, 1.0)), ("WARP", 0.0), ("MODE_FLIP_PROB", 0.0),
                        ("MODULATE_PROB", 1.0)):
        monkeypatch.setattr(dataset, name, value)
    chords = [(48, 60, 64, 67), (53, 60, 65, 69), (55, 59, 65, 67), (48, 60, 64, 67)]
    notes = np.array([[PIANO, p, i * 0.5, i * 0.5 + 0.45] for i in range(240) for p in chords[i % 4]], np.float32)
    scale = {0, 2, 4, 5, 7, 9, 11}
    seen = 0
    for seed in range(6):
        ex = dataset.make_example(notes, np.random.default_rng(seed), keyed, stats, seq_len=512, start_prob=1.0)
        tok = ex["tokens"]
        marks = np.flatnonzero(tok >= keyed.shift_end)
        tonics = [keyed.key_of(int(tok[i])) for i in marks]
        assert tonics[0] == (0, True) and all(major for _, major in tonics)
        assert all(a[0] != b[0] for a, b in zip(tonics[:-1], tonics[1:]))  # every cut moves the key
        for (tonic, _), a, b in zip(tonics, marks, [*marks[1:], len(tok)]):
            pcs = {keyed.group_pitch(int(t))[1] % 12 for t in tok[a:b] if keyed.kind(int(t)) == "on"}
            assert pcs <= {(p + tonic) % 12 for p in scale}
            seen += len(pcs) >= 5  # (the window may end just after a scene's key token)
    assert seen > 12


def test_mode_noise_moves_input_notes_to_the_other_mode_and_leaves_the_targets(ex_setup, monkeypatch):
    """dataset.mode_noise at 1: every third and sixth of the stated key (C major, then A minor
    after a key change) is moved to the other mode's degree in the inputs, with its note-off,
    and nothing else is; the targets keep the written notes and leave out the moved note-offs."""
    import dataclasses

    vocab, _, _ = ex_setup
    keyed = dataclasses.replace(vocab, keys=24)
    on, off = keyed.note_on, keyed.note_off
    tokens = np.array([keyed.bos, keyed.key(True, 0), on(PIANO, 60), on(PIANO, 64), on(PIANO, 69), keyed.shift(10),
                       off(PIANO, 60), off(PIANO, 64), off(PIANO, 69), keyed.key(False, 9), on(PIANO, 69),
                       on(PIANO, 72), on(PIANO, 77), keyed.shift(10), off(PIANO, 72), off(PIANO, 69), off(PIANO, 77)])
    inputs, ignore = dataset.mode_noise(tokens, keyed, 1.0, np.random.default_rng(0))
    want = tokens.copy()
    for i, new in ((3, on(PIANO, 63)), (4, on(PIANO, 68)), (7, off(PIANO, 63)), (8, off(PIANO, 68)),
                   (11, on(PIANO, 73)), (12, on(PIANO, 78)), (14, off(PIANO, 73)), (16, off(PIANO, 78))):
        want[i] = new
    np.testing.assert_array_equal(inputs, want)
    np.testing.assert_array_equal(np.flatnonzero(ignore), [7, 8, 14, 16])
    same, _ = dataset.mode_noise(tokens, keyed, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(same, tokens)
    plain, _ = dataset.mode_noise(tokens[tokens < keyed.shift_end], vocab, 1.0, np.random.default_rng(0))
    np.testing.assert_array_equal(plain, tokens[tokens < keyed.shift_end])
