"""Where people speak on a timeline: the regions the score ducks under.

The sound is the timeline's own: the media under its audio clips (``Timeline.audio``), or the
scenes' media when it has no audio clips, each clip's source range decoded with PyAV at 16 kHz
mono. Silero VAD (``onnx_models/silero_vad.onnx``, MIT, see onnx_models/SILERO_VAD.md) gives a
speech probability every 32 ms; its own post-processing (threshold, minimum speech and silence,
padding) turns them into regions, which are mapped to timeline seconds and merged.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import models
from .errors import MediaError

logger = logging.getLogger(__name__)

MODEL = "silero_vad.onnx"
RATE = 16000
WINDOW = 512  # samples a probability covers at 16 kHz
_CONTEXT = 64  # samples of the window before that the model sees too
THRESHOLD = 0.5  # speech starts at this probability...
NEG_THRESHOLD = 0.35  # ... and ends below this one (silero's threshold - 0.15)
MIN_SPEECH = 0.25  # seconds: shorter speech is dropped
MIN_SILENCE = 0.1  # seconds: shorter silence inside speech does not end it
PAD = 0.03  # seconds added either side of a region
_CHUNK = 60.0  # seconds of sound decoded at a time


def find_speech(timeline: Any) -> list[tuple[float, float]]:
    """The speech regions of ``timeline`` in timeline seconds, sorted and merged.

    Raises :class:`MediaError` naming a media file that is missing or cannot be decoded, and
    :class:`.errors.ModelError` when the shipped model is missing or damaged.
    """
    clips = _clips(timeline)
    found: list[tuple[float, float]] = []
    vad = _Vad() if clips else None
    for clip in clips:
        assert vad is not None
        start, end = _source_range(clip)
        for s, e in vad.regions(_clip_sound(str(clip.media), start, end)):
            found.append((clip.start + s, min(clip.start + e, clip.end)))
    regions = merge(found)
    logger.info("speech: %s", ", ".join(f"{s:.2f}-{e:.2f} s" for s, e in regions) or "none")
    return regions


def _clips(timeline: Any) -> list[Any]:
    """The audio clips with media (``Timeline.audio``), else the scenes with media."""
    clips = [c for c in getattr(timeline, "audio", ()) or () if c.media and c.end > c.start]
    return clips or [s for s in timeline.scenes if s.media and s.end > s.start]


def _source_range(clip: Any) -> tuple[float, float]:
    """The media range under a clip (from 0 when the timeline gives none), no longer than the clip."""
    start = clip.source_start if clip.source_start is not None else 0.0
    end = clip.source_end if clip.source_end is not None else start + clip.end - clip.start
    return start, min(end, start + clip.end - clip.start)


def merge(regions: Iterable[tuple[float, float]], gap: float = 0.0) -> list[tuple[float, float]]:
    """``regions`` sorted, those overlapping or less than ``gap`` apart made one, in ms."""
    merged: list[tuple[float, float]] = []
    for s, e in sorted(regions):
        if merged and s <= merged[-1][1] + gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        elif e > s:
            merged.append((s, e))
    return [(round(s, 3), round(e, 3)) for s, e in merged]


class _File:
    """A media file as :class:`.emotion.sound.SoundReader` reads it."""

    def __init__(self, path: str):
        import av

        self.path = path
        self._av = av

    def open_container(self) -> Any:
        try:
            return self._av.open(self.path, metadata_errors="ignore")
        except FileNotFoundError:
            raise MediaError("media file is missing", path=self.path,
                             hint="relink the media, or score without --duck") from None
        except Exception as exc:  # FFmpegError, OSError, UnicodeDecodeError ...
            raise MediaError(f"cannot be decoded ({type(exc).__name__}: {exc})", path=self.path,
                             hint="re-encode it and relink it, or score without --duck") from exc

    def seek(self, container: Any, stream: Any, t: float, ts: int | None = None) -> bool:
        try:
            container.seek(max(int(t / float(stream.time_base)), 0), stream=stream, backward=True, any_frame=False)
            return True
        except self._av.error.FFmpegError:
            return False

    def decode(self, stream: Any, packets: list) -> list:
        out = []
        for p in packets:
            try:
                out.extend(stream.decode(p))
            except self._av.error.FFmpegError as exc:  # a damaged packet: skip it
                logger.debug("%s: decode error %s", self.path, exc)
        return out


def _clip_sound(path: str, start: float, end: float) -> Iterable[np.ndarray]:
    """The sound of source range [start, end) of ``path``, 16 kHz mono, a chunk at a time
    (nothing when the file has no sound)."""
    from .emotion.sampling import AnalysisOptions
    from .emotion.sound import SoundReader

    if "://" not in path and not Path(path).exists():
        raise MediaError("media file is missing", path=path, hint="relink the media, or score without --duck")
    media = _File(path)
    container = media.open_container()
    try:
        if not container.streams.audio:
            logger.info("%s has no sound: no speech there", path)
            return
        stream = container.streams.audio[0]
        origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        reader = SoundReader(media, AnalysisOptions(audio_rate=RATE, max_audio_seconds=_CHUNK + 1), container)
        t = start
        while t < end - 1e-6:
            t1 = min(t + _CHUNK, end)
            yield reader.read(origin + t, origin + t1)
            t = t1
    finally:
        container.close()


class _Vad:
    """Silero VAD run over a stream of 16 kHz sound (its recurrent state carried along)."""

    def __init__(self) -> None:
        self.session = models.session(models.find(MODEL))

    def probabilities(self, chunks: Iterable[np.ndarray]) -> tuple[np.ndarray, int]:
        """The speech probability of every 512-sample window and the number of samples read."""
        state = np.zeros((2, 1, 128), np.float32)
        context = np.zeros((1, _CONTEXT), np.float32)
        rate = np.array(RATE, np.int64)
        probs: list[float] = []
        pending = np.zeros(0, np.float32)
        total = 0
        for chunk in [*chunks, None]:
            if chunk is not None:
                total += len(chunk)
                pending = np.concatenate([pending, chunk.astype(np.float32)])
            elif len(pending) % WINDOW:
                pending = np.concatenate([pending, np.zeros(WINDOW - len(pending) % WINDOW, np.float32)])
            usable = len(pending) - len(pending) % WINDOW
            for i in range(0, usable, WINDOW):
                x = np.concatenate([context, pending[None, i:i + WINDOW]], axis=1)
                out, state = self.session.run(None, {"input": x, "state": state, "sr": rate})
                context = x[:, -_CONTEXT:]
                probs.append(float(np.asarray(out).reshape(-1)[0]))
            pending = pending[usable:]
        return np.array(probs), total

    def regions(self, chunks: Iterable[np.ndarray]) -> list[tuple[float, float]]:
        """The speech in ``chunks`` in seconds from their start."""
        probs, total = self.probabilities(chunks)
        return [(s / RATE, e / RATE) for s, e in speech_spans(probs, total)]


def speech_spans(probs: Sequence[float] | np.ndarray, total: int) -> list[tuple[int, int]]:
    """Silero's post-processing of window probabilities: spans of speech in samples.

    Speech starts at a window at or above :data:`THRESHOLD` and ends where the probability has
    stayed below :data:`NEG_THRESHOLD` for :data:`MIN_SILENCE`; spans shorter than
    :data:`MIN_SPEECH` are dropped, the rest padded by :data:`PAD` (half the gap when closer).
    """
    spans: list[tuple[int, int]] = []
    start: int | None = None
    quiet_from = 0
    for i, p in enumerate(probs):
        at = i * WINDOW
        if p >= THRESHOLD:
            quiet_from = 0
            if start is None:
                start = at
        elif start is not None and p < NEG_THRESHOLD:
            quiet_from = quiet_from or at
            if at - quiet_from >= MIN_SILENCE * RATE:
                if quiet_from - start > MIN_SPEECH * RATE:
                    spans.append((start, quiet_from))
                start, quiet_from = None, 0
    if start is not None and total - start > MIN_SPEECH * RATE:
        spans.append((start, total))
    return _pad(spans, total)


def _pad(spans: list[tuple[int, int]], total: int) -> list[tuple[int, int]]:
    pad = int(PAD * RATE)
    out = [list(span) for span in spans]
    for k, span in enumerate(out):
        span[0] = max(0, span[0] - pad) if k == 0 else span[0]
        if k + 1 < len(out):
            gap = out[k + 1][0] - span[1]
            share = gap // 2 if gap < 2 * pad else pad
            span[1] += share
            out[k + 1][0] = max(0, out[k + 1][0] - share)
        else:
            span[1] = min(total, span[1] + pad)
    return [(s, e) for s, e in out]
