"""The EMSYNC companion panel for Kdenlive (PySide6).

Kdenlive has no Python plugin API, so the panel works on the project file: the editor picks a
``.kdenlive`` project (any timeline emsync reads works too), sees its scenes, clicks "Analyse
scenes" to see the mood emsync estimates for each (valence, arousal, where it came from and the
face model's top class), overrides the mood of any scene in the table, sets the engine, and
clicks "Generate score". Reading the cuts, analysing and scoring all run in a worker thread
(``QThreadPool``) so the window never freezes; progress reaches the progress bar through a
queued signal (``pipeline.score``'s callback, and the analysis's progress bars through
``emsync_plugin.progress.listen``). When done, the panel shows where the scored project was
written (``<name>.emsync.kdenlive`` beside the original, or the original with a timestamped
backup) and offers to open it in Kdenlive.

Per-scene overrides: double-click a scene's "Mood" cell and pick a named mood (the vocabulary of
``emsync_plugin.emotion.overrides``), type ``valence,arousal``, or pick "auto" to use the
analysis again; or double-click its Valence or Arousal cell and type a number from -1 to 1.
Overridden rows are bold with "you" as their source, and "Generate score" passes them as
``ScoreOptions(emotion=("3=tense", "5=0.20,0.70", ...))``, exactly as ``emsync score --emotion``.

No timeline, emotion or music logic lives here: the panel calls ``emsync_plugin.timeline.read_cuts``,
``emsync_plugin.pipeline.estimate_moods`` and ``emsync_plugin.pipeline.score`` and shows their
results; every error a user can cause arrives as an ``EmsyncError`` whose one-line message is
shown in a message box (for missing media, with the scenes to override).
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QRunnable, Qt, QThreadPool, QUrl, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QStyledItemDelegate,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

logger = logging.getLogger(__name__)

PROJECT_FILTER = (
    "Kdenlive projects (*.kdenlive);;"
    "Timelines (*.kdenlive *.mlt *.otio *.otioz *.otiod *.xml *.fcpxml *.edl);;All files (*)"
)
TABLE_COLUMNS = ("#", "Start", "End", "Length", "Media", "Valence", "Arousal", "Source", "Faces", "Mood")
COL_VALENCE, COL_AROUSAL, COL_SOURCE, COL_FACES, COL_MOOD = 5, 6, 7, 8, 9
AUTO = "auto"  # the Mood cell of a scene without an override
YOU = "you"  # the Source of an overridden scene
#: How the core's ``SceneMood.source`` reads in the table (and what it means, as a tooltip).
SOURCES = {
    "faces": ("faces", "Estimated from the picture and sound, with the faces' expressions"),
    "cues": ("cues", "Estimated from the picture (brightness, colour, motion) and the sound"),
    "marker": ("marker", "Set by an 'emsync: MOOD' guide or clip marker in the project"),
    "cli": ("settings", "Set by the Valence/Arousal overrides of the score settings"),
    "default": ("carried on", "No picture to analyse here: the mood of the scene before carries on"),
}
MOOD_HELP = (
    "Double-click a scene's Mood to set it (a mood name, or valence,arousal from -1 to 1), or its "
    "Valence/Arousal to type a number; \"auto\" uses the analysis again."
)
_PROGRESS_STEPS = 1000


def load_timeline(path: str | Path):
    """The cuts and scenes of ``path`` (``emsync_plugin.timeline.read_cuts``)."""
    from emsync_plugin.timeline import read_cuts

    return read_cuts(Path(path))


def run_score(path: str | Path, settings: dict, progress: Callable[[str, float], None]):
    """``pipeline.score(path, ScoreOptions(**settings), progress)``; options are validated here."""
    from emsync_plugin import pipeline

    return pipeline.score(Path(path), pipeline.ScoreOptions(**settings), progress=progress)


def analyse_scenes(timeline, settings: dict, progress: Callable[[str, float], None]):
    """``pipeline.estimate_moods(timeline, ScoreOptions(**settings))`` (what ``emsync analyze`` runs),
    its progress bars reported to ``progress``."""
    from emsync_plugin import pipeline
    from emsync_plugin import progress as bars

    options = pipeline.ScoreOptions(**settings)
    progress("analysing scenes", 0.0)
    with bars.listen(progress):
        moods = pipeline.estimate_moods(timeline, options)
    progress("analysed", 1.0)
    return moods


def mood_names() -> tuple[str, ...]:
    """The named moods an editor may pick (``emsync_plugin.emotion.overrides.MOODS``)."""
    from emsync_plugin.emotion.overrides import MOODS

    return tuple(MOODS)


def parse_mood(text: str) -> tuple[float, float, str]:
    """``(valence, arousal, text for ScoreOptions.emotion)`` of a Mood cell; ValueError says what is wrong."""
    from emsync_plugin.emotion.overrides import MOODS
    from emsync_plugin.emotion.overrides import parse_mood as core_parse

    v, a, label = core_parse(text)
    if label in MOODS:
        return v, a, label
    v, a = round(v, 2) + 0.0, round(a, 2) + 0.0  # what the table shows is what is passed on
    return v, a, f"{v:.2f},{a:.2f}"


def missing_scenes(timeline, overridden=()) -> list[int]:
    """Scenes whose media file is missing (``pipeline.missing_media``), except ``overridden`` ones."""
    from emsync_plugin import pipeline

    missing = set(pipeline.missing_media(timeline))
    return [s.index for s in timeline.scenes if s.media in missing and s.index not in set(overridden)]


def _with_missing_scenes(fn, timeline, overridden):
    """Run ``fn``; a MediaError leaves with ``missing_scenes`` (found in the worker, not the GUI thread)."""
    from emsync_plugin.errors import MediaError

    try:
        return fn()
    except MediaError as exc:
        try:
            exc.missing_scenes = missing_scenes(timeline, overridden)
        except Exception:  # the message alone still reaches the user
            logger.debug("could not list the scenes with missing media", exc_info=True)
        raise


def top_face(probs) -> str:
    """``"happy 62%"``: the face model's most likely class, or "" without faces."""
    if not probs:
        return ""
    name = max(probs, key=probs.get)
    return f"{name} {float(probs[name]):.0%}"


def _numbers(indices) -> str:
    indices = list(indices)
    text = ", ".join(map(str, indices[:8])) + (f" and {len(indices) - 8} more" if len(indices) > 8 else "")
    return f"scene{'s' if len(indices) > 1 else ''} {text}"


def available_engines() -> tuple[str, ...]:
    """The engines the core offers (``pipeline.ENGINES``), "baseline" if it cannot be asked."""
    try:
        from emsync_plugin import pipeline

        return tuple(getattr(pipeline, "ENGINES", ())) or ("baseline",)
    except ImportError:
        logger.warning("emsync_plugin.pipeline is not importable", exc_info=True)
        return ("baseline",)


def open_in_kdenlive(path: str | Path) -> bool:
    """Open ``path`` with the ``kdenlive`` command if on PATH, else the desktop's default app."""
    exe = shutil.which("kdenlive")
    if exe:
        started = QProcess.startDetached(exe, [str(path)])
        ok = started[0] if isinstance(started, tuple) else bool(started)
        if ok:
            return True
        logger.warning("could not start %s; falling back to the desktop", exe)
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def timecode(seconds: float, rate: float) -> str:
    """``HH:MM:SS:FF`` at ``rate`` (non-drop), as Kdenlive shows positions."""
    fps = max(1, int(round(rate)))
    frames = int(round(seconds * rate))
    s, f = divmod(frames, fps)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{f:02d}"


class _JobSignals(QObject):
    """Signals of one job; created in the GUI thread, emitted from the worker thread."""

    progress = Signal(str, float)
    done = Signal(object)
    failed = Signal(str)


class Job(QRunnable):
    """Run ``fn(progress)`` in a pool thread; report ``done(result)`` or ``failed(message)``
    (the exception itself is kept in ``error``)."""

    def __init__(self, fn: Callable[[Callable[[str, float], None]], object]):
        super().__init__()
        # The panel owns the job, not the pool: auto-deleted by the worker thread while the GUI
        # thread's slot still read it, it crashed now and then (see EmsyncPanel._retire).
        self.setAutoDelete(False)
        self.fn = fn
        self.signals = _JobSignals()
        self.on_done: Callable[[object], None] | None = None
        self.thread_id: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:  # noqa: D401 (Qt override)
        self.thread_id = threading.get_ident()
        try:
            result = self.fn(self.signals.progress.emit)
        except Exception as exc:  # every error must reach the user, never kill the thread silently
            self.error = exc
            self.signals.failed.emit(_message(exc))
            return
        self.signals.done.emit(result)


class MoodDelegate(QStyledItemDelegate):
    """The Mood cell's editor: a combo box of "auto" and the named moods, in which
    ``valence,arousal`` may also be typed. The text it commits is checked by the panel."""

    def createEditor(self, parent, option, index):  # noqa: N802 (Qt override)
        combo = QComboBox(parent)
        combo.setEditable(True)
        combo.setInsertPolicy(QComboBox.NoInsert)
        combo.addItems([AUTO, *mood_names()])
        combo.setToolTip("A mood name, or valence,arousal from -1 to 1 (e.g. 0.2,0.7); auto: the analysis")
        combo.activated.connect(lambda _=None, c=combo: (self.commitData.emit(c), self.closeEditor.emit(c)))
        return combo

    def setEditorData(self, editor, index):  # noqa: N802
        editor.setCurrentText(str(index.data() or AUTO))

    def setModelData(self, editor, model, index):  # noqa: N802
        model.setData(index, editor.currentText().strip() or AUTO)


def _message(exc: BaseException) -> str:
    """The one-line message of an EmsyncError; a short description of anything else."""
    try:
        from emsync_plugin.errors import EmsyncError
    except ImportError:
        EmsyncError = ()  # noqa: N806
    if EmsyncError and isinstance(exc, EmsyncError):
        return str(exc)
    logger.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"Internal error ({type(exc).__name__}: {text}). Please report it with the log."


class EmsyncPanel(QWidget):
    """The companion window. Signals: ``loaded(Timeline)``, ``analysed(list[SceneMood])``,
    ``scored(ScoreResult)``, ``failed(str)``."""

    loaded = Signal(object)
    analysed = Signal(object)
    scored = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("EMSYNC — score for Kdenlive")
        self.timeline = None
        self.result = None
        self.error_box: QMessageBox | None = None
        self.moods: dict[int, object] = {}  # scene index -> SceneMood of the last analysis (or score)
        self.overrides: dict[int, tuple[float, float, str]] = {}  # scene index -> (valence, arousal, text)
        self._analysed_with: set[int] = set()  # scenes overridden when self.moods was made (not analysed)
        self._missing: set[int] = set()  # scenes the last MediaError was about
        self._filling = False
        self._project: Path | None = None
        self._job: Job | None = None
        self._retired: list[Job] = []  # finished jobs, freed in this thread once the pool is idle
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._build()
        self._set_busy(False)

    # -- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("Kdenlive project (.kdenlive)")
        self.path_edit.returnPressed.connect(lambda: self.load(self.path_edit.text()))
        self.browse_button = QPushButton("Open project…")
        self.browse_button.clicked.connect(self.browse)
        top = QHBoxLayout()
        top.addWidget(self.path_edit, 1)
        top.addWidget(self.browse_button)

        self.summary_label = QLabel("Choose a Kdenlive project to see its cuts.")
        self.summary_label.setWordWrap(True)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(
            QAbstractItemView.DoubleClicked | QAbstractItemView.SelectedClicked | QAbstractItemView.EditKeyPressed
        )
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.mood_delegate = MoodDelegate(self.table)
        self.table.setItemDelegateForColumn(COL_MOOD, self.mood_delegate)
        self.table.itemChanged.connect(self._item_changed)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setStretchLastSection(True)
        self.mood_label = QLabel(MOOD_HELP)
        self.mood_label.setWordWrap(True)

        settings = QGroupBox("Score settings")
        form = QFormLayout(settings)
        self.valence_check, self.valence_slider, self.valence_label, row = self._mood_row(
            "Sets the mood of the whole timeline: -1 sad/dark, +1 happy/bright. Unchecked: estimated.")
        form.addRow("Valence override", row)
        self.arousal_check, self.arousal_slider, self.arousal_label, row = self._mood_row(
            "Sets the energy of the whole timeline: -1 calm, +1 intense. Unchecked: estimated.")
        form.addRow("Arousal override", row)
        self.engine_combo = QComboBox()
        self.engine_combo.addItems(list(available_engines()))
        form.addRow("Engine", self.engine_combo)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Same project, settings and seed give the same music.")
        form.addRow("Seed", self.seed_spin)
        self.in_place_check = QCheckBox("Overwrite the project (a timestamped backup is kept)")
        form.addRow("", self.in_place_check)

        self.analyse_button = QPushButton("Analyse scenes")
        self.analyse_button.setToolTip("Estimate each scene's mood from its picture and sound (no music yet).")
        self.analyse_button.clicked.connect(self.analyse)
        self.generate_button = QPushButton("Generate score")
        self.generate_button.clicked.connect(self.generate)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, _PROGRESS_STEPS)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p%")
        run = QHBoxLayout()
        run.addWidget(self.analyse_button)
        run.addWidget(self.generate_button)
        run.addWidget(self.progress_bar, 1)

        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.open_button = QPushButton("Open in Kdenlive")
        self.open_button.clicked.connect(self.open_result)
        self.folder_button = QPushButton("Show folder")
        self.folder_button.clicked.connect(self.show_folder)
        after = QHBoxLayout()
        after.addStretch(1)
        after.addWidget(self.folder_button)
        after.addWidget(self.open_button)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.mood_label)
        layout.addWidget(settings)
        layout.addLayout(run)
        layout.addWidget(self.result_label)
        layout.addLayout(after)
        self.resize(900, 600)

    def _mood_row(self, tip: str):
        check = QCheckBox()
        slider = QSlider(Qt.Horizontal)
        slider.setRange(-100, 100)
        slider.setValue(0)
        slider.setEnabled(False)
        label = QLabel("auto")
        label.setMinimumWidth(40)
        for w in (check, slider, label):
            w.setToolTip(tip)

        def refresh() -> None:
            slider.setEnabled(check.isChecked())
            label.setText(f"{slider.value() / 100:+.2f}" if check.isChecked() else "auto")

        check.toggled.connect(lambda _=None: refresh())
        slider.valueChanged.connect(lambda _=None: refresh())
        row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(check)
        box.addWidget(slider, 1)
        box.addWidget(label)
        return check, slider, label, row

    # -- state ---------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._job is not None

    def _set_busy(self, busy: bool) -> None:
        for w in (self.path_edit, self.browse_button):
            w.setEnabled(not busy)
        self.generate_button.setEnabled(not busy and self.timeline is not None)
        self.analyse_button.setEnabled(not busy and self.timeline is not None)
        has_result = not busy and self.result is not None
        self.open_button.setEnabled(has_result and getattr(self.result, "output", None) is not None)
        self.folder_button.setEnabled(has_result)

    def emotion(self) -> tuple[str, ...]:
        """The per-scene overrides as ``ScoreOptions.emotion``: ``("3=tense", "5=0.20,0.70")``."""
        return tuple(f"{index}={text}" for index, (_, _, text) in sorted(self.overrides.items()))

    def settings(self) -> dict:
        """The editor's choices as ``ScoreOptions`` keyword arguments."""
        return {
            "engine": self.engine_combo.currentText(),
            "valence": self.valence_slider.value() / 100 if self.valence_check.isChecked() else None,
            "arousal": self.arousal_slider.value() / 100 if self.arousal_check.isChecked() else None,
            "emotion": self.emotion(),
            "seed": self.seed_spin.value(),
            "in_place": self.in_place_check.isChecked(),
            "write_timeline": True,
        }

    def analysis_settings(self) -> dict:
        """The choices that decide scene moods (``ScoreOptions`` keyword arguments)."""
        return {k: v for k, v in self.settings().items() if k in ("valence", "arousal", "emotion")}

    def _start(self, fn, on_done, with_progress: bool = False) -> Job:
        """Run ``fn`` in the pool; its signals reach this panel's slots in the GUI thread."""
        if self._retired:  # their run() has emitted its last signal; let it return, then free them here
            self._pool.waitForDone(2000)
            self._retired.clear()
        job = Job(fn)
        job.on_done = on_done
        job.signals.done.connect(self._job_done)
        job.signals.failed.connect(self._job_failed)
        if with_progress:
            job.signals.progress.connect(self._on_progress)
        self._job = job
        self._set_busy(True)
        self._pool.start(job)
        return job

    def _take_job(self) -> Job | None:
        job = self._job
        if job is None or self.sender() is not job.signals:  # a stale job (one runs at a time)
            return None
        self._job = None
        self._retired.append(job)
        return job

    @Slot(object)
    def _job_done(self, result) -> None:
        job = self._take_job()
        if job is not None:
            try:
                job.on_done(result)
            finally:
                self._set_busy(False)

    @Slot(str)
    def _job_failed(self, message: str) -> None:
        job = self._take_job()
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

    def load(self, path: str | Path) -> None:
        """Read the project's cuts in the worker thread; ``loaded`` or ``failed`` follows.

        Reloading the same project keeps the overrides of scenes whose start and end did not move.
        """
        if self.busy or not str(path).strip():
            return
        path = Path(str(path).strip()).expanduser()
        kept = {}
        if self._project is not None and path == self._project and self.timeline is not None:
            kept = {(s.start, s.end): self.overrides[s.index] for s in self.timeline.scenes if s.index in self.overrides}
        self.path_edit.setText(str(path))
        self._project = path
        self.timeline = None
        self.result = None
        self.moods, self.overrides, self._analysed_with, self._missing = {}, {}, set(), set()
        self.result_label.setText("")
        self._say(MOOD_HELP)
        self.table.setRowCount(0)
        self.summary_label.setText(f"Reading {path.name}…")
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p%")
        self._start(lambda progress: load_timeline(path), lambda timeline: self._show_timeline(timeline, kept))

    def _show_timeline(self, timeline, kept: dict | None = None) -> None:
        self.timeline = timeline
        for s in timeline.scenes:
            if (s.start, s.end) in (kept or {}):
                self.overrides[s.index] = kept[(s.start, s.end)]
        rate = timeline.rate
        self.summary_label.setText(
            f"{timeline.name or self._project.name}: {len(timeline.scenes)} scenes, {len(timeline.cuts)} cuts, "
            f"{timecode(timeline.duration, rate)} at {rate:g} fps"
        )
        self._filling = True
        try:
            self.table.setRowCount(len(timeline.scenes))
            for row, scene in enumerate(timeline.scenes):
                values = (
                    str(scene.index), timecode(scene.start, rate), timecode(scene.end, rate),
                    f"{scene.end - scene.start:.2f} s", Path(scene.media).name if scene.media else "(gap)",
                    "", "", "", "", AUTO,
                )
                for col, text in enumerate(values):
                    item = QTableWidgetItem(text)
                    if col not in (COL_VALENCE, COL_AROUSAL, COL_MOOD):
                        item.setFlags(item.flags() & ~Qt.ItemIsEditable)
                    if col < 4 or col in (COL_VALENCE, COL_AROUSAL):
                        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                    if col == 4 and scene.media:
                        item.setToolTip(str(scene.media))
                    self.table.setItem(row, col, item)
        finally:
            self._filling = False
        self._refresh_rows()
        self.loaded.emit(timeline)

    # -- scene moods -----------------------------------------------------------------------------
    @Slot()
    def analyse(self) -> None:
        """Estimate every scene's mood in the worker thread; ``analysed`` or ``failed`` follows."""
        if self.busy or self.timeline is None:
            return
        timeline, settings = self.timeline, self.analysis_settings()
        overridden = set(self.overrides)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("analysing scenes %p%")
        self._say("Analysing the scenes' picture and sound…")
        self._start(
            lambda progress: _with_missing_scenes(lambda: analyse_scenes(timeline, settings, progress), timeline, overridden),
            lambda moods: self._show_moods(moods, overridden, analysed=True),
            with_progress=True,
        )

    def _show_moods(self, moods, overridden: set[int], analysed: bool = False) -> None:
        """Show the moods the core found (the scenes in ``overridden`` were not analysed)."""
        self.moods = {m.index: m for m in moods}
        self._analysed_with = set(overridden)
        self._missing = set()
        self._refresh_rows()
        if analysed:
            self.progress_bar.setValue(_PROGRESS_STEPS)
            self.progress_bar.setFormat("analysed %p%")
            counts: dict[str, int] = {}
            for m in moods:
                label = YOU if m.index in overridden else SOURCES.get(m.source, (m.source, ""))[0]
                counts[label] = counts.get(label, 0) + 1
            self._say(f"{len(moods)} scenes: " + ", ".join(f"{n} from {k}" for k, n in counts.items()) + ". " + MOOD_HELP)
            self.analysed.emit(list(moods))

    def set_override(self, index: int, text: str | None) -> None:
        """Set scene ``index``'s mood (a name or ``"V,A"``), or clear it with ``None``/"auto".

        Raises ValueError (the core parser's message) for text that is not a mood.
        """
        if text is None or not str(text).strip() or str(text).strip().lower() == AUTO:
            self.overrides.pop(index, None)
        else:
            self.overrides[index] = parse_mood(str(text))
            self._missing.discard(index)
        self._refresh_rows([index])

    @Slot(object)
    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or self.timeline is None or item.column() not in (COL_VALENCE, COL_AROUSAL, COL_MOOD):
            return
        row = item.row()
        if not 0 <= row < len(self.timeline.scenes):
            return
        index = self.timeline.scenes[row].index
        text = item.text().strip()
        try:
            if item.column() == COL_MOOD:
                self.set_override(index, text)
            else:
                try:
                    value = float(text.replace(",", "."))
                except ValueError:
                    raise ValueError(f'"{text}" is not a number from -1 to 1') from None
                v, a = self._shown_va(index)
                v, a = (value, a) if item.column() == COL_VALENCE else (v, value)
                self.set_override(index, f"{v},{a}")
            self._say(MOOD_HELP)
        except ValueError as exc:
            self._refresh_rows([index])  # put the cell back
            self._say(f"Scene {index}: {exc}. {MOOD_HELP}", error=True)

    def _shown_va(self, index: int) -> tuple[float, float]:
        """The valence and arousal the table shows for a scene (0, 0 when it shows none)."""
        if index in self.overrides:
            return self.overrides[index][:2]
        mood = self.moods.get(index)
        if mood is not None and index not in self._analysed_with:
            return mood.valence, mood.arousal
        return 0.0, 0.0

    def _refresh_rows(self, indices=None) -> None:
        """Fill the Valence, Arousal, Source, Faces and Mood cells from the moods and overrides."""
        if self.timeline is None:
            return
        wanted = None if indices is None else set(indices)
        self._filling = True
        try:
            for row, scene in enumerate(self.timeline.scenes):
                if wanted is None or scene.index in wanted:
                    self._fill_row(row, scene.index)
        finally:
            self._filling = False

    def _fill_row(self, row: int, index: int) -> None:
        override = self.overrides.get(index)
        mood = self.moods.get(index)
        analysed = mood is not None and index not in self._analysed_with
        valence = arousal = source = ""
        tip, colour = "Click Analyse scenes to estimate this scene's mood", None
        if override is not None:
            valence, arousal, source = f"{override[0]:+.2f}", f"{override[1]:+.2f}", YOU
            tip = "Set by you; wins over markers and the analysis"
        elif analysed:
            valence, arousal = f"{mood.valence:+.2f}", f"{mood.arousal:+.2f}"
            source, tip = SOURCES.get(mood.source, (mood.source, ""))
        elif index in self._missing:
            source, tip, colour = "media missing", "The media file is missing: relink it or set this scene's mood", "#b00020"
        elif mood is not None:
            tip = "Not analysed while you had overridden it: click Analyse scenes again"
        cells = {
            COL_VALENCE: valence, COL_AROUSAL: arousal, COL_SOURCE: source,
            COL_FACES: top_face(mood.probs) if mood is not None and getattr(mood, "probs", None) else "",
            COL_MOOD: override[2] if override is not None else AUTO,
        }
        for col, text in cells.items():
            item = self.table.item(row, col)
            item.setText(text)
        source_item = self.table.item(row, COL_SOURCE)
        source_item.setToolTip(tip)
        source_item.setForeground(QBrush(QColor(colour)) if colour else QBrush())
        if mood is not None and getattr(mood, "probs", None):
            ranked = sorted(mood.probs.items(), key=lambda kv: -kv[1])
            self.table.item(row, COL_FACES).setToolTip(", ".join(f"{k} {float(p):.0%}" for k, p in ranked))
        self.table.item(row, COL_MOOD).setToolTip("Double-click to set this scene's mood")
        for col in range(len(TABLE_COLUMNS)):
            item = self.table.item(row, col)
            font = item.font()
            if font.bold() != (override is not None):
                font.setBold(override is not None)
                item.setFont(font)

    def _say(self, text: str, error: bool = False) -> None:
        self.mood_label.setText(text)
        self.mood_label.setStyleSheet("color: #b00020;" if error else "")

    # -- scoring ---------------------------------------------------------------------------------
    @Slot()
    def generate(self) -> None:
        """Run ``pipeline.score`` in the worker thread; ``scored`` or ``failed`` follows."""
        if self.busy or self._project is None or self.timeline is None:
            return
        path, settings, timeline = self._project, self.settings(), self.timeline
        overridden = set(self.overrides)
        self.result = None
        self.result_label.setText("")
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("starting… %p%")
        self._start(
            lambda progress: _with_missing_scenes(lambda: run_score(path, settings, progress), timeline, overridden),
            lambda result: self._show_result(result, overridden),
            with_progress=True,
        )

    @Slot(str, float)
    def _on_progress(self, stage: str, fraction: float) -> None:
        self.progress_bar.setValue(int(round(max(0.0, min(1.0, fraction)) * _PROGRESS_STEPS)))
        self.progress_bar.setFormat(f"{stage} %p%")

    def _show_result(self, result, overridden: set[int] = frozenset()) -> None:
        self.result = result
        self.progress_bar.setValue(_PROGRESS_STEPS)
        self.progress_bar.setFormat("done %p%")
        moods = getattr(result, "moods", None)
        if moods and self.timeline is not None and len(moods) == len(self.timeline.scenes):
            self._show_moods(moods, overridden)  # the moods the music was made with
        written = result.output
        lufs = getattr(result, "lufs", None)
        loud = f", {lufs:.1f} LUFS" if isinstance(lufs, (int, float)) and lufs == lufs else ""
        lines = [f"Scored project written to: {written}" if written else f"Score written to: {result.wav}"]
        lines.append(f"Audio: {result.wav} ({len(result.timeline.cuts)} cuts{loud})")
        if written:
            lines.append("Open it in Kdenlive (reload the project if it is already open there).")
        self.result_label.setText("\n".join(lines))
        self.scored.emit(result)

    def _show_error(self, message: str, error: BaseException | None = None) -> None:
        if self.timeline is None:
            self.summary_label.setText("Could not read the project.")
        self.progress_bar.setFormat("failed")
        advice = None
        if type(error).__name__ == "MediaError" and getattr(error, "reason", None):
            # the core's hint names command-line options; here the fix is in the table
            message = f"{error.path}: {error.reason}." if error.path is not None else f"{error.reason}."
            scenes = list(getattr(error, "missing_scenes", None) or ())
            which = _numbers(scenes) if scenes else "the scenes using it"
            advice = (
                f"Set a mood for {which} in the Mood column (double-click it), or relink the media in Kdenlive "
                "and reload the project; then analyse again. The Valence/Arousal overrides set the whole timeline."
            )
            if scenes and self.timeline is not None:
                self._missing = set(scenes)
                self._refresh_rows(scenes)
        box = QMessageBox(QMessageBox.Critical, "EMSYNC", message, QMessageBox.Ok, self)
        box.setTextInteractionFlags(Qt.TextSelectableByMouse)
        if advice:
            box.setInformativeText(advice)
            self._say(f"{message} {advice}", error=True)
        self.error_box = box
        box.open()  # window-modal, does not block the event loop
        self.failed.emit(message)

    @Slot()
    def open_result(self) -> None:
        """Open the scored project in Kdenlive."""
        if self.result is not None and self.result.output is not None:
            if not open_in_kdenlive(self.result.output):
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


def main(argv: list[str] | None = None) -> int:
    """``python -m kdenlive_bridge [PROJECT]``: show the panel, optionally with a project loaded."""
    parser = argparse.ArgumentParser(prog="python -m kdenlive_bridge", description="EMSYNC panel for Kdenlive projects")
    parser.add_argument("project", nargs="?", help="Kdenlive project to open (.kdenlive)")
    args, qt_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication([sys.argv[0], *qt_args])
    panel = EmsyncPanel()
    panel.show()
    if args.project:
        panel.load(args.project)
    return app.exec()
