"""Scene-analysis speed on 1080p footage: seconds of footage analysed per second of wall time.

Makes 1080p25 clips (AAC stereo sound) in a temporary folder: five different scenes (photos
of ``skimage.data`` panned across, film grain, a moving ball, a tone), 12 s of unique footage
repeated to the requested length by re-muxing the encoded packets (the decoding cost is that of
a genuine clip of that length; encoding 60 s of 1080p would take minutes). Three encodings of
the same footage:

* ``long GOP``: H.264 (libx264 ``veryfast``, CRF 20, B-frames) with x264's default GOP (a
  keyframe every 10 s at most, and at picture changes), as in delivery files;
* ``0.5 s GOP``: the same with a camera-style fixed 0.5 s GOP (no scene-cut keyframes);
* ``intra MJPEG``: every frame a keyframe (as ProRes, DNxHR, MJPEG camera files).

It then analyses an edit of each clip - scenes of 3-7 s - with ``emsync_plugin.emotion.schedule.analyze_scenes``
and prints one table, measured in this run (x real time = footage seconds / wall seconds):

* ``decode all frames``: PyAV decoding every frame (threads on): what a naive reader costs;
* ``cues, source order`` / ``cues, shuffled``: the scenes in source order (one forward pass) or
  shuffled (an edit that jumps around the source);
* ``cues + faces, ...``: the same with the face model (when installed).

Each analysis row is the best of ``--repeat`` runs (the analysis cache is cleared before each).
The target is ≥ 20× real time on 2 cores. Usage (from the repository root)::

    python benchmarks/bench_analysis.py [--seconds 60] [--repeat 1] [--keep DIR]
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

W, H, RATE = 1920, 1080, 25
SEGMENT = 12.0  # seconds of unique footage (5 scenes of 2.4 s)


def _pictures() -> list[np.ndarray]:
    from skimage import data, transform

    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field"):
        img = getattr(data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        big = transform.resize(img[..., :3], (H + 160, W + 280), order=1, anti_aliasing=False, preserve_range=True)
        out.append(big.astype(np.uint8))
    return out


#: clip kinds: (label, codec, gop in frames or None for the codec's default, file suffix)
CLIPS = (("long GOP", "libx264", None, "mp4"), ("0.5 s GOP", "libx264", 12, "mp4"), ("intra MJPEG", "mjpeg", 1, "mov"))


def make_segment(path: Path, seconds: float = SEGMENT, gop: int | None = None, codec: str = "libx264") -> None:
    """The unique footage: 5 scenes of ``seconds / 5``; ``gop``: frames between keyframes (x264's
    default if None); ``codec``: ``libx264`` or an intra-only codec (``mjpeg``)."""
    import av

    pictures = _pictures()
    rng = np.random.default_rng(0)
    grain = [rng.normal(0, 3.0, (H, W, 1)).astype(np.int16) for _ in range(6)]
    n = int(round(seconds * RATE))
    per = n // len(pictures)
    with av.open(str(path), "w") as out:
        if codec == "libx264":
            options = {"preset": "veryfast", "crf": "20"}
            if gop:
                options["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
            v = out.add_stream("libx264", rate=RATE, options=options)
            v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        else:  # intra-only
            v = out.add_stream(codec, rate=RATE)
            v.width, v.height, v.pix_fmt = W, H, "yuvj420p"
            v.codec_context.qscale = True
            v.codec_context.global_quality = 4 * 118  # -q:v 4 (FF_QP2LAMBDA = 118)
        a = out.add_stream("aac", rate=48000)
        a.layout = "stereo"
        for i in range(n):
            scene, j = min(i // per, len(pictures) - 1), i % per
            big = pictures[scene]
            x, y = int(j * 280 / per), int(j * 160 / per)  # a slow diagonal pan
            frame = big[y:y + H, x:x + W].astype(np.int16) + grain[i % len(grain)]
            cx, cy = int(W / 2 + 600 * np.sin(i / 9)), int(H / 2 + 300 * np.cos(i / 7))  # a moving ball
            frame[max(0, cy - 60):cy + 60, max(0, cx - 60):cx + 60] = (230, 60, 40)
            pic = av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), format="rgb24")
            for packet in v.encode(pic):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)
        sr = 48000
        t = np.arange(int(seconds * sr)) / sr
        tone = (0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2).astype(np.float32)
        stereo = np.stack([tone, tone])
        for k in range(0, stereo.shape[1], 1024):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo[:, k:k + 1024]), format="fltp", layout="stereo")
            fr.sample_rate, fr.pts = sr, k
            for packet in a.encode(fr):
                out.mux(packet)
        for packet in a.encode():
            out.mux(packet)


def repeat(segment: Path, path: Path, times: int) -> None:
    """``segment`` ``times`` times back to back, by re-muxing its packets (no re-encoding)."""
    import av

    with av.open(str(segment)) as src, av.open(str(path), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")}
        # each copy starts after the last packet of the one before ends, in every stream (B-frame
        # and AAC priming timestamps start below 0), on the frame grid
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        for packet in src.demux():
            if packet.dts is None:
                continue
            i, tb = packet.stream.index, float(packet.time_base)
            first[i] = min(first.get(i, math.inf), packet.dts * tb)
            last[i] = max(last.get(i, -math.inf), (max(packet.dts, packet.pts or packet.dts) + (packet.duration or 0)) * tb)
        span = max(last[i] - first[i] for i in last)
        span = math.ceil(span * RATE - 1e-6) / RATE
        length = {s.index: round(span / float(s.time_base)) for s in src.streams}
        for r in range(times):
            src.seek(0)
            for packet in src.demux():
                if packet.dts is None or packet.stream.index not in streams:
                    continue
                shift = r * length[packet.stream.index]
                packet.pts += shift
                packet.dts += shift
                packet.stream = streams[packet.stream.index]
                out.mux(packet)


def make_clip(folder: Path, seconds: float = 60.0, gop: int | None = None, codec: str = "libx264",
              suffix: str = "mp4") -> Path:
    tag = f"{codec}-gop{gop}" if gop else f"{codec}-longgop"
    times = max(1, int(round(seconds / SEGMENT)))
    segment, clip = folder / f"segment-{tag}.{suffix}", folder / f"clip1080-{tag}-{times}x.{suffix}"
    if not clip.exists():
        if not segment.exists():
            make_segment(segment, gop=gop, codec=codec)
        repeat(segment, clip, times)
    return clip


def edit(clip: Path, seconds: float, shuffle: bool, seed: int = 1):
    """Scenes of 3-7 s covering the clip, in source order or shuffled (a jumpy edit)."""
    from emsync_plugin.timeline.model import Scene

    rng = random.Random(seed)
    cuts, t = [0.0], 0.0
    while t < seconds - 3.0:
        t = min(seconds, t + rng.uniform(3.0, 7.0))
        cuts.append(round(t, 2))
    if cuts[-1] < seconds:
        cuts[-1] = seconds
    ranges = list(zip(cuts, cuts[1:]))
    if shuffle:
        rng.shuffle(ranges)
    scenes, pos = [], 0.0
    for i, (a, b) in enumerate(ranges, start=1):
        scenes.append(Scene(i, pos, pos + (b - a), str(clip), a, b))
        pos += b - a
    return scenes


def keyframe_interval(clip: Path) -> float:
    """Mean seconds between keyframes (from the demuxed packets)."""
    import av

    with av.open(str(clip)) as c:
        v = c.streams.video[0]
        keys = [p for p in c.demux(v) if p.size and p.is_keyframe]
        return float(c.duration / 1e6) / max(1, len(keys))


def decode_all(clip: Path) -> float:
    import av

    start = time.perf_counter()
    with av.open(str(clip)) as c:
        v = c.streams.video[0]
        v.thread_type = "AUTO"
        for _ in c.decode(v):
            pass
    return time.perf_counter() - start


def analyse(scenes, faces: bool, repeat: int) -> float:
    """Best wall time of ``repeat`` analyses of ``scenes`` (cache cleared before each)."""
    from emsync_plugin.emotion import schedule
    from emsync_plugin.emotion.sampling import AnalysisOptions

    best = math.inf
    for _ in range(repeat):
        schedule.clear_cache()
        start = time.perf_counter()
        schedule.analyze_scenes(scenes, AnalysisOptions(faces=faces))
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="clip length (default 60)")
    p.add_argument("--repeat", type=int, default=1, help="analyse each edit this many times, keep the best (default 1)")
    p.add_argument("--keep", type=Path, help="make the clips in this folder and keep them (reused when there)")
    args = p.parse_args(argv)

    import logging

    import av

    from emsync_plugin.emotion import scene_analysis

    logging.getLogger("emsync_plugin").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="emsync-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        have_faces = scene_analysis.face_model() is not None
        clips = []
        for label, codec, gop, suffix in CLIPS:
            t0 = time.perf_counter()
            clip = make_clip(folder, args.seconds, gop, codec, suffix)
            with av.open(str(clip)) as c:
                seconds = float(c.duration / 1e6)
                v = c.streams.video[0]
                mbps = clip.stat().st_size * 8 / seconds / 1e6
                print(f"{label} clip: {seconds:.1f} s, {v.width}x{v.height} {v.codec_context.name} "
                      f"{float(v.average_rate):g} fps, {mbps:.0f} Mbit/s, a keyframe every "
                      f"{keyframe_interval(clip):.2f} s (ready in {time.perf_counter() - t0:.0f} s)")
            clips.append((label, clip, seconds))
        runs = [("cues", False), ("cues + faces", True)] if have_faces else [("cues", False)]
        rows = []  # (clip label, what, footage s, wall s, scenes)
        for label, clip, seconds in clips:
            rows.append((label, "decode all frames", seconds, decode_all(clip), "-"))
            for shuffle in (False, True):
                scenes = edit(clip, seconds, shuffle)
                for what, faces in runs:
                    took = analyse(scenes, faces, args.repeat)
                    name = f"{what}, {'shuffled' if shuffle else 'source order'}"
                    rows.append((label, name, seconds, took, str(len(scenes))))
        lw = max(len(r[0]) for r in rows)
        ww = max(len(r[1]) for r in rows)
        print(f"\n{'clip':<{lw}}  {'what':<{ww}} {'footage s':>9} {'wall s':>7} {'x real time':>11} {'scenes':>6}")
        for label, name, footage, took, n in rows:
            print(f"{label:<{lw}}  {name:<{ww}} {footage:>9.1f} {took:>7.2f} {footage / took:>11.1f} {n:>6}")
        worst = {what: min((f / t for _, name, f, t, _ in rows if name.split(",")[0] == what), default=math.nan)
                 for what, _ in runs}
        print("\nslowest: " + ", ".join(f"{what} {x:.1f}x real time" for what, x in worst.items())
              + f" (target >= 20x on 2 cores); {os.cpu_count()} CPUs visible"
              + ("" if have_faces else "; face model not installed: no faces rows"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
