"""The EMSYNC companion panel for Kdenlive (PySide6).

Kdenlive has no Python plugin API, so the panel works on the project file: the editor picks a
``.kdenlive`` project (any timeline emsync reads works too), sees its scenes, sets the mood
overrides and the engine, and clicks "Generate score". Reading the cuts and scoring both run in
a worker thread (``QThreadPool``) so the window never freezes; ``pipeline.score``'s progress
callback feeds the progress bar through a queued signal. When done, the panel shows where the
scored project was written (``<name>.emsync.kdenlive`` beside the original, or the original with
a timestamped backup) and offers to open it in Kdenlive.

No timeline or music logic lives here: the panel calls ``emsync_plugin.timeline.read_cuts`` and
``emsync_plugin.pipeline.score`` and shows their results; every error a user can cause arrives as
an ``EmsyncError`` whose one-line message is shown in a message box.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import threading
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QProcess, QRunnable, Qt, QThreadPool, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView, QApplication, QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
    QHeaderView, QLabel, QLineEdit, QMessageBox, QProgressBar, QPushButton, QSlider, QSpinBox, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

logger = logging.getLogger(__name__)

PROJECT_FILTER = (
    "Kdenlive projects (*.kdenlive);;"
    "Timelines (*.kdenlive *.mlt *.otio *.otioz *.otiod *.xml *.fcpxml *.edl);;All files (*)"
)
TABLE_COLUMNS = ("#", "Start", "End", "Length", "Media")
_PROGRESS_STEPS = 1000


def load_timeline(path: str | Path):
    """The cuts and scenes of ``path`` (``emsync_plugin.timeline.read_cuts``)."""
    from emsync_plugin.timeline import read_cuts

    return read_cuts(Path(path))


def run_score(path: str | Path, settings: dict, progress: Callable[[str, float], None]):
    """``pipeline.score(path, ScoreOptions(**settings), progress)``; options are validated here."""
    from emsync_plugin import pipeline

    return pipeline.score(Path(path), pipeline.ScoreOptions(**settings), progress=progress)


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
    """Run ``fn(progress)`` in a pool thread; report ``done(result)`` or ``failed(message)``."""

    def __init__(self, fn: Callable[[Callable[[str, float], None]], object]):
        super().__init__()
        self.fn = fn
        self.signals = _JobSignals()
        self.on_done: Callable[[object], None] | None = None
        self.thread_id: int | None = None

    def run(self) -> None:  # noqa: D401 (Qt override)
        self.thread_id = threading.get_ident()
        try:
            result = self.fn(self.signals.progress.emit)
        except Exception as exc:  # every error must reach the user, never kill the thread silently
            self.signals.failed.emit(_message(exc))
            return
        self.signals.done.emit(result)


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
    """The companion window. Signals: ``loaded(Timeline)``, ``scored(ScoreResult)``, ``failed(str)``."""

    loaded = Signal(object)
    scored = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("EMSYNC — score for Kdenlive")
        self.timeline = None
        self.result = None
        self.error_box: QMessageBox | None = None
        self._project: Path | None = None
        self._job: Job | None = None
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
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setStretchLastSection(True)

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

        self.generate_button = QPushButton("Generate score")
        self.generate_button.clicked.connect(self.generate)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, _PROGRESS_STEPS)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p%")
        run = QHBoxLayout()
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
        layout.addWidget(settings)
        layout.addLayout(run)
        layout.addWidget(self.result_label)
        layout.addLayout(after)
        self.resize(720, 560)

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
        has_result = not busy and self.result is not None
        self.open_button.setEnabled(has_result and getattr(self.result, "output", None) is not None)
        self.folder_button.setEnabled(has_result)

    def settings(self) -> dict:
        """The editor's choices as ``ScoreOptions`` keyword arguments."""
        return {
            "engine": self.engine_combo.currentText(),
            "valence": self.valence_slider.value() / 100 if self.valence_check.isChecked() else None,
            "arousal": self.arousal_slider.value() / 100 if self.arousal_check.isChecked() else None,
            "seed": self.seed_spin.value(),
            "in_place": self.in_place_check.isChecked(),
            "write_timeline": True,
        }

    def _start(self, fn, on_done, with_progress: bool = False) -> Job:
        """Run ``fn`` in the pool; its signals reach this panel's slots in the GUI thread."""
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
        if self._take_job() is not None:
            try:
                self._show_error(message)
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
        """Read the project's cuts in the worker thread; ``loaded`` or ``failed`` follows."""
        if self.busy or not str(path).strip():
            return
        path = Path(str(path).strip()).expanduser()
        self.path_edit.setText(str(path))
        self._project = path
        self.timeline = None
        self.result = None
        self.result_label.setText("")
        self.table.setRowCount(0)
        self.summary_label.setText(f"Reading {path.name}…")
        self.progress_bar.setValue(0)
        self._start(lambda progress: load_timeline(path), self._show_timeline)

    def _show_timeline(self, timeline) -> None:
        self.timeline = timeline
        rate = timeline.rate
        self.summary_label.setText(
            f"{timeline.name or self._project.name}: {len(timeline.scenes)} scenes, {len(timeline.cuts)} cuts, "
            f"{timecode(timeline.duration, rate)} at {rate:g} fps"
        )
        self.table.setRowCount(len(timeline.scenes))
        for row, scene in enumerate(timeline.scenes):
            values = (
                str(scene.index), timecode(scene.start, rate), timecode(scene.end, rate),
                f"{scene.end - scene.start:.2f} s", Path(scene.media).name if scene.media else "(gap)",
            )
            for col, text in enumerate(values):
                item = QTableWidgetItem(text)
                if col < 4:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if col == 4 and scene.media:
                    item.setToolTip(str(scene.media))
                self.table.setItem(row, col, item)
        self.loaded.emit(timeline)

    @Slot()
    def generate(self) -> None:
        """Run ``pipeline.score`` in the worker thread; ``scored`` or ``failed`` follows."""
        if self.busy or self._project is None or self.timeline is None:
            return
        path, settings = self._project, self.settings()
        self.result = None
        self.result_label.setText("")
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("starting… %p%")
        self._start(lambda progress: run_score(path, settings, progress), self._show_result, with_progress=True)

    @Slot(str, float)
    def _on_progress(self, stage: str, fraction: float) -> None:
        self.progress_bar.setValue(int(round(max(0.0, min(1.0, fraction)) * _PROGRESS_STEPS)))
        self.progress_bar.setFormat(f"{stage} %p%")

    def _show_result(self, result) -> None:
        self.result = result
        self.progress_bar.setValue(_PROGRESS_STEPS)
        self.progress_bar.setFormat("done %p%")
        written = result.output
        lufs = getattr(result, "lufs", None)
        loud = f", {lufs:.1f} LUFS" if isinstance(lufs, (int, float)) and lufs == lufs else ""
        lines = [f"Scored project written to: {written}" if written else f"Score written to: {result.wav}"]
        lines.append(f"Audio: {result.wav} ({len(result.timeline.cuts)} cuts{loud})")
        if written:
            lines.append("Open it in Kdenlive (reload the project if it is already open there).")
        self.result_label.setText("\n".join(lines))
        self.scored.emit(result)

    def _show_error(self, message: str) -> None:
        if self.timeline is None:
            self.summary_label.setText("Could not read the project.")
        self.progress_bar.setFormat("failed")
        box = QMessageBox(QMessageBox.Critical, "EMSYNC", message, QMessageBox.Ok, self)
        box.setTextInteractionFlags(Qt.TextSelectableByMouse)
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
