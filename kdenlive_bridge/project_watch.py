"""Following the project Kdenlive has open: its recent-files list, unsaved edits, saves on disk.

Kdenlive has no plugin API, so the panel follows it through files:

- the open project is the newest of Kdenlive's recent files: ``kdenliverc`` in the XDG config
  folder (``~/.config/kdenliverc``), group ``[RecentFiles]`` with ``File1=...`` (newest first),
  as KDE's ``KRecentFilesAction::saveEntries`` writes it (KDE/kdenlive ``src/mainwindow.cpp``;
  older KDE Frameworks wrote the group as ``[Recent Files]``, read too);
- unsaved edits: Kdenlive autosaves through ``KAutoSaveFile`` into
  ``$XDG_DATA_HOME/stalefiles/kdenlive/`` (the Kdenlive manual, "Configuration Information"; the
  stale file's name starts with the percent-encoded project name), and keeps its save backups in
  ``$XDG_DATA_HOME/kdenlive/.backup/`` (``src/project/projectmanager.cpp``, ``<name>-<date>.kdenlive``);
  either newer than the project means Kdenlive holds edits not saved to it;
- a save is a change of the file, seen by a ``QFileSystemWatcher`` (Kdenlive saves by replacing
  the file, so the path is watched again after each change).
"""
from __future__ import annotations

import configparser
import logging
import os
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

logger = logging.getLogger(__name__)

_SETTLE_MS = 300  # a save is a burst of events; reload once it settles


def _xdg(name: str, default: str) -> Path:
    value = os.environ.get(name, "")
    return Path(value) if value else Path.home() / default


def config_home() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config")


def data_home() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share")


def _as_path(value: str) -> Path:
    """A recent-files entry (``file:///...`` URL or a path) as a path."""
    value = value.strip()
    if value.startswith("file:"):
        return Path(unquote(urlparse(value).path))
    return Path(value).expanduser()


def recent_projects(config: Path | None = None) -> list[Path]:
    """Kdenlive's recent projects that still exist, newest first (empty without a ``kdenliverc``)."""
    path = config or config_home() / "kdenliverc"
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        logger.info("cannot read Kdenlive's recent files from %s", path, exc_info=True)
        return []
    found: list[Path] = []
    for group in ("RecentFiles", "Recent Files"):
        if not parser.has_section(group):
            continue
        entries = [(k, v) for k, v in parser.items(group) if k.startswith("File") and k[4:].isdigit()]
        for _, value in sorted(entries, key=lambda kv: int(kv[0][4:])):
            p = _as_path(value)
            if p.is_file() and p not in found:
                found.append(p)
    return found


def unsaved_edits(project: Path, data: Path | None = None) -> Path | None:
    """Kdenlive's autosave or backup of ``project`` newer than the file itself, or None."""
    try:
        saved = project.stat().st_mtime
    except OSError:
        return None
    base = data or data_home()
    names = {quote(project.name, safe=""), project.name}
    candidates = [p for p in _listing(base / "stalefiles" / "kdenlive") if any(p.name.startswith(n) for n in names)]
    candidates += [p for p in _listing(base / "kdenlive" / ".backup") if p.name.startswith(project.stem + "-")]
    newer = [p for p in candidates if p.stat().st_mtime > saved + 1.0]
    return max(newer, key=lambda p: p.stat().st_mtime) if newer else None


def _listing(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_file()]
    except OSError:
        return []


class ProjectWatcher(QObject):
    """Emits ``saved(Path)`` when the watched project changes on disk (once per save)."""

    saved = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._watcher = QFileSystemWatcher(self)
        self._watcher.fileChanged.connect(self._changed)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(_SETTLE_MS)
        self._timer.timeout.connect(self._settled)
        self.path: Path | None = None
        self.paused = False  # while the panel itself writes the project

    def watch(self, path: Path | None) -> None:
        """Watch ``path`` instead of the project watched so far (None: nothing)."""
        files = self._watcher.files()
        if files:
            self._watcher.removePaths(files)
        self.path = path
        if path is not None and path.exists():
            self._watcher.addPath(str(path))

    def skip(self) -> None:
        """Forget the changes seen so far (the panel wrote the file itself) and keep watching."""
        self._timer.stop()
        if self.path is not None and self.path.exists() and str(self.path) not in self._watcher.files():
            self._watcher.addPath(str(self.path))

    def _changed(self, _name: str) -> None:
        self._timer.start()

    def _settled(self) -> None:
        if self.path is None:
            return
        if str(self.path) not in self._watcher.files() and self.path.exists():
            self._watcher.addPath(str(self.path))  # replaced by a save: watch the new file
        if not self.paused and self.path.exists():
            self.saved.emit(self.path)
