"""What one scene's picture and sound say: its cues, its faces, and their fusion.

:func:`analyze_source` decodes one source range (:class:`.media.MediaReader`), measures its cues
(:mod:`.cues`), looks for faces in a few of its frames (:mod:`.faces`, when the model is
installed) and fuses the two (:mod:`.mapping`). Overrides and neighbours are not its business.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ModelError
from . import mapping
from .cues import CueFeatures, PictureCues, cue_mood, frame_stats, sound_cues
from .pictures import to_rgb
from .sampling import AnalysisOptions, RangeSource

logger = logging.getLogger(__name__)

#: Picture terms of a range without a picture stream (neutral: the sound alone decides).
NO_PICTURE = {"brightness": 0.45, "saturation": 0.35, "colourfulness": 54.5, "motion": 0.0}


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


# ------------------------------------------------------------------------------------ faces

#: ``(analyzer, frame_face_probs)`` of the face stage, as :func:`face_model` returns it
FaceModel = tuple[Any, Any]

_UNSET: Any = object()
_face_model: Any = _UNSET


def face_model() -> FaceModel | None:
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


def loaded_face_model() -> FaceModel | None:
    """The face model if it has been loaded already (never loads it)."""
    return None if _face_model is _UNSET else _face_model


# ------------------------------------------------------------------------------------ one range


class _Frames:
    """Receives a range's sampled frames: cues of each, a thumbnail of the middle one, faces in a few."""

    def __init__(self, n: int, options: AnalysisOptions, faces: FaceModel | None):
        self.options = options
        self.faces = faces
        self.pic = PictureCues()
        self.face_ks = set(np.linspace(0, n - 1, min(n, options.face_frames)).round().astype(int).tolist()) if faces else set()
        self.face_probs: list[tuple[dict, float]] = []  # per frame with faces: probabilities, frame weight
        self.face_frames = 0  # frames the face model looked at
        self.thumb: list[np.ndarray] = []
        self.mid = n // 2

    def __call__(self, k: int, frame: Any, follows: bool) -> None:
        rgb = to_rgb(frame, self.options.max_width)
        self.pic.add(rgb, frame_id=frame.pts, follows=follows, stats=_measured(frame, "cues", lambda: frame_stats(rgb)))
        if k == self.mid:
            self.thumb.append(to_rgb(frame, self.options.thumbnail_width))
        if self.faces and k in self.face_ks:
            analyzer, reduce = self.faces
            try:  # each thread has its own cascade
                probs, weight = _measured(frame, ("faces", id(analyzer)), lambda: reduce(analyzer.analyze(rgb)))
            except Exception as exc:  # the face stage must not stop scoring
                logger.warning("face analysis failed (%s: %s); using cues only for the rest", type(exc).__name__, exc)
                self.faces = None
                return
            self.face_frames += 1
            if probs:
                self.face_probs.append((probs, float(weight)))


def _measured(frame: Any, what: Any, measure: Callable[[], Any]) -> Any:
    """``measure()``, kept with a :class:`.pictures.Developed` frame for the next scene that takes it."""
    found = getattr(frame, "found", None)
    if found is None:
        return measure()
    if what not in found:
        found[what] = measure()
    return found[what]


def analyze_source(reader: RangeSource, start: float, end: float, options: AnalysisOptions,
                   faces: FaceModel | None = None) -> SceneAnalysis:
    """Decode one source range and measure it (cues, faces, a thumbnail)."""
    duration = end - start
    frames = _Frames(reader.frames(start, end), options, faces)
    sound = reader.read(start, end, frames)
    values = frames.pic.values()
    if values["frames"] == 0:  # no picture stream: neutral picture terms, sound only
        values.update(NO_PICTURE)
    features = CueFeatures(duration=duration, **values, **sound_cues(sound, duration, options.audio_rate))
    cue_va = cue_mood(features)
    probs, coverage, weight, alpha, va = _fuse_faces(frames, cue_va)
    source = "faces" if alpha > 0 else "cues"
    return SceneAnalysis(features, cue_va, probs, coverage, weight, alpha, mapping.clip_va(*va), source,
                         frames.thumb[0] if frames.thumb else None)


def _fuse_faces(frames: _Frames, cue_va: tuple[float, float]) -> tuple[dict, float, float, float, tuple[float, float]]:
    """``(probs, coverage, weight, alpha, va)``: the faces' mean probabilities fused with the cues
    (nothing of the faces when they are too few or too doubtful, :data:`.mapping.MIN_ALPHA`)."""
    face_probs = frames.face_probs
    probs: dict = {}
    coverage = weight = alpha = 0.0
    va = cue_va
    if not (face_probs and frames.face_frames):
        return probs, coverage, weight, alpha, va
    total = sum(w for _, w in face_probs)
    if total <= 0:
        return probs, coverage, weight, alpha, va
    classes = list(face_probs[0][0])
    probs = {c: sum(w * p.get(c, 0.0) for p, w in face_probs) / total for c in classes}
    coverage = len(face_probs) / frames.face_frames
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
    return probs, coverage, weight, alpha, va
