"""Benchmarks of the learned generator, printed as tables (ratios measured in one run).

    python benchmarks/bench_generator.py [--quick] [--model-dir onnx_models] \
        [--ckpt onnx_models/training/runs/v10/weights_fp16.pt] [--variety]

Needs the prepared corpus (``python -m onnx_models.training.prepare_data``, for the held-out
windows) and, for the PyTorch speed row, torch and ``--ckpt``: a training checkpoint or the
committed fp16 weights of the shipped model.

1. Cut alignment on 20 random timelines (scene lengths 2-12 s, NTSC and PAL rates, starting at
   01:00:00:00): share of cuts with a chord (>= 3 onsets within 50 ms) within ±0.25 s and ±1 s,
   with the decoder's guarantee off (the model alone) and on, and a control with the boundary
   offsets withheld (offset = cap for every token).
2. Emotion control over a 5x5 valence/arousal grid: Spearman correlation between requested and
   measured valence and arousal (measured with the training label formula and the statistics in
   the model's metadata), next to the held-out data's label range.
3. Music statistics against the held-out split, side by side with the baseline arranger.
4. Speed: tokens/s and real-time factor of the ONNX KV-cache decoder (fp32 and int8 builds)
   against the same weights decoded in PyTorch without a cache (needs torch and the
   checkpoint), same run.
5. (``--variety``) Pitch variety on the four example moods over the sample's cuts, 3 seeds
   each: the share of cuts whose chord brings a pitch class not sounding just before it,
   distinct pitches and pitch-class entropy (notes counted once) per piece.
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

from music_stats import new_pitch_class_at_cuts, pitch_class_entropy, summary  # noqa: E402

from emsync_plugin.mood import SceneMood  # noqa: E402
from emsync_plugin.music.baseline import BaselineOptions, arrange  # noqa: E402
from emsync_plugin.music.chords import chord_onsets  # noqa: E402
from emsync_plugin.music.decoding import SamplingOptions  # noqa: E402
from emsync_plugin.music.features import LabelStats, labels, measure  # noqa: E402
from emsync_plugin.music.generator import Generator  # noqa: E402
from emsync_plugin.music.vocab import Note  # noqa: E402

RATES = (24000 / 1001, 24.0, 25.0, 30000 / 1001, 30.0, 50.0)


def random_timeline(rng, n_scenes=None):
    rate = float(rng.choice(RATES))
    n = int(n_scenes or rng.integers(4, 9))
    lengths = rng.uniform(2, 12, n)
    bounds = np.cumsum(lengths)
    frames = np.round(bounds * rate)
    cuts = (frames[:-1] / rate).tolist()
    return rate, cuts, float(frames[-1] / rate)


def hit_rates(cuts, midi):
    onsets = chord_onsets(midi)
    if not len(onsets):
        return 0.0, 0.0
    d = np.array([np.min(np.abs(onsets - c)) for c in cuts])
    return float((d <= 0.25).mean()), float((d <= 1.0).mean())


def bench_alignment(gen, n_timelines, temperature, top_p, guidance=0.0, steering=0.0):
    rng = np.random.default_rng(2025)
    rows = {"guarantee off (model alone)": [], "guarantee on": [], "offsets withheld, guarantee off": []}
    opts = {
        "guarantee off (model alone)": dict(guarantee_cuts=False),
        "guarantee on": dict(guarantee_cuts=True),
        "offsets withheld, guarantee off": dict(guarantee_cuts=False, use_offsets=False),
    }
    for i in range(n_timelines):
        rate, cuts, dur = random_timeline(rng)
        moods = [SceneMood(0, 0, dur, float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.8, 0.8)))]
        for name, o in opts.items():
            r = gen.generate(cuts, dur, moods, SamplingOptions(seed=i, temperature=temperature, top_p=top_p, guidance=guidance,
                                                             mode_steering=steering, **o))
            rows[name].append((len(cuts), *hit_rates(cuts, r.midi)))
    print(f"\n### 1. Cut alignment ({n_timelines} random timelines, {sum(r[0] for r in rows['guarantee on'])} cuts)\n")
    print("| decoding | chord within ±0.25 s | within ±1 s |")
    print("|---|---|---|")
    out = {}
    for name, r in rows.items():
        w = np.array([x[0] for x in r], float)
        a = float(np.average([x[1] for x in r], weights=w))
        b = float(np.average([x[2] for x in r], weights=w))
        out[name] = (a, b)
        print(f"| {name} | {a:.1%} | {b:.1%} |")
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


def bench_emotion(gen, stats, temperature, top_p, seeds, heldout_labels, guidance=0.0, steering=0.0):
    grid = np.linspace(-0.8, 0.8, 5)
    req_v, req_a, got_v, got_a = [], [], [], []
    dur = 24.0
    cuts = [6.0, 12.0, 18.0]
    for v in grid:
        for a in grid:
            for s in range(seeds):
                r = gen.generate(cuts, dur, [SceneMood(0, 0, dur, float(v), float(a))],
                                 SamplingOptions(seed=100 + s, temperature=temperature, top_p=top_p, guidance=guidance,
                                                 mode_steering=steering))
                mv, ma = labels(measure(r.notes, 0.0, dur), stats)
                req_v.append(v), req_a.append(a), got_v.append(mv), got_a.append(ma)
    rv, ra = spearman(req_v, got_v), spearman(req_a, got_a)
    print(f"\n### 2. Emotion control (5x5 grid, {seeds} seeds each, 24 s with 3 cuts), guidance {guidance:g}, "
          f"mode steering {steering:g}\n")
    print("| axis | Spearman(requested, measured) | 95 % bootstrap interval | measured range (5th-95th pct) | "
          "held-out data range (5th-95th pct) |")
    print("|---|---|---|---|---|")
    for name, rho, req, got, held in (("valence", rv, req_v, got_v, heldout_labels[0]),
                                      ("arousal", ra, req_a, got_a, heldout_labels[1])):
        lo, hi = spearman_ci(req, got)
        print(f"| {name} | {rho:.2f} | {lo:.2f} .. {hi:.2f} | {np.percentile(got, 5):+.2f} .. {np.percentile(got, 95):+.2f} | "
              f"{np.percentile(held, 5):+.2f} .. {np.percentile(held, 95):+.2f} |")
    # the means per requested value, to see monotonicity
    print("\n| requested | " + " | ".join(f"{g:+.1f}" for g in grid) + " |")
    print("|---|" + "---|" * len(grid))
    for name, req, got in (("measured valence", req_v, got_v), ("measured arousal", req_a, got_a)):
        means = [np.mean([g for r_, g in zip(req, got) if r_ == x]) for x in grid]
        print(f"| {name} | " + " | ".join(f"{m:+.2f}" for m in means) + " |")
    return rv, ra


def heldout_windows(cache, stats, n=200, length=24.0, seed=0):
    """Held-out pieces cut into windows of ``length`` s: notes, labels."""
    sys.path.insert(0, str(ROOT))
    from onnx_models.training.dataset import iter_pieces

    if not Path(cache).is_dir():
        raise SystemExit(f"no prepared corpus at {cache}: run python -m onnx_models.training.prepare_data first")
    rng = np.random.default_rng(seed)
    pieces = list(iter_pieces(cache, "heldout"))
    wins = []
    for _ in range(n * 3):
        p = np.asarray(pieces[rng.integers(len(pieces))], float)
        end = p[:, 3].max()
        if end < length:
            continue
        t0 = rng.uniform(0, end - length)
        sel = p[(p[:, 2] >= t0) & (p[:, 2] < t0 + length)]
        notes = [Note(int(g), int(q), a - t0, min(b, t0 + length) - t0) for g, q, a, b in sel]
        if notes:
            wins.append(notes)
        if len(wins) >= n:
            break
    labs = [labels(measure(w, 0, length), stats) for w in wins]
    return wins, ([lab[0] for lab in labs], [lab[1] for lab in labs])


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
    print("\n### 3. Music statistics (24 s excerpts; mean ± sd)\n")
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
    print("\n### 4. Speed (same weights, same machine, same run)\n")
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
    print(f"\n### 5. Pitch variety (the 4 example moods over the sample's cuts, {seeds} seeds each)\n")
    print("| new pitch class at a cut | distinct pitches | pitch-class entropy (bits, notes counted once) |")
    print("|---|---|---|")
    print(f"| {np.mean(fresh):.0%} | {np.mean(distinct):.1f} | {np.mean(entropy):.2f} |")
    return float(np.mean(fresh)), float(np.mean(distinct)), float(np.mean(entropy))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", type=Path, default=None)
    p.add_argument("--ckpt", type=Path, default=None,
                   help="a training checkpoint or weights_fp16.pt of the shipped model, for the PyTorch speed row")
    p.add_argument("--cache", type=Path, default=ROOT / "onnx_models/training/cache")
    p.add_argument("--quick", action="store_true", help="fewer timelines and seeds")
    p.add_argument("--seeds", type=int, default=4, help="pieces per cell of the emotion grid (4: 100 pieces)")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--guidance", type=float, default=None, help="emotion guidance (default: the decoder's)")
    p.add_argument("--mode-steering", type=float, default=None, help="mode steering (default: the decoder's)")
    p.add_argument("--variety", action="store_true", help="only benchmark 5, pitch variety on the examples' moods")
    args = p.parse_args(argv)
    if args.ckpt is not None and not args.ckpt.is_file():
        p.error(f"no checkpoint at {args.ckpt}")
    gen = Generator.load(args.model_dir, threads=2)
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
    results = {}
    results["alignment"] = bench_alignment(gen, 5 if args.quick else 20, temperature, top_p, guidance, steering)
    wins, held = heldout_windows(args.cache, stats, n=60 if args.quick else 200)
    seeds = 1 if args.quick else args.seeds
    results["emotion"] = bench_emotion(gen, stats, temperature, top_p, seeds, held, guidance, steering)
    if guidance > 0 or steering > 0:  # side by side: the model's own conditioning alone
        results["emotion_model_alone"] = bench_emotion(gen, stats, temperature, top_p, seeds, held, 0.0, 0.0)
    bench_stats(gen, wins, temperature, top_p, 10 if args.quick else 30, guidance, steering)
    try:
        int8 = Generator.load(args.model_dir, threads=2, precision="int8")
    except Exception as exc:  # not built
        print(f"(no int8 build: {exc})")
        int8 = None
    results["speed"] = bench_speed(gen, args.ckpt, guidance=guidance, int8=int8)
    print("\n" + json.dumps({k: v for k, v in results.items()}, default=float))


if __name__ == "__main__":
    main()
