"""Scenes analysed together: the sampled frames and the sound of all their ranges of a file, each
stretch of the file decoded once.

An edit often takes several shots from one stretch of a file, and in long-GOP footage every
sampled frame costs the decoding from its keyframe. A :class:`FileBatch` plans the samples of
each of its ranges (:meth:`.media.MediaReader.plan`, as a range read alone would), sorts all of
them by time and decodes them in a few contiguous parts, each from the keyframes it needs, so a
GOP is decoded at most once per batch; the frames are kept only as small RGB pictures
(:class:`.pictures.Developed`). The sound of its ranges is read in one pass, overlapping ranges
merged. A thread that needs the file's ranges takes on a part nobody has taken yet, then waits
for the parts the others are decoding. A file that cannot be read this way (still pictures, no
keyframe index, an index that misled, any error) is left to the range-by-range reader, which
reports its own errors. Measurements: ``docs/emotion.md``.
"""
from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .media import MediaReader
from .pictures import Developed
from .sampling import KEY_COST, AnalysisOptions, Key, Sample

logger = logging.getLogger(__name__)

#: a file's samples in a batch are split into parts for several threads only when there are at
#: least this many a part (each thread that takes a part opens the file: ~10 ms)
SAMPLES_PER_PART = 24

Range = tuple[float, float]  # a source range (start, end) in seconds, as the scene gives it
Task = Callable[[MediaReader], None]


class UnbatchedError(Exception):
    """The file's ranges are read one by one instead (why: the message)."""


class FileBatch:
    """Ranges of one media file, decoded together by whichever threads need them (see the module)."""

    def __init__(self, media: str, ranges: Sequence[Range], options: AnalysisOptions, parts: int = 2):
        self.path = media
        self.ranges = list(dict.fromkeys(ranges))
        self.options = options
        self.parts = max(1, parts)
        self._cond = threading.Condition()
        self._planned = False
        self._failed = False
        self._todo: list[Task] = []
        self._running = 0
        self._samples: dict[Range, list[Sample]] = {}
        self._spans: dict[Range, tuple[float, float]] = {}  # media time of each range
        self._sound: dict[Range, np.ndarray | None] = {}

    # -- what analyze_source reads (the part of MediaReader it uses) ---------------------------

    def has(self, start: float, end: float) -> bool:
        """Whether range [start, end) was decoded here."""
        return not self._failed and (start, end) in self._samples

    def frames(self, start: float, end: float) -> int:
        return len(self._samples[(start, end)])

    def read(self, start: float, end: float, on_frame: Callable[..., None], want_audio: bool = True) -> np.ndarray | None:
        """As :meth:`.media.MediaReader.read`, from what was decoded (frames are :class:`.pictures.Developed`)."""
        for k, s in enumerate(self._samples[(start, end)]):
            on_frame(k, s.frame, s.follows)
        return self._sound.get((start, end)) if want_audio else None

    def release(self, start: float, end: float) -> None:
        """Forget range [start, end) (its scene is analysed)."""
        self._samples.pop((start, end), None)
        self._sound.pop((start, end), None)

    # -- decoding ------------------------------------------------------------------------------

    def ready(self, reader_for: Callable[[str], MediaReader]) -> bool:
        """Decode the ranges (this thread taking parts nobody has taken) and wait until all are
        decoded; False when they are to be read one by one. ``reader_for(path)``: the calling
        thread's own reader of a file."""
        with self._cond:
            if not self._planned:
                self._planned = True
                self._attempt(lambda: self._plan(reader_for(self.path)))
            while not self._failed:
                if self._todo:
                    task = self._todo.pop(0)
                    self._running += 1
                    self._cond.release()
                    try:
                        ok = self._attempt(_bound(task, reader_for, self.path))
                    finally:
                        self._cond.acquire()
                    self._running -= 1
                    self._failed = self._failed or not ok
                    self._cond.notify_all()
                elif self._running:
                    self._cond.wait()
                else:
                    return True
            return False

    def _attempt(self, job: Callable[[], None]) -> bool:
        try:
            job()
            return True
        except UnbatchedError as exc:
            logger.debug("%s: read range by range (%s)", self.path, exc)
        except Exception as exc:  # the range-by-range reader reports it, scene by scene
            logger.debug("%s: read range by range (%s: %s)", self.path, type(exc).__name__, exc)
        self._failed = True
        return False

    def _plan(self, reader: MediaReader) -> None:
        """Plan every range's samples and split them into parts (plus one for the sound)."""
        if reader.video is None or reader.still:
            raise UnbatchedError("no moving picture")
        everything: list[Sample] = []
        keys: list[Key] = []
        for r in self.ranges:
            t0, t1 = self._spans[r] = reader.media_range(*r)
            n = reader.frames(*r)
            samples, found = reader.plan(t0, t1, n)
            if not found:
                raise UnbatchedError("no keyframe index")
            keys = found if len(found) > len(keys) else keys
            samples[n // 2].thumbnail = True
            self._samples[r] = samples
            everything += samples
        everything.sort(key=lambda s: s.time)
        parts = min(self.parts, max(1, len(everything) // SAMPLES_PER_PART))
        tasks = [_decoding(chunk, keys, self.options)
                 for chunk in _parts(everything, keys, parts, 0.5 / reader.frame_rate, reader.frame_rate)]
        if reader.audio is None:
            self._sound = dict.fromkeys(self.ranges)
        elif len(tasks) == 1:  # one part: the same thread reads the sound (no second reader of the file)
            tasks = [_both(tasks[0], self._read_sound)]
        else:
            tasks.insert(0, self._read_sound)
        self._todo += tasks

    def _read_sound(self, reader: MediaReader) -> None:
        """The sound of every range, overlapping ranges read once (each at most the options' cap long)."""
        rate, cap = self.options.audio_rate, self.options.max_audio_seconds
        merged: list[tuple[float, float, list[Range]]] = []
        for t0, t1, r in sorted((t0, min(t1, t0 + cap), r) for r, (t0, t1) in self._spans.items()):
            if merged and t0 <= merged[-1][1]:
                a, b, rs = merged[-1]
                merged[-1] = (a, max(b, t1), rs + [r])
            else:
                merged.append((t0, t1, [r]))
        for a, b, rs in merged:
            sound = reader.sound.read(a, b)
            for r in rs:
                t0, t1 = self._spans[r]
                first = int(round((t0 - a) * rate))
                self._sound[r] = sound[first:first + int(round((min(t1, t0 + cap) - t0) * rate))].copy()


def _bound(task: Task, reader_for: Callable[[str], MediaReader], path: str) -> Callable[[], None]:
    return lambda: task(reader_for(path))


def _parts(samples: list[Sample], keys: Sequence[Key], parts: int, tol: float, rate: float) -> list[list[Sample]]:
    """``samples`` (sorted by time) in up to ``parts`` contiguous runs of about equal decoding cost,
    never splitting the samples of one keyframe's group."""
    times = [k[0] for k in keys]
    groups: list[tuple[int, list[Sample]]] = []
    for s in samples:
        g = bisect.bisect_right(times, s.time + tol) - 1
        if groups and groups[-1][0] == g:
            groups[-1][1].append(s)
        else:
            groups.append((g, [s]))
    costs = [KEY_COST + max(0.0, ss[-1].time - times[g]) * rate if g >= 0 else KEY_COST for g, ss in groups]
    total = sum(costs) or 1.0
    out: list[list[Sample]] = [[]]
    done = 0.0
    for (_, ss), cost in zip(groups, costs):
        if out[-1] and done >= total * len(out) / parts:
            out.append([])
        out[-1] += ss
        done += cost
    return out


def _both(first: Task, then: Task) -> Task:
    def run(reader: MediaReader) -> None:
        first(reader)
        then(reader)
    return run


def _decoding(chunk: list[Sample], keys: list[Key], options: AnalysisOptions) -> Task:
    """The task that decodes ``chunk`` with a thread's reader, keeping each frame small."""
    def run(reader: MediaReader) -> None:
        reader.develop = _Developer(options)
        try:
            if not reader.decode_planned(chunk, keys):
                raise UnbatchedError("no frames where the index has keyframes")
        finally:
            reader.develop = None
    return run


class _Developer:
    """Makes the small pictures of a taken frame once, however many samples take it."""

    def __init__(self, options: AnalysisOptions):
        self.options = options
        self.frame: Any = None
        self.made: Developed | None = None

    def __call__(self, sample: Sample, frame: Any) -> Developed:
        widths = [self.options.max_width] + ([self.options.thumbnail_width] if sample.thumbnail else [])
        if self.frame is not frame or self.made is None:
            self.frame, self.made = frame, Developed(frame, widths)
            return self.made
        return self.made.add(frame, widths)
