"""The ``emsync`` command: ``cuts``, ``score``, ``batch``, ``analyze``, ``styles`` and ``demo``.

Errors a user can cause print one line naming the file and the fix, and exit with status 2
(a traceback only with ``--debug``).
"""
from __future__ import annotations

import argparse
import atexit
import gc
import json
import logging
import sys
from pathlib import Path

from . import __version__
from .errors import EmsyncError
from .options import DUCK_DB

logger = logging.getLogger(__name__)
#: whether the objects alive at exit are frozen (see _quick_exit)
_QUICK_EXIT = False


def main(argv: list[str] | None = None) -> int:
    _quick_exit()
    parser = _parser()
    args = parser.parse_args(argv)
    args.debug = args.debug or args.top_debug
    args.quiet = args.quiet or args.top_quiet
    _configure_logging(args)
    try:
        return args.func(args)
    except EmsyncError as exc:
        if args.debug:
            raise
        print(f"emsync: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("emsync: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `emsync cuts x.otio | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _quick_exit() -> None:
    """Leave the objects of the run out of the collections Python makes as it exits.

    Finalisation collects garbage several times over every object still alive (the MIDI
    notes, the timeline, the model's tables): 0.4-1.0 s after ``emsync score`` of the sample
    on this machine, 0.15-0.3 s with them frozen. Objects are still freed by their reference
    counts; a cycle left at exit is simply not collected before the process ends.
    """
    global _QUICK_EXIT
    if not _QUICK_EXIT:
        _QUICK_EXIT = True
        atexit.register(gc.freeze)


def _parser() -> argparse.ArgumentParser:
    # --debug/--quiet work before or after the command (merged in main())
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    common.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")

    p = argparse.ArgumentParser(prog="emsync", description="Score a video edit: chords on the cuts, mood from the scenes.")
    p.add_argument("--debug", dest="top_debug", action="store_true", help="show tracebacks and debug logs")
    p.add_argument("-q", "--quiet", dest="top_quiet", action="store_true", help="only warnings and errors")
    p.add_argument("--version", action="version", version=f"emsync {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("cuts", parents=[common], help="print a timeline's cut points and scenes")
    _timeline_args(c)
    c.add_argument("--json", action="store_true", help="print one JSON object (for scripts and the editor bridges)")
    c.set_defaults(func=_cmd_cuts)

    s = sub.add_parser("score", parents=[common], help="generate a score and put it back on the timeline")
    _timeline_args(s)
    _score_args(s)
    _rescore_args(s)
    s.set_defaults(func=_cmd_score)

    an = sub.add_parser("analyze", parents=[common], help="estimate each scene's mood (valence/arousal) without making music")
    _timeline_args(an)
    an.add_argument("--valence", type=float, help="valence from -1 to 1 for the whole timeline (overrides the analysis)")
    an.add_argument("--arousal", type=float, help="arousal from -1 to 1 for the whole timeline (overrides the analysis)")
    _emotion_arg(an)
    an.add_argument("--json", action="store_true", help="print one JSON object (for scripts and the editor bridges)")
    an.add_argument("--report", type=Path, metavar="PNG", help="also draw the scenes, thumbnails and moods to this picture")
    an.set_defaults(func=_cmd_analyze)

    b = sub.add_parser("batch", parents=[common], help="score many timelines at once (a process pool or a Dask cluster)")
    b.add_argument("timelines", nargs="+", type=Path, metavar="TIMELINE", help="timeline files, each scored as `emsync score` would")
    b.add_argument("--track", help="take cuts from one video track (number like 2 / V2, or its name); default: all enabled")
    b.add_argument("--rate", type=float, help="frame rate of EDLs (EDLs do not store it; default: inferred)")
    b.add_argument("--jobs", type=int, metavar="N", help="timelines scored at once on this machine (default: one per CPU)")
    b.add_argument("--scheduler", metavar="ADDRESS",
                   help="score on a Dask distributed cluster, e.g. tcp://HOST:8786 (needs emsync[cluster])")
    _score_args(b)
    b.set_defaults(func=_cmd_batch)

    st = sub.add_parser("styles", parents=[common], help="list the orchestration styles (--style)")
    st.set_defaults(func=_cmd_styles)

    d = sub.add_parser("demo", parents=[common], help="score the bundled sample in every write-back format")
    d.add_argument("folder", nargs="?", type=Path, default=Path("emsync-demo"), help="where to write (default ./emsync-demo)")
    d.set_defaults(func=_cmd_demo)
    return p


def _timeline_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("timeline", type=Path, help="timeline file (.otio .otioz .otiod .kdenlive .xml .fcpxml .edl) or a video file")
    sp.add_argument("--track", help="take cuts from one video track (number like 2 / V2, or its name); default: all enabled")
    sp.add_argument("--rate", type=float, help="frame rate of an EDL (EDLs do not store it; default: inferred)")


def _score_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--in", dest="range_in", metavar="TC",
                   help="score from here: timeline timecode (as the editor shows it) or seconds from the start")
    s.add_argument("--out", dest="range_out", metavar="TC", help="score up to here (timecode or seconds)")
    s.add_argument("-o", "--output", type=Path, help="scored timeline to write (default: <name>.emsync.<ext> beside the input)")
    s.add_argument("--in-place", action="store_true", help="overwrite the input timeline (a timestamped backup is kept)")
    s.add_argument("--engine", default="auto", choices=("auto", "emsync", "baseline"),
                   help="music generator: emsync (the learned model), baseline (rule-based), auto (default: emsync when installed)")
    s.add_argument("--precision", default="int8", choices=("int8", "fp32"),
                   help="build of the learned model: int8 (default: faster, same quality) or fp32 (the reference)")
    s.add_argument("--temperature", type=float, help="sampling temperature of the learned model")
    s.add_argument("--top-p", type=float, help="nucleus sampling threshold of the learned model")
    s.add_argument("--guidance", type=float,
                   help="how strongly the learned model follows the moods (0: the model alone; 0-5)")
    s.add_argument("--mode-steering", type=float,
                   help="how hard valence turns the music major (happy) or minor (sad); 0 leaves it to the model")
    s.add_argument("--valence", type=float, help="mood from -1 (sad, dark) to 1 (happy, bright) for the whole timeline")
    s.add_argument("--arousal", type=float, help="energy from -1 (calm) to 1 (excited, tense) for the whole timeline")
    _emotion_arg(s)
    s.add_argument("--seed", type=int, default=0, help="random seed (same seed, same score)")
    s.add_argument("--loudness", type=float, default=-16.0, help="loudness target in LUFS (default -16)")
    s.add_argument("--fade", type=float, default=3.0, help="fade-out at the end in seconds (default 3)")
    s.add_argument("--no-timeline", action="store_true", help="write only the WAV, MIDI and JSON sidecar")
    s.add_argument("--report", type=Path, metavar="PNG", help="also draw the cuts, moods and piano roll to this picture")
    s.add_argument("--style", choices=_StyleNames(), metavar="NAME",
                   help="orchestration: %(choices)s (emsync styles describes them and names the default)")
    s.add_argument("--soundfont", type=Path, metavar="SF2",
                   help="General MIDI SoundFont to render with (default: FluidR3_GM when installed, else TimGM6mb)")


def _rescore_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--previous", type=Path, metavar="SIDECAR",
                   help="re-score: keep the music of unchanged scenes from this earlier NAME.emsync.json "
                        "(default: the timeline's own EMSYNC Score, if it has one)")
    s.add_argument("--fresh", action="store_true", help="ignore any previous score: new music for every scene")
    s.add_argument("--regenerate", type=_scene_list, default=(), metavar="N,N",
                   help="new music for these scenes even if they did not change")
    s.add_argument("--lock", type=_scene_list, default=(), metavar="N,N",
                   help="keep these scenes' music (an error if their picture changed so that it cannot fit)")
    s.add_argument("--takes", type=int, default=1, metavar="N",
                   help="N different scores (seeds SEED..SEED+N-1), each on its own track, all but the first muted (1-8)")
    s.add_argument("--take", type=int, metavar="K", help="re-score: keep the music of take K (default: the unmuted take)")
    s.add_argument("--stems", action="store_true", help="also one WAV and (muted) track per instrument group")
    s.add_argument("--duck", type=float, nargs="?", const=DUCK_DB, metavar="DB",
                   help=f"lower the score under dialogue found in the timeline's sound (default {DUCK_DB:g} dB)")


class _StyleNames:
    """The names ``--style`` takes, read from :mod:`.music.styles` only when argparse checks or
    lists them (it imports pretty_midi, which most commands do not need)."""

    @staticmethod
    def _names() -> tuple[str, ...]:
        from .music.styles import STYLES

        return tuple(STYLES)

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


def _scene_list(text: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of scene numbers like 3,5") from None
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of scene numbers like 3,5")
    return numbers


def _emotion_arg(sp) -> None:
    sp.add_argument("--emotion", action="append", default=[], metavar="N=MOOD",
                    help="set scene N's mood (repeatable): a name (happy, sad, tense, calm, excited, ...) or "
                         "valence,arousal, e.g. --emotion 3=tense --emotion 5=0.2,0.7; wins over markers")


def _configure_logging(args) -> None:
    level = logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("emsync: %(message)s" if not args.debug else "%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("emsync_plugin")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _cmd_cuts(args) -> int:
    from .timeline import read_cuts

    timeline = read_cuts(args.timeline, track=args.track, rate=args.rate)
    if args.json:
        print(json.dumps(timeline.to_json(), indent=2))
    else:
        print(format_table(timeline))
    return 0


def format_table(timeline) -> str:
    """The human-readable table ``emsync cuts`` prints."""
    from .timeline.timecode import format_timecode

    drop = getattr(timeline, "drop_frame", False)
    tc = lambda s: format_timecode(timeline.start + s, timeline.rate, drop)
    lines = [
        f"{timeline.name}: {len(timeline.cuts)} cuts, {len(timeline.scenes)} scenes, "
        f"{timeline.duration:.3f} s at {timeline.rate:.3f} fps, starts {tc(0)}",
        f"{'#':>3}  {'start':>11}  {'end':>11}  {'record in':>11}  {'length':>8}  media (source range)",
    ]
    for s in timeline.scenes:
        media = Path(s.media).name if s.media else "(black, or no media file)"
        src = f" ({s.source_start:.3f}-{s.source_end:.3f} s)" if s.source_start is not None else ""
        lines.append(
            f"{s.index:>3}  {s.start:>10.3f}s  {s.end:>10.3f}s  {tc(s.start):>11}  {s.duration:>7.3f}s  {media}{src}"
        )
    found = getattr(timeline, "overlays", ())
    if found:  # titles, lower thirds... over picture: listed, not cut (issue 13)
        lines.append(f"{len(found)} {'overlays do' if len(found) != 1 else 'overlay does'} not cut (over the picture below; "
                     "--track picks one track to cut on every clip):")
        lines.extend(f"  {o.track:<10} {tc(o.start):>11} - {tc(o.end):>11}  {o.name or '(unnamed)'} ({o.reason})"
                     for o in found)
    return "\n".join(lines)


def _score_options(args):
    """The ScoreOptions of ``emsync score`` / ``emsync batch`` (batch has no re-score options)."""
    from .pipeline import ScoreOptions

    rescore = {name: getattr(args, name) for name in ("previous", "fresh", "regenerate", "lock", "takes", "take",
                                                      "stems", "duck") if hasattr(args, name)}
    return ScoreOptions(
        output=args.output, engine=args.engine, precision=args.precision, temperature=args.temperature,
        top_p=args.top_p, guidance=args.guidance, mode_steering=args.mode_steering,
        valence=args.valence, arousal=args.arousal, emotion=tuple(args.emotion),
        track=args.track, rate=args.rate, in_place=args.in_place, seed=args.seed,
        loudness=args.loudness, fade=args.fade, write_timeline=not args.no_timeline, report_png=args.report,
        range_in=args.range_in, range_out=args.range_out, style=args.style or "", soundfont=args.soundfont, **rescore,
    )


def _cmd_score(args) -> int:
    from .pipeline import score

    options = _score_options(args)
    result = _run_with_bar(lambda cb: score(args.timeline, options, cb))
    _print_result(result)
    return 0


def _cmd_batch(args) -> int:
    from . import progress
    from .batch import format_summary, score_many

    options = _score_options(args)
    with progress.bar(total=len(args.timelines), desc="timelines", unit="timeline") as bar:
        results = score_many(args.timelines, options, jobs=args.jobs, scheduler=args.scheduler,
                             progress=lambda _result: bar.update(1))
    print(format_summary(results))
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"emsync: error: {r.error}", file=sys.stderr)
    return 2 if failed else 0


def _cmd_styles(args) -> int:
    from .music.styles import DEFAULT_STYLE, STYLES

    width = max(map(len, STYLES))
    for name, style in STYLES.items():
        mark = " (default)" if name == DEFAULT_STYLE else ""
        print(f"{name:<{width}}  {style.description}{mark}")
    return 0


def _cmd_analyze(args) -> int:
    from .pipeline import ScoreOptions, analyze

    options = ScoreOptions(valence=args.valence, arousal=args.arousal, emotion=tuple(args.emotion),
                           track=args.track, rate=args.rate, report_png=args.report)
    found = analyze(args.timeline, options)
    if args.json:
        print(json.dumps({"scenes": [m.to_json() for m in found.moods]}, indent=2))
    else:
        print(format_moods(found.timeline, found.moods))
    if options.report_png is not None:
        from .report import draw_report

        draw_report(found.timeline, found.moods, None, options.report_png)
        if not args.json:
            print(f"picture: {options.report_png}")
    return 0


def format_moods(timeline, moods) -> str:
    """The table ``emsync analyze`` prints."""
    lines = [
        f"{timeline.name}: {len(moods)} scenes",
        f"{'#':>3}  {'start':>9}  {'end':>9}  {'valence':>7}  {'arousal':>7}  {'source':<7}  faces",
    ]
    for m in moods:
        top = max(m.probs, key=m.probs.get) if m.probs else ""
        faces = f"{top} {m.probs[top]:.2f}" if top else ""
        lines.append(f"{m.index:>3}  {m.start:>8.3f}s  {m.end:>8.3f}s  {m.valence:>+7.2f}  {m.arousal:>+7.2f}  "
                     f"{m.source:<7}  {faces}")
    return "\n".join(lines)


def _run_with_bar(job):
    from . import progress

    with progress.bar(total=100, desc="emsync", unit="%") as bar:
        def cb(stage: str, fraction: float) -> None:
            bar.set_description(stage)
            bar.update(max(0, int(fraction * 100) - bar.n))
        return job(cb)


def format_decisions(decisions) -> str:
    """One line per kind: which scenes kept, moved or got new music (a re-score's summary)."""
    groups: dict[str, list[str]] = {}
    for d in decisions:
        detail = f" ({d.shift:+.2f} s)" if d.action == "moved" else f" ({d.reason})" if d.reason and d.action == "regenerated" else ""
        groups.setdefault(d.action, []).append(f"{d.index}{detail}")
    return "\n".join(f"  {action:<12} scenes {', '.join(items)}" for action, items in groups.items())


def _print_result(result) -> None:
    if result.decisions and any(d.action != "new" for d in result.decisions):
        print("music:\n" + format_decisions(result.decisions))
    if result.output:
        print(f"scored timeline: {result.output}")
    print(f"score audio:     {result.wav}  ({result.lufs:.1f} LUFS)")
    print(f"score MIDI:      {result.midi}")
    for stem in result.stems:
        print(f"stem:            {stem}")
    if result.speech:
        print(f"ducked under:    {len(result.speech)} speech region(s), {sum(b - a for a, b in result.speech):.1f} s")
    print(f"settings:        {result.sidecar}")
    if result.report_png:
        print(f"picture:         {result.report_png}")


def _cmd_demo(args) -> int:
    from .demo import run_demo

    folder = args.folder
    results = run_demo(folder, progress_factory=_run_with_bar)
    print(f"\nThe bundled sample, scored in {len(results)} formats, is in {folder.resolve()}:")
    for fmt, result in results.items():
        print(f"  {fmt:<10} {result.output}")
    first = next(iter(results.values()))
    print(f"\nListen to {first.wav}\nor open {results.get('kdenlive', first).output} in Kdenlive "
          f"(or any other file above in its editor) to see the new 'EMSYNC Score' track.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
