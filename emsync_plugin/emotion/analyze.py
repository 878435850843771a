"""Per-scene emotion: decode each scene, measure its cues and faces, apply the editor's overrides.

:func:`estimate` is what ``pipeline.estimate_moods`` calls. For every scene it decides the
mood from, in this order of precedence,

1. ``--emotion N=...`` (source ``"cli"``),
2. an ``emsync:`` timeline marker inside the scene (``"marker"``),
3. ``--valence`` / ``--arousal`` for the whole timeline (``"cli"``; one of them alone replaces
   only its axis of the analysis),
4. analysis of the scene's own picture and sound (``"faces"`` when faces contributed, else
   ``"cues"``): cues (:mod:`.cues`) fused with the face model's expression probabilities mapped
   to valence/arousal (:mod:`.mapping`), then smoothed across neighbouring scenes.

A scene with no picture (a gap, or a clip whose media the file does not name, as in EDLs) has
nothing to analyse: it carries on the mood of the scene before it (source ``"default"``).

Missing media is an error naming the file and the fix, unless every scene using it is
overridden or ``--valence``/``--arousal`` are given (then those values stand in for it, with a
warning).

Decoding (PyAV) - only what is needed
    Each scene's source range is sampled ~2 times a second. The reader seeks (backward, to the
    keyframe before the range) - or, when the range starts at or after where the previous
    scene of the same file ended, simply reads on - and then *decodes only the packets the
    sampled frames need*: packets are held from the last keyframe on and decoded only when a
    sample time is reached; when a new keyframe arrives first, the held packets are dropped
    undecoded. Intra-only media (ProRes, DNxHR, MJPEG, stills) so cost one decode per sample,
    short-GOP camera files skip part of each GOP, and long-GOP files decode what they must (the
    reference frames up to each sample). Frames that nothing references
    (``skip_frame="NONREF"``) are never decoded, and the codec runs multi-threaded
    (``thread_type="AUTO"``); when the next keyframe is due before the next sample, the
    decoder is drained for the sampled frame its threads still hold rather than fed packets
    nobody needs (so a sample is the first decoded frame at or after its time - with B-frames
    skipped, sometimes a frame or two later). Each sampled frame is scaled to at most 320
    pixels wide before anything looks at it. The scene's sound is decoded in the same pass and resampled to 16 kHz
    mono. Results are cached per (file, size, mtime, source range) for the process, so scoring
    the same edit in several formats decodes it once.
"""
from __future__ import annotations

import importlib
import logging
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .. import progress
from ..errors import MediaError, ModelError
from . import mapping, overrides
from .cues import AUDIO_RATE, CueFeatures, PictureCues, cue_mood, sound_cues

logger = logging.getLogger(__name__)

#: The mood of a scene when nothing at all says otherwise (mildly warm, middle energy).
DEFAULT_VALENCE, DEFAULT_AROUSAL = 0.3, 0.0

SOURCES = ("cli", "marker", "faces", "cues", "default")


@dataclass(frozen=True)
class AnalysisOptions:
    """How scenes are sampled. Defaults follow the issue: ~2 frames/s, ≤ 320 px, 16 kHz mono."""

    fps: float = 2.0
    max_width: int = 320
    audio_rate: int = AUDIO_RATE
    faces: bool = True
    face_frames: int = 8  # at most this many of a scene's frames go through the face model
    thumbnail_width: int = 96
    max_audio_seconds: float = 600.0  # longer scenes: the sound of their first 10 minutes

    def __post_init__(self):
        if not (0.1 <= self.fps <= 30 and 32 <= self.max_width <= 4096 and 4000 <= self.audio_rate <= 48000):
            raise ValueError(f"impossible analysis options {self}")


@dataclass(frozen=True)
class SceneAnalysis:
    """What decoding one scene found (independent of overrides and neighbours)."""

    features: CueFeatures
    cue_va: tuple[float, float]
    probs: dict = field(default_factory=dict)  # face model's class probabilities, {} without faces
    face_coverage: float = 0.0  # fraction of face-analysed frames with a face
    face_weight: float = 0.0  # mean frame face weight of those frames
    alpha: float = 0.0  # weight of the faces in the fusion
    va: tuple[float, float] = (0.0, 0.0)  # fused, before smoothing
    source: str = "cues"  # "faces" | "cues"
    thumbnail: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class SceneEmotion:
    """The mood of one scene and where it came from (what ``emsync analyze --json`` prints)."""

    index: int
    start: float
    end: float
    valence: float
    arousal: float
    source: str  # one of SOURCES
    probs: dict = field(default_factory=dict)
    label: str = ""  # the override's mood ("tense", "v=0.20 a=0.70"), if any

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "start": self.start,
            "end": self.end,
            "probs": {k: round(float(p), 4) for k, p in self.probs.items()},
            "valence": round(self.valence, 4),
            "arousal": round(self.arousal, 4),
            "source": self.source,
        }


# ------------------------------------------------------------------------------------ faces

_UNSET = object()
_face_model = _UNSET


def face_model():
    """``(analyzer, frame_face_probs)`` of the face stage, or ``None`` when it is not available.

    Loaded once per process. A missing module or model falls back to cues only (INFO log).
    """
    global _face_model
    if _face_model is _UNSET:
        try:
            faces = importlib.import_module(".faces", __package__)
            _face_model = (faces.FaceAnalyzer.load(), faces.frame_face_probs)
        except (ImportError, ModelError) as exc:
            logger.info("face model not available (%s); scene emotion uses picture and sound cues only", exc)
            _face_model = None
        except Exception as exc:  # a broken model must not stop scoring
            logger.warning("face model failed to load (%s: %s); using picture and sound cues only",
                           type(exc).__name__, exc)
            _face_model = None
    return _face_model


# ------------------------------------------------------------------------------------ decoding


def _even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)


class MediaReader:
    """One open media file, read forward scene by scene.

    :meth:`read` delivers the sampled frames and the sound of one source range. The reader keeps
    its place between calls: a range that starts where the previous one ended (or a little
    later) continues the same pass instead of seeking back to a keyframe and decoding that GOP
    again. Packets since the last keyframe are held (``_pending``) and decoded only when a
    sample time is reached (``_fed`` counts those already given to the decoder).
    """

    CONTINUE_GAP = 30.0  # seconds: a range starting further ahead than this is reached by seeking

    def __init__(self, path: str, options: AnalysisOptions):
        import av

        self.path = path
        self.options = options
        self._av = av
        self._open()

    # -- opening, seeking ----------------------------------------------------------------------

    def _open(self) -> None:
        av = self._av
        try:
            self.container = av.open(self.path, metadata_errors="ignore")
        except Exception as exc:  # FFmpegError, OSError, UnicodeDecodeError ...
            raise MediaError(
                f"cannot be decoded ({type(exc).__name__}: {exc})", path=self.path,
                hint="re-encode it (e.g. to H.264 MP4) and relink it, or set --emotion N=... for its scenes",
            ) from exc
        c = self.container
        self.video = c.streams.video[0] if c.streams.video else None
        self.audio = c.streams.audio[0] if c.streams.audio else None
        if self.video is None and self.audio is None:
            self.close()
            raise MediaError("has neither picture nor sound", path=self.path, hint="relink the right file")
        if self.video is not None:
            self.video.thread_type = "AUTO"
            self.video.codec_context.skip_frame = "NONREF"  # frames nothing refers to: never decoded
            tb = self.video.time_base
            self.origin = float(self.video.start_time * tb) if self.video.start_time is not None else 0.0
            self.frame_rate = float(self.video.average_rate or self.video.guessed_rate or 25)
            fmt = c.format.name
            self.still = fmt.endswith("_pipe") or fmt in ("image2", "apng", "gif") or self.video.frames == 1
        else:
            self.origin = float(c.start_time / 1e6) if c.start_time else 0.0
            self.frame_rate = 25.0
            self.still = False
        self.duration = float(c.duration / 1e6) if c.duration else None
        self.tc_offset = self._timecode_offset()
        self._warned_tc = False
        self._still_frame = None
        self._reset()

    def _reset(self) -> None:
        self._demux = None  # the packet iterator of the current pass
        self._pending: list = []  # video packets since the last keyframe
        self._fed = 0  # how many of them the decoder has had
        self._frames: list = []  # decoded video frames not yet passed
        self._last = None  # the latest decoded video frame
        self._leftover: list = []  # decoded audio frames after the previous range
        self._keys: list[float] = []  # times of the latest keyframes (the GOP length)
        self._vpos = -math.inf  # time of the latest demuxed video packet
        self._end = None  # end of the previous range (media time)
        self._eof = False

    def close(self) -> None:
        try:
            self.container.close()
        except Exception:  # pragma: no cover - closing a broken file
            pass

    def _timecode_offset(self) -> float:
        """Seconds of the file's start timecode (MOV/MXF ``timecode`` tag), 0 when it has none."""
        tags = {}
        for src in (self.container.metadata, *(s.metadata for s in self.container.streams)):
            tags.update({k.lower(): v for k, v in (src or {}).items()})
        tc = tags.get("timecode")
        if not tc:
            return 0.0
        parts = tc.replace(";", ":").replace(".", ":").split(":")
        try:
            h, m, s, f = (int(p) for p in parts)
        except ValueError:
            return 0.0
        return h * 3600 + m * 60 + s + f / max(1, round(self.frame_rate))

    def _media_time(self, source: float) -> float:
        """File time of a source time (editors count from the first frame; some from the timecode)."""
        t = source
        if self.tc_offset and self.duration is not None and source > self.duration + 1.0:
            if -1.0 <= source - self.tc_offset <= self.duration + 1.0:
                t = source - self.tc_offset
                if not self._warned_tc:
                    logger.info("%s: source times are in the file's timecode (starts %.3f s); reading relative to it",
                                Path(self.path).name, self.tc_offset)
                    self._warned_tc = True
        return t + self.origin

    def _seek(self, t: float | None) -> None:
        """Start a new pass at the keyframe before ``t`` (``None``: from the very start)."""
        av = self._av
        stream = self.video or self.audio
        if t is not None:
            ts = max(int(math.floor(t / float(stream.time_base))), 0)
            try:
                self.container.seek(ts, stream=stream, backward=True, any_frame=False)
                for s in (self.video, self.audio):
                    if s is not None:
                        s.codec_context.flush_buffers()  # nothing from before the seek comes out later
            except av.error.FFmpegError as exc:
                logger.debug("%s: seek failed (%s); reading from the start", self.path, exc)
                t = None
        if t is None:
            self.close()
            self._open()
        self._reset()
        self._demux = iter(self.container.demux([s for s in (self.video, self.audio) if s is not None]))

    # -- one pass ------------------------------------------------------------------------------

    def _decode(self, stream, packets) -> list:
        out = []
        for p in packets:
            try:
                out.extend(stream.decode(p))
            except self._av.error.FFmpegError as exc:  # a damaged packet: skip it, keep going
                logger.debug("%s: decode error %s", self.path, exc)
        return out

    def _feed(self, target: float | None, packets=None) -> None:
        """Decode the held packets the decoder has not had yet (or ``packets``), keeping only the
        frames at or after ``target`` (a long GOP decoded at once must not pile up in memory)."""
        if packets is None:
            packets = self._pending[self._fed:]
            self._fed = len(self._pending)
        for p in packets:
            for frame in self._decode(self.video, [p]):
                self._last = frame
                ft = self._vtime(frame)
                if target is not None and (ft is None or ft >= target - self._tol):
                    self._frames.append(frame)

    def _gop(self) -> float | None:
        """Seconds between keyframes seen so far in this pass (None before two were seen)."""
        steps = [b - a for a, b in zip(self._keys, self._keys[1:]) if b > a]
        return min(steps) if steps else None

    def _drain(self, target: float) -> None:
        """Get the frames a threaded decoder still holds without feeding it more packets, then
        reset it (the next packets it gets start from a keyframe)."""
        self._feed(target, [None])
        try:
            self.video.codec_context.flush_buffers()
        except Exception as exc:  # pragma: no cover - PyAV without flush_buffers
            logger.debug("flush_buffers: %s", exc)
        self._fed = 0

    def _pump(self, target: float | None, sink, after: float | None = None) -> bool:
        """Demux one packet. ``target``: the next sample time (video packets are decoded once it
        is reached); ``after``: the sample after it. ``sink(frame)``: takes decoded audio
        frames. False at the end of the file."""
        if self._eof:
            return False
        try:
            packet = next(self._demux)
        except StopIteration:
            packet = None
        if packet is None or (packet.size == 0 and packet.stream is self.video):
            if self.video is not None and target is not None:  # end of stream: what is held, then flush
                self._feed(target)
                self._feed(target, [None])
            if packet is None or self.audio is None:
                self._eof = True
                return False
            return True
        if packet.stream is self.video:
            pt = packet.pts if packet.pts is not None else packet.dts
            ptime = float(pt * self.video.time_base) if pt is not None else None
            if ptime is not None:
                self._vpos = max(self._vpos, ptime)
            if packet.is_keyframe:
                self._pending, self._fed = [packet], 0  # nothing before a keyframe is needed any more
                if ptime is not None:
                    self._keys = [*self._keys[-7:], ptime]
            else:
                self._pending.append(packet)
            if target is not None and (ptime is None or ptime >= target - self._tol):
                self._feed(target)
                gop = self._gop()
                if not self._frames and gop is not None and after is not None and self._keys[-1] + gop <= after - self._tol:
                    # the sampled frame is held in the decoder's pipeline, and a keyframe comes
                    # before the next sample: drain it rather than decode packets nobody needs
                    self._drain(target)
        elif packet.stream is self.audio:
            if packet.size == 0:
                return True
            for frame in self._decode(self.audio, [packet]):
                sink(frame)
        return True

    def _vtime(self, frame) -> float | None:
        """A video frame's time in seconds (frames drained from a decoder carry no time base)."""
        return None if frame.pts is None else float(frame.pts * self.video.time_base)

    @property
    def _tol(self) -> float:
        return 0.5 / self.frame_rate

    def read(self, start: float, end: float, on_frame: Callable[[int, object], None], want_audio: bool = True):
        """Decode the frames sampled in source range [start, end) and its sound.

        ``on_frame(k, frame)`` gets the k-th sample's ``av.VideoFrame`` (a very short scene may
        get one frame twice). Returns the range's sound, mono float32 at the options' rate, or
        ``None`` when the file has no sound.
        """
        end = max(end, start + 1e-3)
        n = max(2, int(round((end - start) * self.options.fps)))
        t0 = self._media_time(start)
        t1 = t0 + (end - start)
        targets = [t0 + (k + 0.5) * (t1 - t0) / n for k in range(n)] if self.video is not None else []
        if self.still:
            self._read_still(targets, on_frame)
            targets = []
        audio = self.audio if want_audio else None
        rate = self.options.audio_rate
        resampler = self._av.AudioResampler(format="flt", layout="mono", rate=rate) if audio is not None else None
        chunks: list[np.ndarray] = []
        state = {"first": None, "samples": 0, "covered": audio is None}
        cap = int(self.options.max_audio_seconds * rate)

        def sink(frame):
            ft = frame.time
            fd = frame.samples / float(frame.sample_rate or 1)
            if ft is None or resampler is None:
                return
            if ft >= t1:
                self._leftover.append(frame)
                state["covered"] = True
                return
            if ft + fd <= t0 or state["samples"] > cap:
                return
            if state["first"] is None:
                state["first"] = ft
            for out in resampler.resample(frame):
                arr = out.to_ndarray().reshape(-1)
                chunks.append(arr)
                state["samples"] += len(arr)
            if ft + fd > t1:  # it also starts the next range
                self._leftover.append(frame)
                state["covered"] = True

        continuing = (
            self._demux is not None and not self._eof and self._end is not None
            and t0 >= self._end - 1e-6 and t0 - max(self._vpos, self._end) <= self.CONTINUE_GAP
        )
        if continuing:
            leftover, self._leftover = self._leftover, []
            for frame in leftover:
                sink(frame)
        else:
            self._start_pass(t0, targets)
        self._end = t1

        step = (t1 - t0) / n
        for k, target in enumerate(targets):
            after = targets[k + 1] if k + 1 < len(targets) else t1 + step / 2  # the next scene's, if it follows
            frame = self._frame_at(target, after, sink)
            if frame is None:
                last = self._last
                if last is None or (self._vtime(last) is not None and self._vtime(last) < t0 - 1.0):
                    raise MediaError(
                        f"has no picture at {t0 - self.origin:.3f}-{t1 - self.origin:.3f} s"
                        + (f" (it is {self.duration:.3f} s long)" if self.duration else ""),
                        path=self.path,
                        hint="relink the media the timeline was edited with, or set --emotion N=... for this scene",
                    )
                frame = last
            on_frame(k, frame)
        while not state["covered"] and self._pump(None, sink):
            pass

        if audio is None:
            return None
        for out in resampler.resample(None) or []:
            chunks.append(out.to_ndarray().reshape(-1))
        if not chunks:
            return np.zeros(0, np.float32)
        sound = np.concatenate(chunks).astype(np.float32)
        skip = max(0, int(round((t0 - state["first"]) * rate)))
        return sound[skip:skip + int(round((t1 - t0) * rate))]

    def _start_pass(self, t0: float, targets: list[float]) -> None:
        """Seek to the keyframe before ``t0``; seek further back if the demuxer landed after it."""
        for back in (0.0, 2.0, 8.0, 30.0, None):
            self._seek(None if back is None else t0 - back)
            if back is None or not targets or t0 - back <= self.origin + self._tol:
                return
            # peek at the first video packet: it must not be later than the first sample
            first = None
            while first is None:
                try:
                    packet = next(self._demux)
                except StopIteration:
                    break
                if packet.stream is self.video and packet.size:
                    pt = packet.pts if packet.pts is not None else packet.dts
                    first = float(pt * self.video.time_base) if pt is not None else -math.inf
            if first is not None and first <= targets[0] + self._tol:
                self._seek(t0 - back)  # land there again, this time reading every packet
                return

    def _frame_at(self, target: float, after: float | None, sink):
        """The first decoded frame at or after ``target`` (frames before it are dropped)."""
        while True:
            while self._frames and (self._vtime(self._frames[0]) or math.inf) < target - self._tol:
                self._frames.pop(0)
            if self._frames:
                return self._frames[0]
            if not self._pump(target, sink, after):
                return None

    def _read_still(self, targets, on_frame) -> None:
        if self._still_frame is None:
            self._seek(None)
            while self._last is None and self._pump(0.0, lambda f: None):
                pass
            self._still_frame = self._last
            if self._still_frame is None:
                raise MediaError("has no picture", path=self.path, hint="relink the right file")
        for k in range(len(targets)):
            on_frame(k, self._still_frame)


def _small_size(frame, max_width: int) -> tuple[int, int]:
    """Display size of a frame scaled to at most ``max_width`` (sample aspect ratio applied)."""
    sar = getattr(frame, "sample_aspect_ratio", None)
    try:
        sar = float(Fraction(sar)) if sar else 1.0
    except (TypeError, ValueError, ZeroDivisionError):
        sar = 1.0
    sar = sar if sar > 0 else 1.0
    disp_w = frame.width * sar
    w = min(max_width, disp_w)
    return _even(w), _even(w * frame.height / disp_w)


def to_rgb(frame, max_width: int) -> np.ndarray:
    """An ``av.VideoFrame`` as an RGB uint8 array at most ``max_width`` wide."""
    w, h = _small_size(frame, max_width)
    return frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()


# ------------------------------------------------------------------------------------ one scene


def analyze_source(reader: MediaReader, start: float, end: float, options: AnalysisOptions, faces=None) -> SceneAnalysis:
    """Decode one source range and measure it (cues, faces, a thumbnail)."""
    duration = end - start
    pic = PictureCues()
    n = max(2, int(round(duration * options.fps)))
    face_ks = set(np.linspace(0, n - 1, min(n, options.face_frames)).round().astype(int).tolist()) if faces else set()
    face_probs: list[tuple[dict, float]] = []
    face_frames = 0
    thumb: list[np.ndarray] = []
    mid = n // 2
    state = {"faces": faces}

    def on_frame(k, frame):
        nonlocal face_frames
        rgb = to_rgb(frame, options.max_width)
        pic.add(rgb, frame_id=frame.pts)
        if k == mid:
            thumb.append(to_rgb(frame, options.thumbnail_width))
        if state["faces"] and k in face_ks:
            analyzer, reduce = state["faces"]
            try:
                probs, weight = reduce(analyzer.analyze(rgb))
            except Exception as exc:  # the face stage must not stop scoring
                logger.warning("face analysis failed (%s: %s); using cues only for the rest", type(exc).__name__, exc)
                state["faces"] = None
                return
            face_frames += 1
            if probs:
                face_probs.append((probs, float(weight)))

    sound = reader.read(start, end, on_frame)
    values = pic.values()
    if values["frames"] == 0:  # no picture stream: neutral picture terms, sound only
        values.update(brightness=0.45, saturation=0.35, colourfulness=54.5, motion=0.0)
    features = CueFeatures(duration=duration, **values, **sound_cues(sound, duration, options.audio_rate))
    cue_va = cue_mood(features)
    probs: dict = {}
    coverage = weight = alpha = 0.0
    va = cue_va
    if face_probs and face_frames:
        total = sum(w for _, w in face_probs)
        if total > 0:
            classes = list(face_probs[0][0])
            probs = {c: sum(w * p.get(c, 0.0) for p, w in face_probs) / total for c in classes}
            coverage = len(face_probs) / face_frames
            weight = total / len(face_probs)
            alpha = mapping.face_alpha(coverage, weight)
            try:
                va = mapping.fuse(mapping.expected_va(probs), alpha, cue_va)
            except ValueError as exc:
                logger.warning("face probabilities unusable (%s); using cues only", exc)
                alpha = 0.0
            if alpha <= 0.0:  # too little face to count (see mapping.MIN_ALPHA)
                logger.debug("faces ignored: coverage %.2f, weight %.2f", coverage, weight)
                probs, va = {}, cue_va
    source = "faces" if alpha > 0 else "cues"
    return SceneAnalysis(features, cue_va, probs, coverage, weight, alpha, mapping.clip_va(*va), source,
                         thumb[0] if thumb else None)


# ------------------------------------------------------------------------------------ cache

_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 512


def clear_cache() -> None:
    """Forget analysed scenes (tests; files are re-read when their size or mtime changes anyway)."""
    _CACHE.clear()


def _key(media: str, start: float, end: float, options: AnalysisOptions, faces) -> tuple | None:
    try:
        st = os.stat(media)
        ident = (os.path.realpath(media), st.st_size, st.st_mtime_ns)
    except OSError:
        ident = (media,)
    face_tag = None if not faces else (type(faces[0]).__qualname__, id(faces[0]))  # the one loaded analyzer
    return (*ident, round(start, 4), round(end, 4), options, face_tag)


def is_missing(media: str | None) -> bool:
    return bool(media) and "://" not in media and not Path(media).exists()


def _source_range(scene) -> tuple[float, float]:
    start = scene.source_start if scene.source_start is not None else 0.0
    end = scene.source_end if scene.source_end is not None else start + scene.duration
    return start, end


def analyze_scenes(scenes: Sequence, options: AnalysisOptions = AnalysisOptions()) -> dict[int, SceneAnalysis]:
    """Analyse scenes (all with existing media) → ``{scene.index: SceneAnalysis}``, with a progress bar."""
    faces = face_model() if options.faces else None
    out: dict[int, SceneAnalysis] = {}
    readers: OrderedDict[str, MediaReader] = OrderedDict()
    footage = 0.0
    clock = time.perf_counter()
    try:
        for scene in progress.bar(list(scenes), desc="analysing scenes", unit="scene"):
            start, end = _source_range(scene)
            key = _key(scene.media, start, end, options, faces)
            hit = _CACHE.get(key)
            if hit is not None:
                _CACHE.move_to_end(key)
                out[scene.index] = hit
                continue
            reader = readers.get(scene.media)
            if reader is None:
                reader = readers[scene.media] = MediaReader(scene.media, options)
                if len(readers) > 8:
                    readers.popitem(last=False)[1].close()
            result = analyze_source(reader, start, end, options, faces)
            footage += end - start
            out[scene.index] = result
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
    finally:
        for reader in readers.values():
            reader.close()
    if footage:
        took = time.perf_counter() - clock
        logger.info("analysed %.1f s of footage in %.1f s (%.0fx real time)", footage, took, footage / max(took, 1e-9))
    return out


# ------------------------------------------------------------------------------------ the timeline


def estimate(
    timeline,
    *,
    emotion: Iterable[str] = (),
    valence: float | None = None,
    arousal: float | None = None,
    options: AnalysisOptions = AnalysisOptions(),
) -> list[SceneEmotion]:
    """The mood of every scene of ``timeline`` (precedence in the module docstring)."""
    cli = overrides.cli_overrides(emotion, timeline)
    marks = overrides.marker_overrides(timeline)
    whole = valence is not None or arousal is not None
    both = valence is not None and arousal is not None

    needs = [s for s in timeline.scenes if s.index not in cli and s.index not in marks and not both and s.media]
    missing = [s for s in needs if is_missing(s.media)]
    if missing and not whole:
        raise _missing_error(timeline, missing)
    if missing:
        logger.info(  # pipeline.score has already warned that the media are missing
            "%s is missing (scene%s %s): using --valence/--arousal there; relink the media for scene emotion",
            missing[0].media, "s" if len(missing) > 1 else "", _numbers(missing),
        )
    analysed = analyze_scenes([s for s in needs if s not in missing], options)

    n = len(timeline.scenes)
    va: list[tuple[float, float] | None] = [None] * n
    source, label, probs = [""] * n, [""] * n, [{} for _ in range(n)]
    for i, s in enumerate(timeline.scenes):
        ov = cli.get(s.index) or marks.get(s.index)
        if ov is not None:
            va[i], source[i], label[i] = (ov.valence, ov.arousal), ov.source, ov.label
        elif both or (s.media and s in missing):
            va[i] = (valence if valence is not None else DEFAULT_VALENCE, arousal if arousal is not None else DEFAULT_AROUSAL)
            source[i] = "cli"
        elif s.index in analysed:
            r = analysed[s.index]
            va[i], source[i], probs[i] = r.va, r.source, dict(r.probs)

    smoothed = mapping.smooth(
        [x if x is not None else (0.0, 0.0) for x in va],
        [s.duration for s in timeline.scenes],
        [source[i] not in ("faces", "cues") for i in range(n)],
    )
    for i in range(n):
        if source[i] in ("faces", "cues"):
            v, a = smoothed[i]
            if whole:  # one of --valence/--arousal: it replaces that axis of the analysis
                v = valence if valence is not None else v
                a = arousal if arousal is not None else a
                source[i] = "cli"
            va[i] = (v, a)

    if all(x is None for x in va) and not whole:
        raise MediaError(
            "names no media files, so the mood of its scenes cannot be analysed",
            path=timeline.path,
            hint="give --valence and --arousal for the whole timeline, --emotion N=... per scene, "
                 "or put 'emsync: MOOD' markers on the timeline",
        )
    for i in range(n):  # no picture: carry on the mood of the scene before (or after)
        if va[i] is None:
            before = next((va[j] for j in range(i - 1, -1, -1) if va[j] is not None), None)
            after = next((va[j] for j in range(i + 1, n) if va[j] is not None and source[j] != "default"), None)
            va[i] = before or after or (DEFAULT_VALENCE, DEFAULT_AROUSAL)
            source[i] = "default"
            if whole:
                va[i] = (valence if valence is not None else va[i][0], arousal if arousal is not None else va[i][1])
                source[i] = "cli"

    out = []
    for i, s in enumerate(timeline.scenes):
        v, a = mapping.clip_va(*va[i])
        out.append(SceneEmotion(s.index, s.start, s.end, round(v, 4) + 0.0, round(a, 4) + 0.0, source[i], probs[i], label[i]))
    counts = {k: sum(1 for x in source if x == k) for k in SOURCES if k in source}
    logger.info("scene moods: %s", ", ".join(f"{c} from {k}" for k, c in counts.items()))
    return out


def _numbers(scenes: Sequence) -> str:
    idx = [s.index for s in scenes]
    return ", ".join(map(str, idx[:6])) + (f" and {len(idx) - 6} more" if len(idx) > 6 else "")


def _missing_error(timeline, missing: Sequence) -> MediaError:
    first = missing[0].media
    same = [s for s in missing if s.media == first]
    others = len({s.media for s in missing}) - 1
    plural = len(same) > 1
    where = f" of {timeline.path.name}" if timeline.path is not None else ""
    more = f"; {others} other media file{'s are' if others > 1 else ' is'} missing too" if others else ""
    return MediaError(
        f"media file is missing (scene{'s' if plural else ''} {_numbers(same)}{where} use{'' if plural else 's'} it){more}",
        path=first,
        hint=f"relink the media, or set --emotion N=... for {'these scenes' if plural else 'this scene'} "
             "(or --valence and --arousal for the whole timeline)",
    )


# ------------------------------------------------------------------------------------ thumbnails


def scene_thumbnails(timeline, options: AnalysisOptions = AnalysisOptions()) -> dict[int, np.ndarray]:
    """A small picture per scene for the report: from the analysis cache, else one decoded frame."""
    loaded = _face_model if _face_model is not _UNSET else None  # never load the model just for this
    faces = loaded if options.faces else None
    out: dict[int, np.ndarray] = {}
    readers: dict[str, MediaReader] = {}
    try:
        for s in timeline.scenes:
            if not s.media or is_missing(s.media):
                continue
            start, end = _source_range(s)
            hit = _CACHE.get(_key(s.media, start, end, options, faces))
            if hit is not None and hit.thumbnail is not None:
                out[s.index] = hit.thumbnail
                continue
            try:  # e.g. an overridden scene, which nobody analysed: one frame is enough
                if s.media not in readers:
                    readers[s.media] = MediaReader(s.media, options)
                grabbed: list[np.ndarray] = []

                def grab(k, frame, grabbed=grabbed):
                    if not grabbed:
                        grabbed.append(to_rgb(frame, options.thumbnail_width))

                mid = (start + end) / 2
                readers[s.media].read(mid, mid + 1e-3, grab, want_audio=False)
                if grabbed:
                    out[s.index] = grabbed[0]
            except MediaError as exc:
                logger.debug("no thumbnail for scene %d: %s", s.index, exc)
    finally:
        for r in readers.values():
            r.close()
    return out
