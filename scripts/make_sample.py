#!/usr/bin/env python3
"""Make emsync's bundled sample edit: ``sample.mp4``, ``sample.otio``, ``sample.json`` and
``sample.kdenlive``.

What it makes, in the output folder (default ``emsync_plugin/data/sample``):

* ``sample.mp4`` -- 48 s, 640x360, 25 fps, H.264 (MPEG-4 part 2 if the PyAV wheel has no
  H.264 encoder) with AAC stereo 48 kHz sound. Seven shots of clearly different character, in
  this source order: dark/slow, bright/fast, a smiling face, calm, tense, silent, speech. Each
  shot is one picture (or one procedural animation) with its own synthesized sound, and every
  shot boundary is a hard cut.
* ``sample.otio`` -- the timeline "EMSYNC sample" (25 fps, starting at 01:00:00:00): one video
  and one audio track that cut ``sample.mp4`` (referenced by the RELATIVE url ``sample.mp4``,
  so the folder can be copied) into its scenes in a different order, two of them trimmed, so
  the timeline's cuts are not the source's shot boundaries. Two markers: ``emsync: happy`` in
  the face scene (an emotion override) and a plain marker where the speech starts.
* ``sample.json`` -- the facts tests check: the source shots, and the timeline's scenes in
  timeline order (start/end in seconds from the timeline start, source_start/source_end in
  source seconds, and what each scene is expected to feel like).
* ``sample.kdenlive`` -- the same edit, written by ``write_project`` of
  ``scripts/kdenlive_maker.py`` (beside this script).

From what (see ``LICENSE.md`` beside the output):

* photos shipped inside scikit-image (``skimage.data``): ``hubble_deep_field`` (NASA, public
  domain), ``astronaut`` (NASA, public domain), ``chelsea`` (CC0), ``rocket`` (SpaceX, public
  domain), ``coffee`` (CC0), ``camera`` (CC0);
* speech synthesized at build time by Debian's ``espeak-ng`` (skipped, with a warning, if the
  program is missing);
* everything else (the colour animation, hum, noise bursts, chords, wind, heartbeat) is
  generated here from fixed seeds, so the output is the same on every run.

Needs ``av``, ``numpy``, ``scipy``, ``pillow``, ``scikit-image``, ``opentimelineio``.

Usage::

    python scripts/make_sample.py [--out emsync_plugin/data/sample]
"""
from __future__ import annotations

import argparse
import colorsys
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
from PIL import Image, ImageFilter
from scipy.signal import lfilter, resample_poly
from skimage import data as skdata

log = logging.getLogger("make_sample")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "emsync_plugin" / "data" / "sample"

FPS = 25
W, H = 640, 360
SR = 48000
SAMPLES_PER_FRAME = SR // FPS  # 1920
TIMELINE_NAME = "EMSYNC sample"
TIMELINE_START_FRAMES = 90000  # 01:00:00:00 at 25 fps
MEDIA_NAME = "sample.mp4"
SPEECH_TEXT = (
    "Welcome to the emsync sample. Every cut gets a chord, and every scene gets its own mood."
)
SPEECH_OFFSET_S = 1.0  # where the speech starts inside its shot
VIDEO_CRF = 27
MPEG4_BITRATE = 300_000
AUDIO_BITRATE = 112_000
MAX_MEDIA_BYTES = 3_000_000  # the package ships it; demo copies add FCP exports beside it

Frame = np.ndarray  # (H, W, 3) uint8
Sound = np.ndarray  # (2, n) float32 in [-1, 1]


# ---------------------------------------------------------------------------------------------
# Source shots


@dataclass(frozen=True)
class SourceShot:
    """One shot of sample.mp4 and what it is meant to feel like."""

    key: str
    frames: int
    character: str
    expected_arousal: str  # low / medium / high
    expected_valence: str  # negative / neutral / positive
    picture: str
    sound: str
    material: str
    face: bool | None = False  # None: a face in profile that a detector may or may not find
    speech: bool = False


SHOTS: tuple[SourceShot, ...] = (
    SourceShot(
        "dark", 200, "dark slow", "low", "neutral",
        "dim deep-space photo, slow push-in", "quiet low hum (55 Hz and harmonics)",
        "skimage.data.hubble_deep_field()",
    ),
    SourceShot(
        "bright", 125, "bright fast", "high", "positive",
        "saturated colour stripes and balls, fast motion, white flashes on the beat",
        "loud rhythmic noise bursts and kicks at 125 BPM", "generated",
    ),
    SourceShot(
        "face", 225, "smiling face", "medium", "positive",
        "smiling astronaut portrait, slow Ken Burns move onto the face",
        "soft C-major pad with a gentle arpeggio", "skimage.data.astronaut()", face=True,
    ),
    SourceShot(
        "calm", 175, "calm", "low", "positive",
        "close-up of a resting cat, slow drift", "soft wind and a few distant bird chirps",
        "skimage.data.chelsea()",
    ),
    SourceShot(
        "tense", 150, "tense", "high", "negative",
        "dark red launch pad at dusk, shaking camera, brightness pulsing with a heartbeat",
        "pulsing low heartbeat and a dissonant drone", "skimage.data.rocket()",
    ),
    SourceShot(
        "silence", 115, "still silent", "low", "neutral",
        "coffee cup, locked-off still", "digital silence", "skimage.data.coffee()",
    ),
    SourceShot(
        "speech", 210, "speech", "medium", "neutral",
        "man with a camera on a tripod (black and white), slow push-in",
        "a synthetic voice speaking one sentence over faint room tone",
        "skimage.data.camera() + espeak-ng", face=None, speech=True,
    ),
)

# The edit: (shot key, first frame, end frame) inside that shot, in timeline order.
EDIT: tuple[tuple[str, int, int], ...] = (
    ("dark", 20, 190),  # trimmed head and tail: 6.8 s
    ("calm", 0, 175),
    ("face", 15, 215),  # trimmed: 8.0 s
    ("bright", 0, 125),
    ("silence", 0, 115),
    ("tense", 0, 150),
    ("speech", 0, 210),
)


def shot_starts() -> dict[str, int]:
    """First source frame of each shot."""
    starts, at = {}, 0
    for shot in SHOTS:
        starts[shot.key] = at
        at += shot.frames
    return starts


# ---------------------------------------------------------------------------------------------
# Pictures


def _smooth(u: float) -> float:
    return u * u * (3 - 2 * u)


def _lerp_box(box0, box1, u: float) -> tuple[float, float, float, float]:
    return tuple(a + (b - a) * u for a, b in zip(box0, box1))  # type: ignore[return-value]


def _crop(img: Image.Image, box) -> Frame:
    """The sub-pixel box of ``img`` scaled to the output size."""
    return np.asarray(img.resize((W, H), Image.Resampling.BICUBIC, box=tuple(box)))


def _pil(arr: np.ndarray) -> Image.Image:
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return Image.fromarray(arr.astype(np.uint8))


def _ken_burns(img: Image.Image, box0, box1) -> Callable[[int, int], Frame]:
    def frame(i: int, n: int) -> Frame:
        return _crop(img, _lerp_box(box0, box1, _smooth(i / (n - 1))))

    return frame


def picture_dark() -> Callable[[int, int], Frame]:
    src = skdata.hubble_deep_field().astype(np.float32)
    # a deep navy floor rather than black: near-black pixels have an unstable hue, and the
    # hue jump at a keyframe would look like a cut to a content-based shot detector
    navy = np.array([8, 12, 30], np.float32)
    dim = (navy + src * 0.35 * np.array([0.85, 0.9, 1.0], np.float32)).clip(0, 255)
    img = _pil(dim).filter(ImageFilter.GaussianBlur(0.8))
    return _ken_burns(img, (100, 160, 900, 610), (250, 262.5, 730, 532.5))


def picture_bright() -> Callable[[int, int], Frame]:
    rng = np.random.default_rng(2)
    balls = [
        (rng.uniform(60, W - 60), rng.uniform(60, H - 60), rng.uniform(-22, 22),
         rng.uniform(-16, 16), rng.uniform(28, 60), rng.uniform(0, 1))
        for _ in range(6)
    ]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)

    def rgb(h: float, v: float = 1.0) -> np.ndarray:
        return np.array(colorsys.hsv_to_rgb(h % 1.0, 1.0, v), np.float32) * 255

    def frame(i: int, n: int) -> Frame:
        hue = (i // 6) * 0.37  # the colours jump on every eighth note (cheap to encode)
        mix = (0.5 + 0.5 * np.sin((xx + yy * 0.6 + i * 26) * (np.pi / 48)))[..., None]
        img = mix * rgb(hue) + (1 - mix) * rgb(hue + 0.5, 0.9)
        for x0, y0, vx, vy, r, h in balls:
            # bounce inside the frame
            x = abs(((x0 + vx * i) - r) % (2 * (W - 2 * r)))
            x = (2 * (W - 2 * r) - x if x > W - 2 * r else x) + r
            y = abs(((y0 + vy * i) - r) % (2 * (H - 2 * r)))
            y = (2 * (H - 2 * r) - y if y > H - 2 * r else y) + r
            inside = (xx - x) ** 2 + (yy - y) ** 2 < r * r
            img[inside] = rgb(h + i * 0.03)
        beat = i % 12  # 125 BPM at 25 fps: a beat every 12 frames
        flash = {0: 0.85, 1: 0.45, 6: 0.35}.get(beat, 0.0)
        img = img * (1 - flash) + 255 * flash
        return img.clip(0, 255).astype(np.uint8)

    return frame


def picture_face() -> Callable[[int, int], Frame]:
    img = _pil(skdata.astronaut())
    return _ken_burns(img, (0, 60, 512, 348), (65, 15, 385, 195))


def picture_calm() -> Callable[[int, int], Frame]:
    img = _pil(skdata.chelsea())
    w, h = 420.0, 236.25
    return _ken_burns(img, (0, 30, w, 30 + h), (28, 50, 28 + w, 50 + h))


def _heartbeat(t: np.ndarray) -> np.ndarray:
    """0..1 envelope of a double heartbeat every 0.75 s (80 BPM)."""
    p = np.mod(t, 0.75)
    return np.exp(-p / 0.09) + 0.7 * np.where(p >= 0.22, np.exp(-(p - 0.22) / 0.09), 0.0)


def picture_tense() -> Callable[[int, int], Frame]:
    src = skdata.rocket().astype(np.float32)
    lum = src @ np.array([0.299, 0.587, 0.114], np.float32)
    red = np.stack([lum * 1.0, lum * 0.16, lum * 0.12], axis=-1)
    rng = np.random.default_rng(5)
    bw, bh = 544.0, 306.0
    cx, cy = (640 - bw) / 2, (427 - bh) / 2

    def frame(i: int, n: int) -> Frame:
        t = i / FPS
        beat = float(_heartbeat(np.array([t]))[0])
        gain = 0.5 + 0.35 * beat
        jolt = 10.0 * beat
        dx, dy = rng.normal(0, 4 + jolt, 2)
        dx, dy = float(np.clip(dx, -cx, cx)), float(np.clip(dy, -cy, cy))
        img = _pil((red * gain).clip(0, 255))
        return _crop(img, (cx + dx, cy + dy, cx + dx + bw, cy + dy + bh))

    return frame


def picture_silence() -> Callable[[int, int], Frame]:
    still = _crop(_pil(skdata.coffee()), (0, 31.25, 600, 368.75))

    def frame(i: int, n: int) -> Frame:
        return still

    return frame


def picture_speech() -> Callable[[int, int], Frame]:
    gray = skdata.camera().astype(np.float32)
    tinted = np.stack([gray * 1.0, gray * 0.97, gray * 0.9], axis=-1)
    img = _pil(tinted.clip(0, 255))
    return _ken_burns(img, (0, 40, 512, 328), (60, 40, 420, 242.5))


PICTURES = {
    "dark": picture_dark, "bright": picture_bright, "face": picture_face,
    "calm": picture_calm, "tense": picture_tense, "silence": picture_silence,
    "speech": picture_speech,
}


# ---------------------------------------------------------------------------------------------
# Sounds


def _t(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / SR


def _stereo(left: np.ndarray, right: np.ndarray | None = None) -> Sound:
    return np.stack([left, left if right is None else right]).astype(np.float32)


def sound_dark(n: int) -> Sound:
    t = _t(n)
    swell = 0.75 + 0.25 * np.sin(2 * np.pi * t / 8.0 - np.pi / 2)
    rng = np.random.default_rng(11)
    rumble = lfilter([0.002], [1, -0.998], rng.normal(0, 1, n))

    def hum(f: float) -> np.ndarray:
        return (0.060 * np.sin(2 * np.pi * f * t) + 0.028 * np.sin(2 * np.pi * 2 * f * t + 0.5)
                + 0.012 * np.sin(2 * np.pi * 3 * f * t + 1.1))

    return _stereo(swell * hum(55.0) + rumble, swell * hum(55.25) + rumble) * 0.5


def sound_bright(n: int) -> Sound:
    t = _t(n)
    rng = np.random.default_rng(12)
    left, right = np.zeros(n), np.zeros(n)
    step = 0.24  # eighth notes at 125 BPM
    for k in range(int(n / SR / step) + 1):
        s0 = int(round(k * step * SR))
        if s0 >= n:
            break
        m = min(n - s0, int(0.2 * SR))
        tt = t[:m]
        burst = rng.normal(0, 1, m) * np.exp(-tt / 0.07) * 0.6
        pan = 0.75 if k % 2 else 0.25
        left[s0:s0 + m] += burst * (1 - pan) * 2
        right[s0:s0 + m] += burst * pan * 2
        if k % 2 == 0:  # kick on the beat
            phase = 2 * np.pi * np.cumsum(50 + 110 * np.exp(-tt / 0.03)) / SR
            kick = np.sin(phase) * np.exp(-tt / 0.14) * 1.2
            left[s0:s0 + m] += kick
            right[s0:s0 + m] += kick
    sound = np.tanh(1.2 * _stereo(left, right))  # loud: soft-clipped like a limiter
    return (sound / np.abs(sound).max() * 0.93).astype(np.float32)


def sound_face(n: int) -> Sound:
    t = _t(n)
    attack = np.minimum(1.0, t / 0.6)
    pad = sum(0.03 * np.sin(2 * np.pi * f * t) + 0.012 * np.sin(4 * np.pi * f * t)
              for f in (261.63, 329.63, 392.00, 523.25))
    pad = pad * attack * (1 + 0.08 * np.sin(2 * np.pi * 0.5 * t))
    notes = (523.25, 659.26, 783.99, 1046.50, 783.99, 659.26)
    left, right = pad.copy(), pad.copy()
    step = 0.375
    for k in range(int(n / SR / step)):
        s0 = int(round(k * step * SR))
        m = min(n - s0, int(0.9 * SR))
        tt = t[:m]
        f = notes[k % len(notes)]
        pluck = (np.sin(2 * np.pi * f * tt) + 0.3 * np.sin(4 * np.pi * f * tt)) * np.exp(-tt / 0.25)
        pluck *= 0.05 * np.minimum(1.0, tt / 0.004)
        pan = 0.35 + 0.3 * (k % 3) / 2
        left[s0:s0 + m] += pluck * (1 - pan) * 2
        right[s0:s0 + m] += pluck * pan * 2
    return _stereo(left, right)


def sound_calm(n: int) -> Sound:
    t = _t(n)
    rng = np.random.default_rng(14)

    def wind() -> np.ndarray:
        x = lfilter([0.02], [1, -0.98], rng.normal(0, 1, n))
        return x * (0.6 + 0.4 * np.sin(2 * np.pi * t / 5.3 + rng.uniform(0, 6)))

    left, right = wind() * 0.35, wind() * 0.35
    for when in (1.1, 2.9, 3.2, 5.4):
        s0 = int(when * SR)
        m = min(n - s0, int(0.09 * SR))
        tt = t[:m]
        f = 3200 + 900 * tt / 0.09
        chirp = np.sin(2 * np.pi * np.cumsum(f) / SR) * np.sin(np.pi * tt / 0.09) * 0.05
        pan = rng.uniform(0.2, 0.8)
        left[s0:s0 + m] += chirp * (1 - pan) * 2
        right[s0:s0 + m] += chirp * pan * 2
    return _stereo(left, right)


def sound_tense(n: int) -> Sound:
    t = _t(n)
    beat = _heartbeat(t)
    thump = np.sin(2 * np.pi * 48 * t) * beat * 0.55
    trem = 0.7 + 0.3 * np.sin(2 * np.pi * 6.0 * t)
    drone = (0.07 * np.sin(2 * np.pi * 73.42 * t) + 0.06 * np.sin(2 * np.pi * 103.83 * t)
             + 0.02 * np.sin(2 * np.pi * 622.25 * t)) * trem
    return _stereo(thump + drone, thump + drone * 0.9)


def sound_silence(n: int) -> Sound:
    return np.zeros((2, n), np.float32)


def _espeak(text: str) -> np.ndarray | None:
    """Mono speech at SR, or None when espeak-ng is not installed."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        log.warning("espeak-ng not found: the speech shot gets room tone only")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "speech.wav"
        subprocess.run([exe, "-v", "en-us", "-s", "160", "-w", str(wav_path), text],
                       check=True, capture_output=True)
        with wave.open(str(wav_path), "rb") as wav:
            rate = wav.getframerate()
            raw = wav.readframes(wav.getnframes())
            channels = wav.getnchannels()
    x = np.frombuffer(raw, dtype="<i2").astype(np.float64).reshape(-1, channels).mean(axis=1)
    frac = Fraction(SR, rate)
    x = resample_poly(x, frac.numerator, frac.denominator)
    return x / np.abs(x).max() * 0.7


def sound_speech(n: int, speech: np.ndarray | None) -> Sound:
    rng = np.random.default_rng(17)
    room = lfilter([0.05], [1, -0.95], rng.normal(0, 1, n)) * 0.004
    voice = np.zeros(n)
    if speech is not None:
        s0 = int(SPEECH_OFFSET_S * SR)
        m = min(len(speech), n - s0)
        voice[s0:s0 + m] = speech[:m]
    return _stereo(room + voice)


def _edge_fade(sound: Sound, seconds: float = 0.008) -> Sound:
    m = int(seconds * SR)
    ramp = np.linspace(0.0, 1.0, m, dtype=np.float32)
    sound = sound.copy()
    sound[:, :m] *= ramp
    sound[:, -m:] *= ramp[::-1]
    return sound


def make_sound(speech: np.ndarray | None) -> Sound:
    parts = []
    for shot in SHOTS:
        n = shot.frames * SAMPLES_PER_FRAME
        if shot.key == "speech":
            part = sound_speech(n, speech)
        else:
            part = globals()[f"sound_{shot.key}"](n)
        parts.append(_edge_fade(part))
    return np.clip(np.concatenate(parts, axis=1), -1.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Encoding


def pick_video_codec() -> str:
    for name in ("libx264", "mpeg4"):
        if name in av.codecs_available:
            try:
                av.Codec(name, "w")
                return name
            except Exception:  # noqa: BLE001 - listed but not usable for encoding
                continue
    raise SystemExit("PyAV has neither libx264 nor mpeg4 encoders")


def encode(path: Path, sound: Sound) -> str:
    """Write sample.mp4; return the video encoder used."""
    codec = pick_video_codec()
    total = sum(s.frames for s in SHOTS)
    container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
    container.flags |= int(av.container.Flags.bitexact.value)
    vstream = container.add_stream(codec, rate=FPS)
    vstream.width, vstream.height, vstream.pix_fmt = W, H, "yuv420p"
    vstream.codec_context.thread_count = 1  # deterministic output whatever the core count
    vstream.codec_context.gop_size = 4 * FPS  # a keyframe at least every 4 s (x264 adds one at each shot cut)
    if codec == "libx264":
        vstream.options = {"crf": str(VIDEO_CRF), "preset": "slow", "keyint_min": str(FPS)}
    else:  # MPEG-4 part 2: a mean bit rate keeps the file inside the size budget
        vstream.bit_rate = MPEG4_BITRATE
        vstream.codec_context.max_b_frames = 2
        vstream.options = {"mbd": "rd", "trellis": "1"}
    vstream.codec_context.flags |= av.codec.context.Flags.bitexact
    astream = container.add_stream("aac", rate=SR, layout="stereo")
    astream.bit_rate = AUDIO_BITRATE
    astream.codec_context.flags |= av.codec.context.Flags.bitexact

    audio_at = 0
    chunk = 1024

    def push_audio(until: int) -> None:
        nonlocal audio_at
        while audio_at < until:
            part = np.ascontiguousarray(sound[:, audio_at:audio_at + chunk])
            frame = av.AudioFrame.from_ndarray(part, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = SR, audio_at
            frame.time_base = Fraction(1, SR)
            container.mux(astream.encode(frame))
            audio_at += part.shape[1]

    index = 0
    for shot in SHOTS:
        log.info("rendering shot %-8s %3d frames (%s)", shot.key, shot.frames, shot.character)
        draw = PICTURES[shot.key]()
        for i in range(shot.frames):
            frame = av.VideoFrame.from_ndarray(draw(i, shot.frames), format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, FPS)
            container.mux(vstream.encode(frame))
            index += 1
            push_audio(min(sound.shape[1], index * SAMPLES_PER_FRAME))
    assert index == total
    container.mux(vstream.encode(None))
    push_audio(sound.shape[1])
    container.mux(astream.encode(None))
    container.close()
    return codec


# ---------------------------------------------------------------------------------------------
# The edit: OTIO, JSON facts, Kdenlive


@dataclass(frozen=True)
class EditScene:
    index: int
    shot: SourceShot
    start: int  # timeline frames from the timeline start
    end: int
    source_start: int  # frames into sample.mp4
    source_end: int


def edit_scenes() -> list[EditScene]:
    starts = shot_starts()
    by_key = {s.key: s for s in SHOTS}
    scenes, at = [], 0
    for i, (key, a, b) in enumerate(EDIT, start=1):
        shot = by_key[key]
        assert 0 <= a < b <= shot.frames, key
        scenes.append(EditScene(i, shot, at, at + b - a, starts[key] + a, starts[key] + b))
        at += b - a
    return scenes


def edit_markers(scenes: list[EditScene]) -> list[tuple[int, str, str, str]]:
    """(timeline frame, name, comment, colour) of the timeline markers."""
    face = next(s for s in scenes if s.shot.key == "face")
    speech = next(s for s in scenes if s.shot.key == "speech")
    speech_at = speech.start + int(SPEECH_OFFSET_S * FPS) - (speech.source_start - shot_starts()["speech"])
    return [
        (face.start + 80, "emsync: happy", "emotion override for the face scene", "GREEN"),
        (speech_at, "Speech starts", "a plain marker (not an emsync override)", "BLUE"),
    ]


def _rt(frames: int) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, FPS)


def write_otio(path: Path, scenes: list[EditScene]) -> otio.schema.Timeline:
    total = sum(s.frames for s in SHOTS)
    timeline = otio.schema.Timeline(name=TIMELINE_NAME, global_start_time=_rt(TIMELINE_START_FRAMES))
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    audio = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    for scene in scenes:
        for track in (video, audio):
            ref = otio.schema.ExternalReference(
                target_url=MEDIA_NAME,
                available_range=otio.opentime.TimeRange(_rt(0), _rt(total)),
            )
            track.append(otio.schema.Clip(
                name=f"{scene.index}: {scene.shot.character}",
                media_reference=ref,
                source_range=otio.opentime.TimeRange(
                    _rt(scene.source_start), _rt(scene.source_end - scene.source_start)),
            ))
    timeline.tracks.append(video)
    timeline.tracks.append(audio)
    for frame, name, comment, colour in edit_markers(scenes):
        timeline.tracks.markers.append(otio.schema.Marker(
            name=name,
            marked_range=otio.opentime.TimeRange(_rt(frame), _rt(0)),
            color=getattr(otio.schema.MarkerColor, colour),
            comment=comment,
        ))
    otio.adapters.write_to_file(timeline, str(path))
    return timeline


def facts(scenes: list[EditScene], codec: str, speech: bool) -> dict:
    starts = shot_starts()
    sec = lambda f: round(f / FPS, 6)  # noqa: E731
    total = sum(s.frames for s in SHOTS)

    def describe(shot: SourceShot) -> dict:
        return {
            "key": shot.key,
            "character": shot.character,
            "expected_arousal": shot.expected_arousal,
            "expected_valence": shot.expected_valence,
            "face": shot.face,
            "speech": shot.speech and speech,
            "picture": shot.picture,
            "sound": shot.sound,
            "material": shot.material,
        }

    return {
        "notes": (
            "Times in seconds: start/end/cuts/markers from the timeline start, source_* and "
            "source_shots in sample.mp4's own time. face: true = a frontal face fills the "
            "picture, false = none, null = a face in profile a detector may or may not find."
        ),
        "timeline": TIMELINE_NAME,
        "rate": FPS,
        "start": TIMELINE_START_FRAMES / FPS,
        "duration": sec(scenes[-1].end),
        "cuts": [sec(s.start) for s in scenes[1:]],
        "media": MEDIA_NAME,
        "media_duration": sec(total),
        "media_frames": total,
        "width": W,
        "height": H,
        "audio": {"sample_rate": SR, "channels": 2, "codec": "aac"},
        "video_codec": codec,
        "source_shots": [
            {"index": i, "start": sec(starts[s.key]), "end": sec(starts[s.key] + s.frames),
             **describe(s)}
            for i, s in enumerate(SHOTS, start=1)
        ],
        "source_cuts": [sec(starts[s.key]) for s in SHOTS[1:]],
        "scenes": [
            {"index": s.index, "start": sec(s.start), "end": sec(s.end),
             "source_start": sec(s.source_start), "source_end": sec(s.source_end),
             **describe(s.shot)}
            for s in scenes
        ],
        "markers": [
            {"time": sec(f), "name": name, "comment": comment,
             "override": name.split(":", 1)[1].strip() if name.startswith("emsync:") else None}
            for f, name, comment, _ in edit_markers(scenes)
        ],
    }


def write_kdenlive(out: Path, scenes: list[EditScene]) -> Path:
    """sample.kdenlive, through the project maker beside this script."""
    for folder in (REPO, Path(__file__).resolve().parent):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    from kdenlive_maker import write_project

    from emsync_plugin.timeline.model import Marker

    path = out / "sample.kdenlive"
    write_project(
        path,
        name=TIMELINE_NAME,
        rate_num=FPS,
        rate_den=1,
        width=W,
        height=H,
        # relative to the project's folder, like the OTIO reference, so the folder can move
        clips=[(MEDIA_NAME, s.source_start / FPS, s.source_end / FPS) for s in scenes],
        guides=[Marker(time=f / FPS, name=name, comment=comment, origin="guide")
                for f, name, comment, _ in edit_markers(scenes)],
    )
    return path


# ---------------------------------------------------------------------------------------------
# Checks


def verify(out: Path, codec: str) -> None:
    """Read everything back; raise if something is off."""
    total = sum(s.frames for s in SHOTS)
    with av.open(str(out / MEDIA_NAME)) as container:
        v = container.streams.video[0]
        a = container.streams.audio[0]
        assert (v.codec_context.width, v.codec_context.height) == (W, H)
        assert v.average_rate == FPS, v.average_rate
        assert a.codec_context.sample_rate == SR and a.codec_context.channels == 2
        duration = container.duration / av.time_base
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == total, (frames, total)
    assert abs(duration - total / FPS) < 0.1, duration
    log.info("sample.mp4: %s + %s, %d frames, %.3f s", v.codec_context.name,
             a.codec_context.name, frames, duration)
    size = (out / MEDIA_NAME).stat().st_size
    if size >= MAX_MEDIA_BYTES:
        log.warning("sample.mp4 is %.2f MB, over the %.0f MB budget", size / 1e6, MAX_MEDIA_BYTES / 1e6)

    timeline = otio.adapters.read_from_file(str(out / "sample.otio"))
    assert timeline.name == TIMELINE_NAME
    assert timeline.global_start_time == _rt(TIMELINE_START_FRAMES)
    facts_ = json.loads((out / "sample.json").read_text())
    video = timeline.video_tracks()[0]
    cuts = [round(video.range_of_child_at_index(i).start_time.to_seconds(), 6)
            for i in range(1, len(video))]
    assert cuts == facts_["cuts"], (cuts, facts_["cuts"])
    assert not set(cuts) & set(facts_["source_cuts"]), "timeline cuts must differ from shots"
    for clip in timeline.find_clips():
        assert clip.media_reference.target_url == MEDIA_NAME
    log.info("sample.otio: %d video clips, %d audio clips, %d markers, %.2f s",
             len(video), len(timeline.audio_tracks()[0]), len(timeline.tracks.markers),
             timeline.duration().to_seconds())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output folder (default: emsync_plugin/data/sample)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    speech = _espeak(SPEECH_TEXT)
    sound = make_sound(speech)
    # write beside the target and rename, so a half-written sample.mp4 never exists
    part = out / (MEDIA_NAME + ".part")
    try:
        codec = encode(part, sound)
        os.replace(part, out / MEDIA_NAME)
    finally:
        part.unlink(missing_ok=True)
    scenes = edit_scenes()
    write_otio(out / "sample.otio", scenes)
    (out / "sample.json").write_text(
        json.dumps(facts(scenes, codec, speech is not None), indent=2) + "\n")
    write_kdenlive(out, scenes)
    verify(out, codec)

    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    print(f"wrote {out} with video encoder {codec}:")
    for name, size in sizes.items():
        print(f"  {name:16s} {size / 1e6:7.3f} MB")
    print(f"  total            {sum(sizes.values()) / 1e6:7.3f} MB")
    print("scenes (timeline seconds):")
    for s in scenes:
        print(f"  {s.index}. {s.start / FPS:6.2f}-{s.end / FPS:6.2f}  "
              f"source {s.source_start / FPS:6.2f}-{s.source_end / FPS:6.2f}  {s.shot.character}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
