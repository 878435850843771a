"""Speech detection (silero VAD): the sample's speech scene, silence, missing media."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from emsync_plugin import models, speech
from emsync_plugin.errors import MediaError
from emsync_plugin.speech import find_speech, merge, speech_spans
from emsync_plugin.timeline import read_cuts
from emsync_plugin.timeline.model import Scene, Timeline

SAMPLE = Path(__file__).resolve().parents[1] / "emsync_plugin" / "data" / "sample"


@pytest.fixture(scope="module")
def sample():
    return read_cuts(SAMPLE / "sample.otio")


def _check_sample(timeline, regions) -> None:
    facts = json.loads((SAMPLE / "sample.json").read_text())
    talking = [s for s in facts["scenes"] if s["speech"]]
    assert [s["index"] for s in talking] == [7]
    scene = talking[0]
    assert regions, "no speech found in the speech scene"
    assert all(scene["start"] <= s < e <= scene["end"] for s, e in regions), regions
    # espeak-ng starts 1 s into the shot and speaks for about 6 s
    assert regions[0][0] == pytest.approx(scene["start"] + 1.0, abs=0.2)
    assert sum(e - s for s, e in regions) > 4.0
    assert regions == sorted(regions) and all(a[1] < b[0] for a, b in zip(regions, regions[1:]))


def test_sample_speech_lies_in_the_speech_scene(sample):
    assert getattr(sample, "audio", ()), "the sample's audio clips are read"
    _check_sample(sample, find_speech(sample))


def test_scenes_sound_when_the_timeline_has_no_audio_clips(sample):
    _check_sample(sample, find_speech(dataclasses.replace(sample, audio=())))


def _timeline(media: str, duration: float) -> Timeline:
    return Timeline("t", 25.0, 0.0, duration, (), (Scene(1, 0.0, duration, media, 0.0, duration),))


def test_silent_file_has_no_speech(tmp_path):
    wav = tmp_path / "silence.wav"
    soundfile.write(str(wav), np.zeros((48000 * 3, 2), np.float32), 48000)
    assert find_speech(_timeline(str(wav), 3.0)) == []


def test_noise_is_not_speech(tmp_path):
    wav = tmp_path / "noise.wav"
    noise = np.random.default_rng(0).normal(0, 0.1, (44100 * 3, 1)).astype(np.float32)
    soundfile.write(str(wav), noise, 44100)
    assert find_speech(_timeline(str(wav), 3.0)) == []


def test_missing_media_names_the_file(tmp_path):
    missing = tmp_path / "gone" / "interview.mov"
    with pytest.raises(MediaError, match="interview.mov"):
        find_speech(_timeline(str(missing), 2.0))


def test_undecodable_media_names_the_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(MediaError, match="broken.mp4"):
        find_speech(_timeline(str(bad), 2.0))


def test_timeline_without_media_has_no_speech():
    assert find_speech(Timeline("t", 25.0, 0.0, 2.0, (), (Scene(1, 0.0, 2.0),))) == []


def test_model_is_shipped_and_verified():
    path = models.find(speech.MODEL)
    names = {i.name for i in models.session(path).get_inputs()}
    assert names == {"input", "state", "sr"}


def test_spans_follow_silero_post_processing():
    w = speech.WINDOW
    probs = [0.0] * 10 + [0.9] * 20 + [0.4] * 3 + [0.9] * 5 + [0.1] * 10 + [0.8] * 3 + [0.0] * 10
    spans = speech_spans(probs, len(probs) * w)
    pad = int(speech.PAD * speech.RATE)
    # one span (0.4 is between the thresholds, so it does not end speech); the 3-window blip is too short
    assert spans == [(10 * w - pad, 38 * w + pad)]
    assert speech_spans([0.9] * 20, 20 * w) == [(0, 20 * w)]  # speech to the end
    assert speech_spans([0.0] * 20, 20 * w) == []


def test_merge():
    assert merge([(3.0, 4.0), (1.0, 2.0), (1.5, 2.5), (5.0, 5.0)]) == [(1.0, 2.5), (3.0, 4.0)]
    assert merge([(1.0, 2.0), (2.05, 3.0)], gap=0.1) == [(1.0, 3.0)]
