"""How fast the music's mood follows a cut: is the new scene's mood audible in its first second?

Two scenes of 8 s, one cut at 8 s, for pairs of moods far apart in arousal (and valence), several
seeds. For the generated notes (the model with the shipped decoder) and the default style's
arrangement, it prints per pair: onsets per second (chords merged, drums apart) and mean
velocity in the last 2 s before the cut, the first second after it and the rest of the new scene,
and the share of runs where the first second already moved the right way (by at least half of
the way the rest of the scene moves).

    python benchmarks/bench_transitions.py [--seeds 5] [--style cinematic] [--model PATH]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emsync_plugin.mood import SceneMood  # noqa: E402
from emsync_plugin.music.generator import Generator  # noqa: E402
from emsync_plugin.music.groups import instrument_group  # noqa: E402
from emsync_plugin.music.pulse import merge_onsets  # noqa: E402
from emsync_plugin.music.styles import DEFAULT_STYLE, apply_style  # noqa: E402
from emsync_plugin.options import ScoreOptions  # noqa: E402

CUT, DURATION = 8.0, 16.0
#: (name, (valence, arousal) before, (valence, arousal) after)
PAIRS = (
    ("happy -> neutral calm", (0.8, 0.8), (0.0, -0.7)),
    ("tense -> calm", (-0.6, 0.8), (0.3, -0.8)),
    ("calm -> tense", (0.3, -0.8), (-0.6, 0.8)),
    ("sad calm -> happy", (-0.8, -0.6), (0.8, 0.8)),
)


def windows(midi, drums: bool) -> list[tuple[float, float]]:
    """(onsets per second, mean velocity) before the cut, in the first second after, in the rest."""
    notes = [n for i in midi.instruments for n in i.notes if (instrument_group(i) == "drums") == drums]
    out = []
    for a, b in ((CUT - 2.0, CUT), (CUT, CUT + 1.0), (CUT + 1.0, DURATION - 2.5)):
        inside = [n for n in notes if a <= n.start < b]
        rate = len(merge_onsets([n.start for n in inside])) / (b - a)
        out.append((rate, float(np.mean([n.velocity for n in inside])) if inside else 0.0))
    return out


def moved(before: float, first: float, rest: float) -> bool:
    """The first second went at least half of the way from ``before`` to ``rest``."""
    return abs(rest - before) < 1e-9 or (first - before) / (rest - before) >= 0.5


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--style", default=DEFAULT_STYLE)
    ap.add_argument("--model", help="a generator.onnx other than the shipped one")
    args = ap.parse_args(argv)
    gen = Generator.load(args.model) if args.model else Generator.load()
    print(f"{'pair':24} {'part':9} {'onsets/s before | 1st s | rest':34} {'velocity before | 1st s | rest':32} moved in 1 s")
    for name, a, b in PAIRS:
        moods = (SceneMood(1, 0.0, CUT, *a), SceneMood(2, CUT, DURATION, *b))
        rows: dict[str, list] = {"notes": [], "styled": [], "drums": []}
        for seed in range(args.seeds):
            midi = gen.generate((CUT,), DURATION, moods, ScoreOptions(seed=seed).sampling()).midi
            styled = apply_style(midi, args.style, (CUT,), DURATION, moods, seed=seed)
            rows["notes"].append(windows(midi, False))
            rows["styled"].append(windows(styled, False))
            rows["drums"].append(windows(styled, True))
        for part, runs in rows.items():
            r = np.array(runs)  # seeds x 3 windows x (rate, velocity)
            rate, vel = r[..., 0].mean(0), r[..., 1].mean(0)
            ok_rate = np.mean([moved(*x[:, 0]) for x in r])
            ok_vel = np.mean([moved(*x[:, 1]) for x in r])
            print(f"{name:24} {part:9} {rate[0]:5.2f} | {rate[1]:5.2f} | {rate[2]:5.2f}{'':16} "
                  f"{vel[0]:5.1f} | {vel[1]:5.1f} | {vel[2]:5.1f}{'':13} density {ok_rate:.0%}, velocity {ok_vel:.0%}")


if __name__ == "__main__":
    main()
