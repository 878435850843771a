"""Running the per-scene analysis: one thread per core, and a cache for the process.

Each worker thread keeps its own open readers (two single-threaded decoders on two cores go
~1.5× faster than one decoder's frame threads). Results are cached per (file, size, mtime,
source range, options), so scoring one edit in several formats decodes it once.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import progress
from . import scene_analysis
from .batches import FileBatch
from .media import MediaReader
from .sampling import AnalysisOptions
from .scene_analysis import FaceModel, SceneAnalysis, analyze_source

logger = logging.getLogger(__name__)

#: scenes analysed at the same time (one thread each, with its own readers): two decoders on
#: two cores go ~1.5× faster than one decoder's own threads (a P-frame waits for the one before)
MAX_WORKERS = 4
READERS_PER_THREAD = 8  # open files a worker keeps (the least recently used is closed)
#: scenes whose ranges of one file are decoded together (:mod:`.batches`): at most this many
#: consecutive scenes, and this many seconds of footage (memory: ~0.2 MB a sampled frame, 64 kB a
#: second of sound)
BATCH_SCENES = 48
BATCH_SECONDS = 900.0
#: seconds a thread running Python (the music generator) keeps the GIL while decoders wait for it,
#: during an analysis: each decoded frame takes the GIL back once, and at Python's default (5 ms)
#: that wait, not the decoding, set the analysis's pace while the music was generated
SWITCH_INTERVAL = 0.0002

_CACHE: OrderedDict[tuple, SceneAnalysis] = OrderedDict()
_CACHE_SIZE = 512


def clear_cache() -> None:
    """Forget analysed scenes (tests; files are re-read when their size or mtime changes anyway)."""
    _CACHE.clear()


def cache_key(media: str, start: float, end: float, options: AnalysisOptions, faces: FaceModel | None) -> tuple:
    """What identifies an analysis: the file (path, size, mtime), the range, the options, the face model."""
    ident: tuple
    try:
        st = os.stat(media)
        ident = (os.path.realpath(media), st.st_size, st.st_mtime_ns)
    except OSError:
        ident = (media,)
    face_tag = None if not faces else (type(faces[0]).__qualname__, id(faces[0]))  # the one loaded analyzer
    return (*ident, round(start, 4), round(end, 4), options, face_tag)


def cached(key: tuple) -> SceneAnalysis | None:
    """The cached analysis of ``key`` (:func:`cache_key`), if any."""
    return _CACHE.get(key)


def is_missing(media: str | None) -> bool:
    """Whether ``media`` names a local file that is not there (URLs are not checked)."""
    return bool(media) and "://" not in str(media) and not Path(str(media)).exists()


def source_range(scene: Any) -> tuple[float, float]:
    """The media range of a timeline scene (from 0 for its duration when the timeline gives none)."""
    start = scene.source_start if scene.source_start is not None else 0.0
    end = scene.source_end if scene.source_end is not None else start + scene.duration
    return start, end


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class _Workers:
    """The analysis jobs of one call, each thread with its own open readers (closed at the end)."""

    def __init__(self, options: AnalysisOptions, faces: FaceModel | None, threads: int):
        self.options, self.faces, self.threads = options, faces, threads
        self.local = threading.local()
        self.opened: list[MediaReader] = []
        self.lock = threading.Lock()

    def reader(self, media: str) -> MediaReader:
        """This thread's open reader of ``media``."""
        readers = getattr(self.local, "readers", None)
        if readers is None:
            readers = self.local.readers = OrderedDict()
        reader = readers.get(media)
        if reader is None:
            reader = readers[media] = MediaReader(media, self.options, threads=self.threads)
            with self.lock:
                self.opened.append(reader)
            if len(readers) > READERS_PER_THREAD:
                readers.popitem(last=False)[1].close()
        return reader

    def job(self, start: float, end: float, media: str, batch: FileBatch | None = None) -> SceneAnalysis:
        """One range's analysis: from its batch's decoding when that worked, else read alone."""
        if batch is not None and batch.ready(self.reader) and batch.has(start, end):
            try:
                return analyze_source(batch, start, end, self.options, self.faces)
            finally:
                batch.release(start, end)
        return analyze_source(self.reader(media), start, end, self.options, self.faces)

    def close(self) -> None:
        for reader in self.opened:
            reader.close()


def batched(jobs: dict[tuple, tuple[float, float, str]], options: AnalysisOptions, parts: int
            ) -> dict[tuple, FileBatch]:
    """The :class:`.batches.FileBatch` of each job: consecutive jobs, at most :data:`BATCH_SCENES`
    of them and :data:`BATCH_SECONDS` of footage a batch, one per media file in each."""
    out: dict[tuple, FileBatch] = {}
    group: list[tuple[tuple, tuple[float, float, str]]] = []
    seconds = 0.0

    def close() -> None:
        files: dict[str, list[tuple]] = {}
        for key, (_, _, media) in group:
            files.setdefault(media, []).append(key)
        for media, keys in files.items():
            batch = FileBatch(media, [jobs[k][:2] for k in keys], options, parts)
            out.update(dict.fromkeys(keys, batch))
        group.clear()

    for key, job in jobs.items():
        length = min(job[1] - job[0], options.max_audio_seconds)
        if group and (len(group) >= BATCH_SCENES or seconds + length > BATCH_SECONDS):
            close()
            seconds = 0.0
        group.append((key, job))
        seconds += length
    close()
    return out


def analyze_scenes(scenes: Sequence, options: AnalysisOptions = AnalysisOptions()) -> dict[int, SceneAnalysis]:
    """Analyse scenes (all with existing media) → ``{scene.index: SceneAnalysis}``, with a progress bar
    (:class:`Running`, collected at once)."""
    with Running(scenes, options) as running:
        return {index: running.result(index) for index in running.order}


class Running:
    """The analysis of some scenes, under way in a thread pool; results are taken in scene order.

    Scenes not in the cache are analysed by up to one thread per core (at most
    :data:`MAX_WORKERS`), each keeping its own open reader per media file; all are submitted at
    once, so while the caller waits for (or works on) one scene the next ones are decoded.
    :meth:`result` of a scene collects every scene before it too, so results, errors and the
    progress bar follow the scenes' order. While scenes are being analysed, a thread running
    Python hands the GIL to the decoders sooner (:data:`SWITCH_INTERVAL`). Use it as a context
    manager: leaving stops the pool.
    """

    def __init__(self, scenes: Sequence, options: AnalysisOptions = AnalysisOptions()):
        faces = scene_analysis.face_model() if options.faces else None
        scenes = list(scenes)
        self.order = [s.index for s in scenes]
        self._jobs: dict[tuple, tuple[float, float, str]] = {}  # cache key → range, media (each range once)
        self._todo: deque[tuple[Any, tuple]] = deque()  # (scene, key) not yet collected, in order
        for scene in scenes:
            start, end = source_range(scene)
            key = cache_key(scene.media, start, end, options, faces)
            self._todo.append((scene, key))
            if key not in _CACHE and key not in self._jobs:
                self._jobs[key] = (start, end, scene.media)
        cpus = _cpus()
        self.workers = max(1, min(cpus, MAX_WORKERS, len(self._jobs)))
        threads = 0 if self.workers == 1 else max(1, cpus // self.workers)  # decoder threads per reader (0: auto)
        self._crew = _Workers(options, faces, threads)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="emsync-analysis") if self._jobs else None
        batches = batched(self._jobs, options, 2 * self.workers)
        self._futures = {key: self._pool.submit(self._crew.job, *args, batches[key]) for key, args in self._jobs.items()} \
            if self._pool is not None else {}
        self._done: dict[int, SceneAnalysis] = {}
        self._bar = progress.bar(total=len(scenes), desc="analysing scenes", unit="scene")
        self._footage = 0.0
        self._clock = time.perf_counter()
        self._interval: float | None = None
        if self._jobs:
            self._interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._interval, SWITCH_INTERVAL))

    def result(self, index: int) -> SceneAnalysis:
        """Scene ``index``'s analysis (waiting for it, and collecting the scenes before it);
        the analysis's own error if it failed."""
        while index not in self._done and self._todo:
            scene, key = self._todo.popleft()
            self._done[scene.index], seconds = _collect(scene, key, self._futures, self._jobs)
            self._footage += seconds
            self._bar.update(1)
            if not self._todo:
                self._finished()
        return self._done[index]

    def _finished(self) -> None:
        self._restore()
        self._bar.close()
        if self._footage:
            took = time.perf_counter() - self._clock
            logger.info("analysed %.1f s of footage in %.1f s (%.0fx real time, %d thread%s)", self._footage, took,
                        self._footage / max(took, 1e-9), self.workers, "" if self.workers == 1 else "s")

    def close(self) -> None:
        """Stop the pool (scenes not started are cancelled) and close the open files."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._crew.close()
        self._bar.close()
        self._restore()

    def _restore(self) -> None:
        if self._interval is not None:
            sys.setswitchinterval(self._interval)
            self._interval = None

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _collect(scene: Any, key: tuple, futures: dict[tuple, Future], jobs: dict[tuple, tuple[float, float, str]]
             ) -> tuple[SceneAnalysis, float]:
    """A scene's analysis (from the cache, else from its job, then cached) and the seconds decoded for it."""
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit, 0.0
    result = futures[key].result()
    start, end, _ = jobs[key]
    _CACHE[key] = result
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    f = result.features
    logger.debug(
        "scene %d: B=%.2f S=%.2f M=%.0f motion=%.3f %.1f dB flux=%.2f onsets=%.1f/s -> cues v=%.2f a=%.2f%s",
        scene.index, f.brightness, f.saturation, f.colourfulness, f.motion, f.loudness, f.flux,
        f.onset_rate, *result.cue_va,
        f"; faces {result.face_coverage:.0%} alpha={result.alpha:.2f} -> v={result.va[0]:.2f} a={result.va[1]:.2f}"
        if result.alpha else "",
    )
    return result, end - start
