#!/usr/bin/env python3
"""What the key finders hear in the model's own music (issue 14): one table per valence.

The learned generator alone (guidance 0, mode steering 0, no cut guarantee, no fresh-chord
rule) writes ``--takes`` pieces of 24 s (random cuts 2-6 s apart, seeds 400...) at valence -0.8
and +0.8, arousal 0. For each piece, the best key by three profile sets: Krumhansl-Kessler (the
label formula's and the steering's), Temperley-Kostka-Payne and Aarden-Essen (which the decoder
does not use; ``music_stats.PROFILES``). It prints how many pieces each finder calls minor, how
the finders' keys relate where they differ (parallel, relative, a fifth apart, other), and how
often the lowest sounding note at an onset is the key's tonic, in how many pieces the
first 6 s and the rest are in the same mode by KK (does the model hold the mode it chose?), how
clearly the pieces are in any key (KK's best correlation; the held-out windows' median is 0.86)
and in how many the three finders hear the same mode. A model with key tokens states each
scene's key: then also the share of scenes it calls minor, and of scenes heard (KK, Aarden-Essen)
in the mode it stated.

    python benchmarks/key_agreement.py [--model FILE.onnx | --precision int8] [--takes 20]
"""
from __future__ import annotations

import argparse
import collections
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from music_stats import PROFILES  # noqa: E402

from emsync_plugin.mood import SceneMood  # noqa: E402
from emsync_plugin.music.decoding import SamplingOptions  # noqa: E402
from emsync_plugin.music.features import key_correlations, key_profiles  # noqa: E402
from emsync_plugin.music.generator import Generator  # noqa: E402

ALONE: dict = {"guidance": 0.0, "mode_steering": 0.0, "guarantee_cuts": False, "fresh_chords": 0.0, "hold_tonic": False}
SECONDS = 24.0


def best_key(histogram: np.ndarray, profiles) -> tuple[int, str]:
    """The (tonic, mode) whose rotated profile correlates best with the histogram."""
    scores = [(float(np.corrcoef(histogram, np.roll(prof, t))[0, 1]), t, mode)
              for mode, prof in zip(("major", "minor"), profiles) for t in range(12)]
    _, tonic, mode = max(scores)
    return tonic, mode


def relation(a: tuple[int, str], b: tuple[int, str]) -> str:
    """How key ``b`` stands to key ``a``."""
    (ta, ma), (tb, mb) = a, b
    if a == b:
        return "same"
    if ta == tb:
        return "parallel"
    if ma != mb and (tb - ta) % 12 == (3 if ma == "minor" else 9):
        return "relative"
    if ma == mb and (tb - ta) % 12 in (5, 7):
        return "a fifth apart"
    return "other"


def histogram(notes, start: float = 0.0, end: float = SECONDS) -> np.ndarray:
    """Sounding time per pitch class between ``start`` and ``end``."""
    out = np.zeros(12)
    for n in notes:
        out[n.pitch % 12] += max(0.0, min(end, n.end) - max(start, n.start))
    return out


def stated(tokens: list[int], vocab) -> list[tuple[float, bool]]:
    """The (time, major) of each key token in a decoded stream (none without key tokens)."""
    out, now = [], 0
    for t in tokens:
        kind = vocab.kind(t)
        if kind == "shift":
            now += vocab.shift_units(t)
        elif kind == "key":
            out.append((now * vocab.shift_seconds, vocab.key_of(t)[1]))
    return out


def piece(gen: Generator, valence: float, seed: int):
    rng = random.Random(seed)
    cuts, t = [], 0.0
    while (t := t + rng.uniform(2.0, 6.0)) < SECONDS:
        cuts.append(round(t, 2))
    bounds = [0.0, *cuts, SECONDS]
    moods = [SceneMood(i, bounds[i], bounds[i + 1], valence, 0.0) for i in range(len(bounds) - 1)]
    return gen.generate(cuts, SECONDS, moods, SamplingOptions(seed=400 + seed, **ALONE))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="an exported generator .onnx (default: the shipped build)")
    p.add_argument("--precision", default="int8", choices=("int8", "fp32"))
    p.add_argument("--takes", type=int, default=20)
    p.add_argument("--hold-tonic", action="store_true", help="a key-token model keeps its first tonic at cuts (one rule)")
    args = p.parse_args(argv)
    ALONE["hold_tonic"] = args.hold_tonic
    gen = Generator(args.model, threads=1) if args.model else Generator.load(threads=1, precision=args.precision)
    kk = key_profiles()
    finders = {"KK": (kk[0], kk[12]), "Temperley": PROFILES["temperley"], "Aarden-Essen": PROFILES["aarden"]}
    print(f"model: {gen.path.name}, model alone, {args.takes} pieces of {SECONDS:.0f} s per valence\n")
    print("| valence | called minor: KK / Temperley / Aarden-Essen | Temperley's key against KK's | "
          "Aarden-Essen's against KK's | lowest note on the tonic: KK's / Temperley's | mode held after 6 s | "
          "key clarity (KK, median) | finders agree on the mode | stated minor | heard as stated: KK / A-E |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for valence in (-0.8, 0.8):
        minor: collections.Counter = collections.Counter()
        against: dict[str, collections.Counter] = {"Temperley": collections.Counter(), "Aarden-Essen": collections.Counter()}
        on_tonic, clarity, held, agree = [], [], 0, 0
        scenes: collections.Counter = collections.Counter()
        for seed in range(args.takes):
            result = piece(gen, valence, seed)
            notes = result.notes
            marks = stated(result.tokens, gen.vocab)
            for (a, major), (b, _) in zip(marks, [*marks[1:], (SECONDS, True)]):
                h = histogram(notes, a, b)
                scenes.update(["scenes", *["minor"] * (not major)]
                              + [name for name in ("KK", "Aarden-Essen") if h.any()
                                 and (best_key(h, finders[name])[1] == "major") == major])
            whole = histogram(notes)
            keys = {name: best_key(whole, profiles) for name, profiles in finders.items()}
            held += best_key(histogram(notes, 0.0, 6.0), finders["KK"])[1] == best_key(histogram(notes, 6.0), finders["KK"])[1]
            minor.update(name for name, (_, mode) in keys.items() if mode == "minor")
            clarity.append(float(key_correlations(whole).max()))
            agree += len({mode for _, mode in keys.values()}) == 1
            for name in against:
                against[name][relation(keys["KK"], keys[name])] += 1
            onsets = sorted({n.start for n in notes})
            lowest = [min(n.pitch for n in notes if n.start == o or n.start < o < n.end) % 12 for o in onsets]
            on_tonic.append([np.mean([q == keys[name][0] for q in lowest]) for name in ("KK", "Temperley")])
        share = np.mean(on_tonic, axis=0)
        print(f"| {valence:+.1f} | {' / '.join(str(minor[name]) for name in finders)} | "
              f"{', '.join(f'{k} {v}' for k, v in against['Temperley'].most_common())} | "
              f"{', '.join(f'{k} {v}' for k, v in against['Aarden-Essen'].most_common())} | "
              f"{share[0]:.2f} / {share[1]:.2f} | {held} | {np.median(clarity):.2f} | {agree} | "
              + (f"{scenes['minor']}/{scenes['scenes']} | {scenes['KK']} / {scenes['Aarden-Essen']} |"
                 if scenes["scenes"] else "– | – |"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
