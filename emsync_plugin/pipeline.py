"""The one place that chains the stages; the CLI, the Resolve script and the panel all call it.

    read cuts -> scene moods -> generate MIDI -> render audio -> write timeline (+ sidecar)

Each stage is a plain function of the previous one's result, so any of them can be swapped
(the learned generator and the emotion model plug in here).
"""
from __future__ import annotations

import importlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, fileio, rescore, sidecar
from . import progress as bars
from .errors import OptionsError, TimelineError
from .mood import SceneMood
from .options import ENGINES, ScoreOptions
from .timeline import ScoreTrack, Timeline, read_cuts, span, write_timeline
from .timeline import io as timeline_io
from .timeline.io import MIN_DURATION
from .timeline.model import SCORE_NAME

if TYPE_CHECKING:  # imported where used: the renderer alone takes ~1 s to import (scipy.signal)
    import pretty_midi

    from .emotion.analyze import Moods
    from .music.render import RenderResult

__all__ = [
    "ENGINES", "Analysis", "ScoreOptions", "ScoreResult", "analyze", "estimate_moods", "generate", "missing_media",
    "model_sha256", "mood_sequence", "resolve_engine", "score",
]

logger = logging.getLogger(__name__)

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class Analysis:
    """The first two stages' result: the timeline's cuts and a mood per scene."""

    timeline: Timeline
    moods: tuple[SceneMood, ...]


@dataclass(frozen=True)
class ScoreResult:
    timeline: Timeline
    output: Path | None  # the scored timeline written (None with write_timeline=False)
    wav: Path
    midi: Path
    sidecar: Path
    lufs: float
    moods: tuple[SceneMood, ...] = field(default_factory=tuple)
    report_png: Path | None = None  # the picture, when asked for
    decisions: tuple[rescore.Decision, ...] = ()  # per scene: music kept, moved, regenerated or new
    stems: tuple[Path, ...] = ()  # one WAV per instrument group (--stems)
    speech: tuple[tuple[float, float], ...] = ()  # dialogue the score ducked under (--duck)


def _quiet(stage: str, fraction: float) -> None:
    pass


def analyze(path: str | Path, options: ScoreOptions = ScoreOptions(), progress: Progress | None = None) -> Analysis:
    """Read the cuts of ``path`` and estimate each scene's mood, making no music.

    What ``emsync analyze``, the Resolve script and the Kdenlive panel run; the analysis's own
    progress bars are reported to ``progress`` too.
    """
    step = progress or _quiet
    with bars.listen(step):
        timeline = _read(Path(path), options, step)
        step("estimating moods", 0.15)
        found = Analysis(timeline, tuple(estimate_moods(timeline, options)))
    step("analysed", 1.0)
    return found


def _read(path: Path, options: ScoreOptions, step: Progress, min_duration: float = 0.0) -> Timeline:
    step("reading cuts", 0.0)
    timeline = read_cuts(path, track=options.track, rate=options.rate, min_duration=min_duration)
    missing = missing_media(timeline)
    if missing:
        logger.info(  # scene analysis raises a MediaError where it needs them and has no override
            "%s: %d media file(s) are missing, e.g. %s; relink them so scenes without an override can be analysed",
            path.name, len(missing), missing[0],
        )
    return timeline


@dataclass(frozen=True)
class _Outputs:
    """Where one run writes: the scored timeline and the files beside it."""

    timeline: Path
    base: Path  # NAME.emsync: every other file is this plus a suffix
    takes: int = 1

    @classmethod
    def for_run(cls, out: Path, in_place: bool, takes: int = 1) -> _Outputs:
        base = out.with_suffix("") if out.suffix else out
        if in_place:  # NAME.emsync.wav, never NAME.wav: that may be the editor's own audio
            base = base.with_name(base.name + ".emsync")
        return cls(out, base.resolve(), takes)

    def _file(self, suffix: str) -> Path:
        return self.base.with_name(self.base.name + suffix)

    def take_wav(self, take: int) -> Path:
        return self._file(".wav" if self.takes == 1 else f".take{take}.wav")

    def take_midi(self, take: int) -> Path:
        return self._file(".mid" if self.takes == 1 else f".take{take}.mid")

    def stem(self, group: str) -> Path:
        return self._file(f".stem-{group}.wav")

    @property
    def wav(self) -> Path:
        return self.take_wav(1)

    @property
    def midi(self) -> Path:
        return self.take_midi(1)

    @property
    def sidecar(self) -> Path:
        return self._file(".json")

    def files(self, stems: Sequence[str] = ()) -> list[Path]:
        """Every file beside the timeline this run writes (the sidecar last)."""
        takes = [f for k in range(1, self.takes + 1) for f in (self.take_wav(k), self.take_midi(k))]
        return takes + [self.stem(g) for g in stems] + [self.sidecar]


@dataclass(frozen=True)
class _Take:
    """One rendered score of a run."""

    number: int
    seed: int
    midi: pretty_midi.PrettyMIDI  # the generated notes (what a re-score keeps)
    arranged: pretty_midi.PrettyMIDI  # the notes in the chosen style (what is written and heard)
    rendered: RenderResult


def score(path: str | Path, options: ScoreOptions = ScoreOptions(), progress: Progress | None = None) -> ScoreResult:
    """Score the timeline at ``path``: read its cuts, write music on them, put it back."""
    step = progress or _quiet
    path = Path(path)
    options = replace(options, engine=resolve_engine(options.engine))  # decided once per run
    warm = _warm_up(options)  # the model session and the renderer load while the cuts are read and analysed
    fileio.remove_stale_temps(path)  # puts back a bundle an interrupted --in-place run set aside
    # what the project is now: with --in-place it is only replaced if nobody saved it meanwhile
    snapshot = timeline_io.snapshot(path) if options.in_place and options.write_timeline and timeline_io.is_project(path) else None
    whole = _read(path, options, step, min_duration=MIN_DURATION)
    timeline = _scored_range(whole, options)
    logger.info("%s: %d cuts, %.2f s at %.3f fps", path.name, len(timeline.cuts), timeline.duration, timeline.rate)
    out = timeline_io.output_path(path, timeline, options.output, options.in_place)
    outputs = _Outputs.for_run(out, options.in_place, options.takes)
    previous = sidecar.previous_score(path, outputs.sidecar, fresh=options.fresh, chosen=options.previous,
                                      take=options.take)

    step("estimating moods", 0.15)
    with mood_sequence(timeline, options) as analysing:  # scenes are analysed while the music is generated
        # a re-score compares every scene's mood with the previous one's first (plan reads them all)
        decisions = tuple(rescore.plan(timeline, analysing, previous, regenerate=options.regenerate, lock=options.lock,
                                       model_sha256=model_sha256(options)))
        rescore.log_decisions(path.name, decisions, previous)
        speech = _find_speech(timeline, options)
        step("generating music", 0.3)
        kept = rescore.kept_spans(timeline, decisions, previous)
        midis = _generate_takes(timeline, analysing, options, kept, warm)
        moods = tuple(analysing)
    from .music.render import instrument_group
    from .music.styles import apply_style

    arranged = [apply_style(m, options.style, timeline.cuts, timeline.duration, moods, seed=options.seed + k)
                for k, m in enumerate(midis)]
    stems = sorted({instrument_group(i) for i in arranged[0].instruments}) if options.stems else []
    _prepare_outputs(outputs, snapshot, stems)

    step("rendering audio", 0.5)
    takes = [_render(k + 1, midi, played, timeline, options, outputs, stems if k == 0 else [], speech)
             for k, (midi, played) in enumerate(zip(midis, arranged))]
    settings = _settings(path, timeline, moods, decisions, previous, takes, options, outputs, speech)
    fileio.write_text(outputs.sidecar, json.dumps(settings, indent=2) + "\n")

    written = None
    if options.write_timeline:
        step("writing timeline", 0.85)
        offset = timeline.start - whole.start  # a scored range sits at its in point
        tracks = [replace(t, start=offset) for t in _score_tracks(timeline, takes, sidecar.for_timeline(settings), outputs)]
        written = _write_back(whole, outputs.timeline, tracks, snapshot, options.in_place)
    picture = None
    if options.report_png is not None:
        from .report import draw_report

        picture = draw_report(timeline, moods, arranged[0], options.report_png, decisions=decisions if previous else None)
    step("done", 1.0)
    return ScoreResult(timeline, written, outputs.wav, outputs.midi, outputs.sidecar, takes[0].rendered.lufs, moods,
                       picture, decisions, tuple(takes[0].rendered.stems.values()), tuple(speech))


def _warm_up(options: ScoreOptions) -> Future:
    """Load, in a thread, what the run needs later: the learned generator (in its worker process,
    :mod:`.music.generator_worker`, its ONNX session created once), then the renderer's modules
    and its worker processes. The future's result is the generator (None for the baseline
    arranger); waiting on it re-raises a load error where it is needed."""
    ready: Future = Future()

    def load() -> None:
        try:
            generator = None
            if options.engine == "emsync":  # in its own process where it may, beside the analysis
                from .music import generator_worker
                from .music.generator import Generator

                generator = generator_worker.remote(options.precision) or Generator.load(precision=options.precision)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that needs it
            ready.set_exception(exc)
            return
        ready.set_result(generator)  # the music can start; then the renderer's modules load (scipy: ~1 s),
        try:  # and its workers start and load the SoundFont
            importlib.import_module(".music.render", __package__)
            from .music import synth

            synth.warm_up(options.soundfont or synth.default_soundfont(), wait=False)
        except Exception:  # noqa: BLE001 - the render raises it where it is needed
            logger.debug("warming up the renderer failed", exc_info=True)

    threading.Thread(target=load, name="emsync-warm-up", daemon=True).start()
    return ready


def _generate_takes(timeline: Timeline, moods: Sequence[SceneMood], options: ScoreOptions,
                    kept: Sequence[rescore.KeptSpan], warm: Future) -> list[pretty_midi.PrettyMIDI]:
    """One MIDI score per take (seeds ``seed``, ``seed + 1``, ...): the learned engine decodes the
    takes together (their rows share each model call), the baseline arranger one by one."""
    generator = warm.result()
    if generator is None:
        return [generate(timeline, moods, replace(options, seed=options.seed + k), kept) for k in range(options.takes)]
    samplings = [replace(options, seed=options.seed + k).sampling() for k in range(options.takes)]
    found = generator.generate_many(timeline.cuts, timeline.duration, moods, samplings, kept=kept)
    return [rescore.splice(r.midi, kept, timeline.duration) for r in found]


def _scored_range(timeline: Timeline, options: ScoreOptions) -> Timeline:
    """The part of the timeline to score (``--in``/``--out``), or all of it."""
    if options.range_in is None and options.range_out is None:
        return timeline
    a, b = (None if v is None else v if isinstance(v, (int, float)) else span.position(v, timeline, option)
            for v, option in ((options.range_in, "--in"), (options.range_out, "--out")))
    part = span.crop(timeline, a, b)
    if part.duration < MIN_DURATION:
        raise OptionsError(f"--in/--out leave {part.duration:.2f} s to score", hint=f"score at least {MIN_DURATION:g} s")
    logger.info("%s: scoring %.2f s from %.2f s (%d scenes)", timeline.name, part.duration, part.start - timeline.start,
                len(part.scenes))
    return part


def _render(number: int, midi: pretty_midi.PrettyMIDI, arranged: pretty_midi.PrettyMIDI, timeline: Timeline,
            options: ScoreOptions, outputs: _Outputs, stems: Sequence[str], speech: Sequence[tuple[float, float]]) -> _Take:
    """Write one take's arranged MIDI and render its WAV (and the stems, for the first take)."""
    from .music.render import RenderOptions, render_midi, write_midi

    render_options = RenderOptions(loudness=options.loudness, fade=options.fade, duck=options.duck,
                                   soundfont=options.soundfont)
    extra: dict = {}
    if stems:
        extra["stems"] = {g: outputs.stem(g) for g in stems}
    if options.duck is not None:
        extra["speech"] = tuple(speech)
    with ThreadPoolExecutor(1, thread_name_prefix="emsync-midi") as side:  # written while the first blocks play
        written = side.submit(write_midi, arranged, outputs.take_midi(number))
        rendered = render_midi(arranged, outputs.take_wav(number), timeline.duration, render_options, **extra)
        written.result()
    return _Take(number, options.seed + number - 1, midi, arranged, rendered)


def _find_speech(timeline: Timeline, options: ScoreOptions) -> list[tuple[float, float]]:
    """Dialogue in the timeline's own sound, when the score ducks under it."""
    if options.duck is None:
        return []
    from .speech import find_speech

    found = find_speech(timeline)
    logger.info("speech: %d region(s), %.1f s in all", len(found), sum(b - a for a, b in found))
    return found


def _score_tracks(timeline: Timeline, takes: Sequence[_Take], settings: dict, outputs: _Outputs) -> list[ScoreTrack]:
    """The tracks to put on the timeline: each take (all but the first muted), then each stem (muted)."""
    tracks = []
    for take in takes:
        name = SCORE_NAME if len(takes) == 1 else f"{SCORE_NAME} take {take.number}"
        meta = settings if len(takes) == 1 else {**settings, "take": take.number, "take_seed": take.seed}
        tracks.append(ScoreTrack(wav=take.rendered.wav, midi=outputs.take_midi(take.number), duration=timeline.duration,
                                 metadata=meta, name=name, muted=take.number > 1, gain=tuple(take.rendered.gain)))
    for group, wav in takes[0].rendered.stems.items():
        tracks.append(ScoreTrack(wav=wav, midi=outputs.midi, duration=timeline.duration, metadata={**settings, "stem": group},
                                 name=f"{SCORE_NAME} stem {group}", muted=True, gain=tuple(takes[0].rendered.gain)))
    return tracks


def model_sha256(options: ScoreOptions) -> str | None:
    """Which generator a run uses, for a re-score to notice a new one: the sha256 of its fp32
    file, whatever the precision (the int8 build is the same weights, so switching builds does
    not regenerate approved music); None for the baseline arranger."""
    if resolve_engine(options.engine) != "emsync":
        return None
    from .models import manifest
    from .music.generator import MODEL_FILES

    entry = manifest()["files"].get(MODEL_FILES["fp32"])
    return entry["sha256"] if entry else None


def _prepare_outputs(outputs: _Outputs, snapshot: fileio.Snapshot | None, stems: Sequence[str] = ()) -> None:
    """Clear what killed runs left, re-check the project, and back up files emsync did not write."""
    files = outputs.files(stems)
    for target in [outputs.timeline, *files]:
        fileio.remove_stale_temps(target)
    if snapshot is not None:
        snapshot.check()  # before anything is written
    ours = _written_before(outputs.sidecar) if any(f.exists() for f in files) else set()
    for target in files:
        if target.exists() and str(target.resolve()) not in ours:
            fileio.backup(target)  # the editor's own file of that name


def _groups(midi: pretty_midi.PrettyMIDI) -> dict[str, int]:
    """The instrument groups heard (the style's, drums included) and their notes."""
    from .music.groups import instrument_group

    counts: dict[str, int] = {}
    for inst in midi.instruments:
        group = instrument_group(inst)
        counts[group] = counts.get(group, 0) + len(inst.notes)
    return dict(sorted(counts.items()))


def _settings(path: Path, timeline: Timeline, moods: Sequence[SceneMood], decisions: Sequence[rescore.Decision],
              previous: rescore.Previous | None, takes: Sequence[_Take], options: ScoreOptions,
              outputs: _Outputs, speech: Sequence[tuple[float, float]]) -> dict:
    """What the sidecar records (and the written timeline carries in its metadata)."""
    from .music.render import RenderOptions

    learned = {"sampling": asdict(options.sampling()), "precision": options.precision} if options.engine == "emsync" else {}
    lufs = takes[0].rendered.lufs
    run: dict = {
        "version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": str(path.resolve()),
        "engine": options.engine,
        "seed": options.seed,
        **learned,
        "wav": str(outputs.wav),
        "midi": str(outputs.midi),
        "sidecar": str(outputs.sidecar),
        "loudness": options.loudness,
        "lufs": None if not math.isfinite(lufs) else round(lufs, 2),
        "fade": options.fade,
        "style": options.style,
        "groups": _groups(takes[0].arranged),
        "soundfont": str(RenderOptions(soundfont=options.soundfont).resolved_soundfont()),
    }
    if takes[0].rendered.stems:
        run["stems"] = {g: str(p) for g, p in takes[0].rendered.stems.items()}
    if options.duck is not None:
        run["duck"] = {"db": options.duck, "speech": [[round(a, 3), round(b, 3)] for a, b in speech]}
    record = sidecar.record(run, timeline, moods, decisions, takes[0].midi, previous, model_sha256(options))
    if len(takes) > 1:
        record["takes"] = [sidecar.take_record(t.number, t.seed, outputs.take_wav(t.number), outputs.take_midi(t.number),
                                               t.midi, timeline) for t in takes]
    return record


def _write_back(timeline: Timeline, out: Path, tracks: Sequence[ScoreTrack], snapshot: fileio.Snapshot | None,
                in_place: bool) -> Path:
    with fileio.guarding(snapshot):  # the rename onto the project re-checks it
        if snapshot is not None:
            snapshot.check()
        if out.exists() and (in_place or not timeline_io.written_by_emsync(out)):
            fileio.backup(out)
        return write_timeline(timeline, out, tracks[0] if len(tracks) == 1 else tracks)


def _written_before(sidecar_path: Path) -> set[str]:
    """The files an earlier run names in its sidecar (resolved paths); none if it cannot be read."""
    try:
        return {str(Path(p).resolve()) for p in sidecar.written_files(sidecar.read_sidecar(sidecar_path))}
    except (TimelineError, OSError, ValueError):
        return set()


def missing_media(timeline: Timeline) -> list[str]:
    """Local media files the timeline names that do not exist (URLs are not checked)."""
    seen: list[str] = []
    for scene in timeline.scenes:
        m = scene.media
        if m and "://" not in m and m not in seen and not Path(m).exists():
            seen.append(m)
    return seen


def estimate_moods(timeline: Timeline, options: ScoreOptions) -> list[SceneMood]:
    """Valence/arousal per scene: ``--emotion`` > ``emsync:`` markers > ``--valence/--arousal`` >
    analysis of each scene's picture and sound (``emotion/analyze.py``). Missing media is a
    ``MediaError`` unless the scenes using it are overridden or ``--valence/--arousal`` are given."""
    from .emotion.analyze import estimate

    return estimate(timeline, emotion=options.emotion, valence=options.valence, arousal=options.arousal)


def mood_sequence(timeline: Timeline, options: ScoreOptions) -> Moods:
    """The moods of :func:`estimate_moods`, decided as they are asked for: the analysis runs in
    its threads meanwhile, and ``moods[i]`` waits only for the scenes that decide scene ``i``
    (:class:`~emsync_plugin.emotion.analyze.Moods`; use it as a context manager)."""
    from .emotion.analyze import Moods

    return Moods(timeline, emotion=options.emotion, valence=options.valence, arousal=options.arousal)


def resolve_engine(engine: str) -> str:
    """"auto" becomes "emsync" when the shipped generator is installed, else "baseline"."""
    if engine != "auto":
        return engine
    from .models import manifest

    if "generator.onnx" in manifest()["files"]:
        return "emsync"
    logger.info("the learned generator is not installed; using the baseline arranger")
    return "baseline"


def generate(timeline: Timeline, moods: Sequence[SceneMood], options: ScoreOptions,
             kept: Sequence[rescore.KeptSpan] = (), generator: Any = None) -> pretty_midi.PrettyMIDI:
    """MIDI for the timeline's cuts and moods with the chosen engine; ``kept`` music (from a
    previous score) goes in note for note where it belongs (the learned engine also continues
    from it: the music after a kept scene is primed with it). ``generator``: the learned
    engine, loaded already (else it is loaded here)."""
    engine = resolve_engine(options.engine)
    if engine == "emsync":
        if generator is None:
            from .music.generator import Generator

            generator = Generator.load(precision=options.precision)
        midi = generator.generate(timeline.cuts, timeline.duration, moods, options.sampling(), kept=kept).midi
    elif engine == "baseline":
        from .music.baseline import BaselineOptions, arrange

        midi = arrange(timeline.cuts, timeline.duration, moods, BaselineOptions(seed=options.seed))
    else:
        raise OptionsError(f"unknown engine {options.engine!r}")  # unreachable: validated in ScoreOptions
    return rescore.splice(midi, kept, timeline.duration)
