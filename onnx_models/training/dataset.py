"""Training examples from the prepared cache: augmented, cut into "scenes", labelled, tokenised.

:func:`iter_pieces` reads the pieces that :mod:`onnx_models.training.prepare_data` cached;
:func:`make_example` turns one piece into one training window:

1. **Augment**: transpose by a random -5..+6 semitones among the shifts that keep every pitch
   in the vocabulary's range (none if none does), and stretch time by a log-uniform factor in
   0.8..1.25; then quantise starts and ends to the vocabulary's shift unit.
2. **Pick a window**: with probability ``start_prob`` (or when the piece is short) the window
   starts at the beginning of the piece and is prefixed with ``BOS``; otherwise it starts at the
   onset of a random note, mid-stream, exactly as that stretch of the whole piece's token
   stream reads (notes already sounding there are released by their ``NOTE_OFF``). Only the
   notes needed for ``seq_len + 1`` tokens are encoded, so long pieces cost no more than
   short ones. A window that reaches the end of the piece ends with ``EOS`` and is shorter.
3. **Pretend there are scene cuts**: boundaries follow each other with gaps drawn from a
   log-normal distribution (median 5 s, sigma 0.5) clipped to 2..12 s, like shot lengths of
   edited video; each boundary snaps to the chord onset (an onset of at least ``chord_notes``
   distinct notes, where the token stream has a ``CHORD`` token) nearest to its target within
   2..12 s of the previous boundary, else to the nearest onset of any kind, else stays on its
   target.
4. **Label every scene** with :func:`emsync_plugin.music.features.labels` measured on the
   notes of that scene (between consecutive boundaries), and give every token its scene's
   valence and arousal; the token at a boundary belongs to the scene it opens.
5. **Offsets**: :func:`emsync_plugin.music.vocab.boundary_offsets`: seconds to the next
   boundary at or after the token, capped at ``cap``; 0 on a boundary. ``since``: seconds
   from the boundary that opened the token's scene (capped at ``cap``; for the loss weights
   only, the model does not see it).

Conditioning (scene and offset) is read on the clock *after* each token: a time shift's
conditioning is that of the instant it moves to. That is where the next token sits and what
the decoder knows when it feeds the token back, so a shift that lands on a cut is fed with
offset 0 and the model's next prediction is the chord. (Reading it at the token's own time,
before the shift, taught the model the opposite: offset 0 on a shift meant "leaving the cut".)

The example is a dict of numpy arrays of one length ``n <= seq_len + 1``: ``tokens`` (int64),
``valence``, ``arousal``, ``offset``, ``since``, ``mode`` (1 on the note-ons that tell major from minor in
the window's key, see :func:`mode_tokens`) and ``time`` (float32; seconds since the window's first
token), plus ``boundaries`` (float32, the boundary times inside the window, same clock).

    python -m onnx_models.training.dataset --bench [--cache DIR] [--n 2000]

measures the example throughput on the cache and summarises the labels it produces.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from emsync_plugin.music.features import LabelStats, key_correlations, labels, measure
from emsync_plugin.music.vocab import Note, Vocab, boundary_offsets

logger = logging.getLogger("emsync.dataset")

DEFAULT_CACHE = Path(__file__).resolve().parent / "cache"
TRANSPOSE = (-5, 6)
STRETCH = (0.8, 1.25)
GAP_MEDIAN, GAP_SIGMA, GAP_RANGE = 5.0, 0.5, (2.0, 12.0)
START_PROB = 0.1
WARP, WARP_PROB = 0.4, 0.8  # boundaries move up to this many seconds off the music's onsets (see _bend)
MODE_FLIP_PROB, MODE_MIN_STRENGTH = 0.5, 0.6  # windows whose scenes may change mode (see _flip_modes)
WHOLE_FLIP_PROB = 0.0  # of the flipped windows, the share whose scenes all flip together (a held mode)
FIRST_MODE_BOOST = 1.0  # the first third or sixth of each scene weighs this many times a later one (see _first_in_scene)
MODULATE_PROB = 0.0  # the chance that a scene after the first moves to a new key (see _modulate)
WINDOW_MODE = False  # label each scene with the whole window's mode, in the scene's flip state (see _window_modes)


@dataclass(frozen=True, eq=False)
class Piece:
    """One cached piece: ``notes`` is float32 ``(N, 4)`` ``[group, pitch, start_s, end_s]``
    sorted by start. ``np.asarray(piece)`` gives the notes."""

    id: str
    name: str
    collection: str
    split: str
    qpm: float
    notes: np.ndarray

    @property
    def seconds(self) -> float:
        return float(self.notes[:, 3].max()) if len(self.notes) else 0.0

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.notes, dtype=dtype)

    def __len__(self) -> int:
        return len(self.notes)


def read_index(cache_dir: Path | str) -> dict:
    return json.loads((Path(cache_dir) / "index.json").read_text())


def iter_pieces(cache_dir: Path | str = DEFAULT_CACHE, split: str | None = "train") -> Iterator[Piece]:
    """The cached pieces of ``split`` (``"train"``, ``"heldout"``; None for all), in index
    order; each source file's ``.npz`` is read once."""
    cache_dir = Path(cache_dir)
    by_file: dict[str, list[dict]] = defaultdict(list)
    for p in read_index(cache_dir)["pieces"]:
        if split is None or p["split"] == split:
            by_file[p["file"]].append(p)
    for name, entries in by_file.items():
        with np.load(cache_dir / name, allow_pickle=False) as z:
            notes, offsets = z["notes"], z["offsets"]
        for p in entries:
            r = p["row"]
            yield Piece(p["id"], p["name"], p["collection"], p["split"], float(p["qpm"]),
                        notes[offsets[r]:offsets[r + 1]])


def load_label_stats(cache_dir: Path | str = DEFAULT_CACHE) -> LabelStats:
    return LabelStats.from_dict(json.loads((Path(cache_dir) / "stats.json").read_text())["label_stats"])


# ------------------------------------------------------------------------------------------
def _augment(notes: np.ndarray, rng: np.random.Generator, vocab: Vocab) -> np.ndarray:
    arr = np.array(notes, dtype=np.float64)
    lo, hi = arr[:, 1].min(), arr[:, 1].max()
    ks = [k for k in range(TRANSPOSE[0], TRANSPOSE[1] + 1) if lo + k >= vocab.pitch_min and hi + k <= vocab.pitch_max]
    k = int(rng.choice(ks)) if ks else 0
    stretch = math.exp(rng.uniform(math.log(STRETCH[0]), math.log(STRETCH[1])))
    arr[:, 1] += k
    arr[:, 2:] *= stretch
    return arr


def _quantise(arr: np.ndarray, unit: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and end steps as :meth:`Vocab.encode` rounds them (a note lasts >= 1 step)."""
    a = np.round(arr[:, 2] / unit).astype(np.int64)
    b = np.maximum(a + 1, np.round(arr[:, 3] / unit).astype(np.int64))
    return a, b


def _draw_gap(rng: np.random.Generator) -> float:
    g = GAP_MEDIAN * math.exp(GAP_SIGMA * rng.standard_normal())
    return min(GAP_RANGE[1], max(GAP_RANGE[0], g))


def _nearest(cands: np.ndarray, lo: float, hi: float, target: float) -> float | None:
    i, j = np.searchsorted(cands, lo, side="right"), np.searchsorted(cands, hi, side="right")
    if i >= j:
        return None
    c = cands[i:j]
    return float(c[np.argmin(np.abs(c - target))])


def _carried_over(group: np.ndarray, pitch: np.ndarray, sa: np.ndarray, sb: np.ndarray, t0: int) -> np.ndarray:
    """Indices of the notes before a window starting at step ``t0`` that its tokens depend on.

    Notes still sounding at ``t0`` (or ending on it) give the window its first NOTE_OFFs. A
    note of the same group and pitch that overlaps one of those also matters: the encoder
    releases a re-struck key, so an earlier unison can end the sound early and suppress a later
    NOTE_OFF. Those are added until nothing overlaps; notes of a key that all ended before the
    earliest kept one leave that key silent, as it is in the crop.
    """
    inc = sb >= t0
    if not inc.any():
        return np.zeros(0, np.int64)
    keys = group * 256 + pitch
    uk, inv = np.unique(keys, return_inverse=True)
    big = np.iinfo(np.int64).max
    while True:
        lo = np.full(len(uk), big, dtype=np.int64)
        np.minimum.at(lo, inv[inc], sa[inc])
        new = ~inc & (sb >= lo[inv])
        if not new.any():
            return np.flatnonzero(inc)
        inc |= new


def make_example(piece, rng: np.random.Generator, vocab: Vocab, stats: LabelStats,
                 seq_len: int = 512, cap: float = 8.0, start_prob: float | None = None) -> dict | None:
    """One training window of at most ``seq_len + 1`` tokens from ``piece`` (a :class:`Piece`
    or an ``(N, 4)`` array), with per-token valence, arousal and boundary offset; None when the
    piece has no notes. The steps are in the module docstring. ``start_prob``: ``START_PROB``
    unless given (read at the call, so that ``train.py --start-prob`` reaches it)."""
    start_prob = START_PROB if start_prob is None else start_prob
    notes = np.asarray(piece, dtype=np.float64)
    if notes.ndim != 2 or notes.shape[0] == 0:
        return None
    unit = vocab.shift_seconds
    want = seq_len + 1
    arr = _augment(notes, rng, vocab)
    sa, sb = _quantise(arr, unit)
    order = np.lexsort((arr[:, 1], arr[:, 0], sa))
    arr, sa, sb = arr[order], sa[order], sb[order]
    n = len(arr)
    group = arr[:, 0].astype(np.int64)
    pitch = arr[:, 1].astype(np.int64)

    # ---- the window: from the start (BOS) or from a random note's onset --------------------
    budget = int(0.6 * want) + 16  # notes to encode; each gives an ON and an OFF, plus shifts
    from_start = n <= budget // 2 or rng.random() < start_prob
    i0 = 0 if from_start else int(rng.integers(0, max(1, n - budget // 2)))
    t0 = 0 if from_start else int(sa[i0])
    while True:
        i1 = min(n, i0 + budget)
        before = _carried_over(group[:i0], pitch[:i0], sa[:i0], sb[:i0], t0)
        idx = np.concatenate([before, np.arange(i0, i1)])
        base = int(sa[idx].min()) if not from_start else 0
        need = want - (1 if from_start else 0)
        body, body_times, complete = _window_tokens(vocab, group, pitch, sa, sb, idx, base, t0, i1, n)
        if len(body) >= need or complete:
            break
        budget *= 2
    tokens, times = _assemble(body, body_times, complete, need, from_start, want, vocab)
    if len(tokens) < 2:
        return None
    times_a, after_a = _clocks(tokens, times, vocab)
    w0, w1 = float(times_a[0]), float(times_a[-1])

    # ---- boundaries, snapped to chord onsets ------------------------------------------------
    rel_start = (sa - base) * unit
    lo_t, hi_t = w0 - GAP_RANGE[1], w1 + max(cap, GAP_RANGE[1]) + GAP_RANGE[1]
    near = (rel_start >= lo_t) & (rel_start <= hi_t)
    steps = sa[near] - base
    keys = np.unique(steps * (len(vocab.groups) * 256) + group[near] * 256 + pitch[near])
    on_steps, counts = np.unique(keys // (len(vocab.groups) * 256), return_counts=True)
    onset_t = on_steps * unit  # the same float expression as the tokens' times
    chord_t = onset_t[counts >= vocab.chord_notes]
    if from_start:
        t = 0.0
    else:
        t = w0 - rng.uniform(0.0, 1.0) * _draw_gap(rng)  # the scene in progress began before
    seg_start = t
    bounds: list[float] = []
    while t <= float(after_a[-1]) + cap:
        target = t + _draw_gap(rng)
        lo, hi = t + GAP_RANGE[0], t + GAP_RANGE[1]
        b = _nearest(chord_t, lo, hi, target)
        if b is None:
            b = _nearest(onset_t, lo, hi, target)
        if b is None:
            b = round(target / unit) * unit
        bounds.append(b)
        t = b

    # ---- the mode (and, with MODULATE_PROB, the key) changes at some cuts ---------------------
    edges = np.asarray([seg_start] + bounds)
    key = _window_key(pitch, sa, sb, idx)
    written, flips, moves = pitch, np.zeros(len(edges), bool), np.zeros(len(edges), np.int64)
    changed, scene_flips = pitch, flips
    if MODE_FLIP_PROB > 0.0 and rng.random() < MODE_FLIP_PROB and key is not None:
        changed, scene_flips = _flip_modes(pitch, sa, key, base, edges, rng, vocab)
    scene_moves = moves
    if MODULATE_PROB > 0.0:
        changed, scene_moves = _modulate(changed, sa, base, edges, rng, vocab)
    if changed is not pitch:
        body, body_times, complete = _window_tokens(vocab, group, changed, sa, sb, idx, base, t0, i1, n)
        new = _assemble(body, body_times, complete, need, from_start, want, vocab)
        if len(new[0]) >= 2:
            pitch, flips, moves = changed, scene_flips, scene_moves
            tokens, times = new
            times_a, after_a = _clocks(tokens, times, vocab)
            w0, w1 = float(times_a[0]), float(times_a[-1])

    # ---- bend time into the boundaries ---------------------------------------------------------
    new_bounds = list(bounds)
    if WARP > 0.0 and bounds:
        tokens, times, new_bounds = _bend(tokens, times, bounds, rng, vocab, want)
        times_a, after_a = _clocks(tokens, times, vocab)
        w0, w1 = float(times_a[0]), float(times_a[-1])

    # ---- per-scene labels (measured on the notes as written; scenes found on the bent clock) ----
    seg = np.searchsorted(np.asarray(new_bounds), after_a, side="right")  # token -> scene index
    rel_arr = np.column_stack([group, pitch, rel_start, (sb - base) * unit]).astype(np.float64)
    max_len = float((rel_arr[:, 3] - rel_arr[:, 2]).max())
    val = np.zeros(len(times_a), np.float32)
    aro = np.zeros(len(times_a), np.float32)
    modes = _window_modes(written, sa, sb, idx, key, vocab) if WINDOW_MODE and key is not None else None
    for s in np.unique(seg):
        a, b = edges[s], edges[s + 1] if s + 1 < len(edges) else edges[s] + GAP_RANGE[1]
        lo_i = np.searchsorted(rel_arr[:, 2], a - max_len)
        hi_i = np.searchsorted(rel_arr[:, 2], b)
        features = measure(rel_arr[lo_i:hi_i], a, b)
        if modes is not None and not features.empty:
            features = replace(features, mode=modes[int(flips[s])])
        v, ar = labels(features, stats)
        val[seg == s] = v
        aro[seg == s] = ar

    offs = np.asarray(boundary_offsets(after_a.tolist(), new_bounds, cap), dtype=np.float32)
    prev = np.asarray([seg_start] + list(new_bounds))[seg]  # the boundary that opened each token's scene
    since = np.minimum(after_a - prev, cap).astype(np.float32)
    inside = [b - w0 for b in new_bounds if w0 <= b <= w1]
    example = {
        "tokens": np.asarray(tokens, dtype=np.int64),
        "valence": val,
        "arousal": aro,
        "offset": offs,
        "since": since,
        "mode": _first_in_scene(mode_tokens(tokens, key[0], vocab), seg) if key is not None
        else np.zeros(len(tokens), np.float32),
        "time": (times_a - w0).astype(np.float32),
        "boundaries": np.asarray(inside, dtype=np.float32),
    }
    if vocab.keys:
        best = key if key is not None else _window_key(written, sa, sb, idx, min_strength=-1.0)
        tonic, major = best if best is not None else (0, True)
        scene_keys = [vocab.key(major != bool(f), tonic + int(m)) for f, m in zip(flips, moves)]
        example = _state_keys(example, seg, after_a - w0, scene_keys, vocab, want)
    return example


def _state_keys(example: dict, seg: np.ndarray, after: np.ndarray, scene_keys: list[int], vocab: Vocab,
                want: int) -> dict:
    """``example`` with a key token opening each scene: after ``BOS``, after the time shift
    that reaches the scene (where the decoder asks for it), or first in a window that starts
    inside the scene. It takes that token's conditioning and is weighed as a mode decision;
    ``scene_keys[s]``: the token of scene ``s`` (the window's key in the scene's flip state).
    Cut back to ``want`` tokens."""
    tokens = example["tokens"]
    firsts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    at = [i + 1 if (i > 0 or tokens[0] == vocab.bos) else 0 for i in firsts]  # insert before these
    src = np.insert(np.arange(len(tokens)), at, [max(0, a - 1) for a in at])
    new = np.zeros(len(src), bool)
    new[np.asarray(at) + np.arange(len(at))] = True
    out = {k: (a[src] if k != "boundaries" else a) for k, a in example.items()}
    out["tokens"][new] = [scene_keys[min(int(seg[i]), len(scene_keys) - 1)] for i in firsts]
    out["time"][new] = after[[max(0, a - 1) for a in at]]
    out["mode"][new] = 1.0
    return {k: (a[:want] if k != "boundaries" else a) for k, a in out.items()}


def _clocks(tokens: list[int], times: list[float], vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """Each token's time and the clock *after* it (a time shift has moved time on): every
    token is conditioned on the latter, which is when the next token sits and what the decoder
    knows when it feeds the token back."""
    unit = vocab.shift_seconds
    times_a = np.asarray(times, dtype=np.float64)
    tok_a = np.asarray(tokens, dtype=np.int64)
    moved = np.where(tok_a >= vocab.shift_base, tok_a - vocab.shift_base + 1, 0)
    after_a = (np.round(times_a / unit).astype(np.int64) + moved) * unit  # the tokens' own float expression
    return times_a, after_a


def _bend(tokens: list[int], times: list[float], bounds: list[float], rng: np.random.Generator, vocab: Vocab,
          max_len: int) -> tuple[list[int], list[float], list[float]]:
    """Move each boundary by up to ``WARP`` seconds (with probability ``WARP_PROB``) and bend
    the music's clock over the run-up so that its chord still lands on it.

    Real cuts do not fall on the music's beat: the model must learn to stretch or hurry its
    last steps into a cut, which windows whose boundaries sit on the music's own onsets never
    show. The clock is moved by ``D(t)``: constant between run-ups, and ramping linearly from
    the previous boundary's displacement to this one's over the run-up before it (at least
    1 s, at least 4× the change, so no interval is stretched or squeezed by more than 25 %).
    Events keep their order and distinct times stay distinct; time shifts are re-encoded as the
    vocabulary encodes them; moved boundaries keep gaps of 2-12 s. Returns the new tokens, their
    times and the moved boundaries.
    """
    unit = vocab.shift_seconds
    max_u = int(round(WARP / unit))
    lo_gap, hi_gap = int(round(GAP_RANGE[0] / unit)), int(round(GAP_RANGE[1] / unit))
    knots_t, knots_d = [], []
    prev_c, prev_d = None, 0
    moved = []
    for b in bounds:
        c = int(round(b / unit))
        d = int(rng.integers(-max_u, max_u + 1)) if rng.random() < WARP_PROB else 0
        if prev_c is not None:
            gap = c - prev_c
            d = min(max(d, prev_d + lo_gap - gap), prev_d + hi_gap - gap)  # keep the gap in 2-12 s
            ramp = min(gap - 1, max(100, 4 * abs(d - prev_d)))
            if 4 * abs(d - prev_d) > ramp:
                d = prev_d + int(np.sign(d - prev_d)) * (ramp // 4)
        else:
            ramp = max(100, 4 * abs(d))
        knots_t += [c - ramp, c]
        knots_d += [prev_d, d]
        moved.append((c, d))
        prev_c, prev_d = c, d

    def shift_of(u: np.ndarray) -> np.ndarray:
        return np.round(np.interp(u, knots_t, knots_d, left=0.0, right=float(prev_d))).astype(np.int64)

    events = [(tok, int(round(t / unit))) for tok, t in zip(tokens, times) if tok < vocab.shift_base]
    if not events:
        return tokens, times, list(bounds)
    old_u = np.array([u for _, u in events], dtype=np.int64)
    new_u = old_u + shift_of(old_u)
    for i in range(1, len(new_u)):  # order kept, distinct times stay distinct
        if old_u[i] != old_u[i - 1]:
            new_u[i] = max(new_u[i], new_u[i - 1] + 1)
        else:
            new_u[i] = new_u[i - 1]
    where = {}
    for o, n in zip(old_u.tolist(), new_u.tolist()):
        where.setdefault(o, n)
    out_t: list[int] = []
    out_times: list[float] = []
    cur = int(new_u[0])
    for (tok, _), u in zip(events, new_u.tolist()):
        for shift in vocab.shifts(u - cur):
            out_t.append(shift)
            out_times.append(cur * unit)
            cur += vocab.shift_units(shift)
        out_t.append(tok)
        out_times.append(cur * unit)
    new_bounds = [where.get(c, c + d) * unit for c, d in moved]
    return out_t[:max_len], out_times[:max_len], new_bounds


def _window_tokens(vocab: Vocab, group: np.ndarray, pitch: np.ndarray, sa: np.ndarray, sb: np.ndarray,
                   idx: np.ndarray, base: int, t0: int, i1: int, n: int) -> tuple[list[int], list[float], bool]:
    """The tokens (and their times) of the notes ``idx`` from step ``t0`` on, up to the first
    note left out (``i1``); ``complete`` when no note after them was left out."""
    unit = vocab.shift_seconds
    crop = [Note(int(group[i]), int(pitch[i]), (int(sa[i]) - base) * unit, (int(sb[i]) - base) * unit)
            for i in idx]
    tokens, times = vocab.encode(crop)
    first = int(np.searchsorted(np.asarray(times), (t0 - base) * unit - unit / 2))
    if i1 < n:  # tokens at or after the first note left out are incomplete
        cut = int(np.searchsorted(np.asarray(times), (int(sa[i1]) - base) * unit - unit / 2))
        while cut > first and vocab.kind(tokens[cut - 1]) == "shift":
            cut -= 1  # a shift before the cut would lead to the wrong next event
        return tokens[first:cut], times[first:cut], False
    return tokens[first:], times[first:], True


def _assemble(body: list[int], body_times: list[float], complete: bool, need: int, from_start: bool,
              want: int, vocab: Vocab) -> tuple[list[int], list[float]]:
    """``BOS`` (a window from the start), at most ``need`` body tokens, ``EOS`` (a window that
    runs to the end of the piece)."""
    ended = complete and len(body) <= need
    tokens, times = list(body[:need]), list(body_times[:need])
    if from_start:
        tokens = [vocab.bos] + tokens
        times = [0.0] + times
    if ended and len(tokens) < want:
        tokens.append(vocab.eos)
        times.append(times[-1] if times else 0.0)
    return tokens, times


def _first_in_scene(flags: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """``flags`` with each scene's first flagged token raised to ``FIRST_MODE_BOOST``: where a
    scene's mode is chosen, the one prediction the valence alone decides (later ones follow the
    scene's own notes too)."""
    if FIRST_MODE_BOOST == 1.0:
        return flags
    out = flags.copy()
    on = np.flatnonzero(flags > 0)
    _, first = np.unique(seg[on], return_index=True)
    out[on[first]] = FIRST_MODE_BOOST
    return out


def _mode_value(pitch: np.ndarray, weight: np.ndarray) -> float:
    """Best major minus best minor Krumhansl-Kessler correlation (the label formula's mode)."""
    r = key_correlations(np.bincount(pitch % 12, weights=weight, minlength=12))
    return float(r[:12].max() - r[12:].max())


def _window_modes(pitch: np.ndarray, sa: np.ndarray, sb: np.ndarray, idx: np.ndarray, key: tuple[int, bool],
                  vocab: Vocab) -> tuple[float, float]:
    """The mode value of the window's notes ``idx`` as written and moved to the parallel mode.

    A scene of a few seconds often measures as the other mode (a passage on the dominant, which
    harmonic minor keeps major), so its own mode is a noisy label for what valence should
    decide; the window's, in the scene's flip state, is the mode the scene is in."""
    w = np.maximum(1, sb[idx] - sa[idx]).astype(np.float64)
    return _mode_value(pitch[idx], w), _mode_value(_parallel(pitch[idx], key, vocab), w)


def _parallel(pitch: np.ndarray, key: tuple[int, bool], vocab: Vocab) -> np.ndarray:
    """``pitch`` moved to the parallel mode of ``key`` (see :func:`_flip_modes`)."""
    tonic, major = key
    step = np.zeros(12, np.int64)
    if major:
        step[4], step[9] = -1, -1
    else:
        step[3], step[8] = 1, 1
    new = pitch + step[(pitch - tonic) % 12]
    ok = (new >= vocab.pitch_min) & (new <= vocab.pitch_max)
    return np.where(ok, new, pitch)


def _window_key(pitch: np.ndarray, sa: np.ndarray, sb: np.ndarray, idx: np.ndarray,
                min_strength: float | None = None) -> tuple[int, bool] | None:
    """``(tonic pitch class, major)`` of the notes ``idx`` as the label formula finds it
    (Krumhansl-Kessler profiles on the duration-weighted pitch-class histogram); None when the
    best correlation is below ``min_strength`` (default ``MODE_MIN_STRENGTH``)."""
    w = np.maximum(1, sb[idx] - sa[idx]).astype(np.float64)
    hist = np.bincount(pitch[idx] % 12, weights=w, minlength=12)
    r = key_correlations(hist)
    best = int(np.argmax(r))
    if r[best] < (MODE_MIN_STRENGTH if min_strength is None else min_strength):
        return None
    return best % 12, best < 12


def note_on_pitches(tokens: np.ndarray, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """Which tokens are note-ons, and the MIDI pitch each would play (meaningful where it is one)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    on = (tokens >= vocab.on_base) & (tokens < vocab.off_base)
    return on, vocab.pitch_min + (tokens - vocab.on_base) % vocab.n_pitches


def mode_tokens(tokens: np.ndarray, tonic: int, vocab: Vocab) -> np.ndarray:
    """1.0 where a token is a note-on of a pitch class that tells major from minor in the key
    of ``tonic`` (its minor or major third or sixth), else 0.0: the predictions that valence
    should decide, which ``train.py --mode-weight`` weighs more."""
    on, pitch = note_on_pitches(tokens, vocab)
    return (on & np.isin((pitch - tonic) % 12, (3, 4, 8, 9))).astype(np.float32)


def mode_noise(tokens: np.ndarray, vocab: Vocab, prob: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The model's *inputs* for ``tokens`` with some notes in the wrong mode, and which targets to
    leave out of the loss.

    Each note-on of the stated key's third or sixth (the latest key token; ``keys=24``) moves to
    the other mode's degree with probability ``prob``, and so does its note-off. The targets stay
    as written, so the model learns to go on in the stated key after a wrong note; the note-off of
    a moved note is left out (its input says another pitch sounds). A model that samples its
    own context makes such notes, and one trained only on clean context follows them."""
    tokens = np.asarray(tokens, dtype=np.int64)
    inputs, ignore = tokens.copy(), np.zeros(len(tokens), bool)
    if vocab.keys != 24 or prob <= 0.0:
        return inputs, ignore
    keys = stated_keys(tokens, vocab)
    moved: dict[int, int] = {}  # original note-off token -> the moved one
    for i, t in enumerate(tokens.tolist()):
        kind = vocab.kind(t)
        if kind == "off" and t in moved:
            inputs[i], ignore[i] = moved.pop(t), True
        if kind != "on" or keys[i] < 0 or rng.random() >= prob:
            continue
        twin = other_mode(t, int(keys[i]), vocab)
        if twin is None:
            continue
        inputs[i] = twin
        moved[vocab.note_off(*vocab.group_pitch(t))] = vocab.note_off(*vocab.group_pitch(twin))
    return inputs, ignore


def stated_keys(tokens: np.ndarray, vocab: Vocab) -> np.ndarray:
    """The latest key token at or before each position (-1 before the first)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    at = np.maximum.accumulate(np.where(tokens >= vocab.shift_end, np.arange(len(tokens)), -1))
    return np.where(at >= 0, tokens[at], -1)


def other_mode(note_on: int, key: int, vocab: Vocab) -> int | None:
    """The note-on a semitone from ``note_on`` in the other mode when it plays the third or
    sixth of the key token ``key`` (``keys=24``), else None (also outside the pitch range)."""
    tonic, major = vocab.key_of(key)
    group, pitch = vocab.group_pitch(note_on)
    step = {(True, 4): -1, (True, 9): -1, (False, 3): 1, (False, 8): 1}.get((major, (pitch - (tonic or 0)) % 12))
    if step is None or not vocab.pitch_min <= pitch + step <= vocab.pitch_max:
        return None
    return vocab.note_on(group, pitch + step)


def _flip_modes(pitch: np.ndarray, sa: np.ndarray, key: tuple[int, bool], base: int, edges: np.ndarray,
                rng: np.random.Generator, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """The piece's pitches with some scenes moved to the parallel mode of the window's ``key``
    (:func:`_window_key`; a window without a clear key is not flipped). Each scene (the piece's
    notes *starting* between consecutive ``edges``, in
    seconds from step ``base``) flips with probability one half, or with ``WHOLE_FLIP_PROB`` every
    scene of the window does (the window's whole mode moves, and is held): in a major key the third and sixth
    degrees go down a semitone (harmonic minor: the leading tone stays), in a minor key the
    minor third and sixth go up one (major). Notes outside the vocabulary's range stay. Returns
    the pitches and which scenes moved.

    The corpus is mostly major and never changes mode at our pretend cuts, so on its own it
    teaches the model that valence says little the context does not (flipping the valence
    input changed the held-out loss by < 0.01 nats). Scenes of both modes over the same music,
    with their labels measured after the flip, make valence the only clue to the mode at a cut
    and at the start of a piece, which is where the decoder needs it.
    """
    unit = vocab.shift_seconds
    # every note of the piece in a scene moves (the labels measure whole scenes, also past the window)
    scene = np.searchsorted(edges, (sa - base) * unit + unit / 2, side="right") - 1
    flips = rng.random(len(edges)) < 0.5
    if WHOLE_FLIP_PROB > 0.0 and rng.random() < WHOLE_FLIP_PROB:
        flips[:] = True
    move = (scene >= 0) & flips[np.clip(scene, 0, len(edges) - 1)]
    return np.where(move, _parallel(pitch, key, vocab), pitch), flips


def _modulate(pitch: np.ndarray, sa: np.ndarray, base: int, edges: np.ndarray, rng: np.random.Generator,
              vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """The piece's pitches with the key changed at some cuts: each scene after the first moves
    with ``MODULATE_PROB`` by -5..+6 semitones (not 0) from the scene before, and the new key
    holds until the next move (notes *starting* in the scene move; one outside the vocabulary's
    range moves an octave less). Returns the pitches and each scene's move from the window's key.

    Without it a scene's tonic is always the context's, so a key token says nothing the notes
    before it do not, and the model learns to ignore it; a model that generates its own
    context must be able to take the key from the token."""
    unit = vocab.shift_seconds
    moving = rng.random(len(edges)) < MODULATE_PROB
    raw = rng.integers(-5, 6, len(edges))
    steps = np.where(moving, np.where(raw >= 0, raw + 1, raw), 0)  # -5..-1 or +1..+6
    steps[0] = 0
    moves = (np.cumsum(steps) + 5) % 12 - 5  # held, in -5..+6
    scene = np.searchsorted(edges, (sa - base) * unit + unit / 2, side="right") - 1
    new = pitch + moves[np.clip(scene, 0, len(edges) - 1)] * (scene >= 0)
    new = np.where(new > vocab.pitch_max, new - 12, np.where(new < vocab.pitch_min, new + 12, new))
    return new, moves


def chord_share(example: dict, vocab: Vocab) -> float | None:
    """The share of an example's boundaries that carry a ``CHORD`` token (None: no boundary)."""
    bs = example["boundaries"]
    if len(bs) == 0:
        return None
    t, tok = example["time"], example["tokens"]
    hits = sum(bool(np.any(tok[np.abs(t - b) < 1e-4] == vocab.chord)) for b in bs)
    return hits / len(bs)


# ------------------------------------------------------------------------------------------
def bench(cache_dir: Path, n: int = 2000, seq_len: int = 512, seed: int = 0) -> dict:
    """Examples per second on one core over duration-weighted training pieces, and what the
    examples look like (label quantiles, CHORD tokens on boundaries)."""
    from .prepare_data import VOCAB_SPEC

    vocab = Vocab.from_json(VOCAB_SPEC)
    stats = load_label_stats(cache_dir)
    pieces = list(iter_pieces(cache_dir, "train"))
    w = np.array([max(1.0, p.seconds) for p in pieces])
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(pieces), size=n, p=w / w.sum())
    t0 = time.perf_counter()
    examples = [make_example(pieces[i], rng, vocab, stats, seq_len=seq_len) for i in picks]
    dt = time.perf_counter() - t0
    examples = [e for e in examples if e is not None]
    val = np.concatenate([e["valence"] for e in examples])
    aro = np.concatenate([e["arousal"] for e in examples])
    on_chord = total_b = 0
    for e in examples:
        share = chord_share(e, vocab)
        if share is not None:
            total_b += len(e["boundaries"])
            on_chord += share * len(e["boundaries"])
    q = (0.05, 0.25, 0.5, 0.75, 0.95)
    return {
        "examples": len(examples), "seconds": round(dt, 2), "examples_per_second": round(len(examples) / dt, 1),
        "tokens_per_example": round(float(np.mean([len(e["tokens"]) for e in examples])), 1),
        "boundaries_per_example": round(total_b / len(examples), 2),
        "chord_at_boundary": round(on_chord / max(1, total_b), 3),
        "valence_quantiles": [round(float(x), 3) for x in np.quantile(val, q)],
        "arousal_quantiles": [round(float(x), 3) for x in np.quantile(aro, q)],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="training examples from the prepared cache")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--bench", action="store_true", help="measure example throughput")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seq-len", type=int, default=512)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.bench:
        logger.info("%s", json.dumps(bench(args.cache, args.n, args.seq_len)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
