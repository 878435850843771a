"""One run of EMSYNC Score in Resolve, touching the timeline only at the very end.

1. find the current project and timeline; stop early if the "EMSYNC Score" track is locked;
2. ask for the settings (:mod:`resolve_bridge.ui`): the dialog's "Analyze scenes" runs
   ``pipeline.analyze`` on the run's export, its Scene moods are checked by emsync's
   ``emotion.overrides``; without a dialog the previous run's settings are reused;
3. export the timeline (OTIO, else FCP 7 XML) into a run folder that is kept, since Resolve's
   media pool refers to the WAV beside it by path; the analysis uses the same export;
4. ``pipeline.score(..., write_timeline=False)`` in-process or in the worker (:mod:`resolve_bridge.worker`),
   re-scoring against the timeline's last score (its settings file, :func:`resolve.previous_sidecar`)
   so unchanged scenes keep their music, unless the editor asks for a fresh score;
5. import the WAV into the bin "EMSYNC" and store the settings (scene moods included) on it;
6. empty the audio track "EMSYNC Score" (or add it) and put the WAV at the timeline's mark in (else its
   start), then check the clip's length (:func:`resolve.place_score`).

The dialog stays open during steps 3-6 (progress, Cancel) and shows the outcome or the error; an
error or a cancel before step 6 changes nothing.
"""
from __future__ import annotations

import shutil
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

from .options import TRACK_NAME, BridgeError, BridgeOptions, Scored
from .resolve import (
    Marks,
    call_optional,
    check_unlocked,
    current_timeline,
    export_timeline,
    get_resolve,
    import_score,
    marks,
    place_score,
    previous_sidecar,
    read_settings,
    run_folder,
    store_settings,
)
from .ui import ConsoleUI, make_ui
from .worker import Cancelled, Environment, analyze_request, check_emotion, engines, score_request, start


class _Export:
    """The run's export of the timeline, made once: the analysis and the score read the same file."""

    def __init__(self, resolve, timeline, folder: Path, ui: ConsoleUI):
        self.resolve, self.timeline, self.folder, self.ui = resolve, timeline, folder, ui
        self.path: Path | None = None

    def __call__(self) -> Path:
        if self.path is None:
            self.ui.info(f"exporting timeline {self.timeline.GetName()!r} to {self.folder}")
            self.path = export_timeline(self.resolve, self.timeline, self.folder)
        return self.path

    def discard(self) -> None:
        """Remove the run folder (only what this run made, for an analysis before a cancel)."""
        if self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)


def score_timeline(resolve, ui: ConsoleUI, options: BridgeOptions | None = None,
                   env: Environment = Environment()) -> tuple[int, dict] | None:
    """The whole run; returns (track index, settings) or None when the editor cancelled."""
    project, timeline = current_timeline(resolve)
    check_unlocked(timeline)
    export = _Export(resolve, timeline, run_folder(project, timeline), ui)
    stored = read_settings(timeline)
    span = marks(timeline)
    ui.show_range(span.describe())
    if options is None:
        options = ui.ask_options(
            BridgeOptions.from_settings(stored), engines(env),
            analyze=lambda opts: start(env, analyze_request(export(), opts)),
            check=lambda text: check_emotion(text, env),
        )
        if options is None:
            export.discard()
            ui.info("cancelled; nothing changed")
            return None
    options = replace(options, emotion=check_emotion(options.emotion, env),  # BridgeError before any work
                      range_in=span.range_in, range_out=span.range_out)

    previous = None if options.fresh else previous_sidecar(project, timeline, stored)
    if previous is not None:
        ui.info(f"re-scoring: unchanged scenes keep the music of {previous}")
    try:
        scored = Scored(**ui.run_job(lambda: start(env, score_request(export(), options, previous))))
    except Cancelled:
        export.discard()
        ui.info("cancelled; nothing changed")
        return None
    wav = Path(scored.wav)
    if not wav.is_file():
        raise BridgeError(f"{wav}: the score was not written. Check free disk space and run again")
    settings = dict(asdict(options))
    settings.update(
        emotion=list(options.emotion), wav=scored.wav, midi=scored.midi, sidecar=scored.sidecar, lufs=scored.lufs,
        cuts=scored.cuts, scenes=scored.scenes, exported=str(export()), created=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    index, length = _place(project, timeline, scored, settings, span)
    ui.show_moods(scored.moods, options.emotion)
    lufs = "" if scored.lufs is None else f", {scored.lufs:.1f} LUFS"
    placed = (f"score placed on A{index} '{TRACK_NAME}' from {span.in_timecode} (frame {span.in_frame}; "
              f"{scored.cuts} cuts, {length} frames, {scored.duration:.2f} s{lufs}); WAV {scored.wav}; MIDI {scored.midi}")
    ui.info(placed)
    ui.show_result(placed, scored.decisions)
    return index, settings


def _place(project, timeline, scored: Scored, settings: dict, span: Marks) -> tuple[int, int]:
    """Import the WAV, store the settings on it and the timeline, place it at the in frame;
    (track index, frames placed)."""
    mpi = import_score(project, Path(scored.wav))
    store_settings(mpi, settings)
    frames = int(round(scored.duration * span.rate))
    index, _item, length = place_score(project, timeline, mpi, frames, span.in_frame)
    timeline_item = call_optional(timeline, "GetMediaPoolItem")
    if timeline_item:
        store_settings(timeline_item, settings)
    return index, length


def main(resolve=None, ui: ConsoleUI | None = None, options: BridgeOptions | None = None,
         env: Environment = Environment(), namespace: dict | None = None) -> int:
    """Run once: 0 done or cancelled, 2 an error the editor can fix, 1 a bug.

    ``namespace`` is the script's globals, where Resolve puts ``resolve``, ``fusion`` and ``bmd``.
    """
    ns = namespace or {}
    ui = ui or make_ui(ns)
    if ui.raise_open():  # a second click while the window is open
        return 0
    try:
        score_timeline(resolve or get_resolve(ns), ui, options, env)
        return 0
    except BridgeError as exc:
        ui.error(str(exc).rstrip(".") + ".")
        return 2
    except Exception as exc:
        if any(cls.__name__ == "EmsyncError" for cls in type(exc).__mro__):  # without importing emsync here
            ui.error(str(exc))
            return 2
        traceback.print_exc()
        ui.error(f"internal error ({type(exc).__name__}: {exc}); the Console shows the details. Please report it")
        return 1
    finally:
        ui.close()
