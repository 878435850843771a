"""The mood of every scene of a timeline: the editor's word first, else what the scene shows.

Precedence per scene: ``--emotion N=...`` (source ``cli``) > an ``emsync:`` marker in it
(``marker``) > ``--valence``/``--arousal`` for the whole timeline (``cli``; one alone replaces only
its axis of the analysis) > analysis of its picture and sound (``faces`` or ``cues``, smoothed
across neighbours). A scene with no picture carries on the mood before it (``default``).
Missing media is an error naming the file and the fix, unless the editor's values cover it.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from ..errors import MediaError
from ..mood import SOURCES, SceneMood
from . import mapping, overrides, schedule
from .overrides import Override
from .sampling import AnalysisOptions
from .scene_analysis import SceneAnalysis
from .thumbnails import scene_thumbnails

__all__ = ["AnalysisOptions", "DEFAULT_AROUSAL", "DEFAULT_VALENCE", "Moods", "estimate", "scene_thumbnails"]

logger = logging.getLogger(__name__)

#: The mood of a scene when nothing at all says otherwise (mildly warm, middle energy).
DEFAULT_VALENCE, DEFAULT_AROUSAL = 0.3, 0.0

ANALYSED = ("faces", "cues")  # sources of moods measured from the scene itself


@dataclass(frozen=True)
class _Whole:
    """``--valence`` / ``--arousal`` for the whole timeline (either may be absent)."""

    valence: float | None
    arousal: float | None

    @property
    def any(self) -> bool:
        return self.valence is not None or self.arousal is not None

    @property
    def both(self) -> bool:
        return self.valence is not None and self.arousal is not None

    def apply(self, va: tuple[float, float]) -> tuple[float, float]:
        """``va`` with the given axes replaced."""
        return (self.valence if self.valence is not None else va[0], self.arousal if self.arousal is not None else va[1])


@dataclass
class _Draft:
    """A scene's mood while it is being decided (``va`` None: not known yet)."""

    va: tuple[float, float] | None = None
    source: str = ""
    label: str = ""
    probs: dict = field(default_factory=dict)


def estimate(
    timeline,
    *,
    emotion: Iterable[str] = (),
    valence: float | None = None,
    arousal: float | None = None,
    options: AnalysisOptions = AnalysisOptions(),
) -> list[SceneMood]:
    """The mood of every scene of ``timeline`` (precedence in the module docstring)."""
    with Moods(timeline, emotion=emotion, valence=valence, arousal=arousal, options=options) as moods:
        return list(moods)


class Moods(Sequence[SceneMood]):
    """The moods of a timeline's scenes, each decided when it is first asked for.

    Building it checks the overrides and the media and starts the analysis of every scene that
    needs one (in a thread pool, in scene order); ``moods[i]`` waits only for the scenes that
    decide scene ``i``: itself and its neighbours (smoothing), and for a first scene without
    picture the next one with a mood. So the music of scene 1 need not wait for the analysis of
    scene 40, and the moods are the same as if all were decided at once. An analysis that
    failed raises its error where its scene is asked for. Use it as a context manager (leaving
    stops the analysis).
    """

    def __init__(self, timeline, *, emotion: Iterable[str] = (), valence: float | None = None,
                 arousal: float | None = None, options: AnalysisOptions = AnalysisOptions()):
        self._scenes = list(timeline.scenes)
        self._whole = _Whole(valence, arousal)
        cli = overrides.cli_overrides(emotion, timeline)
        self._overrides = {**overrides.marker_overrides(timeline), **cli}  # --emotion wins over markers
        needs = [s for s in self._scenes if s.index not in self._overrides and not self._whole.both and s.media]
        self._missing = {s.index for s in _missing_media(timeline, needs, self._whole)}
        if not self._whole.any and not any(s.index in self._overrides or s.media for s in self._scenes):
            raise MediaError(
                "names no media files, so the mood of its scenes cannot be analysed",
                path=timeline.path,
                hint="give --valence and --arousal for the whole timeline, --emotion N=... per scene, "
                     "or put 'emsync: MOOD' markers on the timeline",
            )
        self._running = schedule.Running([s for s in needs if s.index not in self._missing], options)
        self._analysed = set(self._running.order)
        self._raw: list[_Draft] = []  # first drafts, in scene order
        self._va: list[tuple[float, float]] = []  # decided values (before clipping), in scene order
        self._moods: list[SceneMood] = []
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._scenes)

    @overload
    def __getitem__(self, i: int) -> SceneMood: ...

    @overload
    def __getitem__(self, i: slice) -> list[SceneMood]: ...

    def __getitem__(self, i: int | slice) -> SceneMood | list[SceneMood]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        k = i + len(self) if i < 0 else i
        if not 0 <= k < len(self):
            raise IndexError(f"scene position {i} out of range")
        with self._lock:
            while len(self._moods) <= k:
                self._decide_next()
        return self._moods[k]

    def __iter__(self) -> Iterator[SceneMood]:
        return (self[k] for k in range(len(self)))

    def close(self) -> None:
        """Stop the analysis of scenes nobody asked for yet."""
        self._running.close()

    def __enter__(self) -> Moods:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------
    def _first_draft(self, k: int) -> _Draft:
        """Scene ``k``'s draft before smoothing (analysing it if it needs it)."""
        while len(self._raw) <= k:
            s = self._scenes[len(self._raw)]
            found = self._running.result(s.index) if s.index in self._analysed else None
            self._raw.append(_first_draft(self._overrides.get(s.index), self._whole, s.index in self._missing, found))
        return self._raw[k]

    def _smoothed(self, k: int) -> _Draft:
        """Scene ``k``'s draft, smoothed with its neighbours' when it was analysed (:func:`.mapping.smooth`);
        one whole-timeline value then replaces its axis."""
        d = self._first_draft(k)
        if d.source not in ANALYSED:
            return d
        window = range(max(0, k - 1), min(len(self._scenes), k + 2))
        near = [self._first_draft(j) for j in window]
        va = mapping.smooth([n.va if n.va is not None else (0.0, 0.0) for n in near],
                            [self._scenes[j].duration for j in window], [n.source not in ANALYSED for n in near])
        mine = va[k - window.start]
        if self._whole.any:
            return _Draft(self._whole.apply(mine), "cli", d.label, d.probs)
        return _Draft(mine, d.source, d.label, d.probs)

    def _decide_next(self) -> None:
        """Decide the next scene's mood: a scene without picture carries on the mood before it
        (the first one: the next scene's that has a mood)."""
        k = len(self._moods)
        d = self._smoothed(k)
        if d.va is None:
            after = (self._smoothed(j).va for j in range(k + 1, len(self._scenes)))
            va = self._va[-1] if self._va else next((v for v in after if v is not None), (DEFAULT_VALENCE, DEFAULT_AROUSAL))
            d = _Draft(self._whole.apply(va), "cli" if self._whole.any else "default")
        assert d.va is not None  # decided by now
        self._va.append(d.va)
        self._moods.append(_mood(self._scenes[k], d))
        if len(self._moods) == len(self._scenes):
            self._running.close()
            sources = [m.source for m in self._moods]
            counts = {key: sources.count(key) for key in SOURCES if key in sources}
            logger.info("scene moods: %s", ", ".join(f"{c} from {key}" for key, c in counts.items()))


def _missing_media(timeline, needs: Sequence, whole: _Whole) -> list:
    """The scenes of ``needs`` whose media file is missing: an error unless ``whole`` stands in for them."""
    missing = [s for s in needs if schedule.is_missing(s.media)]
    if missing and not whole.any:
        raise _missing_error(timeline, missing)
    if missing:
        logger.info(  # pipeline.score has already warned that the media are missing
            "%s is missing (scene%s %s): using --valence/--arousal there; relink the media for scene emotion",
            missing[0].media, "s" if len(missing) > 1 else "", _numbers(missing),
        )
    return missing


def _first_draft(override: Override | None, whole: _Whole, missing: bool, found: SceneAnalysis | None) -> _Draft:
    """The editor's override, else the whole-timeline values (both given, or the media missing),
    else the analysis; nothing for a scene without picture."""
    if override is not None:
        return _Draft((override.valence, override.arousal), override.source, override.label)
    if whole.both or missing:
        return _Draft(whole.apply((DEFAULT_VALENCE, DEFAULT_AROUSAL)), "cli")
    if found is not None:
        return _Draft(found.va, found.source, probs=dict(found.probs))
    return _Draft()


def _mood(scene, draft: _Draft) -> SceneMood:
    assert draft.va is not None  # every draft is decided by now (_fill_gaps)
    v, a = mapping.clip_va(*draft.va)
    return SceneMood(scene.index, scene.start, scene.end, round(v, 4) + 0.0, round(a, 4) + 0.0, draft.source,
                     draft.probs, draft.label)


def _numbers(scenes: Sequence) -> str:
    idx = [s.index for s in scenes]
    return ", ".join(map(str, idx[:6])) + (f" and {len(idx) - 6} more" if len(idx) > 6 else "")


def _missing_error(timeline, missing: Sequence) -> MediaError:
    first = missing[0].media
    same = [s for s in missing if s.media == first]
    others = len({s.media for s in missing}) - 1
    plural = len(same) > 1
    where = f" of {timeline.path.name}" if timeline.path is not None else ""
    more = f"; {others} other media file{'s are' if others > 1 else ' is'} missing too" if others else ""
    return MediaError(
        f"media file is missing (scene{'s' if plural else ''} {_numbers(same)}{where} use{'' if plural else 's'} it){more}",
        path=first,
        hint=f"relink the media, or set --emotion N=... for {'these scenes' if plural else 'this scene'} "
             "(or --valence and --arousal for the whole timeline)",
    )
