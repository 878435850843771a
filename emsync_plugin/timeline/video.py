"""A bare video file as a timeline: its shots, found with PySceneDetect.

Like EMSYNC's pipeline, shots shorter than :data:`MIN_SCENE` seconds are merged into their
neighbours, so a flash frame does not become a scene of its own.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import av

from ..errors import EmsyncError, MediaError, TimelineError
from . import limits
from .model import Edit, Shot, VideoTrack

logger = logging.getLogger(__name__)

MIN_SCENE = 4.0  # seconds, as EMSYNC's scene detection
THRESHOLD = 27.0  # PySceneDetect ContentDetector's default


def read(path: Path, *, min_scene: float = MIN_SCENE, threshold: float = THRESHOLD) -> Edit:
    """Detect the shots of a video file and return them as a one-track :class:`Edit`."""
    rate, duration = probe(path)
    if not (math.isfinite(rate) and 0 < rate <= limits.MAX_RATE):
        raise MediaError(f"has an impossible frame rate ({rate:g} fps)", path=path, hint="re-encode the video")
    if not (math.isfinite(duration) and 0 < duration <= limits.MAX_DURATION):
        raise MediaError(f"has an impossible duration ({duration:g} s)", path=path,
                         hint="check the file is complete, or re-encode it")
    boundaries = detect_shots(path, rate, min_scene=min_scene, threshold=threshold)
    bounds = [0.0, *[t for t in boundaries if 0 < t < duration], duration]
    media = str(path.resolve())
    shots = tuple(Shot(a, b, media, a, b, f"shot {i}") for i, (a, b) in enumerate(zip(bounds, bounds[1:]), 1))
    return Edit(path.stem, rate, 0.0, duration, (VideoTrack("V1", shots),), path=path, format="video")


def probe(path: Path) -> tuple[float, float]:
    """Frame rate and duration (seconds) of a video file."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise TimelineError("has no video stream", path=path, hint="pass a video file or a timeline")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            if container.duration is not None:
                duration = container.duration / av.time_base
            elif stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = (stream.frames or 0) / rate
    except EmsyncError:
        raise
    except Exception as exc:  # FFmpegError, and whatever PyAV raises on odd metadata
        raise MediaError(f"cannot decode this video ({_one_line(exc)})", path=path,
                         hint="check the file is complete, or re-encode it") from exc
    return rate, duration


class _DecoderComplaints(logging.Filter):
    """Collects what PySceneDetect logs as errors while it reads a damaged video, instead of
    letting them through as the errors of an emsync run (they are warnings for us)."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.source = logging.getLogger("pyscenedetect")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            self.records.append(record)
            return False  # reported once, as our warning
        return True

    def __enter__(self):
        self.source.addFilter(self)
        return self

    def __exit__(self, *exc):
        self.source.removeFilter(self)
        return False


def _one_line(exc: Exception) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def detect_shots(path: Path, rate: float, *, min_scene: float = MIN_SCENE, threshold: float = THRESHOLD) -> list[float]:
    """Times (seconds) where a new shot starts, excluding 0."""
    try:
        from scenedetect import ContentDetector, SceneManager, open_video
    except ImportError as exc:  # opencv needs system libraries on some machines
        raise MediaError(
            f"shot detection is unavailable ({exc})",
            path=path,
            hint="install PySceneDetect and OpenCV (pip install scenedetect; on Debian: apt-get install libgl1)",
        ) from exc
    try:
        with _DecoderComplaints() as complaints:
            video = open_video(str(path), backend="pyav")
            manager = SceneManager()
            manager.add_detector(ContentDetector(threshold=threshold, min_scene_len=max(1, int(round(min_scene * rate)))))
            manager.detect_scenes(video, show_progress=False)
            scenes = manager.get_scene_list()
    except Exception as exc:  # PySceneDetect and PyAV raise anything on a damaged file
        raise MediaError(f"cannot detect the shots of this video ({_one_line(exc)})", path=path,
                         hint="check the file is complete, or re-encode it") from exc
    if complaints.records:  # PySceneDetect stops at damaged frames and logs an ERROR: say what it means
        logger.warning("%s: the video is damaged (%s); shots after %.1f s may be missing",
                       path.name, complaints.records[0].getMessage()[:200], video.position.seconds)
    logger.info("%s: %d shots detected", path.name, len(scenes))
    return [float(getattr(start, "seconds", None) or start.get_seconds()) for start, _ in scenes[1:]]
