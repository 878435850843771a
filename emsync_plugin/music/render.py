"""Render a score to the WAV that goes back on the timeline, in blocks.

``render_midi`` synthesises a MIDI score with a General MIDI SoundFont in blocks on two worker
processes (:mod:`.synth`), removes the synth's DC offset, fades out the last ``fade`` seconds to
exactly zero (EMSYNC uses 3 s) and measures the integrated loudness (ITU-R BS.1770,
:mod:`.loudness`) as it writes the audio to a temporary float file beside the output (pass 1).
Pass 2 reads it back block by block, applies the gain that reaches the loudness target, the
look-ahead peak limiter that holds the sample-peak ceiling and the ducking (:mod:`.mastering`),
and writes a stereo PCM WAV of exactly ``round(duration * sample_rate)`` frames atomically.
Memory therefore does not grow with the programme.

Asked for stems, it synthesises each instrument group alone, makes the mix their sum and gives
every stem the mix's gains (normalisation, fade, limiter envelope, ducking), so the stems add up
to the mix. Asked to duck, it lowers the normalised score under the speech regions it is given
with smooth attack and release ramps (see docs/music.md).
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile

from ..errors import OptionsError, RenderError
from ..fileio import atomic_path, remove_stale_scratch, scratch_file
from .groups import instrument_group
from .loudness import SILENCE_LUFS, LoudnessMeter, gated, integrated_loudness
from .mastering import DCBlocker, Ducking, fade_gain, fade_out, limit, limiter_gain, limiter_reach, speech_regions
from .synth import BLOCK_UNIT, check_soundfont, default_soundfont, shipped_soundfont, synthesise

__all__ = ["RenderOptions", "RenderResult", "default_soundfont", "ducking", "fade_out", "instrument_group",
           "integrated_loudness", "limit", "render_midi", "shipped_soundfont", "speech_regions", "write_midi"]

logger = logging.getLogger(__name__)

# How often the gain may be corrected for what the limiter takes off, and how close is close enough (LU).
_LIMITER_PASSES = 6
_LOUDNESS_TOLERANCE = 0.05
# Frames per block of pass 2.
_CHUNK = 1 << 16


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
        """The SoundFont to use: the chosen one, else FluidR3_GM when installed, else TimGM6mb."""
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


def ducking(regions: Sequence[tuple[float, float]], options: RenderOptions, samples: int, rate: int
            ) -> tuple[np.ndarray | None, tuple[tuple[float, float], ...]]:
    """The ducking gain per frame (float32, ``None`` for none) and its keyframes (seconds, dB)."""
    envelope = _ducking(regions, options, samples, rate)
    if envelope is None:
        return None, ()
    return envelope.gain(0, samples, rate), envelope.keys


def _ducking(regions: Sequence[tuple[float, float]], options: RenderOptions, samples: int, rate: int
             ) -> Ducking | None:
    if options.duck is None or not options.duck or not regions or not samples:
        return None
    return Ducking(regions, options.duck, options.attack, options.release, samples / rate)


def _parts(midi: pretty_midi.PrettyMIDI, groups: bool) -> dict[str, pretty_midi.PrettyMIDI]:
    """The score as one part, or one part per instrument group (same tempo map)."""
    if not groups:
        return {"mix": midi}
    members: dict[str, list[pretty_midi.Instrument]] = {}
    for inst in midi.instruments:
        members.setdefault(instrument_group(inst), []).append(inst)
    parts = {}
    for group, insts in members.items():
        alone = copy.copy(midi)
        alone.instruments = insts
        parts[group] = alone
    return parts


@dataclass
class _Pass1:
    """What pass 1 learnt: the temporary float file per part, and the mix's loudness and peak."""

    files: dict[str, Path]
    #: the mix's meter (its 100 ms steps' energies)
    meter: LoudnessMeter
    #: the meter's filter state at the start of each piece of ``piece`` frames
    states: list[np.ndarray]
    piece: int
    #: the mix's sample peak in each second
    peaks: np.ndarray

    @property
    def lufs(self) -> float:
        return self.meter.integrated()

    @property
    def peak(self) -> float:
        return float(self.peaks.max()) if len(self.peaks) else 0.0

    def peak_in(self, first: int, stop: int, rate: int) -> float:
        """The highest sample peak in frames ``[first, stop)`` (to the second)."""
        return float(self.peaks[first // rate: (stop - 1) // rate + 1].max()) if stop > first else 0.0


def _synth_pass(parts: dict[str, pretty_midi.PrettyMIDI], soundfont: Path, options: RenderOptions,
                samples: int, fade: int, folder: Path, temps: list[Path]) -> _Pass1:
    """Synthesise, remove DC, fade and measure; write each part as raw float32 stereo to a temp file."""
    rate = options.sample_rate
    files = {}
    for name in parts:
        files[name] = scratch_file(folder, name, ".f32")
        temps.append(files[name])
    blockers = {name: DCBlocker(rate) for name in parts}
    meter, peaks, states = LoudnessMeter(rate), [], []
    with contextlib.ExitStack() as stack:
        sinks = {name: stack.enter_context(open(path, "wb")) for name, path in files.items()}
        for start, chunk in synthesise(parts, soundfont, rate, samples):
            frames = len(next(iter(chunk.values())))
            curve = fade_gain(start, frames, samples, fade)
            mix = np.zeros((frames, 2), np.float32)
            for name, audio in chunk.items():
                audio = blockers[name].process(audio)
                if curve is not None:
                    audio *= curve[:, None]
                sinks[name].write(audio.tobytes())
                mix += audio
            states.append(meter.state.copy())
            meter.add(mix)
            level = np.maximum(np.abs(mix[:, 0]), np.abs(mix[:, 1]))
            peaks.append(np.maximum.reduceat(level, np.arange(0, frames, rate)))
    return _Pass1(files, meter, states, BLOCK_UNIT * rate, np.concatenate(peaks) if peaks else np.zeros(0))


def _read(path: Path, first: int, frames: int) -> np.ndarray:
    return np.fromfile(path, dtype=np.float32, count=2 * frames, offset=8 * first).reshape(-1, 2)


def _mastered(pass1: _Pass1, samples: int, scale: float, ceiling: float | None, rate: int,
              duck: Ducking | None) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Pass 2, block by block: the mix and each part with the gain, limiter and ducking applied."""
    reach = limiter_reach(rate) if ceiling is not None else 0
    for first in range(0, samples, _CHUNK):
        frames = min(_CHUNK, samples - first)
        lo, hi = max(0, first - reach), min(samples, first + frames + reach)
        parts = {name: _read(path, lo, hi - lo) for name, path in pass1.files.items()}
        inner = slice(first - lo, first - lo + frames)
        factor: np.ndarray | np.float32 = np.float32(scale)
        if ceiling is not None and scale * pass1.peak_in(lo, hi, rate) > ceiling:
            mix = sum(parts.values(), np.zeros((hi - lo, 2), np.float32)) * factor
            gain = limiter_gain(mix, ceiling, rate)
            if gain is not None:
                factor = factor * gain[inner, None]
        if duck is not None:
            factor = factor * duck.gain(first, frames, rate)[:, None]
        parts = {name: part[inner] * factor for name, part in parts.items()}
        mix = sum(parts.values(), np.zeros((frames, 2), np.float32))
        if ceiling is not None:
            mix = np.clip(mix, -ceiling, ceiling)
        yield mix, parts


def _loudness_with(pass1: _Pass1, samples: int, scale: float, ceiling: float, rate: int) -> float:
    """The mix's integrated loudness after the gain ``scale`` and the limiter (nothing written).

    Where the limiter does not act, a step's energy is pass 1's times ``scale`` squared (the
    K-weighting is linear); only the pieces it acts on, and the piece after each (where the
    filter's memory of the change dies out), are read back and measured again.
    """
    energies = pass1.meter.energies() * scale ** 2
    reach, per_piece = limiter_reach(rate), 10 * pass1.piece // rate
    state = None
    for index, first in enumerate(range(0, samples, pass1.piece)):
        frames = min(pass1.piece, samples - first)
        lo, hi = max(0, first - reach), min(samples, first + frames + reach)
        limited = scale * pass1.peak_in(lo, hi, rate) > ceiling
        if not limited and state is None:
            continue
        meter = LoudnessMeter(rate, first=first, state=state if state is not None else pass1.states[index] * scale)
        mix = sum((_read(path, lo, hi - lo) for path in pass1.files.values()), np.zeros((hi - lo, 2), np.float32))
        mix = limit(mix * np.float32(scale), ceiling, rate)[first - lo: first - lo + frames]
        meter.add(mix)
        redone = meter.energies() if first + frames == samples else np.array(meter.steps)
        step = index * per_piece
        energies[step: step + len(redone)] = redone[: len(energies) - step]
        state = meter.state if limited else None
    return gated(energies, samples, rate)


def _gain(pass1: _Pass1, samples: int, options: RenderOptions) -> tuple[float, float | None, float]:
    """The gain that brings the mix to the target, the limiter ceiling (``None`` when no peak
    would exceed it) and the loudness they reach, corrected for what the limiter takes off."""
    rate, target, lufs = options.sample_rate, options.loudness, pass1.lufs
    if lufs <= SILENCE_LUFS:
        logger.info("the score is silent (%.1f LUFS); loudness left as it is", lufs)
        return 1.0, None, lufs
    ceiling = 10.0 ** (options.ceiling / 20.0)
    scale = 10.0 ** ((target - lufs) / 20.0)
    if scale * pass1.peak <= ceiling:
        return scale, None, target
    for _ in range(_LIMITER_PASSES):
        lufs = _loudness_with(pass1, samples, scale, ceiling, rate)
        if abs(lufs - target) <= _LOUDNESS_TOLERANCE:
            break
        scale *= 10.0 ** ((target - lufs) / 20.0)
    else:
        lufs = _loudness_with(pass1, samples, scale, ceiling, rate)
    if abs(lufs - target) > 0.5:
        logger.warning("the score reaches only %.1f LUFS, not the target %.1f LUFS, without peaks above %.1f dBFS",
                       lufs, target, options.ceiling)
    else:
        logger.info("limited peaks to %.1f dBFS to reach %.1f LUFS", options.ceiling, lufs)
    return scale, ceiling, lufs


def _write_pass(pass1: _Pass1, out_wav: Path, stems: dict[str, Path], samples: int,
                mastering: tuple[float, float | None, float], duck: Ducking | None, options: RenderOptions
                ) -> tuple[float, float]:
    """Pass 2: write the mix (and stems) as PCM atomically; the achieved loudness (``lufs``,
    measured again under ducking) and peak."""
    scale, ceiling, lufs = mastering
    rate, subtype = options.sample_rate, f"PCM_{options.bit_depth}"
    meter, peak = LoudnessMeter(rate) if duck is not None else None, 0.0
    for group in stems:
        if group not in pass1.files:
            logger.info("the score has no %s: its stem is silent", group)
    try:
        with contextlib.ExitStack() as stack:
            paths = {name: stack.enter_context(atomic_path(path)) for name, path in [("", out_wav), *stems.items()]}
            sinks = {name: stack.enter_context(soundfile.SoundFile(str(path), "w", rate, 2, subtype, format="WAV"))
                     for name, path in paths.items()}
            for mix, parts in _mastered(pass1, samples, scale, ceiling, rate, duck):
                sinks[""].write(mix)
                if meter is not None:
                    meter.add(mix)
                peak = max(peak, float(np.max(np.abs(mix)))) if len(mix) else peak
                for group in stems:
                    part = parts.get(group)
                    sinks[group].write(part if part is not None else np.zeros_like(mix))
            for sink in sinks.values():
                sink.close()
    except (OSError, soundfile.LibsndfileError) as exc:
        raise RenderError(f"cannot write the WAV file ({exc})", path=out_wav,
                          hint="Choose a folder you can write to with free space") from exc
    return meter.integrated() if meter is not None else lufs, peak


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
    check_soundfont(soundfont)
    began = time.perf_counter()
    rate = options.sample_rate
    samples = int(round(duration * rate))
    fade = int(round(min(options.fade, duration) * rate))
    parts = _parts(_load_midi(midi), bool(paths))
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(out_wav.parent)  # what killed renders left there
    temps: list[Path] = []
    try:
        pass1 = _synth_pass(parts, soundfont, options, samples, fade, out_wav.parent, temps)
        mastering = _gain(pass1, samples, options)
        duck = _ducking(regions, options, samples, rate)
        lufs, peak = _write_pass(pass1, out_wav, paths, samples, mastering, duck, options)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - began
    result = RenderResult(out_wav, samples, rate, lufs, peak, seconds, dict(paths), duck.keys if duck else ())
    logger.info("rendered %s: %.2f s of audio in %.2f s (%.0fx real time), %.1f LUFS, peak %.1f dBFS",
                out_wav, duration, seconds, result.speed, lufs,
                20 * math.log10(peak) if peak > 0 else -math.inf)
    return result
