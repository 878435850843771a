"""What the Resolve script works with: the editor's options, the score it gets back, its errors.

Plain data only, importable by Resolve's own Python even when emsync is not (the worker case),
so nothing here imports ``emsync_plugin`` at module level.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TRACK_NAME = "EMSYNC Score"
BIN_NAME = "EMSYNC"
METADATA_KEY = "emsync"
EMOTION_EXAMPLE = "3=tense, 5=0.2,0.7"
EMOTION_FORMS = (
    "Write N=MOOD or N=V,A for each scene, separated by commas, e.g. " + EMOTION_EXAMPLE + "; N is the "
    "scene number the analysis shows, MOOD a mood name ({moods}), V and A valence and arousal from -1 to 1"
)
SCENE_ADVICE = "Use the scene numbers Analyze scenes shows in the EMSYNC Score dialog"
MEDIA_ADVICE = (
    "Relink the media in Resolve, or give those scenes a mood under Scene moods in the EMSYNC Score dialog "
    "(e.g. " + EMOTION_EXAMPLE + "), or set Valence and Arousal for the whole timeline"
)


#: emsync's orchestration styles and its default (``emsync_plugin.music.styles``), for when the
#: script runs in a Python that cannot import emsync (a test keeps them equal).
STYLE_NAMES = ("cinematic", "piano", "ambient", "acoustic", "electronic")
DEFAULT_STYLE = "cinematic"


def style_names() -> tuple[tuple[str, ...], str]:
    """The styles emsync offers and its default (the copy above when emsync is not importable)."""
    try:
        from emsync_plugin.music import styles
    except ImportError:
        return STYLE_NAMES, DEFAULT_STYLE
    return tuple(styles.STYLES), styles.DEFAULT_STYLE


ONE_RUN = ("regenerate", "lock", "fresh", "range_in", "range_out")  # options a run does not hand on to the next one
#: What happened to a scene's music, in the editor's words (``rescore.Decision.action``).
MUSIC_WORDS = {"kept": "kept", "moved": "moved", "regenerated": "regenerated", "new": "new music"}


class BridgeError(Exception):
    """A problem the editor can fix (no project, a locked track, a bad scene mood).

    Like ``emsync_plugin.errors.EmsyncError`` its message is one line saying what to do; it is
    not a subclass only so that the script can start before emsync is importable.
    """


def split_emotion(text: str) -> tuple[str, ...]:
    """Scene-mood text as items (``overrides.split_cli``); without emsync here, one item the worker splits."""
    try:
        from emsync_plugin.emotion.overrides import split_cli
    except ImportError:
        return (text.strip(),) if text.strip() else ()
    return tuple(split_cli(text))


def parse_scenes(text: str, label: str) -> tuple[int, ...]:
    """Scene numbers typed as ``"3, 5"`` (a Regenerate or Lock field); BridgeError says what is wrong."""
    numbers = []
    for item in text.replace(";", ",").replace(" ", ",").split(","):
        if not item.strip():
            continue
        if not item.strip().isdigit() or int(item) < 1:
            raise BridgeError(f"{label}: {item.strip()!r} is not a scene number. Write scene numbers separated by commas, e.g. 3,5")
        numbers.append(int(item))
    return tuple(sorted(set(numbers)))


def format_scenes(numbers) -> str:
    """The text of a Regenerate or Lock field: ``"3, 5"``."""
    return ", ".join(str(n) for n in numbers or ())


def format_emotion(emotion) -> str:
    """The text of the dialog's Scene moods field: ``"3=tense, 5=0.2,0.7"``."""
    return ", ".join(emotion or ())


@dataclass(frozen=True)
class BridgeOptions:
    """The editor's choices; they become ``pipeline.ScoreOptions`` (plus write_timeline=False)."""

    engine: str = "baseline"
    style: str = DEFAULT_STYLE  # orchestration (emsync styles)
    valence: float | None = None
    arousal: float | None = None
    seed: int = 0
    loudness: float = -16.0
    fade: float = 3.0
    emotion: tuple[str, ...] = ()  # per-scene moods, ("3=tense", "5=0.2,0.7"); text is split, checked later
    regenerate: tuple[int, ...] = ()  # scenes that get new music though unchanged (this run only)
    lock: tuple[int, ...] = ()  # scenes whose music must stay (this run only)
    fresh: bool = False  # new music for every scene: the last run's score is not looked at
    range_in: float | None = None  # seconds from the timeline's start: the timeline's mark in (this run only)
    range_out: float | None = None  # and its mark out (exclusive)

    def __post_init__(self) -> None:
        emotion: Any = self.emotion
        if isinstance(emotion, str):
            emotion = split_emotion(emotion)
        object.__setattr__(self, "emotion", tuple(str(e).strip() for e in emotion or () if str(e).strip()))
        for name, label in (("regenerate", "Regenerate"), ("lock", "Lock")):
            value: Any = getattr(self, name)
            object.__setattr__(self, name, parse_scenes(value, label) if isinstance(value, str) else tuple(value or ()))

    @classmethod
    def from_settings(cls, settings: dict | None) -> BridgeOptions:
        """The options stored by a previous run (unknown keys ignored, bad values dropped)."""
        if not settings:
            return cls()
        kwargs: dict[str, Any] = {}
        for name, default in asdict(cls()).items():  # what to do with the last score is asked anew each run
            value = _stored(name, settings.get(name, default)) if name not in ONE_RUN else None
            if value is not None:
                kwargs[name] = value
        try:
            return cls(**kwargs)
        except TypeError:
            return cls()


def _stored(name: str, value: Any) -> Any:
    """A stored setting as a BridgeOptions field value; None to leave the default."""
    if name == "emotion":
        ok = isinstance(value, (list, tuple)) and all(isinstance(e, str) for e in value)
        return tuple(value) if ok else None
    if name == "style":  # a style this emsync does not have: its default
        return value if value in style_names()[0] else None
    return value if isinstance(value, (int, float, str)) else None


@dataclass(frozen=True)
class Scored:
    """What the script needs of ``pipeline.ScoreResult`` (also what the worker sends back)."""

    wav: str
    midi: str
    sidecar: str | None
    lufs: float | None
    duration: float  # seconds
    rate: float  # frames per second, as the core read it from the export
    cuts: int
    scenes: int
    moods: list = field(default_factory=list)  # the mood each scene was scored with (mood rows)
    decisions: list = field(default_factory=list)  # per scene: what happened to its music (music rows)
    previous: str | None = None  # the earlier score's settings file the music was kept from


def _music_extra(row: dict) -> str:
    if row.get("action") == "moved":
        return f"{float(row.get('shift') or 0.0):+.2f} s"
    return str(row.get("reason") or "") if row.get("action") == "regenerated" else ""


def music_detail(row: dict) -> str:
    """One scene's music in plain words: "kept", "moved (+1.00 s)", "regenerated (mood changed)", "new music"."""
    action = str(row.get("action", ""))
    extra = _music_extra(row)
    return MUSIC_WORDS.get(action, action) + (f" ({extra})" if extra else "")


def format_music(rows) -> str:
    """What a re-score did, one line per kind: ``"kept: scenes 1, 3"``, ``"moved: scene 2 (+1.00 s)"``."""
    groups: dict[str, list[str]] = {}
    for r in rows or ():
        extra = _music_extra(r)
        word = MUSIC_WORDS.get(str(r.get("action", "")), str(r.get("action", "")))
        groups.setdefault(word, []).append(f"{r['index']}" + (f" ({extra})" if extra else ""))
    return "\n".join(f"{word}: scene{'s' if len(items) > 1 else ''} {', '.join(items)}" for word, items in groups.items())


def overridden_scenes(emotion) -> set[int]:
    """The scene numbers that per-scene moods set (items whose number does not read are skipped)."""
    found = set()
    for item in emotion or ():
        number = str(item).partition("=")[0].strip()
        if number.isdigit():
            found.add(int(number))
    return found


def format_moods(rows, emotion=()) -> str:
    """The scene moods as a table (the Console, the dialog); scenes in ``emotion`` read "you"."""
    overridden = overridden_scenes(emotion)
    lines = [f"{'#':>3}  {'record in':<11}  {'record out':<11}  {'valence':>7}  {'arousal':>7}  {'source':<8}  faces"]
    for r in rows:
        source = "you" if r["index"] in overridden else {"cli": "settings"}.get(r["source"], r["source"])
        lines.append(
            f"{r['index']:>3}  {r['record_in']:<11}  {r['record_out']:<11}  {r['valence']:>+7.2f}  {r['arousal']:>+7.2f}  "
            f"{source:<8}  {r.get('face') or ''}".rstrip()
        )
    return "\n".join(lines)
