"""Rendering: exact length, loudness, fade, format, errors."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pretty_midi
import pyloudnorm
import pytest
import soundfile

from emsync_plugin.errors import OptionsError, RenderError
from emsync_plugin.mood import SceneMood
from emsync_plugin.music.baseline import BaselineOptions, arrange
from emsync_plugin.music.render import RenderOptions, default_soundfont, render_midi, write_midi

MOODS = [SceneMood(0, 0, 4, 0.6, -0.5), SceneMood(1, 4, 100, -0.4, 0.7)]


def score(duration: float) -> pretty_midi.PrettyMIDI:
    cuts = [t for t in (1.5, 4.0, 6.25) if t < duration]
    return arrange(cuts, duration, MOODS, BaselineOptions(seed=5))


def read(path: Path) -> tuple[np.ndarray, int]:
    return soundfile.read(str(path), dtype="float64", always_2d=True)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One 9 s render at the defaults, shared by the format/loudness/fade tests."""
    out = tmp_path_factory.mktemp("render") / "score.wav"
    result = render_midi(score(9.0), out, 9.0)
    return result, out


def test_format_is_48k_stereo_pcm(rendered):
    result, out = rendered
    info = soundfile.info(str(out))
    assert info.samplerate == 48000 and info.channels == 2
    assert info.format == "WAV" and info.subtype == "PCM_24"
    assert result.sample_rate == 48000 and result.wav == out
    assert sorted(p.name for p in out.parent.iterdir()) == ["score.wav"]  # no temp files left


@pytest.mark.parametrize("duration, rate", [(1.0, 48000), (5.5, 48000), (10.01001, 48000),
                                            (7.007, 48000), (0.3, 48000), (3.0030003, 44100)])
def test_length_is_exact_to_the_sample(tmp_path, duration, rate):
    out = tmp_path / "x.wav"
    result = render_midi(score(duration), out, duration, RenderOptions(sample_rate=rate))
    audio, sr = read(out)
    assert sr == rate
    assert len(audio) == result.samples == round(duration * rate)


def test_loudness_reaches_default_target(rendered):
    result, out = rendered
    audio, sr = read(out)
    measured = pyloudnorm.Meter(sr).integrated_loudness(audio)
    assert measured == pytest.approx(-16.0, abs=0.5)
    assert result.lufs == pytest.approx(measured, abs=0.05)
    assert np.max(np.abs(audio)) <= 10 ** (-1.0 / 20) + 1e-4  # the -1 dBFS ceiling
    assert result.peak == pytest.approx(np.max(np.abs(audio)), abs=1e-4)


def test_loudness_reaches_custom_target(tmp_path):
    out = tmp_path / "quiet.wav"
    render_midi(score(6.0), out, 6.0, RenderOptions(loudness=-23.0, bit_depth=16))
    audio, sr = read(out)
    assert soundfile.info(str(out)).subtype == "PCM_16"
    assert pyloudnorm.Meter(sr).integrated_loudness(audio) == pytest.approx(-23.0, abs=0.5)


def test_fade_out_ends_in_silence(rendered):
    _, out = rendered
    audio, sr = read(out)
    assert np.max(np.abs(audio[-sr // 100:])) < 2e-3  # last 10 ms
    assert np.all(audio[-1] == 0.0)
    windows = [rms(audio[len(audio) - (k + 1) * sr // 2: len(audio) - k * sr // 2]) for k in range(6)][::-1]
    assert all(a > b for a, b in zip(windows, windows[1:])), windows  # energy decays over the last 3 s


def test_sound_where_notes_are(rendered):
    _, out = rendered
    audio, sr = read(out)
    body = audio[: 6 * sr]  # before the fade
    for k in range(0, len(body), sr // 4):
        assert rms(body[k: k + sr // 4]) > 10 ** (-50 / 20), f"silent at {k / sr:.2f} s"


def test_silent_score_does_not_crash(tmp_path):
    out = tmp_path / "silence.wav"
    result = render_midi(pretty_midi.PrettyMIDI(), out, 2.5)
    audio, _ = read(out)
    assert len(audio) == 120000 and not np.any(audio)
    assert result.lufs == -math.inf and result.peak == 0.0


def test_missing_soundfont_raises(tmp_path):
    missing = tmp_path / "nowhere" / "GM.sf2"
    with pytest.raises(RenderError, match="GM.sf2: SoundFont not found"):
        render_midi(score(2.0), tmp_path / "x.wav", 2.0, RenderOptions(soundfont=missing))
    assert not (tmp_path / "x.wav").exists()


def test_invalid_soundfont_raises(tmp_path):
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"RIFF0000notasoundfont")
    with pytest.raises(RenderError, match="bad.sf2"):
        render_midi(score(2.0), tmp_path / "x.wav", 2.0, RenderOptions(soundfont=bad))


def test_default_soundfont_ships_with_pretty_midi():
    assert default_soundfont().is_file()


def test_midi_file_round_trip_keeps_cuts_and_renders(tmp_path):
    cuts = [0.5, 1.001001, 2.335666, 3.7037]
    pm = arrange(cuts, 5.0, MOODS)
    path = write_midi(pm, tmp_path / "score.mid")
    back = pretty_midi.PrettyMIDI(str(path))
    starts = [n.start for i in back.instruments for n in i.notes]
    for t in [0.0, *cuts]:
        assert sum(abs(s - t) <= 1e-3 for s in starts) >= 3, t
    assert max(n.end for i in back.instruments for n in i.notes) <= 5.0 + 1e-3
    result = render_midi(path, tmp_path / "score.wav", 5.0)
    assert result.samples == 240000 and result.lufs == pytest.approx(-16.0, abs=0.5)


def test_missing_midi_file_raises(tmp_path):
    with pytest.raises(RenderError, match="MIDI file not found"):
        render_midi(tmp_path / "none.mid", tmp_path / "x.wav", 1.0)


@pytest.mark.parametrize("kwargs", [
    {"sample_rate": 1000}, {"sample_rate": 48000.0}, {"loudness": 3.0}, {"loudness": float("nan")},
    {"fade": -1.0}, {"bit_depth": 32}, {"ceiling": 1.0}, {"soundfont": 5},
])
def test_bad_options_raise(kwargs):
    with pytest.raises(OptionsError):
        RenderOptions(**kwargs)


@pytest.mark.parametrize("duration", [0.0, -2.0, float("nan")])
def test_bad_duration_raises(tmp_path, duration):
    with pytest.raises(OptionsError):
        render_midi(pretty_midi.PrettyMIDI(), tmp_path / "x.wav", duration)

