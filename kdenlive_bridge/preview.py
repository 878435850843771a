"""Listening to the score in the panel before adding it to the project (QtMultimedia).

A "Play score" button toggles playback of the result's WAV. Without QtMultimedia (a Qt build or
platform that lacks it) the button stays disabled and says why; without an audio device the
player is still given its source and simply stays silent.
"""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtWidgets import QPushButton, QWidget

logger = logging.getLogger(__name__)

PLAY, STOP = "▶ Play score", "■ Stop"


class ScorePreview(QPushButton):
    """A play/stop button for the score's WAV; ``player`` is None without QtMultimedia."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(PLAY, parent)
        self.player = self._audio_output = None
        self.source: Path | None = None
        try:
            from PySide6.QtMultimedia import QAudioOutput, QMediaPlayer
        except ImportError as exc:
            logger.info("no audio preview: QtMultimedia is not available (%s)", exc)
            self.setToolTip("Audio preview needs QtMultimedia, which this Qt installation lacks.")
        else:
            self.player = QMediaPlayer(self)
            self._audio_output = QAudioOutput(self)
            self.player.setAudioOutput(self._audio_output)
            self.player.playbackStateChanged.connect(self._state_changed)
            self.setToolTip("Listen to the score before adding it to the project.")
        self.setCheckable(True)
        self.toggled.connect(self._toggled)
        self.set_source(None)

    def set_source(self, wav: Path | None) -> None:
        """The WAV to play (None: nothing to play); stops what was playing."""
        self.setChecked(False)
        self.source = Path(wav) if wav is not None else None
        if self.player is not None:
            self.player.setSource(QUrl.fromLocalFile(str(self.source)) if self.source is not None else QUrl())
        self.setEnabled(self.player is not None and self.source is not None)

    @property
    def playing(self) -> bool:
        return self.isChecked()

    def _toggled(self, on: bool) -> None:
        self.setText(STOP if on else PLAY)
        if self.player is None:
            return
        if on:
            self.player.setPosition(0)
            self.player.play()
        else:
            self.player.stop()

    def _state_changed(self, state) -> None:
        from PySide6.QtMultimedia import QMediaPlayer

        if state == QMediaPlayer.PlaybackState.StoppedState and self.isChecked() and self.player is not None \
                and self.player.position() >= max(1, self.player.duration()):
            self.setChecked(False)  # played to the end
