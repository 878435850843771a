"""Haar face detection: speed against the cascade's scale step, and the scores it gives real
faces and false positives (the numbers behind ``faces.SCALE_FACTOR`` and the score→confidence
mapping ``SCORE_CENTER``/``SCORE_SCALE``).

Real faces: the frames the analysis actually sees of the bundled sample's face scene (its
source range decoded and scaled to 320 pixels as :mod:`emsync_plugin.emotion.media` does),
and ``skimage.data.astronaut()`` at 320 px, full size, zoomed, turned by ±8°, darker and with
noise. False positives: every other picture of ``skimage.data`` (coins and textures), at 320 px
and at full size. For each scale step it prints, measured side by side in this run, the
milliseconds per 320×180 frame on one thread (as the pipeline's scene workers run it), the
share of real-face pictures with a face found and their scores, and the false detections.

    python benchmarks/face_calibration.py [--steps 1.1,1.15,1.2,1.25] [--repeat 30]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

NO_FACE = ("coins", "cell", "camera", "coffee", "chelsea", "rocket", "page", "text", "brick", "grass",
           "gravel", "moon", "clock", "hubble_deep_field", "immunohistochemistry", "retina", "logo",
           "colorwheel", "horse", "checkerboard", "binary_blobs")


def _rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = (255 * (img.astype(np.float64) / max(1e-9, float(img.max())))).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return np.ascontiguousarray(img[..., :3])


def _width(img: np.ndarray, width: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    return cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def real_faces() -> dict[str, np.ndarray]:
    """RGB pictures that show a frontal face."""
    import cv2
    from skimage import data

    from emsync_plugin.emotion.media import MediaReader
    from emsync_plugin.emotion.pictures import to_rgb
    from emsync_plugin.emotion.sampling import AnalysisOptions
    from emsync_plugin.emotion.schedule import source_range
    from emsync_plugin.timeline import read_cuts

    out = {}
    a = _rgb(data.astronaut())
    out["astronaut 320"] = _width(a, 320)
    out["astronaut full"] = a
    out["astronaut zoom"] = _width(a[20:300, 110:390], 320)
    for deg in (-8, 8):
        m = cv2.getRotationMatrix2D((256, 256), deg, 1.0)
        out[f"astronaut {deg:+d} deg"] = _width(cv2.warpAffine(a, m, (512, 512), borderMode=cv2.BORDER_REFLECT), 320)
    out["astronaut dark"] = _width((a * 0.45).astype(np.uint8), 320)
    noise = np.random.default_rng(0).normal(0, 12, a.shape)
    out["astronaut noisy"] = _width(np.clip(a + noise, 0, 255).astype(np.uint8), 320)
    sample = REPO / "emsync_plugin" / "data" / "sample"
    timeline = read_cuts(sample / "sample.otio")
    face = next(s for s in timeline.scenes if "face" in Path(str(s.media)).name or s.index == 3)
    start, end = source_range(face)
    reader = MediaReader(str(sample / face.media) if not Path(str(face.media)).is_absolute() else face.media,
                         AnalysisOptions())
    frames = []
    try:
        reader.read(start, end, lambda k, frame, follows: frames.append(to_rgb(frame, 320)), want_audio=False)
    finally:
        reader.close()
    for k, f in enumerate(frames):
        out[f"sample face scene frame {k}"] = f
    return out


def no_faces() -> dict[str, np.ndarray]:
    from skimage import data

    out = {}
    for name in NO_FACE:
        fn = getattr(data, name, None)
        if fn is None:
            continue
        try:
            img = _rgb(fn())
        except Exception:  # a picture this skimage cannot load offline
            continue
        out[f"{name} 320"] = _width(img, 320)
        out[f"{name} full"] = img
    return out


def main(argv: list[str] | None = None) -> int:
    import cv2

    from emsync_plugin.emotion import faces as faces_mod

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", default="1.1,1.15,1.2,1.25")
    p.add_argument("--repeat", type=int, default=30)
    args = p.parse_args(argv)
    steps = [float(s) for s in args.steps.split(",")]
    faces, others = real_faces(), no_faces()
    timing = [faces_mod.to_gray(v) for k, v in {**faces, **others}.items() if k.endswith("320") or "frame" in k]
    timing = [g[:180, :320] for g in timing if g.shape[0] >= 180]
    cv2.setNumThreads(1)
    old = faces_mod.SCALE_FACTOR
    rows = []
    try:
        for step in steps:
            faces_mod.SCALE_FACTOR = step
            t = time.perf_counter()
            for _ in range(args.repeat):
                for g in timing:
                    faces_mod.detect(g)
            ms = (time.perf_counter() - t) / (args.repeat * len(timing)) * 1000
            real = {k: faces_mod.detect(faces_mod.to_gray(v)) for k, v in faces.items()}
            fake = {k: faces_mod.detect(faces_mod.to_gray(v)) for k, v in others.items()}
            rs = [max(s for _, s in d) for d in real.values() if d]
            fs = [s for d in fake.values() for _, s in d]
            rows.append((step, ms, sum(bool(d) for d in real.values()), len(real), rs, fs,
                         sorted(k for k, d in fake.items() if d)))
    finally:
        faces_mod.SCALE_FACTOR = old
    base = rows[0][1]
    print(f"\nHaar frontal-face cascade, minNeighbors {faces_mod.MIN_NEIGHBORS}, {len(timing)} frames of 320x180 timed, "
          f"one thread\n")
    print("| scale step | ms / frame | vs first | real faces found | their best scores | false detections | their scores |")
    print("|---|---|---|---|---|---|---|")
    for step, ms, found, total, rs, fs, where in rows:
        r = f"{min(rs):.2f}-{max(rs):.2f} (median {np.median(rs):.2f})" if rs else "-"
        f = f"{min(fs):.2f}-{max(fs):.2f}" if fs else "-"
        print(f"| {step:g} | {ms:.2f} | {base / ms:.2f}x | {found}/{total} | {r} | {len(fs)} ({', '.join(where)}) | {f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
