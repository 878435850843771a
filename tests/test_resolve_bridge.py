"""The Resolve script and its installer, against a fake of Resolve's documented scripting API."""
from __future__ import annotations

import ast
import io
import json
import math
import runpy
import sys
import wave
from pathlib import Path

import opentimelineio as otio
import pytest
from fake_resolve import FakeProject, FakeResolve, FakeTimeline, fake_fusion

from emsync_plugin.errors import TimelineError
from emsync_plugin.mood import SceneMood
from emsync_plugin.timeline.model import Shot, build_timeline
from resolve_bridge import core, worker
from resolve_bridge import emsync_score as script
from resolve_bridge import install as installer
from resolve_bridge.options import (
    BIN_NAME,
    MEDIA_ADVICE,
    TRACK_NAME,
    BridgeError,
    BridgeOptions,
    Scored,
    format_emotion,
    format_moods,
    split_emotion,
)
from resolve_bridge.resolve import WORKDIR_ENV, data_dir, export_timeline
from resolve_bridge.ui import ConsoleUI, FusionUI

RATE = 24.0
START = 86400  # 01:00:00:00 at 24 fps
LENGTH = 140  # frames: V1 0-120, V2 100-140


# ---------------------------------------------------------------------------------------------
# fixtures


def _wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(math.ceil(seconds * rate)))
    return path


@pytest.fixture
def resolve(tmp_path, monkeypatch):
    """A Resolve with a project whose current timeline has two video tracks and dialogue on A1."""
    monkeypatch.setenv(WORKDIR_ENV, str(tmp_path / "runs"))
    media = tmp_path / "media"
    media.mkdir()
    project = FakeProject("Short Film", rate=RATE)
    timeline = project.add_timeline(FakeTimeline("Edit v3", rate=RATE, start_frame=START, video_tracks=2))
    timeline.add_clip(media / "a.mov", START, 48, source_start=10)
    timeline.add_clip(media / "b.mov", START + 48, 72, source_start=0)
    timeline.add_clip(media / "c.mov", START + 100, 40, source_start=5, track=2)
    timeline.add_clip(_wav(media / "dialogue.wav", LENGTH / RATE), START, LENGTH, kind="audio")
    return FakeResolve(project)


def _timeline(resolve) -> FakeTimeline:
    return resolve.GetProjectManager().GetCurrentProject().GetCurrentTimeline()


class FakeScore:
    """Stands in for ``pipeline.score``: reads the exported file with OTIO, writes a silent WAV."""

    def __init__(self, error: Exception | None = None):
        self.calls = []
        self.error = error

    def __call__(self, path, options=None, progress=None):
        from emsync_plugin import pipeline, rescore

        path = Path(path)
        self.calls.append((path, options))
        if progress:
            progress("reading cuts", 0.0)
        if self.error is not None:
            raise self.error
        tl = otio.adapters.read_from_file(str(path))
        rate = tl.global_start_time.rate if tl.global_start_time is not None else RATE
        tracks = []
        for track in tl.video_tracks():
            shots = []
            for child in track:
                r = track.range_of_child(child)
                a, b = r.start_time.to_seconds(), r.end_time_exclusive().to_seconds()
                shots.append(Shot(a, b, getattr(child, "name", None) if isinstance(child, otio.schema.Clip) else None))
            tracks.append(shots)
        start = tl.global_start_time.to_seconds() if tl.global_start_time is not None else 0.0
        timeline = build_timeline(tl.name, rate, tracks, start=start, duration=tl.duration().to_seconds(), path=path)
        overridden = {int(e.partition("=")[0]) for e in options.emotion}
        moods = tuple(SceneMood(s.index, s.start, s.end, 0.5 if s.index in overridden else 0.1, 0.2,
                                "cli" if s.index in overridden else "cues") for s in timeline.scenes)
        base = path.with_name(path.stem + ".emsync")  # the core's names: NAME.emsync.wav, .mid, .json
        wav = _wav(base.with_name(base.name + ".wav"), timeline.duration)
        midi = base.with_name(base.name + ".mid")
        midi.write_bytes(b"MThd\0\0\0\x06\0\0\0\x01\x01\xe0MTrk\0\0\0\x04\0\xff\x2f\0")
        sidecar = base.with_name(base.name + ".json")
        sidecar.write_text(json.dumps({"cuts": list(timeline.cuts)}))
        if progress:
            progress("rendering audio", 0.5)
            progress("done", 1.0)
        decisions = tuple(rescore.Decision(s.index, rescore.NEW) for s in timeline.scenes)
        return pipeline.ScoreResult(timeline, None, wav, midi, sidecar, -16.2, moods, decisions=decisions)


@pytest.fixture
def fake_score(monkeypatch):
    from emsync_plugin import pipeline

    fake = FakeScore()
    monkeypatch.setattr(pipeline, "score", fake)
    return fake


class RecordingUI(ConsoleUI):
    """The Console UI, remembering what it showed."""

    def __init__(self, answer=None):
        super().__init__(stream=io.StringIO())
        self.errors, self.infos, self.stages = [], [], []
        self.answer = answer
        self.asked = None
        self.music = None

    def error(self, message):
        self.errors.append(message)
        super().error(message)

    def info(self, text):
        self.infos.append(text)
        super().info(text)

    def progress(self, stage, fraction):
        self.stages.append((stage, fraction))
        super().progress(stage, fraction)

    def show_result(self, text, music):
        self.music = music
        super().show_result(text, music)

    def ask_options(self, defaults, engines, analyze=None, check=None):
        self.asked = defaults
        sync = None if analyze is None else (lambda opts: analyze(opts).wait())  # the dialog waits on a timer
        answer = self.answer(defaults, sync) if callable(self.answer) else self.answer
        return answer if answer is not None else defaults


def _score_tracks(timeline):
    return [i for i in range(1, timeline.GetTrackCount("audio") + 1)
            if timeline.GetTrackName("audio", i) == TRACK_NAME]


# ---------------------------------------------------------------------------------------------
# the script


def test_first_run_adds_one_score_track_at_the_start_frame(resolve, fake_score):
    timeline = _timeline(resolve)
    before = timeline.snapshot()
    ui = RecordingUI()

    assert script.main(resolve, ui, BridgeOptions(valence=0.4, seed=7)) == 0

    assert ui.errors == []
    assert timeline.GetTrackCount("audio") == 2
    assert _score_tracks(timeline) == [2]
    assert timeline.GetTrackSubType("audio", 2) == "stereo"
    (item,) = timeline.GetItemListInTrack("audio", 2)
    assert item.GetStart() == timeline.GetStartFrame() == START
    assert item.GetDuration() == LENGTH
    wav = Path(item.GetMediaPoolItem().GetClipProperty("File Path"))
    assert wav.is_file() and wav.suffix == ".wav"
    # the picture and the dialogue are untouched
    after = timeline.snapshot()
    assert after["video"] == before["video"]
    assert after["audio"][0] == before["audio"][0]
    # the core was asked for WAV + MIDI only, from an OTIO export
    (exported, options), = fake_score.calls
    assert exported.suffix == ".otio" and options.write_timeline is False
    assert (options.valence, options.arousal, options.seed, options.engine) == (0.4, None, 7, "baseline")
    assert ui.stages[-1] == ("done", 1.0)
    # the WAV sits in the media pool bin "EMSYNC" with the settings under "emsync"
    pool = resolve.GetProjectManager().GetCurrentProject().GetMediaPool()
    (bin_,) = [f for f in pool.GetRootFolder().GetSubFolderList() if f.GetName() == BIN_NAME]
    (clip,) = bin_.GetClipList()
    assert clip is item.GetMediaPoolItem()
    stored = json.loads(clip.GetThirdPartyMetadata("emsync"))
    assert stored["seed"] == 7 and stored["valence"] == 0.4 and stored["wav"] == str(wav)
    assert Path(stored["midi"]).is_file()
    assert json.loads(timeline.GetMediaPoolItem().GetThirdPartyMetadata("emsync"))["wav"] == str(wav)
    assert any("A2 'EMSYNC Score'" in line for line in ui.infos)


def test_rerun_replaces_the_score_and_reuses_the_settings(resolve, fake_score):
    timeline = _timeline(resolve)
    assert script.main(resolve, RecordingUI(), BridgeOptions(valence=-0.5, arousal=0.25, seed=3)) == 0
    (first,) = timeline.GetItemListInTrack("audio", 2)
    first_wav = first.GetMediaPoolItem().GetClipProperty("File Path")

    ui = RecordingUI()  # no options: the previous run's settings are the defaults
    assert script.main(resolve, ui) == 0

    assert ui.asked == BridgeOptions(valence=-0.5, arousal=0.25, seed=3)
    assert timeline.GetTrackCount("audio") == 2
    assert _score_tracks(timeline) == [2]
    (second,) = timeline.GetItemListInTrack("audio", 2)
    second_wav = second.GetMediaPoolItem().GetClipProperty("File Path")
    assert second_wav != first_wav and Path(first_wav).is_file()  # each run keeps its own file
    assert second.GetStart() == START and second.GetDuration() == LENGTH
    assert len(fake_score.calls) == 2


def test_a_track_named_emsync_score_by_the_user_is_reused(resolve, fake_score, tmp_path):
    timeline = _timeline(resolve)
    assert timeline.AddTrack("audio", "stereo") and timeline.AddTrack("audio", "mono")
    timeline.SetTrackName("audio", 2, TRACK_NAME)
    timeline.add_clip(_wav(tmp_path / "old.wav", 2.0), START + 10, 20, track=2, kind="audio")

    assert script.main(resolve, RecordingUI()) == 0

    assert timeline.GetTrackCount("audio") == 3
    assert _score_tracks(timeline) == [2]
    (item,) = timeline.GetItemListInTrack("audio", 2)
    assert item.GetStart() == START and item.GetName().endswith(".wav") and item.GetName() != "old.wav"
    assert timeline.GetItemListInTrack("audio", 3) == []


def test_fcp7_xml_export_when_resolve_has_no_otio_export(resolve, fake_score):
    old = FakeResolve(resolve.GetProjectManager().GetCurrentProject(), otio=False)
    assert getattr(old, "EXPORT_OTIO", None) is None

    assert script.main(old, RecordingUI()) == 0

    (exported, _), = fake_score.calls
    assert exported.suffix == ".xml" and b"<xmeml" in exported.read_bytes()
    assert _score_tracks(_timeline(old)) == [2]


def test_an_emsync_error_is_shown_and_the_timeline_is_untouched(resolve, monkeypatch, capsys):
    from emsync_plugin import pipeline

    timeline = _timeline(resolve)
    before = timeline.snapshot()
    error = TimelineError("has no video track", path="/tmp/Edit v3.otio", hint="export the timeline with its video tracks")
    monkeypatch.setattr(pipeline, "score", FakeScore(error))

    status = script.main(resolve, ConsoleUI())

    assert status == 2
    shown = capsys.readouterr().out.strip().splitlines()[-1]
    assert shown == f"EMSYNC: error: {error}"
    assert "\n" not in str(error)
    assert timeline.snapshot() == before
    pool = resolve.GetProjectManager().GetCurrentProject().GetMediaPool()
    assert [f.GetName() for f in pool.GetRootFolder().GetSubFolderList()] == []


def test_a_locked_score_track_stops_before_any_work(resolve, fake_score):
    timeline = _timeline(resolve)
    timeline.AddTrack("audio", "stereo")
    timeline.SetTrackName("audio", 2, TRACK_NAME)
    timeline.SetTrackLock("audio", 2, True)
    before = timeline.snapshot()
    ui = RecordingUI()

    assert script.main(resolve, ui) == 2

    assert ui.errors == ["The audio track A2 'EMSYNC Score' is locked. Unlock it and run EMSYNC Score again."]
    assert fake_score.calls == [] and timeline.snapshot() == before


@pytest.mark.parametrize("project", [None, FakeProject("Empty")])
def test_no_project_or_no_timeline_is_explained(project, fake_score):
    ui = RecordingUI()
    assert script.main(FakeResolve(project), ui) == 2
    assert len(ui.errors) == 1 and ("No project is open" in ui.errors[0] or "no current timeline" in ui.errors[0])


def test_cancelling_the_dialog_changes_nothing(resolve, fake_score):
    class Cancel(RecordingUI):
        def ask_options(self, defaults, engines, analyze=None, check=None):
            return None

    timeline = _timeline(resolve)
    before = timeline.snapshot()
    assert script.main(resolve, Cancel()) == 0
    assert fake_score.calls == [] and timeline.snapshot() == before


def test_worker_protocol(tmp_path, fake_score, resolve):
    exported = export_timeline(resolve, _timeline(resolve), tmp_path / "export")
    out = io.StringIO()
    request = {"path": str(exported), "options": {"engine": "baseline", "valence": 0.1, "arousal": None,
                                                  "seed": 2, "loudness": -16.0, "fade": 3.0}}
    assert worker.worker_main(io.StringIO(json.dumps(request)), out) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0] == {"progress": ["reading cuts", 0.0]}
    result = Scored(**lines[-1]["result"])
    assert Path(result.wav).is_file() and result.rate == RATE
    assert result.duration == pytest.approx(LENGTH / RATE) and result.cuts == 3

    bad = dict(request, options=dict(request["options"], valence=7.0))  # ScoreOptions refuses it
    out = io.StringIO()
    assert worker.worker_main(io.StringIO(json.dumps(bad)), out) == 2
    assert "valence" in json.loads(out.getvalue().splitlines()[-1])["error"]


def test_worker_checks_scene_moods():
    """``{"command": "check"}``: the scene moods split and checked by emsync, or the dialog's message."""
    out = io.StringIO()
    assert worker.worker_main(io.StringIO(json.dumps({"command": "check", "emotion": "3 = tense; 1=0.2, 0.7"})), out) == 0
    assert json.loads(out.getvalue())["result"] == ["1=0.2, 0.7", "3=tense"]
    out = io.StringIO()
    assert worker.worker_main(io.StringIO(json.dumps({"command": "check", "emotion": ["2=sad, 4=hapy"]})), out) == 2
    reply = json.loads(out.getvalue())
    assert reply["type"] == "OptionsError" and "--emotion 4=hapy" in reply["error"]  # what older launchers read
    assert reply["message"].startswith('Scene moods: 4=hapy: unknown mood "hapy" (did you mean "happy"?). Write N=MOOD')


def test_installed_launcher_starts_in_a_python_that_cannot_import_emsync(tmp_path):
    """Resolve's Python of another version: the package is loaded from where it was installed, without
    emsync's compiled packages on sys.path, and the worker checks the scene moods."""
    import subprocess

    path, _ = installer.install(tmp_path / "Utility")
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("EMSYNC_PYTHON_VERSION = (", "EMSYNC_PYTHON_VERSION = (2, 7) or ("), encoding="utf-8")
    runner = tmp_path / "runner.py"
    runner.write_text(
        "import runpy, sys\n"
        f"ns = runpy.run_path({str(path)!r}, run_name='__main__')\n"
        "from resolve_bridge import worker\n"
        "env = ns['environment']()\n"
        "print(env.in_process(), any(m.startswith('emsync_plugin') for m in sys.modules))\n"
        "print(worker.check_emotion('3 = tense; 1=0.2, 0.7', env))\n"
        "try:\n"
        "    worker.check_emotion('3=hapy', env)\n"
        "except worker.BridgeError as exc:\n"
        "    print(exc)\n",
        encoding="utf-8",
    )
    done = subprocess.run([sys.executable, "-I", "-S", str(runner)], capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert lines[0].startswith("EMSYNC: error: DaVinci Resolve is not reachable")  # no Resolve here; the script ran
    assert lines[1:3] == ["False False", "('1=0.2, 0.7', '3=tense')"]
    assert lines[3].startswith('Scene moods: 3=hapy: unknown mood "hapy"')


def test_bad_options_from_the_dialog_are_shown(resolve, fake_score):
    ui = RecordingUI(answer=BridgeOptions(engine="nope"))
    assert script.main(resolve, ui) == 2
    assert len(ui.errors) == 1 and "engine" in ui.errors[0]
    assert _score_tracks(_timeline(resolve)) == []


def test_real_pipeline_scores_the_fake_timeline(resolve):
    """End to end with the real core (no fake score): the rendered WAV lands on the track."""
    timeline = _timeline(resolve)
    ui = RecordingUI()
    assert script.main(resolve, ui, BridgeOptions(seed=1, valence=0.3, arousal=0.0)) == 0, ui.errors  # the fake clips' media do not exist
    (item,) = timeline.GetItemListInTrack("audio", 2)
    assert item.GetStart() == START and item.GetDuration() == LENGTH
    wav = Path(item.GetMediaPoolItem().GetClipProperty("File Path"))
    with wave.open(str(wav)) as w:
        assert w.getnframes() / w.getframerate() == pytest.approx(LENGTH / RATE, abs=1 / RATE)
    stored = json.loads(item.GetMediaPoolItem().GetThirdPartyMetadata("emsync"))
    assert stored["cuts"] == 3 and Path(stored["midi"]).is_file()


def _actions(ui) -> dict[int, str]:
    return {row["index"]: row["action"] for row in ui.music}


def test_a_rescore_keeps_the_music_of_unchanged_scenes(resolve):
    """The real core twice on the same timeline: the second run keeps every scene's music, says so
    on the Console, and a fresh score writes new music for all of them."""
    options = BridgeOptions(seed=1, valence=0.3, arousal=0.0)
    first = RecordingUI()
    assert script.main(resolve, first, options) == 0, first.errors
    assert set(_actions(first).values()) == {"new"}
    first_sidecar = json.loads(_timeline(resolve).GetMediaPoolItem().GetThirdPartyMetadata("emsync"))["sidecar"]

    again = RecordingUI()
    assert script.main(resolve, again, options) == 0, again.errors
    assert _actions(again) == {1: "kept", 2: "kept", 3: "kept", 4: "kept"}  # 3 cuts, 4 scenes
    console = again.stream.getvalue()
    assert "EMSYNC: music kept: scenes 1, 2, 3, 4" in console
    assert any(f"keep the music of {first_sidecar}" in line for line in again.infos)
    stored = json.loads(_timeline(resolve).GetMediaPoolItem().GetThirdPartyMetadata("emsync"))
    assert stored["sidecar"] != first_sidecar and Path(stored["sidecar"]).is_file()  # the next run's previous

    asked = RecordingUI()
    assert script.main(resolve, asked, BridgeOptions(seed=1, valence=0.3, arousal=0.0, regenerate=(2,))) == 0, asked.errors
    assert _actions(asked) == {1: "kept", 2: "regenerated", 3: "kept", 4: "kept"}
    assert "EMSYNC: music regenerated: scene 2 (you asked)" in asked.stream.getvalue()

    fresh = RecordingUI()
    assert script.main(resolve, fresh, BridgeOptions(seed=1, valence=0.3, arousal=0.0, fresh=True)) == 0, fresh.errors
    assert set(_actions(fresh).values()) == {"new"}
    assert "EMSYNC: music new music: scenes 1, 2, 3, 4" in fresh.stream.getvalue()
    assert not any("keep the music of" in line for line in fresh.infos)


def test_the_last_runs_settings_file_is_found_without_the_score_clip(resolve, fake_score):
    """The timeline's stored settings name the last sidecar; without them, the newest kept run has it."""
    from resolve_bridge.resolve import previous_sidecar

    project = resolve.GetProjectManager().GetCurrentProject()
    timeline = _timeline(resolve)
    assert previous_sidecar(project, timeline, None) is None  # a first score
    assert script.main(resolve, RecordingUI(), BridgeOptions(seed=1)) == 0
    (exported, options), = fake_score.calls
    assert options.previous is None and not options.fresh
    stored = json.loads(timeline.GetMediaPoolItem().GetThirdPartyMetadata("emsync"))
    assert previous_sidecar(project, timeline, stored) == Path(stored["sidecar"])
    assert previous_sidecar(project, timeline, None) == Path(stored["sidecar"])  # from the run folders

    assert script.main(resolve, RecordingUI(), BridgeOptions(seed=1, regenerate=(2,), lock=(3,))) == 0
    assert fake_score.calls[-1][1].previous == Path(stored["sidecar"])
    assert (fake_score.calls[-1][1].regenerate, fake_score.calls[-1][1].lock) == ((2,), (3,))
    ui = RecordingUI()
    assert script.main(resolve, ui) == 0  # what to do with the last score is not reused
    assert (ui.asked.regenerate, ui.asked.lock, ui.asked.fresh) == ((), (), False)
    assert script.main(resolve, RecordingUI(), BridgeOptions(seed=1, fresh=True)) == 0
    assert fake_score.calls[-1][1].previous is None and fake_score.calls[-1][1].fresh


def test_rescore_errors_are_said_in_the_dialogs_words(resolve):
    ui = RecordingUI()
    assert script.main(resolve, ui, BridgeOptions(seed=1, valence=0.3, arousal=0.0, fresh=True, lock=(2,))) == 2
    assert ui.errors == ["Fresh score ignores the previous score. Clear Lock scenes, or untick Fresh score."]
    ui = RecordingUI()
    assert script.main(resolve, ui, BridgeOptions(seed=1, valence=0.3, arousal=0.0, lock=(2,))) == 2
    assert "Lock scenes 2: there is no previous score to keep" in ui.errors[0] and "--" not in ui.errors[0]
    assert _score_tracks(_timeline(resolve)) == []
    with pytest.raises(BridgeError, match="Lock: 'x' is not a scene number"):
        BridgeOptions(lock="2, x")
    assert BridgeOptions(regenerate="5 3,3").regenerate == (3, 5)


def test_a_different_resolve_python_scores_in_a_subprocess(resolve, monkeypatch):
    """Resolve's Python cannot load emsync's compiled packages: the recorded interpreter scores."""
    repo = str(Path(script.__file__).resolve().parents[1])
    monkeypatch.setattr(script, "EMSYNC_PYTHON", sys.executable)
    monkeypatch.setattr(script, "EMSYNC_PYTHON_VERSION", (2, 7))  # not this interpreter
    monkeypatch.setattr(script, "EMSYNC_PATHS", [repo])
    assert not script.environment().in_process()
    ui = RecordingUI()

    assert script.main(resolve, ui, BridgeOptions(seed=4, valence=0.3, arousal=0.0)) == 0, ui.errors  # the fake clips' media do not exist

    (item,) = _timeline(resolve).GetItemListInTrack("audio", 2)
    assert item.GetStart() == START and item.GetDuration() == LENGTH
    assert ui.stages and ui.stages[-1][1] == 1.0  # progress came through the pipe
    ui = RecordingUI()  # the last run's settings file and Regenerate go through the pipe too
    assert script.main(resolve, ui, BridgeOptions(seed=4, valence=0.3, arousal=0.0, regenerate=(1,))) == 0, ui.errors
    assert _actions(ui) == {1: "regenerated", 2: "kept", 3: "kept", 4: "kept"}

    monkeypatch.setattr(script, "EMSYNC_PYTHON", str(Path(repo) / "no-such-python"))
    ui = RecordingUI()
    assert script.main(resolve, ui) == 2
    assert "emsync is not importable from Resolve's Python" in ui.errors[0]


# ---------------------------------------------------------------------------------------------
# scene moods: shown, overridden, stored


def test_scene_moods_flow_into_score_options_and_are_reused(resolve, fake_score):
    timeline = _timeline(resolve)
    ui = RecordingUI(answer=BridgeOptions(seed=5, emotion="3 = tense; 1=0.2, 0.7"))  # the dialog's text

    assert script.main(resolve, ui) == 0, ui.errors

    (_, options), = fake_score.calls
    assert options.emotion == ("1=0.2, 0.7", "3=tense")  # by scene number, as the core's parser reads them
    stored = json.loads(timeline.GetMediaPoolItem().GetThirdPartyMetadata("emsync"))
    assert stored["emotion"] == ["1=0.2, 0.7", "3=tense"] and stored["seed"] == 5
    console = ui.stream.getvalue()
    assert "scene moods (4 scenes" in console
    lines = [line for line in console.splitlines() if line.startswith("EMSYNC:   ")]
    assert lines[1].split()[1:] == ["1", "01:00:00:00", "01:00:02:00", "+0.50", "+0.20", "you"]
    assert lines[2].split()[1:] == ["2", "01:00:02:00", "01:00:04:04", "+0.10", "+0.20", "cues"]

    rerun = RecordingUI()  # no dialog: the previous run's scene moods are the defaults
    assert script.main(resolve, rerun) == 0
    assert rerun.asked.emotion == ("1=0.2, 0.7", "3=tense")
    assert fake_score.calls[1][1].emotion == ("1=0.2, 0.7", "3=tense")
    console = ConsoleUI(stream=io.StringIO())  # Resolve without the UIManager: the Console says what it reuses
    assert script.main(resolve, console) == 0
    assert "scene moods: 1=0.2, 0.7, 3=tense (previous run's" in console.stream.getvalue()
    assert fake_score.calls[2][1].emotion == ("1=0.2, 0.7", "3=tense")


@pytest.mark.parametrize("text, shown", [
    ("3=hapy", 'Scene moods: 3=hapy: unknown mood "hapy" (did you mean "happy"?). Write N=MOOD or N=V,A'),
    ("3=1.5,0", "Scene moods: 3=1.5,0: valence 1.5 is out of range (-1 to 1). Write N=MOOD or N=V,A"),
    ("x=tense", 'Scene moods: x=tense: "x" is not a scene number. Write N=MOOD or N=V,A'),
    ("3tense", "Scene moods: 3tense: expected N=MOOD or N=V,A. Write N=MOOD or N=V,A"),
    ("2=sad, 2=happy", "Scene moods: 2=sad and 2=happy set scene 2 twice. Keep one of them"),
])
def test_a_bad_scene_mood_is_shown_and_nothing_changes(resolve, fake_score, text, shown):
    timeline = _timeline(resolve)
    before = timeline.snapshot()
    ui = RecordingUI(answer=BridgeOptions(emotion=text))

    assert script.main(resolve, ui) == 2

    (message,) = ui.errors
    assert message.startswith(shown) and "\n" not in message
    assert fake_score.calls == [] and timeline.snapshot() == before
    assert timeline.GetMediaPoolItem().GetThirdPartyMetadata("emsync") == ""  # nothing stored either
    assert not (Path(data_dir()).exists() and any(Path(data_dir()).rglob("*.otio")))  # nor exported


def test_a_scene_number_beyond_the_timeline_is_explained_in_resolves_terms(resolve):
    """The real core checks scene numbers against the timeline; the message speaks of the dialog."""
    timeline = _timeline(resolve)
    before = timeline.snapshot()
    ui = RecordingUI()
    assert script.main(resolve, ui, BridgeOptions(valence=0.1, arousal=0.1, emotion=("9=sad",))) == 2
    assert ui.errors == ["Scene moods: 9=sad: there is no scene 9; the timeline Edit v3.otio has 4 scenes. "
                         "Use the scene numbers Analyze scenes shows in the EMSYNC Score dialog."]
    assert timeline.snapshot() == before


def test_the_dialog_analyzes_the_scenes_before_scoring(resolve, fake_score):
    """``analyze`` (what the dialog's button calls) runs the real core on the run's export."""
    asked = []

    def dialog(defaults, analyze):
        with pytest.raises(BridgeError) as missing:  # the fake clips' media do not exist
            analyze(defaults)
        asked.append(str(missing.value))
        chosen = BridgeOptions(emotion=core.checked_emotion("1=calm, 2=0.2,0.7, 3=tense, 4=happy"))
        asked.append(analyze(chosen))
        return chosen

    ui = RecordingUI(answer=dialog)
    assert script.main(resolve, ui) == 0, ui.errors

    message, rows = asked
    assert "a.mov: media file is missing (scene 1 of Edit v3.otio uses it)" in message
    assert message.endswith(MEDIA_ADVICE) and "--emotion" not in message
    assert [(r["index"], r["record_in"], r["record_out"], r["source"]) for r in rows] == [
        (1, "01:00:00:00", "01:00:02:00", "cli"), (2, "01:00:02:00", "01:00:04:04", "cli"),
        (3, "01:00:04:04", "01:00:05:00", "cli"), (4, "01:00:05:00", "01:00:05:20", "cli")]
    assert (rows[1]["valence"], rows[1]["arousal"]) == (0.2, 0.7)
    table = format_moods(rows, ("1=calm", "2=0.2,0.7", "3=tense", "4=happy")).splitlines()
    assert table[2].split() == ["2", "01:00:02:00", "01:00:04:04", "+0.20", "+0.70", "you"]
    (exported, options), = fake_score.calls
    assert options.emotion == ("1=calm", "2=0.2,0.7", "3=tense", "4=happy")
    assert len(list(exported.parent.glob("*.otio"))) == 1  # one export serves the analysis and the score


def test_cancelling_after_an_analysis_leaves_no_run_folder(resolve, fake_score):
    def dialog(defaults, analyze):
        analyze(BridgeOptions(valence=0.0, arousal=0.0))  # then the editor cancels

    class Cancel(RecordingUI):
        def ask_options(self, defaults, engines, analyze=None, check=None):
            return dialog(defaults, analyze)

    timeline = _timeline(resolve)
    before = timeline.snapshot()
    assert script.main(resolve, Cancel()) == 0
    assert fake_score.calls == [] and timeline.snapshot() == before
    assert not any(Path(data_dir()).rglob("*.otio"))


def test_scene_moods_text():
    assert split_emotion("3=tense, 5=0.2,0.7;1 = v=0.1 a=0.2\n2=sad") == (
        "3=tense", "5=0.2,0.7", "1 = v=0.1 a=0.2", "2=sad")
    assert core.checked_emotion("3 = tense; 1=0.2, 0.7, 3=suspense") == ("1=0.2, 0.7", "3=tense")
    assert core.checked_emotion("") == () and format_emotion(("1=sad", "4=0.1,0.2")) == "1=sad, 4=0.1,0.2"
    assert BridgeOptions(emotion="2=sad 1=happy").emotion == ("2=sad", "1=happy")
    stored = {"emotion": ["3=tense"], "seed": 2}
    assert BridgeOptions.from_settings(stored) == BridgeOptions(seed=2, emotion=("3=tense",))
    assert BridgeOptions.from_settings({"emotion": [3, None]}).emotion == ()  # bad stored values: dropped


def test_worker_analyzes_in_a_subprocess(resolve, tmp_path, monkeypatch):
    repo = str(Path(script.__file__).resolve().parents[1])
    monkeypatch.setattr(script, "EMSYNC_PYTHON", sys.executable)
    monkeypatch.setattr(script, "EMSYNC_PYTHON_VERSION", (2, 7))  # not this interpreter
    monkeypatch.setattr(script, "EMSYNC_PATHS", [repo])
    exported = export_timeline(resolve, _timeline(resolve), tmp_path / "export")
    stages = []

    env = script.environment()
    rows = worker.analyze_scenes(exported, BridgeOptions(emotion=("2=sad",), valence=0.3, arousal=0.1),
                                 lambda s, f: stages.append((s, f)), env)

    assert [(r["index"], r["source"]) for r in rows] == [(1, "cli"), (2, "cli"), (3, "cli"), (4, "cli")]
    from emsync_plugin.emotion.overrides import MOODS

    assert (rows[1]["valence"], rows[1]["arousal"]) == pytest.approx(MOODS["sad"])
    assert (rows[0]["valence"], rows[0]["arousal"]) == (0.3, 0.1)  # the whole-timeline values
    assert stages[0] == ("reading cuts", 0.0) and stages[-1] == ("analysed", 1.0)
    with pytest.raises(BridgeError, match=r"media file is missing .*Relink the media in Resolve"):
        worker.analyze_scenes(exported, BridgeOptions(), lambda s, f: None, env)


# ---------------------------------------------------------------------------------------------
# the UIManager dialog, against a small fake of Fusion's UIManager (not modelled by fake_resolve)


def _fusion_ui(users):
    fusion, bmd, disp = fake_fusion(users)
    return FusionUI(fusion, bmd, stream=io.StringIO()), disp


def _close(seen=None, key="done"):
    def user(win, disp):
        if seen is not None:
            seen[key] = win.GetItems()["Status"].Text
        win.click("Cancel")  # now labelled Close
    return user


def test_the_dialog_shows_scene_moods_and_takes_overrides(resolve, fake_score):
    seen = {}

    def user(win, disp):
        items = win.GetItems()
        assert items["SceneMoods"].Text == ""  # first run: no scene moods yet
        items["SceneMoods"].Text = "2=hapy"
        win.click("Analyze")  # a typo: said in the dialog, nothing analysed
        seen["typo"] = items["Status"].Text
        items["SceneMoods"].Text = "1=calm, 2=0.2,0.7, 3=tense, 4=happy"
        win.click("Analyze")  # runs as a job: the timer brings its result while the window stays usable
        assert not items["Analyze"].Enabled and disp.running
        disp.pump(lambda: items["Analyze"].Enabled)
        seen["moods"] = items["Moods"].Text
        items["SceneMoods"].Text = "2=0.2;0.7;3"
        win.click("Generate")  # refused: the dialog stays open
        seen["bad"] = items["Status"].Text
        assert disp.running
        items["SceneMoods"].Text = "1=calm, 2=0.2,0.7, 3=tense, 4=happy"
        items["Seed"].Value = 11
        win.click("Generate")
        assert not disp.running

    ui, _ = _fusion_ui({"EmsyncWin": [user, None, _close(seen)]})
    assert script.main(resolve, ui) == 0

    assert "score placed on A2" in seen["done"]
    assert seen["typo"].startswith('Scene moods: 2=hapy: unknown mood "hapy" (did you mean "happy"?)')
    lines = seen["moods"].splitlines()
    assert lines[0].split()[:4] == ["#", "record", "in", "record"]
    assert lines[2].split() == ["2", "01:00:02:00", "01:00:04:04", "+0.20", "+0.70", "you"]
    assert seen["bad"].startswith("Scene moods:")
    (_, options), = fake_score.calls
    assert options.emotion == ("1=calm", "2=0.2,0.7", "3=tense", "4=happy") and options.seed == 11

    def rerun_user(win, disp):  # the stored scene moods fill the field
        seen["again"] = win.GetItems()["SceneMoods"].Text
        win.click("Cancel")

    ui, _ = _fusion_ui({"EmsyncWin": rerun_user})
    assert script.main(resolve, ui) == 0
    assert seen["again"] == "1=calm, 2=0.2,0.7, 3=tense, 4=happy"
    assert len(fake_score.calls) == 1  # cancelled


def test_the_dialog_offers_the_style_and_the_next_run_keeps_it(resolve, fake_score):
    from emsync_plugin.music import styles
    from resolve_bridge import options as bridge_options

    assert (tuple(styles.STYLES), styles.DEFAULT_STYLE) == (bridge_options.STYLE_NAMES, bridge_options.DEFAULT_STYLE)
    seen = {}

    def user(win, disp):
        combo = win.GetItems()["Style"]
        seen["first"] = combo.CurrentText
        seen["offered"] = []
        for k in range(len(styles.STYLES)):
            combo.CurrentIndex = k
            seen["offered"].append(combo.CurrentText)
        combo.CurrentIndex = list(styles.STYLES).index("ambient")
        win.click("Generate")

    ui, _ = _fusion_ui({"EmsyncWin": [user, None, _close()]})
    assert script.main(resolve, ui) == 0
    assert seen["first"] == styles.DEFAULT_STYLE and seen["offered"] == list(styles.STYLES)
    (_, options), = fake_score.calls
    assert options.style == "ambient"

    def again(win, disp):  # the stored style is chosen
        seen["again"] = win.GetItems()["Style"].CurrentText
        win.click("Cancel")

    ui, _ = _fusion_ui({"EmsyncWin": again})
    assert script.main(resolve, ui) == 0
    assert seen["again"] == "ambient"
    assert BridgeOptions.from_settings({"style": "polka"}).style == styles.DEFAULT_STYLE  # not a style: the default


def test_the_dialog_asks_what_to_regenerate_and_lock_and_shows_the_music(resolve, fake_score):
    seen = {}

    def user(win, disp):
        items = win.GetItems()
        assert (items["Regenerate"].Text, items["Lock"].Text, items["Fresh"].Checked) == ("", "", False)
        items["Regenerate"].Text = "2, x"
        win.click("Generate")  # refused: the dialog stays open
        seen["bad"] = items["Status"].Text
        items["Regenerate"].Text = "3,2"
        items["Lock"].Text = "1"
        items["Fresh"].Checked = True
        win.click("Generate")  # Fresh score and Lock scenes contradict each other
        seen["both"] = items["Status"].Text
        items["Fresh"].Checked = False
        win.click("Generate")

    ui, _ = _fusion_ui({"EmsyncWin": [user, None, _close(seen)]})
    assert script.main(resolve, ui) == 0
    assert seen["bad"].startswith("Regenerate scenes: 'x' is not a scene number")
    assert seen["both"].startswith("Fresh score gives every scene new music, so no scene can be locked")
    (_, options), = fake_score.calls
    assert (options.regenerate, options.lock, options.fresh) == ((2, 3), (1,), False)
    assert "A2 'EMSYNC Score'" in seen["done"] and "Music of each scene:" in seen["done"]


# ---------------------------------------------------------------------------------------------
# the installer


def _install_block(path: Path) -> dict:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    wanted = {"EMSYNC_PYTHON", "EMSYNC_PYTHON_VERSION", "EMSYNC_PATHS"}
    return {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name) and t.id in wanted}


def test_installer_writes_and_removes_the_script(tmp_path):
    dest = tmp_path / "Fusion" / "Scripts" / "Utility"

    path, changed = installer.install(dest)

    assert changed and path == dest / "EMSYNC Score.py" and path.is_file()
    block = _install_block(path)
    assert block["EMSYNC_PYTHON"] == sys.executable
    assert block["EMSYNC_PYTHON_VERSION"] == tuple(sys.version_info[:2])
    assert any((Path(p) / "emsync_plugin").is_dir() for p in block["EMSYNC_PATHS"])
    compile(path.read_text(encoding="utf-8"), str(path), "exec")
    assert list(dest.iterdir()) == [path]  # no temporary files left

    stamp = path.stat().st_mtime_ns
    assert installer.install(dest) == (path, False)  # idempotent
    assert path.stat().st_mtime_ns == stamp

    assert installer.uninstall(dest) == (path, True)
    assert not path.exists()
    assert installer.uninstall(dest) == (path, False)


def test_installer_refuses_to_remove_a_foreign_file(tmp_path):
    (tmp_path / "EMSYNC Score.py").write_text("print('mine')\n")
    with pytest.raises(installer.InstallError, match="not written by the emsync installer"):
        installer.uninstall(tmp_path)
    assert (tmp_path / "EMSYNC Score.py").exists()


def test_installer_command_line(tmp_path, capsys):
    assert installer.main(["--dest", str(tmp_path)]) == 0
    assert "installed" in capsys.readouterr().out
    assert installer.main(["--dest", str(tmp_path)]) == 0
    assert "already up to date" in capsys.readouterr().out
    assert installer.main(["--dest", str(tmp_path), "--uninstall"]) == 0
    assert not (tmp_path / "EMSYNC Score.py").exists()


def test_default_destinations_follow_resolves_readme(tmp_path):
    home = Path("/home/ed")
    assert installer.default_dest("linux", {}, home) == home / ".local/share/DaVinciResolve/Fusion/Scripts/Utility"
    assert installer.default_dest("darwin", {}, home) == (
        home / "Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Utility")
    appdata = Path("C:/Users/ed/AppData/Roaming")
    assert installer.default_dest("win32", {"APPDATA": str(appdata)}, home) == (
        appdata / "Blackmagic Design" / "DaVinci Resolve" / "Support" / "Fusion" / "Scripts" / "Utility")


def test_installed_copy_runs_as_resolve_runs_it(tmp_path, resolve, fake_score, capsys):
    """Resolve executes the file as a script with ``resolve`` injected into its globals."""
    path, _ = installer.install(tmp_path / "Utility")
    runpy.run_path(str(path), init_globals={"resolve": resolve}, run_name="__main__")
    out = capsys.readouterr().out
    assert "EMSYNC: score placed on A2 'EMSYNC Score'" in out
    assert _score_tracks(_timeline(resolve)) == [2]


# ---------------------------------------------------------------------------------------------
# issue 13: the dialog while it works, the clip's length, the timeline's marks


def test_the_fake_uimanager_rejects_what_resolve_does_not_have():
    fusion, bmd, disp = fake_fusion({})
    ui = fusion.UIManager
    ui.Label({"ID": "ok", "Text": "fine", "WordWrap": True, "Weight": 0})
    with pytest.raises(AttributeError, match="Label has no attribute 'WordWrapp'"):
        ui.Label({"Text": "typo", "WordWrapp": True})
    with pytest.raises(AttributeError, match="no element 'ProgressBar'"):
        ui.ProgressBar({"Value": 3})
    with pytest.raises(AttributeError, match="TextEdit has no attribute 'PlainText'"):
        ui.TextEdit({"PlainText": "not in the README"})
    win = disp.AddWindow({"ID": "W"}, ui.VGroup([ui.Button({"ID": "B", "Text": "b"})]))
    with pytest.raises(AttributeError, match="no event 'Clickd'"):
        win.On.B.Clickd = print


def test_a_second_click_raises_the_open_window(resolve, fake_score):
    fusion, bmd, disp = fake_fusion({})
    win = disp.AddWindow({"ID": "EmsyncWin"}, fusion.UIManager.VGroup([]))
    win.Show()
    ui = FusionUI(fusion, bmd, stream=io.StringIO())
    assert script.main(resolve, ui) == 0
    assert getattr(win, "raised", False) and fake_score.calls == []
    assert len(fusion.UIManager.windows) == 1  # no second window


def test_cancel_while_scoring_stops_the_job_and_leaves_the_timeline(resolve, monkeypatch):
    import threading

    from emsync_plugin import pipeline

    release = threading.Event()

    def slow(path, options=None, progress=None):
        progress("reading cuts", 0.0)
        release.wait(10)
        raise RuntimeError("not reached in the test")

    monkeypatch.setattr(pipeline, "score", slow)
    timeline = _timeline(resolve)
    before = timeline.snapshot()
    seen = {}

    def generate(win, disp):
        win.click("Generate")

    def while_working(win, disp):
        items = win.GetItems()
        disp.pump(lambda: items["Status"].Text.startswith("reading cuts"))
        seen["busy"] = (items["Generate"].Enabled, items["Cancel"].Enabled)
        win.click("Cancel")

    ui, _ = _fusion_ui({"EmsyncWin": [generate, while_working]})
    try:
        assert script.main(resolve, ui) == 0
    finally:
        release.set()
    assert seen["busy"] == (False, True)
    assert "cancelled; nothing changed" in ui.stream.getvalue()
    assert timeline.snapshot() == before
    assert not any(Path(data_dir()).rglob("*.otio"))


def test_cancel_kills_the_worker_process(resolve, tmp_path, monkeypatch):
    repo = str(Path(script.__file__).resolve().parents[1])
    env = worker.Environment(sys.executable, (2, 7), (repo,))
    exported = export_timeline(resolve, _timeline(resolve), tmp_path / "export")
    job = worker.start(env, worker.score_request(exported, BridgeOptions(valence=0.1, arousal=0.1)))
    assert job.proc is not None
    job.cancel()
    assert job.proc.wait(30) != 0
    with pytest.raises(worker.Cancelled):
        job.result()


def test_an_error_is_shown_in_the_dialog(resolve, monkeypatch):
    from emsync_plugin import pipeline

    monkeypatch.setattr(pipeline, "score", FakeScore(TimelineError("has no video track", path="x.otio")))
    seen = {}
    ui, _ = _fusion_ui({"EmsyncWin": [lambda win, disp: win.click("Generate"), None, _close(seen)]})
    assert script.main(resolve, ui) == 2
    assert seen["done"].startswith("Error: ") and "has no video track" in seen["done"]


@pytest.mark.parametrize("inclusive", [True, False])
def test_the_clip_length_is_checked_and_a_frame_corrected(tmp_path, monkeypatch, fake_score, inclusive):
    monkeypatch.setenv(WORKDIR_ENV, str(tmp_path / "runs"))
    project = FakeProject("P", rate=RATE)
    timeline = project.add_timeline(FakeTimeline("T", rate=RATE, start_frame=START, end_frame_inclusive=inclusive))
    (tmp_path / "m").mkdir()
    timeline.add_clip(tmp_path / "m" / "a.mov", START, LENGTH)
    assert script.main(FakeResolve(project), RecordingUI()) == 0
    (item,) = timeline.GetItemListInTrack("audio", 2)
    assert (item.GetStart(), item.GetDuration()) == (START, LENGTH)


def test_the_timelines_marks_choose_the_range_and_the_placement(tmp_path, monkeypatch, fake_score):
    monkeypatch.setenv(WORKDIR_ENV, str(tmp_path / "runs"))
    rate, start = 29.97, 107892  # 01:00:00;00 drop-frame
    project = FakeProject("P", rate=rate)
    timeline = project.add_timeline(FakeTimeline("T", rate=rate, start_frame=start, drop_frame=True,
                                                 marks={"video": {"in": 30, "out": 89}, "audio": {"in": 30, "out": 89}}))
    (tmp_path / "m").mkdir()
    timeline.add_clip(tmp_path / "m" / "a.mov", start, 150)
    ui = RecordingUI()
    assert script.main(FakeResolve(project), ui) == 0, ui.errors
    (_, options), = fake_score.calls
    assert options.range_in == pytest.approx(30 / rate) and options.range_out == pytest.approx(90 / rate)
    assert any(line.startswith("Range: the timeline's marks, 01:00:01;00 to 01:00:03;00 (60 frames)")
               for line in ui.stream.getvalue().replace("EMSYNC: ", "").splitlines())
    (item,) = timeline.GetItemListInTrack("audio", 2)
    assert item.GetStart() == start + 30  # at the mark in


def test_installer_finds_the_app_store_build_and_says_when_resolve_is_missing(tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    assert installer.app_store_dests(home) == []
    container = home / "Library/Containers/com.blackmagic-design.DaVinciResolveAppStore"
    container.mkdir(parents=True)
    assert installer.app_store_dests(home) == [
        container / "Data/Library/Application Support/Fusion/Scripts/Utility"]
    assert installer.resolve_installed("darwin", {}, home)
    assert not installer.resolve_installed("linux", {}, tmp_path / "nobody")
    monkeypatch.setattr(installer, "default_dest", lambda *a, **k: tmp_path / "nobody/.local/share/DaVinciResolve/Fusion/Scripts/Utility")
    monkeypatch.setattr(installer, "resolve_installed", lambda *a, **k: False)
    assert installer.main([]) == 0
    out = capsys.readouterr().out
    assert "No DaVinci Resolve installation was found" in out and str(tmp_path / "nobody") in out
