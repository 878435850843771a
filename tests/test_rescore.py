"""Re-scoring an edited timeline keeps the music of the scenes that did not change (issue 12)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import opentimelineio as otio
import pytest

from emsync_plugin import rescore
from emsync_plugin.errors import OptionsError
from emsync_plugin.music.chords import cut_hits
from emsync_plugin.pipeline import ScoreOptions, score
from emsync_plugin.sidecar import read_sidecar
from emsync_plugin.timeline import read_cuts

SAMPLE = Path(__file__).resolve().parents[1] / "emsync_plugin" / "data" / "sample"


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> Path:
    """The sample scored in place once (seed 7): the folder an editor keeps working in."""
    folder = tmp_path_factory.mktemp("first")
    for name in ("sample.otio", "sample.mp4"):
        shutil.copy(SAMPLE / name, folder / name)
    score(folder / "sample.otio", ScoreOptions(in_place=True, seed=7))
    return folder


@pytest.fixture
def work(first, tmp_path) -> Path:
    for f in first.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    return tmp_path / "sample.otio"


def edit(path: Path, change) -> None:
    """Apply ``change(list of (video clip, audio clip) pairs)`` to V1/A1 of an OTIO file."""
    t = otio.adapters.read_from_file(str(path))
    video, audio = (next(tr for tr in t.tracks if tr.name == name) for name in ("V1", "A1"))
    change(video, audio)
    otio.adapters.write_to_file(t, str(path))


def trim(n: int, seconds: float):
    def change(*tracks):
        for track in tracks:
            r = track[n - 1].source_range
            track[n - 1].source_range = otio.opentime.TimeRange(
                r.start_time, r.duration - otio.opentime.RationalTime(seconds * r.duration.rate, r.duration.rate))
    return change


def swap(a: int, b: int):
    def change(*tracks):
        for track in tracks:
            clips = [c.deepcopy() for c in track]
            clips[a - 1], clips[b - 1] = clips[b - 1], clips[a - 1]
            while len(track):
                del track[0]
            track.extend(clips)
    return change


def notes(sidecar: dict, index: int) -> list[tuple]:
    """A scene's notes, from the sidecar, with the instrument by program."""
    scene = next(s for s in sidecar["scenes"] if s["index"] == index)
    programs = [(i["program"], i["is_drum"]) for i in sidecar["instruments"]]
    return [(programs[n[0]], n[1], n[2], n[3] - scene["start"], n[4] - scene["start"]) for n in scene["notes"]]


def same_notes(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(x[:3] == y[:3] and abs(x[3] - y[3]) < 1e-6 and abs(x[4] - y[4]) < 1e-6
                                    for x, y in zip(a, b))


def test_the_first_score_records_identity_and_notes(first):
    side = read_sidecar(first / "sample.emsync.json")
    timeline = read_cuts(first / "sample.otio")
    assert [s["music"] for s in side["scenes"]] == ["new"] * len(timeline.scenes)
    assert side["model_sha256"] and len(side["model_sha256"]) == 64
    for s, scene in zip(side["scenes"], timeline.scenes):
        assert s["identity"]["media"] == "sample.mp4"
        assert s["identity"]["source_start"] == pytest.approx(scene.source_start)
        assert s["notes"] and all(scene.start - 1e-9 <= n[3] < scene.end for n in s["notes"])
    timeline_otio = otio.adapters.read_from_file(str(first / "sample.otio"))
    meta = timeline_otio.metadata["emsync"]
    assert "notes" not in meta["scenes"][0] and meta["scenes"][0]["identity"]["media"] == "sample.mp4"
    spans = [s["events"] for s in meta["scenes"]]
    assert spans[0][0] == 0 and all(b[0] == a[0] + a[1] for a, b in zip(spans, spans[1:]))


def test_no_edit_keeps_every_note(work):
    before = read_sidecar(work.with_name("sample.emsync.json"))
    result = score(work, ScoreOptions(in_place=True, seed=7))
    after = read_sidecar(result.sidecar)
    assert [d.action for d in result.decisions] == ["kept"] * len(result.decisions)
    for s in before["scenes"]:
        assert notes(after, s["index"]) == notes(before, s["index"])


def test_trimming_a_scene_regenerates_only_it(work):
    before = read_sidecar(work.with_name("sample.emsync.json"))
    edit(work, trim(4, 1.0))
    result = score(work, ScoreOptions(in_place=True, seed=7))
    after = read_sidecar(result.sidecar)
    actions = {d.index: d.action for d in result.decisions}
    assert actions == {1: "kept", 2: "kept", 3: "kept", 4: "regenerated", 5: "moved", 6: "moved", 7: "moved"}
    assert result.decisions[3].reason == "picture trimmed" and result.decisions[3].previous == 4
    assert result.timeline.duration == pytest.approx(before["duration"] - 1.0)
    for i in (1, 2, 3, 5, 6, 7):
        assert same_notes(notes(after, i), notes(before, i)), f"scene {i}"
    assert not same_notes(notes(after, 4), notes(before, 4))
    import pretty_midi

    assert all(cut_hits(result.timeline.cuts, pretty_midi.PrettyMIDI(str(result.midi))))


def test_swapped_scenes_keep_their_music(work):
    before = read_sidecar(work.with_name("sample.emsync.json"))
    edit(work, swap(2, 5))
    result = score(work, ScoreOptions(in_place=True, seed=7))
    after = read_sidecar(result.sidecar)
    by_index = {d.index: d for d in result.decisions}
    assert by_index[2].action == "moved" and by_index[2].previous == 5
    assert by_index[5].action == "moved" and by_index[5].previous == 2
    assert same_notes(notes(after, 2), notes(before, 5)) and same_notes(notes(after, 5), notes(before, 2))


def test_a_locked_scene_that_changed_is_an_error_naming_it(work):
    edit(work, trim(4, 1.0))
    with pytest.raises(OptionsError, match="scene 4's picture changed"):
        score(work, ScoreOptions(in_place=True, seed=7, lock=(4,)))
    assert read_sidecar(work.with_name("sample.emsync.json"))["scenes"][3]["music"] == "new"  # nothing written


def test_regenerate_and_fresh(work):
    result = score(work, ScoreOptions(in_place=True, seed=7, regenerate=(2,)))
    assert [d.action for d in result.decisions] == ["kept", "regenerated"] + ["kept"] * 5
    assert score(work, ScoreOptions(in_place=True, seed=7, fresh=True)).decisions[0].action == "new"


def test_a_sidecar_from_another_timeline_keeps_nothing(work, tmp_path, caplog):
    other = tmp_path / "other.json"
    side = read_sidecar(work.with_name("sample.emsync.json"))
    for s in side["scenes"]:
        s["identity"]["media"] = "another.mp4"
    other.write_text(json.dumps(side))
    result = score(work, ScoreOptions(seed=7, previous=other, output=tmp_path / "out.otio"))
    assert {d.action for d in result.decisions} == {"new"}
    assert "no scene of sample.otio matches" in caplog.text


def test_a_hand_edited_sidecar_is_explained_and_scored_afresh(work, caplog):
    path = work.with_name("sample.emsync.json")
    side = json.loads(path.read_text())
    side["scenes"][2]["notes"][0][1] = "C4"  # a pitch by name: not what emsync wrote
    path.write_text(json.dumps(side))
    original = work.read_bytes()
    result = score(work, ScoreOptions(in_place=True, seed=7))
    assert {d.action for d in result.decisions} == {"new"}
    assert "does not record the music of each scene" in caplog.text
    assert any(p.name.startswith("sample.") and p.name.endswith(".bak.otio") and p.read_bytes() == original
               for p in work.parent.iterdir())


def test_another_model_regenerates_every_unlocked_scene(work):
    path = work.with_name("sample.emsync.json")
    side = json.loads(path.read_text())
    side["model_sha256"] = "0" * 64
    path.write_text(json.dumps(side))
    result = score(work, ScoreOptions(in_place=True, seed=7, lock=(1,)))
    assert result.decisions[0].action == "kept"
    assert {d.reason for d in result.decisions[1:]} == {"the generator model changed"}


def test_the_other_build_of_the_same_model_keeps_the_music(work):
    result = score(work, ScoreOptions(in_place=True, seed=7, precision="fp32"))  # scored with int8 first
    assert {d.action for d in result.decisions} == {"kept"}
    from emsync_plugin import models

    assert read_sidecar(work.with_name("sample.emsync.json"))["model_sha256"] == \
        models.manifest()["files"]["generator.onnx"]["sha256"]


def test_identity_is_the_picture_not_the_place():
    from emsync_plugin.timeline import Scene

    a = rescore.Identity.of(Scene(1, 0.0, 2.0, "/a/clip.mov", 10.0, 12.0))
    assert a.same(rescore.Identity.of(Scene(5, 30.0, 32.0, "D:\\b\\clip.mov", 10.01, 12.0)), 0.02)
    assert not a.same(rescore.Identity.of(Scene(1, 0.0, 2.0, "/a/clip.mov", 10.0, 11.0)), 0.02)
    assert not a.same(rescore.Identity.of(Scene(1, 0.0, 2.0, "/a/other.mov", 10.0, 12.0)), 0.02)
    black = rescore.Identity.of(Scene(2, 4.0, 5.0))
    assert black.same(rescore.Identity.of(Scene(3, 9.0, 10.0)), 0.02)
    assert not black.same(rescore.Identity.of(Scene(3, 9.0, 10.5)), 0.02)
