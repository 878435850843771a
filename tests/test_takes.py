"""Takes, stems and ducking on the bundled sample, measured on the files written (issue 12)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from emsync_plugin.pipeline import ScoreOptions, score
from emsync_plugin.sidecar import read_sidecar
from emsync_plugin.timeline.io import read_score_tracks

SAMPLE = Path(__file__).resolve().parents[1] / "emsync_plugin" / "data" / "sample"


@pytest.fixture
def sample(tmp_path) -> Path:
    for name in ("sample.otio", "sample.mp4"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    return tmp_path / "sample.otio"


def rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(max(float(np.sqrt(np.mean(np.square(x)))), 1e-12))


def test_takes_and_stems_land_as_tracks_and_stems_sum_to_the_mix(sample):
    result = score(sample, ScoreOptions(in_place=True, engine="baseline", takes=2, stems=True, seed=4))
    folder = sample.parent
    assert result.wav == folder / "sample.emsync.take1.wav"
    assert (folder / "sample.emsync.take2.wav").is_file() and (folder / "sample.emsync.take2.mid").is_file()
    tracks = read_score_tracks(sample)
    names = [t.name for t in tracks]
    groups = sorted(Path(p).name.split("stem-")[1][:-4] for p in result.stems)
    assert names == ["EMSYNC Score take 1", "EMSYNC Score take 2"] + [f"EMSYNC Score stem {g}" for g in groups]
    assert [t.muted for t in tracks] == [False] + [True] * (len(tracks) - 1)
    assert {"bass", "strings", "drums"} <= set(groups)  # the default style, cinematic
    mix, sr = soundfile.read(result.wav)
    total = sum(soundfile.read(p)[0] for p in result.stems)
    assert rms_db(mix - total) - rms_db(mix) < -40
    take1, take2 = (soundfile.read(folder / f"sample.emsync.take{k}.wav")[0] for k in (1, 2))
    assert rms_db(take1 - take2) > rms_db(take1) - 10  # different music, not a copy
    side = read_sidecar(result.sidecar)
    assert [t["seed"] for t in side["takes"]] == [4, 5]
    assert sorted(side["groups"]) == groups and side["groups"]["drums"] > 0  # the groups heard, drums too
    score(sample, ScoreOptions(in_place=True, engine="baseline", takes=2, stems=True, seed=4))  # again
    assert not [p.name for p in folder.iterdir() if ".bak." in p.name and not p.name.endswith(".otio")]


def test_a_rescore_keeps_the_chosen_take_and_replaces_all_emsync_tracks(sample):
    score(sample, ScoreOptions(in_place=True, engine="baseline", takes=2, seed=4))
    side = read_sidecar(sample.with_name("sample.emsync.json"))
    take2 = side["takes"][1]["notes"]
    result = score(sample, ScoreOptions(in_place=True, engine="baseline", take=2, seed=9))
    assert {d.action for d in result.decisions} == {"kept"}
    after = read_sidecar(result.sidecar)
    assert [len(s["notes"]) for s in after["scenes"]] == [len(n) for n in take2]
    assert [t.name for t in read_score_tracks(sample)] == ["EMSYNC Score"]


def test_duck_lowers_the_score_under_the_sample_speech_only(sample, tmp_path):
    """Measured on the audio: the same score with and without --duck, scene by scene."""
    plain = score(sample, ScoreOptions(engine="baseline", seed=2, output=tmp_path / "plain" / "s.otio"))
    ducked = score(sample, ScoreOptions(engine="baseline", seed=2, duck=-12.0, output=tmp_path / "duck" / "s.otio"))
    assert ducked.speech, "the sample's speech scene has speech"
    a, sr = soundfile.read(plain.wav)
    b, _ = soundfile.read(ducked.wav)
    speech_scene = ducked.timeline.scenes[-1]  # scene 7, "speech"
    assert all(speech_scene.start - 0.5 <= s and e <= speech_scene.end + 0.5 for s, e in ducked.speech)
    start, end = ducked.speech[0]
    inside = slice(int((start + 0.3) * sr), int((end - 0.1) * sr))
    assert rms_db(b[inside]) - rms_db(a[inside]) == pytest.approx(-12.0, abs=2.0)
    quiet_until = ducked.speech[0][0] - 0.5  # before the attack
    outside = slice(0, int(quiet_until * sr))
    assert abs(rms_db(b[outside]) - rms_db(a[outside])) <= 1.0
    assert read_sidecar(ducked.sidecar)["duck"]["speech"]
