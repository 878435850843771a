"""The EMSYNC companion window for Kdenlive (PySide6).

Kdenlive has no Python plugin API, so the panel works on the project file and follows Kdenlive
through files (:mod:`.follow`): it offers the project Kdenlive has open, reloads it when Kdenlive
saves it and warns when Kdenlive may hold unsaved edits. The editor sees the scenes, clicks
"Analyze scenes" to see each scene's mood, overrides any of them in the table (:mod:`.table`;
passed on as ``ScoreOptions(emotion=("3=tense", "5=0.20,0.70"))``, as ``emsync score --emotion``),
then works in two steps so what goes on the timeline is what was heard:

- "Generate score" scores without writing the project (WAV, MIDI and sidecar beside it) and
  offers "▶ Play score" (:mod:`.preview`);
- "Add to project" scores again with that sidecar as the previous score and the timeline
  written: unchanged scenes keep their music note for note, scenes changed meanwhile get new
  music and the panel says which; then it says Kdenlive will ask to reload.

The work runs in a worker thread (:mod:`.jobs`) so the window never freezes.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtCore import Qt, QThreadPool, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from emsync_plugin.errors import MediaError
from emsync_plugin.mood import SceneMood

from .follow import RELOAD, FollowKdenlive
from .jobs import (
    JobRunner,
    add_settings,
    added_text,
    analyze_scenes,
    available_engines,
    available_styles,
    heard_as_is,
    load_timeline,
    missing_media_advice,
    open_in_kdenlive,
    preview_text,
    run_score,
    shown_path,
    with_missing_scenes,
)
from .preview import ScorePreview
from .project_watch import ProjectWatcher, recent_projects
from .settings import SettingsBox
from .table import (
    COL_AROUSAL,
    COL_FACES,
    COL_FEELS,
    COL_MOOD,
    COL_MUSIC,
    COL_SOURCE,
    COL_VALENCE,
    MOOD_HELP,
    TABLE_COLUMNS,
    MoodDelegate,
    SceneTable,
    analysis_summary,
    fill_scenes,
    paint_music_column,
    scene_spans,
    timecode,
)

__all__ = ["COL_AROUSAL", "COL_FACES", "COL_FEELS", "COL_MOOD", "COL_MUSIC", "COL_SOURCE", "COL_VALENCE", "MOOD_HELP",
           "TABLE_COLUMNS", "EmsyncPanel", "main", "open_in_kdenlive"]

logger = logging.getLogger(__name__)

PROJECT_FILTER = (
    "Kdenlive projects (*.kdenlive);;"
    "Timelines (*.kdenlive *.mlt *.otio *.otioz *.otiod *.xml *.fcpxml *.edl);;All files (*)"
)
_PROGRESS_STEPS = 1000


def _both(settings: dict) -> bool:
    """Whether valence and arousal are both set for the whole timeline (no scene needs its media)."""
    return settings.get("valence") is not None and settings.get("arousal") is not None


class EmsyncPanel(JobRunner, FollowKdenlive, SceneTable, QWidget):
    """The companion window. Signals: ``loaded(Timeline)``, ``analyzed(list[SceneMood])``,
    ``previewed(ScoreResult)`` (Generate score), ``scored(ScoreResult)`` (Add to project), ``failed(str)``."""

    loaded = Signal(object)
    analyzed = Signal(object)
    previewed = Signal(object)
    scored = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("EMSYNC — score for Kdenlive")
        self.timeline = None
        self.result = None
        self.previewed_with: tuple[dict, Path] | None = None  # the score heard: its options and its sidecar
        self.error_box: QMessageBox | None = None
        self.moods: dict[int, SceneMood] = {}  # scene index -> SceneMood of the last analysis (or score)
        self.overrides: dict[int, tuple[float, float, str]] = {}  # scene index -> (valence, arousal, text)
        self._analyzed_with: set[int] = set()  # scenes overridden when self.moods was made (not analyzed)
        self._missing: set[int] = set()  # scenes the last MediaError was about
        self._filling = False
        self._project: Path | None = None
        self._job = None
        self._retired = []
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self.watcher = ProjectWatcher(self)
        self.watcher.saved.connect(self._saved_in_kdenlive)
        top, table, settings, run, after = (
            self._build_top(), self._build_table(), self._build_settings(), self._build_run(), self._build_after())
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.summary_label)
        layout.addWidget(table, 1)
        layout.addWidget(self.mood_label)
        layout.addWidget(settings)
        layout.addLayout(run)
        layout.addWidget(self.result_label)
        layout.addLayout(after)
        self.resize(900, 600)
        self._set_busy(False)

    # -- layout --------------------------------------------------------------------------------
    def _build_top(self) -> QHBoxLayout:
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("Kdenlive project (.kdenlive)")
        self.path_edit.returnPressed.connect(lambda: self.load(self.path_edit.text()))
        self.browse_button = QPushButton("Open project…")
        self.browse_button.clicked.connect(self.browse)
        self.recent_combo = QComboBox()
        self.recent_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.recent_combo.setToolTip("The projects Kdenlive opened last (the first is the one it has open)")
        self.recent_combo.activated.connect(self._recent_chosen)
        self.fill_recent()
        top = QHBoxLayout()
        top.addWidget(self.recent_combo)
        top.addWidget(self.path_edit, 1)
        top.addWidget(self.browse_button)
        self.summary_label = QLabel("Choose a Kdenlive project to see its cuts.")
        self.summary_label.setWordWrap(True)
        return top

    def _build_table(self) -> QTableWidget:
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        triggers = QAbstractItemView.EditTrigger
        self.table.setEditTriggers(triggers.DoubleClicked | triggers.SelectedClicked | triggers.EditKeyPressed)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.mood_delegate = MoodDelegate(self.table)
        self.table.setItemDelegateForColumn(COL_MOOD, self.mood_delegate)
        self.table.itemChanged.connect(self._item_changed)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.advanced_check = QCheckBox("Show valence/arousal")
        self.advanced_check.toggled.connect(self.show_advanced)
        self.show_advanced(False)
        self.mood_label = QLabel(MOOD_HELP)
        self.mood_label.setWordWrap(True)
        return self.table

    def _build_settings(self) -> SettingsBox:
        box = self.settings_box = SettingsBox(available_engines(), *available_styles())
        self.valence_check, self.valence_slider, self.arousal_check, self.arousal_slider = (  # as the panel's own
            box.valence_check, box.valence_slider, box.arousal_check, box.arousal_slider)
        self.engine_combo, self.seed_spin, self.in_place_check = box.engine_combo, box.seed_spin, box.in_place_check
        self.style_combo = box.style_combo
        return box

    def _build_run(self) -> QHBoxLayout:
        self.analyze_button = QPushButton("Analyze scenes")
        self.analyze_button.setToolTip("Estimate each scene's mood from its picture and sound (no music yet).")
        self.analyze_button.clicked.connect(self.analyze)
        self.generate_button = QPushButton("Generate score")
        self.generate_button.clicked.connect(self.generate)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, _PROGRESS_STEPS)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p%")
        run = QHBoxLayout()
        run.addWidget(self.analyze_button)
        run.addWidget(self.generate_button)
        self.add_button = QPushButton("Add to project")
        self.add_button.setToolTip("Put the score you generated (and heard) on the project's timeline, note for note.")
        self.add_button.clicked.connect(self.add_to_project)
        run.addWidget(self.add_button)
        run.addWidget(self.progress_bar, 1)
        return run

    def _build_after(self) -> QHBoxLayout:
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = QPushButton("Open in Kdenlive")
        self.open_button.clicked.connect(self.open_result)
        self.folder_button = QPushButton("Show folder")
        self.folder_button.clicked.connect(self.show_folder)
        self.preview = ScorePreview()
        after = QHBoxLayout()
        after.addWidget(self.advanced_check)
        after.addStretch(1)
        after.addWidget(self.preview)
        after.addWidget(self.folder_button)
        after.addWidget(self.open_button)
        return after

    # -- state ---------------------------------------------------------------------------------
    def _set_busy(self, busy: bool) -> None:
        for w in (self.path_edit, self.browse_button):
            w.setEnabled(not busy)
        self.generate_button.setEnabled(not busy and self.timeline is not None)
        self.add_button.setEnabled(not busy and self.timeline is not None and self.previewed_with is not None)
        self.analyze_button.setEnabled(not busy and self.timeline is not None)
        has_result = not busy and self.result is not None
        self.open_button.setEnabled(has_result and getattr(self.result, "output", None) is not None)
        self.folder_button.setEnabled(has_result)

    def emotion(self) -> tuple[str, ...]:
        """The per-scene overrides as ``ScoreOptions.emotion``: ``("3=tense", "5=0.20,0.70")``."""
        return tuple(f"{index}={text}" for index, (_, _, text) in sorted(self.overrides.items()))

    def settings(self) -> dict:
        """The editor's choices as ``ScoreOptions`` keyword arguments for "Generate score" (the
        project is not written; ``range_in``/``range_out`` only when a range is set); ValueError
        names the field that is wrong."""
        chosen: dict = self.settings_box.range_values(self.timeline) if self.timeline is not None else {}
        return {**self.settings_box.values(), **chosen, "emotion": self.emotion(), "write_timeline": False}

    def analysis_settings(self) -> dict:
        """The choices that decide scene moods (``ScoreOptions`` keyword arguments)."""
        values = {**self.settings_box.values(), "emotion": self.emotion()}
        return {k: v for k, v in values.items() if k in ("valence", "arousal", "emotion")}

    @Slot(object)
    def _job_done(self, result) -> None:
        job = self._take_job(self.sender())
        if job is not None:
            try:
                if job.on_done is not None:
                    job.on_done(result)
            finally:
                self._set_busy(False)

    @Slot(str)
    def _job_failed(self, message: str) -> None:
        job = self._take_job(self.sender())
        if job is not None:
            try:
                self._show_error(message, job.error)
            finally:
                self._set_busy(False)

    # -- actions -------------------------------------------------------------------------------
    @Slot()
    def browse(self) -> None:
        """Pick a project with a file dialog, then load it."""
        start = str(self._project.parent) if self._project else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open a Kdenlive project", start, PROJECT_FILTER)
        if path:
            self.load(path)

    def _kept_overrides(self) -> dict[tuple[float, float], tuple[float, float, str]]:
        """The overrides by scene (start, end), to keep them across a reload."""
        if self.timeline is None:
            return {}
        return {(s.start, s.end): self.overrides[s.index] for s in self.timeline.scenes if s.index in self.overrides}

    def load(self, path: str | Path) -> None:
        """Read the project's cuts in the worker thread; ``loaded`` or ``failed`` follows.

        Reloading the same project keeps the overrides of scenes whose start and end did not move.
        """
        if self.busy or not str(path).strip():
            return
        path = Path(str(path).strip()).expanduser()
        kept = self._kept_overrides() if self._project is not None and path == self._project else {}
        self.path_edit.setText(shown_path(path))
        if path != self._project:  # a reload (Kdenlive saved) keeps the score generated for it
            self.result, self.previewed_with = None, None
            self.result_label.setText("")
            self.preview.set_source(None)
        self._project = path
        self.timeline = None
        self.moods, self.overrides, self._analyzed_with, self._missing = {}, {}, set(), set()
        self.watcher.watch(path)
        self._say(MOOD_HELP)
        self.table.setRowCount(0)
        self.summary_label.setText(f"Reading {path.name}…")
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p%")
        self._start(lambda progress: load_timeline(path), lambda timeline: self._show_timeline(timeline, kept))

    def _show_timeline(self, timeline, kept: dict) -> None:
        self.timeline = timeline
        self.overrides = {s.index: kept[(s.start, s.end)] for s in timeline.scenes if (s.start, s.end) in kept}
        name = timeline.name or (self._project.name if self._project is not None else "")
        self.summary_label.setText(
            f"{name}: {len(timeline.scenes)} scenes, {len(timeline.cuts)} cuts, "
            f"{timecode(timeline.duration, timeline)} at {timeline.rate:g} fps." + self._unsaved_warning()
        )
        self._filling = True
        try:
            fill_scenes(self.table, timeline)
        finally:
            self._filling = False
        self._refresh_rows()
        self.loaded.emit(timeline)

    # -- scene moods -----------------------------------------------------------------------------
    @Slot()
    def analyze(self) -> None:
        """Estimate every scene's mood in the worker thread; ``analyzed`` or ``failed`` follows."""
        if self.busy or self.timeline is None or self._project is None:
            return
        path, timeline, settings = self._project, self.timeline, self.analysis_settings()
        overridden = set(self.overrides)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("analyzing scenes %p%")
        self._say("Analyzing the scenes' picture and sound…")
        self._start(
            lambda progress: with_missing_scenes(lambda: analyze_scenes(path, settings, progress), timeline, overridden,
                                                 _both(settings)),
            lambda analysis: self._show_analysis(analysis, overridden),
            with_progress=True,
        )

    def _show_analysis(self, analysis, overridden: set[int]) -> None:
        """Show ``pipeline.analyze``'s moods; a project changed on disk since it was loaded is shown anew."""
        if scene_spans(analysis.timeline) != scene_spans(self.timeline):
            self._show_timeline(analysis.timeline, self._kept_overrides())
        self._show_moods(analysis.moods, overridden, analyzed=True)

    def _show_moods(self, moods, overridden: set[int], analyzed: bool = False) -> None:
        """Show the moods the core found (the scenes in ``overridden`` were not analyzed)."""
        self.moods = {m.index: m for m in moods}
        self._analyzed_with = set(overridden)
        self._missing = set()
        self._refresh_rows()
        if analyzed:
            self.progress_bar.setValue(_PROGRESS_STEPS)
            self.progress_bar.setFormat("analyzed %p%")
            self._say(analysis_summary(moods, overridden) + MOOD_HELP)  # replaces any earlier error
            self.analyzed.emit(list(moods))

    # -- scoring: Generate (hear it), then Add to project ---------------------------------------
    @Slot()
    def generate(self) -> None:
        """Score without touching the project (WAV, MIDI and sidecar beside it) so the editor can
        listen first; ``previewed`` or ``failed`` follows."""
        if self.busy or self._project is None or self.timeline is None:
            return
        try:
            settings = self.settings()
        except ValueError as exc:  # a Regenerate or Lock field that is not scene numbers
            self._show_error(f"{exc}.")
            return
        self.result, self.previewed_with = None, None
        self._run_score(self._project, settings, self._show_preview)

    @Slot()
    def add_to_project(self) -> None:
        """Score again with the generated score as ``previous`` and the timeline written: every scene
        that did not change since keeps its music note for note; ``scored`` or ``failed`` follows."""
        if self.busy or self._project is None or self.timeline is None or self.previewed_with is None:
            return
        settings, heard = self.previewed_with
        self._pause_watch()
        self._run_score(self._project, add_settings(settings, heard), self._show_added)

    def _run_score(self, path: Path, settings: dict, show) -> None:
        timeline, overridden = self.timeline, set(self.overrides)
        self.result_label.setText("")
        self.preview.set_source(None)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("starting… %p%")
        self._start(
            lambda progress: with_missing_scenes(lambda: run_score(path, settings, progress), timeline, overridden, _both(settings)),
            lambda result: show(result, overridden, settings),
            with_progress=True,
        )

    @Slot(str, float)
    def _on_progress(self, stage: str, fraction: float) -> None:
        self.progress_bar.setValue(int(round(max(0.0, min(1.0, fraction)) * _PROGRESS_STEPS)))
        self.progress_bar.setFormat(f"{stage} %p%")

    def _show_score(self, result, overridden: set[int], music: bool = True) -> None:
        """What both steps show: the scenes as scored, their moods, the Music column, the player."""
        self.result = result
        self.progress_bar.setValue(_PROGRESS_STEPS)
        self.progress_bar.setFormat("done %p%")
        if scene_spans(result.timeline) != scene_spans(self.timeline):  # the project changed on disk since it was loaded
            self._show_timeline(result.timeline, self._kept_overrides())
        if result.moods and len(result.moods) == len(result.timeline.scenes):
            self._show_moods(result.moods, overridden)  # the moods the music was made with
        if music:
            paint_music_column(self.table, result.timeline, result.decisions)  # kept, moved, regenerated, new music
        self._say(MOOD_HELP)  # an earlier error no longer holds
        self.preview.set_source(result.wav)

    def _show_preview(self, result, overridden: set[int], settings: dict) -> None:
        self._show_score(result, overridden)
        self.previewed_with = (settings, result.sidecar)
        self.result_label.setText(preview_text(result))
        self.previewed.emit(result)

    def _show_added(self, result, overridden: set[int], settings: dict) -> None:
        as_heard = heard_as_is(result.decisions)
        self._show_score(result, overridden, music=not as_heard)  # the Music column still says what the preview did
        self.previewed_with = None
        self._resume_watch()
        reload = RELOAD if result.output is not None and result.output == self._project else ""
        self.result_label.setText(added_text(result, reload))
        self.scored.emit(result)

    def _show_error(self, message: str, error: BaseException | None = None) -> None:
        self._resume_watch()
        if self.timeline is None:
            self.summary_label.setText("Could not read the project.")
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("failed")
        advice = None
        if isinstance(error, MediaError) and error.reason:
            message, advice, scenes = missing_media_advice(error)  # the core's hint names command-line options
            if scenes and self.timeline is not None:
                self._missing = set(scenes)
                self._refresh_rows(scenes)
        box = QMessageBox(QMessageBox.Icon.Critical, "EMSYNC", message, QMessageBox.StandardButton.Ok, self)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        if advice:
            box.setInformativeText(advice)
        self._say(f"{message} {advice}" if advice else message, error=True)  # stays once the dialog is closed
        self.error_box = box
        box.open()  # window-modal, does not block the event loop
        self.failed.emit(message)

    @Slot()
    def open_result(self) -> None:
        """Open the scored project in Kdenlive."""
        if self.result is not None and self.result.output is not None and not open_in_kdenlive(self.result.output):
            self._show_error(f"{self.result.output}: could not start Kdenlive. Open the file from Kdenlive's File menu.")

    @Slot()
    def show_folder(self) -> None:
        """Show the folder holding the score in the file manager."""
        if self.result is not None:
            folder = Path(self.result.output or self.result.wav).parent
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self.busy:
            logger.info("waiting for the running job before closing")
        self._pool.waitForDone()
        super().closeEvent(event)


def show_window(project: str | None = None, qt_args: list[str] | None = None) -> int:
    """Show the panel with ``project`` loaded, else the project Kdenlive has open; run Qt's loop."""
    app = QApplication.instance() or QApplication([sys.argv[0], *(qt_args or [])])
    panel = EmsyncPanel()
    panel.show()
    recent = [str(p) for p in recent_projects()]
    if project or recent:
        panel.load(project or recent[0])
    return app.exec()


def main(argv: list[str] | None = None) -> int:
    """``emsync-kdenlive-panel [PROJECT]`` (see :mod:`.launch`)."""
    from .launch import main as launch

    return launch(argv)
