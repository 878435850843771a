"""The panel's "Score settings" box: the range to score, whole-timeline valence/arousal overrides,
engine, style, seed, in place, what a re-score does with the music already there (regenerate, lock,
fresh), takes, stems, ducking.

Its :meth:`SettingsBox.values` are ``ScoreOptions`` keyword arguments; the per-scene moods come
from the scene table instead, the range from :meth:`SettingsBox.range_values` (it needs the timeline).
"""
from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QWidget,
)

MAX_TAKES = 8  # emsync_plugin.options.MAX_TAKES
DUCK_DB = -12.0  # emsync_plugin.options.DUCK_DB
WHOLE = "whole timeline"


def parse_position(text: str, timeline, label: str) -> float | None:
    """Seconds from the timeline's start of a typed timecode (as Kdenlive shows it) or seconds;
    None for an empty field. ValueError says what is wrong in the field ``label``."""
    from emsync_plugin.timeline.timecode import format_timecode, parse_timecode

    text = text.strip()
    if not text or text.lower() == WHOLE:
        return None
    drop = bool(getattr(timeline, "drop_frame", False))
    try:
        seconds = float(text.replace(",", ".")) if ":" not in text and ";" not in text else (
            parse_timecode(text, timeline.rate, True if drop and ";" in text else None) - timeline.start)
    except ValueError as exc:
        example = format_timecode(timeline.start + 10, timeline.rate, drop)
        raise ValueError(f'{label}: "{text}" is not a timecode ({exc}); type it as Kdenlive shows it, e.g. {example}') from None
    if not math.isfinite(seconds) or not 0.0 <= seconds <= timeline.duration + 1e-6:
        raise ValueError(f'{label}: "{text}" is outside the timeline (it is {timeline.duration:.2f} s long)')
    return seconds


def parse_scenes(text: str, label: str) -> tuple[int, ...]:
    """Scene numbers typed as ``"3, 5"``; ValueError says what is wrong in the field ``label``."""
    numbers = []
    for item in text.replace(";", ",").replace(" ", ",").split(","):
        if item.strip() and (not item.strip().isdigit() or int(item) < 1):
            raise ValueError(f"{label}: \"{item.strip()}\" is not a scene number; write scene numbers "
                             "separated by commas, e.g. 3,5")
        if item.strip():
            numbers.append(int(item))
    return tuple(sorted(set(numbers)))


def row_of(*widgets: QWidget) -> QWidget:
    """Widgets side by side as one form row."""
    row = QWidget()
    box = QHBoxLayout(row)
    box.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        box.addWidget(w)
    box.addStretch(1)
    return row


def slider_row(tip: str) -> tuple[QCheckBox, QSlider, QLabel, QWidget]:
    """A checkbox, a -1..1 slider (enabled by the box) and its value, as one row."""
    check = QCheckBox()
    slider = QSlider(Qt.Orientation.Horizontal)
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


class SettingsBox(QGroupBox):
    """The score settings; ``engines`` fill the engine list, ``styles`` ((name, description), ...)
    the style list, ``default_style`` chosen in it."""

    def __init__(self, engines: tuple[str, ...], styles: tuple[tuple[str, str], ...] = (), default_style: str = "",
                 parent: QWidget | None = None):
        super().__init__("Score settings", parent)
        columns = QHBoxLayout(self)  # the music's settings on the left, what a run writes on the right
        form, more = QFormLayout(), QFormLayout()
        columns.addLayout(form, 1)
        columns.addLayout(more, 1)
        self.valence_check, self.valence_slider, self.valence_label, row = slider_row(
            "Sets the mood of the whole timeline: -1 sad/dark, +1 happy/bright. Unchecked: estimated.")
        form.addRow("Valence override", row)
        self.arousal_check, self.arousal_slider, self.arousal_label, row = slider_row(
            "Sets the energy of the whole timeline: -1 calm, +1 intense. Unchecked: estimated.")
        form.addRow("Arousal override", row)
        self.engine_combo = QComboBox()
        self.engine_combo.addItems(list(engines))
        form.addRow("Engine", self.engine_combo)
        self.style_combo = QComboBox()
        for name, description in styles:
            self.style_combo.addItem(name)
            self.style_combo.setItemData(self.style_combo.count() - 1, description, Qt.ItemDataRole.ToolTipRole)
        if default_style:
            self.style_combo.setCurrentText(default_style)
        self.style_combo.setToolTip("How the music is orchestrated: instruments, drums, dynamics (emsync styles).")
        form.addRow("Style", self.style_combo)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Same project, settings and seed give the same music.")
        form.addRow("Seed", self.seed_spin)
        self.in_place_check = QCheckBox("Add to the project itself (a timestamped backup is kept)")
        self.in_place_check.setChecked(True)
        self.in_place_check.setToolTip("Unticked: the score goes into a copy, <name>.emsync.kdenlive, beside the project.")
        form.addRow("", self.in_place_check)
        self._add_range(form)
        self._add_rescore(more)
        self._add_outputs(more)

    def _add_range(self, form: QFormLayout) -> None:
        """From where to where to score (timeline timecode); empty: the whole timeline."""
        self.range_in_edit, self.range_out_edit = QLineEdit(), QLineEdit()
        self.range_in_edit.setPlaceholderText("start")
        self.range_out_edit.setPlaceholderText("end")
        for edit in (self.range_in_edit, self.range_out_edit):
            edit.setToolTip("Timeline timecode as Kdenlive shows it (HH:MM:SS:FF) or seconds; empty: the whole timeline.")
        self.whole_button = QPushButton("Whole timeline")
        self.whole_button.clicked.connect(self.range_in_edit.clear)
        self.whole_button.clicked.connect(self.range_out_edit.clear)
        form.addRow("Score from", row_of(self.range_in_edit, QLabel("to"), self.range_out_edit, self.whole_button))

    def range_values(self, timeline) -> dict:
        """``{"range_in": s, "range_out": s}`` (seconds from the timeline's start) when the editor set a
        range, else ``{}``; ValueError names the field."""
        a = parse_position(self.range_in_edit.text(), timeline, "Score from")
        b = parse_position(self.range_out_edit.text(), timeline, "Score to")
        if a is None and b is None:
            return {}
        if a is not None and b is not None and b <= a:
            raise ValueError(f"Score from/to: the end ({b:.2f} s) must come after the start ({a:.2f} s)")
        return {"range_in": a, "range_out": b}

    def _add_rescore(self, form: QFormLayout) -> None:
        """What a re-score does with the music the project already carries."""
        self.fresh_check = QCheckBox("Fresh score: new music for every scene")
        self.fresh_check.setToolTip("Unticked, scenes whose picture and mood did not change keep their music.")
        form.addRow("", self.fresh_check)
        self.regenerate_edit = QLineEdit()
        self.regenerate_edit.setPlaceholderText("none, or e.g. 3,5")
        self.regenerate_edit.setToolTip("Scenes that get new music although they did not change.")
        form.addRow("Regenerate scenes", self.regenerate_edit)
        self.lock_edit = QLineEdit()
        self.lock_edit.setPlaceholderText("none, or e.g. 2")
        self.lock_edit.setToolTip("Scenes whose music must stay as it is (an error if their picture changed).")
        form.addRow("Lock scenes", self.lock_edit)
        self.fresh_check.toggled.connect(self._fresh_toggled)

    def _fresh_toggled(self, fresh: bool) -> None:
        self.regenerate_edit.setEnabled(not fresh)
        self.lock_edit.setEnabled(not fresh)

    def _add_outputs(self, form: QFormLayout) -> None:
        """Takes, stems and ducking under dialogue."""
        self.takes_spin = QSpinBox()
        self.takes_spin.setRange(1, MAX_TAKES)
        self.takes_spin.setToolTip("Several scores with the next seeds, each on its own track (all but the first muted).")
        form.addRow("Takes", self.takes_spin)
        self.stems_check = QCheckBox("Stems: one track per instrument group besides the mix")
        form.addRow("", self.stems_check)
        self.duck_check = QCheckBox("Duck under dialogue by")
        self.duck_spin = QDoubleSpinBox()
        self.duck_spin.setRange(-60.0, -1.0)
        self.duck_spin.setSingleStep(1.0)
        self.duck_spin.setSuffix(" dB")
        self.duck_spin.setValue(DUCK_DB)
        self.duck_spin.setEnabled(False)
        self.duck_check.toggled.connect(self.duck_spin.setEnabled)
        self.duck_check.setToolTip("Lower the music where someone speaks in the project's own sound.")
        form.addRow("", row_of(self.duck_check, self.duck_spin))

    def values(self) -> dict:
        """The settings as ``ScoreOptions`` keyword arguments (without ``emotion``); ValueError
        for a Regenerate or Lock field that is not a list of scene numbers."""
        fresh = self.fresh_check.isChecked()
        return {
            "engine": self.engine_combo.currentText(),
            **({"style": self.style_combo.currentText()} if self.style_combo.count() else {}),
            "valence": self.valence_slider.value() / 100 if self.valence_check.isChecked() else None,
            "arousal": self.arousal_slider.value() / 100 if self.arousal_check.isChecked() else None,
            "seed": self.seed_spin.value(),
            "in_place": self.in_place_check.isChecked(),
            "fresh": fresh,
            "regenerate": () if fresh else parse_scenes(self.regenerate_edit.text(), "Regenerate scenes"),
            "lock": () if fresh else parse_scenes(self.lock_edit.text(), "Lock scenes"),
            "takes": self.takes_spin.value(),
            "stems": self.stems_check.isChecked(),
            "duck": self.duck_spin.value() if self.duck_check.isChecked() else None,
        }
