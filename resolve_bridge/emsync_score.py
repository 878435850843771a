"""EMSYNC Score: a DaVinci Resolve script (Workspace ▸ Scripts ▸ Utility ▸ EMSYNC Score).

What it does, in order, touching the timeline only at the very end:

1. finds the current project and timeline (``ProjectManager.GetCurrentProject``,
   ``Project.GetCurrentTimeline``);
2. asks for the settings (engine, valence/arousal overrides, per-scene moods, seed) in a small
   Fusion UIManager dialog when Resolve provides one, otherwise reuses the settings of the
   previous run. In the dialog, "Analyse scenes" shows each scene's estimated mood (number,
   record in/out, valence, arousal, source, top face class: ``pipeline.estimate_moods``, what
   ``emsync analyze`` prints) and "Scene moods" takes overrides such as ``3=tense, 5=0.2,0.7``
   (scene numbers as the analysis shows them; the moods are ``emsync_plugin.emotion.overrides``'
   vocabulary). Bad text is shown in the dialog, which stays open;
3. exports the timeline (``Timeline.Export``) as OTIO when this Resolve has ``EXPORT_OTIO``,
   else as FCP 7 XML, into a run folder that is kept (the WAV is written beside it, and
   Resolve's media pool refers to the WAV by path); the analysis uses the same export;
4. calls ``emsync_plugin.pipeline.score(..., ScoreOptions(write_timeline=False, emotion=...))``
   and prints the mood each scene was scored with on the Console;
5. imports the WAV into a media pool bin "EMSYNC" (``MediaPool.ImportMedia``), stores the
   settings - the scene moods included, so a re-run reuses them - as JSON under the
   third-party metadata key "emsync";
6. empties the audio track named "EMSYNC Score" (re-run) or adds a stereo one and names it,
   then appends the WAV at the timeline's start frame (``MediaPool.AppendToTimeline``).

Errors are printed to Resolve's Console (Workspace ▸ Console) and, when the UIManager is
available, shown in a dialog. An error before step 6 leaves the timeline untouched.

Only methods documented in Resolve's ``Developer/Scripting/README.txt`` are called. The script
runs under Resolve's own Python; it imports emsync from the environment that
``resolve_bridge/install.py`` recorded in the block below. When Resolve's Python is a different
version from that environment (compiled packages such as numpy would not load), the scoring runs
in a subprocess of the recorded interpreter instead: ``python -m resolve_bridge.emsync_score
--worker``, which speaks one JSON object per line on stdout (``{"command": "analyze"}``
requests the scene moods instead of a score).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

# --- emsync install: begin (resolve_bridge/install.py rewrites this block in the installed copy) ---
EMSYNC_PYTHON = None  # interpreter of the environment where emsync is installed
EMSYNC_PYTHON_VERSION = None  # its (major, minor)
EMSYNC_PATHS = []  # its import paths, put in front of sys.path when the versions match
# --- emsync install: end ---

TRACK_NAME = "EMSYNC Score"
BIN_NAME = "EMSYNC"
METADATA_KEY = "emsync"
PACKAGE_MODULE = "resolve_bridge.emsync_score"
WORKDIR_ENV = "EMSYNC_RESOLVE_DIR"
EMOTION_EXAMPLE = "3=tense, 5=0.2,0.7"
EMOTION_FORMS = (
    "Write N=MOOD or N=V,A for each scene, separated by commas, e.g. " + EMOTION_EXAMPLE + "; N is the "
    "scene number the analysis shows, MOOD a mood name ({moods}), V and A valence and arousal from -1 to 1"
)
MEDIA_ADVICE = (
    "Relink the media in Resolve, or give those scenes a mood under Scene moods in the EMSYNC Score dialog "
    "(e.g. " + EMOTION_EXAMPLE + "), or set Valence and Arousal for the whole timeline"
)

logger = logging.getLogger(__name__)


class BridgeError(Exception):
    """A problem in Resolve itself (no project, a locked track, a refused import).

    Like ``emsync_plugin.errors.EmsyncError`` its message is one line saying what to do; it is
    not a subclass only so that this script can start before emsync is importable.
    """


@dataclass(frozen=True)
class BridgeOptions:
    """The editor's choices; they become ``pipeline.ScoreOptions`` (plus write_timeline=False)."""

    engine: str = "baseline"
    valence: float | None = None
    arousal: float | None = None
    seed: int = 0
    loudness: float = -16.0
    fade: float = 3.0
    emotion: tuple = ()  # per-scene moods, ("3=tense", "5=0.2,0.7"); text is split (not checked) here

    def __post_init__(self):
        emotion = self.emotion
        if isinstance(emotion, str):
            emotion = split_emotion(emotion)
        object.__setattr__(self, "emotion", tuple(str(e).strip() for e in emotion or () if str(e).strip()))

    @classmethod
    def from_settings(cls, settings: dict | None) -> BridgeOptions:
        """The options stored by a previous run (unknown keys ignored, bad values dropped)."""
        if not settings:
            return cls()
        kwargs = {}
        for name, default in asdict(cls()).items():
            value = settings.get(name, default)
            if name == "emotion":
                if isinstance(value, (list, tuple)) and all(isinstance(e, str) for e in value):
                    kwargs[name] = tuple(value)
            elif value is None or isinstance(value, (int, float, str)):
                kwargs[name] = value
        try:
            return cls(**kwargs)
        except TypeError:
            return cls()


def split_emotion(text: str) -> tuple:
    """``"3=tense, 5=0.2,0.7"`` -> ``("3=tense", "5=0.2,0.7")``: a new item starts at ``N=``."""
    parts = re.split(r"(?:[,;\n]|\s)\s*(?=\d+\s*=)", str(text or ""))
    return tuple(p.strip().strip(",;").strip() for p in parts if p.strip().strip(",;").strip())


def format_emotion(emotion) -> str:
    """The text of the dialog's Scene moods field: ``"3=tense, 5=0.2,0.7"``."""
    return ", ".join(emotion or ())


def parse_emotion(emotion) -> tuple:
    """Check per-scene moods (text or items) with emsync's parser; the items, by scene number.

    A BridgeError says which item is wrong and how to write it. Without emsync in this
    interpreter (the subprocess case) only the form is checked here; the worker checks the rest.
    """
    items = split_emotion(emotion) if isinstance(emotion, str) else tuple(str(e).strip() for e in emotion or ())
    try:
        from emsync_plugin.emotion.overrides import MOODS, parse_mood
    except ImportError:
        MOODS, parse_mood = None, None  # noqa: N806
    forms = EMOTION_FORMS.format(moods=", ".join(MOODS) if MOODS else "happy, sad, tense, calm, ...")
    seen: dict = {}
    for item in items:
        number, sep, mood = item.partition("=")
        number = number.strip()
        if not sep or not mood.strip():
            raise BridgeError(f'Scene moods: "{item}" is not N=MOOD or N=V,A. {forms}')
        if not re.fullmatch(r"\d+", number) or int(number) < 1:
            raise BridgeError(f'Scene moods: "{number}" in "{item}" is not a scene number. {forms}')
        value = mood.strip()
        if parse_mood is not None:
            try:
                value = parse_mood(mood)[:2]
            except ValueError as exc:
                raise BridgeError(f'Scene moods: "{item}": {exc}. {forms}') from None
        scene = int(number)
        if scene in seen and seen[scene][1] != value:
            raise BridgeError(f'Scene moods: scene {scene} is given twice ("{seen[scene][0]}" and "{item}"). Keep one of them')
        seen.setdefault(scene, (f"{scene}={mood.strip()}", value))
    return tuple(seen[n][0] for n in sorted(seen))


@dataclass(frozen=True)
class Scored:
    """What the bridge needs of ``pipeline.ScoreResult`` (also what the worker sends back)."""

    wav: str
    midi: str
    sidecar: str | None
    lufs: float | None
    duration: float  # seconds
    rate: float  # frames per second, as the core read it from the export
    cuts: int
    scenes: int
    moods: list = field(default_factory=list)  # the mood each scene was scored with (mood_rows)

    @classmethod
    def from_result(cls, result) -> Scored:
        """Convert a ``pipeline.ScoreResult``."""
        tl = result.timeline
        lufs = result.lufs if result.lufs is not None and result.lufs == result.lufs else None
        return cls(
            wav=str(result.wav), midi=str(result.midi),
            sidecar=str(result.sidecar) if getattr(result, "sidecar", None) else None,
            lufs=None if lufs is None else float(lufs), duration=float(tl.duration), rate=float(tl.rate),
            cuts=len(tl.cuts), scenes=len(tl.scenes), moods=mood_rows(getattr(result, "moods", None) or (), tl),
        )


def mood_rows(moods, timeline) -> list:
    """``pipeline.SceneMood`` s as plain dicts (they cross the worker pipe), with Resolve's record timecodes."""
    rows = []
    for m in moods:
        probs = dict(getattr(m, "probs", None) or {})
        face = max(probs, key=probs.get) if probs else None
        rows.append({
            "index": int(m.index), "start": float(m.start), "end": float(m.end),
            "record_in": timecode(timeline.start + m.start, timeline.rate),
            "record_out": timecode(timeline.start + m.end, timeline.rate),
            "valence": float(m.valence), "arousal": float(m.arousal), "source": str(m.source),
            "face": None if face is None else f"{face} {float(probs[face]):.0%}",
        })
    return rows


def timecode(seconds: float, rate: float) -> str:
    """``HH:MM:SS:FF`` (non-drop, at the nominal rate), as Resolve shows record positions."""
    fps = max(1, int(round(rate)))
    frames = int(round(seconds * rate))
    s, f = divmod(frames, fps)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{f:02d}"


def format_moods(rows, emotion=()) -> str:
    """The scene moods as a table (the Console, the dialog); scenes in ``emotion`` read "you"."""
    overridden = set()
    for item in emotion or ():
        number = str(item).partition("=")[0].strip()
        if number.isdigit():
            overridden.add(int(number))
    lines = [f"{'#':>3}  {'record in':<11}  {'record out':<11}  {'valence':>7}  {'arousal':>7}  {'source':<8}  faces"]
    for r in rows:
        source = "you" if r["index"] in overridden else {"cli": "settings"}.get(r["source"], r["source"])
        lines.append(
            f"{r['index']:>3}  {r['record_in']:<11}  {r['record_out']:<11}  {r['valence']:>+7.2f}  {r['arousal']:>+7.2f}  "
            f"{source:<8}  {r.get('face') or ''}".rstrip()
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# What the user sees: Resolve's Console, and a UIManager dialog when there is one.


class ConsoleUI:
    """Talks to the user through Resolve's Console (stdout of a Resolve script)."""

    def __init__(self, stream=None):
        self.stream = stream
        self._last = ("", -1)

    def say(self, text: str) -> None:
        """One line on the Console."""
        print(f"EMSYNC: {text}", file=self.stream or sys.stdout, flush=True)

    def info(self, text: str) -> None:
        self.say(text)

    def error(self, message: str) -> None:
        """Show an error the user caused or can fix (one line)."""
        self.say(f"error: {message}")

    def progress(self, stage: str, fraction: float) -> None:
        """Stage changes and every 10 % step; the Console has no progress bar."""
        step = int(max(0.0, min(1.0, fraction)) * 10)
        if (stage, step) != self._last:
            self._last = (stage, step)
            self.say(f"{stage} ({step * 10} %)")

    def ask_options(self, defaults: BridgeOptions, engines, analyse=None) -> BridgeOptions | None:
        """No dialog on the Console: run with the previous (or default) settings.

        ``analyse(options)`` would return the scene moods (``mood_rows``) for a dialog to show;
        the Console shows the moods the score was made with instead (``show_moods``).
        """
        self.say(
            "settings: engine={e}, valence={v}, arousal={a}, seed={s}, scene moods: {m} (previous run's or defaults)".format(
                e=defaults.engine, v=_auto(defaults.valence), a=_auto(defaults.arousal), s=defaults.seed,
                m=format_emotion(defaults.emotion) or "auto",
            )
        )
        return defaults

    def show_moods(self, rows, emotion=()) -> None:
        """The mood of each scene, one Console line each."""
        if rows:
            self.say(f"scene moods ({len(rows)} scenes; set them in the dialog's Scene moods, e.g. {EMOTION_EXAMPLE}):")
            for line in format_moods(rows, emotion).splitlines():
                self.say("  " + line)


class FusionUI(ConsoleUI):
    """A settings dialog and error boxes through Fusion's UIManager (``fusion.UIManager``).

    The UIManager is not part of Resolve's scripting README but of the Fusion scripting guide;
    any failure to build a window falls back to the Console, so it is strictly optional.
    """

    def __init__(self, fusion, bmd, stream=None):
        super().__init__(stream)
        self.ui = fusion.UIManager
        self.disp = bmd.UIDispatcher(self.ui)

    def _run(self, win, close_ids) -> None:
        def close(ev):
            self.disp.ExitLoop()

        for wid in close_ids:
            getattr(win.On, wid).Clicked = close
        win.Show()
        self.disp.RunLoop()
        win.Hide()

    def error(self, message: str) -> None:
        super().error(message)
        try:
            ui = self.ui
            win = self.disp.AddWindow(
                {"ID": "EmsyncError", "WindowTitle": "EMSYNC Score", "Geometry": [400, 300, 460, 140]},
                ui.VGroup([
                    ui.Label({"ID": "Message", "Text": message, "WordWrap": True}),
                    ui.HGroup({"Weight": 0}, [ui.HGap(0, 1), ui.Button({"ID": "OK", "Text": "OK"})]),
                ]),
            )
            win.On.EmsyncError.Close = lambda ev: self.disp.ExitLoop()
            self._run(win, ["OK"])
        except Exception:  # the Console line above is the fallback
            logger.debug("UIManager error dialog failed", exc_info=True)

    def ask_options(self, defaults: BridgeOptions, engines, analyse=None) -> BridgeOptions | None:
        try:
            return self._ask(defaults, list(engines), analyse)
        except Exception:
            logger.debug("UIManager settings dialog failed", exc_info=True)
            return super().ask_options(defaults, engines, analyse)

    def _ask(self, defaults: BridgeOptions, engines: list, analyse=None) -> BridgeOptions | None:
        ui = self.ui

        def mood_row(key, label, value):
            return ui.HGroup({"Weight": 0}, [
                ui.CheckBox({"ID": key + "On", "Text": label, "Checked": value is not None, "Weight": 0.35}),
                ui.Slider({"ID": key, "Minimum": -100, "Maximum": 100, "Value": int(round((value or 0.0) * 100))}),
            ])

        try:
            from emsync_plugin.emotion.overrides import MOODS

            names = ", ".join(MOODS)
        except ImportError:
            names = "happy, sad, tense, calm, excited, ..."
        win = self.disp.AddWindow(
            {"ID": "EmsyncWin", "WindowTitle": "EMSYNC Score", "Geometry": [400, 200, 640, 560]},
            ui.VGroup([
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
                    ui.Button({"ID": "Analyse", "Text": "Analyse scenes", "Weight": 0}),
                ]),
                ui.Label({"Text": f"N=MOOD or N=V,A per scene (V, A from -1 to 1). Moods: {names}.",
                          "WordWrap": True, "Weight": 0}),
                ui.TextEdit({"ID": "Moods", "ReadOnly": True, "LineWrapMode": "NoWrap",
                             "Font": ui.Font({"Family": "Monospace", "MonoSpaced": True}),
                             "PlainText": "Analyse scenes shows the mood emsync estimates for each scene."}),
                ui.Label({"ID": "Status", "Text": "", "WordWrap": True, "Weight": 0}),
                ui.HGroup({"Weight": 0}, [
                    ui.HGap(0, 1), ui.Button({"ID": "Cancel", "Text": "Cancel"}),
                    ui.Button({"ID": "Generate", "Text": "Generate score"}),
                ]),
            ]),
        )
        items = win.GetItems()
        items["Engine"].AddItems(engines)
        if defaults.engine in engines:
            items["Engine"].CurrentIndex = engines.index(defaults.engine)
        chosen = {}

        def current() -> BridgeOptions:
            """The dialog's choices; BridgeError for bad scene moods."""
            values = {"engine": str(items["Engine"].CurrentText or defaults.engine), "seed": int(items["Seed"].Value)}
            for key in ("Valence", "Arousal"):
                on = bool(items[key + "On"].Checked)
                values[key.lower()] = round(items[key].Value / 100.0, 2) if on else None
            values["emotion"] = parse_emotion(str(items["SceneMoods"].Text or ""))
            return replace(defaults, **values)

        def status(text: str) -> None:
            items["Status"].Text = text
            if text:
                self.say(text)

        def do_analyse(ev):
            try:
                options = current()
                status("analysing the scenes...")
                rows = analyse(options)
            except BridgeError as exc:
                status(str(exc).rstrip(".") + ".")
                return
            except Exception as exc:  # the dialog stays usable; the Console has the details
                traceback.print_exc()
                status(f"internal error ({type(exc).__name__}: {exc}); the Console shows the details")
                return
            items["Moods"].PlainText = format_moods(rows, options.emotion)
            status(f"{len(rows)} scenes. Set any scene's mood under Scene moods, then Generate score.")

        def generate(ev):
            try:
                chosen["options"] = current()
            except BridgeError as exc:  # stay open: the editor fixes the text
                status(str(exc).rstrip(".") + ".")
                return
            self.disp.ExitLoop()

        if analyse is not None:
            win.On.Analyse.Clicked = do_analyse
        else:
            items["Analyse"].Enabled = False
        win.On.Generate.Clicked = generate
        win.On.EmsyncWin.Close = lambda ev: self.disp.ExitLoop()
        self._run(win, ["Cancel"])
        return chosen.get("options")


def _auto(value) -> str:
    return "auto" if value is None else f"{value:+.2f}"


def make_ui(namespace: dict | None = None) -> ConsoleUI:
    """A FusionUI when Resolve injected ``fusion``/``bmd`` with a UIManager, else the Console."""
    ns = globals() if namespace is None else namespace
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


# ---------------------------------------------------------------------------------------------
# Resolve side


def get_resolve(namespace: dict | None = None):
    """The ``resolve`` object: injected by Resolve for menu scripts, else via its scripting module."""
    ns = globals() if namespace is None else namespace
    if ns.get("resolve") is not None:
        return ns["resolve"]
    bmd = ns.get("bmd")
    if bmd is not None:
        try:
            found = bmd.scriptapp("Resolve")
            if found:
                return found
        except Exception:
            logger.debug("bmd.scriptapp failed", exc_info=True)
    try:
        import DaVinciResolveScript as dvr_script  # noqa: N813 (Resolve's module name)

        found = dvr_script.scriptapp("Resolve")
        if found:
            return found
    except Exception:
        logger.debug("DaVinciResolveScript not importable", exc_info=True)
    raise BridgeError(
        "DaVinci Resolve is not reachable. Run EMSYNC Score from Workspace > Scripts inside Resolve "
        "(install it with emsync-resolve-install), or enable external scripting in Preferences > General"
    )


def current_timeline(resolve):
    """(project, timeline) or a BridgeError telling the user what to open."""
    project = resolve.GetProjectManager().GetCurrentProject()
    if not project:
        raise BridgeError("No project is open. Open a project and a timeline, then run EMSYNC Score again")
    timeline = project.GetCurrentTimeline()
    if not timeline:
        raise BridgeError("The project has no current timeline. Open the timeline to score in the Edit page")
    return project, timeline


def find_score_track(timeline) -> int | None:
    """1-based index of the first audio track named "EMSYNC Score", or None."""
    for index in range(1, int(timeline.GetTrackCount("audio") or 0) + 1):
        if (timeline.GetTrackName("audio", index) or "") == TRACK_NAME:
            return index
    return None


def _call(obj, method: str, *args):
    """Call a documented method that older Resolve versions may lack; None when absent."""
    fn = getattr(obj, method, None)
    if not callable(fn):
        return None
    try:
        return fn(*args)
    except Exception:
        logger.debug("%s%r failed", method, args, exc_info=True)
        return None


def _decode_settings(text) -> dict | None:
    if isinstance(text, str) and text.strip():
        text = text.strip()
        if text.startswith(METADATA_KEY + " "):  # the "Comments" fallback
            text = text[len(METADATA_KEY) + 1:]
        try:
            value = json.loads(text)
            return value if isinstance(value, dict) else None
        except ValueError:
            return None
    return None


def read_settings(timeline) -> dict | None:
    """The settings a previous run stored: on the score clip's media, else on the timeline."""
    index = find_score_track(timeline)
    sources = []
    if index is not None:
        for item in timeline.GetItemListInTrack("audio", index) or []:
            sources.append(_call(item, "GetMediaPoolItem"))
    sources.append(_call(timeline, "GetMediaPoolItem"))
    for mpi in sources:
        if not mpi:
            continue
        found = _decode_settings(_call(mpi, "GetThirdPartyMetadata", METADATA_KEY))
        if found is None:
            found = _decode_settings(_call(mpi, "GetMetadata", "Comments"))
        if found is not None:
            return found
    return None


def store_settings(mpi, settings: dict) -> bool:
    """Put the settings on a media pool item under the third-party metadata key "emsync".

    ``SetThirdPartyMetadata`` exists since Resolve 19.0.2; before that the JSON goes into the
    standard "Comments" field, prefixed with "emsync ".
    """
    text = json.dumps(settings, sort_keys=True)
    if _call(mpi, "SetThirdPartyMetadata", {METADATA_KEY: text}):
        return True
    return bool(_call(mpi, "SetMetadata", {"Comments": f"{METADATA_KEY} {text}"}))


def export_timeline(resolve, timeline, folder: Path) -> Path:
    """Export ``timeline`` into ``folder``: OTIO when this Resolve can, else FCP 7 XML."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = _safe(timeline.GetName() or "timeline")
    none = getattr(resolve, "EXPORT_NONE", None)
    tried = []
    for const, suffix in (("EXPORT_OTIO", ".otio"), ("EXPORT_FCP_7_XML", ".xml")):
        kind = getattr(resolve, const, None)
        if kind is None:
            continue
        target = folder / f"{stem}{suffix}"
        ok = timeline.Export(str(target), kind, none) if none is not None else timeline.Export(str(target), kind)
        if ok and target.exists() and target.stat().st_size > 0:
            logger.info("exported %s as %s", timeline.GetName(), target)
            return target
        tried.append(const)
        if target.exists():
            target.unlink()
    raise BridgeError(
        f"Resolve could not export the timeline {timeline.GetName()!r} ({', '.join(tried) or 'no export format'}) "
        f"to {folder}. Check that the folder is writable and the timeline is not empty"
    )


def import_score(project, wav: Path):
    """Import the WAV into the media pool bin "EMSYNC" and return its MediaPoolItem.

    Resolve cannot use a MIDI file as media, so the MIDI only appears in the stored settings.
    """
    pool = project.GetMediaPool()
    root = pool.GetRootFolder()
    folder = next((f for f in (root.GetSubFolderList() or []) if f.GetName() == BIN_NAME), None)
    if folder is None:
        folder = pool.AddSubFolder(root, BIN_NAME) or root
    previous = pool.GetCurrentFolder()
    pool.SetCurrentFolder(folder)
    try:
        items = pool.ImportMedia([str(wav)]) or []
    finally:
        if previous:
            pool.SetCurrentFolder(previous)
    if not items:  # e.g. the same file is already in the bin
        for clip in folder.GetClipList() or []:
            if _same_path(_call(clip, "GetClipProperty", "File Path"), wav):
                return clip
        raise BridgeError(
            f"Resolve refused to import {wav}. Check that the file plays in the Media page and import it by hand"
        )
    return items[0]


def place_score(project, timeline, mpi, frames: int) -> tuple[int, object]:
    """Put ``mpi`` at the start of the "EMSYNC Score" audio track; returns (track index, item)."""
    if project.GetCurrentTimeline() is not timeline and not _same_timeline(project.GetCurrentTimeline(), timeline):
        project.SetCurrentTimeline(timeline)  # AppendToTimeline works on the current timeline
    index = find_score_track(timeline)
    if index is None:
        if not timeline.AddTrack("audio", "stereo"):
            raise BridgeError("Resolve could not add an audio track. Add one named 'EMSYNC Score' by hand and run again")
        index = int(timeline.GetTrackCount("audio"))
        timeline.SetTrackName("audio", index, TRACK_NAME)
    else:
        old = timeline.GetItemListInTrack("audio", index) or []
        if old and not timeline.DeleteClips(list(old), False):
            raise BridgeError(f"Resolve could not clear the audio track A{index} '{TRACK_NAME}'. Unlock it and run again")
    clip = {
        "mediaPoolItem": mpi,
        "startFrame": 0,
        "endFrame": max(0, frames - 1),  # inclusive
        "mediaType": 2,  # audio only
        "trackIndex": index,
        "recordFrame": int(timeline.GetStartFrame()),
    }
    placed = project.GetMediaPool().AppendToTimeline([clip]) or []
    if not placed:
        raise BridgeError(
            f"Resolve did not place the score on A{index} '{TRACK_NAME}'. Drag it from the media pool bin "
            f"'{BIN_NAME}' onto the track at the timeline's start"
        )
    return index, placed[0]


def _same_timeline(a, b) -> bool:
    if a is None or b is None:
        return False
    ida, idb = _call(a, "GetUniqueId"), _call(b, "GetUniqueId")
    return ida is not None and ida == idb


def _same_path(a, b) -> bool:
    if not a:
        return False
    try:
        return os.path.normcase(os.path.realpath(str(a))) == os.path.normcase(os.path.realpath(str(b)))
    except OSError:
        return False


def _safe(name: str) -> str:
    """A file-name-safe version of a Resolve project/timeline name."""
    cleaned = re.sub(r"[^\w.\- ]+", "_", str(name)).strip(" .")
    return cleaned[:80] or "untitled"


def data_dir() -> Path:
    """Where runs are kept: $EMSYNC_RESOLVE_DIR, else the platform's per-user data folder."""
    if os.environ.get(WORKDIR_ENV):
        return Path(os.environ[WORKDIR_ENV]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "emsync" / "resolve"


def run_folder(project, timeline) -> Path:
    """A new folder per run: the WAV of each run keeps its own path (Resolve caches by path)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = data_dir() / _safe(project.GetName() or "project") / _safe(timeline.GetName() or "timeline")
    folder = base / stamp
    n = 1
    while folder.exists():
        folder = base / f"{stamp}-{n}"
        n += 1
    return folder


# ---------------------------------------------------------------------------------------------
# The core: in this interpreter when it can import emsync, else in the recorded one.


def _bootstrap() -> None:
    """Put the recorded emsync environment on sys.path when it suits this interpreter."""
    if EMSYNC_PATHS and _versions_match():
        for entry in reversed(EMSYNC_PATHS):
            if entry not in sys.path:
                sys.path.insert(0, entry)


def _versions_match() -> bool:
    return EMSYNC_PYTHON_VERSION is None or tuple(EMSYNC_PYTHON_VERSION) == tuple(sys.version_info[:2])


def _pipeline():
    """``emsync_plugin.pipeline`` if this interpreter can import it, else None."""
    if not _versions_match():
        return None
    try:
        from emsync_plugin import pipeline
    except ImportError:
        logger.debug("emsync not importable in-process", exc_info=True)
        return None
    return pipeline


def engines() -> tuple:
    """The generator engines the core offers."""
    pipeline = _pipeline()
    return tuple(getattr(pipeline, "ENGINES", None) or ("baseline",)) if pipeline else ("baseline",)


def _bridge_error(exc) -> BridgeError:
    """An EmsyncError as the message Resolve shows."""
    return BridgeError(_message(type(exc).__name__, str(exc), getattr(exc, "path", None), getattr(exc, "reason", None)))


def _message(kind: str, text: str, path=None, reason=None) -> str:
    """The core's one-line message; where its fix is said in command-line terms (missing media,
    a scene number the timeline lacks), the fix in this script's terms instead."""
    if kind == "MediaError" and reason:
        where = f"{path}: {reason}" if path else str(reason)
        return f"{where.rstrip('.')}. {MEDIA_ADVICE}"
    if kind == "OptionsError" and reason and str(reason).startswith("--emotion "):
        return (f"Scene moods: {str(reason)[len('--emotion '):].rstrip('.')}. "
                "Use the scene numbers Analyse scenes shows in the EMSYNC Score dialog")
    return str(text).rstrip(".")


def run_score(path: Path, options: BridgeOptions, progress) -> Scored:
    """Call ``pipeline.score(path, ScoreOptions(write_timeline=False, ...))``."""
    pipeline = _pipeline()
    if pipeline is not None:
        from emsync_plugin.errors import EmsyncError

        try:
            result = pipeline.score(path, pipeline.ScoreOptions(write_timeline=False, **asdict(options)), progress=progress)
        except EmsyncError as exc:
            raise _bridge_error(exc) from exc
        return Scored.from_result(result)
    if EMSYNC_PYTHON and Path(EMSYNC_PYTHON).exists():
        return Scored(**_in_subprocess({"path": str(path), "options": asdict(options)}, progress))
    raise _not_importable()


def analyse_scenes(path: Path, options: BridgeOptions, progress) -> list:
    """The mood of each scene of the exported timeline (``pipeline.estimate_moods``, what
    ``emsync analyze`` prints), as ``mood_rows``; nothing is written."""
    pipeline = _pipeline()
    if pipeline is not None:
        from emsync_plugin.errors import EmsyncError

        try:
            return estimate_rows(path, asdict(options), progress)
        except EmsyncError as exc:
            raise _bridge_error(exc) from exc
    if EMSYNC_PYTHON and Path(EMSYNC_PYTHON).exists():
        return _in_subprocess({"command": "analyze", "path": str(path), "options": asdict(options)}, progress)
    raise _not_importable()


def estimate_rows(path, options: dict, progress=None) -> list:
    """(emsync side) read the cuts of ``path`` and estimate its scene moods with ``options``."""
    from emsync_plugin import pipeline
    from emsync_plugin import progress as bars
    from emsync_plugin.timeline import read_cuts

    wanted = {k: options.get(k) for k in ("valence", "arousal", "emotion") if options.get(k) is not None}
    score_options = pipeline.ScoreOptions(**wanted)
    report = progress or (lambda stage, fraction: None)
    report("reading cuts", 0.0)
    timeline = read_cuts(Path(path))
    with bars.listen(report):
        moods = pipeline.estimate_moods(timeline, score_options)
    report("analysed", 1.0)
    return mood_rows(moods, timeline)


def _not_importable() -> BridgeError:
    return BridgeError(
        "emsync is not importable from Resolve's Python "
        f"({sys.executable or 'embedded'}, {sys.version_info[0]}.{sys.version_info[1]}). "
        "Install emsync in a Python environment and run emsync-resolve-install from it"
    )


def _in_subprocess(request: dict, progress):
    """Send ``request`` to ``--worker`` in the recorded interpreter; its "result"."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(EMSYNC_PATHS)  # not Resolve's own module path
    env.pop("PYTHONHOME", None)
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if os.name == "nt" else 0
    with tempfile.TemporaryFile("w+", encoding="utf-8") as err:
        proc = subprocess.Popen(
            [EMSYNC_PYTHON, "-m", PACKAGE_MODULE, "--worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=err, env=env, text=True, encoding="utf-8", creationflags=flags,
        )
        proc.stdin.write(json.dumps(request))
        proc.stdin.close()
        result = error = None
        for line in proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "progress" in message:
                progress(str(message["progress"][0]), float(message["progress"][1]))
            elif "result" in message:
                result = message["result"]
            elif "error" in message:
                error = message
        code = proc.wait()
        err.seek(0)
        stderr = err.read()
    if error:
        raise BridgeError(_message(str(error.get("type") or ""), error["error"], error.get("path"), error.get("reason")))
    if code != 0 or result is None:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {code}"
        raise BridgeError(f"the emsync worker ({EMSYNC_PYTHON}) failed: {last}. Run emsync-resolve-install again")
    return result


def worker_main(stdin=None, stdout=None) -> int:
    """``--worker``: read {"path", "options"} on stdin, score (or with ``"command": "analyze"``,
    estimate the scene moods), write JSON lines on stdout: progress, then the result or the error."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout

    def emit(obj) -> None:
        stdout.write(json.dumps(obj) + "\n")
        stdout.flush()

    from emsync_plugin import pipeline
    from emsync_plugin.errors import EmsyncError

    request = json.load(stdin)
    progress = lambda s, f: emit({"progress": [s, f]})  # noqa: E731
    try:
        if request.get("command") == "analyze":
            emit({"result": estimate_rows(request["path"], request.get("options", {}), progress)})
            return 0
        options = pipeline.ScoreOptions(write_timeline=False, **request.get("options", {}))
        result = pipeline.score(request["path"], options, progress=progress)
    except EmsyncError as exc:
        emit({"error": str(exc), "type": type(exc).__name__, "reason": exc.reason,
              "path": None if exc.path is None else str(exc.path)})
        return 2
    except Exception as exc:  # reported to Resolve; the traceback goes to stderr
        traceback.print_exc()
        emit({"error": f"internal error: {type(exc).__name__}: {exc}"})
        return 1
    emit({"result": asdict(Scored.from_result(result))})
    return 0


# ---------------------------------------------------------------------------------------------


def generate(resolve, ui: ConsoleUI, options: BridgeOptions | None = None):
    """The whole flow; returns (track index, settings) or None when the user cancelled."""
    project, timeline = current_timeline(resolve)
    existing = find_score_track(timeline)
    if existing is not None and _call(timeline, "GetIsTrackLocked", "audio", existing):
        raise BridgeError(f"The audio track A{existing} '{TRACK_NAME}' is locked. Unlock it and run EMSYNC Score again")
    folder = run_folder(project, timeline)
    exported = []

    def export() -> Path:  # once per run: the analysis and the score read the same export
        if not exported:
            ui.info(f"exporting timeline {timeline.GetName()!r} to {folder}")
            exported.append(export_timeline(resolve, timeline, folder))
        return exported[0]

    if options is None:
        defaults = BridgeOptions.from_settings(read_settings(timeline))
        options = ui.ask_options(defaults, engines(), analyse=lambda opts: analyse_scenes(export(), opts, ui.progress))
        if options is None:
            if folder.exists():  # only the export this run made for the analysis
                shutil.rmtree(folder, ignore_errors=True)
            ui.info("cancelled; nothing changed")
            return None
    options = replace(options, emotion=parse_emotion(options.emotion))  # BridgeError before any work

    scored = run_score(export(), options, ui.progress)
    wav = Path(scored.wav)
    if not wav.is_file():
        raise BridgeError(f"{wav}: the score was not written. Check free disk space and run again")

    settings = dict(asdict(options))
    settings.update(
        emotion=list(options.emotion), wav=scored.wav, midi=scored.midi, sidecar=scored.sidecar, lufs=scored.lufs,
        cuts=scored.cuts, scenes=scored.scenes, exported=str(export()), created=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    mpi = import_score(project, wav)
    store_settings(mpi, settings)
    frames = int(round(scored.duration * scored.rate))
    index, _item = place_score(project, timeline, mpi, frames)
    timeline_item = _call(timeline, "GetMediaPoolItem")
    if timeline_item:
        store_settings(timeline_item, settings)
    ui.show_moods(scored.moods, options.emotion)
    lufs = "" if scored.lufs is None else f", {scored.lufs:.1f} LUFS"
    ui.info(
        f"score placed on A{index} '{TRACK_NAME}' from frame {timeline.GetStartFrame()} "
        f"({scored.cuts} cuts, {scored.duration:.2f} s{lufs}); WAV {scored.wav}; MIDI {scored.midi}"
    )
    return index, settings


def main(resolve=None, ui: ConsoleUI | None = None, options: BridgeOptions | None = None) -> int:
    """Entry point when Resolve runs the script: 0 done or cancelled, 2 user error, 1 bug."""
    _bootstrap()
    ui = ui or make_ui()
    try:
        resolve = resolve or get_resolve()
        generate(resolve, ui, options)
        return 0
    except BridgeError as exc:
        ui.error(str(exc).rstrip(".") + ".")
        return 2
    except Exception as exc:
        try:
            from emsync_plugin.errors import EmsyncError
        except ImportError:
            EmsyncError = ()  # noqa: N806
        if EmsyncError and isinstance(exc, EmsyncError):
            ui.error(str(exc))
            return 2
        traceback.print_exc()
        ui.error(f"internal error ({type(exc).__name__}: {exc}); the Console shows the details. Please report it")
        return 1


if __name__ == "__main__" and "--worker" in sys.argv[1:]:
    sys.exit(worker_main())
elif __name__ != PACKAGE_MODULE:  # run by Resolve (as "__main__" or under another name)
    main()
