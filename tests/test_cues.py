"""Picture and sound cues, measured on real decoded clips made here with PyAV.

A dark, still, quiet clip must score lower arousal *and* lower valence than a bright,
colourful, fast, loud one (Valdez & Mehrabian 1994; Hanjalic & Xu 2005).
"""
from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest

from emsync_plugin.emotion import cues
from emsync_plugin.emotion.cues import CueFeatures, PictureCues, colourfulness, cue_features, cue_mood, sound_cues

RATE, SIZE, SR = 25, (192, 108), 48000


# ------------------------------------------------------------------------------ clips


def make_clip(path: Path, seconds: float, picture, sound, rate: int = RATE, size=SIZE) -> Path:
    """Encode ``picture(i, t) -> RGB uint8`` frames and ``sound(t) -> mono float`` (AAC) with PyAV."""
    w, h = size
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=rate, options={"preset": "ultrafast", "crf": "16"})
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = out.add_stream("aac", rate=SR)
        a.layout = "mono"
        for i in range(int(round(seconds * rate))):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture(i, i / rate)), format="rgb24")
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)
        samples = np.clip(sound(np.arange(int(seconds * SR)) / SR), -1, 1).astype(np.float32)
        for k in range(0, len(samples), 1024):
            fr = av.AudioFrame.from_ndarray(samples[None, k:k + 1024], format="flt", layout="mono")
            fr.sample_rate, fr.pts = SR, k
            for packet in a.encode(fr):
                out.mux(packet)
        for packet in a.encode():
            out.mux(packet)
    return path


def dark_still_quiet(i, t, size=SIZE):
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 14 + (x % 7 == 0) * 6  # a dim, grey-blue, unmoving picture
    img[..., 1] = 16 + (y % 9 == 0) * 6
    img[..., 2] = 24
    return img


def quiet_hum(t):
    return 0.004 * np.sin(2 * np.pi * 55 * t)  # about -51 dBFS


def bright_colourful_fast(i, t, size=SIZE):
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    stripes = ((x + y + 13 * i) // 12) % 4  # diagonal stripes racing across
    palette = np.array([[255, 40, 40], [255, 220, 0], [0, 200, 255], [255, 60, 220]], np.uint8)
    img = palette[stripes]
    cx, cy = int(w / 2 + w / 3 * math.sin(i / 2)), int(h / 2 + h / 3 * math.cos(i / 3))
    img[max(0, cy - 12):cy + 12, max(0, cx - 12):cx + 12] = (255, 255, 255)  # a ball bouncing about
    return img


def loud_beats(t):
    rng = np.random.default_rng(1)
    out = 0.05 * rng.standard_normal(len(t))
    for beat in np.arange(0, t[-1], 60 / 125):  # kicks and noise bursts at 125 BPM
        m = (t >= beat) & (t < beat + 0.12)
        tau = t[m] - beat
        out[m] += np.exp(-tau * 30) * (0.8 * np.sin(2 * np.pi * 60 * tau) + 0.4 * rng.standard_normal(m.sum()))
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cues")
    dark = make_clip(folder / "dark.mp4", 4.0, dark_still_quiet, quiet_hum)
    bright = make_clip(folder / "bright.mp4", 4.0, bright_colourful_fast, loud_beats)
    return dark, bright


def decode(path: Path, fps: float = 2.0, width: int = 160):
    """Frames sampled at ``fps`` (scaled to ``width``) and the mono sound at 16 kHz."""
    frames, chunks = [], []
    resampler = av.AudioResampler(format="flt", layout="mono", rate=cues.AUDIO_RATE)
    with av.open(str(path)) as c:
        next_t = 0.25
        for frame in c.decode(c.streams.video[0]):
            if frame.time >= next_t:
                small = frame.reformat(width=width, height=width * frame.height // frame.width, format="rgb24")
                frames.append(small.to_ndarray())
                next_t += 1 / fps
        c.seek(0)
        for frame in c.decode(c.streams.audio[0]):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    return frames, np.concatenate(chunks)


# ------------------------------------------------------------------------------ the clips' order


def test_dark_still_quiet_is_lower_in_arousal_and_valence(clips):
    dark, bright = (cue_features(*decode(p), duration=4.0) for p in clips)
    assert dark.frames == bright.frames == 8
    # the measurements say what the clips are ...
    assert dark.brightness < 0.12 < 0.45 < bright.brightness
    assert dark.colourfulness < 15 < 60 < bright.colourfulness  # Hasler & Süsstrunk: "not" vs "highly"
    assert dark.saturation < bright.saturation
    assert dark.motion < 0.05 < 0.5 < bright.motion
    assert dark.loudness < -45 and bright.loudness > -20
    assert dark.onset_rate < 0.5 and 1.5 < bright.onset_rate < 4.5  # 125 BPM = 2.08 beats/s
    assert dark.flux < 0.5 < 1.2 < bright.flux
    # ... and the mood follows
    (dv, da), (bv, ba) = cue_mood(dark), cue_mood(bright)
    assert da < ba and dv < bv
    assert da < -0.5 and ba > 0.3 and dv < -0.3 and bv > 0.1


# ------------------------------------------------------------------------------ single cues


def test_brightness_saturation_colourfulness_of_plain_pictures():
    grey = np.full((90, 160, 3), 128, np.uint8)
    red = np.zeros((90, 160, 3), np.uint8)
    red[..., 0] = 255
    black = np.zeros((90, 160, 3), np.uint8)
    for img, bright, sat in ((grey, 128 / 255, 0.0), (red, 0.299, 1.0), (black, 0.0, 0.0)):
        p = PictureCues()
        p.add(img)
        got = p.values()
        assert got["brightness"] == pytest.approx(bright, abs=1e-3)
        assert got["saturation"] == pytest.approx(sat, abs=1e-6)
    assert colourfulness(grey) == 0.0
    # a uniform pure red: no spread, only the mean term: 0.3 * sqrt(255² + 127.5²)
    assert colourfulness(red) == pytest.approx(0.3 * math.hypot(255, 127.5), rel=1e-4)
    halves = np.concatenate([red[:, :80], np.roll(red, 2, axis=2)[:, 80:]], axis=1)  # red | blue
    assert colourfulness(halves) > colourfulness(red)


def test_motion_is_frame_difference_relative_to_contrast():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (90, 160, 1), dtype=np.uint8).repeat(3, axis=2)
    still = PictureCues()
    for _ in range(3):
        still.add(base)
    assert still.values()["motion"] == 0.0
    moving = PictureCues()
    for k in range(3):
        moving.add(np.roll(base, 8 * k, axis=1))
    assert moving.values()["motion"] > 0.5
    # the same movement in a darker copy of the picture counts about the same (a contrast floor
    # keeps the noise of near-black pictures from being amplified without bound)
    dim = PictureCues()
    for k in range(3):
        dim.add((np.roll(base, 8 * k, axis=1) // 3).astype(np.uint8))
    assert dim.values()["motion"] == pytest.approx(moving.values()["motion"], rel=0.35)
    # one decoded frame serving two samples adds no motion
    twice = PictureCues()
    twice.add(base, frame_id=1)
    twice.add(base, frame_id=1)
    assert twice.values()["motion"] == 0.0
    # frames sampled in chains: no motion between a chain's last frame and the next chain's first
    chains = PictureCues()
    chains.add(base)
    chains.add(np.roll(base, 8, axis=1))  # follows: counts
    chains.add(255 - base, follows=False)  # a new chain, seconds later: not compared
    chains.add(np.roll(255 - base, 8, axis=1))
    assert chains.values()["motion"] == pytest.approx(moving.values()["motion"], rel=0.05)
    assert chains.values()["frames"] == 4


def test_sound_levels_flux_and_onsets():
    t = np.arange(4 * cues.AUDIO_RATE) / cues.AUDIO_RATE
    assert sound_cues(np.zeros_like(t), 4.0) == dict(loudness=cues.SILENCE_DB, flux=0.0, onset_rate=0.0)
    assert sound_cues(None, 4.0)["loudness"] == cues.SILENCE_DB
    sine = sound_cues(np.sin(2 * np.pi * 440 * t), 4.0)
    assert sine["loudness"] == pytest.approx(-3.01, abs=0.05)  # RMS of a full-scale sine
    assert sine["onset_rate"] == 0.0 and sine["flux"] < 0.2
    noise = sound_cues(0.05 * np.random.default_rng(0).standard_normal(len(t)), 4.0)
    assert noise["onset_rate"] < 0.5 and noise["flux"] < 1.2  # steady noise: no onsets
    clicks = np.zeros_like(t)
    for k in range(16):  # 4 clicks a second
        i = int((0.1 + k * 0.25) * cues.AUDIO_RATE)
        clicks[i:i + 400] = 0.5 * np.exp(-np.arange(400) / 80.0) * np.sin(np.arange(400) * 0.9)
    got = sound_cues(clicks, 4.0)
    assert got["onset_rate"] == pytest.approx(4.0, abs=0.5)
    assert got["flux"] > noise["flux"]


def test_mood_moves_the_documented_way():
    base = CueFeatures(duration=5.0, brightness=0.45, saturation=0.35, colourfulness=54.5, motion=0.2,
                       loudness=-30.0, flux=1.5, onset_rate=1.0)
    v0, a0 = cue_mood(base)

    def mood(**kw):
        return cue_mood(CueFeatures(**{**base.__dict__, **kw}))

    assert mood(brightness=0.75)[0] > v0 and mood(brightness=0.75)[1] < a0  # brighter: pleasanter, calmer
    assert mood(saturation=0.7, colourfulness=109)[0] > v0 and mood(saturation=0.7, colourfulness=109)[1] > a0
    assert mood(motion=0.5)[1] > a0 and mood(motion=0.5)[0] == v0
    assert mood(duration=1.0)[1] > a0  # faster cutting
    assert mood(loudness=-15)[1] > a0 and mood(onset_rate=4.0)[1] > a0
    for kw in ({}, dict(brightness=0, saturation=0, colourfulness=0, motion=0, loudness=-120, flux=0, onset_rate=0),
               dict(brightness=1, saturation=1, colourfulness=200, motion=5, loudness=0, flux=20, onset_rate=20, duration=0.04)):
        v, a = mood(**kw)
        assert -1 <= v <= 1 and -1 <= a <= 1
    # Valdez & Mehrabian's weights: valence = 0.69 b' + 0.22 s'
    t = cues.terms(base)
    assert v0 == pytest.approx(0.69 * t["brightness"] + 0.22 * t["saturation"])
