"""The panel following the project Kdenlive has open (a mixin of :class:`.panel.EmsyncPanel`).

Kdenlive has no plugin API, so the panel follows it through files (:mod:`.project_watch`): it
offers Kdenlive's recent projects, reloads the project when Kdenlive saves it, warns when
Kdenlive may hold edits not saved to it, and does not mistake its own write for Kdenlive's.
"""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QComboBox

from .project_watch import ProjectWatcher, recent_projects, unsaved_edits

logger = logging.getLogger(__name__)

RECENT = "Kdenlive's recent projects…"
RELOAD = ("Kdenlive notices the change on disk and asks to reload the project: click Reload there "
          "(if it does not ask, use File ▸ Revert).")


class FollowKdenlive:
    """Recent projects, reload on save, the unsaved-edits warning; needs the panel's ``recent_combo``,
    ``watcher``, ``_project``, ``busy`` and ``load``."""

    recent_combo: QComboBox
    watcher: ProjectWatcher
    _project: Path | None

    @property
    def busy(self) -> bool:  # the panel's
        raise NotImplementedError

    def load(self, path: str | Path) -> None:  # the panel's
        raise NotImplementedError

    def fill_recent(self) -> list[Path]:
        """Offer Kdenlive's recent projects (newest first); returns them."""
        projects = recent_projects()
        self.recent_combo.clear()
        self.recent_combo.addItem(RECENT if projects else "No recent Kdenlive project")
        for p in projects:
            self.recent_combo.addItem(p.name, str(p))
            self.recent_combo.setItemData(self.recent_combo.count() - 1, str(p), Qt.ItemDataRole.ToolTipRole)
        return projects

    @Slot(int)
    def _recent_chosen(self, row: int) -> None:
        data = self.recent_combo.itemData(row)
        if data:
            self.load(data)

    @Slot(object)
    def _saved_in_kdenlive(self, path: Path) -> None:
        """Kdenlive saved the project: read it again (overrides of unchanged scenes are kept)."""
        if path == self._project and not self.busy:
            logger.info("%s changed on disk: reloading", path)
            self.load(path)

    def _unsaved_warning(self) -> str:
        newer = unsaved_edits(self._project) if self._project is not None else None
        return ("" if newer is None else f" Kdenlive may hold unsaved edits ({newer.name} is newer than the file): "
                "save the project in Kdenlive (Ctrl+S) and the panel reloads it.")

    def _pause_watch(self) -> None:
        """The panel is about to write the project itself: that is not Kdenlive saving."""
        self.watcher.paused = True

    def _resume_watch(self) -> None:
        if self.watcher.paused:
            self.watcher.skip()  # what the panel wrote itself
            self.watcher.paused = False
