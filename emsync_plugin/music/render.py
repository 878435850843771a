"""Render a score to the WAV that goes back on the timeline.

``render_midi`` synthesises a MIDI score with a General MIDI SoundFont (the self-contained
``midirenderer`` wheel, rustysynth inside, at 48 kHz, resampled to other rates), fits it to
exactly ``round(duration * sample_rate)`` samples, fades out the last ``fade`` seconds to exactly
zero (EMSYNC uses 3 s), normalises the integrated loudness (ITU-R BS.1770 via pyloudnorm) to the
target under a sample-peak ceiling, and writes a stereo PCM WAV atomically. The default
SoundFont is ``TimGM6mb.sf2``, which ships inside the ``pretty_midi`` wheel.

Asked for stems, it synthesises each instrument group alone, makes the mix their sum and gives
every stem the mix's gains (normalisation, fade, limiter envelope, ducking), so the stems add up
to the mix. Asked to duck, it lowers the normalised score under the speech regions it is given
with smooth attack and release ramps (see docs/music.md).
"""
from __future__ import annotations

import copy
import io
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pretty_midi
import pyloudnorm
import soundfile

from ..errors import OptionsError, RenderError
from ..fileio import atomic_path
from .groups import instrument_group

logger = logging.getLogger(__name__)

# The limiter's attack/release window (seconds) and how often it may retry to reach the target.
_LIMITER_WINDOW = 0.02
_LIMITER_PASSES = 6
# The absolute gate of BS.1770: quieter than this counts as silence.
_SILENCE_LUFS = -70.0


def default_soundfont() -> Path:
    """The General MIDI SoundFont shipped inside the pretty_midi wheel (TimGM6mb.sf2)."""
    return Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"


def _check_number(name: str, value: object, low: float, high: float) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not low <= value <= high):
        raise OptionsError(f"{name} must be a number from {low:g} to {high:g}, not {value!r}")


@dataclass(frozen=True)
class RenderOptions:
    """How to render, validated on creation (:class:`OptionsError`).

    ``loudness`` is the integrated-loudness target in LUFS, ``ceiling`` the highest sample
    peak allowed in dBFS (a limiter holds it when the target would clip), ``fade`` the
    seconds of fade-out ending the file, ``bit_depth`` 16 or 24 (PCM). ``duck`` is how many dB
    (negative) the score goes down under speech, ``None`` for no ducking; ``attack`` and
    ``release`` are the seconds it takes to go down before speech and back up after it.
    """

    sample_rate: int = 48000
    loudness: float = -16.0
    fade: float = 3.0
    soundfont: Path | None = None
    ceiling: float = -1.0
    bit_depth: int = 24
    duck: float | None = None
    attack: float = 0.2
    release: float = 0.8

    def __post_init__(self) -> None:
        sr = self.sample_rate
        if isinstance(sr, bool) or not isinstance(sr, int) or not 8000 <= sr <= 192000:
            raise OptionsError(f"sample_rate must be a whole number of Hz from 8000 to 192000, not {sr!r}")
        ranges = [("loudness", -70.0, 0.0), ("fade", 0.0, 600.0), ("ceiling", -30.0, 0.0),
                  ("attack", 0.0, 10.0), ("release", 0.0, 10.0)]
        if self.duck is not None:
            ranges.append(("duck", -60.0, 0.0))
        for name, low, high in ranges:
            _check_number(name, getattr(self, name), low, high)
        if self.soundfont is not None:
            if not isinstance(self.soundfont, (str, Path)) or not str(self.soundfont):
                raise OptionsError(f"soundfont must be a path to an .sf2 file, not {self.soundfont!r}")
            object.__setattr__(self, "soundfont", Path(self.soundfont).expanduser())
        if self.bit_depth not in (16, 24) or isinstance(self.bit_depth, bool):
            raise OptionsError(f"bit_depth must be 16 or 24, not {self.bit_depth!r}")

    def resolved_soundfont(self) -> Path:
        """The SoundFont to use: the chosen one, else the one shipped with pretty_midi."""
        return self.soundfont if self.soundfont is not None else default_soundfont()


@dataclass(frozen=True)
class RenderResult:
    """What was written: ``samples`` frames of stereo audio at ``sample_rate``.

    ``lufs`` is the integrated loudness achieved (``-inf`` for silence), ``peak`` the sample
    peak as a fraction of full scale, ``seconds`` the wall time the render took.
    """

    wav: Path
    samples: int
    sample_rate: int
    lufs: float
    peak: float
    seconds: float = 0.0
    #: the stem written per group
    stems: dict[str, Path] = field(default_factory=dict)
    #: the ducking envelope as keyframes (seconds from the start, dB); empty without ducking
    gain: tuple[tuple[float, float], ...] = ()

    @property
    def speed(self) -> float:
        """How many times faster than real time the render ran."""
        return (self.samples / self.sample_rate) / self.seconds if self.seconds > 0 else math.inf


def write_midi(pm: pretty_midi.PrettyMIDI, path: str | Path) -> Path:
    """Write ``pm`` as a standard MIDI file to ``path`` atomically and return the path."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            pm.write(str(tmp))
    except OSError as exc:
        raise RenderError(f"cannot write the MIDI file ({exc.strerror or exc})", path=path,
                          hint="Choose a folder you can write to") from exc
    return path


def _midi_bytes(midi: pretty_midi.PrettyMIDI | str | Path) -> bytes:
    if isinstance(midi, pretty_midi.PrettyMIDI):
        buffer = io.BytesIO()
        midi.write(buffer)
        return buffer.getvalue()
    path = Path(midi)
    if not path.is_file():
        raise RenderError("MIDI file not found", path=path, hint="Check the path or arrange the score again")
    return path.read_bytes()


def _check_soundfont(path: Path) -> None:
    if not path.is_file():
        if path == default_soundfont():
            hint = "Reinstall pretty_midi (pip install --force-reinstall pretty_midi), which ships it, or pass --soundfont FILE.sf2"
        else:
            hint = "Pass an existing General MIDI .sf2 file, or leave the SoundFont unset to use the one shipped with pretty_midi"
        raise RenderError("SoundFont not found", path=path, hint=hint)


def _synth_midirenderer(midi: bytes, soundfont: Path) -> tuple[np.ndarray, int]:
    import midirenderer

    try:
        wav = midirenderer.render_wave_from(soundfont.read_bytes(), midi)
    except Exception as exc:  # ValueError/RuntimeError for bad input
        raise RenderError(f"the synthesizer could not render the score with this SoundFont ({exc})",
                          path=soundfont, hint="Use a valid SoundFont 2 (.sf2) file") from exc
    except BaseException as exc:  # a Rust panic surfaces as pyo3's PanicException (a BaseException)
        if type(exc).__name__ != "PanicException":
            raise
        raise RenderError(f"the synthesizer crashed on this SoundFont or score ({exc})", path=soundfont,
                          hint="Use a valid SoundFont 2 (.sf2) file, not SoundFont 3") from exc
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    return audio, int(rate)


def _resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target or len(audio) == 0:
        return audio
    from scipy.signal import resample_poly

    ratio = Fraction(target, rate)
    return resample_poly(audio, ratio.numerator, ratio.denominator, axis=0).astype(np.float32)


def _fit(audio: np.ndarray, samples: int) -> np.ndarray:
    """Make ``audio`` stereo and exactly ``samples`` long (trimmed or padded with silence)."""
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    elif audio.shape[1] > 2:
        audio = audio[:, :2]
    if len(audio) >= samples:
        return np.ascontiguousarray(audio[:samples])
    return np.concatenate([audio, np.zeros((samples - len(audio), 2), dtype=audio.dtype)])


def fade_out(audio: np.ndarray, samples: int) -> np.ndarray:
    """Fade the last ``samples`` frames of ``audio`` (in place) with a raised cosine ending at exactly 0."""
    samples = min(samples, len(audio))
    if samples <= 0:
        return audio
    if samples == 1:
        curve = np.zeros(1)
    else:
        curve = 0.5 * (1.0 + np.cos(np.pi * np.arange(samples) / (samples - 1)))
        curve[-1] = 0.0
    audio[-samples:] *= curve[:, None].astype(audio.dtype)
    return audio


def integrated_loudness(audio: np.ndarray, rate: int) -> float:
    """BS.1770 integrated loudness in LUFS (``-inf`` for silence).

    Audio shorter than the standard 400 ms gating block is measured as one block.
    """
    if len(audio) == 0 or not np.any(audio):
        return -math.inf
    meter = pyloudnorm.Meter(rate, block_size=min(0.4, len(audio) / rate))
    value = float(meter.integrated_loudness(audio))
    return value if math.isfinite(value) else -math.inf


def _limiter_gain(audio: np.ndarray, ceiling: float, rate: int) -> np.ndarray | None:
    """The per-frame gain of :func:`limit` (``None`` when nothing exceeds ``ceiling``)."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    level = np.max(np.abs(audio), axis=1)
    need = np.minimum(1.0, ceiling / np.maximum(level, 1e-12))
    if need.min() >= 1.0:
        return None
    half = max(1, int(_LIMITER_WINDOW * rate))
    gain = minimum_filter1d(need, size=2 * half + 1, mode="nearest")
    gain = uniform_filter1d(gain, size=half | 1, mode="nearest")
    return np.minimum(gain, need).astype(audio.dtype)


def limit(audio: np.ndarray, ceiling: float, rate: int) -> np.ndarray:
    """A look-ahead peak limiter: no sample of the result exceeds ``ceiling`` (linear).

    The gain needed at each frame is spread over ``_LIMITER_WINDOW`` either side (a minimum
    filter, then a moving average no wider than it), so it never exceeds the need and moves
    smoothly instead of clipping.
    """
    gain = _limiter_gain(audio, ceiling, rate)
    if gain is None:
        return audio
    return np.clip(audio * gain[:, None], -ceiling, ceiling)


class GainChain:
    """The gains the mix went through (scalars and per-frame envelopes), to give a stem the same."""

    def __init__(self) -> None:
        self.steps: list[np.ndarray] = []

    def apply(self, audio: np.ndarray) -> np.ndarray:
        """``audio`` with every gain applied in order (stereo frames, float32)."""
        for step in self.steps:
            audio = audio * (step if step.ndim == 0 else step[:, None])
        return audio


def _normalise(audio: np.ndarray, rate: int, target: float, ceiling_db: float
               ) -> tuple[np.ndarray, float, GainChain]:
    chain = GainChain()
    lufs = integrated_loudness(audio, rate)
    if lufs <= _SILENCE_LUFS:
        logger.info("the score is silent (%.1f LUFS); loudness left as it is", lufs)
        return audio, lufs, chain
    ceiling = 10.0 ** (ceiling_db / 20.0)
    limited = False
    for _ in range(_LIMITER_PASSES):
        scale = np.float32(10.0 ** ((target - lufs) / 20.0))
        chain.steps.append(np.asarray(scale))
        audio = audio * scale
        if np.max(np.abs(audio)) > ceiling:
            gain = _limiter_gain(audio, ceiling, rate)
            if gain is not None:
                chain.steps.append(gain)
                audio = np.clip(audio * gain[:, None], -ceiling, ceiling)
            limited = True
        lufs = integrated_loudness(audio, rate)
        if abs(lufs - target) <= 0.05:
            break
    if abs(lufs - target) > 0.5:
        logger.warning("the score reaches only %.1f LUFS, not the target %.1f LUFS, without peaks above %.1f dBFS",
                       lufs, target, ceiling_db)
    elif limited:
        logger.info("limited peaks to %.1f dBFS to reach %.1f LUFS", ceiling_db, lufs)
    return audio, lufs, chain


def speech_regions(speech: Sequence[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """``speech`` checked (:class:`OptionsError`), clipped to ``[0, duration]``, sorted and merged."""
    regions = []
    for item in speech:
        try:
            start, end = (float(v) for v in item)
        except (TypeError, ValueError):
            raise OptionsError(f"a speech region must be (start, end) in seconds, not {item!r}") from None
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise OptionsError(f"a speech region must end after it starts, in finite seconds, not {item!r}")
        start, end = max(start, 0.0), min(end, duration)
        if end > start:
            regions.append((start, end))
    merged: list[tuple[float, float]] = []
    for start, end in sorted(regions):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _ramp(u: np.ndarray) -> np.ndarray:
    """A raised-cosine ramp from 0 (``u <= 0``) to 1 (``u >= 1``)."""
    return 0.5 * (1.0 - np.cos(np.pi * np.clip(u, 0.0, 1.0)))


def _duck_depth(t: np.ndarray, regions: Sequence[tuple[float, float]], attack: float, release: float) -> np.ndarray:
    """How far down (0 = not ducked, 1 = fully) the score is at times ``t``."""
    depth = np.zeros(len(t))
    for start, end in regions:
        down = _ramp((t - (start - attack)) / attack) if attack > 0 else (t >= start).astype(float)
        up = 1.0 - _ramp((t - end) / release) if release > 0 else (t <= end).astype(float)
        depth = np.maximum(depth, np.minimum(down, up))
    return depth


def ducking(regions: Sequence[tuple[float, float]], options: RenderOptions, samples: int, rate: int
            ) -> tuple[np.ndarray | None, tuple[tuple[float, float], ...]]:
    """The ducking gain per frame (float32, ``None`` for none) and its keyframes (seconds, dB).

    Regions closer than attack + release stay ducked in between, so the keyframes (where each
    ramp starts and ends) describe the envelope exactly up to the ramps' shape.
    """
    if options.duck is None or not options.duck or not regions or not samples:
        return None, ()
    attack, release, duration = options.attack, options.release, samples / rate
    spans: list[tuple[float, float]] = []
    for start, end in regions:
        if spans and start - spans[-1][1] < attack + release:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    depth = _duck_depth(np.arange(samples) / rate, spans, attack, release)
    gain = (10.0 ** (options.duck * depth / 20.0)).astype(np.float32)
    corners = sorted({min(max(t, 0.0), duration) for start, end in spans
                      for t in (start - attack, start, end, end + release)})
    at = _duck_depth(np.array(corners), spans, attack, release)
    keys = tuple((round(t, 6), round(float(options.duck * d), 3) + 0.0) for t, d in zip(corners, at))
    return gain, keys


def _load_midi(midi: pretty_midi.PrettyMIDI | str | Path) -> pretty_midi.PrettyMIDI:
    if isinstance(midi, pretty_midi.PrettyMIDI):
        return midi
    path = Path(midi)
    if not path.is_file():
        raise RenderError("MIDI file not found", path=path, hint="Check the path or arrange the score again")
    try:
        return pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # mido/pretty_midi raise many kinds for a damaged file
        raise RenderError(f"the MIDI file cannot be read ({exc})", path=path,
                          hint="Arrange the score again") from exc


def _synth(data: bytes, soundfont: Path, rate: int, samples: int) -> np.ndarray:
    """``data`` (a MIDI file) synthesised at ``rate``, stereo, exactly ``samples`` long."""
    audio, got = _synth_midirenderer(data, soundfont)
    return _fit(_resample(audio, got, rate), samples)


def _synth_groups(midi: pretty_midi.PrettyMIDI, soundfont: Path, rate: int, samples: int) -> dict[str, np.ndarray]:
    """Each instrument group of ``midi`` synthesised alone (same tempo map, same length)."""
    members: dict[str, list[pretty_midi.Instrument]] = {}
    for inst in midi.instruments:
        members.setdefault(instrument_group(inst), []).append(inst)
    parts = {}
    for group, insts in members.items():
        alone = copy.copy(midi)
        alone.instruments = insts
        parts[group] = _synth(_midi_bytes(alone), soundfont, rate, samples)
    return parts


def _write_wav(path: Path, audio: np.ndarray, rate: int, bit_depth: int) -> None:
    try:
        with atomic_path(path) as tmp:
            soundfile.write(str(tmp), audio, rate, subtype=f"PCM_{bit_depth}", format="WAV")
    except (OSError, soundfile.LibsndfileError) as exc:
        raise RenderError(f"cannot write the WAV file ({exc})", path=path,
                          hint="Choose a folder you can write to with free space") from exc


def _check_request(duration: float, options: RenderOptions, stems: Mapping[str, Path] | None) -> dict[str, Path]:
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration) \
            or duration <= 0:
        raise OptionsError(f"duration must be a positive number of seconds, not {duration!r}")
    if not isinstance(options, RenderOptions):
        raise OptionsError(f"options must be RenderOptions, not {type(options).__name__}")
    if stems is None:
        return {}
    if not isinstance(stems, Mapping) or not all(isinstance(g, str) and g for g in stems):
        raise OptionsError("stems must map group names to WAV paths")
    return {group: Path(path) for group, path in stems.items()}


def _write_stems(parts: dict[str, np.ndarray], paths: dict[str, Path], fade: int, chain: GainChain,
                 duck: np.ndarray | None, rate: int, bit_depth: int) -> dict[str, Path]:
    """Each requested group's part with the mix's gains, written to its path (silence for a
    group the score does not have)."""
    samples = len(next(iter(parts.values()))) if parts else 0
    for group, path in paths.items():
        part = parts.get(group)
        if part is None:
            logger.info("the score has no %s: its stem is silent", group)
            part = np.zeros((samples, 2), np.float32)
        part = chain.apply(fade_out(part.copy(), fade))
        if duck is not None:
            part = part * duck[:, None]
        _write_wav(path, part, rate, bit_depth)
    return dict(paths)


def render_midi(midi: pretty_midi.PrettyMIDI | str | Path, out_wav: str | Path, duration: float,
                options: RenderOptions = RenderOptions(), *, stems: Mapping[str, Path] | None = None,
                speech: Sequence[tuple[float, float]] = ()) -> RenderResult:
    """Render ``midi`` to a stereo PCM WAV of exactly ``round(duration * sample_rate)`` frames.

    ``stems`` ({group: WAV path}, groups as :func:`.groups.instrument_group` names them) also
    writes each group with the mix's gains; the mix is then the sum of the groups. ``speech``
    (timeline seconds) is where ``options.duck`` lowers the score. Raises :class:`RenderError`
    for a missing MIDI file or SoundFont, a synth that fails or a WAV that cannot be written,
    :class:`OptionsError` for an impossible ``duration``, stem map or speech region.
    """
    paths = _check_request(duration, options, stems)
    regions = speech_regions(speech, float(duration))
    out_wav = Path(out_wav)
    soundfont = options.resolved_soundfont()
    _check_soundfont(soundfont)
    began = time.perf_counter()
    rate = options.sample_rate
    samples = int(round(duration * rate))
    parts: dict[str, np.ndarray] = {}
    if paths:
        parts = _synth_groups(_load_midi(midi), soundfont, rate, samples)
        audio = sum(parts.values(), np.zeros((samples, 2), np.float32))
    else:
        audio = _synth(_midi_bytes(midi), soundfont, rate, samples)
    fade = int(round(min(options.fade, duration) * rate))
    audio = fade_out(audio, fade)
    audio, lufs, chain = _normalise(audio, rate, options.loudness, options.ceiling)
    duck, keys = ducking(regions, options, samples, rate)
    if duck is not None:
        audio = audio * duck[:, None]
        lufs = integrated_loudness(audio, rate)
    peak = float(np.max(np.abs(audio))) if samples else 0.0
    _write_wav(out_wav, audio, rate, options.bit_depth)
    written = _write_stems(parts, paths, fade, chain, duck, rate, options.bit_depth)
    seconds = time.perf_counter() - began
    result = RenderResult(out_wav, samples, rate, lufs, peak, seconds, written, keys)
    logger.info("rendered %s: %.2f s of audio in %.2f s (%.0fx real time), %.1f LUFS, peak %.1f dBFS",
                out_wav, duration, seconds, result.speed, lufs,
                20 * math.log10(peak) if peak > 0 else -math.inf)
    return result
