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
        return pipeline.ScoreResult(timeline, out, wav, midi, sidecar, -16.0)


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

    with qtbot.waitSignal(panel.scored, timeout=10_000) as blocker:
        qtbot.mouseClick(panel.generate_button, Qt.LeftButton)
        assert panel.busy and not panel.generate_button.isEnabled()  # returned at once, work goes on

    result = blocker.args[0]
    (path, options), = fake.calls
    assert path == project
    assert (options.valence, options.arousal, options.seed, options.write_timeline) == (-0.4, None, 9, True)
    assert fake.thread is not None and fake.thread != threading.get_ident()
    assert str(result.output) in panel.result_label.text()
    assert result.output == project.with_name("holiday.emsync.otio")
    assert seen and seen[-1] == panel.progress_bar.maximum() and 500 in seen
    assert not panel.busy and panel.generate_button.isEnabled() and panel.open_button.isEnabled()

    opened = []
    monkeypatch.setattr(panel_mod, "open_in_kdenlive", lambda p: opened.append(p) or True)
    qtbot.mouseClick(panel.open_button, Qt.LeftButton)
    assert opened == [result.output]


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
    if importlib.util.find_spec("emsync_plugin.timeline.kdenlive") is None:
        pytest.skip("the core's Kdenlive reader (emsync_plugin/timeline/kdenlive.py) is not there yet")
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
