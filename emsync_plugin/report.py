"""One picture of a scored timeline: scenes and cuts, the mood per scene, and the score.

Top: a small picture of each scene on the time axis (from the emotion analysis' frames).
Then the timeline's scenes as blocks on the time axis (coloured by mood), the cuts as lines,
valence and arousal as step curves; scenes whose mood the editor set are hatched and labelled
with where it came from ("marker", "cli"), the others with "faces", "cues" or "default".
Bottom: the score's piano roll, one colour per instrument group (the drums' strokes in a row
below the notes), the cuts drawn across it and a tick
where each cut's chord landed (three or more note onsets within 50 ms of the cut) or a red
cross where none did. Without a score (``emsync analyze --report``) the piano roll is left out.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pretty_midi

from . import fileio
from .mood import SceneMood
from .music.chords import CHORD_WINDOW, cut_hits
from .music.groups import instrument_group, score_groups
from .rescore import Decision
from .timeline import Timeline
from .timeline.timecode import format_timecode

logger = logging.getLogger(__name__)

OVERRIDES = ("cli", "marker")  # sources that mean "the editor said so"


def draw_report(timeline: Timeline, moods: Sequence[SceneMood], midi: pretty_midi.PrettyMIDI | None,
                path: str | Path, title: str | None = None, thumbnails: dict | None = None,
                decisions: Sequence[Decision] | None = None) -> Path:
    """Write the picture to ``path`` (PNG) and return it.

    ``midi`` may be ``None`` (moods only). ``thumbnails`` is ``{scene index: RGB array}``; by
    default they come from the emotion analysis (cached frames, else one frame per scene).
    ``decisions`` (a re-score) marks on the piano roll which scenes kept their music.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dur = timeline.duration
    if thumbnails is None:
        thumbnails = _thumbnails(timeline)
    ratios = [0.55, 1] + ([2.2] if midi is not None else [])
    fig, axes = plt.subplots(
        len(ratios), 1, figsize=(12, 7.3 if midi is not None else 3.9), sharex=True,
        gridspec_kw={"height_ratios": ratios}, constrained_layout=True,
    )
    ax_thumb, ax_mood = axes[0], axes[1]
    start = format_timecode(timeline.start, timeline.rate, timeline.drop_frame)
    fig.suptitle(title or f"{timeline.name}: {len(timeline.cuts)} cuts, {dur:.1f} s at {timeline.rate:.3f} fps, from {start}")
    _draw_moods(ax_mood, moods, dur)
    _draw_legend(fig, ax_mood, moods)
    if midi is None:
        ax_mood.set_xlabel("seconds from the timeline's start")
        ax_mood.set_xlim(0, dur)
        _draw_cuts(ax_mood, timeline.cuts)
    else:
        _draw_roll(axes[2], ax_mood, timeline, midi)
        if decisions:
            _draw_decisions(axes[2], timeline, decisions)
    return _save(fig, ax_thumb, timeline, thumbnails, Path(path))


def _draw_moods(ax, moods: Sequence[SceneMood], dur: float) -> None:
    """Scenes as blocks coloured by valence, valence/arousal as steps; overrides hatched and labelled."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("coolwarm")
    for m in moods:
        ax.axvspan(m.start, m.end, ymin=0, ymax=1, color=cmap(0.5 + 0.5 * m.valence), alpha=0.18, lw=0)
        ax.text((m.start + m.end) / 2, 1.08, str(m.index), ha="center", va="bottom", fontsize=8)
        editor = m.source in OVERRIDES
        if editor:
            ax.axvspan(m.start, m.end, facecolor="none", edgecolor="0.3", hatch="///", lw=0, alpha=0.45)
        if m.source and (m.end - m.start) >= 0.03 * dur:
            ax.text((m.start + m.end) / 2, -1.06, m.source, ha="center", va="bottom", fontsize=7,
                    color="black" if editor else "0.4", fontweight="bold" if editor else "normal")
    xs = [t for m in moods for t in (m.start, m.end)]
    ax.plot(xs, [m.valence for m in moods for _ in (0, 1)], color="tab:orange", lw=2, label="valence")
    ax.plot(xs, [m.arousal for m in moods for _ in (0, 1)], color="tab:purple", lw=2, ls="--", label="arousal")
    for m in moods:  # a dot per analysed scene, a diamond per override
        marker = "D" if m.source in OVERRIDES else "o"
        mid = (m.start + m.end) / 2
        ax.plot([mid], [m.valence], marker=marker, color="tab:orange", ms=5, ls="none")
        ax.plot([mid], [m.arousal], marker=marker, color="tab:purple", ms=5, ls="none")
    ax.set_ylim(-1.1, 1.3)
    ax.set_ylabel("mood")


def _draw_legend(fig, ax_mood, moods: Sequence[SceneMood]) -> None:
    from matplotlib.patches import Patch

    handles, _ = ax_mood.get_legend_handles_labels()
    if any(m.source in OVERRIDES for m in moods):
        handles.append(Patch(facecolor="none", edgecolor="0.3", hatch="///", label="set by the editor (marker / cli)"))
    fig.legend(handles=handles, loc="outside lower center", fontsize=8, ncol=len(handles), frameon=False)


def _draw_cuts(ax, cuts: Sequence[float]) -> None:
    for c in cuts:
        ax.axvline(c, color="k", lw=0.8, alpha=0.6)


def _draw_roll(ax_roll, ax_mood, timeline: Timeline, midi: pretty_midi.PrettyMIDI) -> None:
    """The piano roll, one colour per instrument group, the drums as strokes in a row below it,
    with a tick on each cut whose chord landed."""
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10")
    groups = score_groups(midi)
    pitched = [n.pitch for i in midi.instruments if instrument_group(i) != "drums" for n in i.notes]
    low, top = min(pitched, default=36) - 2, max(pitched, default=96) + 3
    for inst in midi.instruments:
        if not inst.notes:
            continue
        group = instrument_group(inst)
        colour = colours(groups.index(group) % 10)
        start = np.array([n.start for n in inst.notes])
        if group == "drums":  # strokes (kit and timpani) in one row: where the groove, fills and accents are
            ax_roll.scatter(start, np.full(len(start), low - 3), marker="|", s=60, color=colour, lw=1,
                            alpha=[0.25 + 0.75 * n.velocity / 127 for n in inst.notes])
            continue
        pitch = np.array([n.pitch for n in inst.notes])
        length = np.array([n.end - n.start for n in inst.notes])
        ax_roll.barh(pitch, length, left=start, height=0.8, color=colour, alpha=0.8, lw=0)
    for group in groups:  # one legend entry per group
        ax_roll.plot([], [], color=colours(groups.index(group) % 10), lw=4 if group != "drums" else 1,
                     marker="|" if group == "drums" else None, ms=10, label=group)
    hits = cut_hits(timeline.cuts, midi)
    for ax in (ax_mood, ax_roll):
        _draw_cuts(ax, timeline.cuts)
    for c, hit in zip(timeline.cuts, hits):
        ax_roll.plot([c], [top], marker="v" if hit else "x", color="tab:green" if hit else "tab:red", ms=8)
    ax_roll.set_ylim(low - (6 if "drums" in groups else 0), top + 9)  # room for the legend above the notes
    ax_roll.set_ylabel("MIDI pitch")
    ax_roll.set_xlabel("seconds from the timeline's start")
    ax_roll.set_xlim(0, timeline.duration)
    ax_roll.legend(loc="upper right", fontsize=8, ncol=len(groups) or 1)
    ax_roll.set_title(f"score: chord on {sum(hits)}/{len(hits)} cuts (±{CHORD_WINDOW * 1000:.0f} ms)", fontsize=10)


def _draw_decisions(ax, timeline: Timeline, decisions: Sequence[Decision]) -> None:
    """Kept and moved scenes shaded green on the piano roll, each scene labelled with what happened."""
    low, high = ax.get_ylim()
    for scene, d in zip(timeline.scenes, decisions):
        if d.keeps_music:
            ax.axvspan(scene.start, scene.end, color="tab:green", alpha=0.08, lw=0)
        colour = "tab:green" if d.keeps_music else "tab:blue"
        ax.text((scene.start + scene.end) / 2, high - 0.02 * (high - low), d.action, ha="center", va="top",
                fontsize=7, color=colour, fontweight="bold" if d.keeps_music else "normal")


def _save(fig, ax_thumb, timeline, thumbnails: dict, path: Path) -> Path:
    """Place the thumbnails (last: they need the final layout) and write the PNG."""
    import matplotlib.pyplot as plt

    _draw_thumbnails(fig, ax_thumb, timeline, thumbnails, timeline.duration)
    with fileio.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    logger.info("wrote report %s", path)
    return path


def _thumbnails(timeline) -> dict:
    """Scene pictures from the emotion analysis; none when the media cannot be read."""
    try:
        from .emotion.analyze import scene_thumbnails

        return scene_thumbnails(timeline)
    except Exception as exc:  # the picture must not fail for want of thumbnails
        logger.debug("no thumbnails: %s", exc)
        return {}


def _draw_thumbnails(fig, ax, timeline, thumbnails: dict, dur: float) -> None:
    """Each scene's picture centred on the scene, at the row's height, cropped to fit the scene."""
    ax.set_yticks([])
    ax.set_ylim(0, 1)
    ax.set_xlim(0, dur)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if not thumbnails or dur <= 0:
        ax.text(0.5, 0.5, "(no scene pictures: media not found or not analysed)", transform=ax.transAxes,
                ha="center", va="center", fontsize=8, color="0.5")
        return
    fig.canvas.draw()  # the row's size in pixels after layout
    box = ax.get_window_extent()
    if box.width <= 0 or box.height <= 0:
        return
    seconds_per_px = dur / box.width
    for scene in timeline.scenes:
        img = thumbnails.get(scene.index)
        if img is None or img.ndim != 3 or img.shape[0] == 0:
            continue
        h, w = img.shape[:2]
        width = 0.9 * box.height * w / h * seconds_per_px  # seconds the picture spans at its aspect
        room = 0.96 * scene.duration
        if room < 3 * seconds_per_px:
            continue
        if width > room:  # crop the middle columns rather than squash the picture
            keep = max(1, int(w * room / width))
            img = img[:, (w - keep) // 2:(w - keep) // 2 + keep]
            width = room
        mid = (scene.start + scene.end) / 2
        ax.imshow(img, extent=(mid - width / 2, mid + width / 2, 0.05, 0.95), aspect="auto", interpolation="bilinear")
    ax.set_xlim(0, dur)
    ax.set_ylim(0, 1)
