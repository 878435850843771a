"""A FluidSynth that keeps its SoundFont loaded, playing one block's MIDI file at a time.

``libfluidsynth`` (Debian ``libfluidsynth3``) is reached through :mod:`ctypes`; where it is not
installed, :func:`available` is false and the render uses the ``midirenderer`` wheel, which
parses the SoundFont again for every block and holds it twice while it plays. One
:class:`Player` lives in each render worker process: it reads the SoundFont's presets once and
loads only the samples of the presets a block plays (FluidSynth's dynamic sample loading): a
worker scoring with FluidR3_GM peaks at 150-200 MB instead of 350-425 MB (docs/music.md).

A block is played by a synth of its own (see :class:`Player`), its events applied at their
frames, so it sounds the same whichever blocks the process played before it. FluidSynth
applies an event at the start of its next 64-frame step; the blocks' MIDI files put every event
half a step before the step a one-shot render would apply it at (:class:`.synth._Clock`).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: FluidSynth's chorus LFO: 0.4 Hz (FluidSynth's default is 0.3 Hz) so that its period (2.5 s)
#: divides the 5 s block unit and every block starts it in the phase a one-shot render has there
CHORUS_SPEED = 0.4
#: FluidSynth's output gain (its default is 0.2): most General MIDI families then sound within
#: about 3 dB of midirenderer's level, and the loudest (organs, pads) peak below full scale
GAIN = 0.3
#: the frames FluidSynth renders at a time (events apply at the start of a step)
_STEP = 64
_LIBRARY: ctypes.CDLL | None = None
_TRIED = False
_PLAYER: Player | None = None


def _library() -> ctypes.CDLL | None:
    """libfluidsynth with the prototypes used here, or ``None`` when it is not installed."""
    global _LIBRARY, _TRIED
    if _TRIED:
        return _LIBRARY
    _TRIED = True
    # the usual names first: find_library runs ldconfig (30-100 ms, in every render worker too)
    for name in _names():
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            _declare(lib)
        except (OSError, AttributeError):
            continue
        for level in range(5):  # its messages (a SoundFont it cannot read...) would go to stderr
            lib.fluid_set_log_function(level, None, None)
        _LIBRARY = lib
        break
    return _LIBRARY


def _names() -> Iterator[str | None]:
    yield from ("libfluidsynth.so.3", "libfluidsynth.3.dylib")
    yield ctypes.util.find_library("fluidsynth")


def _declare(lib: ctypes.CDLL) -> None:
    p, i, d, s = ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_char_p
    floats = ctypes.POINTER(ctypes.c_float)
    prototypes = {
        "new_fluid_settings": (p, []), "delete_fluid_settings": (None, [p]),
        "fluid_settings_setnum": (i, [p, s, d]), "fluid_settings_setint": (i, [p, s, i]),
        "new_fluid_synth": (p, [p]), "delete_fluid_synth": (None, [p]),
        "fluid_synth_sfload": (i, [p, s, i]), "fluid_synth_system_reset": (i, [p]),
        "fluid_synth_noteon": (i, [p, i, i, i]), "fluid_synth_noteoff": (i, [p, i, i]),
        "fluid_synth_cc": (i, [p, i, i, i]), "fluid_synth_pitch_bend": (i, [p, i, i]),
        "fluid_synth_program_change": (i, [p, i, i]),
        "fluid_synth_set_chorus_speed": (i, [p, d]),
        "fluid_synth_write_float": (i, [p, i, floats, i, i, floats, i, i]),
        "fluid_set_log_function": (p, [i, p, p]),
    }
    for name, (result, args) in prototypes.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = result, args


def available() -> bool:
    """Whether libfluidsynth can be loaded here."""
    return _library() is not None


class Player:
    """FluidSynth at ``rate`` with ``soundfont`` loaded (``OSError`` when it cannot load it).

    Each block is played by a new synth, so that nothing of the blocks before reaches it: a
    synth reset between blocks still leaves state in FluidSynth's voices (measured: up to 0.009
    of full scale), and the render must not depend on which worker played which block before.
    FluidSynth's sample cache shares the samples between synths, so a new synth loads the
    SoundFont in milliseconds per MB of presets (FluidR3_GM: 0.08 s), without a second copy.
    With dynamic sample loading a preset's samples are freed when no synth holds it, so each
    block's synth reads its programs' samples again (FluidR3_GM, six programs: 70 ms a block).
    Having the keeper hold them too (26 ms a block, the same audio to the bit) raised a
    worker's peak from 151 to 173 MB, twice over in the two workers: not taken.
    """

    def __init__(self, soundfont: str, rate: int):
        lib = _library()
        if lib is None:
            raise OSError("libfluidsynth is not installed")
        self.lib, self.soundfont, self.rate = lib, soundfont, rate
        self.settings = lib.new_fluid_settings()
        lib.fluid_settings_setnum(self.settings, b"synth.sample-rate", float(rate))
        lib.fluid_settings_setint(self.settings, b"synth.cpu-cores", 1)
        lib.fluid_settings_setnum(self.settings, b"synth.gain", GAIN)
        # only the samples of the presets a block plays are loaded
        lib.fluid_settings_setint(self.settings, b"synth.dynamic-sample-loading", 1)
        self.keeper: int | None = None
        try:
            self.keeper = self._synth()  # keeps the SoundFont in FluidSynth's cache while this player lives
        except OSError:
            self.close()
            raise

    def _synth(self) -> int:
        synth = self.lib.new_fluid_synth(self.settings)
        if not synth:
            raise OSError("FluidSynth cannot start")
        if self.lib.fluid_synth_sfload(synth, self.soundfont.encode(), 1) < 0:
            self.lib.delete_fluid_synth(synth)
            raise OSError(f"FluidSynth cannot load {self.soundfont}")
        self.lib.fluid_synth_set_chorus_speed(synth, CHORUS_SPEED)
        return synth

    def close(self) -> None:
        if self.keeper:
            self.lib.delete_fluid_synth(self.keeper)
            self.keeper = None
        if self.settings:
            self.lib.delete_fluid_settings(self.settings)
            self.settings = None

    def play(self, midi: bytes) -> np.ndarray:
        """The MIDI file's audio, float32 stereo, up to its last event."""
        import mido

        events, seconds = [], 0.0
        for message in mido.MidiFile(file=io.BytesIO(midi)):
            seconds += message.time
            events.append((round(seconds * self.rate), message))
        frames = events[-1][0] if events else 0
        # whole steps, as the synth renders them
        out = np.zeros((-(-frames // _STEP) * _STEP, 2), np.float32)
        synth, done = self._synth(), 0
        try:
            for at, message in events:
                if at > done:
                    self._write(synth, out, done, at)
                    done = at
                self._send(synth, message)
            self._write(synth, out, done, len(out))
        finally:
            self.lib.delete_fluid_synth(synth)
        return out[:frames]

    def _write(self, synth: int, out: np.ndarray, first: int, stop: int) -> None:
        pointer = out[first:stop].ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        self.lib.fluid_synth_write_float(synth, stop - first, pointer, 0, 2, pointer, 1, 2)

    def _send(self, synth: int, message: object) -> None:
        lib, kind = self.lib, getattr(message, "type", "")
        if kind == "note_on" and message.velocity > 0:  # type: ignore[attr-defined]
            lib.fluid_synth_noteon(synth, message.channel, message.note, message.velocity)  # type: ignore[attr-defined]
        elif kind in ("note_on", "note_off"):
            lib.fluid_synth_noteoff(synth, message.channel, message.note)  # type: ignore[attr-defined]
        elif kind == "control_change":
            lib.fluid_synth_cc(synth, message.channel, message.control, message.value)  # type: ignore[attr-defined]
        elif kind == "pitchwheel":
            lib.fluid_synth_pitch_bend(synth, message.channel, message.pitch + 8192)  # type: ignore[attr-defined]
        elif kind == "program_change":
            lib.fluid_synth_program_change(synth, message.channel, message.program)  # type: ignore[attr-defined]


def player(soundfont: str | Path, rate: int) -> Player:
    """This process's player for ``soundfont`` at ``rate``, loaded once (again only for another
    SoundFont or rate)."""
    global _PLAYER
    soundfont = str(soundfont)
    if _PLAYER is None or (_PLAYER.soundfont, _PLAYER.rate) != (soundfont, rate):
        release()
        _PLAYER = Player(soundfont, rate)
        logger.debug("FluidSynth loaded %s", soundfont)
    return _PLAYER


def loaded() -> str | None:
    """The SoundFont this process's player holds, ``None`` when it holds none."""
    return _PLAYER.soundfont if _PLAYER is not None else None


def release() -> None:
    """Free this process's player and its SoundFont (after rendering in the main process)."""
    global _PLAYER
    if _PLAYER is not None:
        _PLAYER.close()
        _PLAYER = None
