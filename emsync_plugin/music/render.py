"""Render a score to the WAV that goes back on the timeline.

``render_midi`` synthesises a MIDI score with a General MIDI SoundFont (the self-contained
``midirenderer`` wheel, rustysynth inside, at 48 kHz, resampled to other rates), fits it to
exactly ``round(duration * sample_rate)`` samples, fades out the last ``fade`` seconds to exactly
zero (EMSYNC uses 3 s), normalises the integrated loudness (ITU-R BS.1770 via pyloudnorm) to the
target under a sample-peak ceiling, and writes a stereo PCM WAV atomically. The default
SoundFont is ``TimGM6mb.sf2``, which ships inside the ``pretty_midi`` wheel.
"""
from __future__ import annotations

import io
import logging
import math
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pretty_midi
import pyloudnorm
import soundfile

from ..errors import OptionsError, RenderError
from ..fileio import atomic_path

logger = logging.getLogger(__name__)

# The limiter's attack/release window (seconds) and how often it may retry to reach the target.
_LIMITER_WINDOW = 0.02
_LIMITER_PASSES = 6
# The absolute gate of BS.1770: quieter than this counts as silence.
_SILENCE_LUFS = -70.0


def default_soundfont() -> Path:
    """The General MIDI SoundFont shipped inside the pretty_midi wheel (TimGM6mb.sf2)."""
    return Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"


@dataclass(frozen=True)
class RenderOptions:
    """How to render, validated on creation (:class:`OptionsError`).

    ``loudness`` is the integrated-loudness target in LUFS, ``ceiling`` the highest sample
    peak allowed in dBFS (a limiter holds it when the target would clip), ``fade`` the
    seconds of fade-out ending the file, ``bit_depth`` 16 or 24 (PCM).
    """

    sample_rate: int = 48000
    loudness: float = -16.0
    fade: float = 3.0
    soundfont: Path | None = None
    ceiling: float = -1.0
    bit_depth: int = 24

    def __post_init__(self) -> None:
        sr = self.sample_rate
        if isinstance(sr, bool) or not isinstance(sr, int) or not 8000 <= sr <= 192000:
            raise OptionsError(f"sample_rate must be a whole number of Hz from 8000 to 192000, not {sr!r}")
        for name, low, high in (("loudness", -70.0, 0.0), ("fade", 0.0, 600.0), ("ceiling", -30.0, 0.0)):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or not low <= value <= high):
                raise OptionsError(f"{name} must be a number from {low:g} to {high:g}, not {value!r}")
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


def limit(audio: np.ndarray, ceiling: float, rate: int) -> np.ndarray:
    """A look-ahead peak limiter: no sample of the result exceeds ``ceiling`` (linear).

    The gain needed at each frame is spread over ``_LIMITER_WINDOW`` either side (a minimum
    filter, then a moving average no wider than it), so it never exceeds the need and moves
    smoothly instead of clipping.
    """
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    level = np.max(np.abs(audio), axis=1)
    need = np.minimum(1.0, ceiling / np.maximum(level, 1e-12))
    if need.min() >= 1.0:
        return audio
    half = max(1, int(_LIMITER_WINDOW * rate))
    gain = minimum_filter1d(need, size=2 * half + 1, mode="nearest")
    gain = uniform_filter1d(gain, size=half | 1, mode="nearest")
    out = audio * np.minimum(gain, need)[:, None].astype(audio.dtype)
    return np.clip(out, -ceiling, ceiling)


def _normalise(audio: np.ndarray, rate: int, target: float, ceiling_db: float) -> tuple[np.ndarray, float]:
    lufs = integrated_loudness(audio, rate)
    if lufs <= _SILENCE_LUFS:
        logger.info("the score is silent (%.1f LUFS); loudness left as it is", lufs)
        return audio, lufs
    ceiling = 10.0 ** (ceiling_db / 20.0)
    limited = False
    for _ in range(_LIMITER_PASSES):
        audio = audio * np.float32(10.0 ** ((target - lufs) / 20.0))
        if np.max(np.abs(audio)) > ceiling:
            audio = limit(audio, ceiling, rate)
            limited = True
        lufs = integrated_loudness(audio, rate)
        if abs(lufs - target) <= 0.05:
            break
    if abs(lufs - target) > 0.5:
        logger.warning("the score reaches only %.1f LUFS, not the target %.1f LUFS, without peaks above %.1f dBFS",
                       lufs, target, ceiling_db)
    elif limited:
        logger.info("limited peaks to %.1f dBFS to reach %.1f LUFS", ceiling_db, lufs)
    return audio, lufs


def render_midi(midi: pretty_midi.PrettyMIDI | str | Path, out_wav: str | Path, duration: float,
                options: RenderOptions = RenderOptions()) -> RenderResult:
    """Render ``midi`` to a stereo PCM WAV of exactly ``round(duration * sample_rate)`` frames.

    Raises :class:`RenderError` for a missing MIDI file or SoundFont, a synth that fails or a
    WAV that cannot be written, :class:`OptionsError` for an impossible ``duration``.
    """
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration) \
            or duration <= 0:
        raise OptionsError(f"duration must be a positive number of seconds, not {duration!r}")
    if not isinstance(options, RenderOptions):
        raise OptionsError(f"options must be RenderOptions, not {type(options).__name__}")
    out_wav = Path(out_wav)
    soundfont = options.resolved_soundfont()
    _check_soundfont(soundfont)
    began = time.perf_counter()
    data = _midi_bytes(midi)
    rate = options.sample_rate
    audio, got = _synth_midirenderer(data, soundfont)
    audio = _resample(audio, got, rate)
    samples = int(round(duration * rate))
    audio = _fit(audio, samples)
    audio = fade_out(audio, int(round(min(options.fade, duration) * rate)))
    audio, lufs = _normalise(audio, rate, options.loudness, options.ceiling)
    peak = float(np.max(np.abs(audio))) if samples else 0.0
    try:
        with atomic_path(out_wav) as tmp:
            soundfile.write(str(tmp), audio, rate, subtype=f"PCM_{options.bit_depth}", format="WAV")
    except (OSError, soundfile.LibsndfileError) as exc:
        raise RenderError(f"cannot write the WAV file ({exc})", path=out_wav,
                          hint="Choose a folder you can write to with free space") from exc
    seconds = time.perf_counter() - began
    result = RenderResult(out_wav, samples, rate, lufs, peak, seconds)
    logger.info("rendered %s: %.2f s of audio in %.2f s (%.0fx real time), %.1f LUFS, peak %.1f dBFS",
                out_wav, duration, seconds, result.speed, lufs,
                20 * math.log10(peak) if peak > 0 else -math.inf)
    return result
