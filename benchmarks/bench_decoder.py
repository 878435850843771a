"""The learned generator's decoding speed against the floor of its model size, in one run.

    python benchmarks/bench_decoder.py [--seconds 180] [--threads 1] [--repeat 2] [--before REV]

On a synthetic timeline (1.5-8 s shots over ``--seconds``, a random mood per shot) it prints:

1. our decoder (``Generator.generate`` / ``generate_many``), fp32 and int8 builds: tokens/s and
   x real time with 1 row a step (guidance off), 2 rows (one take with guidance, the default)
   and 4 rows (two takes with guidance, decoded together and one after the other); the share of
   the time spent in ONNX Runtime, in re-prefilling a new window, and in Python;
2. the floor for this model size on this CPU, same rows: a plain matmul chain of the model's
   weight shapes (the per-token matmuls of ``n_layer`` blocks and the output head), and a plain
   numpy decoder of the same size whose cache is preallocated and written in place (attention
   over the mean context length our decoder had); and the ratios;
3. the window schedule (``SamplingOptions.context``): x real time of one take with guidance
   when the window holds 512 (the model's context, the default), 384, 256 or 128 tokens, and
   what the model loses: its mean negative log-likelihood (nats/token) of two long pieces it
   generated with the whole context, teacher-forced through each schedule;
4. with ``--before REV``: the 3-minute generation of that git revision (``git archive``d to a
   temporary folder) against this working tree, same timeline, each in its own process,
   alternated, best of ``--repeat``.

Times are best of ``--repeat``; everything in one table per section is measured in this run.
BLAS and ONNX Runtime get ``--threads`` threads. CPU seconds (``time.process_time``) are given
beside wall seconds: on a machine shared with other work they are the steadier figure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _threads_first(argv: list[str]) -> int:
    """BLAS reads its thread count when numpy is imported: set it before."""
    n = next((int(argv[i + 1]) for i, a in enumerate(argv[:-1]) if a == "--threads"), 1)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    return n


_threads_first(sys.argv)
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from emsync_plugin.mood import SceneMood  # noqa: E402
from emsync_plugin.music.decoding import SamplingOptions  # noqa: E402
from emsync_plugin.music.generator import Generator  # noqa: E402


def timeline(seconds: float, seed: int = 0) -> tuple[list[float], float, list[SceneMood]]:
    """Cuts of 1.5-8 s shots over ``seconds`` and a random mood per shot."""
    rng = np.random.default_rng(seed)
    t, cuts = 0.0, []
    while True:
        t += float(rng.uniform(1.5, 8.0))
        if t >= seconds - 1.5:
            break
        cuts.append(round(t, 3))
    bounds = [0.0, *cuts, seconds]
    moods = [SceneMood(i, a, b, float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.8, 0.8)))
             for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    return cuts, seconds, moods


class Timed:
    """Wraps a generator's model calls: their time, split into single steps and new windows."""

    def __init__(self, gen: Generator):
        self.gen, self.real = gen, gen._run
        self.step = self.window = 0.0
        self.contexts: list[int] = []
        gen._run = self  # type: ignore[method-assign]

    def __call__(self, ids, val, aro, off, cache):
        context = cache.length
        t = time.perf_counter()
        out = self.real(ids, val, aro, off, cache)
        dt = time.perf_counter() - t
        if ids.shape[1] == 1:
            self.step += dt
            self.contexts.append(context)
        else:
            self.window += dt
        return out


def run_ours(gen: Generator, tl, takes: int, guidance: float, together: bool) -> dict:
    cuts, dur, moods = tl
    options = [SamplingOptions(seed=1 + k, guidance=guidance) for k in range(takes)]
    timed = Timed(gen)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        if together:
            results = gen.generate_many(cuts, dur, moods, options)
        else:
            results = [gen.generate(cuts, dur, moods, o) for o in options]
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        gen._run = timed.real  # type: ignore[method-assign]
    tokens = sum(len(r.tokens) for r in results)
    return {"wall": wall, "cpu": cpu, "tokens": tokens, "music": dur * takes, "step": timed.step, "window": timed.window,
            "context": float(np.mean(timed.contexts)) if timed.contexts else 0.0}


def bench_ours(tl, threads: int, repeat: int) -> dict:
    configs = [("1 row (guidance off)", 1, 0.0, True), ("2 rows (1 take, guidance)", 1, 1.0, True),
               ("4 rows (2 takes together)", 2, 1.0, True), ("4 rows (2 takes one by one)", 2, 1.0, False)]
    gens = {p: Generator.load(threads=threads, precision=p) for p in ("fp32", "int8")}
    for g in gens.values():  # warm: first-call allocations
        g.generate([2.0], 4.0, [SceneMood(0, 0.0, 4.0, 0.0, 0.0)])
    best: dict = {}
    for _ in range(repeat):
        for prec, g in gens.items():
            for name, takes, guidance, together in configs:
                r = run_ours(g, tl, takes, guidance, together)
                key = (prec, name)
                if key not in best or r["wall"] < best[key]["wall"]:
                    best[key] = r
    print(f"\n### 1. Our decoder ({tl[1]:.0f} s timeline, {len(tl[0])} cuts, {threads} thread(s), best of {repeat})\n")
    print("| build | rows a step | tokens | tokens/s | tokens/CPU-s | x real time | ONNX steps | new windows | Python | "
          "mean context |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (prec, name), r in best.items():
        py = r["wall"] - r["step"] - r["window"]
        print(f"| {prec} | {name} | {r['tokens']} | {r['tokens'] / r['wall']:.0f} | {r['tokens'] / r['cpu']:.0f} | "
              f"{r['music'] / r['wall']:.1f}x | "
              f"{r['step'] / r['wall']:.0%} | {r['window'] / r['wall']:.1%} | {py / r['wall']:.0%} | {r['context']:.0f} |")
    print()
    for prec in gens:
        a, b = best[(prec, "4 rows (2 takes together)")], best[(prec, "4 rows (2 takes one by one)")]
        how = "share calls" if gens[prec].takes_share_calls else "decoded one after the other anyway (int8)"
        print(f"{prec}: generate_many of 2 takes ({how}) is {b['wall'] / a['wall']:.2f}x as fast as 2 generate calls")
    f, q = best[("fp32", "2 rows (1 take, guidance)")], best[("int8", "2 rows (1 take, guidance)")]
    print(f"int8 is {f['wall'] / q['wall']:.2f}x as fast as fp32 (1 take, guidance)")
    return best


# ---- the floor ------------------------------------------------------------------------------


def _weights(cfg: dict, rng: np.random.Generator) -> dict:
    c, v = int(cfg["n_embd"]), int(cfg["vocab_size"])

    def w(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    layers = [{"qkv": w(c, 3 * c), "bqkv": w(3 * c), "o": w(c, c), "bo": w(c), "fc": w(c, 4 * c), "bfc": w(4 * c),
               "p": w(4 * c, c), "bp": w(c), "ln1": (w(c) + 1, w(c)), "ln2": (w(c) + 1, w(c))}
              for _ in range(int(cfg["n_layer"]))]
    return {"layers": layers, "head": w(c, v), "lnf": (w(c) + 1, w(c))}


def matmul_chain(weights: dict, x: np.ndarray) -> np.ndarray:
    """The per-token weight matmuls of the blocks and the head, nothing else."""
    for layer in weights["layers"]:
        x = (x @ layer["qkv"])[:, :x.shape[1]] @ layer["o"]
        x = (x @ layer["fc"]) @ layer["p"]
    return x @ weights["head"]


def _ln(x: np.ndarray, gb: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    m = x.mean(-1, keepdims=True)
    d = x - m
    return d / np.sqrt((d * d).mean(-1, keepdims=True) + 1e-5) * gb[0] + gb[1]


def plain_step(weights: dict, cache: np.ndarray, x: np.ndarray, t: int, n_head: int) -> np.ndarray:
    """One token of a plain decoder with a preallocated cache ``[layer, 2, rows, head, T, dim]``
    written in place at position ``t``: the work a decoder of this size cannot avoid."""
    b, c = x.shape
    hd = c // n_head
    for i, layer in enumerate(weights["layers"]):
        qkv = _ln(x, layer["ln1"]) @ layer["qkv"] + layer["bqkv"]
        q, k, v = (qkv[:, j * c:(j + 1) * c].reshape(b, n_head, 1, hd) for j in range(3))
        cache[i, 0, :, :, t:t + 1] = k
        cache[i, 1, :, :, t:t + 1] = v
        att = (q @ cache[i, 0, :, :, :t + 1].transpose(0, 1, 3, 2)) * (1.0 / np.sqrt(hd))
        att = np.exp(att - att.max(-1, keepdims=True))
        y = (att / att.sum(-1, keepdims=True)) @ cache[i, 1, :, :, :t + 1]
        x = x + y.reshape(b, c) @ layer["o"] + layer["bo"]
        h = _ln(x, layer["ln2"]) @ layer["fc"] + layer["bfc"]
        x = x + (h * 0.5 * (1.0 + np.tanh(0.7978845608 * (h + 0.044715 * h ** 3)))) @ layer["p"] + layer["bp"]
    return _ln(x, weights["lnf"]) @ weights["head"]


def _per_call(fn, n: int, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def bench_floor(cfg: dict, ours: dict, repeat: int) -> None:
    weights = _weights(cfg, np.random.default_rng(0))
    c, nl, nh = int(cfg["n_embd"]), int(cfg["n_layer"]), int(cfg["n_head"])
    block = int(cfg["block_size"])
    params = sum(a.size for layer in weights["layers"] for a in (layer["qkv"], layer["o"], layer["fc"], layer["p"]))
    params += weights["head"].size
    print(f"\n### 2. The floor: {nl} blocks x {c} wide, head {weights['head'].shape[1]}: {params / 1e6:.2f} M weights "
          f"a token ({params * 4 / 1e6:.1f} MB fp32), best of {repeat}\n")
    print("| rows a step | our model call (fp32) | plain matmul chain | plain decoder, cache in place | "
          "ours / chain | ours / plain decoder | tokens/s ours : plain decoder |")
    print("|---|---|---|---|---|---|---|")
    for rows, name, takes in ((1, "1 row (guidance off)", 1), (2, "2 rows (1 take, guidance)", 1),
                              (4, "4 rows (2 takes together)", 2)):
        r = ours[("fp32", name)]
        steps = r["tokens"] / takes  # calls, one a step (new windows aside)
        call = r["step"] / max(steps, 1)
        ctx = int(round(r["context"]))
        x = np.random.default_rng(1).standard_normal((rows, c)).astype(np.float32)
        chain = _per_call(lambda x=x: matmul_chain(weights, x), 200, repeat)
        cache = np.zeros((nl, 2, rows, nh, block, c // nh), np.float32)
        cache[:, :, :, :, :ctx] = np.random.default_rng(2).standard_normal(cache[:, :, :, :, :ctx].shape)
        plain = _per_call(lambda x=x, cache=cache, ctx=ctx: plain_step(weights, cache, x, ctx, nh), 100, repeat)
        print(f"| {rows} (context {ctx}) | {call * 1e3:.2f} ms | {chain * 1e3:.3f} ms | {plain * 1e3:.2f} ms | "
              f"{call / chain:.1f}x | {call / plain:.1f}x | {r['tokens'] / r['wall']:.0f} : "
              f"{takes / plain:.0f} |")


# ---- window schedule ---------------------------------------------------------------------------


def _recorded(gen: Generator, tl, seed: int) -> list[tuple[int, float, float, float]]:
    """The entries (token and conditioning) the model saw, step by step, generating ``tl``."""
    seen: list[tuple[int, float, float, float]] = []
    real = gen._run

    def record(ids, val, aro, off, cache):
        if ids.shape[1] == 1:
            seen.append((int(ids[0, 0]), float(val[0, 0]), float(aro[0, 0]), float(off[0, 0])))
        return real(ids, val, aro, off, cache)

    gen._run = record  # type: ignore[method-assign]
    try:
        gen.generate(tl[0], tl[1], tl[2], SamplingOptions(seed=seed))
    finally:
        gen._run = real  # type: ignore[method-assign]
    return seen


def nll(gen: Generator, entries: list[tuple[int, float, float, float]], window: int) -> tuple[float, int]:
    """Total negative log-likelihood of each next token, teacher-forced through the decoder's
    schedule: windows of at most ``window - 1`` entries, each new one from the last half."""
    ids = np.array([e[0] for e in entries])
    cond = np.array([e[1:] for e in entries], np.float32)
    total, count, lo, start = 0.0, 0, 0, 0
    while True:
        hi = min(len(entries), lo + window - 1)
        logits = gen._run(ids[None, lo:hi], cond[None, lo:hi, 0], cond[None, lo:hi, 1], cond[None, lo:hi, 2],
                          gen._empty_cache(1))
        x = logits[0].astype(np.float64)
        m = x.max(-1, keepdims=True)
        logp = x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))
        for j in range(start, hi - 1):
            total -= logp[j - lo, ids[j + 1]]
            count += 1
        if hi >= len(entries):
            return total, count
        start = hi - 1
        lo = start - window // 2 + 1


def bench_windows(tl, threads: int, repeat: int) -> None:
    gens = {p: Generator.load(threads=threads, precision=p) for p in ("fp32", "int8")}
    fp32 = gens["fp32"]
    pieces = [_recorded(fp32, timeline(tl[1], seed=10 + k), seed=k) for k in range(2)]
    cuts, dur, moods = tl
    best: dict = {}
    for _ in range(repeat):
        for prec, g in gens.items():
            for window in (512, 384, 256, 128):
                t0 = time.perf_counter()
                r = g.generate(cuts, dur, moods, SamplingOptions(seed=1, context=window))
                wall = time.perf_counter() - t0
                if (prec, window) not in best or wall < best[(prec, window)][0]:
                    best[(prec, window)] = (wall, len(r.tokens))
    print(f"\n### 3. Window schedule (one take with guidance, {dur:.0f} s; NLL on {sum(len(p) for p in pieces)} tokens "
          f"of two {dur:.0f} s pieces)\n")
    print("| window (tokens) | fp32 x real time | int8 x real time | speed-up (fp32, int8) | NLL nats/token | NLL change |")
    print("|---|---|---|---|---|---|")
    base = None
    for window in (512, 384, 256, 128):
        t, n = map(sum, zip(*(nll(fp32, p, window) for p in pieces)))
        base = t / n if base is None else base
        f, q = best[("fp32", window)][0], best[("int8", window)][0]
        print(f"| {window}{' (default)' if window == 512 else ''} | {dur / f:.1f}x | {dur / q:.1f}x | "
              f"{best[('fp32', 512)][0] / f:.2f}x, {best[('int8', 512)][0] / q:.2f}x | {t / n:.4f} | {t / n - base:+.4f} |")


# ---- before / after ---------------------------------------------------------------------------

_SNIPPET = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from emsync_plugin.mood import SceneMood
from emsync_plugin.music.decoding import SamplingOptions
from emsync_plugin.music.generator import Generator
spec = json.loads(sys.argv[2])
moods = [SceneMood(*m) for m in spec["moods"]]
g = Generator.load(threads=spec["threads"], precision=spec["precision"])
g.generate([2.0], 4.0, [SceneMood(0, 0.0, 4.0, 0.0, 0.0)])
t, c = time.perf_counter(), time.process_time()
r = g.generate(spec["cuts"], spec["duration"], moods, SamplingOptions(seed=1))
print(json.dumps({"wall": time.perf_counter() - t, "cpu": time.process_time() - c, "tokens": len(r.tokens)}))
"""


def bench_before(rev: str, tl, threads: int, repeat: int) -> None:
    cuts, dur, moods = tl
    spec = {"cuts": cuts, "duration": dur, "threads": threads,
            "moods": [[m.index, m.start, m.end, m.valence, m.arousal] for m in moods]}
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "emsync_plugin", "onnx_models"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        best: dict = {}
        for _ in range(repeat):
            for prec in ("fp32", "int8"):
                for name, where in ((rev, tmp), ("this tree", str(REPO))):
                    out = subprocess.run([sys.executable, "-c", _SNIPPET, where, json.dumps({**spec, "precision": prec})],
                                         check=True, capture_output=True, text=True, env={**os.environ, "EMSYNC_NO_PROGRESS": "1"})
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    if (prec, name) not in best or r["wall"] < best[(prec, name)]["wall"]:
                        best[(prec, name)] = r
    print(f"\n### 4. Before and after: one take with guidance, {dur:.0f} s, {threads} thread(s), best of {repeat}\n")
    print("| build | code | tokens | seconds | x real time | speed-up | CPU seconds | speed-up in CPU time |")
    print("|---|---|---|---|---|---|---|---|")
    for prec in ("fp32", "int8"):
        base, base_cpu = best[(prec, rev)]["wall"], best[(prec, rev)]["cpu"]
        for name in (rev, "this tree"):
            r = best[(prec, name)]
            print(f"| {prec} | {name} | {r['tokens']} | {r['wall']:.2f} | {dur / r['wall']:.1f}x | {base / r['wall']:.2f}x | "
                  f"{r['cpu']:.2f} | {base_cpu / r['cpu']:.2f}x |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=180.0, help="timeline length (default 180)")
    p.add_argument("--threads", type=int, default=1, help="threads for ONNX Runtime and BLAS (default 1)")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--before", metavar="REV", help="also time this git revision's generator (e.g. c056695)")
    p.add_argument("--skip-windows", action="store_true", help="leave out the window-schedule table")
    args = p.parse_args(argv)
    os.environ.setdefault("EMSYNC_NO_PROGRESS", "1")
    tl = timeline(args.seconds)
    print(f"CPU: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    ours = bench_ours(tl, args.threads, args.repeat)
    bench_floor(Generator.load(threads=args.threads).config, ours, args.repeat)
    if not args.skip_windows:
        bench_windows(tl, args.threads, args.repeat)
    if args.before:
        bench_before(args.before, tl, args.threads, args.repeat)


if __name__ == "__main__":
    main()
