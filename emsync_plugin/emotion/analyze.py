"""The mood of every scene of a timeline: the editor's word first, else what the scene shows.

Precedence per scene: ``--emotion N=...`` (source ``cli``) > an ``emsync:`` marker in it
(``marker``) > ``--valence``/``--arousal`` for the whole timeline (``cli``; one alone replaces only
its axis of the analysis) > analysis of its picture and sound (``faces`` or ``cues``, smoothed
across neighbours). A scene with no picture carries on the mood before it (``default``).
Missing media is an error naming the file and the fix, unless the editor's values cover it.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import MediaError
from ..mood import SOURCES, SceneMood
from . import mapping, overrides, schedule
from .overrides import Override
from .sampling import AnalysisOptions
from .scene_analysis import SceneAnalysis
from .thumbnails import scene_thumbnails

__all__ = ["AnalysisOptions", "DEFAULT_AROUSAL", "DEFAULT_VALENCE", "estimate", "scene_thumbnails"]

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
    whole = _Whole(valence, arousal)
    cli = overrides.cli_overrides(emotion, timeline)
    marks = overrides.marker_overrides(timeline)
    missing, analysed = _analyse_rest(timeline, {*cli, *marks}, whole, options)
    drafts = [_first_draft(s, cli.get(s.index) or marks.get(s.index), whole, s.media and s in missing, analysed)
              for s in timeline.scenes]
    _smooth(drafts, [s.duration for s in timeline.scenes], whole)
    if all(d.va is None for d in drafts) and not whole.any:
        raise MediaError(
            "names no media files, so the mood of its scenes cannot be analysed",
            path=timeline.path,
            hint="give --valence and --arousal for the whole timeline, --emotion N=... per scene, "
                 "or put 'emsync: MOOD' markers on the timeline",
        )
    _fill_gaps(drafts, whole)
    sources = [d.source for d in drafts]
    counts = {k: sources.count(k) for k in SOURCES if k in sources}
    logger.info("scene moods: %s", ", ".join(f"{c} from {k}" for k, c in counts.items()))
    return [_mood(s, d) for s, d in zip(timeline.scenes, drafts)]


def _analyse_rest(timeline, overridden: set[int], whole: _Whole, options: AnalysisOptions
                  ) -> tuple[list, dict[int, SceneAnalysis]]:
    """Analyse the scenes with media that nothing overrides: ``(scenes whose media is missing, analyses)``."""
    needs = [s for s in timeline.scenes if s.index not in overridden and not whole.both and s.media]
    missing = _missing_media(timeline, needs, whole)
    return missing, schedule.analyze_scenes([s for s in needs if s not in missing], options)


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


def _first_draft(scene, override: Override | None, whole: _Whole, missing: bool,
                 analysed: dict[int, SceneAnalysis]) -> _Draft:
    """The editor's override, else the whole-timeline values (both given, or the media missing),
    else the analysis; nothing for a scene without picture."""
    if override is not None:
        return _Draft((override.valence, override.arousal), override.source, override.label)
    if whole.both or missing:
        return _Draft(whole.apply((DEFAULT_VALENCE, DEFAULT_AROUSAL)), "cli")
    found = analysed.get(scene.index)
    if found is not None:
        return _Draft(found.va, found.source, probs=dict(found.probs))
    return _Draft()


def _smooth(drafts: list[_Draft], durations: list[float], whole: _Whole) -> None:
    """Smooth the analysed moods across neighbours (the others hold still); one whole-timeline
    value then replaces its axis of them."""
    smoothed = mapping.smooth(
        [d.va if d.va is not None else (0.0, 0.0) for d in drafts],
        durations,
        [d.source not in ANALYSED for d in drafts],
    )
    for d, va in zip(drafts, smoothed):
        if d.source in ANALYSED:
            d.va = va
            if whole.any:
                d.va = whole.apply(va)
                d.source = "cli"


def _fill_gaps(drafts: list[_Draft], whole: _Whole) -> None:
    """A scene without picture carries on the mood before it (or the next analysed or set one)."""
    n = len(drafts)
    for i, d in enumerate(drafts):
        if d.va is not None:
            continue
        before = next((drafts[j].va for j in range(i - 1, -1, -1) if drafts[j].va is not None), None)
        after = next((drafts[j].va for j in range(i + 1, n) if drafts[j].va is not None and drafts[j].source != "default"), None)
        d.va = before or after or (DEFAULT_VALENCE, DEFAULT_AROUSAL)
        d.source = "default"
        if whole.any:
            d.va = whole.apply(d.va)
            d.source = "cli"


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
