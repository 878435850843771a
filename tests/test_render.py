"""Rendering: exact length, loudness, fade, format, errors; stems that sum to the mix, ducking under speech."""
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
from emsync_plugin.music.groups import instrument_group, score_groups
from emsync_plugin.music.render import RenderOptions, default_soundfont, render_midi, shipped_soundfont, speech_regions, write_midi

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


def test_shipped_soundfont_comes_with_pretty_midi():
    assert shipped_soundfont().is_file() and shipped_soundfont().name == "TimGM6mb.sf2"
    assert default_soundfont().is_file()  # FluidR3_GM where installed, else the shipped one


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



# -- stems and ducking (issue 12) ---------------------------------------------------------------

SAMPLE_CUTS = [6.8, 13.8, 21.8, 26.8, 31.4, 37.4]  # the bundled sample's cuts, 45.8 s


def sample_score() -> pretty_midi.PrettyMIDI:
    """The baseline arranger's score of the sample's cuts: strings, piano, bass and drums."""
    moods = [SceneMood(i, s, e, v, a) for i, (s, e, v, a) in enumerate(
        [(0, 6.8, -0.2, -0.6), (6.8, 13.8, 0.5, -0.4), (13.8, 21.8, 0.6, 0.1), (21.8, 26.8, 0.7, 0.8),
         (26.8, 31.4, 0.0, -0.7), (31.4, 37.4, -0.6, 0.7), (37.4, 45.8, 0.0, 0.0)])]
    return arrange(SAMPLE_CUTS, 45.8, moods, BaselineOptions(seed=3))


def level_db(audio: np.ndarray, sr: int, t0: float, t1: float) -> float:
    return 20 * math.log10(rms(audio[int(t0 * sr): int(t1 * sr)]))


@pytest.fixture(scope="module")
def stems_render(tmp_path_factory):
    """The sample's score rendered with one stem per group, and without stems."""
    folder = tmp_path_factory.mktemp("stems")
    pm = sample_score()
    groups = score_groups(pm)
    paths = {g: folder / f"score.emsync.stem-{g}.wav" for g in groups}
    plain = render_midi(pm, folder / "plain.wav", 45.8)
    result = render_midi(pm, folder / "score.wav", 45.8, stems=paths)
    return pm, groups, plain, result


def test_stems_sum_to_the_mix(stems_render):
    _, groups, _, result = stems_render
    assert set(groups) == {"strings", "piano", "bass", "drums"}
    assert result.stems == {g: result.wav.parent / f"score.emsync.stem-{g}.wav" for g in groups}
    mix, sr = read(result.wav)
    parts = [read(path)[0] for path in result.stems.values()]
    assert all(len(p) == len(mix) == result.samples for p in parts)
    assert all(rms(p) > 1e-3 for p in parts)  # each stem has its instrument in it
    residual = 20 * math.log10(rms(sum(parts) - mix) / rms(mix))
    assert residual < -40.0, residual
    for p in parts:  # the limiter held the ceiling on the mix; the stems share its gain
        assert np.max(np.abs(p)) < 1.0


def test_mix_with_stems_sounds_as_without(stems_render):
    _, _, plain, result = stems_render
    a, sr = read(plain.wav)
    b, _ = read(result.wav)
    meter = pyloudnorm.Meter(sr)
    assert meter.integrated_loudness(b) == pytest.approx(meter.integrated_loudness(a), abs=0.1)
    assert 20 * math.log10(rms(b - a) / rms(a)) < -40.0  # only the synth's 16-bit rounding differs
    assert plain.stems == {} and plain.gain == ()


def test_stem_of_a_group_the_score_lacks_is_silent(tmp_path):
    result = render_midi(score(3.0), tmp_path / "m.wav", 3.0, stems={"guitar": tmp_path / "g.wav"})
    audio, _ = read(result.stems["guitar"])
    assert len(audio) == result.samples and not np.any(audio)


def test_stems_of_a_midi_file(tmp_path):
    path = write_midi(score(4.0), tmp_path / "s.mid")
    result = render_midi(path, tmp_path / "m.wav", 4.0, stems={"bass": tmp_path / "b.wav"})
    assert rms(read(result.stems["bass"])[0]) > 1e-3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.wav", "m.wav", "s.mid"]  # no temp files


SPEECH = [(10.0, 12.5), (12.9, 14.0)]  # 0.4 s apart: ducked through the pause


@pytest.fixture(scope="module")
def ducked(tmp_path_factory):
    folder = tmp_path_factory.mktemp("duck")
    pm = score(30.0)
    plain = render_midi(pm, folder / "plain.wav", 30.0)
    duck = render_midi(pm, folder / "duck.wav", 30.0, RenderOptions(duck=-12.0), speech=SPEECH)
    return plain, duck


def test_ducking_lowers_the_score_under_speech_only(ducked):
    plain, duck = ducked
    a, sr = read(plain.wav)
    b, _ = read(duck.wav)
    for t0, t1 in [(10.0, 12.5), (12.9, 14.0), (10.0, 14.0)]:
        drop = level_db(b, sr, t0, t1) - level_db(a, sr, t0, t1)
        assert drop == pytest.approx(-12.0, abs=2.0), (t0, t1, drop)
    for t0, t1 in [(0.0, 9.8), (14.8, 26.0)]:  # before the attack, after the release
        assert level_db(b, sr, t0, t1) == pytest.approx(level_db(a, sr, t0, t1), abs=1.0)
    # smooth: no step of more than a fraction of a dB from one 5 ms block to the next
    gain = [level_db(b, sr, t, t + 0.005) - level_db(a, sr, t, t + 0.005) for t in np.arange(9.7, 10.1, 0.005)]
    assert max(abs(x - y) for x, y in zip(gain, gain[1:])) < 1.0
    assert duck.lufs < plain.lufs


def test_ducking_keyframes_match_the_regions(ducked):
    _, duck = ducked
    assert duck.gain == ((9.8, 0.0), (10.0, -12.0), (14.0, -12.0), (14.8, 0.0))


def test_ducking_with_stems_still_sums(tmp_path):
    pm = score(9.0)
    result = render_midi(pm, tmp_path / "m.wav", 9.0, RenderOptions(duck=-10.0, attack=0.5, release=1.0),
                         stems={g: tmp_path / f"{g}.wav" for g in score_groups(pm)}, speech=[(-1.0, 2.0)])
    mix, _ = read(result.wav)
    residual = sum(read(p)[0] for p in result.stems.values()) - mix
    assert 20 * math.log10(rms(residual) / rms(mix)) < -40.0
    assert result.gain == ((0.0, -10.0), (2.0, -10.0), (3.0, 0.0))  # the region clipped to the start


def test_no_ducking_without_speech_or_duck(tmp_path):
    pm = score(3.0)
    a = render_midi(pm, tmp_path / "a.wav", 3.0)
    b = render_midi(pm, tmp_path / "b.wav", 3.0, RenderOptions(duck=-12.0))
    c = render_midi(pm, tmp_path / "c.wav", 3.0, speech=[(1.0, 2.0)])
    assert a.wav.read_bytes()[44:] == b.wav.read_bytes()[44:] == c.wav.read_bytes()[44:]
    assert b.gain == c.gain == ()


@pytest.mark.parametrize("kwargs", [{"duck": 3.0}, {"duck": float("nan")}, {"duck": True}, {"attack": -0.1},
                                    {"release": float("inf")}])
def test_bad_ducking_options_raise(kwargs):
    with pytest.raises(OptionsError):
        RenderOptions(**kwargs)


@pytest.mark.parametrize("speech", [[(2.0, 1.0)], [(float("nan"), 1.0)], [(1.0,)], ["ab"]])
def test_bad_speech_regions_raise(tmp_path, speech):
    with pytest.raises(OptionsError):
        render_midi(score(2.0), tmp_path / "x.wav", 2.0, RenderOptions(duck=-6.0), speech=speech)


def test_speech_regions_are_clipped_and_merged():
    assert speech_regions([(5.0, 7.0), (-1.0, 0.5), (6.5, 8.0), (9.5, 12.0), (20.0, 21.0)], 10.0) == [
        (0.0, 0.5), (5.0, 8.0), (9.5, 10.0)]


@pytest.mark.parametrize("name, program, drum, group", [
    ("EMSYNC bass", 33, False, "bass"), ("EMSYNC strings", 48, False, "strings"), ("EMSYNC drums", 0, True, "drums"),
    ("", 0, False, "piano"), ("Lead", 25, False, "guitar"), ("x", 34, False, "bass"), ("", 45, False, "strings"),
    ("", 50, False, "strings"), ("", 56, False, "brass"), ("Kit", 0, True, "drums"), ("", 127, False, "sound-effects"),
    ("EMSYNC Synth Pad!", 90, False, "synth-pad"),
])
def test_instrument_group(name, program, drum, group):
    assert instrument_group(pretty_midi.Instrument(program, is_drum=drum, name=name)) == group
