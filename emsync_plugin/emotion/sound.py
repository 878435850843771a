"""The sound of a media file, one source range at a time, mono float32 at the analysis rate.

Read by a demuxer of its own (when the file has picture too), so that the video reader's jumps
between keyframes do not drag the sound along; a range starting where the one before ended
reads on instead of seeking.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from .sampling import AnalysisOptions


class Demuxing(Protocol):
    """What the sound reader needs of its media file's reader (:class:`.media.MediaReader`)."""

    def open_container(self) -> Any: ...

    def seek(self, container: Any, stream: Any, t: float, ts: int | None = None) -> bool: ...

    def decode(self, stream: Any, packets: list) -> list: ...


class SoundReader:
    """The sound of consecutive source ranges of one file (by one thread)."""

    CONTINUE_GAP = 30.0  # seconds: sound of a range starting further ahead than this is reached by seeking

    def __init__(self, media: Demuxing, options: AnalysisOptions, container: Any = None):
        self.media = media
        self.options = options
        self.container = container  # None: opened on the first read
        self.stream: Any = container.streams.audio[0] if container is not None else None
        self._reset()

    def _reset(self) -> None:
        self._demux: Iterator[Any] | None = None  # the sound packet iterator
        self._leftover: list = []  # decoded sound frames after the previous range
        self._end: float | None = None  # end of the previous range (media time)
        self._eof = False

    def read(self, t0: float, t1: float) -> np.ndarray:
        """The sound of media range [t0, t1), mono float32 at the options' rate."""
        if self.container is None:
            self.container = self.media.open_container()
            self.stream = self.container.streams.audio[0]
        rate = self.options.audio_rate
        import av

        sink = _SoundSink(t0, t1, av.AudioResampler(format="flt", layout="mono", rate=rate),
                          int(self.options.max_audio_seconds * rate))
        continuing = (
            self._demux is not None and not self._eof and self._end is not None
            and self._end - 1e-6 <= t0 <= self._end + self.CONTINUE_GAP
        )
        if continuing:
            for frame in self._leftover:
                sink.add(frame)
        else:
            self._seek(t0)
        self._end = t1
        while not sink.covered and not self._eof:
            packet = next(self._demux, None) if self._demux is not None else None
            if packet is None:
                self._eof = True
            elif not packet.size:
                continue
            for frame in self.media.decode(self.stream, [packet] if packet is not None else [None]):
                sink.add(frame)
        self._leftover = sink.keep
        return sink.sound(rate)

    def _seek(self, t0: float) -> None:
        """Start a pass a little before ``t0`` (the decoder's first frame after a seek lacks its
        overlap); reopen the file when its demuxer cannot seek."""
        if not self.media.seek(self.container, self.stream, max(t0 - 0.1, 0.0)):
            self.container.close()
            self.container = self.media.open_container()
            self.stream = self.container.streams.audio[0]
        self._reset()
        self._demux = iter(self.container.demux(self.stream))


class _SoundSink:
    """Gathers the sound of [t0, t1) from decoded frames (resampled); frames reaching past ``t1``
    are kept (``keep``) for the range after it."""

    def __init__(self, t0: float, t1: float, resampler: Any, cap: int):
        self.t0, self.t1, self.resampler, self.cap = t0, t1, resampler, cap
        self.chunks: list[np.ndarray] = []
        self.keep: list = []
        self.first: float | None = None  # time of the first frame used
        self.samples = 0
        self.covered = False  # a frame reached t1

    def add(self, frame: Any) -> None:
        ft = frame.time
        fd = frame.samples / float(frame.sample_rate or 1)
        if ft is None:
            return
        if ft >= self.t1:
            self.keep.append(frame)
            self.covered = True
            return
        if ft + fd <= self.t0 or self.samples > self.cap:
            return
        if self.first is None:
            self.first = ft
        for out in self.resampler.resample(frame):
            arr = out.to_ndarray().reshape(-1)
            self.chunks.append(arr)
            self.samples += len(arr)
        if ft + fd > self.t1:  # it also starts the next range
            self.keep.append(frame)
            self.covered = True

    def sound(self, rate: int) -> np.ndarray:
        """The gathered sound, trimmed to [t0, t1)."""
        for out in self.resampler.resample(None) or []:
            self.chunks.append(out.to_ndarray().reshape(-1))
        if not self.chunks:
            return np.zeros(0, np.float32)
        sound = np.concatenate(self.chunks).astype(np.float32)
        first = self.first if self.first is not None else self.t0
        skip = max(0, int(round((self.t0 - first) * rate)))
        return sound[skip:skip + int(round((self.t1 - self.t0) * rate))]
