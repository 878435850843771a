"""The committed held-out set the generator benchmark runs from (``benchmarks/data/heldout/``).

    python benchmarks/heldout_set.py          # rebuild it (needs the prepared corpus cache)

Drawn from the corpus's fixed held-out split (``onnx_models/training/prepare_data.py``; never
trained on), so the benchmark needs neither the cache nor music21's corpus:

* ``windows.npz``: 24 s windows of held-out pieces (notes as ``[group, pitch, start, end]``
  rows, ``offsets`` delimiting the windows, ``ids`` the pieces) and their labels by the
  training formula; the music statistics compare with these.
* ``timelines.json``: held-out timelines: a held-out piece's span cut into scenes drawn like
  the training boundaries (log-normal, median 5 s, 2-12 s), on a video frame rate, each
  scene's mood the labels of the piece's own notes in it (so moods change at cuts as real
  music's do); ``source`` is the piece's id (``path#tune``), ``from`` where the span starts.

Made from whatever the cache holds: with an interrupted ``prepare_data`` (no index yet), the
held-out pieces of the files parsed so far (``made_from`` in ``timelines.json`` counts them).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "data" / "heldout"
RATES = (24000 / 1001, 24.0, 25.0, 30000 / 1001, 30.0, 50.0)


def load_windows(directory: Path = HERE):
    """The held-out windows as lists of :class:`Note`, and their (valence, arousal) label lists."""
    from emsync_plugin.music.vocab import Note

    with np.load(directory / "windows.npz") as z:
        notes, offsets, labs = z["notes"], z["offsets"], z["labels"]
    wins = [[Note(int(g), int(p), float(a), float(b)) for g, p, a, b in notes[offsets[i]:offsets[i + 1]]]
            for i in range(len(offsets) - 1)]
    return wins, (labs[:, 0].tolist(), labs[:, 1].tolist())


def load_timelines(directory: Path = HERE) -> list[dict]:
    """The held-out timelines: dicts with ``duration``, ``cuts``, ``moods`` ([start, end, v, a]), ``source``."""
    return json.loads((directory / "timelines.json").read_text())["timelines"]


def _windows(pieces, stats, n, length, rng):
    from emsync_plugin.music.features import labels, measure
    from emsync_plugin.music.vocab import Note

    rows, offsets, labs, ids = [], [0], [], []
    for _ in range(n * 5):
        piece = pieces[rng.integers(len(pieces))]
        p = np.asarray(piece, float)
        end = p[:, 3].max()
        if end < length:
            continue
        t0 = rng.uniform(0, end - length)
        sel = p[(p[:, 2] >= t0) & (p[:, 2] < t0 + length)]
        if not len(sel):
            continue
        w = np.column_stack([sel[:, 0], sel[:, 1], sel[:, 2] - t0, np.minimum(sel[:, 3], t0 + length) - t0])
        rows.append(w)
        offsets.append(offsets[-1] + len(w))
        labs.append(labels(measure([Note(int(g), int(q), a, b) for g, q, a, b in w], 0, length), stats))
        ids.append(piece.id)
        if len(labs) >= n:
            break
    return (np.concatenate(rows).astype(np.float32), np.array(offsets, np.int64), np.array(labs, np.float32),
            np.array(ids))


def _timelines(pieces, stats, n, rng):
    from emsync_plugin.music.features import labels, measure
    from emsync_plugin.music.vocab import Note

    out = []
    long = [p for p in pieces if p.seconds >= 40.0]
    for _ in range(n * 5):
        piece = long[rng.integers(len(long))]
        p = np.asarray(piece, float)
        dur = float(min(piece.seconds, rng.uniform(30, 60)))
        t0 = float(rng.uniform(0, piece.seconds - dur))
        rate = float(rng.choice(RATES))
        bounds = [0.0]
        while bounds[-1] < dur - 2.0:
            bounds.append(bounds[-1] + float(np.clip(5.0 * np.exp(0.5 * rng.standard_normal()), 2.0, 12.0)))
        cuts = [round(b * rate) / rate for b in bounds[1:-1] if b < dur - 2.0]
        if len(cuts) < 2:
            continue
        edges = [0.0, *cuts, dur]
        moods = []
        for a, b in zip(edges[:-1], edges[1:]):
            sel = p[(p[:, 2] >= t0 + a) & (p[:, 2] < t0 + b)]
            notes = [Note(int(g), int(q), s - t0 - a, min(e, t0 + b) - t0 - a) for g, q, s, e in sel]
            v, ar = labels(measure(notes, 0, b - a), stats) if notes else (0.0, -0.8)
            moods.append([round(a, 4), round(b, 4), round(float(v), 3), round(float(ar), 3)])
        out.append({"duration": round(dur, 4), "rate": round(rate, 4), "cuts": [round(c, 4) for c in cuts],
                    "moods": moods, "source": piece.id, "from": round(t0, 3)})
        if len(out) >= n:
            break
    return out


def heldout_pieces(cache: Path) -> list:
    """The held-out pieces of the prepared cache; of the files parsed so far if it has no index
    yet (an interrupted ``prepare_data``: every file's held-out pieces are final once parsed)."""
    from onnx_models.training import prepare_data as pd
    from onnx_models.training.dataset import Piece, iter_pieces

    if (cache / "index.json").is_file():
        return list(iter_pieces(cache, "heldout"))
    files = [(rel, path) for rel, path in pd.corpus_files() if (cache / pd.npz_name(rel)).exists()]
    index, notes = pd.build_index(files, cache)
    return [Piece(p["id"], p["name"], p["collection"], p["split"], float(p["qpm"]), notes[p["id"]])
            for p in index["pieces"] if p["split"] == "heldout"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, default=ROOT / "onnx_models/training/cache")
    p.add_argument("--out", type=Path, default=HERE)
    p.add_argument("--windows", type=int, default=200)
    p.add_argument("--timelines", type=int, default=20)
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from emsync_plugin.music.features import LabelStats
    from emsync_plugin.music.generator import Generator

    stats = LabelStats.from_dict(Generator.load().label_stats)  # the statistics the benchmark measures with
    pieces = heldout_pieces(args.cache)
    if not pieces:
        raise SystemExit(f"no prepared corpus at {args.cache}: run python -m onnx_models.training.prepare_data first")
    args.out.mkdir(parents=True, exist_ok=True)
    notes, offsets, labs, ids = _windows(pieces, stats, args.windows, 24.0, np.random.default_rng(0))
    np.savez_compressed(args.out / "windows.npz", notes=notes, offsets=offsets, labels=labs, ids=ids)
    tl = _timelines(pieces, stats, args.timelines, np.random.default_rng(1))
    made = {"pieces": len(pieces), "collections": dict(Counter(p.collection for p in pieces).most_common())}
    (args.out / "timelines.json").write_text(json.dumps({"made_from": made, "timelines": tl}, indent=1) + "\n")
    print(f"{len(offsets) - 1} windows, {len(tl)} timelines ({sum(len(t['cuts']) for t in tl)} cuts) in {args.out}")


if __name__ == "__main__":
    main()
