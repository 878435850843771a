"""The emsync side of the Resolve script: every call into ``emsync_plugin`` it makes.

Imported only where emsync is importable: in Resolve's Python when its version suits the
recorded environment, else in the worker process (:mod:`resolve_bridge.worker`). Requests and
results are plain JSON-able dicts, so the in-process call and the worker pipe carry the same
things (:func:`handle`) and give the same messages (:func:`describe`).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from emsync_plugin.emotion import overrides
from emsync_plugin.errors import EmsyncError, MediaError, OptionsError
from emsync_plugin.timeline.timecode import format_timecode

from .options import EMOTION_FORMS, MEDIA_ADVICE, SCENE_ADVICE, Scored

Progress = Callable[[str, float], None]


def handle(request: dict, progress: Progress | None = None) -> Any:
    """Answer one request; EmsyncError for anything the editor can fix.

    * ``{"command": "check", "emotion": text or items}``: the scene moods, checked (a list);
    * ``{"command": "analyze", "path", "options"}``: each scene's mood (:func:`mood_rows`);
    * ``{"path", "options", "previous"}`` (``"command": "score"``): the score, as a :class:`Scored`
      dict; ``previous`` is the last run's settings file, whose music unchanged scenes keep.
    """
    command = request.get("command", "score")
    if command == "check":
        return list(checked_emotion(request.get("emotion") or ()))
    options = dict(request.get("options") or {})
    if options.get("emotion"):
        options["emotion"] = checked_emotion(options["emotion"])
    if command == "analyze":
        return estimate_rows(request["path"], options, progress)
    if command == "score":
        return asdict(score(request["path"], options, progress, previous=request.get("previous")))
    raise ValueError(f"unknown request {command!r}")


def checked_emotion(emotion: str | Iterable[str]) -> tuple[str, ...]:
    """Per-scene moods checked by ``overrides.validate_cli``: one item per scene, by scene number.

    Text is split with ``overrides.split_cli``, and so is each item (a whole text that reached
    the worker as one item reads the same).
    """
    texts = [emotion] if isinstance(emotion, str) else [str(e) for e in emotion]
    items = tuple(item for text in texts for item in overrides.split_cli(text))
    overrides.validate_cli(items)
    first: dict[int, str] = {}
    for item in items:
        number, _, mood = item.partition("=")
        first.setdefault(int(number), f"{int(number)}={mood.strip()}")
    return tuple(first[n] for n in sorted(first))


def estimate_rows(path: str | Path, options: dict, progress: Progress | None = None) -> list[dict]:
    """Each scene's mood in the export at ``path`` (``pipeline.analyze``, what ``emsync analyze`` prints)."""
    from emsync_plugin import pipeline  # here, not above: checking scene moods stays quick in the worker

    wanted = {k: options[k] for k in ("valence", "arousal", "emotion") if options.get(k) is not None}  # the whole timeline
    analysis = pipeline.analyze(Path(path), pipeline.ScoreOptions(**wanted), progress)
    return mood_rows(analysis.moods, analysis.timeline)


def score(path: str | Path, options: dict, progress: Progress | None = None, previous: str | None = None) -> Scored:
    """``pipeline.score`` of the export at ``path``, WAV + MIDI only (Resolve places the WAV itself).

    The export is a new file each run, so the core cannot find the earlier score in it: the
    script names the last run's settings file as ``previous`` (unless the editor asked for a
    fresh score), and scenes whose picture and mood did not change keep their music.
    """
    from emsync_plugin import pipeline

    wanted = dict(options)
    for key in ("range_in", "range_out"):  # the timeline's marks; older cores score the whole timeline
        if wanted.get(key) is None or key not in {f.name for f in fields(pipeline.ScoreOptions)}:
            wanted.pop(key, None)
    if previous and not wanted.get("fresh") and Path(previous).is_file():
        wanted["previous"] = previous
    result = pipeline.score(Path(path), pipeline.ScoreOptions(write_timeline=False, **wanted), progress=progress)
    timeline = result.timeline
    lufs = result.lufs if result.lufs is not None and result.lufs == result.lufs else None
    return Scored(
        wav=str(result.wav), midi=str(result.midi), sidecar=str(result.sidecar) if result.sidecar else None,
        lufs=None if lufs is None else float(lufs), duration=float(timeline.duration), rate=float(timeline.rate),
        cuts=len(timeline.cuts), scenes=len(timeline.scenes), moods=mood_rows(result.moods, timeline),
        decisions=music_rows(result.decisions), previous=wanted.get("previous"),
    )


def music_rows(decisions) -> list[dict]:
    """``rescore.Decision`` s as plain dicts (they cross the worker pipe), reasons in the editor's words."""
    return [{"index": int(d.index), "action": str(d.action), "previous": d.previous, "shift": float(d.shift),
             "reason": d.reason} for d in decisions]


def mood_rows(moods, timeline) -> list[dict]:
    """``SceneMood`` s as plain dicts (they cross the worker pipe), with Resolve's record timecodes."""
    rows = []
    for m in moods:
        probs = dict(m.probs or {})
        face = max(probs, key=probs.__getitem__) if probs else None
        rows.append({
            "index": int(m.index), "start": float(m.start), "end": float(m.end),
            "record_in": format_timecode(timeline.start + m.start, timeline.rate, timeline.drop_frame),
            "record_out": format_timecode(timeline.start + m.end, timeline.rate, timeline.drop_frame),
            "valence": float(m.valence), "arousal": float(m.arousal), "source": str(m.source),
            "face": None if face is None else f"{face} {float(probs[face]):.0%}",
        })
    return rows


def describe(exc: EmsyncError) -> str:
    """The core's one-line message; where its fix is said in command-line terms (missing media,
    a scene mood), the fix in the dialog's terms instead."""
    reason = exc.reason or ""
    if isinstance(exc, MediaError) and reason:
        where = f"{exc.path}: {reason}" if exc.path is not None else reason
        return f"{where.rstrip('.')}. {MEDIA_ADVICE}"
    if isinstance(exc, OptionsError) and "--emotion " in reason:
        return f"Scene moods: {reason.replace('--emotion ', '').rstrip('.')}. {_emotion_advice(exc.hint)}"
    return dialog_words(str(exc)).rstrip(".")


#: The core's command-line words for re-scoring, and the dialog's (most specific first).
_DIALOG_WORDS = (
    (re.compile(r"([Dd])rop --previous/--lock, or --fresh"), "clear Lock scenes, or untick Fresh score"),
    (re.compile(r"([Dd])rop --lock (\d+(?:,\s*\d+)*)"), r"take scene \2 out of Lock scenes"),
    (re.compile(r"()--fresh"), "Fresh score"),
    (re.compile(r"()--lock"), "Lock scenes"),
    (re.compile(r"()--regenerate"), "Regenerate scenes"),
    (re.compile(r"()the scene numbers `emsync cuts` prints"), "the scene numbers Analyze scenes shows"),
)


def dialog_words(text: str) -> str:
    """A core message with its re-scoring options named as the dialog names them (a hint that
    began with a capital still does)."""
    for pattern, words in _DIALOG_WORDS:
        def put(match: re.Match, words: str = words) -> str:
            said = match.expand(words)
            return said[:1].upper() + said[1:] if match.group(1).isupper() else said

        text = pattern.sub(put, text)
    return text


def _emotion_advice(hint: str | None) -> str:
    """The dialog's advice for a scene-mood error whose hint is ``hint``."""
    if hint == overrides.CLI_FORMS:
        return EMOTION_FORMS.format(moods=", ".join(overrides.MOODS))
    if not hint or "emsync" in hint or "--" in hint:
        return SCENE_ADVICE
    return hint[:1].upper() + hint[1:].rstrip(".")


def error_fields(exc: EmsyncError) -> dict:
    """An EmsyncError as the worker reports it (``message`` is what the dialog shows)."""
    return {"error": str(exc), "type": type(exc).__name__, "reason": exc.reason,
            "path": None if exc.path is None else str(exc.path), "message": describe(exc)}
