"""What a run of emsync may be asked: ``ScoreOptions``, frozen and checked before any work starts."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .errors import OptionsError

ENGINES = ("auto", "emsync", "baseline")  # auto: the learned model when installed, else baseline
MAX_TAKES = 8
DUCK_DB = -12.0  # --duck without a level


@dataclass(frozen=True)
class ScoreOptions:
    """Everything ``score`` needs besides the timeline; validated before any work starts."""

    output: Path | None = None  # scored timeline; default beside the input: <stem>.emsync<suffix>
    engine: str = "auto"
    temperature: float | None = None  # sampling (learned engine); None: the documented default
    top_p: float | None = None
    guidance: float | None = None  # emotion guidance of the learned engine; None: the default
    mode_steering: float | None = None  # how hard valence turns the mode major/minor; None: the default
    precision: str = "int8"  # learned engine build: "int8" (faster, same quality: the model card) or "fp32"
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
    takes: int = 1  # scores with seeds seed .. seed+takes-1, each on its own track (the first unmuted)
    take: int | None = None  # re-score: the previous take to keep music from (default: the unmuted one)
    stems: bool = False  # also one WAV (and track) per instrument group, summing to the mix
    duck: float | None = None  # dB the score drops under dialogue (negative); None: no ducking
    #: score only this range: seconds from the timeline's start, or timeline timecode text ("01:00:10:00")
    range_in: float | str | None = None
    range_out: float | str | None = None
    style: str = ""  # orchestration applied after generation ("": the default; emsync styles lists them)
    soundfont: Path | None = None  # General MIDI .sf2 to render with; None: FluidR3_GM when installed, else TimGM6mb

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise OptionsError(f"unknown engine {self.engine!r}", hint=f"choose one of: {', '.join(ENGINES)}")
        from .music.generator import MODEL_FILES  # the builds of the learned model

        if self.precision not in MODEL_FILES:
            raise OptionsError(f"unknown precision {self.precision!r}", hint=f"choose one of: {', '.join(MODEL_FILES)}")
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
        self._check_takes()
        self._check_style()
        self._check_soundfont()
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

    def _check_takes(self) -> None:
        if isinstance(self.takes, bool) or not isinstance(self.takes, int) or not 1 <= self.takes <= MAX_TAKES:
            raise OptionsError(f"--takes {self.takes} is out of range", hint=f"use 1 to {MAX_TAKES}")
        if self.take is not None and (isinstance(self.take, bool) or not isinstance(self.take, int) or not 1 <= self.take <= MAX_TAKES):
            raise OptionsError(f"--take {self.take} is not a take number", hint=f"use 1 to {MAX_TAKES}")
        if self.duck is not None and not (-60.0 <= self.duck < 0.0 and math.isfinite(self.duck)):
            raise OptionsError(f"--duck {self.duck} dB is out of range", hint="use a negative level down to -60 dB (default -12)")

    def _check_style(self) -> None:
        from .music.styles import DEFAULT_STYLE, check_style  # imported here: `emsync cuts` needs no MIDI

        if not self.style:
            object.__setattr__(self, "style", DEFAULT_STYLE)
        check_style(self.style)

    def _check_soundfont(self) -> None:
        if self.soundfont is None:
            return
        path = Path(self.soundfont).expanduser()
        if not path.is_file():
            raise OptionsError(f"--soundfont {path}: no such file", hint="pass a General MIDI SoundFont 2 (.sf2) file")
        object.__setattr__(self, "soundfont", path)

    def sampling(self):
        """The learned engine's :class:`~emsync_plugin.music.decoding.SamplingOptions`."""
        from .music.decoding import SamplingOptions

        kw = {k: getattr(self, k) for k in ("temperature", "top_p", "guidance", "mode_steering")
              if getattr(self, k) is not None}
        return SamplingOptions(seed=self.seed, **kw)
