#!/usr/bin/env python3
"""How much of the valence label the training data itself puts in a window's music (issue 14).

Draws ``--windows`` training windows from the corpus cache's held-out pieces, exactly as
``train.py`` makes them (mode flips, bent clocks, labels normalised as the given model's), and
compares each window's mean scene label with the valence of its whole music by the label
formula, as the benchmark's grid measures a piece. A model that learned the music given its
labels would follow valence about this well; the gap to the model alone is what it fails to
learn. Needs the corpus cache (``python -m onnx_models.training.prepare_data``), not torch.

    python benchmarks/label_ceiling.py [--model onnx_models/generator.onnx] [--flip 0.8] [--centre mode]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from scipy.stats import spearmanr

from emsync_plugin.music.features import LabelStats, labels, measure
from emsync_plugin.music.vocab import Vocab
from onnx_models.training import dataset
from onnx_models.training.dataset import iter_pieces, make_example

BINS = ((-1.0, -0.6), (-0.6, -0.2), (-0.2, 0.2), (0.2, 0.6), (0.6, 1.0))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("onnx_models/generator.onnx"), help="whose vocabulary and label statistics")
    p.add_argument("--data", type=Path, default=Path("onnx_models/training/cache"))
    p.add_argument("--windows", type=int, default=400)
    p.add_argument("--flip", type=float, default=0.8, help="train.py --mode-flip")
    p.add_argument("--centre", choices=("corpus", "mode"), default="mode", help="train.py --valence-centre")
    args = p.parse_args(argv)
    meta = {m.key: m.value for m in onnx.load(str(args.model), load_external_data=False).metadata_props}
    vocab = Vocab.from_json(meta["emsync.vocab"])
    stats_dict = json.loads(meta["emsync.label_stats"])
    if args.centre == "mode":
        stats_dict["mean"]["mode"] = 0.0
    stats = LabelStats.from_dict(stats_dict)
    dataset.MODE_FLIP_PROB = args.flip
    pieces = list(iter_pieces(args.data, "heldout"))
    rng = np.random.default_rng(0)
    fed, heard, mode = [], [], []
    while len(fed) < args.windows:
        ex = make_example(pieces[rng.integers(len(pieces))], rng, vocab, stats, seq_len=512)
        notes = vocab.decode([int(t) for t in ex["tokens"] if t >= 0]) if ex is not None else []
        end = max((n.end for n in notes), default=0.0)
        if len(notes) < 8 or end < 6.0:
            continue
        f = measure(notes, 0.0, end)
        fed.append(float(np.mean(ex["valence"])))
        heard.append(labels(f, stats)[0])
        mode.append(f.mode)
    fed_a, heard_a, mode_a = np.array(fed), np.array(heard), np.array(mode)
    print(f"{len(fed_a)} windows, label sd {fed_a.std():.2f}: Spearman(mean scene label, window valence) "
          f"{spearmanr(fed_a, heard_a)[0]:.2f}, with the window's mode alone {spearmanr(fed_a, mode_a)[0]:.2f}, "
          f"slope {np.polyfit(fed_a, heard_a, 1)[0]:.2f}")
    print("| mean scene label | windows | window valence | minor (KK) |\n|---|---|---|---|")
    for lo, hi in BINS:
        m = (fed_a >= lo) & (fed_a < hi)
        if m.any():
            print(f"| {lo:+.1f} .. {hi:+.1f} | {m.sum()} | {heard_a[m].mean():+.2f} | {(mode_a[m] < 0).mean():.0%} |")


if __name__ == "__main__":
    main()
