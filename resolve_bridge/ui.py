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
    style_names,
)

logger = logging.getLogger(__name__)

WINDOW_ID = "EmsyncWin"  # the settings window, found again by a second click
TIMER_ID = "EmsyncTick"
TICK_MS = 100

Analyze = Callable[[BridgeOptions], Any]  # a worker.Job whose result is the scene moods (mood rows)
Start = Callable[[], Any]  # starts a worker.Job
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
            "settings: engine={e}, style={st}, valence={v}, arousal={a}, seed={s}, scene moods: {m} "
            "(previous run's or defaults)".format(
                e=defaults.engine, st=defaults.style, v=_auto(defaults.valence), a=_auto(defaults.arousal), s=defaults.seed,
                m=format_emotion(defaults.emotion) or "auto",
            )
        )
        return defaults

    def show_result(self, text: str, music) -> None:
        """The run's outcome: ``text`` was said already; what happened to each scene's music
        (music rows), one Console line per kind: kept, moved, regenerated, new music."""
        for line in format_music(music).splitlines():
            self.say("music " + line)

    def raise_open(self) -> bool:
        """True when a window of an earlier click is open (the Console has none)."""
        return False

    def show_range(self, text: str) -> None:
        """Which part of the timeline is scored (the timeline's marks, or all of it)."""
        self.say(text)

    def run_job(self, start: Start) -> Any:
        """Run the job ``start()`` makes and wait for it, its progress on the Console."""
        return start().wait(self.progress)

    def close(self) -> None:
        """The run is over (nothing to close on the Console)."""

    def show_moods(self, rows, emotion=()) -> None:
        """The mood of each scene, one Console line each."""
        if rows:
            self.say(f"scene moods ({len(rows)} scenes; set them in the dialog's Scene moods, e.g. {EMOTION_EXAMPLE}):")
            for line in format_moods(rows, emotion).splitlines():
                self.say("  " + line)


def _auto(value) -> str:
    return "auto" if value is None else f"{value:+.2f}"


class FusionUI(ConsoleUI):
    """The settings dialog through Fusion's UIManager (``fusion.UIManager``): it stays open while
    the scenes are analysed and the score is made (a UIManager timer polls the job, Cancel stops
    it) and shows the outcome or the error; a second run finds the open window and raises it."""

    def __init__(self, fusion, bmd, stream=None):
        super().__init__(stream)
        self.ui = fusion.UIManager
        self.disp = bmd.UIDispatcher(self.ui)
        self.dialog: _SettingsDialog | None = None
        self.range_text = ""

    def raise_open(self) -> bool:
        """True when the EMSYNC window is open already (a second click): it is raised instead."""
        try:
            win = self.ui.FindWindow(WINDOW_ID)
        except Exception:
            logger.debug("FindWindow failed", exc_info=True)
            return False
        if not win:
            return False
        win.Show()
        win.Raise()
        return True

    def show_range(self, text: str) -> None:
        super().show_range(text)
        self.range_text = text

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
        if self.dialog is not None:
            self.dialog.finish(f"Error: {message}")
        else:
            self._message("EmsyncError", message, 140)

    def show_result(self, text: str, music) -> None:
        super().show_result(text, music)
        summary = format_music(music)
        shown = f"{text}\n\nMusic of each scene:\n{summary}" if summary else text
        if self.dialog is not None:
            self.dialog.finish(shown)
        else:
            self._message("EmsyncDone", shown, 180)

    def run_job(self, start: Start) -> Any:
        if self.dialog is None:
            return super().run_job(start)
        return self.dialog.run_job(start)

    def close(self) -> None:
        if self.dialog is not None:
            self.dialog.close()
            self.dialog = None

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
            self.dialog = _SettingsDialog(self, defaults, list(engines), analyze, check)
        except Exception:
            logger.debug("UIManager settings dialog failed", exc_info=True)
            return super().ask_options(defaults, engines, analyze, check)
        return self.dialog.run()


def _mood_names() -> str:
    try:
        from emsync_plugin.emotion.overrides import MOODS
    except ImportError:
        return "happy, sad, tense, calm, excited, ..."
    return ", ".join(MOODS)


def _settings_layout(ui, defaults: BridgeOptions, range_text: str = "") -> Any:
    """The settings window's widgets (UIManager layout)."""
    def mood_row(key, label, value):
        return ui.HGroup({"Weight": 0}, [
            ui.CheckBox({"ID": key + "On", "Text": label, "Checked": value is not None, "Weight": 0.35}),
            ui.Slider({"ID": key, "Minimum": -100, "Maximum": 100, "Value": int(round((value or 0.0) * 100))}),
        ])

    return ui.VGroup([
        ui.Label({"Text": "Music whose chords land on the cuts of the current timeline.", "WordWrap": True, "Weight": 0}),
        ui.HGroup({"Weight": 0}, [ui.Label({"Text": "Engine", "Weight": 0.35}), ui.ComboBox({"ID": "Engine"})]),
        ui.HGroup({"Weight": 0}, [
            ui.Label({"Text": "Style", "Weight": 0.35}),
            ui.ComboBox({"ID": "Style", "ToolTip": "orchestration: instruments, drums, dynamics (emsync styles)"}),
        ]),
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
        ui.TextEdit({"ID": "Moods", "ReadOnly": True,
                     "Font": ui.Font({"Family": "Monospace", "MonoSpaced": True}),
                     "Text": "Analyze scenes shows the mood emsync estimates for each scene."}),
        ui.Label({"ID": "Range", "Text": range_text, "WordWrap": True, "Weight": 0}),
        ui.Slider({"ID": "Progress", "Minimum": 0, "Maximum": 100, "Value": 0, "Enabled": False, "Weight": 0,
                   "ToolTip": "progress of the analysis or the score"}),
        ui.Label({"ID": "Status", "Text": "", "WordWrap": True, "Weight": 0}),
        ui.HGroup({"Weight": 0}, [
            ui.HGap(0, 1), ui.Button({"ID": "Cancel", "Text": "Cancel"}),
            ui.Button({"ID": "Generate", "Text": "Generate score"}),
        ]),
    ])


class _SettingsDialog:
    """The settings window, open for the whole run: its widgets, the running job, the outcome.

    Work runs as a :class:`resolve_bridge.worker.Job` polled by a UIManager timer, so no button
    handler blocks the window; without a timer the job is waited for (the window does not repaint).
    """

    def __init__(self, owner: FusionUI, defaults: BridgeOptions, engines: list[str],
                 analyze: Analyze | None, check: Check | None):
        self.owner, self.defaults, self.analyze, self.check = owner, defaults, analyze, check
        self.chosen: BridgeOptions | None = None
        self.job: Any = None
        self.ended: Any = None  # the last job that ended
        self.on_done: Callable[[Any], None] = lambda job: None
        self.win = owner.disp.AddWindow(
            {"ID": WINDOW_ID, "WindowTitle": "EMSYNC Score", "Geometry": [400, 200, 640, 680]},
            _settings_layout(owner.ui, defaults, owner.range_text),
        )
        self.items = self.win.GetItems()
        self.items["Engine"].AddItems(engines)
        if defaults.engine in engines:
            self.items["Engine"].CurrentIndex = engines.index(defaults.engine)
        styles, default = style_names()
        self.items["Style"].AddItems(list(styles))
        self.items["Style"].CurrentIndex = styles.index(defaults.style if defaults.style in styles else default)
        self.timer = self._timer()

    def _timer(self) -> Any:
        try:
            timer = self.owner.ui.Timer({"ID": TIMER_ID, "Interval": TICK_MS})
            self.owner.disp.On[TIMER_ID].Timeout = self.on_tick
            return timer
        except Exception:  # not every Resolve build has ui.Timer: jobs are waited for
            logger.debug("no UIManager timer", exc_info=True)
            return None

    def run(self) -> BridgeOptions | None:
        """Show the window until Generate (the options, the window stays open) or Cancel (None)."""
        if self.analyze is not None:
            self.win.On.Analyze.Clicked = self.on_analyze
        else:
            self.items["Analyze"].Enabled = False
        self.win.On.Generate.Clicked = self.on_generate
        self.win.On.Cancel.Clicked = self.on_cancel
        self.win.On[WINDOW_ID].Close = self.on_close
        self.win.Show()
        self.owner.disp.RunLoop()
        return self.chosen

    def current(self) -> BridgeOptions:
        """The dialog's choices; BridgeError for bad scene moods."""
        items = self.items
        values: dict[str, Any] = {"engine": str(items["Engine"].CurrentText or self.defaults.engine),
                                  "style": str(items["Style"].CurrentText or self.defaults.style),
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

    def progress(self, stage: str, fraction: float) -> None:
        self.items["Progress"].Value = int(round(max(0.0, min(1.0, fraction)) * 100))
        self.items["Status"].Text = f"{stage}..."
        self.owner.progress(stage, fraction)

    def _buttons(self, enabled: bool) -> None:
        self.items["Generate"].Enabled = enabled
        self.items["Analyze"].Enabled = enabled and self.analyze is not None

    def _start(self, job: Any, on_done: Callable[[Any], None]) -> None:
        self.job, self.on_done = job, on_done
        self._buttons(False)
        self.items["Progress"].Value = 0
        if self.timer is not None:
            self.timer.Start()
        else:
            self.on_tick(None, block=True)

    def on_tick(self, ev, block: bool = False) -> None:
        """The timer: pass the job's progress on; when it has ended, what comes next."""
        job = self.job
        if job is None:
            return
        if block:
            try:
                job.wait(self.progress)
            except Exception:  # job.result() says it again to whoever asks
                logger.debug("job failed", exc_info=True)
        elif not job.poll(self.progress):
            return
        self.job, self.ended = None, job
        if self.timer is not None:
            self.timer.Stop()
        self._buttons(True)
        self.on_done(job)

    def on_analyze(self, ev) -> None:
        assert self.analyze is not None  # the button is disabled without it
        try:
            options = self.current()
            self.status("analyzing the scenes...")
            self._start(self.analyze(options), lambda job: self.analyzed(job, options))
        except BridgeError as exc:
            self.status(str(exc).rstrip(".") + ".")

    def analyzed(self, job, options: BridgeOptions) -> None:
        """Show the analysis' scene moods, or why there are none."""
        try:
            rows = job.result()
        except BridgeError as exc:
            self.status(str(exc).rstrip(".") + ".")
            return
        except Exception as exc:  # the dialog stays usable; the Console has the details
            if type(exc).__name__ == "Cancelled":
                self.status("Analysis cancelled.")
                return
            traceback.print_exc()
            self.status(f"internal error ({type(exc).__name__}: {exc}); the Console shows the details")
            return
        self.items["Moods"].Text = format_moods(rows, options.emotion)
        self.status(f"{len(rows)} scenes. Set any scene's mood under Scene moods, then Generate score.")

    def on_generate(self, ev) -> None:
        try:
            self.chosen = self.current()
        except BridgeError as exc:  # stay open: the editor fixes the text
            self.status(str(exc).rstrip(".") + ".")
            return
        self._buttons(False)
        self.owner.disp.ExitLoop()

    def on_cancel(self, ev) -> None:
        """Cancel stops a running job (the timeline is untouched), else closes the window."""
        if self.job is not None:
            self.job.cancel()
            self.status("cancelling...")
            if self.timer is None:
                self.owner.disp.ExitLoop()
            return
        self.owner.disp.ExitLoop()

    def on_close(self, ev) -> None:
        if self.job is not None:
            self.job.cancel()
        self.owner.disp.ExitLoop()

    def run_job(self, start: Start) -> Any:
        """Run a job with the window open (Cancel stops it); its result, Cancelled, or its error."""
        self.status("working...")
        self._start(start(), lambda job: self.owner.disp.ExitLoop())
        if self.job is not None:
            self.owner.disp.RunLoop()
        job = self.ended or self.job
        if self.job is not None:  # the window was closed while it ran
            self.job, self.ended = None, self.job
            if self.timer is not None:
                self.timer.Stop()
        self._buttons(False)
        return job.result()

    def finish(self, text: str) -> None:
        """Show the outcome in the window until the editor closes it."""
        self._buttons(False)
        self.items["Progress"].Value = 100 if not text.startswith("Error") else self.items["Progress"].Value
        self.items["Status"].Text = text
        self.items["Cancel"].Text = "Close"
        self.owner.disp.RunLoop()

    def close(self) -> None:
        """Hide the window and retire its ID, so that the next click opens a new one."""
        if self.timer is not None:
            self.timer.Stop()
        self.win.Hide()
        self.win.ID = f"{WINDOW_ID}.closed.{id(self.win)}"


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
