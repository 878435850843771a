"""What the editor sees of the Resolve script: Resolve's Console, and a dialog when there is one.

:class:`ConsoleUI` writes to the Console (Workspace ▸ Console) and reuses the previous run's
settings; :class:`FusionUI` asks for the settings in a Fusion UIManager dialog ("Analyze scenes"
shows each scene's mood, "Scene moods" takes overrides such as ``3=tense, 5=0.2,0.7``) and shows
errors in a box. The UIManager is not in Resolve's scripting README but in the Fusion scripting
guide, so any failure to build a window falls back to the Console.
"""
from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from .options import (
    EMOTION_EXAMPLE,
    BridgeError,
    BridgeOptions,
    format_emotion,
    format_moods,
    format_music,
    format_scenes,
    parse_scenes,
    split_emotion,
)

logger = logging.getLogger(__name__)

Analyze = Callable[[BridgeOptions], list]  # the scene moods (mood rows) for these options
Check = Callable[[str], tuple]  # Scene moods text -> checked items, or BridgeError


class ConsoleUI:
    """Talks to the editor through Resolve's Console (stdout of a Resolve script)."""

    def __init__(self, stream=None):
        self.stream = stream
        self._last = ("", -1)

    def say(self, text: str) -> None:
        """One line on the Console."""
        out = self.stream or sys.stdout
        out.write(f"EMSYNC: {text}\n")
        out.flush()

    def info(self, text: str) -> None:
        self.say(text)

    def error(self, message: str) -> None:
        """Show an error the editor caused or can fix (one line)."""
        self.say(f"error: {message}")

    def progress(self, stage: str, fraction: float) -> None:
        """Stage changes and every 10 % step; the Console has no progress bar."""
        step = int(max(0.0, min(1.0, fraction)) * 10)
        if (stage, step) != self._last:
            self._last = (stage, step)
            self.say(f"{stage} ({step * 10} %)")

    def ask_options(self, defaults: BridgeOptions, engines: Sequence[str], analyze: Analyze | None = None,
                    check: Check | None = None) -> BridgeOptions | None:
        """No dialog on the Console: run with the previous (or default) settings.

        ``analyze(options)`` would return the scene moods for a dialog to show and ``check(text)``
        would check its Scene moods; the Console shows the moods the score was made with instead.
        """
        self.say(
            "settings: engine={e}, valence={v}, arousal={a}, seed={s}, scene moods: {m} (previous run's or defaults)".format(
                e=defaults.engine, v=_auto(defaults.valence), a=_auto(defaults.arousal), s=defaults.seed,
                m=format_emotion(defaults.emotion) or "auto",
            )
        )
        return defaults

    def show_result(self, text: str, music) -> None:
        """The run's outcome: ``text`` was said already; what happened to each scene's music
        (music rows), one Console line per kind: kept, moved, regenerated, new music."""
        for line in format_music(music).splitlines():
            self.say("music " + line)

    def show_moods(self, rows, emotion=()) -> None:
        """The mood of each scene, one Console line each."""
        if rows:
            self.say(f"scene moods ({len(rows)} scenes; set them in the dialog's Scene moods, e.g. {EMOTION_EXAMPLE}):")
            for line in format_moods(rows, emotion).splitlines():
                self.say("  " + line)


def _auto(value) -> str:
    return "auto" if value is None else f"{value:+.2f}"


class FusionUI(ConsoleUI):
    """A settings dialog and error boxes through Fusion's UIManager (``fusion.UIManager``)."""

    def __init__(self, fusion, bmd, stream=None):
        super().__init__(stream)
        self.ui = fusion.UIManager
        self.disp = bmd.UIDispatcher(self.ui)

    def run(self, win, close_ids) -> None:
        """Show ``win`` until one of the ``close_ids`` buttons (or a handler) ends the loop."""
        def close(ev):
            self.disp.ExitLoop()

        for wid in close_ids:
            getattr(win.On, wid).Clicked = close
        win.Show()
        self.disp.RunLoop()
        win.Hide()

    def error(self, message: str) -> None:
        super().error(message)
        self._message("EmsyncError", message, 140)

    def show_result(self, text: str, music) -> None:
        super().show_result(text, music)
        summary = format_music(music)
        self._message("EmsyncDone", f"{text}\n\nMusic of each scene:\n{summary}" if summary else text, 180)

    def _message(self, wid: str, message: str, height: int) -> None:
        """A window showing ``message`` with an OK button (the Console has it too)."""
        try:
            ui = self.ui
            win = self.disp.AddWindow(
                {"ID": wid, "WindowTitle": "EMSYNC Score", "Geometry": [400, 300, 520, height]},
                ui.VGroup([
                    ui.Label({"ID": "Message", "Text": message, "WordWrap": True}),
                    ui.HGroup({"Weight": 0}, [ui.HGap(0, 1), ui.Button({"ID": "OK", "Text": "OK"})]),
                ]),
            )
            getattr(win.On, wid).Close = lambda ev: self.disp.ExitLoop()
            self.run(win, ["OK"])
        except Exception:  # the Console lines are the fallback
            logger.debug("UIManager message window failed", exc_info=True)

    def ask_options(self, defaults: BridgeOptions, engines: Sequence[str], analyze: Analyze | None = None,
                    check: Check | None = None) -> BridgeOptions | None:
        try:
            return _SettingsDialog(self, defaults, list(engines), analyze, check).run()
        except Exception:
            logger.debug("UIManager settings dialog failed", exc_info=True)
            return super().ask_options(defaults, engines, analyze, check)


def _mood_names() -> str:
    try:
        from emsync_plugin.emotion.overrides import MOODS
    except ImportError:
        return "happy, sad, tense, calm, excited, ..."
    return ", ".join(MOODS)


def _settings_layout(ui, defaults: BridgeOptions) -> Any:
    """The settings window's widgets (UIManager layout)."""
    def mood_row(key, label, value):
        return ui.HGroup({"Weight": 0}, [
            ui.CheckBox({"ID": key + "On", "Text": label, "Checked": value is not None, "Weight": 0.35}),
            ui.Slider({"ID": key, "Minimum": -100, "Maximum": 100, "Value": int(round((value or 0.0) * 100))}),
        ])

    return ui.VGroup([
        ui.Label({"Text": "Music whose chords land on the cuts of the current timeline.", "WordWrap": True, "Weight": 0}),
        ui.HGroup({"Weight": 0}, [ui.Label({"Text": "Engine", "Weight": 0.35}), ui.ComboBox({"ID": "Engine"})]),
        mood_row("Valence", "Valence (sad - happy)", defaults.valence),
        mood_row("Arousal", "Arousal (calm - intense)", defaults.arousal),
        ui.HGroup({"Weight": 0}, [
            ui.Label({"Text": "Seed", "Weight": 0.35}),
            ui.SpinBox({"ID": "Seed", "Minimum": 0, "Maximum": 2**31 - 1, "Value": defaults.seed}),
        ]),
        ui.HGroup({"Weight": 0}, [
            ui.Label({"Text": "Scene moods", "Weight": 0.35}),
            ui.LineEdit({"ID": "SceneMoods", "Text": format_emotion(defaults.emotion),
                         "PlaceholderText": f"auto, or e.g. {EMOTION_EXAMPLE}"}),
            ui.Button({"ID": "Analyze", "Text": "Analyze scenes", "Weight": 0}),
        ]),
        ui.Label({"Text": f"N=MOOD or N=V,A per scene (V, A from -1 to 1). Moods: {_mood_names()}.",
                  "WordWrap": True, "Weight": 0}),
        ui.HGroup({"Weight": 0}, [
            ui.Label({"Text": "Regenerate scenes", "Weight": 0.35}),
            ui.LineEdit({"ID": "Regenerate", "Text": format_scenes(defaults.regenerate),
                         "PlaceholderText": "none, or e.g. 3,5: new music though unchanged"}),
        ]),
        ui.HGroup({"Weight": 0}, [
            ui.Label({"Text": "Lock scenes", "Weight": 0.35}),
            ui.LineEdit({"ID": "Lock", "Text": format_scenes(defaults.lock),
                         "PlaceholderText": "none, or e.g. 2: their music must stay as it is"}),
        ]),
        ui.CheckBox({"ID": "Fresh", "Text": "Fresh score (new music for every scene; otherwise unchanged scenes keep theirs)",
                     "Checked": defaults.fresh, "Weight": 0}),
        ui.TextEdit({"ID": "Moods", "ReadOnly": True, "LineWrapMode": "NoWrap",
                     "Font": ui.Font({"Family": "Monospace", "MonoSpaced": True}),
                     "PlainText": "Analyze scenes shows the mood emsync estimates for each scene."}),
        ui.Label({"ID": "Status", "Text": "", "WordWrap": True, "Weight": 0}),
        ui.HGroup({"Weight": 0}, [
            ui.HGap(0, 1), ui.Button({"ID": "Cancel", "Text": "Cancel"}),
            ui.Button({"ID": "Generate", "Text": "Generate score"}),
        ]),
    ])


class _SettingsDialog:
    """One showing of the settings window: its widgets, buttons and the options chosen."""

    def __init__(self, owner: FusionUI, defaults: BridgeOptions, engines: list[str],
                 analyze: Analyze | None, check: Check | None):
        self.owner, self.defaults, self.analyze, self.check = owner, defaults, analyze, check
        self.chosen: BridgeOptions | None = None
        self.win = owner.disp.AddWindow(
            {"ID": "EmsyncWin", "WindowTitle": "EMSYNC Score", "Geometry": [400, 200, 640, 640]},
            _settings_layout(owner.ui, defaults),
        )
        self.items = self.win.GetItems()
        self.items["Engine"].AddItems(engines)
        if defaults.engine in engines:
            self.items["Engine"].CurrentIndex = engines.index(defaults.engine)

    def run(self) -> BridgeOptions | None:
        """Show the window; the options chosen, or None when cancelled."""
        if self.analyze is not None:
            self.win.On.Analyze.Clicked = self.on_analyze
        else:
            self.items["Analyze"].Enabled = False
        self.win.On.Generate.Clicked = self.on_generate
        self.win.On.EmsyncWin.Close = lambda ev: self.owner.disp.ExitLoop()
        self.owner.run(self.win, ["Cancel"])
        return self.chosen

    def current(self) -> BridgeOptions:
        """The dialog's choices; BridgeError for bad scene moods."""
        items = self.items
        values: dict[str, Any] = {"engine": str(items["Engine"].CurrentText or self.defaults.engine),
                                  "seed": int(items["Seed"].Value)}
        for key in ("Valence", "Arousal"):
            on = bool(items[key + "On"].Checked)
            values[key.lower()] = round(items[key].Value / 100.0, 2) if on else None
        text = str(items["SceneMoods"].Text or "")
        values["emotion"] = self.check(text) if self.check is not None else split_emotion(text)
        values["fresh"] = bool(items["Fresh"].Checked)
        values["regenerate"] = parse_scenes(str(items["Regenerate"].Text or ""), "Regenerate scenes")
        values["lock"] = parse_scenes(str(items["Lock"].Text or ""), "Lock scenes")
        if values["fresh"] and values["lock"]:
            raise BridgeError("Fresh score gives every scene new music, so no scene can be locked: clear Lock scenes, "
                              "or untick Fresh score")
        return replace(self.defaults, **values)

    def status(self, text: str) -> None:
        self.items["Status"].Text = text
        if text:
            self.owner.say(text)

    def on_analyze(self, ev) -> None:
        assert self.analyze is not None  # the button is disabled without it
        try:
            options = self.current()
            self.status("analyzing the scenes...")
            rows = self.analyze(options)
        except BridgeError as exc:
            self.status(str(exc).rstrip(".") + ".")
            return
        except Exception as exc:  # the dialog stays usable; the Console has the details
            traceback.print_exc()
            self.status(f"internal error ({type(exc).__name__}: {exc}); the Console shows the details")
            return
        self.items["Moods"].PlainText = format_moods(rows, options.emotion)
        self.status(f"{len(rows)} scenes. Set any scene's mood under Scene moods, then Generate score.")

    def on_generate(self, ev) -> None:
        try:
            self.chosen = self.current()
        except BridgeError as exc:  # stay open: the editor fixes the text
            self.status(str(exc).rstrip(".") + ".")
            return
        self.owner.disp.ExitLoop()


def make_ui(ns: dict) -> ConsoleUI:
    """A FusionUI when Resolve injected ``fusion``/``bmd`` (in the script's globals ``ns``) with a
    UIManager, else the Console."""
    fusion = ns.get("fusion") or ns.get("fu")
    bmd = ns.get("bmd")
    if fusion is None and ns.get("resolve") is not None:
        try:
            fusion = ns["resolve"].Fusion()
        except Exception:
            fusion = None
    if fusion is not None and bmd is not None:
        try:
            if getattr(fusion, "UIManager", None) is not None:
                return FusionUI(fusion, bmd)
        except Exception:
            logger.debug("no UIManager", exc_info=True)
    return ConsoleUI()
