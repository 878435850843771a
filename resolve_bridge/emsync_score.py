"""EMSYNC Score: a DaVinci Resolve script (Workspace ▸ Scripts ▸ Utility ▸ EMSYNC Score).

What it does, in order, touching the timeline only at the very end:

1. finds the current project and timeline (``ProjectManager.GetCurrentProject``,
   ``Project.GetCurrentTimeline``);
2. asks for the settings (engine, valence/arousal overrides, seed) in a small Fusion UIManager
   dialog when Resolve provides one, otherwise reuses the settings of the previous run;
3. exports the timeline (``Timeline.Export``) as OTIO when this Resolve has ``EXPORT_OTIO``,
   else as FCP 7 XML, into a run folder that is kept (the WAV is written beside it, and
   Resolve's media pool refers to the WAV by path);
4. calls ``emsync_plugin.pipeline.score(..., ScoreOptions(write_timeline=False))``;
5. imports the WAV into a media pool bin "EMSYNC" (``MediaPool.ImportMedia``), stores the
   settings as JSON under the third-party metadata key "emsync";
6. empties the audio track named "EMSYNC Score" (re-run) or adds a stereo one and names it,
   then appends the WAV at the timeline's start frame (``MediaPool.AppendToTimeline``).

Errors are printed to Resolve's Console (Workspace ▸ Console) and, when the UIManager is
available, shown in a dialog. An error before step 6 leaves the timeline untouched.

Only methods documented in Resolve's ``Developer/Scripting/README.txt`` are called. The script
runs under Resolve's own Python; it imports emsync from the environment that
``resolve_bridge/install.py`` recorded in the block below. When Resolve's Python is a different
version from that environment (compiled packages such as numpy would not load), the scoring runs
in a subprocess of the recorded interpreter instead: ``python -m resolve_bridge.emsync_score
--worker``, which speaks one JSON object per line on stdout.
"""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, replace
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

    @classmethod
    def from_settings(cls, settings: dict | None) -> "BridgeOptions":
        """The options stored by a previous run (unknown keys ignored, bad values dropped)."""
        if not settings:
            return cls()
        kwargs = {}
        for name, default in asdict(cls()).items():
            value = settings.get(name, default)
            if value is None or isinstance(value, (int, float, str)):
                kwargs[name] = value
        try:
            return cls(**kwargs)
        except TypeError:
            return cls()


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

    @classmethod
    def from_result(cls, result) -> "Scored":
        """Convert a ``pipeline.ScoreResult``."""
        tl = result.timeline
        lufs = result.lufs if result.lufs is not None and result.lufs == result.lufs else None
        return cls(
            wav=str(result.wav), midi=str(result.midi),
            sidecar=str(result.sidecar) if getattr(result, "sidecar", None) else None,
            lufs=None if lufs is None else float(lufs), duration=float(tl.duration), rate=float(tl.rate),
            cuts=len(tl.cuts), scenes=len(tl.scenes),
        )


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

    def ask_options(self, defaults: BridgeOptions, engines) -> BridgeOptions | None:
        """No dialog on the Console: run with the previous (or default) settings."""
        self.say(
            "settings: engine={e}, valence={v}, arousal={a}, seed={s} (previous run's or defaults)".format(
                e=defaults.engine, v=_auto(defaults.valence), a=_auto(defaults.arousal), s=defaults.seed
            )
        )
        return defaults


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
            setattr(getattr(win.On, wid), "Clicked", close)
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

    def ask_options(self, defaults: BridgeOptions, engines) -> BridgeOptions | None:
        try:
            return self._ask(defaults, list(engines))
        except Exception:
            logger.debug("UIManager settings dialog failed", exc_info=True)
            return super().ask_options(defaults, engines)

    def _ask(self, defaults: BridgeOptions, engines: list) -> BridgeOptions | None:
        ui = self.ui

        def mood_row(key, label, value):
            return ui.HGroup({"Weight": 0}, [
                ui.CheckBox({"ID": key + "On", "Text": label, "Checked": value is not None, "Weight": 0.35}),
                ui.Slider({"ID": key, "Minimum": -100, "Maximum": 100, "Value": int(round((value or 0.0) * 100))}),
            ])

        win = self.disp.AddWindow(
            {"ID": "EmsyncWin", "WindowTitle": "EMSYNC Score", "Geometry": [400, 300, 440, 230]},
            ui.VGroup([
                ui.Label({"Text": "Music whose chords land on the cuts of the current timeline.", "WordWrap": True}),
                ui.HGroup({"Weight": 0}, [ui.Label({"Text": "Engine", "Weight": 0.35}), ui.ComboBox({"ID": "Engine"})]),
                mood_row("Valence", "Valence (sad - happy)", defaults.valence),
                mood_row("Arousal", "Arousal (calm - intense)", defaults.arousal),
                ui.HGroup({"Weight": 0}, [
                    ui.Label({"Text": "Seed", "Weight": 0.35}),
                    ui.SpinBox({"ID": "Seed", "Minimum": 0, "Maximum": 2**31 - 1, "Value": defaults.seed}),
                ]),
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

        def generate(ev):
            chosen["engine"] = str(items["Engine"].CurrentText or defaults.engine)
            for key in ("Valence", "Arousal"):
                on = bool(items[key + "On"].Checked)
                chosen[key.lower()] = round(items[key].Value / 100.0, 2) if on else None
            chosen["seed"] = int(items["Seed"].Value)
            self.disp.ExitLoop()

        win.On.Generate.Clicked = generate
        win.On.EmsyncWin.Close = lambda ev: self.disp.ExitLoop()
        self._run(win, ["Cancel"])
        return replace(defaults, **chosen) if chosen else None


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


def run_score(path: Path, options: BridgeOptions, progress) -> Scored:
    """Call ``pipeline.score(path, ScoreOptions(write_timeline=False, ...))``."""
    pipeline = _pipeline()
    if pipeline is not None:
        from emsync_plugin.errors import EmsyncError

        try:
            result = pipeline.score(path, pipeline.ScoreOptions(write_timeline=False, **asdict(options)), progress=progress)
        except EmsyncError as exc:
            raise BridgeError(str(exc).rstrip(".")) from exc
        return Scored.from_result(result)
    if EMSYNC_PYTHON and Path(EMSYNC_PYTHON).exists():
        return _score_in_subprocess(path, options, progress)
    raise BridgeError(
        "emsync is not importable from Resolve's Python "
        f"({sys.executable or 'embedded'}, {sys.version_info[0]}.{sys.version_info[1]}). "
        "Install emsync in a Python environment and run emsync-resolve-install from it"
    )


def _score_in_subprocess(path: Path, options: BridgeOptions, progress) -> Scored:
    request = {"path": str(path), "options": asdict(options)}
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
                error = message["error"]
        code = proc.wait()
        err.seek(0)
        stderr = err.read()
    if error:
        raise BridgeError(str(error).rstrip("."))
    if code != 0 or result is None:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {code}"
        raise BridgeError(f"the emsync worker ({EMSYNC_PYTHON}) failed: {last}. Run emsync-resolve-install again")
    return Scored(**result)


def worker_main(stdin=None, stdout=None) -> int:
    """``--worker``: read {"path", "options"} on stdin, score, write JSON lines on stdout."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout

    def emit(obj) -> None:
        stdout.write(json.dumps(obj) + "\n")
        stdout.flush()

    from emsync_plugin import pipeline
    from emsync_plugin.errors import EmsyncError

    request = json.load(stdin)
    try:
        options = pipeline.ScoreOptions(write_timeline=False, **request.get("options", {}))
        result = pipeline.score(request["path"], options, progress=lambda s, f: emit({"progress": [s, f]}))
    except EmsyncError as exc:
        emit({"error": str(exc)})
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
    if options is None:
        options = ui.ask_options(BridgeOptions.from_settings(read_settings(timeline)), engines())
        if options is None:
            ui.info("cancelled; nothing changed")
            return None

    folder = run_folder(project, timeline)
    ui.info(f"exporting timeline {timeline.GetName()!r} to {folder}")
    exported = export_timeline(resolve, timeline, folder)
    scored = run_score(exported, options, ui.progress)
    wav = Path(scored.wav)
    if not wav.is_file():
        raise BridgeError(f"{wav}: the score was not written. Check free disk space and run again")

    settings = dict(asdict(options))
    settings.update(
        wav=scored.wav, midi=scored.midi, sidecar=scored.sidecar, lufs=scored.lufs, cuts=scored.cuts,
        scenes=scored.scenes, exported=str(exported), created=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    mpi = import_score(project, wav)
    store_settings(mpi, settings)
    frames = int(round(scored.duration * scored.rate))
    index, _item = place_score(project, timeline, mpi, frames)
    timeline_item = _call(timeline, "GetMediaPoolItem")
    if timeline_item:
        store_settings(timeline_item, settings)
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
