"""Benchmarks of the learned generator, printed as tables (ratios measured in one run).

    python benchmarks/bench_generator.py [--quick] [--model FILE.onnx] [--only cuts|emotion|styles|stats|speed]
        [--ckpt onnx_models/training/runs/v11/weights_fp16.pt] [--variety]

Runs from what the repository ships: the held-out set in ``benchmarks/data/heldout`` (made
from the corpus's held-out split by ``benchmarks/heldout_set.py``). "Model alone" is guidance 0,
mode steering 0, no cut guarantee, no fresh-chord rule and no tonic held (``--hold-tonic`` holds
it); "shipped decoder" the defaults.

1. Chords on cuts, on the card's fixed seeds (20 random timelines) and on 20 held-out
   timelines: hits within ±0.1 s and ±0.25 s against the chance rate of the same score's chords
   (random times), pieces without chords, per-piece spread; a control with the offsets withheld.
2. Emotion control over a 5x5 valence/arousal grid: Spearman(requested, measured), valence read
   by the label formula (Krumhansl-Kessler, the profiles the decoder steers along) and by two
   key finders it does not use (Temperley-Kostka-Payne; Aarden-Essen, music21's ``analyze('key')``).
3. Listener figures per arousal: groups playing, notes/s, percussion onsets/s (default style
   applied), silence, longest rest, harmony changes at cuts, longest repeated-token loop.
4. Every style applied to the held-out scores: groups, programs, drums in calm and energetic scenes.
5. Music statistics against the held-out windows, side by side with the baseline arranger.
6. Speed: ONNX KV-cache decoder (fp32, int8) against PyTorch without a cache (``--ckpt``).
7. (``--variety``) Pitch variety on the four example moods over the sample's cuts.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from heldout_set import HERE as HELDOUT  # noqa: E402
from heldout_set import load_timelines, load_windows  # noqa: E402
from music_stats import (  # noqa: E402
    chance_hits,
    empty_share,
    groups_sounding,
    harmony_changes,
    longest_loop,
    longest_rest,
    mode_score,
    new_pitch_class_at_cuts,
    note_density,
    pitch_class_entropy,
    summary,
)

from emsync_plugin.mood import SceneMood  # noqa: E402
from emsync_plugin.music.baseline import BaselineOptions, arrange  # noqa: E402
from emsync_plugin.music.chords import chord_onsets  # noqa: E402
from emsync_plugin.music.decoding import SamplingOptions  # noqa: E402
from emsync_plugin.music.features import LabelStats, labels, measure  # noqa: E402
from emsync_plugin.music.generator import Generator  # noqa: E402
from emsync_plugin.music.groups import score_groups  # noqa: E402
from emsync_plugin.music.styles import DEFAULT_STYLE, STYLES, apply_style  # noqa: E402
from emsync_plugin.music.vocab import Note  # noqa: E402

RATES = (24000 / 1001, 24.0, 25.0, 30000 / 1001, 30.0, 50.0)


MODEL_ALONE = dict(guidance=0.0, mode_steering=0.0, guarantee_cuts=False, fresh_chords=0.0, hold_tonic=False)


def random_timeline(rng, n_scenes=None):
    rate = float(rng.choice(RATES))
    n = int(n_scenes or rng.integers(4, 9))
    lengths = rng.uniform(2, 12, n)
    bounds = np.cumsum(lengths)
    frames = np.round(bounds * rate)
    cuts = (frames[:-1] / rate).tolist()
    return rate, cuts, float(frames[-1] / rate)


def fixed_timelines(n):
    """The card's fixed seeds: ``n`` random timelines (scene lengths 2-12 s), one random mood each."""
    rng = np.random.default_rng(2025)
    out = []
    for _ in range(n):
        _, cuts, dur = random_timeline(rng)
        moods = [SceneMood(0, 0, dur, float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.8, 0.8)))]
        out.append((cuts, dur, moods))
    return out


def heldout_timelines(n=None):
    """The committed held-out timelines (benchmarks/data/heldout): cuts and per-scene moods."""
    out = []
    for t in load_timelines()[:n]:
        moods = [SceneMood(i, a, b, v, ar) for i, (a, b, v, ar) in enumerate(t["moods"])]
        out.append((t["cuts"], t["duration"], moods))
    return out


def hit_rates(cuts, midi):
    onsets = chord_onsets(midi)
    if not len(onsets):
        return 0.0, 0.0
    d = np.array([np.min(np.abs(onsets - c)) for c in cuts])
    return float((d <= 0.25).mean()), float((d <= 1.0).mean())


def piece_hits(cuts, midi, duration):
    """Per piece: hits at ±0.1 and ±0.25 s, the chance rates of its chords at both, and whether it
    has chords of its own (before the final chord, which the decoder always forces)."""
    onsets = chord_onsets(midi)
    own = onsets[onsets < duration - SamplingOptions().final_hold - 0.5]
    d = np.array([np.min(np.abs(onsets - c)) if len(onsets) else np.inf for c in cuts])
    return dict(cuts=len(cuts), h10=float((d <= 0.1).mean()), h25=float((d <= 0.25).mean()),
                c10=chance_hits(onsets, duration, 0.1), c25=chance_hits(onsets, duration, 0.25), chords=bool(len(own)))


def bench_alignment(gen, sets, temperature, top_p, guidance, steering, model_alone=False):
    """Chords on cuts per timeline set, model alone and shipped decoder, against chance."""
    decodings = {"model alone": dict(MODEL_ALONE), "shipped decoder": dict(guidance=guidance, mode_steering=steering),
                 "model alone, offsets withheld": dict(MODEL_ALONE, use_offsets=False)}
    if model_alone:
        decodings = {"model alone": dict(MODEL_ALONE)}
    print("\n### 1. Chords on cuts (model alone: guidance 0, mode steering 0, no guarantee, no fresh-chord rule)\n")
    print("| timelines | decoding | hits ±0.1 s | chance ±0.1 s | hits ±0.25 s | chance ±0.25 s | "
          "pieces without chords but the final | pieces >= 75 % at ±0.25 s | pieces with no hit | per-piece hits ±0.25 s (min / median) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    out = {}
    for set_name, timelines in sets.items():
        for name, o in decodings.items():
            if "withheld" in name and "fixed" not in set_name:
                continue
            rows = []
            for i, (cuts, dur, moods) in enumerate(timelines):
                r = gen.generate(cuts, dur, moods, SamplingOptions(seed=i, temperature=temperature, top_p=top_p, **o))
                rows.append(piece_hits(cuts, r.midi, dur))
            w = np.array([x["cuts"] for x in rows], float)
            avg = {k: float(np.average([x[k] for x in rows], weights=w)) for k in ("h10", "c10", "h25", "c25")}
            per = np.array([x["h25"] for x in rows])
            chordless = sum(not x["chords"] for x in rows)
            out[f"{set_name}: {name}"] = dict(avg, chordless=chordless, n=len(rows))
            print(f"| {set_name} ({len(rows)}, {int(w.sum())} cuts) | {name} | {avg['h10']:.1%} | {avg['c10']:.1%} | "
                  f"{avg['h25']:.1%} | {avg['c25']:.1%} | {chordless} of {len(rows)} | {(per >= 0.75).sum()} of {len(rows)} | "
                  f"{(per == 0).sum()} of {len(rows)} | {per.min():.0%} / {np.median(per):.0%} |")
    return out


def spearman(x, y):
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def spearman_ci(x, y, n_boot=1000, seed=0):
    """The 95 % bootstrap interval (pieces resampled with replacement) of Spearman(x, y)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x), np.asarray(y)
    rng = np.random.default_rng(seed)
    rhos = []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
            rhos.append(spearmanr(x[i], y[i]).statistic)
    return float(np.percentile(rhos, 2.5)), float(np.percentile(rhos, 97.5))


GRID = np.linspace(-0.8, 0.8, 5)
GRID_CUTS, GRID_DUR = [6.0, 12.0, 18.0], 24.0


def grid_pieces(gen, stats, temperature, top_p, seeds, options):
    """The 5x5 valence/arousal grid, ``seeds`` pieces a cell (24 s, 3 cuts), each measured."""
    rows = []
    for v in GRID:
        for a in GRID:
            takes = [SamplingOptions(seed=100 + s, temperature=temperature, top_p=top_p, **options) for s in range(seeds)]
            for r in gen.generate_many(GRID_CUTS, GRID_DUR, [SceneMood(0, 0, GRID_DUR, float(v), float(a))], takes):
                mv, ma = labels(measure(r.notes, 0.0, GRID_DUR), stats)
                rows.append(dict(v=float(v), a=float(a), kk=mv, arousal=ma, temperley=mode_score(r.notes, "temperley"),
                                 aarden=mode_score(r.notes, "aarden"), notes=r.notes, tokens=r.tokens, midi=r.midi))
    return rows


def bench_emotion(grids, heldout_labels):
    """Valence and arousal control per decoding, valence read by three key finders."""
    print("\n### 2. Emotion control (5x5 grid, 24 s with 3 cuts): Spearman(requested, measured), 95 % bootstrap interval\n")
    print("Valence by the label formula (Krumhansl-Kessler profiles: the ones the mode steering pushes along), "
          "and by two key finders the decoder does not use: Temperley-Kostka-Payne and Aarden-Essen "
          "(music21's `analyze('key')`), best major minus best minor key correlation.\n")
    print("| decoding | pieces | valence (label formula, KK) | valence (Temperley) | valence (Aarden-Essen) | arousal | "
          "distinct pitches | pitch-class entropy (bits, by count) |")
    print("|---|---|---|---|---|---|---|---|")
    out = {}
    for name, rows in grids.items():
        req_v, req_a = [r["v"] for r in rows], [r["a"] for r in rows]
        cells = []
        for req, key in ((req_v, "kk"), (req_v, "temperley"), (req_v, "aarden"), (req_a, "arousal")):
            got = [r[key] for r in rows]
            lo, hi = spearman_ci(req, got)
            out[f"{name}: {key}"] = spearman(req, got)
            cells.append(f"{spearman(req, got):.2f} ({lo:.2f} .. {hi:.2f})")
        distinct = np.mean([len({n.pitch for n in r["notes"]}) for r in rows])
        entropy = np.mean([pitch_class_entropy(r["notes"], by_count=True) for r in rows])
        out[f"{name}: distinct"], out[f"{name}: entropy"] = float(distinct), float(entropy)
        print(f"| {name} | {len(rows)} | " + " | ".join(cells) + f" | {distinct:.1f} | {entropy:.2f} |")
    print("\n| decoding: per requested value | " + " | ".join(f"{g:+.1f}" for g in GRID) + " |")
    print("|---|" + "---|" * len(GRID))
    for name, rows in grids.items():
        major = [np.mean([r["aarden"] > 0 for r in rows if r["v"] == g]) for g in GRID]
        tk = [np.mean([r["temperley"] > 0 for r in rows if r["v"] == g]) for g in GRID]
        kk = [np.mean([r["kk"] for r in rows if r["v"] == g]) for g in GRID]
        ar = [np.mean([r["arousal"] for r in rows if r["a"] == g]) for g in GRID]
        print(f"| {name}: major pieces (Aarden-Essen) by valence | " + " | ".join(f"{m:.0%}" for m in major) + " |")
        print(f"| {name}: major pieces (Temperley) by valence | " + " | ".join(f"{m:.0%}" for m in tk) + " |")
        print(f"| {name}: label-formula valence by valence | " + " | ".join(f"{m:+.2f}" for m in kk) + " |")
        print(f"| {name}: measured arousal by arousal | " + " | ".join(f"{m:+.2f}" for m in ar) + " |")
    if heldout_labels is None:
        return out
    print(f"\nHeld-out data range (5th-95th pct): valence {np.percentile(heldout_labels[0], 5):+.2f} .. "
          f"{np.percentile(heldout_labels[0], 95):+.2f}, arousal {np.percentile(heldout_labels[1], 5):+.2f} .. "
          f"{np.percentile(heldout_labels[1], 95):+.2f}")
    return out


def bench_listener(grids, style):
    """What a listener notices, per requested arousal: groups, drums (``style`` applied), density, silence, loops."""
    print(f"\n### 3. Listener figures per requested arousal (the grid's pieces; drums: style {style!r} applied)\n")
    print("| decoding | figure | " + " | ".join(f"{g:+.1f}" for g in GRID) + " |")
    print("|---|---|" + "---|" * len(GRID))
    out = {}
    for name, rows in grids.items():
        for r in rows:
            styled = apply_style(r["midi"], style, GRID_CUTS, GRID_DUR, [SceneMood(0, 0, GRID_DUR, r["v"], r["a"])], seed=0)
            r["drums"] = sum(len(i.notes) for i in styled.instruments if i.is_drum) / GRID_DUR
        figures = {
            "instrument groups playing (model's)": lambda r: groups_sounding(r["notes"]),
            "notes per second": lambda r: note_density(r["notes"], GRID_DUR),
            "percussion onsets per second": lambda r: r["drums"],
            "silence share": lambda r: empty_share(r["notes"], GRID_DUR),
            "longest rest (s)": lambda r: longest_rest(r["notes"], GRID_DUR),
            "harmony changes at a cut": lambda r: harmony_changes(r["notes"], GRID_CUTS),
            "longest repeated-token loop (max)": lambda r: longest_loop(r["tokens"]),
        }
        for fig, f in figures.items():
            vals = [[f(r) for r in rows if r["a"] == g] for g in GRID]
            agg = np.max if "max" in fig else np.mean
            cells = [f"{agg(v):.0%}" if "share" in fig or "changes" in fig else f"{agg(v):.2f}" for v in vals]
            print(f"| {name} | {fig} | " + " | ".join(cells) + " |")
            out[f"{name}: {fig}"] = [float(agg(v)) for v in vals]
        out[f"{name}: drums Spearman"] = spearman([r["a"] for r in rows], [r["drums"] for r in rows])
    return out


def bench_styles(gen, timelines, temperature, top_p, guidance, steering):
    """Every style applied to the shipped decoder's scores of the held-out timelines."""
    scores = [(cuts, dur, moods, gen.generate(cuts, dur, moods, SamplingOptions(
        seed=i, temperature=temperature, top_p=top_p, guidance=guidance, mode_steering=steering)).midi)
        for i, (cuts, dur, moods) in enumerate(timelines)]
    print(f"\n### 4. Styles on the held-out timelines ({len(scores)} scores, shipped decoder)\n")
    print("| style | groups | GM programs | drum onsets/s, scenes arousal <= -0.3 | arousal >= +0.3 | "
          "calm scenes without drums | energetic scenes with drums |")
    print("|---|---|---|---|---|---|---|")
    out = {}
    for name in STYLES:
        groups, programs, calm, lively = set(), set(), [], []
        for k, (cuts, dur, moods, midi) in enumerate(scores):
            styled = apply_style(midi, name, cuts, dur, moods, seed=k)
            groups.update(score_groups(styled))
            programs.update(i.program for i in styled.instruments if not i.is_drum and i.notes)
            drums = np.array([n.start for i in styled.instruments if i.is_drum for n in i.notes])
            for m in moods:
                rate = float(((drums >= m.start) & (drums < m.end)).sum()) / max(m.end - m.start, 1e-9)
                (calm if m.arousal <= -0.3 else lively if m.arousal >= 0.3 else []).append(rate)
        c, e = np.array(calm), np.array(lively)
        out[name] = dict(calm=float(c.mean()) if len(c) else None, lively=float(e.mean()) if len(e) else None)
        print(f"| {name} | {', '.join(sorted(groups))} | {', '.join(map(str, sorted(programs)))} | "
              f"{c.mean() if len(c) else float('nan'):.2f} ({len(c)}) | {e.mean() if len(e) else float('nan'):.2f} ({len(e)}) | "
              f"{(c == 0).mean() if len(c) else float('nan'):.0%} | {(e > 0).mean() if len(e) else float('nan'):.0%} |")
    return out


def bench_stats(gen, wins, temperature, top_p, n, guidance=0.0, steering=0.0):
    rng = np.random.default_rng(7)
    dur = 24.0
    gen_rows, base_rows = [], []
    for i in range(n):
        v, a = float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.8, 0.8))
        cuts = sorted(rng.uniform(2, dur - 2, 3).round(2).tolist())
        mood = [SceneMood(0, 0, dur, v, a)]
        r = gen.generate(cuts, dur, mood, SamplingOptions(seed=i, temperature=temperature, top_p=top_p, guidance=guidance,
                                                          mode_steering=steering))
        gen_rows.append(summary(r.notes, dur, r.tokens))
        pm = arrange(cuts, dur, mood, BaselineOptions(seed=i))
        notes = [Note(0, n_.pitch, n_.start, n_.end) for inst in pm.instruments if not inst.is_drum for n_ in inst.notes]
        base_rows.append(summary(notes, dur))
    held_rows = [summary(w, 24.0) for w in wins]
    keys = ["pc_entropy", "scale_consistency", "polyphony", "notes_per_s", "empty_share"]
    print("\n### 5. Music statistics (24 s excerpts; mean ± sd)\n")
    print("| statistic | held-out data | emsync (learned) | baseline arranger |")
    print("|---|---|---|---|")
    for k in keys:
        cells = []
        for rows in (held_rows, gen_rows, base_rows):
            x = np.array([r[k] for r in rows])
            cells.append(f"{x.mean():.2f} ± {x.std():.2f}")
        print(f"| {k} | " + " | ".join(cells) + " |")
    loops = max(r["max_loop_repeats"] for r in gen_rows)
    print(f"| longest repeated-token loop (repeats) | – | {loops} | – |")
    return gen_rows


def bench_speed(gen, ckpt, seconds=60.0, guidance=0.0, int8=None, repeat=3):
    """Tokens/s of each decoder on the same 60 s piece (best of ``repeat``, interleaved): the
    ONNX rows without guidance (one row a step, as PyTorch runs), then the default guidance."""
    cuts = [5.0, 12.0, 20.0, 27.0, 33.0, 41.0, 50.0]
    moods = [SceneMood(0, 0, seconds, 0.3, 0.3)]
    best = {}
    for _ in range(repeat):
        for name, g in (("fp32", gen), ("int8", int8)):
            if g is None:
                continue
            r = g.generate(cuts, seconds, moods, SamplingOptions(seed=3, guidance=0.0))  # one row a step
            if name not in best or r.seconds < best[name].seconds:
                best[name] = r
    r = best["fp32"]
    onnx_tps = r.steps / r.seconds
    onnx_rtf = seconds / r.seconds
    print("\n### 6. Speed (same weights, same machine, same run)\n")
    print("| decoder | tokens/s | real-time factor (s of music per s) |")
    print("|---|---|---|")
    print(f"| ONNX Runtime, KV cache | {onnx_tps:.0f} | {onnx_rtf:.1f}x |")
    if "int8" in best:
        q = best["int8"]
        print(f"| ONNX Runtime, KV cache, int8 build | {q.steps / q.seconds:.0f} | {seconds / q.seconds:.1f}x "
              f"({(q.steps / q.seconds) / onnx_tps:.2f}x the fp32 build) |")
    if guidance > 0:
        rg = gen.generate(cuts, seconds, moods, SamplingOptions(seed=3, guidance=guidance))
        print(f"| ONNX Runtime, KV cache, guidance {guidance:g} (2 rows a step) | {rg.steps / rg.seconds:.0f} | "
              f"{seconds / rg.seconds:.1f}x |")
    if ckpt is None:
        print("| PyTorch, no cache | (no checkpoint given) | |")
        return onnx_tps, None
    try:
        import torch
    except ImportError:
        print("| PyTorch, no cache | (torch is not installed) | |")
        return onnx_tps, None

    from onnx_models.training.export import load

    model, _ = load(ckpt)
    torch.set_num_threads(2)
    toks = r.tokens[: min(len(r.tokens), 400)]
    n = len(toks)
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(1, n + 1):  # recompute the whole prefix for every new token
            ids = torch.tensor([[gen.vocab.bos] + toks[:i - 1]])
            z = torch.zeros_like(ids, dtype=torch.float32)
            model(ids, z, z, z)
    torch_tps = n / (time.perf_counter() - t0)
    torch_rtf = torch_tps / onnx_tps * onnx_rtf
    print(f"| PyTorch, no cache | {torch_tps:.0f} | {torch_rtf:.1f}x |")
    print(f"\nONNX KV-cache decoder is {onnx_tps / torch_tps:.1f}x the no-cache PyTorch speed "
          f"(first {n} tokens of a {seconds:.0f} s piece).")
    return onnx_tps, torch_tps


EXAMPLE_MOODS = {"happy": (0.7, 0.5), "sad": (-0.7, -0.5), "tense": (-0.6, 0.7), "calm": (0.5, -0.6)}  # scripts/make_examples.py


def bench_variety(gen, temperature, top_p, guidance, steering, seeds=3):
    """Pitch variety on the examples' moods over the sample's cuts: the columns of the model
    card's "valence against pitch variety" table."""
    from emsync_plugin.demo import sample_dir
    from emsync_plugin.timeline import read_cuts

    timeline = read_cuts(sample_dir() / "sample.otio")
    fresh, distinct, entropy = [], [], []
    for v, a in EXAMPLE_MOODS.values():
        moods = [SceneMood(s.index, s.start, s.end, v, a) for s in timeline.scenes]
        for seed in range(seeds):
            r = gen.generate(timeline.cuts, timeline.duration, moods,
                             SamplingOptions(seed=seed, temperature=temperature, top_p=top_p, guidance=guidance,
                                             mode_steering=steering))
            fresh += new_pitch_class_at_cuts(r.notes, timeline.cuts)
            distinct.append(len({n.pitch for n in r.notes}))
            entropy.append(pitch_class_entropy(r.notes, by_count=True))
    print(f"\n### 7. Pitch variety (the 4 example moods over the sample's cuts, {seeds} seeds each)\n")
    print("| new pitch class at a cut | distinct pitches | pitch-class entropy (bits, notes counted once) |")
    print("|---|---|---|")
    print(f"| {np.mean(fresh):.0%} | {np.mean(distinct):.1f} | {np.mean(entropy):.2f} |")
    return float(np.mean(fresh)), float(np.mean(distinct)), float(np.mean(entropy))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", type=Path, default=None)
    p.add_argument("--model", type=Path, default=None,
                   help="an exported generator .onnx to measure instead of the shipped one (a candidate; no manifest check)")
    p.add_argument("--ckpt", type=Path, default=None,
                   help="a training checkpoint or weights_fp16.pt of the shipped model, for the PyTorch speed row")
    p.add_argument("--quick", action="store_true", help="fewer timelines and seeds")
    p.add_argument("--seeds", type=int, default=4, help="pieces per cell of the emotion grid (4: 100 pieces)")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--guidance", type=float, default=None, help="emotion guidance (default: the decoder's)")
    p.add_argument("--mode-steering", type=float, default=None, help="mode steering (default: the decoder's)")
    p.add_argument("--only", choices=("cuts", "emotion", "styles", "stats", "speed"), action="append",
                   help="run only these benchmarks (repeatable)")
    p.add_argument("--model-alone", action="store_true",
                   help="benchmarks 1-3 for the model alone only (a point of a training trade-off curve)")
    p.add_argument("--hold-tonic", action="store_true",
                   help="the model alone but for one rule: a key-token model keeps its first tonic at cuts")
    p.add_argument("--variety", action="store_true", help="only benchmark 7, pitch variety on the examples' moods")
    args = p.parse_args(argv)
    MODEL_ALONE["hold_tonic"] = args.hold_tonic
    if args.ckpt is not None and not args.ckpt.is_file():
        p.error(f"no checkpoint at {args.ckpt}")
    t0 = time.perf_counter()
    gen = Generator(args.model, threads=2) if args.model else Generator.load(args.model_dir, threads=2)
    stats = LabelStats.from_dict(gen.label_stats)
    d = SamplingOptions()
    temperature = args.temperature or d.temperature
    top_p = args.top_p or d.top_p
    guidance = d.guidance if args.guidance is None else args.guidance
    steering = d.mode_steering if args.mode_steering is None else args.mode_steering
    print(f"model: {gen.path} (vocab {gen.vocab.size}, {gen.config['n_layer']}x{gen.config['n_embd']}); "
          f"sampling: temperature {temperature}, top-p {top_p}, guidance {guidance}, mode steering {steering}")
    if args.variety:
        bench_variety(gen, temperature, top_p, guidance, steering)
        return
    only = set(args.only or ("cuts", "emotion", "styles", "stats", "speed"))
    n_tl = 5 if args.quick else 20
    results = {}
    if "cuts" in only:
        sets = {"fixed seeds": fixed_timelines(n_tl)}
        if (HELDOUT / "timelines.json").is_file():
            sets["held-out"] = heldout_timelines(n_tl)
        results["cuts"] = bench_alignment(gen, sets, temperature, top_p, guidance, steering, args.model_alone)
    if "emotion" in only:
        seeds = 1 if args.quick else args.seeds
        grids = {"model alone": grid_pieces(gen, stats, temperature, top_p, seeds, MODEL_ALONE)}
        if not args.model_alone:
            grids["shipped decoder"] = grid_pieces(gen, stats, temperature, top_p, seeds,
                                                   dict(guidance=guidance, mode_steering=steering))
        held = load_windows()[1] if (HELDOUT / "windows.npz").is_file() else None
        results["emotion"] = bench_emotion(grids, held)
        results["listener"] = bench_listener(grids, DEFAULT_STYLE)
    if "styles" in only:
        results["styles"] = bench_styles(gen, heldout_timelines(n_tl), temperature, top_p, guidance, steering)
    if "stats" in only:
        wins = load_windows()[0]
        bench_stats(gen, wins[:60] if args.quick else wins, temperature, top_p, 10 if args.quick else 30, guidance, steering)
    if "speed" in only:
        try:
            int8 = Generator(args.model.with_suffix(".int8.onnx"), threads=2) if args.model else \
                Generator.load(args.model_dir, threads=2, precision="int8")
        except Exception as exc:  # not built
            print(f"(no int8 build: {exc})")
            int8 = None
        results["speed"] = bench_speed(gen, args.ckpt, guidance=guidance, int8=int8)
    print("\n" + json.dumps(results, default=float))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
