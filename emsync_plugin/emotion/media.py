"""Reading media with PyAV: a few sampled frames and the sound of one source range at a time.

:class:`MediaReader` decodes only the frames :func:`.sampling.plan_samples` asks for (seeking to
the keyframes they need, skipping frames nothing references and the deblocking filter) and reads
the sound with a second demuxer, resampled to 16 kHz mono. The small pictures a frame is looked
at as: :mod:`.pictures`. Why and how fast: ``docs/emotion.md``.
"""
from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MediaError
from .sampling import AnalysisOptions, Key, Sample, plan_samples
from .sound import SoundReader

logger = logging.getLogger(__name__)

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

    # PyAV objects (untyped): the container, its first video and audio streams (None if absent)
    container: Any
    video: Any
    audio: Any

    #: when set, a sample keeps what this makes of the frame it takes (e.g. a :class:`.pictures.Developed` one)
    develop: Callable[[Sample, Any], Any] | None = None

    CONTINUE_GAP = 30.0  # seconds: a sample further ahead than this is reached by seeking
    READ_ON = 1.0  # seconds: a keyframe this close ahead of the reading position is read on to, not sought

    def __init__(self, path: str, options: AnalysisOptions, threads: int = 0):
        import av

        self.path = path
        self.options = options
        self.threads = threads  # decoder threads (0: as many as there are cores)
        self._av = av
        self._open()

    # -- opening, seeking ----------------------------------------------------------------------

    def _open(self) -> None:
        self.container = self.open_container()
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
        self._still_frame: Any = None
        self._keys_read = False  # the index has been looked at
        self._keys: list[Key] | None = None
        self._keys_seen = 0  # index entries when it was looked at
        self._shift: float | None = None  # presentation minus index time of keyframes (MP4: B-frame delay)
        self._keys_end = -math.inf  # time of the last index entry
        self._last: Any = None  # the latest decoded video frame
        self._wanted: list[Sample] = []  # the samples of the range being read
        self._dirty = False  # the decoder has had packets since it was last drained
        self._vreset()
        # the sound: a demuxer of its own when there is picture too (the container's, without)
        self.sound = SoundReader(self, options=self.options, container=None if self.video is not None else self.container)

    def _setup_video(self) -> None:
        cc = self.video.codec_context
        self.video.thread_type = "AUTO"  # frame and slice threads
        cc.thread_count = self.threads
        cc.skip_frame = "NONREF"  # frames nothing refers to: never decoded
        cc.options = {"skip_loop_filter": "all"}  # no deblocking (H.264/HEVC): ~15 % faster, docs/emotion.md

    def open_container(self) -> Any:
        """The file opened by PyAV; MediaError saying it cannot be decoded."""
        try:
            return self._av.open(self.path, metadata_errors="ignore")
        except Exception as exc:  # FFmpegError, OSError, UnicodeDecodeError ...
            raise MediaError(
                f"cannot be decoded ({type(exc).__name__}: {exc})", path=self.path,
                hint="re-encode it (e.g. to H.264 MP4) and relink it, or set --emotion N=... for its scenes",
            ) from exc

    def _vreset(self) -> None:
        self._vdemux: Iterator[Any] | None = None  # the video packet iterator of the current pass
        self._held: list = []  # video packets since the last keyframe
        self._fed = 0  # how many of them the decoder has had
        self._vpos = -math.inf  # time of the latest demuxed video packet
        self._veof = False
        self._reach: float | None = None  # time of the packet that reached the samples in _reaching
        self._reaching: list[Sample] = []

    def close(self) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = True
        for c in (self.container, self.sound.container if hasattr(self, "sound") else None):
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
        if (self.tc_offset and self.duration is not None and source > self.duration + 1.0
                and -1.0 <= source - self.tc_offset <= self.duration + 1.0):
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

    def _keyframes(self, refresh: bool = False) -> list[Key] | None:
        """The video keyframes ``(time, index timestamp)`` the demuxer's index lists (MP4/MOV, AVI,
        Matroska cues), or None when it lists none. Times are presentation times as far as the
        index tells (MP4 indexes decoding times: shifted by the first packet's reordering delay)."""
        if not self._keys_read or (refresh and self._keys_seen != self._index_size()):
            self._keys_read = True
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
                if self._shift is None:  # the first packet's reordering delay
                    self._shift = 0.0
                    try:
                        if self._vdemux is not None:  # a pass has moved the demuxer: back to the first keyframe
                            self.seek(self.container, self.video, 0.0, stamps[0])
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

    def seek(self, container: Any, stream: Any, t: float, ts: int | None = None) -> bool:
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
        if t is not None and not self.seek(self.container, self.video, t, ts):
            t = None
        if t is None:  # read from the start: reopen, the demuxer may be stuck
            self.container.close()
            self.container = self.open_container()
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
            for packet in self._vdemux or ():  # peek: is there a keyframe before the sample?
                ptime = self._packet_time(packet)
                ptime = -math.inf if ptime is None else ptime
                if packet.size and packet.is_keyframe and ptime <= t + self._tol:
                    self._vseek(t - back)  # land there again, this time reading every packet
                    return
                if ptime > t + self._tol:
                    break

    # -- video -------------------------------------------------------------------------------------

    def decode(self, stream: Any, packets: list) -> list:
        """The frames of ``packets`` (``[None]``: what the decoder still holds); damaged packets are skipped."""
        out = []
        for p in packets:
            try:
                out.extend(stream.decode(p))
            except self._av.error.FFmpegError as exc:  # a damaged packet: skip it, keep going
                logger.debug("%s: decode error %s", self.path, exc)
        return out

    def _packet_time(self, packet) -> float | None:
        pt = packet.pts if packet.pts is not None else packet.dts
        return float(pt * self.video.time_base) if pt is not None else None

    def _vtime(self, frame) -> float | None:
        return None if frame.pts is None else float(frame.pts * self.video.time_base)

    @property
    def _tol(self) -> float:
        return 0.5 / self.frame_rate

    def _take(self, frames, samples: list[Sample]) -> None:
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
                    if self.develop is not None:
                        s.frame = self.develop(s, frame)

    def _feed(self, samples: list[Sample]) -> None:
        """Give the decoder the held packets it has not had yet."""
        packets = self._held[self._fed:]
        self._fed = len(self._held)
        self._dirty = self._dirty or bool(packets)
        for p in packets:
            self._take(self.decode(self.video, [p]), samples)

    def _drain(self, samples: list[Sample]) -> None:
        """Get the frames a threaded decoder still holds, then reset it (the held packets will be
        fed again from their keyframe if the next range needs them)."""
        if self._dirty:
            self._take(self.decode(self.video, [None]), samples)
            try:
                self.video.codec_context.flush_buffers()
            except Exception as exc:  # pragma: no cover - PyAV without flush_buffers
                logger.debug("flush_buffers: %s", exc)
        self._fed = 0
        self._dirty = False

    def _pump(self, samples: list[Sample], todo: list[Sample]) -> bool:
        """Demux one video packet; feed the decoder when it reaches a sample of ``todo``, and the
        packets after it that are shown before it (B-frames: the frame at or after a sample's time
        may come from one of them). The samples it reached leave ``todo`` when a packet shown
        after it arrives (then every frame that can be theirs has been fed, however far the pass
        goes on). False at the end of the file."""
        if self._veof:
            return False
        packet = next(self._vdemux, None) if self._vdemux is not None else None
        if packet is None:
            self._veof = True
            self._feed(samples)
            return False
        if packet.size == 0:
            return True
        ptime = self._packet_time(packet)
        if ptime is not None:
            self._vpos = max(self._vpos, ptime)
        if packet.is_keyframe:
            self._held, self._fed = [packet], 0  # nothing before a keyframe is needed any more
            if ptime is not None:
                _anchor(packet, ptime, samples, todo)
        elif self._held:
            self._held.append(packet)
        else:
            return True  # no keyframe since the seek yet: undecodable
        if self._reach is not None and (ptime is None or ptime > self._reach):
            todo[:] = [s for s in todo if s not in self._reaching]  # every frame shown before them is fed
            self._reach, self._reaching = None, []
        reached = [s for s in todo if (ptime is None or ptime >= s.time - self._tol) and s not in self._reaching]
        if reached:
            self._reach = max(self._reach if self._reach is not None else -math.inf,
                              ptime if ptime is not None else math.inf)
            self._reaching += reached
        if reached or self._reach is not None:  # a packet reaching a sample, or one shown before it
            self._feed(samples)
        if ptime is None:
            todo[:] = [s for s in todo if s not in self._reaching]
            self._reach, self._reaching = None, []
        return True

    @property
    def _active(self) -> bool:
        """A video pass is under way."""
        return self._vdemux is not None and not self._veof

    def _read_video(self, samples: list[Sample], keys: Sequence[Key] | None) -> None:
        """Decode the frames ``samples`` want (sorted by time). With the keyframes known, the
        samples are grouped by the keyframe they need (:meth:`_key_group`). Without them, the
        pass reads on from the keyframe before the first sample, decoding only what the samples
        need."""
        times = [k[0] for k in keys] if keys else []
        todo = list(samples)
        self._wanted = samples
        self._reach, self._reaching = None, []
        tol = self._tol
        while todo:
            s = todo[0]
            i = bisect.bisect_right(times, s.time + tol) - 1 if times else -1
            if keys and i >= 0:
                group = self._key_group(keys, i, s, todo)
            else:
                if not (self._active and self._vpos <= s.time + tol and s.time - self._vpos <= self.CONTINUE_GAP):
                    self._vstart(s.time)
                group = list(todo)
            while any(x in todo for x in group) and self._pump(samples, todo):
                pass
            if self._veof:
                break
        self._drain(samples)
        self._wanted = []

    def _key_group(self, keys: Sequence[Key], i: int, s: Sample, todo: list[Sample]) -> list[Sample]:
        """Reach keyframe ``keys[i]``, which sample ``s`` needs: read on when the pass is in its
        GOP or just before it, else seek to it. The samples of ``todo`` before the next keyframe
        (the decoder gets only the packets from that keyframe to their last)."""
        tol = self._tol
        active = self._active
        key_time, key_ts = keys[i]
        held = self._held[0] if active and self._held else None
        in_gop = held is not None and key_ts in (held.dts, held.pts) and self._vpos <= s.time + tol
        ahead = active and self._vpos < key_time - tol and key_time - self._vpos <= self.READ_ON
        if not (in_gop or ahead):
            self._vseek(key_time, key_ts)
        group_end = keys[i + 1][0] if i + 1 < len(keys) else math.inf
        return [x for x in todo if x.time < group_end - tol] or [s]

    def _read_still(self, samples: list[Sample]) -> None:
        if self._still_frame is None:
            self._vseek(None)
            probe = [Sample(-math.inf)]
            while probe[0].frame is None and self._pump(probe, list(probe)):
                pass
            self._drain(probe)
            self._still_frame = probe[0].frame or self._last
            if self._still_frame is None:
                raise MediaError("has no picture", path=self.path, hint="relink the right file")
        for s in samples:
            s.frame = self._still_frame

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

    def read(self, start: float, end: float, on_frame: Callable[..., None], want_audio: bool = True) -> np.ndarray | None:
        """Decode the frames sampled in source range [start, end) and its sound.

        :meth:`frames` frames, placed by :func:`.sampling.plan_samples`. ``on_frame(k, frame,
        follows)`` gets the k-th sample's ``av.VideoFrame`` in time order; ``follows`` is true
        when it follows the sample before in a chain (~0.5 s later: the motion cue compares
        them; a very short range may get one frame twice). Returns the range's sound, mono
        float32 at the options' rate, or ``None`` when the file has no sound (or is not asked).
        """
        t0, t1 = self.media_range(start, end)
        if self.video is not None:
            samples = self._sampled(t0, t1, self.frames(start, end))
            for k, s in enumerate(samples):
                on_frame(k, s.frame if s.frame is not None else self._last_frame(t0, t1), s.follows)
        return self.sound.read(t0, t1) if want_audio and self.audio is not None else None

    def media_range(self, start: float, end: float) -> tuple[float, float]:
        """The file's time range ``(t0, t1)`` of source range [start, end) (at least 1 ms long)."""
        end = max(end, start + 1e-3)
        t0 = self._media_time(start)
        return t0, t0 + (end - start)

    def plan(self, t0: float, t1: float, n: int) -> tuple[list[Sample], list[Key] | None]:
        """``n`` samples of media range [t0, t1) (:func:`.sampling.plan_samples`) and the keyframes
        they were placed by (None: the index does not reach the range)."""
        keys = None if self.still else self._keyframes()
        if not self.still and not self._covers(keys, t1):  # the index may have grown (Matroska reads its cues late)
            keys = self._keyframes(refresh=True)
        if not self._covers(keys, t1):
            keys = None  # the index does not reach this range (yet): find the keyframes by reading
        return plan_samples(t0, t1, n, 1.0 / self.options.fps, keys, self._ref_rate()), keys

    def _ref_rate(self) -> float:
        """Reference frames a second (frames with B-frames between them count half)."""
        return self.frame_rate * (0.5 if getattr(self.video.codec_context, "has_b_frames", 0) else 1.0)

    def decode_planned(self, samples: list[Sample], keys: Sequence[Key] | None) -> bool:
        """Decode the frames ``samples`` want (sorted by time; of one range or many); False when the
        index misled (a sample got no frame, or one more than a second late)."""
        self._read_video(samples, keys)
        return not (keys and any(s.frame is None or s.frame_time > s.time + 1.0 for s in samples))

    def _sampled(self, t0: float, t1: float, n: int) -> list[Sample]:
        """``n`` samples of media range [t0, t1), decoded (a sample past the picture's end has no frame)."""
        samples, keys = self.plan(t0, t1, n)
        if self.still:
            self._read_still(samples)
        elif not self.decode_planned(samples, keys):
            logger.debug("%s: no frames where the index has keyframes; reading without it", self.path)
            samples = plan_samples(t0, t1, n, 1.0 / self.options.fps, None, self._ref_rate())
            self._read_video(samples, None)
        return samples

    def _last_frame(self, t0: float, t1: float) -> Any:
        """For a sample past the end of the picture: its last frame, if near; else MediaError."""
        last = self._last
        lt = self._vtime(last) if last is not None else None
        if last is None or (lt is not None and lt < t0 - 1.0):
            raise MediaError(
                f"has no picture at {t0 - self.origin:.3f}-{t1 - self.origin:.3f} s"
                + (f" (it is {self.duration:.3f} s long)" if self.duration else ""),
                path=self.path,
                hint="relink the media the timeline was edited with, or set --emotion N=... for this scene",
            )
        return last


def _anchor(packet: Any, ptime: float, samples: list[Sample], todo: list[Sample]) -> None:
    """A keyframe arrived: a sample planned at it takes that very frame, and its chain follows it."""
    for planned in todo:
        if planned.key_ts is not None and planned.key_ts in (packet.dts, packet.pts):
            planned.time = ptime
            for s in samples:
                if s.anchor is planned and s.key_ts is None:
                    s.time = ptime + s.offset
