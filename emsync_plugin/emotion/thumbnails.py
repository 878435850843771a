"""A small picture of each scene for the report: the analysis' own, else one decoded frame."""
from __future__ import annotations

import logging

import numpy as np

from ..errors import MediaError
from . import scene_analysis, schedule
from .media import MediaReader
from .pictures import to_rgb
from .sampling import AnalysisOptions

logger = logging.getLogger(__name__)


def scene_thumbnails(timeline, options: AnalysisOptions = AnalysisOptions()) -> dict[int, np.ndarray]:
    """``{scene index: RGB picture}``: from the analysis cache, else one decoded frame (scenes
    whose media cannot be read have none)."""
    loaded = scene_analysis.loaded_face_model()  # never load the model just for this
    faces = loaded if options.faces else None
    out: dict[int, np.ndarray] = {}
    readers: dict[str, MediaReader] = {}
    try:
        for s in timeline.scenes:
            if not s.media or schedule.is_missing(s.media):
                continue
            start, end = schedule.source_range(s)
            hit = schedule.cached(schedule.cache_key(s.media, start, end, options, faces))
            if hit is not None and hit.thumbnail is not None:
                out[s.index] = hit.thumbnail
                continue
            try:  # e.g. an overridden scene, which nobody analysed: one frame is enough
                if s.media not in readers:
                    readers[s.media] = MediaReader(s.media, options)
                picture = _middle_frame(readers[s.media], (start + end) / 2, options.thumbnail_width)
                if picture is not None:
                    out[s.index] = picture
            except MediaError as exc:
                logger.debug("no thumbnail for scene %d: %s", s.index, exc)
    finally:
        for r in readers.values():
            r.close()
    return out


def _middle_frame(reader: MediaReader, mid: float, width: int) -> np.ndarray | None:
    grabbed: list[np.ndarray] = []

    def grab(k, frame, follows) -> None:
        if not grabbed:
            grabbed.append(to_rgb(frame, width))

    reader.read(mid, mid + 1e-3, grab, want_audio=False)
    return grabbed[0] if grabbed else None
