"""The panel's scene table: its columns, the Mood cell's editor and how a row shows a mood.

One row per scene: number, start, end, length and media from the cuts, then Feels (the named
mood nearest to the scene's valence/arousal: happy, tense, calm...), Valence, Arousal (the
advanced view),
Source and Faces from the analysis (or the editor's override), Mood, where the editor types
or picks the scene's mood, and Music: after a score, whether the scene kept its music. Mood
text is read by ``emsync_plugin.emotion.overrides.parse_mood``, so the panel accepts exactly
what ``emsync score --emotion`` does.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QComboBox, QLabel, QStyledItemDelegate, QTableWidget, QTableWidgetItem

from emsync_plugin.mood import SceneMood
from emsync_plugin.timeline.model import Timeline
from emsync_plugin.timeline.timecode import format_timecode

TABLE_COLUMNS = ("#", "Start", "End", "Length", "Media", "Feels", "Valence", "Arousal", "Source", "Faces", "Mood", "Music")
COL_MEDIA, COL_FEELS, COL_VALENCE, COL_AROUSAL, COL_SOURCE, COL_FACES, COL_MOOD, COL_MUSIC = 4, 5, 6, 7, 8, 9, 10, 11
ADVANCED = (COL_VALENCE, COL_AROUSAL)  # shown with "Show valence/arousal"
EDITABLE = (COL_VALENCE, COL_AROUSAL, COL_MOOD)
AUTO = "auto"  # the Mood cell of a scene without an override
YOU = "you"  # the Source of an overridden scene
#: How the core's ``SceneMood.source`` reads in the table (and what it means, as a tooltip).
SOURCES = {
    "faces": ("faces", "Estimated from the picture and sound, with the faces' expressions"),
    "cues": ("cues", "Estimated from the picture (brightness, colour, motion) and the sound"),
    "marker": ("marker", "Set by an 'emsync: MOOD' guide or clip marker in the project"),
    "cli": ("settings", "Set by the Valence/Arousal overrides of the score settings"),
    "default": ("carried on", "No picture to analyze here: the mood of the scene before carries on"),
}
MOOD_HELP = (
    "Double-click a scene's Mood to set it (a mood name, or valence,arousal from -1 to 1), or its "
    "Valence/Arousal to type a number; \"auto\" uses the analysis again."
)
_ERROR_COLOUR = "#b00020"
#: What happened to a scene's music (``rescore.Decision.action``), in plain words, with a tooltip.
MUSIC = {
    "kept": ("kept", "Its picture and mood did not change: its music is the same, note for note"),
    "moved": ("moved", "Its picture did not change but moved: its music moved with it, note for note"),
    "regenerated": ("regenerated", "New music, written to join the music kept around it"),
    "new": ("new music", "New music: the scene is new, or its picture changed"),
}


def mood_names() -> tuple[str, ...]:
    """The named moods an editor may pick (``emsync_plugin.emotion.overrides.MOODS``)."""
    from emsync_plugin.emotion.overrides import MOODS

    return tuple(MOODS)


def nearest_mood(valence: float, arousal: float) -> str:
    """The named mood (``overrides.MOODS``) nearest to a valence/arousal: what the Feels column says."""
    from emsync_plugin.emotion.overrides import MOODS

    return min(MOODS, key=lambda name: (MOODS[name][0] - valence) ** 2 + (MOODS[name][1] - arousal) ** 2)


def parse_mood(text: str) -> tuple[float, float, str]:
    """``(valence, arousal, text for ScoreOptions.emotion)`` of a Mood cell; ValueError says what is wrong."""
    from emsync_plugin.emotion.overrides import MOODS
    from emsync_plugin.emotion.overrides import parse_mood as core_parse

    v, a, label = core_parse(text)
    if label in MOODS:
        return v, a, label
    v, a = round(v, 2) + 0.0, round(a, 2) + 0.0  # what the table shows is what is passed on
    return v, a, f"{v:.2f},{a:.2f}"


def top_face(probs) -> str:
    """``"happy 62%"``: the face model's most likely class, or "" without faces."""
    if not probs:
        return ""
    name = max(probs, key=probs.get)
    return f"{name} {float(probs[name]):.0%}"


class MoodDelegate(QStyledItemDelegate):
    """The Mood cell's editor: a combo box of "auto" and the named moods, in which
    ``valence,arousal`` may also be typed. The text it commits is checked by the panel."""

    def createEditor(self, parent, option, index):  # noqa: N802 (Qt override)
        combo = QComboBox(parent)
        combo.setEditable(True)
        combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        combo.addItems([AUTO, *mood_names()])
        combo.setToolTip("A mood name, or valence,arousal from -1 to 1 (e.g. 0.2,0.7); auto: the analysis")
        combo.activated.connect(lambda _=None, c=combo: self._commit(c))
        return combo

    def _commit(self, combo: QComboBox) -> None:
        self.commitData.emit(combo)
        self.closeEditor.emit(combo)

    def setEditorData(self, editor, index):  # noqa: N802
        editor.setCurrentText(str(index.data() or AUTO))

    def setModelData(self, editor, model, index):  # noqa: N802
        model.setData(index, editor.currentText().strip() or AUTO)


def timecode(seconds: float, timeline) -> str:
    """``seconds`` as the editor sees it in Kdenlive: drop-frame (``;``) when the project is."""
    return format_timecode(seconds, timeline.rate, bool(getattr(timeline, "drop_frame", False)))


def fill_scenes(table: QTableWidget, timeline) -> None:
    """One row per scene of ``timeline``, the mood cells empty ("auto")."""
    table.setRowCount(len(timeline.scenes))
    for row, scene in enumerate(timeline.scenes):
        values = (
            str(scene.index), timecode(scene.start, timeline), timecode(scene.end, timeline),
            f"{scene.end - scene.start:.2f} s", Path(scene.media).name if scene.media else "(gap)",
            "", "", "", "", "", AUTO, "",
        )
        for col, text in enumerate(values):
            item = QTableWidgetItem(text)
            if col not in EDITABLE:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            if col < COL_MEDIA or col in (COL_VALENCE, COL_AROUSAL):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if col == COL_MEDIA and scene.media:
                item.setToolTip(str(scene.media))
            table.setItem(row, col, item)


def _look(override, mood, analyzed: bool, missing: bool) -> tuple[str, str, str, str, str | None]:
    """(valence, arousal, source, source tooltip, source colour) of a row."""
    if override is not None:
        return f"{override[0]:+.2f}", f"{override[1]:+.2f}", YOU, "Set by you; wins over markers and the analysis", None
    if analyzed:
        source, tip = SOURCES.get(mood.source, (mood.source, ""))
        return f"{mood.valence:+.2f}", f"{mood.arousal:+.2f}", source, tip, None
    if missing:
        return "", "", "media missing", "The media file is missing: relink it or set this scene's mood", _ERROR_COLOUR
    if mood is not None:
        return "", "", "", "Not analyzed while you had overridden it: click Analyze scenes again", None
    return "", "", "", "Click Analyze scenes to estimate this scene's mood", None


def paint_mood(table: QTableWidget, row: int, override, mood, analyzed: bool, missing: bool) -> None:
    """Fill a row's Valence, Arousal, Source, Faces and Mood cells; overridden rows are bold.

    ``override`` is the editor's ``(valence, arousal, text)`` or None, ``mood`` the scene's
    ``SceneMood`` from the last analysis or None, ``analyzed`` whether that mood counts.
    """
    valence, arousal, source, tip, colour = _look(override, mood, analyzed, missing)
    probs = getattr(mood, "probs", None) if mood is not None else None
    feels = nearest_mood(float(valence), float(arousal)) if valence else ""
    if override is not None and not override[2][:1].isdigit() and not override[2].startswith("-"):
        feels = override[2]  # the name the editor picked
    cells = {
        COL_FEELS: feels, COL_VALENCE: valence, COL_AROUSAL: arousal, COL_SOURCE: source, COL_FACES: top_face(probs),
        COL_MOOD: override[2] if override is not None else AUTO,
    }
    items = [table.item(row, col) for col in range(len(TABLE_COLUMNS))]
    for col, text in cells.items():
        _cell(items[col]).setText(text)
    _cell(items[COL_SOURCE]).setToolTip(tip)
    _cell(items[COL_FEELS]).setToolTip(f"valence {valence}, arousal {arousal} (Show valence/arousal)" if valence else "")
    _cell(items[COL_SOURCE]).setForeground(QBrush(QColor(colour)) if colour else QBrush())
    if probs:
        ranked = sorted(probs.items(), key=lambda kv: -kv[1])
        _cell(items[COL_FACES]).setToolTip(", ".join(f"{k} {float(p):.0%}" for k, p in ranked))
    _cell(items[COL_MOOD]).setToolTip("Double-click to set this scene's mood")
    for item in items:
        font = _cell(item).font()
        if font.bold() != (override is not None):
            font.setBold(override is not None)
            _cell(item).setFont(font)


def music_text(decision) -> str:
    """A ``rescore.Decision`` in plain words: "kept", "moved (+1.00 s)", "regenerated (mood changed)", "new music"."""
    word = MUSIC.get(decision.action, (decision.action, ""))[0]
    if decision.action == "moved":
        return f"{word} ({decision.shift:+.2f} s)"
    if decision.action == "regenerated" and decision.reason:
        return f"{word} ({decision.reason})"
    return word


def music_summary(decisions) -> str:
    """One line: which scenes kept, moved or got new music (``"Music: kept scenes 1, 3-4; regenerated scene 2."``)."""
    groups: dict[str, list[int]] = {}
    for d in decisions:
        groups.setdefault(MUSIC.get(d.action, (d.action, ""))[0], []).append(d.index)
    parts = [f"{word} scene{'s' if len(indices) > 1 else ''} {ranges(indices)}" for word, indices in groups.items()]
    return f"Music: {'; '.join(parts)}." if parts else ""


def ranges(indices: list[int]) -> str:
    """``[1, 2, 3, 5]`` as ``"1-3, 5"``."""
    runs: list[list[int]] = []
    for n in sorted(indices):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def paint_music_column(table: QTableWidget, timeline, decisions) -> None:
    """Fill every row's Music cell from a score's ``rescore.Decision`` s (rows are ``timeline``'s scenes)."""
    by_scene = {d.index: d for d in decisions}
    for row, scene in enumerate(timeline.scenes):
        paint_music(table, row, by_scene.get(scene.index))


def analysis_summary(moods, overridden) -> str:
    """``"7 scenes: 5 from faces, 2 from you. "``: where the analysis's moods came from."""
    counts: dict[str, int] = {}
    for m in moods:
        label = YOU if m.index in overridden else SOURCES.get(m.source, (m.source, ""))[0]
        counts[label] = counts.get(label, 0) + 1
    return f"{len(moods)} scenes: " + ", ".join(f"{n} from {k}" for k, n in counts.items()) + ". "


def scene_spans(timeline) -> list[tuple[float, float]]:
    """(start, end) of each scene: what tells whether two readings of a project are the same cuts."""
    return [(s.start, s.end) for s in timeline.scenes] if timeline is not None else []


def paint_music(table: QTableWidget, row: int, decision) -> None:
    """Fill a row's Music cell from the score's ``rescore.Decision`` (None: clear it)."""
    item = _cell(table.item(row, COL_MUSIC))
    item.setText("" if decision is None else music_text(decision))
    tip = "" if decision is None else MUSIC.get(decision.action, ("", ""))[1]
    if decision is not None and decision.previous is not None and decision.previous != decision.index:
        tip += f" (it was scene {decision.previous})"
    item.setToolTip(tip)


def _cell(item: QTableWidgetItem | None) -> QTableWidgetItem:
    if item is None:  # fill_scenes made every cell
        raise LookupError("the scene table is missing a cell")
    return item


class SceneTable:
    """The scene table's cells as the panel's state (a mixin of :class:`.panel.EmsyncPanel`): the
    editor's overrides typed into a row, and each row painted from the moods and overrides."""

    table: QTableWidget
    mood_label: QLabel
    timeline: Timeline | None
    moods: dict[int, SceneMood]  # scene index -> SceneMood of the last analysis (or score)
    overrides: dict[int, tuple[float, float, str]]  # scene index -> (valence, arousal, text)
    _analyzed_with: set[int]  # scenes overridden when self.moods was made (not analyzed)
    _missing: set[int]  # scenes the last MediaError was about
    _filling: bool

    def show_advanced(self, on: bool) -> None:
        """Show or hide the Valence and Arousal columns (the Feels column names the mood)."""
        for col in ADVANCED:
            self.table.setColumnHidden(col, not on)

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
            v, a, _ = self.overrides[index]
            return v, a
        mood = self.moods.get(index)
        if mood is not None and index not in self._analyzed_with:
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
                    mood = self.moods.get(scene.index)
                    analyzed = mood is not None and scene.index not in self._analyzed_with
                    paint_mood(self.table, row, self.overrides.get(scene.index), mood, analyzed, scene.index in self._missing)
        finally:
            self._filling = False

    def _say(self, text: str, error: bool = False) -> None:
        self.mood_label.setText(text)
        self.mood_label.setStyleSheet("color: #b00020;" if error else "")

