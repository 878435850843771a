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

Decoding (PyAV) - a few frames per scene, chosen where they are cheap
    A scene gets ``max(2, min(6, round(2 × seconds)))`` frames (:class:`AnalysisOptions`
    ``fps``, ``max_frames``), in *chains* of frames ~0.5 s apart (the motion cue compares the
    frames of a chain, :mod:`.cues`): a scene up to ~3 s is one chain spread over it (2 frames
    a second, as every frame used to be sampled); a longer one has three chains of two, one in
    each third, each starting where decoding is cheapest (:func:`plan_samples`). (Eight frames
    in two chains of four cost a third more decoding in long-GOP H.264, where each chain frame
    is another 0.5 s decoded from a keyframe: 20× real time with faces instead of 25×; six in
    three pairs moved the bundled sample's scenes by at most 0.10 in valence and 0.04 in
    arousal, two chains of three up to 0.16, and a tie in arousal between two scenes):

    * the demuxer's index (MP4/MOV, AVI, Matroska cues) tells where the keyframes are, so each
      chain starts where it costs least to decode, counting a keyframe as 4 frames and a run
      of decoding on from a keyframe as its reference frames: *at* a keyframe of its half
      (seeking lands on it; in long-GOP files usually the cheapest), where a run that another
      chain needs anyway reaches, or as early in its half as it may - among about equally
      cheap starts, the most central one (never in the first or last 0.2 s of the scene: a
      transition may be there). Its next frames move to keyframes ~0.5 s on when there are
      such (short-GOP camera files; intra-only media - ProRes, DNxHR, MJPEG - then cost one
      decode per frame);
    * the frames are grouped by the keyframe they need; each group's keyframe is reached by
      seeking to it (or reading on when it is less than a second ahead), and the decoder gets
      only the packets from that keyframe to the group's last frame. A sample is the first
      decoded frame at or after its time (frames nothing references, ``skip_frame="NONREF"``,
      are never decoded: with B-frames a sample may be a frame or two later);
    * without a usable index (MPEG-TS, ...) the reader seeks before the first frame and reads
      on, holding the packets since the last keyframe and decoding them only when a sample
      time is reached (dropped undecoded when another keyframe comes first).

    H.264/HEVC are decoded without the deblocking filter (``skip_loop_filter``): ~15 % faster,
    and the statistics of frames scaled down to 320 pixels hardly change (valence and arousal
    of the bundled sample's shots and scenes move by < 0.01). Each sampled frame is scaled and
    converted to RGB in one libswscale step (at most 320 pixels wide) before anything looks at
    it. The sound is read by a second demuxer of the same file (reading on from one scene to
    the next when they follow each other), decoded and resampled to 16 kHz mono. Scenes are
    analysed by one thread per core (:func:`analyze_scenes`), each with its own readers: two
    single-threaded decoders on two cores go ~1.5× faster than one decoder's frame threads (a
    P-frame waits for the frame before it). On 2 cores the cues of a 1080p25 H.264 edit take
    1/25-1/35 of its duration, of intra-only media ~1/60. Faces are looked for in at most 4
    frames a scene, spread over it, by a Haar cascade stepping its scale by 1.25 (8 ms a
    320-pixel frame on one thread, 18 ms at the 1.1 step it used to take, with every face of
    the calibration pictures still found and fewer false detections:
    ``benchmarks/face_calibration.py``; the expression network costs ~0.4 ms a face), each
    scene worker with its own cascade (``benchmarks/bench_analysis.py``). Results are cached per (file, size, mtime, source
    range) for the process, so scoring the same edit in several formats decodes it once.
"""
from __future__ import annotations

import bisect
import importlib
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

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
    """How scenes are sampled: ``fps`` frames a second, ``1 / fps`` apart, but at most
    ``max_frames`` a scene (longer scenes: chains of frames ``1 / fps`` apart, see the module
    docstring); ≤ 320 px; 16 kHz mono."""

    fps: float = 2.0
    max_frames: int = 6  # frames sampled per scene at most (see the module docstring)
    max_width: int = 320
    audio_rate: int = AUDIO_RATE
    faces: bool = True
    face_frames: int = 4  # at most this many of a scene's frames (spread over it) go through the face model
    thumbnail_width: int = 96
    max_audio_seconds: float = 600.0  # longer scenes: the sound of their first 10 minutes

    def __post_init__(self):
        if not (0.1 <= self.fps <= 30 and 2 <= self.max_frames <= 1000 and 32 <= self.max_width <= 4096
                and 4000 <= self.audio_rate <= 48000):
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


@dataclass
class _Sample:
    """One frame a scene wants: the first decoded frame at or after ``time`` (media seconds)."""

    time: float
    follows: bool = False  # follows the sample before in a chain (~0.5 s after it: motion is measured)
    key_ts: int | None = None  # planned at this keyframe (its index timestamp): take that very frame
    anchor: int | None = None  # for the later frames of a chain: the index of its first frame...
    offset: float = 0.0  # ... and how far after it
    frame: object = None  # the chosen decoded frame
    frame_time: float = math.inf


CHAIN = 2  # frames per chain when a range is too long for its frames to follow each other
EDGE = 0.2  # seconds: chains keep this far from the range's ends (its first frame may be a transition)
LEAN = 0.5  # a chain may start this fraction of the frame gap outside its slot (towards a cheaper start)
KEY_COST = 4.0  # decoding a keyframe costs about as much as this many other frames (it has that many more bits)


def plan_samples(t0: float, t1: float, n: int, gap: float, keys: Sequence[tuple[float, int]] | None,
                 ref_rate: float = 12.5) -> list[_Sample]:
    """Where to sample [t0, t1): ``n`` frames.

    When ``n`` frames ``gap`` apart span the range, they are spread evenly over it (each frame
    follows the one before). Otherwise they go in chains of ``CHAIN`` frames ``gap``
    apart, one chain in each of equal slots of the range (the motion cue compares frames that
    follow each other).

    ``keys``: the file's keyframes ``(time, index timestamp)``, ascending, when its index lists
    them. Each chain then starts where it is cheapest to decode within its slot (leaning a
    little into the neighbouring slots, not at the very edges of the range, not overlapping
    the chain before): at a keyframe (``KEY_COST``), or where a run of decoding from a keyframe
    that another chain needs anyway reaches (``ref_rate`` frames a second: the reference
    frames); among starts about as cheap, the most central. The frames after it move to
    keyframes near ``gap`` apart when there are such (short GOPs, intra-only media:
    single-frame decodes). Evenly spread frames move to a keyframe within 30 % of their
    spacing."""
    duration = max(t1 - t0, 1e-6)
    times = [k[0] for k in keys] if keys else []
    out: list[_Sample] = []

    def near_key(t: float, window: float):
        i, stop = bisect.bisect_left(times, t - window), bisect.bisect_right(times, t + window)
        return min(keys[i:stop], key=lambda k: abs(k[0] - t)) if i < stop else None

    if int(round(duration / gap)) <= n:
        step = duration / n
        for k in range(n):
            t = t0 + (k + 0.5) * step
            key = near_key(t, 0.3 * step) if times else None
            out.append(_Sample(key[0] if key else t, follows=k > 0, key_ts=key[1] if key else None))
        return out
    chain = max(2, min(CHAIN, n))
    chains = -(-n // chain)
    sizes = [n // chains + (1 if j < n % chains else 0) for j in range(chains)]
    width = duration / chains
    edge = min(EDGE, width / 8)
    runs: dict[int, float] = {}  # keyframe (index in keys) → how far decoding from it is planned
    prev_end = -math.inf  # where the chain before ends

    def members(a: float, key, size: int, slot_hi: float):
        got = [(a, key)]
        for _ in range(1, size):
            prev = got[-1][0]
            kb = near_key(prev + gap, 0.3 * gap) if times else None
            if kb is not None and kb[0] > slot_hi + gap:
                kb = None
            got.append((kb[0], kb) if kb else (prev + gap, None))
        return got

    def cost(chosen, plan: dict[int, float]) -> float:
        total = 0.0
        for t, _ in chosen:
            g = bisect.bisect_right(times, t + 1e-6) - 1
            if g < 0:
                return math.inf
            end = plan.get(g)
            total += KEY_COST + (t - times[g]) * ref_rate if end is None else max(0.0, t - end) * ref_rate
            plan[g] = max(end if end is not None else -math.inf, t)
        return total

    for j in range(chains):
        lo, hi = t0 + j * width, t0 + (j + 1) * width
        size = sizes[j]
        span = (size - 1) * gap
        centre = lo + (width - span) / 2
        lean = LEAN * gap
        after = sum(sizes[j + 1:]) * gap  # what the chains after this one need (with a gap before each)
        hi_ok = min(hi + lean, t1 - edge - after) - span  # a chain may lean into its neighbours' slots a little
        lo_ok = min(max(lo - lean, t0 + edge, prev_end + gap), hi_ok)
        best = members(centre, None, size, hi)
        if times:
            i, stop = bisect.bisect_left(times, lo_ok - 1e-6), bisect.bisect_right(times, hi_ok + 1e-6)
            options = [members(k[0], k, size, hi) for k in keys[i:stop]]
            options += [members(lo_ok, None, size, hi), best]
            scored = [(cost(o, dict(runs)), o[0][1] is None, abs(o[0][0] - centre), o) for o in options]
            low = min(x[0] for x in scored)
            # the cheapest; among about as cheap, the most central (to 50 ms; then a keyframe start: exact)
            best = min((x for x in scored if x[0] <= low + 0.5), key=lambda x: (round(x[2] / 0.05), x[1]))[3]
            cost(best, runs)
        first = len(out)
        a = best[0][0]
        prev_end = best[-1][0]
        for m, (t, key) in enumerate(best):
            out.append(_Sample(t, follows=m > 0, key_ts=key[1] if key else None,
                               anchor=first if m else None, offset=t - a))
    return out


#: demuxers whose index lists every video keyframe from the start (MP4/MOV sample tables, AVI
#: idx1, Matroska cues)
INDEXED = ("mov", "mp4", "m4a", "3gp", "mj2", "avi", "matroska", "webm")


class MediaReader:
    """One open media file, read scene by scene (by one thread).

    :meth:`read` delivers a few sampled frames and the sound of one source range. Video and
    sound are read separately (a second demuxer for the sound), so that jumping between the
    keyframes the samples need does not drag the sound along, and the sound of consecutive
    ranges is read in one pass. Packets since the last keyframe are held (``_held``) and given
    to the decoder (``_fed`` of them so far) only when a sample needs them.
    """

    CONTINUE_GAP = 30.0  # seconds: sound of a range starting further ahead than this is reached by seeking
    READ_ON = 1.0  # seconds: a keyframe this close ahead of the reading position is read on to, not sought

    def __init__(self, path: str, options: AnalysisOptions, threads: int = 0):
        import av

        self.path = path
        self.options = options
        self.threads = threads  # decoder threads (0: as many as there are cores)
        self._av = av
        self._acontainer = None
        self._open()

    # -- opening, seeking ----------------------------------------------------------------------

    def _open(self) -> None:
        self.container = self._open_container()
        c = self.container
        self.video = c.streams.video[0] if c.streams.video else None
        self.audio = c.streams.audio[0] if c.streams.audio else None
        if self.video is None and self.audio is None:
            self.close()
            raise MediaError("has neither picture nor sound", path=self.path, hint="relink the right file")
        if self.video is not None:
            self._setup_video()
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
        self._keys: list[tuple[float, int]] | None | bool = False  # not looked at yet
        self._keys_seen = 0  # index entries when it was looked at
        self._shift: float | None = None  # presentation minus index time of keyframes (MP4: B-frame delay)
        self._keys_end = -math.inf  # time of the last index entry
        self._last = None  # the latest decoded video frame
        self._wanted: list[_Sample] = []  # the samples of the range being read
        self._dirty = False  # the decoder has had packets since it was last drained
        self._vreset()
        self._areset()

    def _setup_video(self) -> None:
        cc = self.video.codec_context
        self.video.thread_type = "AUTO"  # frame and slice threads
        cc.thread_count = self.threads
        cc.skip_frame = "NONREF"  # frames nothing refers to: never decoded
        cc.options = {"skip_loop_filter": "all"}  # no deblocking (H.264/HEVC): see the module docstring

    def _open_container(self):
        try:
            return self._av.open(self.path, metadata_errors="ignore")
        except Exception as exc:  # FFmpegError, OSError, UnicodeDecodeError ...
            raise MediaError(
                f"cannot be decoded ({type(exc).__name__}: {exc})", path=self.path,
                hint="re-encode it (e.g. to H.264 MP4) and relink it, or set --emotion N=... for its scenes",
            ) from exc

    def _vreset(self) -> None:
        self._vdemux = None  # the video packet iterator of the current pass
        self._held: list = []  # video packets since the last keyframe
        self._fed = 0  # how many of them the decoder has had
        self._vpos = -math.inf  # time of the latest demuxed video packet
        self._veof = False

    def _areset(self) -> None:
        self._ademux = None  # the sound packet iterator
        self._leftover: list = []  # decoded sound frames after the previous range
        self._aend = None  # end of the previous range (media time)
        self._aeof = False

    def close(self) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = True
        for c in (self.container, self._acontainer):
            try:
                if c is not None:
                    c.close()
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

    def _index_size(self) -> int:
        try:
            return len(self.video.index_entries)
        except AttributeError:  # PyAV without index_entries
            return 0

    def _keyframes(self, refresh: bool = False) -> list[tuple[float, int]] | None:
        """The video keyframes ``(time, index timestamp)`` the demuxer's index lists (MP4/MOV, AVI,
        Matroska cues), or None when it lists none. Times are presentation times as far as the
        index tells (MP4 indexes decoding times: shifted by the first packet's reordering delay)."""
        if self._keys is False or (refresh and self._keys_seen != self._index_size()):
            self._keys = None
            self._keys_seen = self._index_size()
            if not any(name in INDEXED for name in self.container.format.name.split(",")):
                return None  # others (MPEG-TS, ...) index only where they have been: not a keyframe map
            try:
                entries = self.video.index_entries
                stamps = [e.timestamp for e in entries if e.is_keyframe]
            except (AttributeError, self._av.error.FFmpegError) as exc:  # PyAV without index_entries
                logger.debug("%s: no keyframe index (%s)", self.path, exc)
                stamps = []
            if stamps:
                tb = float(self.video.time_base)
                if self._shift is None:  # the first packet's reordering delay (the file is still at its start)
                    self._shift = 0.0
                    try:
                        packet = next(iter(self.container.demux(self.video)))
                        if packet.pts is not None and packet.dts is not None and packet.dts in stamps[:1]:
                            self._shift = (packet.pts - packet.dts) * tb
                    except (StopIteration, self._av.error.FFmpegError):
                        pass
                    self._vreset()  # that read moved the demuxer: seek before the next pass
                shift = self._shift
                self._keys = [(s * tb + shift, s) for s in stamps]
                self._keys_end = (entries[len(entries) - 1].timestamp * tb) + shift
        return self._keys

    def _seek(self, container, stream, t: float | None, ts: int | None = None) -> bool:
        """Seek ``container`` to the keyframe at or before ``t`` seconds (or index timestamp ``ts``)
        of ``stream`` (PyAV resets its decoders). False if the demuxer cannot seek."""
        if ts is None:
            ts = max(int(math.floor(t / float(stream.time_base))), 0)
        try:
            container.seek(ts, stream=stream, backward=True, any_frame=False)
            return True
        except self._av.error.FFmpegError as exc:
            logger.debug("%s: seek failed (%s)", self.path, exc)
            return False

    def _vseek(self, t: float | None, ts: int | None = None) -> None:
        """Start a new video pass at the keyframe before ``t`` (``None``: from the very start)."""
        self._drain(self._wanted)  # seeking resets the decoder: first the frames it still holds
        if t is not None and not self._seek(self.container, self.video, t, ts):
            t = None
        if t is None:  # read from the start: reopen, the demuxer may be stuck
            self.container.close()
            self.container = self._open_container()
            self.video = self.container.streams.video[0]
            self._setup_video()
        self._vreset()
        self._vdemux = iter(self.container.demux(self.video))

    def _vstart(self, t: float) -> None:
        """Start a video pass for a sample at ``t`` when the index does not say where its
        keyframe is: seek before it, further back until a keyframe comes before the sample
        (demuxers without an index land anywhere)."""
        for back in (0.0, 2.0, 8.0, 30.0, None):
            self._vseek(None if back is None else t - back)
            if back is None or t - back <= self.origin + self._tol:
                return
            for packet in self._vdemux:  # peek: is there a keyframe before the sample?
                pt = packet.pts if packet.pts is not None else packet.dts
                ptime = float(pt * self.video.time_base) if pt is not None else -math.inf
                if packet.size and packet.is_keyframe and ptime <= t + self._tol:
                    self._vseek(t - back)  # land there again, this time reading every packet
                    return
                if ptime > t + self._tol:
                    break

    # -- video -------------------------------------------------------------------------------------

    def _decode(self, stream, packets) -> list:
        out = []
        for p in packets:
            try:
                out.extend(stream.decode(p))
            except self._av.error.FFmpegError as exc:  # a damaged packet: skip it, keep going
                logger.debug("%s: decode error %s", self.path, exc)
        return out

    def _vtime(self, frame) -> float | None:
        return None if frame.pts is None else float(frame.pts * self.video.time_base)

    @property
    def _tol(self) -> float:
        return 0.5 / self.frame_rate

    def _take(self, frames, samples: list[_Sample]) -> None:
        """Offer decoded frames to the samples: each keeps the earliest at or after its time."""
        for frame in frames:
            if frame.time_base is None:  # frames drained from a threaded decoder carry none
                frame.time_base = self.video.time_base
            self._last = frame
            ft = self._vtime(frame)
            if ft is None:
                continue
            for s in samples:
                if ft >= s.time - self._tol and ft < s.frame_time:
                    s.frame, s.frame_time = frame, ft

    def _feed(self, samples: list[_Sample]) -> None:
        """Give the decoder the held packets it has not had yet."""
        packets = self._held[self._fed:]
        self._fed = len(self._held)
        self._dirty = self._dirty or bool(packets)
        for p in packets:
            self._take(self._decode(self.video, [p]), samples)

    def _drain(self, samples: list[_Sample]) -> None:
        """Get the frames a threaded decoder still holds, then reset it (the held packets will be
        fed again from their keyframe if the next range needs them)."""
        if self._dirty:
            self._take(self._decode(self.video, [None]), samples)
            try:
                self.video.codec_context.flush_buffers()
            except Exception as exc:  # pragma: no cover - PyAV without flush_buffers
                logger.debug("flush_buffers: %s", exc)
        self._fed = 0
        self._dirty = False

    def _pump(self, samples: list[_Sample], todo: list[_Sample]) -> bool:
        """Demux one video packet; feed the decoder when it reaches the next sample in ``todo``
        (removing the samples it reaches). False at the end of the file."""
        if self._veof:
            return False
        try:
            packet = next(self._vdemux)
        except StopIteration:
            packet = None
        if packet is None or packet.size == 0:
            if packet is None:
                self._veof = True
                self._feed(samples)
                return False
            return True
        pt = packet.pts if packet.pts is not None else packet.dts
        ptime = float(pt * self.video.time_base) if pt is not None else None
        if ptime is not None:
            self._vpos = max(self._vpos, ptime)
        if packet.is_keyframe:
            self._held, self._fed = [packet], 0  # nothing before a keyframe is needed any more
            for planned in todo:
                if planned.key_ts is not None and ptime is not None and planned.key_ts in (packet.dts, packet.pts):
                    planned.time = ptime  # the planned keyframe: that very frame, and its chain after it
                    for s in samples:
                        if s.anchor is not None and samples[s.anchor] is planned and s.key_ts is None:
                            s.time = ptime + s.offset
        elif self._held:
            self._held.append(packet)
        else:
            return True  # no keyframe since the seek yet: undecodable
        reached = [s for s in todo if ptime is None or ptime >= s.time - self._tol]
        if reached:
            self._feed(samples)
            for s in reached:
                todo.remove(s)
        return True

    def _read_video(self, samples: list[_Sample], keys: Sequence[tuple[float, int]] | None) -> None:
        """Decode the frames ``samples`` want (sorted by time). With the keyframes known, the
        samples are grouped by the keyframe they need; each group's keyframe is reached by
        seeking to it (or by reading on when it is just ahead) and the decoder gets only the
        packets from that keyframe to the group's last sample. Without them, the pass reads on
        from the keyframe before the first sample, decoding only what the samples need."""
        times = [k[0] for k in keys] if keys else []
        todo = list(samples)
        self._wanted = samples
        tol = self._tol
        while todo:
            s = todo[0]
            active = self._vdemux is not None and not self._veof
            i = bisect.bisect_right(times, s.time + tol) - 1 if times else -1
            if i >= 0:
                key_time, key_ts = keys[i]
                held = self._held[0] if active and self._held else None
                in_gop = held is not None and key_ts in (held.dts, held.pts) and self._vpos <= s.time + tol
                ahead = active and self._vpos < key_time - tol and key_time - self._vpos <= self.READ_ON
                if not (in_gop or ahead):
                    self._vseek(key_time, key_ts)
                group_end = times[i + 1] if i + 1 < len(times) else math.inf
                group = [x for x in todo if x.time < group_end - tol] or [s]
            else:
                if not (active and self._vpos <= s.time + tol and s.time - self._vpos <= self.CONTINUE_GAP):
                    self._vstart(s.time)
                group = list(todo)
            while any(x in todo for x in group) and self._pump(samples, todo):
                pass
            if self._veof:
                break
        self._drain(samples)
        self._wanted = []

    def _read_still(self, samples: list[_Sample]) -> None:
        if self._still_frame is None:
            self._vseek(None)
            probe = [_Sample(-math.inf)]
            while probe[0].frame is None and self._pump(probe, list(probe)):
                pass
            self._drain(probe)
            self._still_frame = probe[0].frame or self._last
            if self._still_frame is None:
                raise MediaError("has no picture", path=self.path, hint="relink the right file")
        for s in samples:
            s.frame = self._still_frame

    # -- sound -------------------------------------------------------------------------------------

    def _read_audio(self, t0: float, t1: float) -> np.ndarray | None:
        """The sound of [t0, t1), mono float32 at the options' rate (None: the file has none).
        A range starting at or a little after the end of the previous one reads on."""
        if self.audio is None:
            return None
        av = self._av
        if self._acontainer is None and self.video is not None:  # a demuxer of its own
            self._acontainer = self._open_container()
            self._astream = self._acontainer.streams.audio[0]
        elif self._acontainer is None:
            self._acontainer, self._astream = self.container, self.audio
        stream = self._astream
        rate = self.options.audio_rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks: list[np.ndarray] = []
        state = {"first": None, "samples": 0, "covered": False}
        cap = int(self.options.max_audio_seconds * rate)

        def sink(frame):
            ft = frame.time
            fd = frame.samples / float(frame.sample_rate or 1)
            if ft is None:
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
            self._ademux is not None and not self._aeof and self._aend is not None
            and self._aend - 1e-6 <= t0 <= self._aend + self.CONTINUE_GAP
        )
        if continuing:
            leftover, self._leftover = self._leftover, []
            for frame in leftover:
                sink(frame)
        else:
            # a little early: the decoder's first frame after a seek lacks its overlap
            if not self._seek(self._acontainer, stream, max(t0 - 0.1, 0.0)):
                self._acontainer.close()
                self._acontainer = self._open_container()
                stream = self._astream = self._acontainer.streams.audio[0]
            self._areset()
            self._ademux = iter(self._acontainer.demux(stream))
        self._aend = t1
        while not state["covered"] and not self._aeof:
            try:
                packet = next(self._ademux)
            except StopIteration:
                packet = None
            if packet is None:
                self._aeof = True
            elif not packet.size:
                continue
            for frame in self._decode(stream, [packet] if packet is not None else [None]):
                sink(frame)
        for out in resampler.resample(None) or []:
            chunks.append(out.to_ndarray().reshape(-1))
        if not chunks:
            return np.zeros(0, np.float32)
        sound = np.concatenate(chunks).astype(np.float32)
        skip = max(0, int(round((t0 - state["first"]) * rate)))
        return sound[skip:skip + int(round((t1 - t0) * rate))]

    # -- one range ---------------------------------------------------------------------------------

    def _covers(self, keys, t1: float) -> bool:
        """Whether the keyframe index reaches ``t1`` (or the end of the file)."""
        if not keys:
            return False
        end = self.duration + self.origin if self.duration is not None else math.inf
        return self._keys_end >= min(t1, end) - 1.0

    def frames(self, start: float, end: float) -> int:
        """How many frames :meth:`read` samples in [start, end) (0 without picture)."""
        if self.video is None:
            return 0
        opts = self.options
        return max(2, min(opts.max_frames, int(round((max(end, start + 1e-3) - start) * opts.fps))))

    def read(self, start: float, end: float, on_frame: Callable[..., None], want_audio: bool = True):
        """Decode the frames sampled in source range [start, end) and its sound.

        :meth:`frames` frames, placed by :func:`plan_samples` (see the module docstring).
        ``on_frame(k, frame, follows)`` gets the k-th sample's ``av.VideoFrame`` in time order;
        ``follows`` is true when it follows the sample before in a chain (~0.5 s later: the
        motion cue compares them; a very short range may get one frame twice). Returns the
        range's sound, mono float32 at the options' rate, or ``None`` when the file has no sound.
        """
        end = max(end, start + 1e-3)
        t0 = self._media_time(start)
        t1 = t0 + (end - start)
        if self.video is not None:
            opts = self.options
            n = self.frames(start, end)
            keys = None if self.still else self._keyframes()
            if not self.still and not self._covers(keys, t1):  # the index may have grown (Matroska reads its cues late)
                keys = self._keyframes(refresh=True)
            if not self._covers(keys, t1):
                keys = None  # the index does not reach this range (yet): find the keyframes by reading
            rate = self.frame_rate * (0.5 if getattr(self.video.codec_context, "has_b_frames", 0) else 1.0)
            samples = plan_samples(t0, t1, n, 1.0 / opts.fps, keys, rate)
            if self.still:
                self._read_still(samples)
            else:
                self._read_video(samples, keys)
                if keys and any(s.frame is None or s.frame_time > s.time + 1.0 for s in samples):  # the index misled
                    logger.debug("%s: no frames where the index has keyframes; reading without it", self.path)
                    samples = plan_samples(t0, t1, n, 1.0 / opts.fps, None, rate)
                    self._read_video(samples, None)
            for k, s in enumerate(samples):
                frame = s.frame
                if frame is None:  # past the end of the picture: its last frame, if near
                    last = self._last
                    lt = self._vtime(last) if last is not None else None
                    if last is None or (lt is not None and lt < t0 - 1.0):
                        raise MediaError(
                            f"has no picture at {t0 - self.origin:.3f}-{t1 - self.origin:.3f} s"
                            + (f" (it is {self.duration:.3f} s long)" if self.duration else ""),
                            path=self.path,
                            hint="relink the media the timeline was edited with, or set --emotion N=... for this scene",
                        )
                    frame = last
                on_frame(k, frame, s.follows)
        return self._read_audio(t0, t1) if want_audio else None


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
    n = reader.frames(start, end)
    face_ks = set(np.linspace(0, n - 1, min(n, options.face_frames)).round().astype(int).tolist()) if faces else set()
    face_probs: list[tuple[dict, float]] = []
    face_frames = 0
    thumb: list[np.ndarray] = []
    mid = n // 2
    state = {"faces": faces}

    def on_frame(k, frame, follows):
        nonlocal face_frames
        rgb = to_rgb(frame, options.max_width)
        pic.add(rgb, frame_id=frame.pts, follows=follows)
        if k == mid:
            thumb.append(to_rgb(frame, options.thumbnail_width))
        if state["faces"] and k in face_ks:
            analyzer, reduce = state["faces"]
            try:
                probs, weight = reduce(analyzer.analyze(rgb))  # each thread has its own cascade
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


#: scenes analysed at the same time (one thread each, with its own readers): two decoders on
#: two cores go ~1.5× faster than one decoder's own threads (a P-frame waits for the one before)
MAX_WORKERS = 4


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def analyze_scenes(scenes: Sequence, options: AnalysisOptions = AnalysisOptions()) -> dict[int, SceneAnalysis]:
    """Analyse scenes (all with existing media) → ``{scene.index: SceneAnalysis}``, with a progress bar.

    Scenes not in the cache are analysed by up to one thread per core (at most
    :data:`MAX_WORKERS`), each keeping its own open reader per media file; results, errors and
    the progress bar follow the scenes' order."""
    faces = face_model() if options.faces else None
    scenes = list(scenes)
    out: dict[int, SceneAnalysis] = {}
    jobs: dict[tuple, tuple[float, float, str]] = {}  # cache key → range, media (each range once)
    keys = []
    for scene in scenes:
        start, end = _source_range(scene)
        key = _key(scene.media, start, end, options, faces)
        keys.append(key)
        if key not in _CACHE and key not in jobs:
            jobs[key] = (start, end, scene.media)
    cpus = _cpus()
    workers = max(1, min(cpus, MAX_WORKERS, len(jobs)))
    threads = 0 if workers == 1 else max(1, cpus // workers)  # decoder threads per reader (0: auto)
    local = threading.local()
    opened: list[MediaReader] = []
    opened_lock = threading.Lock()

    def job(start: float, end: float, media: str) -> SceneAnalysis:
        readers = getattr(local, "readers", None)
        if readers is None:
            readers = local.readers = OrderedDict()
        reader = readers.get(media)
        if reader is None:
            reader = readers[media] = MediaReader(media, options, threads=threads)
            with opened_lock:
                opened.append(reader)
            if len(readers) > 8:
                readers.popitem(last=False)[1].close()
        return analyze_source(reader, start, end, options, faces)

    footage = 0.0
    clock = time.perf_counter()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="emsync-analysis") if jobs else None
    try:
        futures = {key: pool.submit(job, *args) for key, args in jobs.items()}
        for scene, key in progress.bar(list(zip(scenes, keys)), desc="analysing scenes", unit="scene"):
            hit = _CACHE.get(key)
            if hit is not None:
                _CACHE.move_to_end(key)
                out[scene.index] = hit
                continue
            result = futures[key].result()
            start, end, _ = jobs[key]
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
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for reader in opened:
            reader.close()
    if footage:
        took = time.perf_counter() - clock
        logger.info("analysed %.1f s of footage in %.1f s (%.0fx real time, %d thread%s)", footage, took,
                    footage / max(took, 1e-9), workers, "" if workers == 1 else "s")
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

                def grab(k, frame, follows, grabbed=grabbed):
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
