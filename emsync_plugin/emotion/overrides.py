"""The editor's word on a scene's mood: ``emsync:`` timeline markers and ``--emotion N=MOOD``.

The one place mood text is parsed (the bridges call :func:`split_cli`, :func:`validate_cli` and
:func:`parse_mood`). A mood is a name of :data:`MOODS` (or an alias) or ``v=V a=A`` / ``V,A``;
bad text is an ``OptionsError`` naming the marker or argument and the valid forms. Where the
named moods sit and why: ``docs/emotion.md``.
"""
from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import OptionsError
from .mapping import CENTRES

logger = logging.getLogger(__name__)

#: Named moods an editor may write, (valence, arousal).
MOODS: dict[str, tuple[float, float]] = {
    **CENTRES,
    "excited": (0.55, 0.60),
    "tense": (-0.45, 0.65),
    "calm": (0.40, -0.60),
    "relaxed": (0.60, -0.45),
    "content": (0.65, -0.25),
    "bored": (-0.35, -0.65),
    "gloomy": (-0.65, -0.40),
}

ALIASES: dict[str, str] = {
    "joy": "happy", "joyful": "happy", "anger": "angry", "afraid": "fear", "scared": "fear",
    "fearful": "fear", "sadness": "sad", "surprised": "surprise", "disgusted": "disgust",
    "suspense": "tense", "anxious": "tense", "peaceful": "calm", "energetic": "excited",
    "melancholy": "gloomy",
}

_MARKER = re.compile(r"^\s*emsync\s*:(.*)$", re.IGNORECASE)
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_PAIR = re.compile(rf"^\s*({_NUMBER})\s*[,;\s]\s*({_NUMBER})\s*$")
_ITEM_START = re.compile(r"(?:[,;\n]|\s)\s*(?=\d+\s*=)")  # where split_cli starts a new item
_KEYED = re.compile(r"\b(valence|arousal|v|a)\s*=\s*(\S+?)(?=[\s,;]|$)", re.IGNORECASE)


def _mood_list() -> str:
    return ", ".join(MOODS)


MARKER_FORMS = (
    f'write the marker as "emsync: MOOD" with MOOD one of {_mood_list()}, '
    'or as "emsync: v=V a=A" with V and A from -1 to 1'
)
CLI_FORMS = (
    f"write --emotion N=MOOD with MOOD one of {_mood_list()}, or --emotion N=V,A with V and A "
    "from -1 to 1; N is a scene number as `emsync cuts` prints it"
)


@dataclass(frozen=True)
class Override:
    """One scene's mood set by the editor."""

    valence: float
    arousal: float
    label: str  # "tense", or "v=0.20 a=0.70"
    source: str  # "cli" | "marker"
    origin: str  # the argument or the marker, for messages


def parse_mood(text: str) -> tuple[float, float, str]:
    """``(valence, arousal, label)`` of override text (without the ``emsync:`` prefix).

    Raises ``ValueError`` whose message says what is wrong (the callers add where it came from).
    """
    body = " ".join(text.strip().split())
    if not body:
        raise ValueError("no mood given")
    low = body.lower()
    if re.fullmatch(r"[a-z][a-z \-]*", low):
        name = ALIASES.get(low, low)
        if name in MOODS:
            v, a = MOODS[name]
            return v, a, name
        close = difflib.get_close_matches(low, [*MOODS, *ALIASES], n=1, cutoff=0.6)
        did_you_mean = f' (did you mean "{ALIASES.get(close[0], close[0])}"?)' if close else ""
        raise ValueError(f'unknown mood "{body}"{did_you_mean}')
    pair = _PAIR.match(body)
    if pair:
        values = {"valence": pair.group(1), "arousal": pair.group(2)}
    else:
        values = {}
        keyed = list(_KEYED.finditer(body))
        leftover = _KEYED.sub("", body).replace(",", " ").replace(";", " ").strip()
        if not keyed or leftover:
            raise ValueError(f'cannot read "{body}"')
        for m in keyed:
            key = "valence" if m.group(1).lower().startswith("v") else "arousal"
            if key in values:
                raise ValueError(f"{key} is given twice")
            values[key] = m.group(2)
    out = {}
    for key, raw in values.items():
        try:
            x = float(raw)
        except ValueError:
            raise ValueError(f'{key} "{raw}" is not a number') from None
        if not math.isfinite(x) or not -1.0 <= x <= 1.0:
            raise ValueError(f"{key} {raw} is out of range (-1 to 1)")
        out[key] = x + 0.0
    missing = [k for k in ("valence", "arousal") if k not in out]
    if missing:
        raise ValueError(f"{missing[0]} is missing (give both v= and a=)")
    v, a = out["valence"], out["arousal"]
    return v, a, f"v={v:.2f} a={a:.2f}"


# ------------------------------------------------------------------------------ command line


def parse_cli_emotion(arg: str) -> tuple[int, float, float, str]:
    """``"3=tense"`` / ``"5=0.2,0.7"`` → ``(scene, valence, arousal, label)``; OptionsError if bad."""
    scene_text, sep, mood = str(arg).partition("=")
    if not sep:
        raise OptionsError(f"--emotion {arg}: expected N=MOOD or N=V,A", hint=CLI_FORMS)
    scene_text = scene_text.strip()
    if not re.fullmatch(r"\d+", scene_text) or int(scene_text) < 1:
        raise OptionsError(f'--emotion {arg}: "{scene_text}" is not a scene number', hint=CLI_FORMS)
    try:
        v, a, label = parse_mood(mood)
    except ValueError as exc:
        raise OptionsError(f"--emotion {arg}: {exc}", hint=CLI_FORMS) from None
    return int(scene_text), v, a, label


def split_cli(text: str) -> tuple[str, ...]:
    """``"3=tense, 5=0.2,0.7"`` → ``("3=tense", "5=0.2,0.7")``: a new item starts at ``N=`` after a
    comma, semicolon, newline or space (what an editor types into one field)."""
    parts = _ITEM_START.split(str(text or ""))
    return tuple(p.strip().strip(",;").strip() for p in parts if p.strip().strip(",;").strip())


def validate_cli(args: Iterable[str]) -> None:
    """Check every ``--emotion`` item: its form, its scene number, its mood, and that no scene is
    given two different moods (scene numbers are checked against the timeline later). An
    OptionsError names the bad item."""
    seen: dict[int, tuple[str, tuple[float, float]]] = {}
    for arg in args:
        scene, v, a, _ = parse_cli_emotion(arg)
        if scene in seen and seen[scene][1] != (v, a):
            raise OptionsError(
                f"--emotion {seen[scene][0]} and --emotion {arg} set scene {scene} twice", hint="keep one of them"
            )
        seen[scene] = (arg, (v, a))


def cli_overrides(args: Iterable[str], timeline) -> dict[int, Override]:
    """``--emotion`` arguments as ``{scene index: Override}``; OptionsError names a bad one."""
    args = list(args)
    validate_cli(args)
    n = len(timeline.scenes)
    out: dict[int, Override] = {}
    for arg in args:
        scene, v, a, label = parse_cli_emotion(arg)
        if scene > n:
            where = f" {timeline.path.name}" if timeline.path is not None else ""
            raise OptionsError(
                f"--emotion {arg}: there is no scene {scene}; the timeline{where} has {n} scene{'s' if n != 1 else ''}",
                hint="use the scene numbers `emsync cuts` prints",
            )
        out[scene] = Override(v, a, label, "cli", f"--emotion {arg}")
    return out


# ------------------------------------------------------------------------------ markers


def marker_text(marker) -> str | None:
    """The override text of an ``emsync:`` marker (name first, then comment), else ``None``.

    Raises ``ValueError`` when name and comment both hold different override texts.
    """
    found = []
    for field in (marker.name or "", marker.comment or ""):
        for line in field.splitlines():
            m = _MARKER.match(line)
            if m:
                found.append(m.group(1).strip())
                break
    if not found:
        return None
    if len(found) == 2 and found[0].lower() != found[1].lower():
        try:
            same = parse_mood(found[0])[:2] == parse_mood(found[1])[:2]
        except ValueError:
            same = False
        if not same:
            raise ValueError(f'its name says "emsync: {found[0]}" but its comment says "emsync: {found[1]}"')
    return found[0]


def describe_marker(marker, timeline) -> str:
    """``marker "emsync: hapy" at 01:00:17:00 (17.000 s, guide)``."""
    from ..timeline.timecode import format_timecode  # here: importing this module stays light (the bridges)

    text = marker.name if _MARKER.match(marker.name or "") or not marker.comment else marker.comment
    where = f", {marker.origin}" if marker.origin else ""
    tc = format_timecode(timeline.start + marker.time, timeline.rate, getattr(timeline, "drop_frame", False))
    return f'marker "{text.strip()}" at {tc} ({marker.time:.3f} s{where})'


def scene_at(timeline, t: float):
    """The scene playing at time ``t`` (a marker on a cut belongs to the scene that starts there)."""
    half = 0.5 / timeline.rate if timeline.rate else 1e-6
    if t < -half or t > timeline.duration + half:
        return None
    for scene in timeline.scenes:
        if scene.start - 1e-9 <= t < scene.end - 1e-9:
            return scene
    return timeline.scenes[-1] if timeline.scenes else None


def marker_overrides(timeline) -> dict[int, Override]:
    """``emsync:`` markers of the timeline as ``{scene index: Override}``.

    OptionsError (naming the marker) for unreadable text, or for two markers that set one
    scene differently. A marker outside the timeline is ignored with a warning.
    """
    path = timeline.path
    out: dict[int, Override] = {}
    for marker in timeline.markers:
        try:
            text = marker_text(marker)
            if text is None:
                continue
            v, a, label = parse_mood(text)
        except ValueError as exc:
            raise OptionsError(f"{describe_marker(marker, timeline)}: {exc}", path=path, hint=MARKER_FORMS) from None
        scene = scene_at(timeline, marker.time)
        desc = describe_marker(marker, timeline)
        if scene is None:
            logger.warning("%s lies outside the timeline (0-%.3f s); ignored", desc, timeline.duration)
            continue
        prev = out.get(scene.index)
        if prev is not None and (prev.valence, prev.arousal) != (v, a):
            raise OptionsError(
                f"{prev.origin} and {desc} both set the mood of scene {scene.index}", path=path,
                hint="keep one emsync marker per scene",
            )
        out[scene.index] = Override(v, a, label, "marker", desc)
        logger.debug("scene %d: %s from %s", scene.index, label, desc)
    return out

