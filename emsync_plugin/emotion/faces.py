"""Faces in a frame and their expressions: OpenCV Haar detection + the shipped FER2013 model.

``FaceAnalyzer.load()`` verifies ``onnx_models/fer_emotion.onnx`` against the manifest and reads
its classes and input spec from its metadata; ``analyze(frame_rgb)`` finds the frontal faces of
a frame and classifies them in one ONNX Runtime call; ``frame_face_probs(faces)`` reduces them to
one distribution and a weight (detection confidence × face size: Haar cascades fire on textures).
Preprocessing must match the model card (``onnx_models/FER_MODEL.md``); calibration:
``docs/emotion.md``. Runtime needs numpy, OpenCV < 5 (Haar cascades) and onnxruntime only.
"""
from __future__ import annotations

import json
import logging
import math
import queue
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import models
from ..errors import ModelError

logger = logging.getLogger(__name__)

MODEL_NAME = "fer_emotion.onnx"
CASCADE_NAME = "haarcascade_frontalface_default.xml"

MIN_FACE_FRACTION = 0.06     # smallest face side, as a fraction of the frame's shorter side
FULL_SIZE_FRACTION = 0.25    # a face this big (side / shorter side) gets the full size factor
MARGIN = 0.1                 # added around the (square) box on each side, fraction of its side
DETECT_MAX_SIDE = 480        # detection runs on a copy whose shorter side is at most this
SCALE_FACTOR = 1.25
MIN_NEIGHBORS = 5
SCORE_CENTER = 2.5           # Haar last-stage score mapped to confidence 0.5
SCORE_SCALE = 0.75           # logistic slope of that mapping


@dataclass(frozen=True)
class Face:
    """One detected face: ``box`` is (x, y, width, height) in frame pixels."""

    box: tuple[int, int, int, int]
    confidence: float
    weight: float
    probs: dict[str, float]

    @property
    def top(self) -> str:
        return max(self.probs, key=lambda k: self.probs[k])


# --------------------------------------------------------------------------- detection

_POOL: queue.SimpleQueue = queue.SimpleQueue()  # loaded cascades not in use right now


@contextmanager
def _cascade():
    """A Haar cascade for this call alone: scene workers detect at the same time, each with its
    own ``CascadeClassifier`` (one object must not be shared between threads), and a cascade is
    loaded once and reused by later calls and threads (loading one parses a 1 MB XML file)."""
    try:
        cascade = _POOL.get_nowait()
    except queue.Empty:
        cascade = _load_cascade()
    try:
        yield cascade
    finally:
        _POOL.put(cascade)


def _forget_cascades() -> None:
    """Drop the loaded cascades and the cached lookup (tests)."""
    while True:
        try:
            _POOL.get_nowait()
        except queue.Empty:
            break
    _cascade_path.cache_clear()


@lru_cache(maxsize=1)
def _cascade_path() -> Path:
    import cv2

    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
        raise ModelError(
            f"this OpenCV ({getattr(cv2, '__version__', '?')}) has no Haar CascadeClassifier, which face "
            "detection needs (OpenCV 5 removed it)",
            hint='install OpenCV 4: pip install "opencv-python>=4.9,<5"',
        )
    return Path(cv2.data.haarcascades) / CASCADE_NAME  # type: ignore[attr-defined]  # cv2's stubs lack cv2.data


def _load_cascade():
    import cv2

    path = _cascade_path()
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise ModelError("OpenCV cannot load its Haar frontal-face cascade", path=path,
                         hint='reinstall OpenCV 4: pip install --force-reinstall "opencv-python>=4.9,<5"')
    return cascade


def to_gray(frame: np.ndarray) -> np.ndarray:
    """uint8 grayscale of an RGB (H×W×3), RGBA or already gray (H×W) frame."""
    import cv2

    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        if np.issubdtype(frame.dtype, np.floating) and frame.size and float(frame.max()) <= 1.0:
            frame = frame * 255.0
        frame = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    if frame.ndim == 2:
        return np.ascontiguousarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 1:
        return np.ascontiguousarray(frame[:, :, 0])
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGBA2GRAY)
    raise ValueError(f"expected an H×W gray or H×W×3 RGB frame, got shape {frame.shape}")


def score_confidence(score: float) -> float:
    """Haar last-stage score → confidence in (0, 1) (docs/emotion.md)."""
    return 1.0 / (1.0 + math.exp(-(score - SCORE_CENTER) / SCORE_SCALE))


def size_factor(box: tuple[int, int, int, int], frame_shape: tuple[int, ...]) -> float:
    short = min(frame_shape[0], frame_shape[1])
    side = math.sqrt(box[2] * box[3])
    return min(1.0, side / (FULL_SIZE_FRACTION * short))


def detect(gray: np.ndarray) -> list[tuple[tuple[int, int, int, int], float]]:
    """Frontal faces of a uint8 grayscale frame: ``[(box, haar_score), ...]``, boxes in its pixels."""
    import cv2

    h, w = gray.shape[:2]
    short = min(h, w)
    if short < 24:
        return []
    scale = min(1.0, DETECT_MAX_SIDE / short)
    small = gray if scale == 1.0 else cv2.resize(gray, (round(w * scale), round(h * scale)),
                                                 interpolation=cv2.INTER_AREA)
    min_side = max(24, round(MIN_FACE_FRACTION * min(small.shape[:2])))
    with _cascade() as cascade:
        rects, _levels, scores = cascade.detectMultiScale3(
            small, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS, minSize=(min_side, min_side),
            outputRejectLevels=True)
    found = []
    for (x, y, bw, bh), s in zip(np.asarray(rects).reshape(-1, 4), np.asarray(scores).reshape(-1)):
        box = tuple(round(float(v) / scale) for v in (x, y, bw, bh))
        found.append((box, float(s)))
    return found


# --------------------------------------------------------------------------- preprocessing

def crop(gray: np.ndarray, box: tuple[int, int, int, int], size: int = 64, margin: float = MARGIN) -> np.ndarray:
    """The model's view of a face: a square uint8 ``size``×``size`` crop around ``box``."""
    import cv2

    x, y, bw, bh = box
    side = max(bw, bh) * (1.0 + 2.0 * margin)
    cx, cy = x + bw / 2.0, y + bh / 2.0
    x0, y0 = round(cx - side / 2.0), round(cy - side / 2.0)
    n = max(1, round(side))
    h, w = gray.shape[:2]
    pad_l, pad_t = max(0, -x0), max(0, -y0)
    pad_r, pad_b = max(0, x0 + n - w), max(0, y0 + n - h)
    patch = gray[max(0, y0):min(h, y0 + n), max(0, x0):min(w, x0 + n)]
    if pad_l or pad_t or pad_r or pad_b:
        patch = cv2.copyMakeBorder(patch, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if n > size else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(patch), (size, size), interpolation=interp)


def to_input(crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """uint8 crops (N×64×64) → the model's ``face`` input, float32 N×1×64×64 in [−1, 1]."""
    arr = np.asarray(crops, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    return (arr / 127.5 - 1.0)[:, None, :, :].astype(np.float32)


# --------------------------------------------------------------------------- the analyzer

class FaceAnalyzer:
    """Detects the faces of a frame and classifies their expressions (7 FER2013 classes)."""

    INPUT = "face"
    OUTPUT = "probs"

    def __init__(self, session, classes: tuple[str, ...], size: int = 64):
        self._session = session
        self.classes = tuple(classes)
        self.size = int(size)

    @classmethod
    def load(cls, directory: Path | None = None, threads: int = 0) -> FaceAnalyzer:
        """The shipped model, verified against the manifest (``ModelError`` if missing/altered)."""
        with _cascade():  # fail early, with the fix, when OpenCV has no Haar cascades
            pass
        path = models.find(MODEL_NAME, directory)
        sess = models.session(path, threads)
        meta = models.metadata(sess)
        try:
            classes = tuple(json.loads(meta["emsync.classes"]))
            spec = json.loads(meta["emsync.input"])
        except (KeyError, ValueError) as exc:
            raise ModelError(f"the model's metadata is incomplete ({exc})", path=path,
                             hint="reinstall emsync to restore the shipped model") from exc
        names_in = [i.name for i in sess.get_inputs()]
        names_out = [o.name for o in sess.get_outputs()]
        if names_in != [cls.INPUT] or names_out != [cls.OUTPUT] or len(classes) != sess.get_outputs()[0].shape[-1]:
            raise ModelError(f"unexpected model interface (inputs {names_in}, outputs {names_out}, "
                             f"{len(classes)} classes)", path=path, hint="reinstall emsync")
        if spec.get("scale") != "x/127.5-1" or not spec.get("grayscale", False):
            raise ModelError(f"unsupported input preprocessing {spec}", path=path, hint="reinstall emsync")
        logger.debug("face model %s: classes %s", path.name, classes)
        return cls(sess, classes, size=int(spec.get("size", 64)))

    def classify(self, crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """Probabilities (N×7, rows sum to 1) of uint8 size×size grayscale face crops."""
        x = to_input(crops)
        if len(x) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return self._session.run([self.OUTPUT], {self.INPUT: x})[0]

    def analyze(self, frame_rgb: np.ndarray) -> list[Face]:
        """All frontal faces of one frame (RGB or gray), strongest ``weight`` first."""
        gray = to_gray(frame_rgb)
        found = detect(gray)
        if not found:
            return []
        crops = [crop(gray, box, self.size) for box, _ in found]
        probs = self.classify(crops)
        faces = []
        for (box, score), p in zip(found, probs):
            conf = score_confidence(score)
            faces.append(Face(box=box, confidence=conf, weight=conf * size_factor(box, gray.shape),
                              probs={c: float(v) for c, v in zip(self.classes, p)}))
        faces.sort(key=lambda f: f.weight, reverse=True)
        logger.debug("%d face(s): %s", len(faces),
                     ", ".join(f"{f.box} w={f.weight:.2f} {f.top}" for f in faces))
        return faces


def frame_face_probs(faces: list[Face]) -> tuple[dict[str, float] | None, float]:
    """Weighted mean class probabilities of a frame's faces and the frame's face weight in [0, 1].

    The mean uses each face's ``weight`` (confidence × size); the frame weight is
    ``1 − Π(1 − weightᵢ)``. ``(None, 0.0)`` when there is no face (or all weights are 0).
    """
    total = sum(f.weight for f in faces)
    if not faces or total <= 0.0:
        return None, 0.0
    classes = list(faces[0].probs)
    mean = {c: sum(f.weight * f.probs[c] for f in faces) / total for c in classes}
    miss = 1.0
    for f in faces:
        miss *= 1.0 - min(1.0, max(0.0, f.weight))
    return mean, 1.0 - miss
