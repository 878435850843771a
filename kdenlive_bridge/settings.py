"""The panel's "Score settings" box: whole-timeline valence/arousal overrides, engine, seed, in place.

Its :meth:`SettingsBox.values` are ``ScoreOptions`` keyword arguments; the per-scene moods come
from the scene table instead.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QSlider, QSpinBox, QWidget


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
    """The score settings; ``engines`` fill the engine list."""

    def __init__(self, engines: tuple[str, ...], parent: QWidget | None = None):
        super().__init__("Score settings", parent)
        form = QFormLayout(self)
        self.valence_check, self.valence_slider, self.valence_label, row = slider_row(
            "Sets the mood of the whole timeline: -1 sad/dark, +1 happy/bright. Unchecked: estimated.")
        form.addRow("Valence override", row)
        self.arousal_check, self.arousal_slider, self.arousal_label, row = slider_row(
            "Sets the energy of the whole timeline: -1 calm, +1 intense. Unchecked: estimated.")
        form.addRow("Arousal override", row)
        self.engine_combo = QComboBox()
        self.engine_combo.addItems(list(engines))
        form.addRow("Engine", self.engine_combo)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Same project, settings and seed give the same music.")
        form.addRow("Seed", self.seed_spin)
        self.in_place_check = QCheckBox("Overwrite the project (a timestamped backup is kept)")
        form.addRow("", self.in_place_check)

    def values(self) -> dict:
        """The settings as ``ScoreOptions`` keyword arguments (without ``emotion``)."""
        return {
            "engine": self.engine_combo.currentText(),
            "valence": self.valence_slider.value() / 100 if self.valence_check.isChecked() else None,
            "arousal": self.arousal_slider.value() / 100 if self.arousal_check.isChecked() else None,
            "seed": self.seed_spin.value(),
            "in_place": self.in_place_check.isChecked(),
        }
