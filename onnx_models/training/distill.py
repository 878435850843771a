"""Teacher data for guidance distillation: the guided decoder's own music, with what it was told.

    python -m onnx_models.training.distill --model /tmp/v11/generator.onnx --out DIR --pieces 600 --worker 0

The decoder's emotion guidance and mode steering make valence audible that the model alone
barely follows (onnx_models/README.md, "Evaluation"). Training on the guided decoder's output,
with the valence, arousal and offset each token was fed with, moves that control into the
weights (guidance distillation); ``train.py --teacher DIR`` mixes these windows with the
corpus's. Each timeline is random (scenes of 2-12 s, 16-60 s in all); half of them keep one
mood throughout (as the benchmark's grid does), the others draw one per scene. Moods are
uniform in [-0.9, 0.9]. Two takes (seeds) per timeline, decoded with the default
:class:`SamplingOptions` (guidance, steering, chord on every cut).

Output ``DIR/teacher-<worker>.npz``: ``tokens`` int32 (BOS first; pieces concatenated),
``cond`` float32 ``(N, 3)`` (valence, arousal, offset fed with each token; the last token of a
piece, never fed, repeats the one before), ``offsets`` int64 ``(P + 1,)``, ``bounds`` float32
(each piece's boundaries in seconds, as the model was told them: cuts and final chord) with ``bound_offsets`` ``(P + 1,)``.
The file is rewritten every 20 pieces, so a run can be stopped at any time.
Worker ``w`` draws from seed ``1000 + w``, so workers are reproducible and never overlap.

``--model-alone --keep-agreeing`` makes the student its own teacher instead (rejection
sampling): the model alone (guidance 0, no mode steering) writes the takes, and a take is kept
only when the label formula (the model's own Krumhansl-Kessler measure, not the benchmark's
independent key finders) hears the sign of the valence it was told, in the whole and in the mode,
(``--per-scene``) in each scene of 4 s or more as well, (``--arousal-margin``) an arousal
near the one it was told, and (``--clarity``) in a clear key. Training on the kept takes
teaches the model to hold, on its own continuations, the mode it is asked for.
"""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emsync_plugin.mood import SceneMood
from emsync_plugin.music import generator as gen_mod
from emsync_plugin.music.decoding import SamplingOptions
from emsync_plugin.music.features import Features, LabelStats, key_correlations, labels, measure
from emsync_plugin.music.generator import Generator
from emsync_plugin.music.vocab import Vocab

from .dataset import mode_tokens, note_on_pitches

logger = logging.getLogger("emsync.distill")

RATE = 25.0
SCENES = (2.0, 12.0)
LENGTH = (16.0, 60.0)
MOOD = 0.9
TAKES = 2


def random_timeline(rng: np.random.Generator) -> tuple[list[float], float, list[SceneMood]]:
    """Cuts, duration and moods of one random timeline (frame-exact at 25 fps)."""
    target = rng.uniform(*LENGTH)
    edges = [0.0]
    while edges[-1] < target - SCENES[0]:
        edges.append(round((edges[-1] + rng.uniform(*SCENES)) * RATE) / RATE)
    duration = edges[-1]
    one = rng.random() < 0.5
    v, a = rng.uniform(-MOOD, MOOD, 2)
    moods = []
    for i, (s, e) in enumerate(zip(edges[:-1], edges[1:])):
        if not one:
            v, a = rng.uniform(-MOOD, MOOD, 2)
        moods.append(SceneMood(i, s, e, float(v), float(a)))
    return edges[1:-1], duration, moods


def _recording(log: list[list[tuple[float, float, float]]]):
    """``generator._conditioning`` that also records, per take, what each fed token was told."""
    original = gen_mod._conditioning

    def conditioning(*args, **kwargs):
        cond = original(*args, **kwargs)
        seen: list[tuple[float, float, float]] = []
        log.append(seen)

        def recorded(t_units: int) -> tuple[float, float, float]:
            c = cond(t_units)
            seen.append(c)
            return c

        return recorded

    return conditioning


#: the model alone: no guidance, no mode steering (the decoder's other rules stay)
ALONE = {"guidance": 0.0, "mode_steering": 0.0}
#: a take told a mean valence nearer 0 than this is kept whatever it sounds like
AGREE_FROM = 0.25
#: with ``per_scene``, scenes at least this long (seconds) are judged on their own too
SCENE_FROM = 4.0


@dataclass(frozen=True)
class Keep:
    """Which takes ``--keep-agreeing`` keeps, beyond the sign of their whole valence (:func:`agrees`)."""

    arousal_margin: float | None = None  # arousal at most this far from what it was told
    per_scene: bool = False  # every scene of SCENE_FROM seconds or more on its told side too
    clarity: float | None = None  # best key's correlation (``Features.key_strength``) at least this


def _on_side(f: Features, told_v: float, stats: LabelStats) -> bool:
    """Whether the valence and the mode term of ``f`` are on ``told_v``'s side of 0."""
    valence = labels(f, stats)[0]
    return abs(told_v) < AGREE_FROM or (valence * told_v > 0 and (f.mode - stats.mean["mode"]) * told_v > 0)


def agrees(notes, duration: float, moods: list[SceneMood], stats: LabelStats, keep: Keep = Keep()) -> bool:
    """Whether the label formula hears a take's valence, and its mode term alone, on the side of
    0 it was told (the scenes' duration-weighted mean; takes told less than ``AGREE_FROM``
    always agree there), and the take passes ``keep``'s further tests (``per_scene``: a take
    that holds one mode across scenes told otherwise is not kept)."""
    span = max(duration, 1e-9)
    told_v = sum(m.valence * (m.end - m.start) for m in moods) / span
    told_a = sum(m.arousal * (m.end - m.start) for m in moods) / span
    whole = measure(notes, 0.0, duration)
    if keep.arousal_margin is not None and abs(labels(whole, stats)[1] - told_a) > keep.arousal_margin:
        return False
    if keep.clarity is not None and whole.key_strength < keep.clarity:
        return False
    if not _on_side(whole, told_v, stats):
        return False
    return not keep.per_scene or all(_on_side(measure(notes, m.start, m.end), m.valence, stats)
                                     for m in moods if m.end - m.start >= SCENE_FROM)


def _decode_all(gen: Generator, rng: np.random.Generator, log: list, pieces: int, worker: int, save=None,
                alone: bool = False, keep: Keep | None = None) -> tuple:
    """The takes' tokens, the conditioning fed with each, and their pieces' boundaries (with
    ``keep``, of the takes :func:`agrees` keeps)."""
    tokens, conds, offsets, bounds, bound_offsets = [], [], [0], [], [0]
    stats = LabelStats.from_dict(gen.label_stats)
    t0, drawn, saved = time.time(), 0, 0
    while len(offsets) - 1 < pieces:
        cuts, duration, moods = random_timeline(rng)
        seeds = rng.integers(0, 2**31, TAKES)
        log.clear()
        options = [SamplingOptions(seed=int(s), **(ALONE if alone else {})) for s in seeds]
        results = gen.generate_many(cuts, duration, moods, options)
        told = gen._clock(cuts, duration, SamplingOptions())[1].tolist()  # the cuts and the final chord
        for r, seen in zip(results, log):
            drawn += 1
            if keep is not None and not agrees(r.notes, duration, moods, stats, keep):
                continue
            toks = [gen.vocab.bos, *r.tokens]
            if len(seen) != len(toks) - 1:
                raise RuntimeError(f"{len(seen)} conditionings recorded for {len(toks) - 1} fed tokens")
            tokens.extend(toks)
            conds.extend([*seen, seen[-1]])
            offsets.append(len(tokens))
            bounds.extend(told)
            bound_offsets.append(len(bounds))
        done = len(offsets) - 1
        if done // 20 > saved // 20:
            saved = done
            logger.info("worker %d: %d pieces (of %d drawn), %d tokens, %.0f s", worker, done, drawn, len(tokens),
                        time.time() - t0)
            if save is not None:
                save(tokens, conds, offsets, bounds, bound_offsets)
    return tokens, conds, offsets, bounds, bound_offsets


def _writer(path: Path):
    """Write what was decoded so far, atomically (a long run can be stopped at any time)."""
    def save(tokens, conds, offsets, bounds, bound_offsets) -> None:
        tmp = path.with_name("partial-" + path.name)
        np.savez_compressed(tmp, tokens=np.asarray(tokens, np.int32), cond=np.asarray(conds, np.float32),
                            offsets=np.asarray(offsets, np.int64), bounds=np.asarray(bounds, np.float32),
                            bound_offsets=np.asarray(bound_offsets, np.int64))
        tmp.replace(path)
    return save


def teach(model: Path, out: Path, pieces: int, worker: int, alone: bool = False, keep: Keep | None = None) -> Path:
    """Decode ``pieces`` takes (pairs sharing a timeline) and write them to ``out``."""
    gen = Generator(model, threads=1)
    rng = np.random.default_rng(1000 + worker)
    log: list[list[tuple[float, float, float]]] = []
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"teacher-{worker}.npz"
    save = _writer(path)
    original, gen_mod._conditioning = gen_mod._conditioning, _recording(log)
    try:
        save(*_decode_all(gen, rng, log, pieces, worker, save, alone, keep))
    finally:
        gen_mod._conditioning = original
    return path


@dataclass(frozen=True)
class Teacher:
    """Teacher pieces (:func:`teach`'s files, concatenated) and each piece's key tonic."""

    tokens: np.ndarray
    cond: np.ndarray
    offsets: np.ndarray
    bounds: np.ndarray
    bound_offsets: np.ndarray
    tonics: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1


def load_teacher(directory: Path, vocab: Vocab) -> Teacher:
    """Every ``teacher-*.npz`` in ``directory``; a piece's tonic is the best Krumhansl-Kessler
    key of its note-ons (what :func:`dataset.mode_tokens` needs to flag its thirds and sixths)."""
    parts = [np.load(f) for f in sorted(Path(directory).glob("teacher-*.npz"))]
    if not parts:
        raise SystemExit(f"no teacher-*.npz in {directory}")
    tokens = np.concatenate([z["tokens"] for z in parts]).astype(np.int64)
    cond = np.concatenate([z["cond"] for z in parts])
    offsets, bounds, bound_offsets = [0], [], [0]
    for z in parts:
        offsets.extend((z["offsets"][1:] + offsets[-1]).tolist())
        bound_offsets.extend((z["bound_offsets"][1:] + bound_offsets[-1]).tolist())
        bounds.append(z["bounds"])
    offs = np.asarray(offsets, np.int64)
    on, pitch = note_on_pitches(tokens, vocab)
    pc = pitch % 12
    tonics = np.zeros(len(offs) - 1, np.int64)
    for i in range(len(tonics)):
        sl = slice(offs[i], offs[i + 1])
        hist = np.bincount(pc[sl][on[sl]], minlength=12).astype(np.float64)
        tonics[i] = int(np.argmax(key_correlations(hist))) % 12 if hist.sum() else 0
    return Teacher(tokens, cond, offs, np.concatenate(bounds).astype(np.float64),
                   np.asarray(bound_offsets, np.int64), tonics)


def teacher_example(teacher: Teacher, rng: np.random.Generator, vocab: Vocab, seq_len: int = 512,
                    cap: float = 8.0, start_prob: float = 0.6) -> dict:
    """A training window of a random teacher piece, fed with what the teacher was told: from its
    start (``BOS``, where a piece's mode is chosen) with ``start_prob``, else from a random token."""
    i = int(rng.integers(len(teacher)))
    a, b = int(teacher.offsets[i]), int(teacher.offsets[i + 1])
    n = b - a
    if rng.random() < start_prob or n < 64:
        s = 0
    else:
        s = int(rng.integers(1, max(2, n - seq_len // 2)))
    tok_all = teacher.tokens[a:b]
    unit = vocab.shift_seconds
    shift = (tok_all >= vocab.shift_base) & (tok_all < vocab.shift_end)  # (key tokens come after the shifts)
    after = np.cumsum(np.where(shift, tok_all - vocab.shift_base + 1, 0))  # clock after each token, units
    e = min(n, s + seq_len + 1)
    bounds = np.round(teacher.bounds[teacher.bound_offsets[i]:teacher.bound_offsets[i + 1]] / unit).astype(np.int64)
    j = np.searchsorted(bounds, after[s:e], side="right")
    prev = np.where(j > 0, bounds[np.maximum(j - 1, 0)], 0)
    cond = teacher.cond[a + s:a + e]
    tokens = tok_all[s:e]
    return {
        "tokens": tokens,
        "valence": cond[:, 0],
        "arousal": cond[:, 1],
        "offset": cond[:, 2],
        "since": np.minimum((after[s:e] - prev) * unit, cap).astype(np.float32),
        "mode": mode_tokens(tokens, int(teacher.tonics[i]), vocab),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True, help="the teacher: an exported generator.onnx")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--pieces", type=int, default=600)
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--model-alone", action="store_true", help="decode with guidance 0 and no mode steering")
    p.add_argument("--keep-agreeing", action="store_true",
                   help="keep only the takes whose label-formula valence has the sign they were told")
    p.add_argument("--arousal-margin", type=float, help="with --keep-agreeing, also their arousal at most this far from it")
    p.add_argument("--per-scene", action="store_true",
                   help=f"with --keep-agreeing, also in every scene of {SCENE_FROM:g} s or more")
    p.add_argument("--clarity", type=float,
                   help="with --keep-agreeing, also a best-key correlation (KK) at least this (held-out data: median 0.86)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("emsync_plugin").setLevel(logging.WARNING)
    keep = Keep(args.arousal_margin, args.per_scene, args.clarity) if args.keep_agreeing else None
    path = teach(args.model, args.out, args.pieces, args.worker, args.model_alone, keep)
    logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
