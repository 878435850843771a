"""One picture of a scored timeline: scenes and cuts, the mood per scene, and the score.

Top: the timeline's scenes as blocks on the time axis (coloured by mood), the cuts as lines,
valence and arousal as step curves. Bottom: the score's piano roll, one colour per instrument,
the cuts drawn across it and a tick where each cut's chord landed (three or more note onsets
within 50 ms of the cut) or a red cross where none did.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from . import fileio

logger = logging.getLogger(__name__)

CHORD_WINDOW = 0.05  # seconds either side of a cut
CHORD_NOTES = 3


def chord_onsets(midi, window: float = CHORD_WINDOW, min_notes: int = CHORD_NOTES) -> np.ndarray:
    """Times where ``min_notes`` or more notes (drums excluded) start within ``window``."""
    starts = np.sort([n.start for inst in midi.instruments if not inst.is_drum for n in inst.notes])
    if len(starts) < min_notes:
        return np.array([])
    out = []
    for i, t in enumerate(starts):
        j = np.searchsorted(starts, t + window, side="right")
        if j - i >= min_notes and (not out or t - out[-1] > window):
            out.append(t)
    return np.array(out)


def cut_hits(cuts: Sequence[float], midi, tolerance: float = CHORD_WINDOW) -> list[bool]:
    """For each cut, whether a chord starts within ``tolerance`` of it."""
    onsets = chord_onsets(midi)
    return [bool(len(onsets)) and float(np.min(np.abs(onsets - c))) <= tolerance for c in cuts]


def draw_report(timeline, moods, midi, path: str | Path, title: str | None = None) -> Path:
    """Write the picture to ``path`` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dur = timeline.duration
    fig, (ax_mood, ax_roll) = plt.subplots(
        2, 1, figsize=(12, 6.5), sharex=True, gridspec_kw={"height_ratios": [1, 2.2]}, constrained_layout=True
    )
    fig.suptitle(title or f"{timeline.name}: {len(timeline.cuts)} cuts, {dur:.1f} s at {timeline.rate:.3f} fps")

    # scenes as blocks coloured by mood, valence/arousal as steps
    cmap = plt.get_cmap("coolwarm")
    for m in moods:
        ax_mood.axvspan(m.start, m.end, ymin=0, ymax=1, color=cmap(0.5 + 0.5 * m.valence), alpha=0.18, lw=0)
        ax_mood.text((m.start + m.end) / 2, 1.08, str(m.index), ha="center", va="bottom", fontsize=8)
    xs = [t for m in moods for t in (m.start, m.end)]
    ax_mood.plot(xs, [m.valence for m in moods for _ in (0, 1)], color="tab:orange", lw=2, label="valence")
    ax_mood.plot(xs, [m.arousal for m in moods for _ in (0, 1)], color="tab:purple", lw=2, ls="--", label="arousal")
    ax_mood.set_ylim(-1.1, 1.3)
    ax_mood.set_ylabel("mood")
    ax_mood.legend(loc="lower right", fontsize=8, ncol=2)

    # piano roll
    colours = plt.get_cmap("tab10")
    for k, inst in enumerate(midi.instruments):
        if not inst.notes:
            continue
        pitch = np.array([n.pitch for n in inst.notes])
        start = np.array([n.start for n in inst.notes])
        length = np.array([n.end - n.start for n in inst.notes])
        label = "drums" if inst.is_drum else (inst.name or f"program {inst.program}")
        ax_roll.barh(pitch, length, left=start, height=0.8, color=colours(k % 10), alpha=0.8, label=label, lw=0)
    hits = cut_hits(timeline.cuts, midi)
    for ax in (ax_mood, ax_roll):
        for c in timeline.cuts:
            ax.axvline(c, color="k", lw=0.8, alpha=0.6)
    top = max((n.pitch for i in midi.instruments for n in i.notes), default=96) + 3
    for c, hit in zip(timeline.cuts, hits):
        ax_roll.plot([c], [top], marker="v" if hit else "x", color="tab:green" if hit else "tab:red", ms=8)
    ax_roll.set_ylabel("MIDI pitch")
    ax_roll.set_xlabel("seconds from the timeline's start")
    ax_roll.set_xlim(0, dur)
    ax_roll.legend(loc="lower right", fontsize=8, ncol=4)
    ax_roll.set_title(f"score: chord on {sum(hits)}/{len(hits)} cuts (±{CHORD_WINDOW * 1000:.0f} ms)", fontsize=10)

    path = Path(path)
    with fileio.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    logger.info("wrote report %s", path)
    return path
