"""The one place that chains the stages; the CLI, the Resolve script and the panel all call it.

    read cuts -> scene moods -> generate MIDI -> render audio -> write timeline (+ sidecar)

Each stage is a plain function of the previous one's result, so any of them can be swapped
(the learned generator and the emotion model plug in here).
"""
from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pretty_midi

from . import __version__, fileio, rescore, sidecar
from . import progress as bars
from .errors import OptionsError, TimelineError
from .mood import SceneMood
from .music.baseline import BaselineOptions, arrange
from .music.generator import MODEL_FILES
from .music.render import RenderOptions, render_midi, write_midi
from .timeline import ScoreTrack, Timeline, read_cuts, write_timeline
from .timeline import io as timeline_io
from .timeline.io import MIN_DURATION

logger = logging.getLogger(__name__)

ENGINES = ("auto", "emsync", "baseline")  # auto: the learned model when installed, else baseline
PRECISIONS = tuple(MODEL_FILES)  # builds of the learned model (onnx_models/generator.onnx, generator.int8.onnx)
#: The longest timeline scored in one run: the rendered audio is held in memory (about 2.7 GB
#: of samples for 2 hours); longer programmes are scored reel by reel.
MAX_SCORE_SECONDS = 2 * 3600.0
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class ScoreOptions:
    """Everything ``score`` needs besides the timeline; validated before any work starts."""

    output: Path | None = None  # scored timeline; default beside the input: <stem>.emsync<suffix>
    engine: str = "auto"
    temperature: float | None = None  # sampling (learned engine); None: the documented default
    top_p: float | None = None
    guidance: float | None = None  # emotion guidance of the learned engine; None: the default
    mode_steering: float | None = None  # how hard valence turns the mode major/minor; None: the default
    precision: str = "fp32"  # learned engine build: "fp32" or "int8" (faster, smaller, same quality)
    valence: float | None = None  # -1..1, for the whole timeline (overrides the estimate)
    arousal: float | None = None
    emotion: tuple[str, ...] = ()  # per-scene overrides "N=MOOD" / "N=V,A" (win over markers and --valence/--arousal)
    track: str | None = None  # video track that gives the cuts; default all enabled ones
    rate: float | None = None  # EDLs only: they carry no rate
    in_place: bool = False  # overwrite the input, keeping a timestamped backup
    seed: int = 0
    loudness: float = -16.0  # LUFS
    fade: float = 3.0  # seconds
    write_timeline: bool = True  # False: only WAV + MIDI + sidecar (the Resolve bridge imports them itself)
    report_png: Path | None = None  # also draw cuts, moods and piano roll to this PNG
    previous: Path | None = None  # re-score against this sidecar (default: the timeline's own earlier score)
    fresh: bool = False  # ignore any previous score
    regenerate: tuple[int, ...] = ()  # scenes that get new music even if unchanged
    lock: tuple[int, ...] = ()  # scenes whose music must not change

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise OptionsError(f"unknown engine {self.engine!r}", hint=f"choose one of: {', '.join(ENGINES)}")
        if self.precision not in PRECISIONS:
            raise OptionsError(f"unknown precision {self.precision!r}", hint=f"choose one of: {', '.join(PRECISIONS)}")
        for name in ("valence", "arousal"):
            value = getattr(self, name)
            if value is not None and not (-1.0 <= value <= 1.0 and math.isfinite(value)):
                raise OptionsError(f"--{name} {value} is out of range", hint="use a value from -1 to 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise OptionsError(f"--seed {self.seed} is not a seed", hint="use a whole number from 0 (default 0)")
        if self.rate is not None and not (0 < self.rate <= 240):
            raise OptionsError(f"--rate {self.rate} is not a frame rate", hint="use e.g. 24, 25, 29.97 or 30")
        if not (-70.0 <= self.loudness <= 0.0):
            raise OptionsError(f"--loudness {self.loudness} LUFS is out of range", hint="use -70 to 0 (default -16)")
        if not (0.0 <= self.fade <= 30.0):
            raise OptionsError(f"--fade {self.fade} s is out of range", hint="use 0 to 30 seconds (default 3)")
        self.sampling()  # temperature, top-p and guidance are checked now, not after the analysis
        self._check_rescore()
        for name in ("output", "report_png", "previous"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        emotion = (self.emotion,) if isinstance(self.emotion, str) else tuple(self.emotion or ())
        object.__setattr__(self, "emotion", tuple(str(e) for e in emotion))
        if self.emotion:
            from .emotion.overrides import validate_cli

            validate_cli(self.emotion)  # the form of each; scene numbers are checked against the timeline


    def _check_rescore(self) -> None:
        for name in ("regenerate", "lock"):
            scenes = tuple(getattr(self, name) or ())
            if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in scenes):
                raise OptionsError(f"--{name} {scenes} is not a list of scene numbers", hint="write e.g. 3,5")
            object.__setattr__(self, name, tuple(sorted(set(scenes))))
        both = set(self.regenerate) & set(self.lock)
        if both:
            raise OptionsError(f"scene {min(both)} is both locked and to be regenerated", hint="choose one")
        if self.fresh and (self.previous is not None or self.lock):
            raise OptionsError("--fresh ignores the previous score", hint="drop --previous/--lock, or --fresh")

    def sampling(self):
        """The learned engine's :class:`~emsync_plugin.music.decoding.SamplingOptions`."""
        from .music.decoding import SamplingOptions

        kw = {k: getattr(self, k) for k in ("temperature", "top_p", "guidance", "mode_steering")
              if getattr(self, k) is not None}
        return SamplingOptions(seed=self.seed, **kw)


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
    wav: Path
    midi: Path
    sidecar: Path

    @classmethod
    def for_run(cls, out: Path, in_place: bool) -> _Outputs:
        base = out.with_suffix("") if out.suffix else out
        if in_place:  # NAME.emsync.wav, never NAME.wav: that may be the editor's own audio
            base = base.with_name(base.name + ".emsync")
        wav, midi, sidecar = (base.with_name(base.name + ext).resolve() for ext in (".wav", ".mid", ".json"))
        return cls(out, wav, midi, sidecar)


def score(path: str | Path, options: ScoreOptions = ScoreOptions(), progress: Progress | None = None) -> ScoreResult:
    """Score the timeline at ``path``: read its cuts, write music on them, put it back."""
    step = progress or _quiet
    path = Path(path)
    options = replace(options, engine=resolve_engine(options.engine))  # decided once per run
    fileio.remove_stale_temps(path)  # puts back a bundle an interrupted --in-place run set aside
    # what the project is now: with --in-place it is only replaced if nobody saved it meanwhile
    snapshot = timeline_io.snapshot(path) if options.in_place and options.write_timeline and timeline_io.is_project(path) else None
    timeline = _read(path, options, step, min_duration=MIN_DURATION)
    logger.info("%s: %d cuts, %.2f s at %.3f fps", path.name, len(timeline.cuts), timeline.duration, timeline.rate)
    _check_length(path, timeline)
    outputs = _Outputs.for_run(timeline_io.output_path(path, timeline, options.output, options.in_place), options.in_place)

    previous = _previous_score(path, outputs, options)

    step("estimating moods", 0.15)
    moods = tuple(estimate_moods(timeline, options))
    decisions = tuple(rescore.plan(timeline, moods, previous, regenerate=options.regenerate, lock=options.lock,
                                   model_sha256=model_sha256(options)))
    _log_decisions(path, decisions, previous)

    step("generating music", 0.3)
    midi = generate(timeline, moods, options, rescore.kept_spans(timeline, decisions, previous))
    _prepare_outputs(outputs, snapshot)
    write_midi(midi, outputs.midi)

    step("rendering audio", 0.5)
    rendered = render_midi(midi, outputs.wav, timeline.duration, RenderOptions(loudness=options.loudness, fade=options.fade))
    settings = _settings(path, timeline, moods, decisions, previous, midi, options, outputs, rendered.lufs)
    fileio.write_text(outputs.sidecar, json.dumps(settings, indent=2) + "\n")

    written = None
    if options.write_timeline:
        step("writing timeline", 0.85)
        written = _write_back(timeline, outputs, sidecar.for_timeline(settings), snapshot, options.in_place)
    picture = None
    if options.report_png is not None:
        from .report import draw_report

        picture = draw_report(timeline, moods, midi, options.report_png, decisions=decisions if previous else None)
    step("done", 1.0)
    return ScoreResult(timeline, written, outputs.wav, outputs.midi, outputs.sidecar, rendered.lufs, moods, picture,
                       decisions)


def _previous_score(path: Path, outputs: _Outputs, options: ScoreOptions) -> rescore.Previous | None:
    """The score to keep music from: ``--previous``, else the one the timeline already carries."""
    if options.fresh:
        return None
    if options.previous is not None:
        candidate = options.previous
        if not candidate.is_file():
            raise OptionsError(f"--previous {candidate} does not exist", hint="name the NAME.emsync.json of the earlier score")
    else:
        if not timeline_io.written_by_emsync(path):
            return None  # the timeline carries no score of its own: a first score
        candidate = sidecar.sidecar_of(path)
        if not candidate.is_file():
            candidate = outputs.sidecar
        if not candidate.is_file():
            logger.info("%s carries an EMSYNC Score but its settings file %s is gone; scoring every scene afresh",
                        path.name, candidate.name)
            return None
    try:
        return rescore.read_previous(sidecar.read_sidecar(candidate), candidate)
    except TimelineError as exc:
        logger.warning("%s", exc)
        return None


def _log_decisions(path: Path, decisions: Sequence[rescore.Decision], previous: rescore.Previous | None) -> None:
    if previous is None:
        return
    kept = sum(d.keeps_music for d in decisions)
    logger.info("%s: re-scoring against %s: %d of %d scenes keep their music", path.name, previous.path.name,
                kept, len(decisions))
    if kept == 0:
        logger.info("no scene of %s matches the previous score (another timeline, or every picture changed)", path.name)
    for d in decisions:
        logger.info("scene %d: %s", d.index, d.describe())


def model_sha256(options: ScoreOptions) -> str | None:
    """The sha256 of the generator build a run uses (None for the baseline arranger)."""
    if resolve_engine(options.engine) != "emsync":
        return None
    from .models import manifest

    entry = manifest()["files"].get(MODEL_FILES[options.precision])
    return entry["sha256"] if entry else None


def _check_length(path: Path, timeline: Timeline) -> None:
    if timeline.duration > MAX_SCORE_SECONDS:
        raise OptionsError(
            f"{path.name} is {timeline.duration / 3600:.1f} hours long; emsync scores at most "
            f"{MAX_SCORE_SECONDS / 3600:g} hours in one run",
            hint="score the programme reel by reel (one sequence or --track at a time)",
        )


def _prepare_outputs(outputs: _Outputs, snapshot: fileio.Snapshot | None) -> None:
    """Clear what killed runs left, re-check the project, and back up files emsync did not write."""
    for target in (outputs.timeline, outputs.wav, outputs.midi, outputs.sidecar):
        fileio.remove_stale_temps(target)
    if snapshot is not None:
        snapshot.check()  # before anything is written
    for target in (outputs.wav, outputs.midi, outputs.sidecar):
        _keep_foreign(target, outputs.sidecar)


def _settings(path: Path, timeline: Timeline, moods: Sequence[SceneMood], decisions: Sequence[rescore.Decision],
              previous: rescore.Previous | None, midi: pretty_midi.PrettyMIDI, options: ScoreOptions,
              outputs: _Outputs, lufs: float) -> dict:
    """What the sidecar records (and the written timeline carries in its metadata)."""
    learned = {"sampling": asdict(options.sampling()), "precision": options.precision} if options.engine == "emsync" else {}
    run = {
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
    }
    return sidecar.record(run, timeline, moods, decisions, midi, previous, model_sha256(options))


def _write_back(timeline: Timeline, outputs: _Outputs, settings: dict, snapshot: fileio.Snapshot | None,
                in_place: bool) -> Path:
    out = outputs.timeline
    with fileio.guarding(snapshot):  # the rename onto the project re-checks it
        if snapshot is not None:
            snapshot.check()
        if out.exists() and (in_place or not timeline_io.written_by_emsync(out)):
            fileio.backup(out)
        return write_timeline(
            timeline, out, ScoreTrack(wav=outputs.wav, midi=outputs.midi, duration=timeline.duration, metadata=settings)
        )


def _keep_foreign(target: Path, sidecar_path: Path) -> None:
    """Back up an existing file emsync is about to replace unless an earlier run wrote it
    (its sidecar names it)."""
    if not target.exists():
        return
    try:
        ours = {str(Path(v).resolve()) for k, v in sidecar.read_sidecar(sidecar_path).items() if k in ("wav", "midi", "sidecar")}
    except (TimelineError, OSError, ValueError):
        ours = set()
    if str(target.resolve()) not in ours:
        fileio.backup(target)


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
             kept: Sequence[rescore.KeptSpan] = ()) -> pretty_midi.PrettyMIDI:
    """MIDI for the timeline's cuts and moods with the chosen engine; ``kept`` music (from a
    previous score) goes in note for note where it belongs."""
    engine = resolve_engine(options.engine)
    if engine == "emsync":
        from .music.generator import Generator

        generator = Generator.load(precision=options.precision)
        midi = generator.generate(timeline.cuts, timeline.duration, moods, options.sampling()).midi
    elif engine == "baseline":
        midi = arrange(timeline.cuts, timeline.duration, moods, BaselineOptions(seed=options.seed))
    else:
        raise OptionsError(f"unknown engine {options.engine!r}")  # unreachable: validated in ScoreOptions
    return rescore.splice(midi, kept, timeline.duration)
