"""The panel's work, off the GUI thread: the calls into emsync and the job that runs them.

Reading the cuts (``timeline.read_cuts``), analyzing (``pipeline.analyze``) and scoring
(``pipeline.score``) run as a :class:`Job` in a ``QThreadPool`` so the window never freezes;
progress and the outcome come back as queued signals. Every error a user can cause is an
``EmsyncError`` whose one-line message the panel shows (:func:`describe`); for missing media
the job also finds which scenes need an override (:class:`MissingMediaError`).
"""
from __future__ import annotations

import logging
import re
import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QObject, QProcess, QRunnable, QThreadPool, QUrl, Signal
from PySide6.QtGui import QDesktopServices

from emsync_plugin.errors import EmsyncError, MediaError

logger = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
T = TypeVar("T")


def load_timeline(path: str | Path):
    """The cuts and scenes of ``path`` (``emsync_plugin.timeline.read_cuts``)."""
    from emsync_plugin.timeline import read_cuts

    return read_cuts(Path(path))


def run_score(path: str | Path, settings: dict, progress: Progress):
    """``pipeline.score(path, ScoreOptions(**settings), progress)``; options are validated here."""
    from emsync_plugin import pipeline

    return pipeline.score(Path(path), pipeline.ScoreOptions(**settings), progress=progress)


def analyze_scenes(path: str | Path, settings: dict, progress: Progress):
    """``pipeline.analyze(path, ScoreOptions(**settings), progress)``: the cuts and each scene's
    mood (what ``emsync analyze`` runs), no music."""
    from emsync_plugin import pipeline

    return pipeline.analyze(Path(path), pipeline.ScoreOptions(**settings), progress)


def available_engines() -> tuple[str, ...]:
    """The engines the core offers (``pipeline.ENGINES``), "baseline" if it cannot be asked."""
    try:
        from emsync_plugin import pipeline

        return tuple(getattr(pipeline, "ENGINES", ())) or ("baseline",)
    except ImportError:
        logger.warning("emsync_plugin.pipeline is not importable", exc_info=True)
        return ("baseline",)


def available_styles() -> tuple[tuple[tuple[str, str], ...], str]:
    """The orchestration styles the core offers as (name, description), and the default one."""
    try:
        from emsync_plugin.music import styles
    except ImportError:
        logger.warning("emsync_plugin.music.styles is not importable", exc_info=True)
        return (), ""
    return tuple((s.name, s.description) for s in styles.STYLES.values()), styles.DEFAULT_STYLE


def missing_scenes(timeline, overridden: Iterable[int] = (), both: bool = False) -> list[int]:
    """The scenes the scoring step finds without media and without a mood (as ``emotion.analyze``
    decides: not overridden in the panel nor by an ``emsync:`` marker; none when valence and
    arousal are both set for the whole timeline)."""
    from emsync_plugin import pipeline
    from emsync_plugin.emotion.overrides import marker_overrides

    if both:
        return []
    missing = set(pipeline.missing_media(timeline))
    try:
        skip = set(overridden) | set(marker_overrides(timeline))
    except EmsyncError:  # a bad marker is reported by the run itself
        skip = set(overridden)
    return [s.index for s in timeline.scenes if s.media in missing and s.index not in skip]


class MissingMediaError(MediaError):
    """A MediaError (same message) with the scenes that need an override, found in the job's thread."""

    def __init__(self, error: MediaError, scenes: list[int]):
        super().__init__(error.reason, path=error.path, hint=error.hint)
        self.missing_scenes = scenes


def with_missing_scenes(fn: Callable[[], T], timeline, overridden: Iterable[int], both: bool = False) -> T:
    """Run ``fn``; a MediaError leaves as :class:`MissingMediaError` (the scenes are found here, not in the GUI thread)."""
    try:
        return fn()
    except MediaError as exc:
        try:  # the scenes the core names, when its error carries them; else found as the core finds them
            scenes = list(getattr(exc, "scenes", None) or missing_scenes(timeline, overridden, both))
        except Exception:  # the message alone still reaches the user
            logger.debug("could not list the scenes with missing media", exc_info=True)
            raise exc from None
        raise MissingMediaError(exc, scenes) from exc


def _numbers(indices: list[int]) -> str:
    text = ", ".join(map(str, indices[:8])) + (f" and {len(indices) - 8} more" if len(indices) > 8 else "")
    return f"scene{'s' if len(indices) > 1 else ''} {text}"


def missing_media_advice(error: MediaError) -> tuple[str, str, list[int]]:
    """(message, advice, scenes to override) for missing media, the fix said in the panel's terms."""
    message = f"{error.path}: {error.reason}." if error.path is not None else f"{error.reason}."
    scenes = list(getattr(error, "missing_scenes", None) or ())
    which = _numbers(scenes) if scenes else "the scenes using it"
    advice = (
        f"Set a mood for {which} in the Mood column (double-click it), or relink the media in Kdenlive "
        "and reload the project; then analyze again. The Valence/Arousal overrides set the whole timeline."
    )
    return message, advice, scenes


def shown_path(path: str | Path) -> str:
    """A path as the window shows it: ``~/Films/cut.kdenlive`` under the home folder, else in full
    (the path field expands ``~`` back)."""
    path = Path(path)
    try:
        return str(Path("~") / path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def result_text(result, summary: bool = True, reload: str = "") -> str:
    """What the panel says about a ``ScoreResult``: what happened to each scene's music (unless
    ``summary`` is False), where the project and the audio were written, and how to see it in
    Kdenlive (``reload`` when the project Kdenlive has open was written)."""
    from .table import music_summary

    written = result.output
    loud = _loudness(result)
    said = music_summary(getattr(result, "decisions", ()) or ()) if summary else ""
    lines = [said] if said else []
    lines.append(f"Scored project written to: {shown_path(written)}" if written else f"Score written to: {shown_path(result.wav)}")
    lines.append(f"Audio: {shown_path(result.wav)} ({len(result.timeline.cuts)} cuts{loud})")
    lines.extend(_extras(result))
    if reload:
        lines.append(reload)
    elif written:
        lines.append("Open it in Kdenlive (reload the project if it is already open there).")
    return "\n".join(lines)


def add_settings(settings: dict, heard: Path) -> dict:
    """The ``ScoreOptions`` keyword arguments of "Add to project": those of the score the editor
    generated and heard, with the timeline written and that score (its sidecar ``heard``) as the
    previous one, so every scene that did not change since keeps its music note for note (nothing
    fresh nor regenerated: that happened in the generated score already; its first take is the one heard)."""
    return {**settings, "write_timeline": True, "previous": Path(heard), "fresh": False, "regenerate": (), "take": 1}


def heard_as_is(decisions) -> bool:
    """Whether "Add to project" kept every scene's music from the score heard (no scene changed since)."""
    return all(d.keeps_music for d in decisions)


def preview_text(result) -> str:
    """What the panel says after "Generate score": what happened to each scene's music, and that the
    project is untouched until "Add to project"."""
    from .table import music_summary

    summary = music_summary(getattr(result, "decisions", ()) or ())
    lines = [summary] if summary else []
    lines.append(f"Score ready: {Path(result.wav).name}{_loudness(result)}. Listen with ▶ Play score, then click "
                 "Add to project to put it on the timeline (the project is not changed until then).")
    lines.extend(_extras(result))
    return "\n".join(lines)


def added_text(result, reload: str = "") -> str:
    """What the panel says after "Add to project": that the music added is the music heard (or which
    scenes changed meanwhile and got new music), then :func:`result_text`."""
    from .table import ranges

    decisions = getattr(result, "decisions", ()) or ()
    changed = [d.index for d in decisions if not d.keeps_music]
    if not changed:
        head = "Added to the project: the music you heard, note for note."
    else:
        head = (f"The project changed since you generated the score: scene{'s' if len(changed) > 1 else ''} "
                f"{ranges(changed)} got new music (▶ Play score plays what was added); the other scenes are as you heard them.")
    return head + "\n" + result_text(result, summary=bool(changed), reload=reload)


def _loudness(result) -> str:
    lufs = getattr(result, "lufs", None)
    return f", {lufs:.1f} LUFS" if isinstance(lufs, (int, float)) and lufs == lufs else ""


#: The core's command-line words for re-scoring, and the panel's.
_PANEL_WORDS = (
    (re.compile(r"([Dd])rop --previous/--lock, or --fresh"), "clear Lock scenes, or untick Fresh score"),
    (re.compile(r"([Dd])rop --lock (\d+(?:,\s*\d+)*)"), r"take scene \2 out of Lock scenes"),
    (re.compile(r"()--fresh"), "Fresh score"),
    (re.compile(r"()--lock"), "Lock scenes"),
    (re.compile(r"()--regenerate"), "Regenerate scenes"),
    (re.compile(r"()--takes"), "Takes"),
    (re.compile(r"()--duck"), "Duck under dialogue"),
    (re.compile(r"()the scene numbers `emsync cuts` prints"), "the scene numbers in the table"),
)


def panel_words(text: str) -> str:
    """A core message with its command-line options named as the panel names them."""
    for pattern, words in _PANEL_WORDS:
        def put(match: re.Match, words: str = words) -> str:
            said = match.expand(words)
            return said[:1].upper() + said[1:] if match.group(1).isupper() else said

        text = pattern.sub(put, text)
    return text


def _extras(result) -> list[str]:
    """The result's stems and the dialogue it ducked under, when it has them."""
    lines = []
    if getattr(result, "stems", ()):
        lines.append(f"Stems: {', '.join(Path(s).name for s in result.stems)}")
    if getattr(result, "speech", ()):
        lines.append(f"Ducked under {len(result.speech)} passage(s) of dialogue, {sum(b - a for a, b in result.speech):.1f} s")
    return lines


def describe(exc: BaseException) -> str:
    """The one-line message of an EmsyncError (re-scoring options in the panel's words); a short
    description of anything else."""
    if isinstance(exc, EmsyncError):
        return panel_words(str(exc))
    logger.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"Internal error ({type(exc).__name__}: {text}). Please report it with the log."


def open_in_kdenlive(path: str | Path) -> bool:
    """Open ``path`` with the ``kdenlive`` command if on PATH, else the desktop's default app."""
    exe = shutil.which("kdenlive")
    if exe:
        started: Any = QProcess.startDetached(exe, [str(path)])
        ok = started[0] if isinstance(started, tuple) else bool(started)
        if ok:
            return True
        logger.warning("could not start %s; falling back to the desktop", exe)
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


class _JobSignals(QObject):
    """Signals of one job; created in the GUI thread, emitted from the worker thread."""

    progress = Signal(str, float)
    done = Signal(object)
    failed = Signal(str)


class Job(QRunnable):
    """Run ``fn(progress)`` in a pool thread; report ``done(result)`` or ``failed(message)``
    (the exception itself is kept in ``error``)."""

    def __init__(self, fn: Callable[[Progress], object]):
        super().__init__()
        # The panel owns the job, not the pool: auto-deleted by the worker thread while the GUI
        # thread's slot still read it, it crashed now and then (see EmsyncPanel._take_job).
        self.setAutoDelete(False)
        self.fn = fn
        self.signals = _JobSignals()
        self.on_done: Callable[[Any], None] | None = None
        self.thread_id: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:  # noqa: D401 (Qt override)
        self.thread_id = threading.get_ident()
        try:
            result = self.fn(self.signals.progress.emit)
        except Exception as exc:  # every error must reach the user, never kill the thread silently
            self.error = exc
            self.signals.failed.emit(describe(exc))
            return
        self.signals.done.emit(result)


class JobRunner:
    """One job at a time in the panel's pool (a mixin of :class:`.panel.EmsyncPanel`): ``_start`` runs
    a function off the GUI thread; its outcome comes back to ``on_done`` or the panel's ``_show_error``."""

    _job: Job | None
    _retired: list[Job]  # finished jobs, freed in the GUI thread once the pool is idle
    _pool: QThreadPool

    def _set_busy(self, busy: bool) -> None:  # the panel's
        raise NotImplementedError

    def _show_error(self, message: str, error: BaseException | None = None) -> None:  # the panel's
        raise NotImplementedError

    def _on_progress(self, stage: str, fraction: float) -> None:  # the panel's
        raise NotImplementedError

    def _job_done(self, result) -> None:  # the panel's slot: on_done(result)
        raise NotImplementedError

    def _job_failed(self, message: str) -> None:  # the panel's slot: the error shown
        raise NotImplementedError

    @property
    def busy(self) -> bool:
        return self._job is not None

    def _start(self, fn, on_done, with_progress: bool = False) -> Job:
        """Run ``fn`` in the pool; its signals reach this panel's slots in the GUI thread."""
        if self._retired:  # their run() has emitted its last signal; let it return, then free them here
            self._pool.waitForDone(2000)
            self._retired.clear()
        job = Job(fn)
        job.on_done = on_done
        job.signals.done.connect(self._job_done)
        job.signals.failed.connect(self._job_failed)
        if with_progress:
            job.signals.progress.connect(self._on_progress)
        self._job = job
        self._set_busy(True)
        self._pool.start(job)
        return job

    def _take_job(self, sender: QObject | None) -> Job | None:
        """The running job if ``sender`` (the signal's) is its signals, now retired; None for a stale one."""
        job = self._job
        if job is None or sender is not job.signals:  # a stale job (one runs at a time)
            return None
        self._job = None
        self._retired.append(job)
        return job
