"""The README's first command: `emsync demo` scores the bundled sample in every format.

Also renders the scored Kdenlive project with the real `melt` and finds the score in it.
"""
from __future__ import annotations

import json
import shutil
import wave

import melt_runner
import numpy as np
import opentimelineio as otio
import pyloudnorm
import pytest

from emsync_plugin import cli
from emsync_plugin.demo import sample_dir
from emsync_plugin.timeline import kdenlive, read_cuts

SAMPLE = json.loads((sample_dir() / "sample.json").read_text())


def read_wav(path):
    with wave.open(str(path)) as w:
        raw = w.readframes(w.getnframes())
        width, ch, sr = w.getsampwidth(), w.getnchannels(), w.getframerate()
    if width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        ints = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8) | (b[:, 2].astype(np.int32) << 16))
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        data = ints / float(1 << 23)
    else:
        data = np.frombuffer(raw, np.int16) / 32768.0
    return data.reshape(-1, ch), sr


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    assert cli.main(["-q", "demo", str(folder)]) == 0
    return folder


def test_sample_is_small_and_complete():
    files = list(sample_dir().iterdir())
    assert sum(f.stat().st_size for f in files) < 5e6
    assert {"sample.mp4", "sample.otio", "sample.kdenlive", "LICENSE.md"} <= {f.name for f in files}
    assert len(SAMPLE["scenes"]) >= 6


def test_sample_timelines_agree_with_the_recorded_edit():
    expected = [s["end"] for s in SAMPLE["scenes"][:-1]]
    for name in ("sample.otio", "sample.kdenlive"):
        t = read_cuts(sample_dir() / name)
        assert list(t.cuts) == pytest.approx(expected, abs=1e-6), name
        assert t.duration == pytest.approx(SAMPLE["scenes"][-1]["end"])
        # media resolve next to the project wherever the folder is (relative references)
        assert all(s.media == str((sample_dir() / "sample.mp4").resolve()) for s in t.scenes), name


@pytest.mark.parametrize("fmt,name", [
    ("otio", "sample-otio.emsync.otio"), ("kdenlive", "sample-kdenlive.emsync.kdenlive"),
    ("fcp7 xml", "sample-xml.emsync.xml"), ("fcpxml", "sample-fcpxml.emsync.fcpxml"),
])
def test_demo_writes_each_format_with_the_score(demo, fmt, name, capsys):
    out = demo / name
    assert out.exists()
    original = read_cuts(demo / (name.split("-")[0] + "." + name.rsplit(".", 1)[1]))
    scored = read_cuts(out)
    assert scored.cuts == original.cuts and scored.duration == pytest.approx(original.duration)
    assert list(original.cuts) == pytest.approx([s["end"] for s in SAMPLE["scenes"][:-1]], abs=1e-6)
    wav = out.with_suffix(".wav")
    audio, sr = read_wav(wav)
    assert sr == 48000 and audio.shape[1] == 2
    assert len(audio) == round(original.duration * sr)  # exact to the sample
    lufs = pyloudnorm.Meter(sr).integrated_loudness(audio)
    assert lufs == pytest.approx(-16.0, abs=0.5)
    assert np.abs(audio[-int(0.01 * sr):]).max() < 1e-3  # faded out to silence
    assert out.with_suffix(".png").stat().st_size > 10_000
    if fmt == "kdenlive":
        edit = kdenlive.read(out)
        assert len(edit.tracks) == len(kdenlive.read(demo / "sample.kdenlive").tracks)
        assert "EMSYNC Score" in out.read_text()
    else:
        t = otio.adapters.read_from_file(str(out))
        t = t if isinstance(t, otio.schema.Timeline) else next(iter(t))
        clips = [c for tr in t.tracks if tr.kind == "Audio" for c in tr.find_clips() if c.name == "EMSYNC Score"]
        assert len(clips) == 1
        url = otio.url_utils.filepath_from_url(clips[0].media_reference.target_url)
        assert (out.parent / url).resolve() == wav.resolve()  # relative where the sample's media are


def test_demo_prints_what_to_open(tmp_path, capsys):
    assert cli.main(["demo", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert str((tmp_path / "d").resolve()) in out and "Kdenlive" in out and ".wav" in out


def _melt_audio(project, out_wav):
    melt_runner.render(project, out_wav)
    return read_wav(out_wav)


@pytest.mark.skipif(shutil.which("melt") is None, reason="melt not installed (the README's test command installs it)")
def test_melt_renders_the_scored_sample_project_with_the_score(demo, tmp_path):
    scored = demo / "sample-kdenlive.emsync.kdenlive"
    score, sr = read_wav(scored.with_suffix(".wav"))
    with_score, msr = _melt_audio(scored, tmp_path / "with.wav")
    without, _ = _melt_audio(demo / "sample.kdenlive", tmp_path / "without.wav")
    duration = read_cuts(scored).duration
    assert msr == 48000
    assert abs(len(with_score) / msr - duration) <= 1 / 25 + 1e-9  # one frame
    n = min(len(with_score), len(without), len(score))
    added = (with_score[:n] - without[:n]).mean(axis=1)
    ref = score[:n].mean(axis=1)
    # what the score track adds to the mix is the score: strongly correlated, and present
    # throughout (each second before the fade carries sound)
    corr = np.corrcoef(added, ref)[0, 1]
    assert corr > 0.9, corr
    seconds = int(duration - 3)
    rms = [np.sqrt(np.mean(added[i * msr:(i + 1) * msr] ** 2)) for i in range(seconds)]
    assert min(rms) > 1e-3
