"""Decoding: sampling options and the small rules that shape each step's logits.

A frozen :class:`SamplingOptions`, a :class:`Clock` that follows musical time and what is
sounding as tokens are chosen, and rules ``rule(logits, clock) -> None`` that mask impossible or
forbidden tokens in place: the boundary guarantee (a chord lands exactly on every cut), emotion
guidance, mode steering towards the asked valence, fresh chords at cuts, and limits that keep
the stream well formed. Why each rule is as it is, with its measurements: docs/music.md.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionsError
from .features import key_correlations, key_profiles
from .vocab import Vocab

NEG = -1e9
TONIC_ONSETS = 8  # note-ons before mode steering reads a key
RECENT_DECAY = 0.95  # the recent pitch-class histogram: an onset's weight halves over ~14 onsets


@dataclass(frozen=True)
class SamplingOptions:
    """How to sample. Defaults tuned on the shipped model (see onnx_models/README.md)."""

    temperature: float = 1.0
    top_p: float = 0.9
    seed: int = 0
    guarantee_cuts: bool = True  # the decoder forces a chord on every cut
    use_offsets: bool = True  # False withholds boundary offsets (a control for benchmarks)
    final_hold: float = 2.0  # seconds the final chord rings before the timeline ends
    max_note: float = 3.0  # seconds; longer notes are released
    max_polyphony: int = 6  # notes sounding at once
    max_events: int = 24  # tokens at one instant before time must move on
    guidance: float = 1.0  # emotion guidance on the note-ons: 0 is the model alone
    mode_steering: float = 2.0  # nats a step moves the mode towards the valence (0: off)
    fresh_chords: float = 2.0  # nats a cut's chord loses per pitch class held over from before the cut
    hold_tonic: bool = True  # a model with key tokens keeps its first tonic at every cut (it still picks the mode)
    context: int = 0  # tokens the decoder's window holds at most (0: the model's whole context); a new window keeps half


    def __post_init__(self):
        if not (0.05 <= self.temperature <= 5.0):
            raise OptionsError(f"temperature {self.temperature} is out of range", hint="use 0.05 to 5 (default 1.0)")
        if not (0.0 < self.top_p <= 1.0):
            raise OptionsError(f"top-p {self.top_p} is out of range", hint="use a value in (0, 1] (default 0.9)")
        if not (0.0 <= self.guidance <= 5.0):
            raise OptionsError(f"guidance {self.guidance} is out of range", hint="use 0 (off) to 5")
        if not (0.0 <= self.fresh_chords <= 20.0):
            raise OptionsError(f"fresh chords {self.fresh_chords} is out of range", hint="use 0 (off) to 20")
        if not (0.0 <= self.mode_steering <= 10.0):
            raise OptionsError(f"mode steering {self.mode_steering} is out of range", hint="use 0 (off) to 10")
        if self.context != 0 and not 32 <= self.context <= 65536:
            raise OptionsError(f"context {self.context} tokens is out of range",
                               hint="use 0 (the model's whole context) or at least 32 tokens")
        if not (0.0 <= self.final_hold <= 10.0):
            raise OptionsError(f"final hold {self.final_hold} s is out of range", hint="use 0 to 10 s")


@dataclass
class Clock:
    """Musical state while decoding: time, sounding notes, which cut is next, chord progress."""

    vocab: Vocab
    cuts: list[int]  # in shift units, ascending; the last one is the final chord
    end: int  # timeline end in shift units
    now: int = 0
    sounding: dict = field(default_factory=dict)  # (group, pitch) -> start unit
    next_cut: int = 0  # index into cuts of the first cut not yet satisfied
    chord_open: bool = False  # a CHORD token was emitted at `now`
    onsets_now: int = 0  # note-ons at `now` since the CHORD token
    events_now: int = 0  # tokens since time last moved
    finished: bool = False
    valence: float = 0.0  # the mood now (set by the generator before each step)
    onsets: int = 0  # note-ons so far
    pc_recent: np.ndarray = field(default_factory=lambda: np.zeros(12))  # note-ons per pitch class, fading (RECENT_DECAY an onset)
    before_cut: frozenset = frozenset()  # pitch classes sounding when time reached the current cut
    stops: list[int] = field(default_factory=list)  # kept music starts here (units, ascending): time stops on them
    _keys: dict = field(default_factory=dict, repr=False)  # (onsets, major) -> key: read once per onset
    key_due: bool = False  # a key token comes next (a vocabulary with keys: at the start and at each cut)
    tonic: int = -1  # the pitch class of the latest key token (keys=24), -1 before the first

    def __post_init__(self):
        self.key_due = bool(self.vocab.keys)

    def key(self, major: bool) -> int:
        """The best Krumhansl-Kessler key of the recent onsets among the major (0-11: tonic C..B)
        or the minor ones (12-23); -1 before ``TONIC_ONSETS`` onsets."""
        if self.onsets < TONIC_ONSETS:
            return -1
        found = self._keys.get((self.onsets, major))
        if found is None:
            r = key_correlations(self.pc_recent)
            found = int(np.argmax(r[:12])) if major else 12 + int(np.argmax(r[12:]))
            self._keys = {(self.onsets, major): found}
        return found

    @property
    def striking_cut_chord(self) -> bool:
        """The chord on a cut is being struck (a ``CHORD`` token at the cut's instant)."""
        return self.chord_open and self.cut == self.now

    @property
    def cut(self) -> int | None:
        return self.cuts[self.next_cut] if self.next_cut < len(self.cuts) else None

    @property
    def stop(self) -> int | None:
        """The first start of kept music at or after now: sampled time may not cross it."""
        i = bisect.bisect_left(self.stops, self.now)
        return self.stops[i] if i < len(self.stops) else None

    def resume(self) -> None:
        """After forced (kept) music: the next cut is the first at or after now; at the end, or
        with no cut left, decoding is over."""
        self.next_cut = bisect.bisect_left(self.cuts, self.now)
        self.key_due = bool(self.vocab.keys)  # kept music ends where a scene starts
        if self.now >= self.end or self.next_cut >= len(self.cuts):
            self.finished = True

    def advance(self, token: int) -> None:
        v = self.vocab
        kind = v.kind(token)
        self.events_now += 1
        if kind == "shift":
            before = self.now
            self.now += v.shift_units(token)
            self.chord_open, self.onsets_now, self.events_now = False, 0, 0
            if self.cut == self.now:  # arrived on a cut: remember the harmony it leaves
                self.before_cut = frozenset(p % 12 for _, p in self.sounding)
            if v.keys and any(before < c <= self.now for c in self.cuts[self.next_cut:]):
                self.key_due = True  # a new scene: its key is stated first
            # cuts passed without a chord (no guarantee) are skipped; never the final chord
            while self.cut is not None and self.cut < self.now and self.next_cut < len(self.cuts) - 1:
                self.next_cut += 1
        elif token == v.chord:
            self.chord_open, self.onsets_now = True, 0
        elif kind == "on":
            self.sounding[v.group_pitch(token)] = self.now
            self.onsets += 1
            self.pc_recent *= RECENT_DECAY
            self.pc_recent[v.group_pitch(token)[1] % 12] += 1
            if self.chord_open:
                self.onsets_now += 1
                if self.onsets_now >= v.chord_notes and self.cut is not None and abs(self.cut - self.now) == 0:
                    self.next_cut += 1
                    if self.next_cut >= len(self.cuts):
                        self.finished = True
        elif kind == "off":
            self.sounding.pop(v.group_pitch(token), None)
        elif kind == "key":
            self.key_due = False
            if v.keys == 24:
                self.tonic = int(v.key_of(token)[0] or 0)
        elif token == v.eos:
            self.finished = True


# ---- rules -----------------------------------------------------------------------------------


def well_formed(logits: np.ndarray, clock: Clock) -> None:
    """No PAD/BOS/EOS; no note-off for a silent note, nor for one that started at this very
    instant (a note lasts at least one time unit: a chord released where it was struck would
    vanish); no second note-on for a sounding one; a key token where a scene starts, and
    nowhere else."""
    v = clock.vocab
    logits[v.pad] = logits[v.bos] = logits[v.eos] = NEG
    if v.keys:
        if clock.key_due:
            logits[:v.shift_end] = NEG
            return
        logits[v.shift_end:] = NEG
    off_ok = np.zeros(v.shift_base - v.off_base, bool)
    for (g, p), start in clock.sounding.items():
        idx = v.note_on(g, p) - v.on_base
        logits[v.on_base + idx] = NEG
        off_ok[idx] = start < clock.now
    logits[v.off_base:v.shift_base][~off_ok] = NEG
    if clock.chord_open:
        logits[v.chord] = NEG


def hold_tonic(on: bool):
    """At a cut, a model with tonic-and-mode key tokens may change the mode but not the tonic
    it stated first: trained with key changes at cuts, it would otherwise wander through keys
    that no scene asked for."""

    def rule(logits: np.ndarray, clock: Clock) -> None:
        v = clock.vocab
        if not on or v.keys != 24 or not clock.key_due or clock.tonic < 0:
            return
        keep = [v.key(True, clock.tonic), v.key(False, clock.tonic)]
        kept = logits[keep].copy()
        logits[v.shift_end:] = NEG
        logits[keep] = kept

    return rule


def release_long_notes(max_units: int):
    """A note sounding ``max_units`` or longer must be released before anything else happens
    (unless releasing is not allowed at this step)."""

    def rule(logits: np.ndarray, clock: Clock) -> None:
        v = clock.vocab
        stale = [k for k, start in clock.sounding.items() if clock.now - start >= max_units]
        if stale:  # only releases are allowed until they are gone (when releasing is allowed now)
            keep = np.array([v.note_off(*k) for k in stale])
            keep = keep[logits[keep] > NEG / 2]
            if len(keep):
                kept = logits[keep].copy()
                logits[:] = NEG
                logits[keep] = kept

    return rule


def limit_polyphony(max_sounding: int):
    """At most ``max_sounding`` notes at once: beyond it, new notes wait for releases. The
    chord at a cut is never blocked: before its CHORD token only releases are allowed until
    there is room for it."""

    def rule(logits: np.ndarray, clock: Clock) -> None:
        v = clock.vocab
        n = len(clock.sounding)
        at_cut = clock.cut is not None and clock.cut == clock.now
        if at_cut and clock.chord_open:
            return  # the chord's notes
        room = max_sounding - (v.chord_notes if at_cut else 0)
        if n >= max_sounding or (at_cut and n > room):
            logits[v.on_base:v.off_base] = NEG
            if at_cut and n > room:
                logits[v.chord] = NEG  # release first, then the chord

    return rule


def keep_time_moving(max_events: int):
    """After ``max_events`` tokens at one instant, only time shifts are allowed (no endless
    re-striking at one point in time)."""

    def rule(logits: np.ndarray, clock: Clock) -> None:
        v = clock.vocab
        if clock.events_now < max_events:
            return
        shifts = logits[v.shift_base:v.shift_end]
        if (shifts > NEG / 2).any():
            logits[:v.shift_base] = NEG

    return rule


def cut_rules(guarantee: bool):
    """Clamp time to the next cut and (with the guarantee) require a chord there; never cross
    the start of kept music (the generator feeds it there)."""

    def rule(logits: np.ndarray, clock: Clock) -> None:
        v = clock.vocab
        shifts = logits[v.shift_base:v.shift_end]
        limit = clock.end - clock.now  # never cross the end
        if clock.cuts and clock.cuts[-1] >= clock.now:  # nor the final chord, even past other cuts
            limit = min(limit, clock.cuts[-1] - clock.now)
        stop = clock.stop
        if stop is not None:
            limit = min(limit, stop - clock.now)
        cut = clock.cut
        final = clock.next_cut == len(clock.cuts) - 1
        if cut is not None and (guarantee or final):
            limit = min(limit, cut - clock.now)
            if cut == clock.now:
                shifts[:] = NEG  # stay here until the chord is complete
                if not clock.chord_open:  # first the CHORD token (releases are still allowed)
                    logits[v.on_base:v.off_base] = NEG
                else:  # then its notes
                    logits[v.off_base:v.shift_base] = NEG
                return
        if limit <= 0:
            shifts[:] = NEG
            return
        if limit < v.max_shift:
            shifts[limit:] = NEG

    return rule


def steer_mode(strength: float):
    """Move the mode towards the valence: note-ons gain ``strength * |valence|`` times the
    Krumhansl-Kessler profile (harmonic in minor) of the key the music is in, read in the asked
    mode (a model with tonic-and-mode key tokens states the tonic); the note-ons keep their
    total probability, and the chord on a cut is left alone. A scene's key token (a vocabulary
    with ``keys``): the major ones gain ``strength * valence`` nats, the minor ones lose as much."""
    profiles = key_profiles()
    profiles = profiles / np.abs(profiles).max(axis=1, keepdims=True)
    for t in range(12):  # minor: the harmonic minor's leading tone, not the relative major's tonic
        profiles[12 + t, (t + 10) % 12] = -1.0
        profiles[12 + t, (t + 11) % 12] = 0.5

    tiled: dict[Vocab, np.ndarray] = {}  # per vocabulary: each key's profile on its note-ons

    def rule(logits: np.ndarray, clock: Clock) -> None:
        if strength <= 0.0 or clock.valence == 0.0:
            return
        if clock.key_due:  # a scene's key: the asked mode gains, the other loses
            v = clock.vocab
            half = v.shift_end + v.keys // 2  # the major keys, then the minor ones
            logits[v.shift_end:half] += strength * clock.valence
            logits[half:v.size] -= strength * clock.valence
            return
        if clock.striking_cut_chord:
            return  # the chord on a cut is the model's (and fresh_chord_at_cuts'): the harmony moves there
        if clock.tonic >= 0:  # the key the model stated, in the asked mode
            key = clock.tonic + (0 if clock.valence > 0 else 12)
        else:  # else the key the notes are in, read in the asked mode
            key = clock.key(major=clock.valence > 0)
        if key < 0:
            return
        v = clock.vocab
        if v not in tiled:
            pcs = (np.arange(v.n_pitches) + v.pitch_min) % 12
            tiled[v] = np.tile(profiles[:, pcs], len(v.groups))
        bias = strength * abs(clock.valence) * tiled[v][key]
        on = logits[v.on_base:v.off_base]
        allowed = np.flatnonzero(on > NEG / 2)
        if not allowed.size:
            return
        chosen = on[allowed]
        before = logsumexp(chosen)
        chosen += bias[allowed]
        # steering picks *which* note, not *whether* a note: the note-ons keep their total
        # probability against time shifts and the rest (a tilt towards the notes the model
        # already favours made notes likelier than the shift that lands on a cut)
        chosen -= logsumexp(chosen) - before
        on[allowed] = chosen

    return rule


def logsumexp(x: np.ndarray) -> float:
    """log(sum(exp(x))), computed without overflow."""
    m = float(x.max())
    return m + math.log(float(np.exp(x - m).sum()))


def fresh_chord_at_cuts(penalty: float):
    """The chord on a cut should change the harmony: its note-ons of pitch classes that were
    sounding when time reached the cut lose ``penalty`` (the model then picks its next most
    likely chord instead of re-striking the one it holds; a shared note still may stay)."""

    def rule(logits: np.ndarray, clock: Clock) -> None:
        if penalty <= 0.0 or not clock.before_cut or not clock.striking_cut_chord:
            return
        v = clock.vocab
        pcs = (np.arange(v.n_pitches) + v.pitch_min) % 12
        held = np.isin(pcs, list(clock.before_cut))
        on = logits[v.on_base:v.off_base].reshape(len(v.groups), v.n_pitches)
        on[:, held] = np.where(on[:, held] > NEG / 2, on[:, held] - penalty, on[:, held])

    return rule


def sample(logits: np.ndarray, options: SamplingOptions, rng: np.random.Generator) -> int:
    """Temperature and nucleus (top-p) sampling over the allowed tokens."""
    x = logits.astype(np.float64)
    if options.temperature != 1.0:
        x /= options.temperature
    x -= x.max()
    p = np.exp(x)
    p[logits <= NEG / 2] = 0.0
    total = p.sum()
    if total <= 0 or not math.isfinite(total):
        return int(np.argmax(logits))
    p /= total
    if options.top_p < 1.0:
        order = np.argsort(-p)
        cum = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cum, options.top_p) + 1)]
        q = np.zeros_like(p)
        q[keep] = p[keep]
        p = q / q.sum()
    # what rng.choice(len(p), p=p) draws (the same uniform number, the same token), without its checks
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    return int(cdf.searchsorted(rng.random(), side="right"))
