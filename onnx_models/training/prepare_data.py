"""Turn the music21 corpus (bundled in the wheel; nothing is downloaded) into training notes.

    python -m onnx_models.training.prepare_data [--out onnx_models/training/cache]
                                                [--workers 2] [--limit N] [--timeout 120]

Every file of ``music21.corpus.getCorePaths()`` (except the ``demos`` and ``theoryExercises``
test files, the few files left out for their licences, :data:`LICENCE_EXCLUDED`, and any
``--exclude``) is parsed in a pool of worker processes; an ABC file holds many tunes and is cut
into tunes with music21's own reference-number split, so each tune is parsed (and timed out)
on its own. Each score becomes :class:`~emsync_plugin.music.vocab.Note` rows
``[group, pitch, start_s, end_s]`` for the generator's instrument groups (:data:`VOCAB_SPEC`).

Output (``--out``, default ``onnx_models/training/cache``)
---------------------------------------------------------
* ``pieces/<source path>.npz``, one per source file: ``notes`` float32 ``(N, 4)`` with the rows
  of all its pieces concatenated (each piece sorted by start, pitch), ``offsets`` int64
  ``(P + 1,)`` (piece ``i`` is ``notes[offsets[i]:offsets[i+1]]``), ``meta`` (JSON text: one dict
  per piece plus what was dropped) and ``key`` (the cache key). A file whose key matches
  ``<source path>|music21 <version>|converter <CONVERTER_VERSION>`` is not parsed again.
* ``index.json``: the vocabulary spec and one entry per kept piece: ``id`` (``path#tune``),
  ``file`` and ``row`` (where its notes are), ``name``, ``collection``, ``source``, ``tune``,
  ``split`` (``train``/``heldout``), ``qpm`` (initial tempo), ``tempo_source`` (``score`` or
  ``default``), ``arrangement``, ``chords`` (``symbols``/``roman``/``harmonised``/``none``),
  ``n_notes``, ``seconds``; then the duplicates and failures that were left out.
* ``stats.json``: totals per split and collection, parse speed, the fitted
  :class:`~emsync_plugin.music.features.LabelStats` (``label_stats``), label quantiles and
  histograms over the training windows, and ``data_sha256``, the training-data hash.
* ``prepare.log``: the log of every run.

Arranging for the four groups (deterministic: a per-piece seed from a hash of ``path#tune``)
------------------------------------------------------------------------------------------
* Chord symbols (ABC ``"Am"`` chords, MusicXML ``<harmony>``, e.g. the Nottingham tunes and lead
  sheets): every symbol lasts until the next one (or the end) and is *realised*: a close piano
  voicing of root, third, fifth and seventh above a seeded floor between 53 and 58, struck
  once (held), on every bar or on every beat (seeded pattern), plus a **bass** note on the
  root (or the slash bass) between 36 and 47. The melody goes to **guitar**, other parts to
  strings (piano when they are keyboard parts).
* Roman-numeral analyses (``.rntxt``: Bach chorales, Monteverdi madrigals) are chord
  progressions with durations: realised the same way (piano + bass), one strike per numeral.
* A single melodic line without chords (Essen, O'Neill, Ryan's, Aird's airs): half of the
  tunes (seeded) are *harmonised* by a simple rule: the key from Krumhansl-Kessler profiles,
  then for every bar (half bar when the bar is 4 beats or more) the diatonic triad (major:
  I ii iii IV V vi; minor: i III iv V VI VII) covering most of the melody's duration, with a
  small preference for tonic, dominant and subdominant and for keeping the previous chord,
  the last bar on the tonic; realised as above with the melody on guitar. The other half keep
  the bare melody on guitar or piano (seeded).
* A single part that is itself polyphonic (keyboard or lute reductions): **piano**.
* Several parts without chord symbols: parts named as keyboards (piano, organ, harpsichord,
  cembalo, keyboard) go to **piano**. If there is no keyboard part, the lowest part (lowest
  mean pitch: the bass voice of a chorale, Bassus of a mass, cello of a quartet) goes to
  **bass** when its mean pitch is below 62, and the others go to **strings** (60 % of pieces),
  to **piano** (25 %), or everything including the lowest part goes to piano (15 %). With a
  keyboard part present, the other parts (voice, solo instrument) go to strings.

Tempo: the score's metronome marks that carry a number (``Q:`` in ABC, ``*MM`` in Humdrum,
``<sound tempo>``/metronome in MusicXML), each from its own offset on; otherwise a default
*beat* tempo per collection (:data:`DEFAULT_BEAT_BPM`; the beat is the time signature's: a
quarter in 4/4, a half in 2/2 and 4/2, a dotted quarter in 6/8), so the Palestrina masses in
4/2 run at half = 70 (140 qpm), the chorales at 80 qpm, a reel in 2/2 at half = 100. Every
tempo is clamped to 40..200 quarter notes a minute. Repeats are not expanded.

Kept pieces are at least :data:`MIN_SECONDS` long with at least :data:`MIN_NOTES` notes; exact
duplicates (same pitches at the same quarter-note times, e.g. the overlapping O'Neill files)
keep only their first copy. The held-out split is fixed: a piece is held out when
``sha1("path#tune") mod 1000 < 50`` (about 5 %).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import re
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from emsync_plugin.music.features import fit_stats, key_correlations, labels, measure

logger = logging.getLogger("emsync.prepare_data")

# ---- the vocabulary: the single training-side source; the model files carry it afterwards ----
VOCAB_SPEC = dict(
    groups=("bass", "guitar", "piano", "strings"),
    programs=(33, 25, 0, 48),
    pitch_min=21,
    pitch_max=108,
    shift_ms=10,
    max_shift=100,
    chord_notes=3,
)
BASS, GUITAR, PIANO, STRINGS = range(4)

CONVERTER_VERSION = 1  # bump when the conversion below changes: invalidates the cache
DEFAULT_OUT = Path(__file__).resolve().parent / "cache"
EXCLUDED_COLLECTIONS = ("demos", "theoryExercises")  # notation test files, not music
# left out for their licences (see the licence notes in the model card): GPL-2 ABC encodings,
# a commercial publisher's edition, an encoding marked "All Rights Reserved"
LICENCE_EXCLUDED = {
    "josquin/": "ABC encodings (c) 1999 Laura E. Conrad under the GNU GPL v2",
    "monteverdi/madrigal.5.4.mxl": "(c) Ut Orpheus Edizioni 2003",
    "monteverdi/madrigal.5.5.mxl": "(c) Ut Orpheus Edizioni 2003",
    "leadSheet/berlinAlexandersRagtime.mxl": "encoding marked All Rights Reserved",
}
EXTENSIONS = (".abc", ".krn", ".mxl", ".xml", ".musicxml", ".rntxt")
MIN_SECONDS = 8.0
MIN_NOTES = 20
HELDOUT_PER_MILLE = 50
QPM_LIMITS = (40.0, 200.0)
# default beats per minute when a score has no numbered metronome mark (beat = the time
# signature's beat: quarter in 4/4, half in 2/2 or 4/2, dotted quarter in 6/8)
DEFAULT_BEAT_BPM = {
    "palestrina": 70.0, "josquin": 70.0, "lusitano": 70.0, "luca": 70.0, "ciconia": 70.0,
    "trecento": 70.0, "monteverdi": 80.0, "bach": 80.0, "essenFolksong": 90.0,
    "oneills1850": 100.0, "ryansMammoth": 100.0, "nottingham-dataset": 100.0,
    "airdsAirs": 100.0, "miscFolk": 100.0,
}
FALLBACK_BEAT_BPM = 100.0
KEYBOARD = re.compile(r"piano|organ|harpsichord|cembalo|clavi|keyboard|klavier|virginal", re.I)
GENERIC_PART = re.compile(r"^(musicxml part|part|p\d+|staff|instrument\s*\d*|)$", re.I)

# label statistics: non-overlapping windows of this many seconds over the training pieces
WINDOW_SECONDS = (4.0, 12.0)
WINDOW_SEED = 20250214


# ------------------------------------------------------------------------------------------
# corpus files
# ------------------------------------------------------------------------------------------
def music21_version() -> str:
    import music21

    return str(music21.__version__)


def corpus_files(exclude: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``(relative path, absolute path)`` of the corpus files to parse, sorted: all of
    ``music21.corpus.getCorePaths()`` but the test collections, :data:`LICENCE_EXCLUDED` and
    anything starting with one of ``exclude`` (collections like ``"essenFolksong"`` or paths)."""
    from music21 import corpus

    skip = tuple(LICENCE_EXCLUDED) + tuple(exclude)
    out = []
    for p in corpus.getCorePaths():
        p = str(p)
        rel = p.split("/corpus/", 1)[1] if "/corpus/" in p else os.path.basename(p)
        if rel.split("/", 1)[0] in EXCLUDED_COLLECTIONS or not rel.lower().endswith(EXTENSIONS):
            continue
        if any(rel == x or rel.startswith(x.rstrip("/") + "/") for x in skip):
            continue
        out.append((rel, p))
    return sorted(out)


def collection_of(rel: str) -> str:
    top = rel.split("/", 1)[0]
    return f"{top}/rntxt" if rel.endswith(".rntxt") else top


def cache_key(rel: str, version: str | None = None) -> str:
    return f"{rel}|music21 {version or music21_version()}|converter {CONVERTER_VERSION}"


def npz_name(rel: str) -> str:
    return "pieces/" + re.sub(r"[^A-Za-z0-9._/-]+", "_", rel) + ".npz"


def _hash_int(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")


def split_of(piece_id: str) -> str:
    """``"heldout"`` for about 5 % of pieces, fixed by a hash of ``path#tune``."""
    return "heldout" if _hash_int(piece_id) % 1000 < HELDOUT_PER_MILLE else "train"


# ------------------------------------------------------------------------------------------
# parsing (in the workers)
# ------------------------------------------------------------------------------------------
class _TimeoutError(Exception):
    pass


def _on_alarm(signum, frame):  # pragma: no cover - only fires on a stuck parse
    raise _TimeoutError()


class _Deadline:
    """Raise :class:`_TimeoutError` in this (worker) process after ``seconds`` (POSIX timers)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self):
        if self.seconds and self.seconds > 0 and hasattr(signal, "setitimer"):
            signal.signal(signal.SIGALRM, _on_alarm)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        if self.seconds and self.seconds > 0 and hasattr(signal, "setitimer"):
            signal.setitimer(signal.ITIMER_REAL, 0)
        return False


def iter_scores(path: str, timeout: float = 0) -> Iterator[tuple[int, Any]]:
    """``(tune index, Score or exception)`` for every score in a corpus file.

    ABC files are tokenised once and split by reference number (music21's opus handling);
    each tune is then built on its own under ``timeout`` seconds. Other formats go through
    ``music21.converter.parse`` (no scratch-cache pickles); an Opus yields its scores.
    """
    from music21 import converter, stream

    if path.lower().endswith(".abc"):
        from music21 import abcFormat
        from music21.abcFormat import translate

        with _Deadline(timeout):
            af = abcFormat.ABCFile()
            af.open(path)
            try:
                handler = af.read()
            finally:
                af.close()
            if handler.definesReferenceNumbers():
                parts = sorted(handler.splitByReferenceNumber().items(),
                               key=lambda kv: (kv[0] is None, kv[0] or 0))
                handlers = [h for _, h in parts]
            else:
                handlers = [handler]
        for i, h in enumerate(handlers):
            try:
                with _Deadline(timeout):
                    sc = translate.abcToStreamScore(h)
            except Exception as exc:  # a broken tune must not stop the file
                yield i, exc
                continue
            yield i, sc
        return
    with _Deadline(timeout):
        parsed = converter.parse(path, forceSource=True)
    if isinstance(parsed, stream.Opus):
        for i, sc in enumerate(parsed.scores):
            yield i, sc
    else:
        yield 0, parsed


def _tempo_map(score, collection: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Breakpoints (quarter-length offsets) and quarter-note tempi, and where they came from."""
    from music21 import meter, tempo

    marks: dict[float, float] = {}
    for mm in score.recurse().getElementsByClass(tempo.MetronomeMark):
        if mm.number is None and getattr(mm, "numberSounding", None) is None:
            continue  # a text-only or empty mark
        try:
            q = float(mm.getQuarterBPM())
            off = float(mm.getOffsetInHierarchy(score))
        except Exception:
            continue
        if q > 0 and math.isfinite(q):
            marks.setdefault(round(off, 4), min(max(q, QPM_LIMITS[0]), QPM_LIMITS[1]))
    if marks:
        offs = sorted(marks)
        qpm = [marks[o] for o in offs]
        offs[0] = 0.0  # the first mark also holds before it (pickups, missing initial mark)
        return np.asarray(offs), np.asarray(qpm), "score"
    beat = 1.0
    ts = next(iter(score.recurse().getElementsByClass(meter.TimeSignature)), None)
    if ts is not None:
        try:
            beat = float(ts.beatDuration.quarterLength) or 1.0
        except Exception:
            beat = 1.0
    bpm = DEFAULT_BEAT_BPM.get(collection.split("/", 1)[0], FALLBACK_BEAT_BPM)
    q = min(max(bpm * beat, QPM_LIMITS[0]), QPM_LIMITS[1])
    return np.zeros(1), np.asarray([q]), "default"


def _to_seconds(ql: np.ndarray, offs: np.ndarray, qpm: np.ndarray) -> np.ndarray:
    spb = 60.0 / qpm
    at = np.concatenate([[0.0], np.cumsum(np.diff(offs) * spb[:-1])])
    i = np.clip(np.searchsorted(offs, ql, side="right") - 1, 0, len(offs) - 1)
    return at[i] + (ql - offs[i]) * spb[i]


def _part_notes(part) -> tuple[list[list[float]], list[tuple[float, Any]]]:
    """``[[midi, start_ql, end_ql], ...]`` with ties merged and grace notes dropped, and the
    part's harmony objects (chord symbols, Roman numerals) as ``(offset, object)``."""
    from music21 import chord, harmony, note

    flat = part.flatten()
    notes: list[list[float]] = []
    harmonies: list[tuple[float, Any]] = []
    open_ties: dict[int, int] = {}
    for el in flat.notes:
        if isinstance(el, harmony.Harmony):
            harmonies.append((float(el.offset), el))
            continue
        ql = float(el.duration.quarterLength)
        if ql <= 0:
            continue
        off = float(el.offset)
        if isinstance(el, note.Note):
            items = [(el.pitch.midi, el.tie)]
        elif isinstance(el, chord.Chord):
            items = [(p.midi, el.getTie(p)) for p in el.pitches]
        else:
            continue
        for midi, tie in items:
            kind = getattr(tie, "type", None)
            j = open_ties.get(midi)
            if j is not None and kind in ("stop", "continue") and abs(notes[j][2] - off) < 1e-3:
                notes[j][2] = off + ql
                if kind == "stop":
                    del open_ties[midi]
                continue
            notes.append([float(midi), off, off + ql])
            if kind in ("start", "continue"):
                open_ties[midi] = len(notes) - 1
            else:
                open_ties.pop(midi, None)
    return notes, harmonies


def _chord_pcs(root: int, pcs: Iterable[int]) -> list[int]:
    """Root, third, fifth and seventh (when present) of a chord's pitch classes, root first."""
    ivs = {(p - root) % 12 for p in pcs}
    chosen = [0]
    for options in ((4, 3, 2, 5), (7, 6, 8), (10, 11, 9)):
        for iv in options:
            if iv in ivs:
                chosen.append(iv)
                break
    return [(root + iv) % 12 for iv in chosen]


def _harmony_spans(harmonies: list[tuple[float, Any]], end_ql: float) -> list[tuple]:
    """``(start_ql, end_ql, pitch classes, bass pc)`` for chord symbols (each lasting until
    the next) and Roman numerals (their own durations)."""
    from music21 import harmony, roman

    spans = []
    harmonies = sorted(harmonies, key=lambda x: x[0])
    for k, (off, h) in enumerate(harmonies):
        if isinstance(h, roman.RomanNumeral):
            stop = off + float(h.duration.quarterLength)
        else:
            stop = harmonies[k + 1][0] if k + 1 < len(harmonies) else end_ql
        if isinstance(h, harmony.NoChord) or stop <= off + 1e-6:
            continue
        try:
            pitches = list(h.pitches)
            if not pitches:
                continue
            root = h.root().pitchClass
            bass = h.bass().pitchClass
        except Exception:
            continue
        spans.append((off, stop, _chord_pcs(root, [p.pitchClass for p in pitches]), bass))
    return spans


def _realise(spans: list[tuple], rng: np.random.Generator, beat_ql: float, bar_ql: float,
             pattern: str | None = None) -> list[list[float]]:
    """Piano chords and a bass line for chord spans: ``[[group, midi, start_ql, end_ql]]``."""
    floor = int(rng.integers(53, 59))
    pattern = pattern or str(rng.choice(["held", "bar", "beat"], p=[0.3, 0.4, 0.3]))
    step = {"held": math.inf, "bar": bar_ql, "beat": beat_ql}[pattern]
    out: list[list[float]] = []
    for start, stop, pcs, bass in spans:
        voicing = [floor + (pc - floor) % 12 for pc in pcs]
        bass_pitch = 36 + (bass - 36) % 12
        t = start
        while t < stop - 1e-6:
            u = min(stop, t + step)
            length = (u - t) * (0.95 if pattern == "beat" else 1.0)
            out.extend([PIANO, p, t, t + length] for p in voicing)
            t = u
        t = start
        bass_step = math.inf if pattern == "held" else bar_ql
        while t < stop - 1e-6:
            u = min(stop, t + bass_step)
            out.append([BASS, bass_pitch, t, u])
            t = u
    return out


_MAJOR_TRIADS = ((0, 0.15), (2, 0.0), (4, 0.0), (5, 0.08), (7, 0.1), (9, 0.03))
_MINOR_TRIADS = ((0, 0.15), (3, 0.03), (5, 0.08), (7, 0.1), (8, 0.03), (10, 0.0))
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)
_NATURAL_MINOR = (0, 2, 3, 5, 7, 8, 10)


def _harmonise(melody: list[list[float]], bars: list[tuple[float, float]], beat_ql: float) -> list[tuple]:
    """Chord spans for a bare melody: one diatonic triad per bar (two for long bars)."""
    arr = np.asarray(melody, dtype=np.float64)
    hist = np.bincount(arr[:, 0].astype(int) % 12, weights=arr[:, 2] - arr[:, 1], minlength=12)
    r = key_correlations(hist)
    best = int(np.argmax(r))
    tonic, minor = best % 12, best >= 12
    triads = []
    for degree, prior in (_MINOR_TRIADS if minor else _MAJOR_TRIADS):
        scale = _HARMONIC_MINOR if (minor and degree == 7) else (_NATURAL_MINOR if minor else _MAJOR_SCALE)
        i = scale.index(degree)
        pcs = [(tonic + scale[(i + k) % 7]) % 12 for k in (0, 2, 4)]
        triads.append((pcs, prior))
    segments = []
    for a, b in bars:
        if b - a >= 4 * beat_ql - 1e-6 and b - a >= 4.0 - 1e-6:
            mid = a + (b - a) / 2
            segments += [(a, mid), (mid, b)]
        elif b > a:
            segments.append((a, b))
    spans, prev = [], -1
    for k, (a, b) in enumerate(segments):
        overlap = np.minimum(arr[:, 2], b) - np.maximum(arr[:, 1], a)
        inside = overlap > 0
        if k == len(segments) - 1:
            choice = 0
        else:
            scores = []
            for j, (pcs, prior) in enumerate(triads):
                pc = arr[inside, 0].astype(int) % 12
                w = overlap[inside]
                fit = (w * np.isin(pc, pcs)).sum() + 0.5 * (w * (pc == pcs[0])).sum()
                scores.append(fit / (b - a) + prior + (0.05 if j == prev else 0.0))
            choice = int(np.argmax(scores))
        pcs = triads[choice][0]
        spans.append((a, b, list(pcs), pcs[0]))
        prev = choice
    return spans


def _bars(part, end_ql: float) -> tuple[list[tuple[float, float]], float, float]:
    """Bar spans of a part, and its beat and bar lengths in quarter notes."""
    from music21 import meter, stream

    ts = next(iter(part.recurse().getElementsByClass(meter.TimeSignature)), None)
    beat = float(ts.beatDuration.quarterLength) if ts is not None else 1.0
    bar = float(ts.barDuration.quarterLength) if ts is not None else 4.0
    measures = list(part.getElementsByClass(stream.Measure))
    if measures:
        offs = [float(m.offset) for m in measures] + [end_ql]
        spans = [(a, b) for a, b in zip(offs[:-1], offs[1:]) if b > a]
    else:
        n = max(1, int(math.ceil(end_ql / bar)))
        spans = [(k * bar, min(end_ql, (k + 1) * bar)) for k in range(n)]
    return spans, beat, bar


def _polyphonic(notes: list[list[float]]) -> bool:
    """Whether more than a fifth of the notes overlap the note before them (sorted by start)."""
    if len(notes) < 2:
        return False
    arr = np.asarray(sorted(notes, key=lambda n: (n[1], n[0])))
    reach = np.maximum.accumulate(arr[:-1, 2])
    return float((arr[1:, 1] < reach - 1e-6).mean()) > 0.2


def _part_label(part) -> str:
    name = (part.partName or "").strip()
    if GENERIC_PART.match(name):
        inst = part.getInstrument(returnDefault=False)
        name = (getattr(inst, "instrumentName", None) or getattr(inst, "partName", None) or name or "").strip()
    return name


def score_to_piece(score, rel: str, tune: int) -> dict | None:
    """One score as ``{"notes": float32 (N, 4) [group, pitch, start_s, end_s], "meta": {...}}``,
    or None when it has no notes. The arrangement rules are in the module docstring."""
    collection = collection_of(rel)
    rng = np.random.default_rng(_hash_int(f"{rel}#{tune}"))
    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    parsed = []
    harmonies: list[tuple[float, Any]] = []
    for p in parts:
        notes, harm = _part_notes(p)
        harmonies += harm
        if notes:
            parsed.append((p, notes))
    end_ql = max([n[2] for _, ns in parsed for n in ns] + [off for off, _ in harmonies] + [0.0])
    if rel.endswith(".rntxt"):
        end_ql = max([end_ql] + [off + float(h.duration.quarterLength) for off, h in harmonies])
    try:
        end_ql = max(end_ql, float(score.highestTime))
    except Exception:
        pass
    if not parsed and not harmonies:
        return None
    spans = _harmony_spans(harmonies, end_ql)
    bars, beat_ql, bar_ql = _bars(parts[0], end_ql)
    rows: list[list[float]] = []
    fingerprint_rows = [(n[0], n[1], n[2]) for _, ns in parsed for n in ns]
    fingerprint_rows += [(float(sum(pcs)), a, b) for a, b, pcs, _ in spans]

    chords = "none"
    if spans:  # chord symbols or Roman numerals: realise them, melody on guitar
        chords = "roman" if rel.endswith(".rntxt") else "symbols"
        rows += _realise(spans, rng, beat_ql, bar_ql)
        keyboard = [bool(KEYBOARD.search(_part_label(p))) for p, _ in parsed]
        for kb, (_, ns) in zip(keyboard, parsed):
            if kb:
                group = PIANO
            else:  # the melody (the only non-keyboard part) on guitar, several on strings
                group = GUITAR if keyboard.count(False) == 1 else STRINGS
            rows += [[group, n[0], n[1], n[2]] for n in ns]
        arrangement = "melody(guitar)+chords(piano,bass)" if parsed else "chords(piano,bass)"
    elif len(parsed) == 1:
        (p, ns), = parsed
        if _polyphonic(ns):
            rows += [[PIANO, n[0], n[1], n[2]] for n in ns]
            arrangement = "piano"
        elif rng.random() < 0.5 and len(ns) >= 4:
            chords = "harmonised"
            rows += _realise(_harmonise(ns, bars, beat_ql), rng, beat_ql, bar_ql)
            rows += [[GUITAR, n[0], n[1], n[2]] for n in ns]
            arrangement = "melody(guitar)+chords(piano,bass)"
        else:
            group = GUITAR if rng.random() < 0.5 else PIANO
            rows += [[group, n[0], n[1], n[2]] for n in ns]
            arrangement = f"melody({VOCAB_SPEC['groups'][group]})"
    else:
        keyboard = [bool(KEYBOARD.search(_part_label(p))) for p, _ in parsed]
        means = [float(np.mean([n[0] for n in ns])) for _, ns in parsed]
        if all(keyboard):
            groups = [PIANO] * len(parsed)
            arrangement = "piano"
        elif any(keyboard):
            groups = [PIANO if kb else STRINGS for kb in keyboard]
            arrangement = "piano+strings"
        else:
            lowest = int(np.argmin(means))
            u = rng.random()
            upper = STRINGS if u < 0.60 else PIANO
            groups = [upper] * len(parsed)
            if u < 0.85 and means[lowest] < 62:
                groups[lowest] = BASS
            names = {STRINGS: "strings", PIANO: "piano"}
            arrangement = names[upper] + ("+bass" if BASS in groups else "")
        for g, (_, ns) in zip(groups, parsed):
            rows += [[g, n[0], n[1], n[2]] for n in ns]
    if not rows:
        return None

    offs, qpm, tempo_source = _tempo_map(score, collection)
    arr = np.asarray(rows, dtype=np.float64)
    arr[:, 2] = _to_seconds(arr[:, 2], offs, qpm)
    arr[:, 3] = _to_seconds(arr[:, 3], offs, qpm)
    arr = arr[arr[:, 3] > arr[:, 2]]
    if arr.size:
        t0 = arr[:, 2].min()
        if t0 > 0:  # start at the first note (skips empty pickup bars and rests)
            arr[:, 2:] -= t0
    arr = arr[np.lexsort((arr[:, 1], arr[:, 0], arr[:, 2]))] if arr.size else arr.reshape(0, 4)
    fp = np.asarray(sorted(fingerprint_rows), dtype=np.float64)
    fp = np.round(fp * 48).astype(np.int64)
    title = ""
    md = getattr(score, "metadata", None)
    if md is not None:
        title = (md.title or md.movementName or "") or ""
    if re.search("[\x80-\x9f]", title):  # Essen titles are DOS code page 437 read as Latin-1
        try:
            title = title.encode("latin-1").decode("cp437")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return {
        "notes": arr.astype(np.float32),
        "meta": {
            "tune": int(tune),
            "name": str(title) or f"{rel}#{tune}",
            "qpm": round(float(qpm[0]), 3),
            "tempo_source": tempo_source,
            "arrangement": arrangement,
            "chords": chords,
            "n_notes": int(arr.shape[0]),
            "seconds": round(float(arr[:, 3].max()), 3) if arr.size else 0.0,
            "fingerprint": hashlib.sha1(fp.tobytes()).hexdigest(),
        },
    }


def process_file(job: tuple[str, str, str, str, float]) -> dict:
    """Worker: parse one corpus file into its ``.npz`` (see the module docstring)."""
    import warnings

    rel, path, out_path, key, timeout = job
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    pieces, dropped, errors = [], Counter(), []
    units = 0
    try:
        for tune, sc in iter_scores(path, timeout):
            units += 1
            if isinstance(sc, BaseException):
                dropped["failed"] += 1
                errors.append(f"#{tune}: {type(sc).__name__}: {sc}"[:200])
                continue
            try:
                with _Deadline(timeout):
                    piece = score_to_piece(sc, rel, tune)
            except Exception as exc:
                dropped["failed"] += 1
                errors.append(f"#{tune}: {type(exc).__name__}: {exc}"[:200])
                continue
            if piece is None:
                dropped["empty"] += 1
            elif piece["meta"]["n_notes"] < MIN_NOTES:
                dropped["few_notes"] += 1
            elif piece["meta"]["seconds"] < MIN_SECONDS:
                dropped["short"] += 1
            else:
                pieces.append(piece)
    except _TimeoutError:
        errors.append(f"timeout after {timeout:g} s (file level)")
        dropped["failed"] += 1
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}"[:200])
        dropped["failed"] += 1
    seconds = time.perf_counter() - t0
    notes = np.concatenate([p["notes"] for p in pieces]) if pieces else np.zeros((0, 4), np.float32)
    offsets = np.cumsum([0] + [len(p["notes"]) for p in pieces]).astype(np.int64)
    meta = {"source": rel, "pieces": [p["meta"] for p in pieces], "dropped": dict(dropped),
            "errors": errors, "units": units, "parse_seconds": round(seconds, 3)}
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    tmp = str(out_path) + ".tmp.npz"
    np.savez(tmp, notes=notes, offsets=offsets, meta=np.asarray(json.dumps(meta)), key=np.asarray(key))
    os.replace(tmp, out_path)
    return {"source": rel, "units": units, "pieces": len(pieces), "seconds": seconds,
            "errors": errors, "dropped": dict(dropped)}


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, dict, str]:
    with np.load(path, allow_pickle=False) as z:
        return z["notes"], z["offsets"], json.loads(str(z["meta"])), str(z["key"])


def _cached(path: Path, key: str) -> bool:
    if not path.exists():
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            return str(z["key"]) == key
    except Exception:
        return False


def _worker_init():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C


def parse_corpus(files: list[tuple[str, str]], out: Path, workers: int = 2, timeout: float = 120.0,
                 progress: bool = True) -> dict:
    """Parse the files not already cached; return the parse-speed summary."""
    version = music21_version()
    jobs = []
    for rel, path in files:
        key = cache_key(rel, version)
        target = out / npz_name(rel)
        if not _cached(target, key):
            jobs.append((rel, path, str(target), key, float(timeout)))
    logger.info("%d files: %d cached, %d to parse with %d worker(s)", len(files), len(files) - len(jobs),
                len(jobs), workers)
    results = []
    t0 = time.perf_counter()
    if jobs:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="file", disable=not progress, smoothing=0.05)
        if workers <= 1:
            for job in jobs:
                results.append(process_file(job))
                bar.update()
        else:
            # big files first, so one long ABC collection does not finish alone at the end
            jobs.sort(key=lambda j: -os.path.getsize(j[1]))
            ctx = mp.get_context("fork")
            with ctx.Pool(workers, initializer=_worker_init, maxtasksperchild=100) as pool:
                for res in pool.imap_unordered(process_file, jobs, chunksize=1):
                    results.append(res)
                    bar.update()
                    bar.set_postfix(tunes=sum(r["units"] for r in results), refresh=False)
                    for err in res["errors"][:3]:
                        logger.warning("%s: %s", res["source"], err)
        bar.close()
    wall = time.perf_counter() - t0
    cpu = sum(r["seconds"] for r in results)
    units = sum(r["units"] for r in results)
    summary = {
        "files_total": len(files), "files_parsed": len(jobs), "files_cached": len(files) - len(jobs),
        "workers": workers, "wall_seconds": round(wall, 1), "worker_seconds": round(cpu, 1),
        "scores_parsed": units,
        "seconds_per_file": round(cpu / len(jobs), 4) if jobs else None,
        "seconds_per_score": round(cpu / units, 4) if units else None,
        "files_per_second_wall": round(len(jobs) / wall, 2) if jobs and wall > 0 else None,
        "failed_files": sorted(r["source"] for r in results if r["errors"] and not r["pieces"]),
    }
    if jobs:
        logger.info("parsed %d files (%d scores) in %.1f s wall with %d workers: %.3f s/file, %.4f s/score "
                    "of worker time, %.2f files/s", len(jobs), units, wall, workers,
                    summary["seconds_per_file"], summary["seconds_per_score"] or 0,
                    summary["files_per_second_wall"] or 0)
    return summary


# ------------------------------------------------------------------------------------------
# index, statistics, hash
# ------------------------------------------------------------------------------------------
def build_index(files: list[tuple[str, str]], out: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read every file's ``.npz``, drop duplicates, assign splits; return the index and the
    notes of every kept piece by id."""
    pieces, notes_by_id = [], {}
    duplicates, failures, dropped = [], [], Counter()
    seen: dict[str, str] = {}
    for rel, _ in files:
        name = npz_name(rel)
        path = out / name
        if not path.exists():
            failures.append({"source": rel, "error": "not parsed"})
            continue
        notes, offsets, meta, _ = read_npz(path)
        dropped.update(meta.get("dropped", {}))
        if meta.get("errors"):
            failures.append({"source": rel, "errors": meta["errors"][:5], "n_errors": len(meta["errors"])})
        for row, m in enumerate(meta["pieces"]):
            pid = f"{rel}#{m['tune']}"
            if m["fingerprint"] in seen:
                duplicates.append({"id": pid, "same_as": seen[m["fingerprint"]]})
                continue
            seen[m["fingerprint"]] = pid
            entry = {"id": pid, "file": name, "row": row, "name": m["name"], "collection": collection_of(rel),
                     "source": rel, "tune": m["tune"], "split": split_of(pid), "qpm": m["qpm"],
                     "tempo_source": m["tempo_source"], "arrangement": m["arrangement"], "chords": m["chords"],
                     "n_notes": m["n_notes"], "seconds": m["seconds"]}
            pieces.append(entry)
            notes_by_id[pid] = notes[offsets[row]:offsets[row + 1]]
    dropped["duplicate"] = len(duplicates)
    index = {"format": 1, "music21_version": music21_version(), "converter_version": CONVERTER_VERSION,
             "vocab_spec": VOCAB_SPEC, "pieces": pieces, "dropped": dict(sorted(dropped.items())),
             "duplicates": duplicates, "failures": failures}
    return index, notes_by_id


def data_hash(index: dict, notes_by_id: dict[str, np.ndarray]) -> str:
    """sha256 over the vocabulary spec and every kept piece (id, split, float32 notes)."""
    h = hashlib.sha256(json.dumps(VOCAB_SPEC, sort_keys=True).encode())
    for p in index["pieces"]:
        h.update(f"{p['id']}|{p['split']}\n".encode())
        h.update(np.ascontiguousarray(notes_by_id[p["id"]], dtype="<f4").tobytes())
    return h.hexdigest()


def training_windows(index: dict, notes_by_id: dict[str, np.ndarray], split: str = "train",
                     seed: int = WINDOW_SEED) -> list[tuple[str, Any]]:
    """Non-overlapping windows of 4-12 s (seeded lengths) over every piece of ``split``:
    ``(collection, Features)``."""
    rng = np.random.default_rng(seed)
    out = []
    for p in index["pieces"]:
        if p["split"] != split:
            continue
        arr = notes_by_id[p["id"]].astype(np.float64)
        dur = float(arr[:, 3].max())
        order = np.argsort(arr[:, 2], kind="stable")
        arr = arr[order]
        max_len = float((arr[:, 3] - arr[:, 2]).max())
        t = 0.0
        while t + WINDOW_SECONDS[0] <= dur:
            b = min(dur, t + float(rng.uniform(*WINDOW_SECONDS)))
            lo = np.searchsorted(arr[:, 2], t - max_len)
            hi = np.searchsorted(arr[:, 2], b)
            f = measure(arr[lo:hi], t, b)
            if not f.empty:
                out.append((p["collection"], f))
            t = b
    return out


def _quantiles(x: np.ndarray) -> dict:
    qs = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
    x = x[np.isfinite(x)]
    if not x.size:
        return {}
    return {"mean": round(float(x.mean()), 4), "std": round(float(x.std()), 4),
            **{f"q{int(q * 100):02d}": round(float(np.quantile(x, q)), 4) for q in qs}}


def label_report(windows: list[tuple[str, Any]], stats) -> dict:
    """Quantiles and 10-bin histograms of valence/arousal (and raw features) over windows."""
    va = np.array([labels(f, stats) for _, f in windows])
    cols = np.array([c for c, _ in windows])
    edges = np.linspace(-1, 1, 11)
    rep = {
        "windows": len(windows),
        "valence": _quantiles(va[:, 0]), "arousal": _quantiles(va[:, 1]),
        "histogram_edges": [round(float(e), 2) for e in edges],
        "valence_histogram": np.histogram(va[:, 0], edges)[0].tolist(),
        "arousal_histogram": np.histogram(va[:, 1], edges)[0].tolist(),
        "valence_arousal_correlation": round(float(np.corrcoef(va[:, 0], va[:, 1])[0, 1]), 4),
        "quadrants": {
            "v+a+": int(((va[:, 0] >= 0) & (va[:, 1] >= 0)).sum()),
            "v+a-": int(((va[:, 0] >= 0) & (va[:, 1] < 0)).sum()),
            "v-a+": int(((va[:, 0] < 0) & (va[:, 1] >= 0)).sum()),
            "v-a-": int(((va[:, 0] < 0) & (va[:, 1] < 0)).sum()),
        },
        "features": {name: _quantiles(np.array([getattr(f, name) for _, f in windows], dtype=float))
                     for name in ("mode", "consonance", "density", "register", "polyphony", "pitch_range")},
        "by_collection": {},
    }
    for c in sorted(set(cols.tolist())):
        m = cols == c
        rep["by_collection"][c] = {"windows": int(m.sum()),
                                   "valence_mean": round(float(va[m, 0].mean()), 3),
                                   "arousal_mean": round(float(va[m, 1].mean()), 3)}
    return rep


def totals(index: dict) -> dict:
    """Pieces, notes and hours per split, per collection and split, and overall."""
    by_split: dict = defaultdict(lambda: {"pieces": 0, "notes": 0, "seconds": 0.0})
    by_coll: dict = defaultdict(lambda: defaultdict(lambda: {"pieces": 0, "notes": 0, "seconds": 0.0}))
    chords = Counter()
    for p in index["pieces"]:
        for d in (by_split[p["split"]], by_split["all"], by_coll[p["collection"]][p["split"]],
                  by_coll[p["collection"]]["all"]):
            d["pieces"] += 1
            d["notes"] += p["n_notes"]
            d["seconds"] += p["seconds"]
        chords[p["chords"]] += 1

    def fin(d):
        return {**d, "seconds": round(d["seconds"], 1), "hours": round(d["seconds"] / 3600, 2)}

    return {"by_split": {k: fin(v) for k, v in sorted(by_split.items())},
            "by_collection": {c: {k: fin(v) for k, v in sorted(s.items())} for c, s in sorted(by_coll.items())},
            "chords": dict(chords),
            "tempo_source": dict(Counter(p["tempo_source"] for p in index["pieces"])),
            "arrangement": dict(Counter(p["arrangement"] for p in index["pieces"]))}


def prepare(out: Path, workers: int = 2, limit: int | None = None, timeout: float = 120.0,
            progress: bool = True, files: list[tuple[str, str]] | None = None,
            exclude: Iterable[str] = ()) -> dict:
    """Parse (or reuse), index, fit the label statistics and write ``index.json`` and
    ``stats.json`` in ``out``; returns the stats dict."""
    out.mkdir(parents=True, exist_ok=True)
    if files is None:
        files = corpus_files(exclude)
        if limit:  # a spread-out, reproducible sample of the collections
            files = sorted(sorted(files, key=lambda f: _hash_int(f[0]))[:limit])
    parse = parse_corpus(files, out, workers=workers, timeout=timeout, progress=progress)
    index, notes_by_id = build_index(files, out)
    digest = data_hash(index, notes_by_id)
    t0 = time.perf_counter()
    windows = training_windows(index, notes_by_id)
    if not windows:
        raise RuntimeError("no training windows: nothing usable was parsed")
    stats = fit_stats([f for _, f in windows])
    report = label_report(windows, stats)
    logger.info("fitted label statistics on %d training windows in %.1f s", len(windows), time.perf_counter() - t0)
    result = {
        "data_sha256": digest,
        "label_stats": stats.to_dict(),
        "vocab_spec": VOCAB_SPEC,
        "music21_version": music21_version(),
        "converter_version": CONVERTER_VERSION,
        "excluded": {**LICENCE_EXCLUDED, **{x: "--exclude" for x in exclude}},
        "window_seconds": list(WINDOW_SECONDS),
        "window_seed": WINDOW_SEED,
        "totals": totals(index),
        "dropped": index["dropped"],
        "failures": len(index["failures"]),
        "labels": report,
        "parse": parse,
    }
    (out / "index.json").write_text(json.dumps(index, indent=1))
    (out / "stats.json").write_text(json.dumps(result, indent=1))
    t = result["totals"]["by_split"]
    logger.info("kept %d pieces (%d train, %d held out), %.1f h, %d notes; data sha256 %s",
                t["all"]["pieces"], t.get("train", {}).get("pieces", 0), t.get("heldout", {}).get("pieces", 0),
                t["all"]["hours"], t["all"]["notes"], digest)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="cache directory")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="parse only N files (a hashed sample)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per score (ABC: per tune)")
    p.add_argument("--exclude", action="append", default=[], metavar="COLLECTION_OR_PATH",
                   help="leave out a collection (e.g. essenFolksong) or file; repeatable")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for h in (logging.StreamHandler(), logging.FileHandler(args.out / "prepare.log")):
        h.setFormatter(fmt)
        root.addHandler(h)
    progress = not args.no_progress and not os.environ.get("EMSYNC_NO_PROGRESS")
    prepare(args.out, workers=args.workers, limit=args.limit, timeout=args.timeout, progress=progress,
            exclude=args.exclude)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
