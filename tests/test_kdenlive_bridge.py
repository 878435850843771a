"""The Kdenlive companion panel, offscreen with pytest-qt."""
from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before PySide6 is imported

import opentimelineio as otio  # noqa: E402
import pytest  # noqa: E402

try:
    from PySide6.QtCore import Qt  # noqa: E402
    from PySide6.QtWidgets import QApplication  # noqa: E402,F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"PySide6 is not importable ({exc}); install it with: pip install pyside6 pytest-qt",
                allow_module_level=True)
if importlib.util.find_spec("pytestqt") is None:  # pragma: no cover
    pytest.skip("pytest-qt is not installed; install it with: pip install pytest-qt", allow_module_level=True)

from emsync_plugin import pipeline  # noqa: E402
from emsync_plugin.errors import TimelineError  # noqa: E402
from emsync_plugin.mood import SceneMood  # noqa: E402
from emsync_plugin.timeline import read_cuts  # noqa: E402
from kdenlive_bridge import panel as panel_mod  # noqa: E402

RATE = 25


def _rt(frames):
    return otio.opentime.RationalTime(frames, RATE)


def _clip(name, frames, start=0):
    ref = otio.schema.ExternalReference(target_url=f"/media/{name}",
                                        available_range=otio.opentime.TimeRange(_rt(0), _rt(10_000)))
    return otio.schema.Clip(name=name, media_reference=ref,
                            source_range=otio.opentime.TimeRange(_rt(start), _rt(frames)))


@pytest.fixture
def project(tmp_path) -> Path:
    """A timeline with three shots (two cuts) the core can read."""
    tl = otio.schema.Timeline(name="Holiday")
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for name, frames in (("beach.mp4", 50), ("boat.mp4", 75), ("sunset.mp4", 100)):
        track.append(_clip(name, frames))
    tl.tracks.append(track)
    path = tmp_path / "holiday.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


class FastScore:
    """Stands in for ``pipeline.score``: reports progress, writes tiny files, remembers its thread."""

    def __init__(self, error=None):
        self.calls = []
        self.error = error
        self.thread = None

    def __call__(self, path, options=pipeline.ScoreOptions(), progress=None):
        self.thread = threading.get_ident()
        self.calls.append((Path(path), options))
        for stage, fraction in (("reading cuts", 0.0), ("generating music", 0.3), ("rendering audio", 0.5)):
            progress(stage, fraction)
        if self.error is not None:
            raise self.error
        timeline = read_cuts(path)
        out = Path(path).with_name(Path(path).stem + ".emsync" + Path(path).suffix)
        wav, midi, sidecar = (out.with_suffix(s) for s in (".wav", ".mid", ".json"))
        for f in (out, wav, midi, sidecar):
            f.write_bytes(b"x")
        progress("done", 1.0)
        return pipeline.ScoreResult(timeline, out if options.write_timeline else None, wav, midi, sidecar, -16.0)


@pytest.fixture
def panel(qtbot):
    widget = panel_mod.EmsyncPanel()
    qtbot.addWidget(widget)
    widget.show()
    return widget


def _load(qtbot, panel, path):
    with qtbot.waitSignal(panel.loaded, timeout=10_000):
        panel.load(path)


def test_loading_a_project_lists_its_scenes(qtbot, panel, project):
    _load(qtbot, panel, project)

    expected = read_cuts(project)
    assert panel.table.rowCount() == len(expected.scenes) == 3
    assert [panel.table.item(r, 0).text() for r in range(3)] == ["1", "2", "3"]
    assert panel.table.item(1, 1).text() == "00:00:02:00"  # the first cut, at frame 50 of 25 fps
    assert panel.table.item(2, 4).text() == "sunset.mp4"
    assert "3 scenes, 2 cuts" in panel.summary_label.text()
    assert panel.generate_button.isEnabled()


def test_generate_runs_in_a_worker_and_shows_the_result(qtbot, panel, project, monkeypatch):
    fake = FastScore()
    monkeypatch.setattr(pipeline, "score", fake)
    _load(qtbot, panel, project)
    panel.valence_check.setChecked(True)
    panel.valence_slider.setValue(-40)
    panel.seed_spin.setValue(9)
    seen = []
    panel.progress_bar.valueChanged.connect(seen.append)

    assert not panel.add_button.isEnabled()  # nothing generated yet
    with qtbot.waitSignal(panel.previewed, timeout=10_000) as blocker:
        qtbot.mouseClick(panel.generate_button, Qt.LeftButton)
        assert panel.busy and not panel.generate_button.isEnabled()  # returned at once, work goes on

    heard = blocker.args[0]
    (path, options), = fake.calls
    assert path == project
    assert (options.valence, options.arousal, options.seed, options.write_timeline) == (-0.4, None, 9, False)
    assert fake.thread is not None and fake.thread != threading.get_ident()
    assert heard.output is None and "Add to project" in panel.result_label.text()
    assert seen and seen[-1] == panel.progress_bar.maximum() and 500 in seen
    assert not panel.busy and panel.add_button.isEnabled() and not panel.open_button.isEnabled()

    panel.seed_spin.setValue(10)  # changed after listening: what is added is still what was heard
    with qtbot.waitSignal(panel.scored, timeout=10_000) as blocker:
        qtbot.mouseClick(panel.add_button, Qt.LeftButton)
    result = blocker.args[0]
    (_, added) = fake.calls[-1]
    assert (added.write_timeline, added.previous, added.seed, added.valence) == (True, heard.sidecar, 9, -0.4)
    assert __import__("dataclasses").replace(added, write_timeline=False, previous=None, take=None) == options
    assert str(result.output) in panel.result_label.text()
    assert result.output == project.with_name("holiday.emsync.otio")
    assert not panel.busy and panel.generate_button.isEnabled() and panel.open_button.isEnabled()
    assert not panel.add_button.isEnabled()  # added once; generate again to add again

    opened = []
    monkeypatch.setattr(panel_mod, "open_in_kdenlive", lambda p: opened.append(p) or True)
    qtbot.mouseClick(panel.open_button, Qt.LeftButton)
    assert opened == [result.output]


def test_the_style_is_offered_and_passed_to_the_score(qtbot, panel, project, monkeypatch):
    from emsync_plugin.music.styles import DEFAULT_STYLE, STYLES

    fake = FastScore()
    monkeypatch.setattr(pipeline, "score", fake)
    _load(qtbot, panel, project)
    combo = panel.style_combo
    assert [combo.itemText(k) for k in range(combo.count())] == list(STYLES)
    assert combo.currentText() == DEFAULT_STYLE
    assert combo.itemData(combo.findText("piano"), Qt.ItemDataRole.ToolTipRole) == STYLES["piano"].description
    combo.setCurrentText("electronic")
    with qtbot.waitSignal(panel.previewed, timeout=10_000):
        qtbot.mouseClick(panel.generate_button, Qt.LeftButton)
    with qtbot.waitSignal(panel.scored, timeout=10_000):
        qtbot.mouseClick(panel.add_button, Qt.LeftButton)
    assert [options.style for _, options in fake.calls] == ["electronic", "electronic"]


def test_a_scoring_error_shows_its_message(qtbot, panel, project, monkeypatch):
    error = TimelineError("is only 0.40 s long", path=project, hint="a score needs a timeline of at least 1 s")
    monkeypatch.setattr(pipeline, "score", FastScore(error))
    _load(qtbot, panel, project)

    with qtbot.waitSignal(panel.failed, timeout=10_000) as blocker:
        qtbot.mouseClick(panel.generate_button, Qt.LeftButton)

    assert blocker.args == [str(error)]
    assert panel.error_box is not None and panel.error_box.isVisible()
    assert panel.error_box.text() == str(error)
    assert panel.result is None and not panel.open_button.isEnabled()
    assert panel.generate_button.isEnabled()  # the editor can fix and retry
    panel.error_box.accept()


def test_a_bad_option_is_reported_not_raised(qtbot, panel, project, monkeypatch):
    monkeypatch.setattr(pipeline, "score", FastScore())
    _load(qtbot, panel, project)
    panel.engine_combo.addItem("no-such-engine")
    panel.engine_combo.setCurrentText("no-such-engine")

    with qtbot.waitSignal(panel.failed, timeout=10_000) as blocker:
        panel.generate()

    assert "engine" in blocker.args[0]


def test_a_missing_project_shows_the_readers_message(qtbot, panel, tmp_path):
    missing = tmp_path / "gone.kdenlive"
    with qtbot.waitSignal(panel.failed, timeout=10_000) as blocker:
        panel.load(missing)
    assert "gone.kdenlive" in blocker.args[0]
    assert panel.table.rowCount() == 0 and not panel.generate_button.isEnabled()
    panel.error_box.accept()


def test_a_kdenlive_project(qtbot, panel, fixtures):
    """A real .kdenlive file, read by the core's Kdenlive reader."""
    path = fixtures / "kdenlive" / "kdenlive_example_v221170.kdenlive"
    _load(qtbot, panel, path)
    assert panel.table.rowCount() == len(read_cuts(path).scenes) > 0


def test_main_opens_the_panel_with_a_project(qtbot, project, monkeypatch):
    from PySide6.QtWidgets import QApplication

    shown = []
    monkeypatch.setattr(QApplication, "exec", lambda self: shown.extend(
        w for w in QApplication.topLevelWidgets() if isinstance(w, panel_mod.EmsyncPanel)) or 0)
    assert panel_mod.main([str(project)]) == 0
    (widget,) = [w for w in shown if w.path_edit.text() == str(project)]
    qtbot.addWidget(widget)
    qtbot.waitUntil(lambda: not widget.busy, timeout=10_000)
    assert widget.table.rowCount() == 3


# ---------------------------------------------------------------------------------------------
# scene moods: analysis, per-scene overrides


SAMPLE = Path(panel_mod.__file__).resolve().parents[1] / "emsync_plugin" / "data" / "sample" / "sample.kdenlive"


class FastMoods:
    """Stands in for ``pipeline.estimate_moods``: walks the scenes with a progress bar, as the core does."""

    def __init__(self, error=None):
        self.calls = []
        self.error = error
        self.thread = None

    def __call__(self, timeline, options):
        from emsync_plugin import progress

        self.thread = threading.get_ident()
        self.calls.append((timeline, options))
        if self.error is not None:
            raise self.error
        overridden = {int(e.partition("=")[0]) for e in options.emotion}
        found = {1: ("faces", 0.55, 0.35, {"happy": 0.7, "neutral": 0.2, "sad": 0.1}),
                 2: ("cues", -0.25, 0.1, {}), 3: ("marker", 0.8, 0.5, {})}
        out = []
        for scene in progress.bar(list(timeline.scenes), desc="analysing scenes", unit="scene"):
            source, v, a, probs = ("cli", 0.0, 0.0, {}) if scene.index in overridden else found[scene.index]
            out.append(SceneMood(scene.index, scene.start, scene.end, v, a, source, probs))
        return out


def _cells(panel, row):
    return [panel.table.item(row, c).text() for c in
            (panel_mod.COL_VALENCE, panel_mod.COL_AROUSAL, panel_mod.COL_SOURCE, panel_mod.COL_FACES, panel_mod.COL_MOOD)]


def _analyze(qtbot, panel, timeout=10_000):
    with qtbot.waitSignal(panel.analyzed, timeout=timeout) as blocker:
        qtbot.mouseClick(panel.analyze_button, Qt.LeftButton)
        assert panel.busy and not panel.analyze_button.isEnabled() and not panel.generate_button.isEnabled()
    return blocker.args[0]


def _edit(panel, row, col, text):
    """What the table's editor commits when the editor types ``text`` into a cell."""
    panel.table.item(row, col).setText(text)


def test_analysis_fills_the_mood_columns_from_a_worker(qtbot, panel, project, monkeypatch):
    fake = FastMoods()
    monkeypatch.setattr(pipeline, "estimate_moods", fake)
    _load(qtbot, panel, project)
    assert panel.analyze_button.isEnabled()
    assert _cells(panel, 0) == ["", "", "", "", "auto"]  # nothing estimated yet
    panel.arousal_check.setChecked(True)
    panel.arousal_slider.setValue(30)
    seen = []
    panel.progress_bar.valueChanged.connect(seen.append)

    moods = _analyze(qtbot, panel)

    assert [m.index for m in moods] == [1, 2, 3]
    (timeline, options), = fake.calls
    assert timeline == panel.timeline and options.emotion == () and options.arousal == 0.3  # pipeline.analyze reads the project again
    assert fake.thread is not None and fake.thread != threading.get_ident()
    assert _cells(panel, 0) == ["+0.55", "+0.35", "faces", "happy 70%", "auto"]
    assert _cells(panel, 1) == ["-0.25", "+0.10", "cues", "", "auto"]
    assert _cells(panel, 2) == ["+0.80", "+0.50", "marker", "", "auto"]
    assert "neutral 20%" in panel.table.item(0, panel_mod.COL_FACES).toolTip()
    assert 333 in seen and seen[-1] == panel.progress_bar.maximum()  # the core's progress bar, scene by scene
    assert not panel.busy and panel.generate_button.isEnabled()
    assert not panel.table.item(0, 0).font().bold()


def test_editing_rows_changes_what_is_scored(qtbot, panel, project, monkeypatch):
    monkeypatch.setattr(pipeline, "estimate_moods", FastMoods())
    score = FastScore()
    monkeypatch.setattr(pipeline, "score", score)
    _load(qtbot, panel, project)
    _analyze(qtbot, panel)

    _edit(panel, 2, panel_mod.COL_MOOD, "suspense")  # an alias: the combo also takes typed text
    _edit(panel, 1, panel_mod.COL_VALENCE, "0.2")  # arousal stays what the analysis found
    assert _cells(panel, 2) == ["-0.45", "+0.65", "you", "", "tense"]
    assert _cells(panel, 1) == ["+0.20", "+0.10", "you", "", "0.20,0.10"]
    assert all(panel.table.item(1, c).font().bold() for c in range(len(panel_mod.TABLE_COLUMNS)))
    assert not panel.table.item(0, 0).font().bold()

    _edit(panel, 0, panel_mod.COL_MOOD, "hapy")  # refused: the cell goes back, the message says why
    assert _cells(panel, 0)[2:] == ["faces", "happy 70%", "auto"]
    assert 'Scene 1: unknown mood "hapy" (did you mean "happy"?)' in panel.mood_label.text()
    _edit(panel, 0, panel_mod.COL_AROUSAL, "2")
    assert "arousal 2.0 is out of range" in panel.mood_label.text() and _cells(panel, 0)[2] == "faces"

    # the Mood column's editor: a combo box of "auto" and the named moods
    index = panel.table.model().index(0, panel_mod.COL_MOOD)
    editor = panel.mood_delegate.createEditor(panel.table.viewport(), None, index)
    items = [editor.itemText(i) for i in range(editor.count())]
    assert items[0] == "auto" and {"happy", "sad", "tense", "calm", "excited"} <= set(items)
    panel.mood_delegate.setEditorData(editor, index)
    assert editor.currentText() == "auto"
    editor.setCurrentText("calm")
    panel.mood_delegate.setModelData(editor, panel.table.model(), index)
    editor.deleteLater()
    assert _cells(panel, 0)[2] == "you" and panel.mood_label.text() == panel_mod.MOOD_HELP  # the error is gone

    assert panel.emotion() == ("1=calm", "2=0.20,0.10", "3=tense")
    _edit(panel, 0, panel_mod.COL_MOOD, "auto")  # back to the analysis
    assert _cells(panel, 0) == ["+0.55", "+0.35", "faces", "happy 70%", "auto"]
    assert not panel.table.item(0, 0).font().bold()

    with qtbot.waitSignal(panel.previewed, timeout=10_000):
        qtbot.mouseClick(panel.generate_button, Qt.LeftButton)
    (_, options), = score.calls
    assert options.emotion == ("2=0.20,0.10", "3=tense")

    # re-analyzing keeps the overrides: those scenes are not analyzed, and still show "you"
    fake = FastMoods()
    monkeypatch.setattr(pipeline, "estimate_moods", fake)
    _analyze(qtbot, panel)
    assert fake.calls[0][1].emotion == ("2=0.20,0.10", "3=tense")
    assert _cells(panel, 1)[2] == "you" and _cells(panel, 2)[:3] == ["-0.45", "+0.65", "you"]
    _edit(panel, 2, panel_mod.COL_MOOD, "auto")  # it was not analyzed: nothing to show until analyzed again
    assert _cells(panel, 2) == ["", "", "", "", "auto"]
    assert "Analyze scenes again" in panel.table.item(2, panel_mod.COL_SOURCE).toolTip()


def test_analysis_of_a_project_changed_on_disk_shows_its_new_scenes(qtbot, panel, project, monkeypatch):
    """``pipeline.analyze`` reads the project again: rows follow the file, unchanged scenes keep their moods."""
    monkeypatch.setattr(pipeline, "estimate_moods", FastMoods())
    _load(qtbot, panel, project)
    _edit(panel, 0, panel_mod.COL_MOOD, "sad")
    tl = otio.adapters.read_from_file(str(project))
    tl.tracks[0].remove(tl.tracks[0][2])  # the editor cut the last shot and saved
    otio.adapters.write_to_file(tl, str(project))

    moods = _analyze(qtbot, panel)

    assert panel.table.rowCount() == len(moods) == 2 and panel.timeline == read_cuts(project)
    assert panel.emotion() == ("1=sad",) and _cells(panel, 0)[2:] == ["you", "", "sad"]
    assert _cells(panel, 1) == ["-0.25", "+0.10", "cues", "", "auto"]


def test_an_analysis_error_shows_the_message_and_the_scenes_to_override(qtbot, panel, project):
    """The real core: the fixture's media (/media/*.mp4) do not exist."""
    _load(qtbot, panel, project)

    with qtbot.waitSignal(panel.failed, timeout=10_000) as blocker:
        qtbot.mouseClick(panel.analyze_button, Qt.LeftButton)

    message = blocker.args[0]
    assert "media file is missing" in message and "\n" not in message
    assert "--emotion" not in message  # the core's command-line hint gives way to the panel's advice
    assert panel.error_box.isVisible() and panel.error_box.text() == message
    assert "scenes 1, 2, 3 in the Mood column" in panel.error_box.informativeText()
    assert [_cells(panel, r)[2] for r in range(3)] == ["media missing"] * 3
    assert panel.analyze_button.isEnabled() and panel.generate_button.isEnabled()
    panel.error_box.accept()

    for row, mood in enumerate(("calm", "0.3,0.4", "excited")):  # what the message suggests
        _edit(panel, row, panel_mod.COL_MOOD, mood)
    moods = _analyze(qtbot, panel)
    assert [m.source for m in moods] == ["cli"] * 3
    assert [_cells(panel, r)[:3] for r in range(3)] == [
        ["+0.40", "-0.60", "you"], ["+0.30", "+0.40", "you"], ["+0.55", "+0.60", "you"]]


def test_a_scoring_error_for_missing_media_suggests_overrides(qtbot, panel, project, monkeypatch):
    from emsync_plugin.errors import MediaError

    error = MediaError("media file is missing (scene 2 uses it)", path="/media/boat.mp4", hint="relink the media")
    monkeypatch.setattr(pipeline, "score", FastScore(error))
    _load(qtbot, panel, project)
    _edit(panel, 0, panel_mod.COL_MOOD, "happy")

    with qtbot.waitSignal(panel.failed, timeout=10_000) as blocker:
        qtbot.mouseClick(panel.generate_button, Qt.LeftButton)

    assert blocker.args == ["/media/boat.mp4: media file is missing (scene 2 uses it)."]
    assert panel.error_box.text() == blocker.args[0]
    assert "scenes 2, 3 in the Mood column" in panel.error_box.informativeText()  # scene 1 has a mood already
    panel.error_box.accept()


def test_reloading_keeps_the_overrides_of_unchanged_scenes(qtbot, panel, project):
    _load(qtbot, panel, project)
    _edit(panel, 1, panel_mod.COL_MOOD, "sad")
    _load(qtbot, panel, project)
    assert panel.emotion() == ("2=sad",) and _cells(panel, 1)[2:] == ["you", "", "sad"]


def test_real_analysis_of_the_bundled_sample(qtbot, panel):
    """The real ``estimate_moods`` on the sample that ships with emsync (about 2 s)."""
    _load(qtbot, panel, SAMPLE)
    moods = _analyze(qtbot, panel, timeout=60_000)

    n = panel.table.rowCount()
    assert n == len(moods) == len(read_cuts(SAMPLE).scenes) > 1
    sources = [_cells(panel, r)[2] for r in range(n)]
    assert set(sources) <= {"faces", "cues", "marker", "carried on"} and "marker" in sources  # an "emsync: happy" guide
    for row, mood in enumerate(moods):
        assert _cells(panel, row)[:2] == [f"{mood.valence:+.2f}", f"{mood.arousal:+.2f}"]


# ---------------------------------------------------------------------------------------------
# re-scoring, takes, stems, ducking


def _music(panel):
    return [panel.table.item(r, panel_mod.COL_MUSIC).text() for r in range(panel.table.rowCount())]


def _preview(qtbot, panel, timeout=10_000):
    """Click "Generate score": the score is made, not added."""
    with qtbot.waitSignal(panel.previewed, timeout=timeout) as blocker:
        qtbot.mouseClick(panel.generate_button, Qt.LeftButton)
    return blocker.args[0]


def _add(qtbot, panel, timeout=10_000):
    """Click "Add to project"."""
    with qtbot.waitSignal(panel.scored, timeout=timeout) as blocker:
        qtbot.mouseClick(panel.add_button, Qt.LeftButton)
    return blocker.args[0]


def _generate(qtbot, panel, timeout=10_000):
    """Generate score, then Add to project; the added result."""
    _preview(qtbot, panel, timeout)
    return _add(qtbot, panel, timeout)


def test_rescoring_the_sample_in_place_shows_the_music_kept(qtbot, panel, tmp_path):
    """The real core on the bundled sample's .kdenlive, in place: Generate leaves the project as it
    is; Add to project puts on it the music heard, note for note; generating again keeps every
    scene; the scene asked for is regenerated and the others kept."""
    import json

    for name in ("sample.kdenlive", "sample.mp4"):
        (tmp_path / name).write_bytes((SAMPLE.parent / name).read_bytes())
    project = tmp_path / "sample.kdenlive"
    before = project.read_bytes()
    _load(qtbot, panel, project)
    panel.engine_combo.setCurrentText("baseline")
    panel.in_place_check.setChecked(True)
    n = panel.table.rowCount()
    assert n > 2 and _music(panel) == [""] * n

    heard = _preview(qtbot, panel, timeout=120_000)
    assert heard.output is None and project.read_bytes() == before  # nothing added yet
    assert _music(panel) == ["new music"] * n and panel.add_button.isEnabled()

    def notes(result):
        return [scene["notes"] for scene in json.loads(result.sidecar.read_text())["scenes"]]

    wav, heard_notes = heard.wav.read_bytes(), notes(heard)

    first = _add(qtbot, panel, timeout=120_000)
    assert first.output == project and "EMSYNC Score" in project.read_text(encoding="utf-8")
    assert [d.action for d in first.decisions] == ["kept"] * n  # what is added is what was heard
    assert first.wav.read_bytes() == wav and notes(first) == heard_notes
    assert panel.result_label.text().startswith("Added to the project: the music you heard, note for note.")
    assert "asks to reload" in panel.result_label.text() and not panel.add_button.isEnabled()
    assert _music(panel) == ["new music"] * n  # still what Generate did against the project

    second = _preview(qtbot, panel, timeout=120_000)
    assert [d.action for d in second.decisions] == ["kept"] * n
    assert _music(panel) == ["kept"] * n
    assert panel.result_label.text().startswith(f"Music: kept scenes 1-{n}.")

    panel.settings_box.regenerate_edit.setText("2")
    _preview(qtbot, panel, timeout=120_000)
    assert _music(panel) == ["kept", "regenerated (you asked)"] + ["kept"] * (n - 2)
    assert panel.result_label.text().startswith(f"Music: kept scenes 1, 3-{n}; regenerated scene 2.")
    assert panel.table.item(1, panel_mod.COL_MUSIC).toolTip().startswith("New music")


def test_adding_after_the_project_changed_says_which_scenes_got_new_music(qtbot, panel, project, monkeypatch):
    from emsync_plugin.rescore import Decision

    class Changed(FastScore):
        def __call__(self, path, options=pipeline.ScoreOptions(), progress=None):
            result = super().__call__(path, options, progress)
            actions = ["kept", "new", "kept"] if options.previous is not None else ["new"] * 3
            return __import__("dataclasses").replace(result, decisions=tuple(
                Decision(i + 1, a) for i, a in enumerate(actions)))

    monkeypatch.setattr(pipeline, "score", Changed())
    _load(qtbot, panel, project)
    _generate(qtbot, panel)
    text = panel.result_label.text()
    assert text.startswith("The project changed since you generated the score: scene 2 got new music")
    assert _music(panel) == ["kept", "new music", "kept"]


def test_takes_stems_ducking_and_rescore_choices_reach_the_score_options(qtbot, panel, project, monkeypatch):
    fake = FastScore()
    monkeypatch.setattr(pipeline, "score", fake)
    _load(qtbot, panel, project)
    box = panel.settings_box
    assert not box.duck_spin.isEnabled()
    box.takes_spin.setValue(3)
    box.stems_check.setChecked(True)
    box.duck_check.setChecked(True)
    box.duck_spin.setValue(-9)
    box.regenerate_edit.setText("3, 1")
    box.lock_edit.setText("2")
    _preview(qtbot, panel)
    options = fake.calls[-1][1]
    assert (options.takes, options.stems, options.duck) == (3, True, -9.0)
    assert (options.regenerate, options.lock, options.fresh) == ((1, 3), (2,), False)

    box.fresh_check.setChecked(True)  # a fresh score ignores what to keep
    assert not box.regenerate_edit.isEnabled() and not box.lock_edit.isEnabled()
    _preview(qtbot, panel)
    options = fake.calls[-1][1]
    assert (options.regenerate, options.lock, options.fresh, options.previous) == ((), (), True, None)

    box.fresh_check.setChecked(False)
    box.regenerate_edit.setText("2, two")
    with qtbot.waitSignal(panel.failed, timeout=10_000) as blocker:
        qtbot.mouseClick(panel.generate_button, Qt.LeftButton)
    assert blocker.args[0].startswith('Regenerate scenes: "two" is not a scene number')
    assert len(fake.calls) == 2 and not panel.busy
    panel.error_box.accept()


def test_rescore_errors_name_the_panels_fields(qtbot, panel, project, monkeypatch):
    from emsync_plugin.errors import OptionsError

    error = OptionsError("--lock 2: scene 2's picture changed, so its music no longer fits",
                         hint="drop --lock 2 to let emsync write new music for it")
    monkeypatch.setattr(pipeline, "score", FastScore(error))
    _load(qtbot, panel, project)
    with qtbot.waitSignal(panel.failed, timeout=10_000) as blocker:
        qtbot.mouseClick(panel.generate_button, Qt.LeftButton)
    assert "--" not in blocker.args[0] and "Lock scenes 2: scene 2's picture changed" in blocker.args[0]
    assert "ake scene 2 out of Lock scenes" in blocker.args[0]
    panel.error_box.accept()


# ---------------------------------------------------------------------------------------------
# issue 13: following Kdenlive, moods by name, preview, range, the command, screenshots


def test_recent_projects_and_unsaved_edits_follow_kdenlive(tmp_path, monkeypatch, project):
    from kdenlive_bridge import project_watch

    config, data = tmp_path / "config", tmp_path / "data"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    assert project_watch.recent_projects() == []
    config.mkdir()
    gone = tmp_path / "gone.kdenlive"
    (config / "kdenliverc").write_text(
        f"[General]\nx=1\n\n[RecentFiles]\nFile1=file://{project}\nFile2={gone}\nName1=holiday\n", encoding="utf-8")
    assert project_watch.recent_projects() == [project]

    assert project_watch.unsaved_edits(project) is None
    stale = data / "stalefiles" / "kdenlive" / f"{project.name}_abc123"
    stale.parent.mkdir(parents=True)
    stale.write_text("autosave")
    os.utime(stale, (project.stat().st_mtime + 60,) * 2)
    assert project_watch.unsaved_edits(project) == stale


def test_the_panel_reloads_when_kdenlive_saves(qtbot, panel, project, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    _load(qtbot, panel, project)
    _edit(panel, 0, panel_mod.COL_MOOD, "sad")
    tl = otio.adapters.read_from_file(str(project))
    tl.tracks[0].remove(tl.tracks[0][2])
    with qtbot.waitSignal(panel.loaded, timeout=10_000):
        otio.adapters.write_to_file(tl, str(project))  # Kdenlive saves
    assert panel.table.rowCount() == 2 and panel.emotion() == ("1=sad",)
    assert "unsaved" not in panel.summary_label.text()


def test_moods_by_name_and_the_advanced_view(qtbot, panel, project, monkeypatch):
    from kdenlive_bridge.table import nearest_mood

    assert nearest_mood(-0.45, 0.65) == "tense" and nearest_mood(0.4, -0.6) == "calm"
    monkeypatch.setattr(pipeline, "estimate_moods", FastMoods())
    _load(qtbot, panel, project)
    assert panel.table.isColumnHidden(panel_mod.COL_VALENCE) and panel.table.isColumnHidden(panel_mod.COL_AROUSAL)
    _analyze(qtbot, panel)
    feels = [panel.table.item(r, panel_mod.COL_FEELS).text() for r in range(3)]
    assert all(feels) and feels[0] == nearest_mood(0.55, 0.35)
    _edit(panel, 1, panel_mod.COL_MOOD, "suspense")
    assert panel.table.item(1, panel_mod.COL_FEELS).text() == "tense"
    panel.advanced_check.setChecked(True)
    assert not panel.table.isColumnHidden(panel_mod.COL_VALENCE)


def test_after_a_score_the_panel_previews_and_says_to_reload(qtbot, panel, project, monkeypatch):
    class InPlace(FastScore):
        def __call__(self, path, options=pipeline.ScoreOptions(), progress=None):
            result = super().__call__(path, options, progress)
            return __import__("dataclasses").replace(result, output=Path(path) if options.write_timeline else None)

    monkeypatch.setattr(pipeline, "score", FastScore(TimelineError("too short", path=project)))
    _load(qtbot, panel, project)
    with qtbot.waitSignal(panel.failed, timeout=10_000):
        panel.generate()
    panel.error_box.accept()
    panel._say("stale error", error=True)
    monkeypatch.setattr(pipeline, "score", InPlace())
    assert panel.in_place_check.isChecked()  # no second project unless asked
    result = _generate(qtbot, panel)
    assert panel.mood_label.text() == panel_mod.MOOD_HELP  # the stale error is gone
    assert "asks to reload" in panel.result_label.text() and result.output == project
    preview = panel.preview
    if preview.player is None:
        pytest.skip("no QtMultimedia")
    assert preview.player.source().toLocalFile() == str(result.wav) and preview.isEnabled()
    qtbot.mouseClick(preview, Qt.LeftButton)
    assert preview.playing and preview.text() == "■ Stop"
    qtbot.mouseClick(preview, Qt.LeftButton)
    assert not preview.playing and preview.text() == "▶ Play score"


def test_the_range_reaches_the_score_options(qtbot, panel, project, monkeypatch):
    fake = FastScore()
    monkeypatch.setattr(pipeline, "score", fake)
    _load(qtbot, panel, project)
    _preview(qtbot, panel)
    assert "range_in" not in fake.calls[-1][1].__dict__ or fake.calls[-1][1].range_in is None
    if "range_in" not in {f.name for f in __import__("dataclasses").fields(pipeline.ScoreOptions)}:
        pytest.skip("ScoreOptions has no range_in yet")
    box = panel.settings_box
    box.range_in_edit.setText("00:00:02:00")
    box.range_out_edit.setText("6.5")
    _preview(qtbot, panel)
    options = fake.calls[-1][1]
    assert (options.range_in, options.range_out) == (2.0, 6.5)
    box.range_out_edit.setText("00:00:01:00")
    with qtbot.waitSignal(panel.failed, timeout=10_000) as blocker:
        panel.generate()
    assert blocker.args[0].startswith("Score from/to: the end")
    panel.error_box.accept()
    box.whole_button.click()
    assert box.range_values(panel.timeline) == {}


def test_the_command_without_qt_and_its_desktop_entry(tmp_path, monkeypatch, capsys):
    import sys

    from kdenlive_bridge import launch

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert launch.main(["--install-desktop-entry"]) == 0
    entry = (tmp_path / "applications" / "emsync-kdenlive-panel.desktop").read_text()
    assert entry.startswith("[Desktop Entry]") and "Exec=" in entry and "%f" in entry

    import kdenlive_bridge

    monkeypatch.setitem(sys.modules, "kdenlive_bridge.panel", None)  # as if PySide6 were not installed
    monkeypatch.delattr(kdenlive_bridge, "panel")
    assert launch.main([]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'emsync[gui]'" in err
    with pytest.raises(SystemExit):
        launch.main(["--help"])
    assert "usage: emsync-kdenlive-panel" in capsys.readouterr().out


def test_paths_under_home_are_shown_from_home(qtbot, panel, tmp_path, monkeypatch):
    from kdenlive_bridge.jobs import shown_path

    monkeypatch.setenv("HOME", str(tmp_path))
    film = tmp_path / "My film"
    film.mkdir()
    project = film / "sample.kdenlive"
    project.write_bytes(SAMPLE.read_bytes())
    assert shown_path(project) == "~/My film/sample.kdenlive" and shown_path("/elsewhere/a.kdenlive") == "/elsewhere/a.kdenlive"
    _load(qtbot, panel, project)
    assert panel.path_edit.text() == "~/My film/sample.kdenlive"
    _load(qtbot, panel, panel.path_edit.text())  # typed back (Enter), it is the same project
    assert panel._project == project


@pytest.mark.skipif(os.environ.get("EMSYNC_SCREENSHOTS") != "1", reason="set EMSYNC_SCREENSHOTS=1 to write docs/panel/*.png")
def test_screenshots_of_the_panels_states(qtbot, panel, tmp_path, monkeypatch):
    """The panel's states on the bundled sample, as an editor has it: ``~/My film/sample.kdenlive``,
    the project Kdenlive has open; the real analysis and score with the default settings."""
    out = Path(__file__).resolve().parents[1] / "docs" / "panel"
    out.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / ".local" / "share"))
    film = tmp_path / "My film"
    film.mkdir()
    for name in ("sample.kdenlive", "sample.mp4"):
        (film / name).write_bytes((SAMPLE.parent / name).read_bytes())
    project = film / "sample.kdenlive"
    (tmp_path / ".config").mkdir()
    (tmp_path / ".config" / "kdenliverc").write_text(f"[RecentFiles]\nFile1=file://{project}\n", encoding="utf-8")
    panel.fill_recent()
    panel.resize(1100, 760)

    def shot(name):
        qtbot.wait(50)
        assert panel.grab().save(str(out / f"{name}.png"))

    shot("empty")
    _load(qtbot, panel, project)
    shot("loaded")
    _analyze(qtbot, panel, timeout=120_000)
    shot("analyzed")
    _preview(qtbot, panel, timeout=120_000)
    shot("generated")
    _add(qtbot, panel, timeout=120_000)
    shot("added")
    from emsync_plugin.errors import MediaError

    missing = MediaError("media file is missing (scene 4 uses it)", path="~/My film/rushes/harbour.mp4", hint="relink the media")
    monkeypatch.setattr(pipeline, "score", FastScore(missing))
    with qtbot.waitSignal(panel.failed, timeout=10_000):
        panel.generate()
    assert panel.error_box.grab().save(str(out / "error-dialog.png"))
    panel.error_box.accept()
    shot("error")
