"""SoundFont synthesis in blocks, so that memory does not grow with the programme.

The score is cut into whole-second blocks. Each block is a small MIDI file holding the notes
that start in it (shifted to start at 0), every instrument's program and the controller and
pitch-bend state in force at its start, and the controller changes until its notes have
sounded out, plus ``TAIL`` seconds for the release and reverb. The synth, at 48 kHz, is
FluidSynth (:mod:`.player`, the SoundFont loaded once per process) where libfluidsynth is
installed, else the ``midirenderer`` wheel (rustysynth inside, the SoundFont parsed again for
every block). Either is linear, so the blocks' audio overlap-added at their offsets is the
one-shot render up to voice stealing. Blocks are synthesised by a pool of worker processes
(the synth holds the GIL) and handed back in order, each finished only once no later block can
add to it.

The default SoundFont is FluidR3_GM (Debian ``fluid-soundfont-gm``, MIT) when it is installed,
else ``TimGM6mb.sf2``, which ships inside the ``pretty_midi`` wheel.
"""
from __future__ import annotations

import atexit
import ctypes
import heapq
import io
import itertools
import logging
import math
import multiprocessing
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import spawning
from ..errors import RenderError
from . import player

if TYPE_CHECKING:  # imported where used: a render worker, which only plays blocks, does without it
    import pretty_midi

logger = logging.getLogger(__name__)

#: where Debian/Fedora/Arch install FluidR3_GM
FLUIDR3_PATHS = (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), Path("/usr/share/soundfonts/FluidR3_GM.sf2"),
                 Path("/usr/share/soundfonts/FluidR3_GM2-2.sf2"))
#: the rate midirenderer synthesises at
SYNTH_RATE = 48000
#: seconds rendered after a block's last note-off for the release and reverb; the last
#: TAIL_FADE of them fade out, so that what is cut off is not a click
TAIL, TAIL_FADE = 3.0, 0.5
#: blocks are a whole number of these seconds: rustysynth's chorus LFO (0.4 Hz, a table of
#: 2.5 s) then starts every block in the phase it has there in a one-shot render
BLOCK_UNIT = 5
#: the block length bounds (seconds)
MIN_BLOCK, MAX_BLOCK = 10, 60
#: an unassigned controller (GM leaves 102-119 undefined) that marks where a block's render ends
_END_MARK = 110
#: worker processes (the machine's cores, at most 2: the render is one stage among several)
WORKERS = max(1, min(2, os.cpu_count() or 1))

#: the synthesizer to use, ``None`` for :func:`engine`'s choice ("fluidsynth", "midirenderer")
ENGINE: str | None = None
#: SoundFonts from this size (bytes) are played by FluidSynth where it is installed: FluidR3_GM
#: (141 MB) is, TimGM6mb (6 MB) is not
FLUIDSYNTH_FROM = 32 << 20

_POOL: Executor | None = None
_BROKEN = False
_MAPPED = False
#: mallopt's parameter number for the mmap threshold (glibc's malloc.h)
_M_MMAP_THRESHOLD = -3


def shipped_soundfont() -> Path:
    """The General MIDI SoundFont shipped inside the pretty_midi wheel (TimGM6mb.sf2)."""
    import pretty_midi

    return Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"


def default_soundfont() -> Path:
    """FluidR3_GM when the system has it (a far better sound), else :func:`shipped_soundfont`."""
    for path in FLUIDR3_PATHS:
        if path.is_file():
            return path
    return shipped_soundfont()


def check_soundfont(path: Path) -> None:
    """Raise :class:`RenderError` naming the fix when ``path`` is not a file."""
    if not path.is_file():
        if path == shipped_soundfont():
            hint = ("Reinstall pretty_midi (pip install --force-reinstall pretty_midi), which ships it, "
                    "or pass --soundfont FILE.sf2")
        else:
            hint = ("Pass an existing General MIDI .sf2 file, or leave the SoundFont unset to use FluidR3_GM "
                    "or the one shipped with pretty_midi")
        raise RenderError("SoundFont not found", path=path, hint=hint)


@dataclass(frozen=True)
class Block:
    """One block: its first frame and length at the output rate, and its MIDI file."""

    start: int
    frames: int
    midi: bytes


def block_seconds(duration: float, workers: int = WORKERS) -> int:
    """Seconds per block: about two blocks per worker, a multiple of BLOCK_UNIT from MIN_BLOCK
    to MAX_BLOCK."""
    wanted = min(MAX_BLOCK, max(MIN_BLOCK, duration / (2 * workers)))
    return int(BLOCK_UNIT * math.ceil(wanted / BLOCK_UNIT))


class _Track:
    """One instrument's events sorted by time, for cutting blocks by binary search."""

    def __init__(self, inst: pretty_midi.Instrument):
        self.inst = inst
        self.notes = sorted(inst.notes, key=lambda n: n.start)
        self.starts = np.array([n.start for n in self.notes])
        self.events = {kind: sorted(getattr(inst, kind), key=lambda e: e.time)
                       for kind in ("control_changes", "pitch_bends")}
        self.times = {kind: np.array([e.time for e in events]) for kind, events in self.events.items()}

    def notes_in(self, begin: float, end: float) -> list[pretty_midi.Note]:
        lo, hi = np.searchsorted(self.starts, [begin, end], side="left")
        return self.notes[lo:hi]

    def events_for(self, kind: str, begin: float, stop: float, at: Callable[[float], float]) -> list:
        """The state in force at ``begin`` (at time 0) and the changes in ``[begin, stop)`` at ``at(time)``."""
        events, times = self.events[kind], self.times[kind]
        lo, hi = np.searchsorted(times, [begin, stop], side="left")
        last: dict[int, object] = {}
        for event in events[:lo]:
            last[getattr(event, "number", -1)] = event
        return [_shifted(e, 0.0) for e in last.values()] + [_shifted(e, at(e.time)) for e in events[lo:hi]]


class _Clock:
    """Block-relative event times on the synth's 64-frame grid, 32 frames before each step.

    rustysynth applies events at 64-frame steps, comparing event times with a float clock; an
    event exactly on a step lands on either side of it depending on rounding, differently in
    a block than in the whole. Each event is rounded to its step here and written half a step
    early (at 1920 ticks a second, a tick is 25 frames), so every block applies it at the step
    the whole programme would.
    """

    STEP = 64

    def __init__(self, begin: float):
        self.begin = round(begin * SYNTH_RATE)

    def __call__(self, time: float) -> float:
        step = math.floor(time * SYNTH_RATE / self.STEP + 0.5)
        return max(0, step * self.STEP - self.STEP // 2 - self.begin) / SYNTH_RATE


def _block_midi(tracks: Sequence[_Track], begin: float, end: float) -> bytes | None:
    """The notes starting in ``[begin, end)`` as a MIDI file starting at ``begin`` (``None`` when
    there are none), every instrument kept so that channels and programs match the whole score."""
    import pretty_midi

    out = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    at = _Clock(begin)
    stop = -math.inf
    for track in tracks:
        notes = track.notes_in(begin, end)
        stop = max([stop, *(n.end for n in notes)])
        new = pretty_midi.Instrument(track.inst.program, track.inst.is_drum, track.inst.name)
        new.notes = [pretty_midi.Note(n.velocity, n.pitch, at(n.start), max(at(n.end), at(n.start) + 0.002))
                     for n in notes]
        out.instruments.append(new)
    if stop == -math.inf:
        return None
    stop = max(stop, end) + TAIL
    for track, new in zip(tracks, out.instruments):
        new.control_changes = track.events_for("control_changes", begin, stop, at)
        new.pitch_bends = track.events_for("pitch_bends", begin, stop, at)
    out.instruments[0].control_changes.append(pretty_midi.ControlChange(_END_MARK, 0, stop - begin))
    buffer = io.BytesIO()
    out.write(buffer)
    return buffer.getvalue()


def _shifted(event: pretty_midi.ControlChange | pretty_midi.PitchBend, time: float
             ) -> pretty_midi.ControlChange | pretty_midi.PitchBend:
    import pretty_midi

    if isinstance(event, pretty_midi.ControlChange):
        return pretty_midi.ControlChange(event.number, event.value, time)
    return pretty_midi.PitchBend(event.pitch, time)


def plan(midi: pretty_midi.PrettyMIDI, rate: int, samples: int, seconds: int) -> Iterator[Block]:
    """The blocks covering ``samples`` frames at ``rate``, ``seconds`` long each (none where
    no note starts)."""
    tracks = [_Track(inst) for inst in midi.instruments]
    step = seconds * rate
    for start in range(0, samples, step):
        data = _block_midi(tracks, start / rate, (start + step) / rate)
        if data is not None:
            yield Block(start, min(step, samples - start), data)


def engine(soundfont: Path) -> str:
    """The synthesizer for ``soundfont``: ``fluidsynth`` for a SoundFont of FLUIDSYNTH_FROM bytes
    or more where libfluidsynth is installed (read once per worker, its samples loaded as the
    score needs them), else ``midirenderer`` (which synthesises faster, but parses the whole
    SoundFont for every block and holds it twice)."""
    if ENGINE is not None:
        return ENGINE
    try:
        large = soundfont.stat().st_size >= FLUIDSYNTH_FROM
    except OSError:
        large = False
    return "fluidsynth" if large and player.available() else "midirenderer"


def synthesise_block(soundfont: str, midi: bytes, rate: int, synthesizer: str = "midirenderer") -> np.ndarray:
    """One MIDI file synthesised, stereo at ``rate``, by ``synthesizer`` (see :func:`engine`);
    runs in a worker process. midirenderer's 16-bit output at its own rate is returned as it
    is (half the bytes to send back), anything else as float32."""
    if synthesizer == "fluidsynth":
        try:
            audio = player.player(soundfont, SYNTH_RATE).play(midi)
        except OSError as exc:  # no libfluidsynth here, or a SoundFont it cannot read
            logger.info("FluidSynth cannot render (%s); using midirenderer", exc)
        else:
            return _resample(audio, SYNTH_RATE, rate)
    return _midirenderer(soundfont, midi, rate)


def _midirenderer(soundfont: str, midi: bytes, rate: int) -> np.ndarray:
    import midirenderer
    import soundfile

    try:
        wav = midirenderer.render_wave_from(Path(soundfont).read_bytes(), midi)
    except Exception as exc:  # ValueError/RuntimeError for bad input
        raise RenderError(f"the synthesizer could not render the score with this SoundFont ({exc})",
                          path=soundfont, hint="Use a valid SoundFont 2 (.sf2) file") from exc
    except BaseException as exc:  # a Rust panic surfaces as pyo3's PanicException (a BaseException)
        if type(exc).__name__ != "PanicException":
            raise
        raise RenderError(f"the synthesizer crashed on this SoundFont or score ({exc})", path=soundfont,
                          hint="Use a valid SoundFont 2 (.sf2) file, not SoundFont 3") from exc
    info = soundfile.info(io.BytesIO(wav))
    exact = info.samplerate == rate and info.subtype == "PCM_16"
    audio, got = soundfile.read(io.BytesIO(wav), dtype="int16" if exact else "float32", always_2d=True)
    audio = audio[:, :2] if audio.shape[1] >= 2 else np.repeat(audio, 2, axis=1)
    return audio if exact else _resample(audio, int(got), rate)


def _resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target or len(audio) == 0:
        return audio
    from scipy.signal import resample_poly

    ratio = Fraction(target, rate)
    return resample_poly(audio, ratio.numerator, ratio.denominator, axis=0).astype(np.float32)


def _parallel() -> bool:
    """Whether to use worker processes (:func:`.spawning.may_spawn`), not after the pool failed to start."""
    return WORKERS > 1 and not _BROKEN and spawning.may_spawn()


def _start_worker(parent: int, soundfont: str | None) -> None:
    """A worker's first steps: watch its parent, and load ``soundfont`` into FluidSynth (and the
    MIDI parser) now, before the first block asks for them (``None``: nothing to load)."""
    spawning.become_worker(parent)
    if soundfont is not None:
        try:
            player.player(soundfont, SYNTH_RATE)
            import mido  # noqa: F401 - the player parses blocks with it
        except OSError:  # the first block reports it (or falls back to midirenderer)
            pass


_LOCK = threading.Lock()


def pool(soundfont: Path | None = None) -> Executor:
    """The worker processes, started once per process (spawned: they import only the synth).
    A pool started here with a ``soundfont`` FluidSynth plays loads it in each worker at once."""
    global _POOL
    with _LOCK:
        if _POOL is None:
            preload = str(soundfont) if soundfont is not None and engine(soundfont) == "fluidsynth" else None
            with spawning.sheltered():  # its queues may start multiprocessing's resource tracker
                _POOL = ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_start_worker, initargs=(os.getpid(), preload))
        return _POOL


def shutdown() -> None:
    """Stop the worker processes (the next render starts them again)."""
    global _POOL
    with _LOCK:
        executor, _POOL = _POOL, None
    if executor is not None:
        executor.shutdown(cancel_futures=True)


atexit.register(shutdown)


def peak_memory_mb() -> tuple[float, float]:
    """Peak resident memory (MB) of this process and of its largest live render worker, each its
    own (Linux ``VmHWM``): ``ru_maxrss`` would also count the parent a process was started from,
    whose pages it held until ``exec``. Call before :func:`shutdown`; (0, 0) without ``/proc``."""
    def hwm(pid: str) -> float:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as status:
                return next((int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")), 0.0)
        except OSError:
            return 0.0

    workers = [str(p) for p in getattr(_POOL, "_processes", None) or {}]
    return hwm("self"), max((hwm(pid) for pid in workers), default=0.0)


def warm_up(soundfont: Path | None = None, wait: bool = True) -> None:
    """Start the worker processes now (each takes a fraction of a second to import numpy) and,
    given the ``soundfont`` the render will use, load it in each when FluidSynth plays it, so
    that a render started later finds them ready (``pipeline.score`` calls this while the
    scenes are analysed). ``wait``: return once they run."""
    if not _parallel():
        return
    try:
        with spawning.sheltered():
            futures = [pool(soundfont).submit(math.sqrt, k) for k in range(WORKERS)]
    except RuntimeError:  # the interpreter is exiting (a run that failed early): nothing to warm
        if wait:
            raise
        return
    for future in futures if wait else ():
        future.result()


def _large_buffers_mapped() -> None:
    """Where the C library is glibc, serve every allocation of 1 MiB or more (the blocks' audio,
    the pipes' buffers) by its own mapping, returned to the system when freed. glibc otherwise
    raises that threshold after the first large free and serves the next ones from heaps that
    fragment: the main process's peak then grew with the programme (+45 MB at 30 minutes)."""
    global _MAPPED
    if _MAPPED or not sys.platform.startswith("linux"):
        return
    _MAPPED = True
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        pass


def synthesise(parts: dict[str, pretty_midi.PrettyMIDI], soundfont: Path, rate: int, samples: int,
               seconds: int | None = None, synthesizer: str | None = None
               ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Each part's audio in consecutive finished chunks: ``(first frame, {part: float32 stereo})``.

    Chunks (BLOCK_UNIT seconds) tile ``[0, samples)`` in order; a block's audio past its end
    (release, reverb) is added to the chunks after it. Blocks go to the worker pool as they are
    cut (the first plays while the next are cut), one more than there are workers at a time.
    """
    _large_buffers_mapped()
    seconds = seconds or block_seconds(samples / rate)
    jobs = heapq.merge(*(_jobs(name, midi, rate, samples, seconds) for name, midi in parts.items()),
                       key=lambda job: job[1].start)  # stable: the parts' order within a block
    results = _run(jobs, str(soundfont), rate, synthesizer or engine(Path(soundfont)))
    pending = {name: np.zeros((0, 2), np.float32) for name in parts}
    step, piece = seconds * rate, BLOCK_UNIT * rate
    ahead = next(results, None)  # the next block's (part, block, audio)
    for start in range(0, samples, step):
        while ahead is not None and ahead[1].start == start:
            _add(pending, ahead[0], _faded(ahead[2], rate)[: samples - start])
            ahead = next(results, None)
        stop = min(start + step, samples)
        for first in range(start, stop, piece):  # small pieces: less memory downstream
            frames = min(piece, stop - first)
            chunk = {}
            for name in parts:
                head = pending[name][:frames]
                if len(head) < frames:
                    head = np.concatenate([head, np.zeros((frames - len(head), 2), np.float32)])
                chunk[name] = head
                pending[name] = pending[name][frames:]
            yield first, chunk


def _jobs(name: str, midi: pretty_midi.PrettyMIDI, rate: int, samples: int, seconds: int
          ) -> Iterator[tuple[str, Block]]:
    for block in plan(midi, rate, samples, seconds):
        yield name, block


def _faded(audio: np.ndarray, rate: int) -> np.ndarray:
    """A block's audio as float32 with its last TAIL_FADE seconds faded out."""
    if audio.dtype == np.int16:
        audio = audio.astype(np.float32) / np.float32(32768.0)
    fade = min(len(audio), int(TAIL_FADE * rate))
    audio[len(audio) - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)[:, None]
    return audio


def _add(pending: dict[str, np.ndarray], name: str, audio: np.ndarray) -> None:
    """Overlap-add ``audio`` (starting at the pending buffer's first frame, and now the
    pending buffer's to change) into it."""
    have = pending[name]
    if len(audio) >= len(have):
        audio[: len(have)] += have
        pending[name] = audio
    else:
        have[: len(audio)] += audio


def _here(jobs: Iterable[tuple[str, Block]], soundfont: str, rate: int, synthesizer: str
          ) -> Iterator[tuple[str, Block, np.ndarray]]:
    """The jobs' audio synthesised in this process (the SoundFont freed after the last)."""
    try:
        for name, block in jobs:
            yield name, block, synthesise_block(soundfont, block.midi, rate, synthesizer)
    finally:
        player.release()


def _run(jobs: Iterator[tuple[str, Block]], soundfont: str, rate: int, synthesizer: str
         ) -> Iterator[tuple[str, Block, np.ndarray]]:
    """Each job with its audio, in order: on the pool, a few ahead, else (one job, or no pool) here."""
    global _BROKEN
    first = list(itertools.islice(jobs, 2))
    queue = itertools.chain(first, jobs)
    if len(first) <= 1 or not _parallel():
        yield from _here(queue, soundfont, rate, synthesizer)
        return
    executor = pool(Path(soundfont))
    taken: deque[tuple[str, Block]] = deque()  # taken from the queue, not yet handed back
    waiting: deque[Future[np.ndarray]] = deque()

    def submit(count: int) -> None:
        for job in itertools.islice(queue, count):
            taken.append(job)
            with spawning.sheltered():  # the first submits may start the workers
                waiting.append(executor.submit(synthesise_block, soundfont, job[1].midi, rate, synthesizer))

    try:
        submit(WORKERS + 1)
        while waiting:
            audio = waiting.popleft().result()
            submit(1)
            yield (*taken.popleft(), audio)
    except BrokenProcessPool:  # e.g. a host application whose sys.executable is not Python
        logger.info("the render's worker processes could not start; rendering in this process")
        _BROKEN = True
        shutdown()
        yield from _here(itertools.chain(list(taken), queue), soundfont, rate, synthesizer)
    finally:
        for future in waiting:
            future.cancel()
