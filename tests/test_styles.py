"""Orchestration styles: different programs, swells, texture, dynamics and clean renders (issue 14)."""
from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile

from emsync_plugin.errors import OptionsError
from emsync_plugin.mood import SceneMood
from emsync_plugin.music.chords import cut_hits
from emsync_plugin.music.generator import Generator
from emsync_plugin.music.groups import instrument_group
from emsync_plugin.music.render import RenderOptions, integrated_loudness, render_midi
from emsync_plugin.music.styles import DEFAULT_STYLE, STYLES, apply_style, check_style
from emsync_plugin.options import ScoreOptions

FLUID = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
CUTS = (7.0, 14.0, 21.0)
DURATION = 28.0
# energetic and calm scenes of one score, alternating
MOODS = tuple(SceneMood(k + 1, 7.0 * k, 7.0 * (k + 1), v, a)
              for k, (v, a) in enumerate(((0.6, 0.8), (0.3, -0.8), (-0.5, 0.8), (-0.2, -0.8))))


@pytest.fixture(scope="module")
def generated() -> pretty_midi.PrettyMIDI:
    return Generator.load().generate(CUTS, DURATION, MOODS, ScoreOptions(seed=5).sampling()).midi


@pytest.fixture(scope="module")
def rendered(generated, tmp_path_factory) -> dict[str, tuple[pretty_midi.PrettyMIDI, np.ndarray, int]]:
    """Each style's arrangement and its render (normalised to -16 LUFS as a score is)."""
    folder = tmp_path_factory.mktemp("styles")
    options = RenderOptions(soundfont=FLUID if FLUID.is_file() else None, fade=0.0)
    out = {}
    for name in STYLES:
        arranged = apply_style(generated, name, CUTS, DURATION, MOODS, seed=5)
        render_midi(arranged, folder / f"{name}.wav", DURATION, options)
        audio, rate = soundfile.read(folder / f"{name}.wav")
        out[name] = (arranged, audio, rate)
    return out


def programs(midi: pretty_midi.PrettyMIDI) -> set[tuple[str, int, bool]]:
    return {(instrument_group(i), i.program, i.is_drum) for i in midi.instruments}


def test_a_style_leaves_the_generated_notes_alone(generated):
    """The sidecar records the generated notes after the style is applied: they must not change."""
    before = [(i.name, n.pitch, n.velocity, n.start, n.end) for i in generated.instruments for n in i.notes]
    for name in STYLES:
        apply_style(generated, name, CUTS, DURATION, MOODS, seed=5)
    assert [(i.name, n.pitch, n.velocity, n.start, n.end) for i in generated.instruments for n in i.notes] == before


def test_an_unknown_style_names_the_styles():
    assert check_style(DEFAULT_STYLE) == DEFAULT_STYLE
    with pytest.raises(OptionsError, match="cinematic"):
        check_style("polka")


def test_the_style_tables_are_consistent():
    from emsync_plugin.music.drums import KEYS, KITS

    for style in STYLES.values():
        assert style.kit is None or style.kit in KITS
        assert 1 <= style.velocity[0] < style.velocity[1] <= 127
        for part in style.parts:
            assert 0 <= part.program <= 127 and part.plays and set(part.plays) <= {"bass", "guitar", "piano", "strings"}
            assert part.group == part.group.lower() and " " not in part.group and part.group != "drums"
    for kit in KITS.values():
        for level_grooves in kit.grooves.values():
            for groove in level_grooves:
                assert all(len(steps) == 16 and set(steps) <= set(".123456789") for steps in groove.values())
        parts = {p for g in kit.grooves.values() for groove in g for p in groove} | set(kit.accent)
        parts |= {p for fill in kit.fills.values() for p in fill}
        assert parts <= set(KEYS) | {"timpani"}


def test_each_style_plays_its_own_programs(rendered):
    played = {name: programs(midi) for name, (midi, _, _) in rendered.items()}
    for a, b in combinations(played, 2):
        assert played[a] != played[b], f"{a} and {b} sound alike"
    assert played["piano"] == {("piano", 0, False)}
    assert not any(drum for _, _, drum in played["ambient"])
    assert {("strings", 48, False), ("bass", 43, False), ("bass", 42, False), ("brass", 60, False),
            ("drums", 47, False)} <= played["cinematic"]
    kits = {name: {p for _, p, drum in played[name] if drum} for name in ("cinematic", "acoustic", "electronic")}
    assert len({frozenset(k) for k in kits.values()}) == 3 and all(len(k) == 1 for k in kits.values())
    assert {p for g, p, _ in played["electronic"] if g == "bass"} == {39}  # synth bass


def test_the_generated_notes_stay_where_they_were(generated, rendered):
    """A style re-voices the music: the chords still land on the cuts, the bass an octave doubled."""
    assert all(cut_hits(CUTS, generated))
    for name, (midi, _, _) in rendered.items():
        assert all(cut_hits(CUTS, midi)), name
    cinematic = rendered["cinematic"][0]
    low, high = (sorted((round(n.start, 6), n.pitch) for n in i.notes) for i in cinematic.instruments
                 if instrument_group(i) == "bass")
    bass = sorted((round(n.start, 6), n.pitch) for i in generated.instruments if i.name == "EMSYNC bass" for n in i.notes)
    assert [t for t, _ in low] == [t for t, _ in bass] and [p + 12 for _, p in low] == [p for _, p in high]


def test_a_thinned_chord_keeps_three_distinct_pitches_when_two_groups_double_one():
    """In a calm scene a part sounds at most three notes at once; a pitch two groups double counts
    once, so a four-note chord with a doubled top still keeps three pitches (a chord on the cut)."""
    midi = pretty_midi.PrettyMIDI()
    for name, pitches in (("EMSYNC bass", (44,)), ("EMSYNC guitar", (68,)), ("EMSYNC piano", (60, 63, 68))):
        inst = pretty_midi.Instrument(0, name=name)
        inst.notes = [pretty_midi.Note(60, p, 7.0, 8.2) for p in pitches]
        midi.instruments.append(inst)
    calm = (SceneMood(1, 0.0, 7.0, 0.0, 0.0), SceneMood(2, 7.0, 10.0, -0.2, -0.8))
    out = apply_style(midi, "piano", (7.0,), 10.0, calm)
    assert sorted(n.pitch for i in out.instruments for n in i.notes if n.start == 7.0) == [44, 63, 68]
    assert all(cut_hits((7.0,), out))


def test_horns_swell_into_each_cut(rendered):
    midi = rendered["cinematic"][0]
    brass = next(i for i in midi.instruments if instrument_group(i) == "brass")
    cuts = np.array(CUTS)
    restruck = {(n.pitch, round(n.start, 6)) for n in brass.notes}
    for n in brass.notes:  # in the two seconds before a cut, held to it (or until struck again)
        assert 0 < min(c - n.start for c in CUTS if c >= n.end) <= 2.0 + 1e-6
        assert np.min(np.abs(cuts - n.end)) < 1e-6 or (n.pitch, round(n.end, 6)) in restruck
    swell = [(c.time, c.value) for c in brass.control_changes if c.number == 11]
    for cut, before in zip(CUTS, MOODS):
        values = [v for t, v in swell if cut - 2.0 - 1e-6 <= t < cut]
        if before.arousal < -0.5:  # no horns in a calm scene
            assert values == [] and not [n for n in brass.notes if before.start <= n.start < cut]
            continue
        assert values == sorted(values) and values[0] <= 40 and values[-1] >= 110
        assert {n.pitch for n in brass.notes if n.end == pytest.approx(cut)}  # a chord held into the cut


def sounding(notes, t: np.ndarray) -> np.ndarray:
    """How many of ``notes`` sound at each time of ``t``."""
    count = np.zeros(len(t), int)
    for n in notes:
        count[(t >= n.start) & (t < n.end)] += 1
    return count


@pytest.mark.parametrize("style", ["cinematic", "piano", "acoustic", "electronic"])
def test_calm_scenes_thin_the_texture_and_breathe(generated, rendered, style):
    """In calm scenes a part sounds at most three notes at once and the accompaniment rests
    between two-bar phrases; energetic scenes keep the generator's full texture."""
    midi = rendered[style][0]
    t = np.arange(0.0, DURATION, 0.01)
    full = sounding([n for i in generated.instruments for n in i.notes], t)
    styled = sounding([n for i in midi.instruments if instrument_group(i) != "drums" for n in i.notes], t)
    for mood in MOODS:
        inside = (t >= mood.start) & (t < mood.end)
        if mood.arousal > 0:
            continue
        for inst in midi.instruments:
            if instrument_group(inst) not in ("drums", "brass"):
                assert sounding(inst.notes, t[inside]).max() <= 3, f"{style}: {inst.name}"
        assert np.mean(styled[inside] < full[inside] - (1 if style == "piano" else 0)) > 0.1  # thinner a tenth of the time or more
    accompaniment = [n for i in generated.instruments if i.name in ("EMSYNC piano", "EMSYNC strings") for n in i.notes]
    calm = MOODS[1]
    gaps = sounding([n for n in accompaniment if calm.start <= n.start < calm.end], t)
    assert gaps[(t >= calm.start) & (t < calm.end)].min() > 0  # the generator never rests
    if style == "piano":  # a breath: the chords rest while the line and the bass go on
        piano = sounding(midi.instruments[0].notes, t)
        inside = (t >= calm.start) & (t < calm.end - 0.5)
        assert np.min(piano[inside]) <= 2


@pytest.mark.parametrize("style", list(STYLES))
def test_calm_scenes_are_at_least_6_db_quieter_than_energetic_ones(rendered, style):
    _, audio, rate = rendered[style]
    loud = []
    for mood in MOODS:
        part = audio[int((mood.start + 0.3) * rate):int((mood.end - 0.3) * rate)]
        loud.append(integrated_loudness(part, rate))
    energetic = [v for v, m in zip(loud, MOODS) if m.arousal > 0]
    calm = [v for v, m in zip(loud, MOODS) if m.arousal < 0]
    assert min(energetic) - max(calm) >= 6.0, f"{style}: {[round(v, 1) for v in loud]} LUFS per scene"
    assert integrated_loudness(audio, rate) == pytest.approx(-16.0, abs=0.5)


@pytest.mark.parametrize("style", list(STYLES))
def test_every_style_renders_cleanly(rendered, style):
    """No clipping, and sound wherever a note sounds (no program missing from the SoundFont)."""
    midi, audio, rate = rendered[style]
    assert np.max(np.abs(audio)) <= 10 ** (-1.0 / 20) + 1e-4
    window = int(0.1 * rate)
    frames = len(audio) // window
    level = 10 * np.log10(np.mean(audio[:frames * window].reshape(frames, window, 2) ** 2, axis=(1, 2)) + 1e-20)
    sounding = np.zeros(frames, bool)
    for inst in midi.instruments:
        for n in inst.notes:
            sounding[int(n.start / 0.1) + 1:int(n.end / 0.1)] = True
    assert np.mean(level[sounding] < -60) == 0.0


def test_styles_sound_different(rendered):
    """Their long-term spectra (octave bands, relative to the total) differ by at least 2 dB RMS."""
    bands = {}
    for name, (_, audio, rate) in rendered.items():
        mono = audio.mean(axis=1)
        blocks = mono[:len(mono) // 8192 * 8192].reshape(-1, 8192) * np.hanning(8192)
        power = (np.abs(np.fft.rfft(blocks, axis=1)) ** 2).mean(axis=0)
        freq = np.fft.rfftfreq(8192, 1 / rate)
        b = np.array([power[(freq >= lo) & (freq < 2 * lo)].sum() for lo in 31.25 * 2.0 ** np.arange(9)])
        bands[name] = 10 * np.log10(b / b.sum())
    for a, b in combinations(bands, 2):
        assert np.sqrt(np.mean((bands[a] - bands[b]) ** 2)) >= 2.0, f"{a} and {b}"
