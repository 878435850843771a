"""Render projects written by ``write_project`` + ``write`` with the real ``melt`` (MLT).

This is the proof that the written XML is a valid MLT document whose new audio track really
plays: a short generated video gets a score WAV with a 440 Hz tone in the middle; the rendered
audio must be as long as the timeline, carry the tone at its known level where the score has
it, and be (near) silent elsewhere. The video's own sound is a quiet 1 kHz bed (-49 dBFS):
finding it everywhere, under the tone too, shows that the project's media were found and that
the score is mixed with the other audio tracks rather than replacing them.
"""
from __future__ import annotations

import math
import shutil
import sys
import wave
from pathlib import Path

import melt_runner
import numpy as np
import pytest

from emsync_plugin.timeline import kdenlive
from emsync_plugin.timeline.model import Marker, ScoreTrack

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from kdenlive_maker import write_project  # noqa: E402 - a script beside make_sample.py, not part of the plugin

MELT = shutil.which("melt")
pytestmark = pytest.mark.skipif(MELT is None, reason="melt (MLT) is not on PATH; CI installs it")

RATE = 25
SR = 48_000
TONE = (0.4, 1.2)  # seconds of the timeline where the score sounds
AMPLITUDE = 0.5  # sine peak: RMS 0.5 / sqrt(2) = -9.03 dBFS
EXPECTED_DB = 20 * math.log10(AMPLITUDE / math.sqrt(2))
BED_HZ, BED = 1000.0, 0.005  # the video's own sound: RMS -49 dBFS


def make_video(path: Path, seconds: float = 3.0) -> None:
    """A 320x180, 25 fps H.264 video with a quiet 1 kHz stereo AAC track."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = 320, 180, "yuv420p"
        audio = container.add_stream("aac", rate=SR)
        audio.layout = "stereo"
        for i in range(int(seconds * RATE)):
            image = np.full((180, 320, 3), (i * 7) % 256, np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        block = 1024
        for i in range(int(seconds * SR) // block):
            x = (BED * np.sin(2 * np.pi * BED_HZ * (np.arange(block) + i * block) / SR)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.stack([x, x]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = SR, i * block
            for packet in audio.encode(frame):
                container.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode():
                container.mux(packet)


def make_score(path: Path, seconds: float) -> None:
    """A 16-bit stereo WAV: the tone during ``TONE``, digital silence elsewhere."""
    t = np.arange(int(round(seconds * SR))) / SR
    x = np.where((t >= TONE[0]) & (t < TONE[1]), AMPLITUDE * np.sin(2 * np.pi * 440 * t), 0.0)
    pcm = np.round(np.stack([x, x], axis=1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())


def render(project: Path, out: Path) -> np.ndarray:
    """The project's audio rendered by melt (audio only), as float samples (n, channels)."""
    melt_runner.render(project, out, rate=SR)
    with wave.open(str(out), "rb") as w:
        assert w.getframerate() == SR
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
    return data.astype(np.float64) / 32768


def tone_amplitude(samples: np.ndarray, hz: float) -> float:
    """Peak amplitude of the ``hz`` component of the first channel (a one-bin DFT)."""
    x = samples[:, 0]
    t = np.arange(len(x)) / SR
    return float(2 * abs(np.sum(x * np.exp(-2j * np.pi * hz * t))) / len(x))


def rms_db(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(samples ** 2))) if samples.size else 0.0
    return 20 * math.log10(max(rms, 1e-10))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, float]:
    """A sample project: two pieces of a generated video back to back, 2.0 s in all."""
    folder = tmp_path_factory.mktemp("melt") / "project"
    folder.mkdir()
    make_video(folder / "clip.mp4")
    path = write_project(
        folder / "sample.kdenlive", name="Sample", rate_num=RATE, rate_den=1, width=320, height=180,
        clips=[(str(folder / "clip.mp4"), 0.0, 1.0), (str(folder / "clip.mp4"), 1.6, 2.6)],
        guides=[Marker(1.0, "second shot")])
    edit = kdenlive.read(path)
    assert edit.duration == 2.0
    return path, edit.duration


def check(samples: np.ndarray, duration: float) -> None:
    assert abs(len(samples) / SR - duration) <= 1 / RATE  # the timeline's length, +- one frame
    margin = 0.05
    inside = samples[int((TONE[0] + margin) * SR):int((TONE[1] - margin) * SR)]
    before = samples[:int((TONE[0] - margin) * SR)]
    after = samples[int((TONE[1] + margin) * SR):]
    assert abs(rms_db(inside) - EXPECTED_DB) < 1.0, rms_db(inside)  # the score, at its level
    assert tone_amplitude(inside, 440) == pytest.approx(AMPLITUDE, rel=0.1)
    for quiet in (before, after):  # (near) silent where the score is: only the video's bed
        assert rms_db(quiet) < -40, rms_db(quiet)
        assert tone_amplitude(quiet, 440) < 0.001
    for part in (before, inside, after):  # the video's sound is mixed in all along
        assert tone_amplitude(part, BED_HZ) == pytest.approx(BED, rel=0.25)


def test_melt_renders_the_score(project, tmp_path):
    path, duration = project
    make_score(tmp_path / "score.wav", duration)
    score = ScoreTrack(tmp_path / "score.wav", tmp_path / "score.mid", duration, {"test": True})
    scored = kdenlive.write(path, path.with_name("scored.kdenlive"), score)
    check(render(scored, tmp_path / "out.wav"), duration)


def test_melt_renders_one_score_after_rewrite(project, tmp_path):
    """Writing twice replaces the track: the tone is not doubled (+6 dB) in the render."""
    path, duration = project
    make_score(tmp_path / "score.wav", duration)
    score = ScoreTrack(tmp_path / "score.wav", tmp_path / "score.mid", duration, {"run": 1})
    once = kdenlive.write(path, tmp_path / "once.kdenlive", score)
    twice = kdenlive.write(once, tmp_path / "twice.kdenlive", score)
    check(render(twice, tmp_path / "twice.wav"), duration)


def test_melt_renders_takes_muted_and_ducking_filter_disabled(project, tmp_path):
    """Three takes (2 and 3 muted, take 1 with its disabled volume keyframes), then a re-run
    with one: melt renders the project and hears take 1 once, at its level, not ducked twice."""
    path, duration = project
    make_score(tmp_path / "score.wav", duration)
    gain = ((0.0, 0.0), (TONE[0], -20.0), (TONE[1], -20.0))
    scores = [ScoreTrack(tmp_path / "score.wav", tmp_path / "score.mid", duration, {"take": i},
                         name=f"EMSYNC Score take {i}", muted=i > 1, gain=gain if i == 1 else ())
              for i in (1, 2, 3)]
    takes = kdenlive.write(path, tmp_path / "takes.kdenlive", scores)
    assert 'name="level">' in takes.read_text()
    check(render(takes, tmp_path / "takes.wav"), duration)
    one = kdenlive.write(takes, tmp_path / "one.kdenlive", ScoreTrack(tmp_path / "score.wav", tmp_path / "score.mid",
                                                                      duration, {"run": 2}))
    assert "take 2" not in one.read_text()
    check(render(one, tmp_path / "one.wav"), duration)
