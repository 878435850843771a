"""The learned generator: the shipped ONNX music transformer, decoded with a KV cache.

``Generator.load()`` verifies and opens ``onnx_models/generator.onnx`` and reads everything it
needs from the model's own metadata (vocabulary, context length, offset cap, label statistics).
``generate(cuts, duration, moods, options)`` returns a ``pretty_midi.PrettyMIDI``:

* every token is conditioned on the valence/arousal of the scene it falls in (a scene's mood
  takes effect at its cut) and on the seconds to the next cut, capped as in training;
* the decoding rules of :mod:`.decoding` keep the stream well formed, land a chord on every
  cut (when ``guarantee_cuts``), end on a final chord and never pass the timeline's end;
* longer timelines than the context are generated in windows: when the cache is full, the
  last half of the tokens is fed again from position 0 and generation goes on.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi

from .. import models, progress
from ..errors import ModelError, OptionsError
from .decoding import (
    NEG,
    Clock,
    SamplingOptions,
    cut_rules,
    fresh_chord_at_cuts,
    keep_time_moving,
    limit_polyphony,
    logsumexp,
    release_long_notes,
    sample,
    steer_mode,
    well_formed,
)
from .vocab import Note, Vocab

logger = logging.getLogger(__name__)

MODEL_FILE = "generator.onnx"
#: the shipped builds of the same weights: fp32, and int8 (8-bit weights, ~1.3x faster, a quarter
#: of the size, held-out loss within 0.001 nats/token: onnx_models/README.md)
MODEL_FILES = {"fp32": MODEL_FILE, "int8": "generator.int8.onnx"}


@dataclass(frozen=True)
class SceneMood:
    start: float
    end: float
    valence: float
    arousal: float


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
            if min(self.block_size, self.n_layer, self.n_head, self.head_dim) <= 0 or not self.cap > 0:
                raise ValueError(f"impossible sizes in its config {self.config}")
        except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
            raise ModelError(
                f"is not an emsync generator: its metadata is missing or unreadable ({type(exc).__name__}: {exc})",
                path=path,
                hint="export it with python -m onnx_models.training.export, or reinstall emsync",
            ) from None

    @classmethod
    def load(cls, directory: Path | None = None, threads: int = 0, precision: str = "fp32") -> Generator:
        """The shipped model (verified against the manifest): ``precision`` ``"fp32"`` or ``"int8"``."""
        if precision not in MODEL_FILES:
            raise OptionsError(f"unknown precision {precision!r}", hint=f"choose one of: {', '.join(MODEL_FILES)}")
        return cls(models.find(MODEL_FILES[precision], directory), threads)

    # ------------------------------------------------------------------------------------
    def _run(self, ids, val, aro, off, past, guided: bool):
        """One model call on ``ids`` with their conditioning; with ``guided`` a second row runs
        the same tokens and offsets on the neutral mood (batch of 2, one call)."""
        rows = 2 if guided else 1
        zeros = [0.0] * len(ids)
        return self.session.run(
            ["logits", "present_key_values"],
            {"input_ids": np.asarray([ids] * rows, np.int64),
             "valence": np.asarray([val, zeros][:rows], np.float32),
             "arousal": np.asarray([aro, zeros][:rows], np.float32),
             "offset": np.asarray([off] * rows, np.float32),
             "past_key_values": past},
        )

    def _empty_past(self, rows: int = 1):
        return np.zeros((self.n_layer, 2, rows, self.n_head, 0, self.head_dim), np.float32)

    def _guide(self, logits: np.ndarray, g: float) -> np.ndarray:
        """The last step's scores: the model's, or guided (see :mod:`.decoding`): guidance
        chooses among the note-ons (which notes), whose total probability stays the model's;
        when to move time on, and so when to land on a cut, is left to the model."""
        cond = logits[0, -1].astype(np.float64)
        if logits.shape[0] == 1 or g == 0.0:
            return cond
        ref = logits[1, -1].astype(np.float64)
        lc, lr = cond - logsumexp(cond), ref - logsumexp(ref)
        a, b = self.vocab.on_base, self.vocab.off_base
        on = lc[a:b] + g * (lc[a:b] - lr[a:b])
        out = lc.copy()
        out[a:b] = on - logsumexp(on) + logsumexp(lc[a:b])
        return out

    def generate(self, cuts: Sequence[float], duration: float, moods: Sequence[SceneMood],
                 options: SamplingOptions = SamplingOptions()) -> GenerationResult:
        v = self.vocab
        unit = v.shift_seconds
        rng = np.random.default_rng(options.seed)
        end = int(round(duration / unit))
        cut_units = sorted({int(round(c / unit)) for c in cuts if 0 < round(c / unit) < end})
        final = max(cut_units[-1] + 1 if cut_units else 1, end - int(round(options.final_hold / unit)))
        final = min(final, end)
        targets = [0] + [c for c in cut_units if c < final] + [final]
        clock = Clock(v, targets, end)
        # order matters: the cut rules decide what may happen now, then long notes are released
        rules = [well_formed, cut_rules(options.guarantee_cuts), limit_polyphony(options.max_polyphony),
                 release_long_notes(int(options.max_note / unit)), keep_time_moving(options.max_events),
                 steer_mode(options.mode_steering), fresh_chord_at_cuts(options.fresh_chords)]
        # the model is told about the real cuts (and the final chord), as in training
        bounds = np.array(sorted(set(cut_units) | {final}), float) * unit
        starts = np.array([m.start for m in moods]) if moods else np.zeros(1)

        def cond(t_units):
            t = t_units * unit
            i = max(0, int(np.searchsorted(starts, t + 1e-9, side="right")) - 1) if moods else 0
            val, aro = (moods[i].valence, moods[i].arousal) if moods else (0.0, 0.0)
            if options.use_offsets:
                j = np.searchsorted(bounds, t - 1e-9)
                off = min(self.cap, bounds[j] - t) if j < len(bounds) else self.cap
            else:
                off = self.cap
            return val, aro, off

        t0 = time.perf_counter()
        history: list[tuple[int, float, float, float]] = []  # token and its conditioning
        guided = options.guidance > 0.0
        past = self._empty_past(2 if guided else 1)
        tok = v.bos
        steps = 0
        out_tokens: list[int] = []
        bar = progress.bar(total=round(duration, 1), desc="generating", unit="s")
        while not clock.finished and clock.now <= end:
            c = cond(clock.now)
            clock.valence = c[0]
            history.append((tok, *c))
            if past.shape[4] >= self.block_size - 1:  # window: re-feed the last half
                keep = history[-(self.block_size // 2):]
                past = self._empty_past(2 if guided else 1)
                ids, va, ar, of = zip(*keep)
                logits, past = self._run(list(ids), list(va), list(ar), list(of), past, guided)
            else:
                logits, past = self._run([tok], [c[0]], [c[1]], [c[2]], past, guided)
            steps += 1
            row = self._guide(logits, options.guidance)
            for rule in rules:
                rule(row, clock)
            tok = sample(row, options, rng)
            if row[tok] <= NEG / 2:  # every token was ruled out: move time on (never happens by design)
                logger.debug("no allowed token at %.2f s; shifting", clock.now * unit)
                tok = v.shift(1) if clock.now < end else v.eos
            before = clock.now
            clock.advance(tok)
            out_tokens.append(tok)
            if clock.now != before:
                bar.update(round((clock.now - before) * unit, 2))
            if steps > 200 * max(1.0, duration) + 2000:  # a safety valve: a model that never advances time
                logger.warning("generation stopped after %d steps without reaching the end", steps)
                break
        bar.close()
        seconds = time.perf_counter() - t0
        # hold the final chord (and whatever sounds) to the end
        notes = v.decode(out_tokens, end=duration)
        notes = [n for n in notes if n.start < duration]
        midi = to_midi(notes, v, moods)
        logger.info("generated %d tokens (%d notes) for %.1f s of music in %.2f s (%.0fx real time)",
                    len(out_tokens), len(notes), duration, seconds, duration / max(seconds, 1e-9))
        return GenerationResult(midi, out_tokens, notes, seconds, steps)


def velocity(arousal: float) -> int:
    """Render velocity from arousal (the corpus has none): 56 (calm) to 100 (excited)."""
    return int(round(78 + 22 * max(-1.0, min(1.0, arousal))))


def to_midi(notes: Sequence[Note], vocab: Vocab, moods: Sequence[SceneMood]) -> pretty_midi.PrettyMIDI:
    """A MIDI file with one General MIDI instrument per group (programs from the model)."""
    pm = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    insts = [pretty_midi.Instrument(program=prog, name=f"EMSYNC {name}") for name, prog in zip(vocab.groups, vocab.programs)]
    starts = np.array([m.start for m in moods]) if moods else np.zeros(1)
    for n in notes:
        i = max(0, int(np.searchsorted(starts, n.start + 1e-9, side="right")) - 1) if moods else 0
        vel = velocity(moods[i].arousal if moods else 0.0)
        insts[n.group].notes.append(pretty_midi.Note(velocity=vel, pitch=int(n.pitch), start=float(n.start), end=float(n.end)))
    pm.instruments.extend(i for i in insts if i.notes)
    return pm
