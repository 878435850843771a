"""The learned generator: the shipped ONNX music transformer, decoded with a KV cache.

``Generator.load()`` verifies and opens ``onnx_models/generator.onnx`` and reads everything it
needs from the model's own metadata (vocabulary, context length, offset cap, label statistics).
``generate(cuts, duration, moods, options)`` returns a :class:`GenerationResult` (MIDI, tokens,
notes); ``generate_many(cuts, duration, moods, options_list)`` one per options (the takes), their
rows sharing each model call (:mod:`.batching`), each take the same as alone:

* every token is conditioned on the valence/arousal of the scene it falls in (a scene's mood
  takes effect at its cut; ``moods[i]`` is read when the music reaches scene ``i``) and on the
  seconds to the next cut, capped as in training;
* the decoding rules of :mod:`.decoding` keep the stream well formed, land a chord on every
  cut (when ``guarantee_cuts``), end on a final chord and never pass the timeline's end;
* longer timelines than the context (or ``options.context``) are generated in windows: when the
  cache is full, the last half of the tokens is fed again from position 0 (in one call) and
  generation goes on;
* ``kept`` music (a re-score's kept scenes) is not sampled: inside each kept span its notes are
  fed through the model as tokens (teacher forcing, same conditioning), so the music after the
  span continues from them; the cuts inside kept spans are the kept music's.
"""
from __future__ import annotations

import bisect
import json
import logging
import time
from collections.abc import Callable, Sequence
from collections.abc import Generator as Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pretty_midi

from .. import models, progress
from ..errors import ModelError, OptionsError
from ..mood import SceneMood
from . import batching
from .batching import Entry
from .decoding import (
    NEG,
    Clock,
    SamplingOptions,
    cut_rules,
    fresh_chord_at_cuts,
    hold_tonic,
    keep_time_moving,
    limit_polyphony,
    logsumexp,
    release_long_notes,
    sample,
    steer_mode,
    well_formed,
)
from .kept import Forced, forced_spans, forced_tokens, outside_kept
from .vocab import Note, Vocab

if TYPE_CHECKING:
    from ..rescore import KeptSpan

logger = logging.getLogger(__name__)

Rule = Callable[[np.ndarray, Clock], None]
Conditioning = Callable[[int], tuple[float, float, float]]

MODEL_FILE = "generator.onnx"
#: the shipped builds of the same weights: int8 (8-bit weights, the default: faster, a quarter of
#: the size, held-out loss within 0.001 nats/token: onnx_models/README.md) and fp32
MODEL_FILES = {"fp32": MODEL_FILE, "int8": "generator.int8.onnx"}
#: the model interface this runtime runs (``onnx_models/training/export.py``): per-layer caches
#: used in place; the first inputs, then ``past_key_i``/``past_value_i`` per layer
INTERFACE = "kv-per-layer-v2"
FEEDS = ("input_ids", "valence", "arousal", "offset", "past_length")


@dataclass
class GenerationResult:
    midi: pretty_midi.PrettyMIDI
    tokens: list[int]
    notes: list[Note]
    seconds: float  # compute time
    steps: int  # model calls


class Generator:
    """An ONNX session plus what its metadata says about it."""

    def __init__(self, path: Path, threads: int = 0):
        self.path = path
        self.session = models.session(path, threads)
        meta = models.metadata(self.session)
        try:  # everything the runtime knows about the model comes from the model file itself
            self.vocab = Vocab.from_json(meta["emsync.vocab"])
            self.config = json.loads(meta["emsync.config"])
            self.label_stats = json.loads(meta.get("emsync.label_stats", "{}"))
            self.block_size = int(self.config["block_size"])
            self.cap = float(self.config["offset_cap"])
            self.n_layer, self.n_head = int(self.config["n_layer"]), int(self.config["n_head"])
            self.head_dim = int(self.config["n_embd"]) // self.n_head
            # int8 builds quantise each call's activations with one scale for all its rows, so a
            # take batched with others would not be the take decoded alone: only fp32 shares calls
            self.takes_share_calls = meta.get("emsync.precision", "fp32") == "fp32"
            if min(self.block_size, self.n_layer, self.n_head, self.head_dim) <= 0 or not self.cap > 0:
                raise ValueError(f"impossible sizes in its config {self.config}")
            interface = meta.get("emsync.interface", "stacked (before kv-per-layer-v2)")
            inputs, outputs = json.loads(meta["emsync.inputs"]), json.loads(meta["emsync.outputs"])
        except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
            raise ModelError(
                f"is not an emsync generator: its metadata is missing or unreadable ({type(exc).__name__}: {exc})",
                path=path,
                hint="export it with python -m onnx_models.training.export, or reinstall emsync",
            ) from None
        kv = [f"{kind}_{i}" for i in range(self.n_layer) for kind in ("key", "value")]
        self.past_names, self.present_names = [f"past_{k}" for k in kv], [f"present_{k}" for k in kv]
        if interface != INTERFACE or inputs != [*FEEDS, *self.past_names] or outputs != ["logits", *self.present_names]:
            raise ModelError(
                f"has the model interface {interface!r}, this emsync runs {INTERFACE!r}", path=path,
                hint="re-export it: python -m onnx_models.training.export --weights-onnx OLD.onnx --out NEW.onnx")

    @classmethod
    def load(cls, directory: Path | None = None, threads: int = 0, precision: str = "fp32") -> Generator:
        """The shipped model (verified against the manifest): ``precision`` ``"fp32"`` or ``"int8"``."""
        if precision not in MODEL_FILES:
            raise OptionsError(f"unknown precision {precision!r}", hint=f"choose one of: {', '.join(MODEL_FILES)}")
        return cls(models.find(MODEL_FILES[precision], directory), threads)

    # ------------------------------------------------------------------------------------
    def _run(self, ids: np.ndarray, val: np.ndarray, aro: np.ndarray, off: np.ndarray,
             cache: batching.Cache) -> np.ndarray:
        """One model call: the logits, the new entries' keys and values written into ``cache`` in
        place. ONNX Runtime's attention takes several new tokens on a filled cache only one row
        at a time, so such a call (kept music fed through) goes row by row."""
        rows, new = ids.shape
        if cache.length + new > cache.data.shape[4]:
            raise ValueError(f"{new} tokens after {cache.length} overflow a cache of {cache.data.shape[4]}")
        if cache.length and new > 1 and rows > 1:
            logits = np.concatenate([self._run(ids[r:r + 1], val[r:r + 1], aro[r:r + 1], off[r:r + 1], cache.row(r))
                                     for r in range(rows)])
            cache.length += new
            return logits
        feeds = {"input_ids": ids, "valence": val, "arousal": aro, "offset": off,
                 "past_length": np.array(cache.length, np.int64)}
        if cache.length == 0:  # the first call: ONNX Runtime returns the new entries, copied in
            empty = np.zeros((rows, self.n_head, 0, self.head_dim), np.float32)
            out = self.session.run(None, {**feeds, **dict.fromkeys(self.past_names, empty)})
            cache.data[:, :, :, :, :new] = np.stack(out[1:]).reshape(cache.data[:, :, :, :, :new].shape)
            cache.length = new
            return out[0]
        if cache.bound is None:
            cache.bound = self._bind(cache)
        io, inputs, logits, kv = cache.bound
        if new > 1:  # several tokens on a filled cache (one row): a binding of its own for this call
            io = self.session.io_binding()
            io.bind_output("logits")
            for name, value in feeds.items():
                io.bind_cpu_input(name, value)
            for past, present, value in zip(self.past_names, self.present_names, kv):
                io.bind_ortvalue_input(past, value)
                io.bind_ortvalue_output(present, value)
            self.session.run_with_iobinding(io)
            cache.length += new
            return io.get_outputs()[0].numpy()
        for name, value in feeds.items():  # one token a row: the bound input buffers, written in place
            inputs[name][...] = value
        self.session.run_with_iobinding(io)
        cache.length += 1
        return logits.copy()

    def _bind(self, cache: batching.Cache) -> tuple:
        """An IOBinding for one token a row on ``cache``: each layer's past and present are the
        cache's own memory, so a call writes its entries there and copies nothing; the inputs
        and the logits are buffers of their own, bound once. Returns the binding, the input
        buffers by name, the logits buffer, and the cache's OrtValues (the binding keeps
        pointers into all of them)."""
        import onnxruntime as ort

        rows = cache.rows
        io = self.session.io_binding()
        inputs = {"input_ids": np.zeros((rows, 1), np.int64), "valence": np.zeros((rows, 1), np.float32),
                  "arousal": np.zeros((rows, 1), np.float32), "offset": np.zeros((rows, 1), np.float32),
                  "past_length": np.zeros((), np.int64)}
        logits = np.zeros((rows, 1, self.vocab.size), np.float32)
        held = [ort.OrtValue.ortvalue_from_numpy(logits)]
        io.bind_ortvalue_output("logits", held[0])
        for name, buffer in inputs.items():
            held.append(ort.OrtValue.ortvalue_from_numpy(buffer))
            io.bind_ortvalue_input(name, held[-1])
        kv = []
        for j, (past, present) in enumerate(zip(self.past_names, self.present_names)):
            kv.append(ort.OrtValue.ortvalue_from_numpy(cache.data[j // 2, j % 2]))
            io.bind_ortvalue_input(past, kv[-1])
            io.bind_ortvalue_output(present, kv[-1])
        return io, inputs, logits, kv + held

    def _empty_cache(self, rows: int = 1) -> batching.Cache:
        """A cache for ``rows`` rows that holds the model's whole context."""
        return batching.Cache(np.zeros((self.n_layer, 2, rows, self.n_head, self.block_size, self.head_dim), np.float32))

    def _guide(self, logits: np.ndarray, g: float) -> np.ndarray:
        """The last step's scores: the model's, or guided (see :mod:`.decoding`): guidance
        chooses among the note-ons (which notes) and among the key tokens, each group keeping
        the model's total probability; when to move time on, and so when to land on a cut, is
        left to the model."""
        cond = logits[0, -1].astype(np.float64)
        if logits.shape[0] == 1 or g == 0.0:
            return cond
        ref = logits[1, -1].astype(np.float64)
        lc, lr = cond - logsumexp(cond), ref - logsumexp(ref)
        v = self.vocab
        for a, b in [(v.on_base, v.off_base)] + [(v.shift_end, v.size)] * bool(v.keys):  # the notes; a scene's key
            on = lc[a:b] + g * (lc[a:b] - lr[a:b])
            total = logsumexp(lc[a:b])
            lc[a:b] = on - logsumexp(on) + total  # lc is this call's own array
        return lc

    def generate(self, cuts: Sequence[float], duration: float, moods: Sequence[SceneMood],
                 options: SamplingOptions = SamplingOptions(), kept: Sequence[KeptSpan] = ()) -> GenerationResult:
        """Music for ``duration`` seconds with a chord on every cut; each token follows the mood
        of the scene it falls in (a mood takes effect at its ``start``; ``moods[i]`` is read
        when the music reaches scene ``i``, so it may be filled while the music is generated).
        Inside the ``kept`` spans the kept notes are fed instead of sampled (the returned MIDI
        holds them as far as the vocabulary plays them; the pipeline splices the exact ones in)."""
        return self.generate_many(cuts, duration, moods, [options], kept)[0]

    def generate_many(self, cuts: Sequence[float], duration: float, moods: Sequence[SceneMood],
                      options_list: Sequence[SamplingOptions],
                      kept: Sequence[KeptSpan] = ()) -> list[GenerationResult]:
        """One :meth:`generate` per options (the takes: each its own seed, clock and random
        stream), decoded together: their rows share each model call while they keep step, and
        each take's tokens are those :meth:`generate` gives it alone (an int8 build decodes the
        takes one after the other: its rows are not independent). ``seconds`` is the time of the
        whole call, shared by its takes."""
        forced = forced_spans(kept, self.vocab, duration)
        takes, clocks = [], []
        for options in options_list:
            clock, bounds = self._clock(cuts, duration, options, forced)
            cond = _conditioning(moods, bounds, self.vocab.shift_seconds, self.cap, options.use_offsets)
            clocks.append(clock)
            takes.append(batching.Take(self._decode(clock, cond, duration, options, forced),
                                       rows=2 if options.guidance > 0.0 else 1))
        t0 = time.perf_counter()
        self._drive(takes, clocks, duration)
        seconds = time.perf_counter() - t0
        results = []
        for take in takes:
            tokens, steps = take.result
            # hold the final chord (and whatever sounds) to the end
            notes = [n for n in self.vocab.decode(tokens, end=duration) if n.start < duration]
            results.append(GenerationResult(to_midi(notes, self.vocab, moods), tokens, notes, seconds, steps))
        logger.info("generated %d take(s), %d tokens (%d notes) for %.1f s of music in %.2f s (%.0fx real time)",
                    len(results), sum(len(r.tokens) for r in results), sum(len(r.notes) for r in results),
                    duration, seconds, duration / max(seconds, 1e-9))
        return results

    def _drive(self, takes: list[batching.Take], clocks: list[Clock], duration: float) -> None:
        """The takes decoded to their ends, a progress bar following their clocks."""
        unit = self.vocab.shift_seconds
        bar = progress.bar(total=round(duration * len(takes), 1), desc="generating", unit="s")
        shown = 0

        def moved() -> None:
            nonlocal shown
            now = sum(c.now for c in clocks)
            if now != shown:
                bar.update(round((now - shown) * unit, 2))
                shown = now

        try:
            for batch in [takes] if self.takes_share_calls else [[t] for t in takes]:
                batching.drive(batch, self._run, self._empty_cache, moved)
        finally:
            bar.close()

    def _clock(self, cuts: Sequence[float], duration: float, options: SamplingOptions,
               forced: Sequence[Forced] = ()) -> tuple[Clock, np.ndarray]:
        """The decoding clock (its targets: 0, the cuts, the final chord, none inside kept
        spans; time stops at each kept span's start) and the boundaries, in seconds, that the
        model is told about: the real cuts and the final chord, as in training."""
        unit = self.vocab.shift_seconds
        end = int(round(duration / unit))
        cut_units = sorted({int(round(c / unit)) for c in cuts if 0 < round(c / unit) < end})
        final = max(cut_units[-1] + 1 if cut_units else 1, end - int(round(options.final_hold / unit)))
        final = min(final, end)
        targets = [0] + [c for c in cut_units if c < final] + [final]
        bounds = np.array(sorted(set(cut_units) | {final}), float) * unit
        if not forced:
            return Clock(self.vocab, targets, end), bounds
        return Clock(self.vocab, outside_kept(targets, forced), end, stops=[f.start for f in forced]), bounds

    def _rules(self, options: SamplingOptions) -> list[Rule]:
        """The decoding rules, in order: the cut rules decide what may happen now, then long
        notes are released."""
        return [well_formed, hold_tonic(options.hold_tonic), cut_rules(options.guarantee_cuts),
                limit_polyphony(options.max_polyphony),
                release_long_notes(int(options.max_note / self.vocab.shift_seconds)),
                keep_time_moving(options.max_events), steer_mode(options.mode_steering),
                fresh_chord_at_cuts(options.fresh_chords)]

    def _decode(self, clock: Clock, cond: Conditioning, duration: float, options: SamplingOptions,
                forced: Sequence[Forced] = ()) -> Coroutine[batching.Request, np.ndarray, tuple[list[int], int]]:
        """Sample tokens until the clock is finished, feeding the kept music where it starts:
        a coroutine of model calls (:mod:`.batching`) returning the tokens and the number of calls."""
        v = self.vocab
        rng = np.random.default_rng(options.seed)
        rules = self._rules(options)
        window = min(options.context or self.block_size, self.block_size)
        history: list[Entry] = []  # token and its conditioning
        cached = 0  # entries in the model's cache
        tok = v.bos
        steps = 0
        out_tokens: list[int] = []
        pending = list(forced)
        while not clock.finished and clock.now <= clock.end:
            if pending and pending[0].start <= clock.now:
                kept = forced_tokens(pending.pop(0), clock)
                if kept:
                    tok, cached, calls = yield from self._force(kept, tok, clock, cond, history, cached, window)
                    steps += calls
                    out_tokens.extend(kept)
                    clock.resume()
            else:
                c = cond(clock.now)
                clock.valence = c[0]
                history.append((tok, *c))
                logits, cached = yield from self._step(history, cached, window)
                steps += 1
                tok = self._choose(logits, clock, rules, options, rng)
                clock.advance(tok)
                out_tokens.append(tok)
            if steps > 200 * max(1.0, duration) + 2000:  # a safety valve: a model that never advances time
                logger.warning("generation stopped after %d steps without reaching the end", steps)
                break
        return out_tokens, steps

    def _force(self, kept: list[int], tok: int, clock: Clock, cond: Conditioning, history: list[Entry],
               cached: int, window: int) -> Coroutine[batching.Request, np.ndarray, tuple[int, int, int]]:
        """Teacher forcing: ``tok`` and the ``kept`` tokens but the last go through the model
        (each with the conditioning a sampled token gets there) and the clock; the last is
        returned to be fed by the next step, with the cache length and the number of model calls."""
        fed = [(tok, *cond(clock.now))]
        for t in kept[:-1]:
            clock.advance(t)
            fed.append((t, *cond(clock.now)))
        clock.advance(kept[-1])
        history.extend(fed)
        cached, calls = yield from self._feed(history, len(fed), cached, window)
        return kept[-1], cached, calls

    def _feed(self, history: list[Entry], count: int, cached: int,
              window: int) -> Coroutine[batching.Request, np.ndarray, tuple[int, int]]:
        """The newest ``count`` entries of ``history`` into the cache: as many at once as the
        ``window`` holds; when it is full, a new window as in :meth:`_step`."""
        calls = 0
        done = len(history) - count
        while done < len(history):
            if cached >= window - 1:
                _, cached = yield from self._step(history[:done + 1], cached, window)
                done += 1
            else:
                k = min(len(history) - done, window - 1 - cached)
                yield batching.Request(history[done:done + k])
                cached += k
                done += k
            calls += 1
        return cached, calls

    def _step(self, history: list[Entry], cached: int,
              window: int) -> Coroutine[batching.Request, np.ndarray, tuple[np.ndarray, int]]:
        """The model on the newest entry; when the cache holds ``window - 1`` entries, on the
        last half of the history again from position 0 (a new window; the positions are learned
        absolute ones, so no cache carries over): the logits and the new cache length."""
        if cached >= window - 1:
            kept = history[-(window // 2):]
            logits = yield batching.Request(kept, fresh=True)
            return logits, len(kept)
        logits = yield batching.Request(history[-1:])
        return logits, cached + 1

    def _choose(self, logits: np.ndarray, clock: Clock, rules: list[Rule], options: SamplingOptions,
                rng: np.random.Generator) -> int:
        """The next token: guided scores, shaped by the rules, sampled."""
        v = self.vocab
        row = self._guide(logits, options.guidance)
        for rule in rules:
            rule(row, clock)
        tok = sample(row, options, rng)
        if row[tok] <= NEG / 2:  # every token was ruled out: move time on (never happens by design)
            logger.debug("no allowed token at %.2f s; shifting", clock.now * v.shift_seconds)
            tok = v.shift(1) if clock.now < clock.end else v.eos
        return tok


class _Scenes:
    """The mood of the scene playing at a time, for times that never go back: ``moods[i]`` is
    first read when the time reaches scene ``i`` (the end of scene ``i - 1``), so a sequence
    filled while the music is generated (the pipeline analyses scenes meanwhile) is waited on
    scene by scene, never all at once. Scenes are in time order; a scene takes effect at its
    ``start`` (and the first one before it)."""

    def __init__(self, moods: Sequence[SceneMood]):
        self.moods, self.count, self.index = moods, len(moods), 0
        self.mood: SceneMood | None = None
        self.next: SceneMood | None = None

    def at(self, t: float) -> SceneMood | None:
        if self.count and self.mood is None:
            self.mood = self.moods[0]
        while self.mood is not None and self.index + 1 < self.count and self.mood.end <= t + 1e-9:
            if self.next is None:
                self.next = self.moods[self.index + 1]
            if self.next.start > t + 1e-9:
                break
            self.index, self.mood, self.next = self.index + 1, self.next, None
        return self.mood


def _conditioning(moods: Sequence[SceneMood], bounds: np.ndarray, unit: float, cap: float,
                  use_offsets: bool) -> Conditioning:
    """``cond(t_units) -> (valence, arousal, offset)`` for times that never go back: the mood of
    the scene at that time (read when the time reaches it) and the seconds to the next boundary,
    capped at ``cap`` (always ``cap`` without ``use_offsets``)."""
    scenes = _Scenes(moods)
    edges = [float(b) for b in bounds]  # bisect on floats: np.searchsorted's index, without its call

    def cond(t_units: int) -> tuple[float, float, float]:
        t = t_units * unit
        mood = scenes.at(t)
        val, aro = (mood.valence, mood.arousal) if mood is not None else (0.0, 0.0)
        if use_offsets:
            j = bisect.bisect_left(edges, t - 1e-9)
            off = min(cap, edges[j] - t) if j < len(edges) else cap
        else:
            off = cap
        return val, aro, off

    return cond


def velocity(arousal: float) -> int:
    """Render velocity from arousal (the corpus has none): 56 (calm) to 100 (excited)."""
    return int(round(78 + 22 * max(-1.0, min(1.0, arousal))))


def to_midi(notes: Sequence[Note], vocab: Vocab, moods: Sequence[SceneMood]) -> pretty_midi.PrettyMIDI:
    """A MIDI file with one General MIDI instrument per group (programs from the model); a
    note's velocity follows the arousal of the scene it starts in (scenes read in time order,
    only as far as the notes go)."""
    pm = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    insts = [pretty_midi.Instrument(program=prog, name=f"EMSYNC {name}") for name, prog in zip(vocab.groups, vocab.programs)]
    scenes = _Scenes(moods)
    played = []
    for k in sorted(range(len(notes)), key=lambda k: notes[k].start):
        mood = scenes.at(notes[k].start)
        played.append((k, velocity(mood.arousal if mood is not None else 0.0)))
    for k, vel in sorted(played):
        n = notes[k]
        insts[n.group].notes.append(pretty_midi.Note(velocity=vel, pitch=int(n.pitch), start=float(n.start), end=float(n.end)))
    pm.instruments.extend(i for i in insts if i.notes)
    return pm
