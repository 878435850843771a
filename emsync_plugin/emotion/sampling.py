"""Which frames of a scene to decode: a few, placed where they are cheap to decode.

A scene gets ``max(2, min(6, round(2 × seconds)))`` frames, ~0.5 s apart where they follow each
other (the motion cue compares them). Where the file's index lists keyframes, chains start at
keyframes or where decoding for another chain reaches anyway. Measurements: ``docs/emotion.md``.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from .cues import AUDIO_RATE

CHAIN = 2  # frames per chain when a range is too long for its frames to follow each other
EDGE = 0.2  # seconds: chains keep this far from the range's ends (its first frame may be a transition)
LEAN = 0.5  # a chain may start this fraction of the frame gap outside its slot (towards a cheaper start)
KEY_COST = 4.0  # decoding a keyframe costs about as much as this many other frames (it has that many more bits)

Key = tuple[float, int]  # a keyframe: (presentation time in seconds, index timestamp)
_Member = tuple[float, "Key | None"]  # a planned frame of a chain: its time, the keyframe it sits on


@dataclass(frozen=True)
class AnalysisOptions:
    """How scenes are sampled: ``fps`` frames a second, ``1 / fps`` apart, but at most
    ``max_frames`` a scene (longer scenes: chains of frames ``1 / fps`` apart); ≤ 320 px;
    16 kHz mono; faces in at most ``face_frames`` frames a scene."""

    fps: float = 2.0
    max_frames: int = 6  # frames sampled per scene at most
    max_width: int = 320
    audio_rate: int = AUDIO_RATE
    faces: bool = True
    face_frames: int = 4  # at most this many of a scene's frames (spread over it) go through the face model
    thumbnail_width: int = 96
    max_audio_seconds: float = 600.0  # longer scenes: the sound of their first 10 minutes

    def __post_init__(self) -> None:
        if not (0.1 <= self.fps <= 30 and 2 <= self.max_frames <= 1000 and 32 <= self.max_width <= 4096
                and 4000 <= self.audio_rate <= 48000):
            raise ValueError(f"impossible analysis options {self}")


@dataclass(eq=False)
class Sample:
    """One frame a scene wants: the first decoded frame at or after ``time`` (media seconds)."""

    time: float
    follows: bool = False  # follows the sample before in a chain (~0.5 s after it: motion is measured)
    key_ts: int | None = None  # planned at this keyframe (its index timestamp): take that very frame
    anchor: Sample | None = None  # for the later frames of a chain: its first frame...
    offset: float = 0.0  # ... and how far after it
    frame: Any = None  # the chosen decoded frame (an av.VideoFrame, or a :class:`.pictures.Developed` one)
    frame_time: float = math.inf
    thumbnail: bool = False  # the scene's thumbnail is made from this frame


class _KeyMap:
    """The file's keyframes, ascending, and what decoding from them costs."""

    def __init__(self, keys: Sequence[Key] | None):
        self.keys = list(keys) if keys else []
        self.times = [k[0] for k in self.keys]

    def near(self, t: float, window: float) -> Key | None:
        """The keyframe closest to ``t`` within ``window`` seconds, if any."""
        if not self.times:
            return None
        i, stop = bisect.bisect_left(self.times, t - window), bisect.bisect_right(self.times, t + window)
        return min(self.keys[i:stop], key=lambda k: abs(k[0] - t)) if i < stop else None

    def cost(self, chosen: list[_Member], plan: dict[int, float], ref_rate: float) -> float:
        """Frames to decode for ``chosen`` given the runs from keyframes already in ``plan``
        (keyframe number → how far decoding from it reaches), which it extends."""
        total = 0.0
        for t, _ in chosen:
            g = bisect.bisect_right(self.times, t + 1e-6) - 1
            if g < 0:
                return math.inf
            end = plan.get(g)
            total += KEY_COST + (t - self.times[g]) * ref_rate if end is None else max(0.0, t - end) * ref_rate
            plan[g] = max(end if end is not None else -math.inf, t)
        return total

    def members(self, a: float, key: Key | None, size: int, slot_hi: float, gap: float) -> list[_Member]:
        """A chain of ``size`` frames from ``a``, each next one on a keyframe ~``gap`` on if there is one."""
        got: list[_Member] = [(a, key)]
        for _ in range(1, size):
            prev = got[-1][0]
            kb = self.near(prev + gap, 0.3 * gap)
            if kb is not None and kb[0] > slot_hi + gap:
                kb = None
            got.append((kb[0], kb) if kb else (prev + gap, None))
        return got


class _Slot(NamedTuple):
    """Where one chain may start: ``lo_ok`` .. ``hi_ok``, ideally at ``centre``; its slot ends at ``hi``."""

    lo_ok: float
    hi_ok: float
    centre: float
    hi: float
    size: int


def plan_samples(t0: float, t1: float, n: int, gap: float, keys: Sequence[Key] | None,
                 ref_rate: float = 12.5) -> list[Sample]:
    """Where to sample [t0, t1): ``n`` frames.

    When ``n`` frames ``gap`` apart span the range, they are spread evenly over it (each frame
    follows the one before; each moves to a keyframe within 30 % of their spacing). Otherwise
    they go in chains of ``CHAIN`` frames ``gap`` apart, one chain in each of equal slots of the
    range, each starting where it is cheapest to decode (``keys``: the file's keyframes
    ``(time, index timestamp)``, ascending, when its index lists them; ``ref_rate``: reference
    frames a second decoded on from a keyframe)."""
    duration = max(t1 - t0, 1e-6)
    keymap = _KeyMap(keys)
    if int(round(duration / gap)) <= n:
        return _spread(t0, duration, n, keymap)
    return _chains(t0, t1, duration, n, gap, keymap, ref_rate)


def _spread(t0: float, duration: float, n: int, keymap: _KeyMap) -> list[Sample]:
    step = duration / n
    out = []
    for k in range(n):
        t = t0 + (k + 0.5) * step
        key = keymap.near(t, 0.3 * step)
        out.append(Sample(key[0] if key else t, follows=k > 0, key_ts=key[1] if key else None))
    return out


def _chains(t0: float, t1: float, duration: float, n: int, gap: float, keymap: _KeyMap,
            ref_rate: float) -> list[Sample]:
    chain = max(2, min(CHAIN, n))
    chains = -(-n // chain)
    sizes = [n // chains + (1 if j < n % chains else 0) for j in range(chains)]
    width = duration / chains
    edge = min(EDGE, width / 8)
    runs: dict[int, float] = {}  # keyframe (index in keys) → how far decoding from it is planned
    prev_end = -math.inf  # where the chain before ends
    out: list[Sample] = []
    for j in range(chains):
        lo, hi = t0 + j * width, t0 + (j + 1) * width
        size = sizes[j]
        span = (size - 1) * gap
        lean = LEAN * gap
        after = sum(sizes[j + 1:]) * gap  # what the chains after this one need (with a gap before each)
        hi_ok = min(hi + lean, t1 - edge - after) - span  # a chain may lean into its neighbours' slots a little
        lo_ok = min(max(lo - lean, t0 + edge, prev_end + gap), hi_ok)
        slot = _Slot(lo_ok, hi_ok, lo + (width - span) / 2, hi, size)
        best = keymap.members(slot.centre, None, size, hi, gap)
        if keymap.times:
            best = _cheapest(keymap, slot, gap, runs, ref_rate, best)
        a = best[0][0]
        prev_end = best[-1][0]
        first: Sample | None = None
        for m, (t, key) in enumerate(best):
            out.append(Sample(t, follows=m > 0, key_ts=key[1] if key else None, anchor=first, offset=t - a))
            first = first or out[-1]
    return out


def _cheapest(keymap: _KeyMap, slot: _Slot, gap: float, runs: dict[int, float], ref_rate: float,
              central: list[_Member]) -> list[_Member]:
    """The chain of ``slot`` that costs least to decode (starting at a keyframe, as early as it
    may, or centred); among about as cheap (0.5 frame), the most central (to 50 ms; then a
    keyframe start). Adds its decoding to ``runs``."""
    times = keymap.times
    i, stop = bisect.bisect_left(times, slot.lo_ok - 1e-6), bisect.bisect_right(times, slot.hi_ok + 1e-6)
    options = [keymap.members(k[0], k, slot.size, slot.hi, gap) for k in keymap.keys[i:stop]]
    options += [keymap.members(slot.lo_ok, None, slot.size, slot.hi, gap), central]
    scored = [(keymap.cost(o, dict(runs), ref_rate), o[0][1] is None, abs(o[0][0] - slot.centre), o) for o in options]
    low = min(x[0] for x in scored)
    best = min((x for x in scored if x[0] <= low + 0.5), key=lambda x: (round(x[2] / 0.05), x[1]))[3]
    keymap.cost(best, runs, ref_rate)
    return best


class RangeSource(Protocol):
    """What the analysis of one range reads: :class:`.media.MediaReader`, or a :class:`.batches.FileBatch`."""

    path: str

    def frames(self, start: float, end: float) -> int: ...

    def read(self, start: float, end: float, on_frame: Callable[..., None], want_audio: bool = True
             ) -> np.ndarray | None: ...
