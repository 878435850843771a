"""The learned generator in a process of its own, beside the scene analysis.

In one interpreter the generator's decoding loop (Python for a third of each step) and the
analysis's threads take turns on the GIL, so the analysis ran at half its speed and the music
waited for it. :func:`remote` starts a spawned process once per process and keeps it (its ONNX
session stays warm from run to run); :class:`Remote` has the generator's ``generate_many``: the
moods are sent as the analysis decides them, in scene order, and the notes come back, the same
tokens as generated here. The worker's log records are logged again here, and its progress moves
a bar here.
"""
from __future__ import annotations

import atexit
import itertools
import logging
import multiprocessing
import os
import pickle
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from .. import progress, spawning
from ..errors import ModelError
from ..mood import SceneMood

if TYPE_CHECKING:
    from ..rescore import KeptSpan
    from .decoding import SamplingOptions
    from .generator import GenerationResult
    from .vocab import Vocab

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()
_WORKER: _Process | None = None


def remote(precision: str) -> Remote | None:
    """The generator of ``precision`` in the worker process (started now if it is not running),
    loaded; ``None`` where no process may be started (:func:`.spawning.may_spawn`) or it fails
    to start. A model that cannot be loaded raises its ``ModelError`` here."""
    worker = _running()
    if worker is None:
        return None
    try:
        vocab = worker.call(("load", precision))
    except _LostError as exc:  # it died loading (killed, out of memory): this process loads it instead
        logger.info("%s; generating in this process", exc.reason)
        return None
    return Remote(worker, precision, vocab)


def _running() -> _Process | None:
    """The worker process, started if it is not running; None where it may not or cannot start."""
    global _WORKER
    if not spawning.may_spawn():
        return None
    with _LOCK:
        if _WORKER is None or not _WORKER.alive():
            try:
                _WORKER = _Process()
            except (OSError, AssertionError, RuntimeError) as exc:  # AssertionError: inside a daemon
                logger.info("the generator's worker process could not start (%s); generating in this process", exc)
                return None
        return _WORKER


def shutdown() -> None:
    """Stop the worker process (the next :func:`remote` starts it again)."""
    global _WORKER
    with _LOCK:
        worker, _WORKER = _WORKER, None
    if worker is not None:
        worker.stop()


atexit.register(shutdown)


def pid() -> int | None:
    """The worker's process id while it runs (peak-memory accounting)."""
    worker = _WORKER
    return worker.process.pid if worker is not None and worker.alive() else None


class Remote:
    """A loaded generator in the worker: :meth:`generate_many` as :class:`.generator.Generator`'s."""

    def __init__(self, worker: _Process, precision: str, vocab: Vocab):
        self.worker, self.precision, self.vocab = worker, precision, vocab

    def generate_many(self, cuts: Sequence[float], duration: float, moods: Sequence[SceneMood],
                      options_list: Sequence[SamplingOptions], kept: Sequence[KeptSpan] = ()
                      ) -> list[GenerationResult]:
        """What ``Generator.generate_many`` returns; ``moods`` are read in scene order in a thread
        of this process (an analysis error is raised here, as it would be by the generator)."""
        from .generator import GenerationResult, to_midi

        found = self.worker.call(
            ("generate", self.precision, [float(c) for c in cuts], float(duration), len(moods), list(options_list),
             list(kept)), moods)
        return [GenerationResult(to_midi(notes, self.vocab, moods), tokens, notes, seconds, steps)
                for tokens, notes, seconds, steps in found]


class _LostError(ModelError):
    """The worker process died (killed, out of memory) or its pipe broke."""


class _MoodsFailedError(Exception):
    """The moods could not be read here (the analysis failed): the worker stops the job."""


class _Process:
    """The worker process and its two pipes (requests to it, replies from it), one job at a time."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.requests, child_requests = context.Pipe(duplex=False)[::-1]
        child_replies, self.replies = context.Pipe(duplex=False)[::-1]
        self.process = context.Process(target=_serve, args=(child_requests, child_replies, os.getpid()),
                                       name="emsync-generator", daemon=True)
        with spawning.sheltered():
            self.process.start()
        child_requests.close()
        child_replies.close()
        self.lock = threading.Lock()  # one job at a time
        self.sending = threading.Lock()  # a finished job's mood thread may still be sending
        self.jobs = itertools.count()

    def send(self, message: tuple) -> None:
        with self.sending:
            self.requests.send(message)

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        try:
            self.requests.close()
            self.process.join(2.0)
        finally:
            if self.process.is_alive():
                self.process.kill()
                self.process.join()

    def call(self, request: tuple, moods: Sequence[SceneMood] | None = None) -> Any:
        """Send ``request``, then its moods from a thread, and wait for the reply: relog the
        worker's records, follow its progress, raise its error (or the moods' own). An
        interrupted call stops the worker (a new one starts next time)."""
        level = logging.getLogger("emsync_plugin").getEffectiveLevel()
        with self.lock:
            job = next(self.jobs)
            failed: list[BaseException] = []
            try:
                self.send((request[0], job, level, *request[1:]))
                if moods is not None:
                    threading.Thread(target=self._feed, args=(job, moods, failed), name="emsync-moods",
                                     daemon=True).start()
                ok, value = self._wait(failed)
            except (EOFError, OSError) as exc:
                self._lost(exc)
                raise _LostError(f"the generator's worker process stopped ({exc or type(exc).__name__})",
                                 hint="run again; if it happens again, report it with the output of --debug") from None
            except BaseException:
                self._lost(None)
                raise
        if not ok:
            raise value
        return value

    def _feed(self, job: int, moods: Sequence[SceneMood], failed: list[BaseException]) -> None:
        try:
            for i in range(len(moods)):
                self.send(("mood", job, i, moods[i]))
        except BaseException as exc:  # noqa: BLE001 - raised where the call waits
            failed.append(exc)
            try:
                self.send(("abort", job))
            except OSError:
                pass

    def _wait(self, failed: list[BaseException]) -> tuple[bool, Any]:
        """(True, the result) or (False, the error to raise), the worker ready for the next job."""
        bar, shown = None, 0.0
        try:
            while True:
                kind, *rest = self.replies.recv()
                if kind == "log":
                    name, level, message = rest
                    logging.getLogger(name).log(level, "%s", message)
                elif kind == "progress":
                    bar = bar or progress.bar(total=100.0, desc="generating", unit="%")
                    bar.update(round(100.0 * rest[0] - shown, 1))
                    shown = round(100.0 * rest[0], 1)
                elif kind == "aborted":
                    return False, failed[0]
                elif kind == "error":
                    return False, pickle.loads(rest[0])
                else:
                    return True, rest[0]
        finally:
            if bar is not None:
                bar.close()

    def _lost(self, exc: BaseException | None) -> None:
        global _WORKER
        if exc is not None:
            logger.debug("the generator's worker process is lost: %r", exc)
        with _LOCK:
            if _WORKER is self:
                _WORKER = None
        self.process.kill()
        self.process.join()


# --- in the worker ------------------------------------------------------------------------
class _Forward(logging.Handler):
    """Log records sent to the parent, which logs them again."""

    def __init__(self, replies: Connection):
        super().__init__()
        self.replies = replies

    def emit(self, record: logging.LogRecord) -> None:
        self.replies.send(("log", record.name, record.levelno, self.format(record)))


class _Fed(Sequence[SceneMood]):
    """The moods of a job as the parent sends them (``moods[i]`` waits for mood ``i``)."""

    def __init__(self, requests: Connection, job: int, count: int):
        self.requests, self.job, self.size = requests, job, count
        self.got: dict[int, SceneMood] = {}

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i):
        if not isinstance(i, int) or not 0 <= i < self.size:
            raise IndexError(i)
        while i not in self.got:
            kind, job, *rest = self.requests.recv()
            if job != self.job:
                continue  # a finished job's
            if kind == "abort":
                raise _MoodsFailedError
            self.got[rest[0]] = rest[1]
        return self.got[i]


def _serve(requests: Connection, replies: Connection, parent: int) -> None:
    """The worker's loop: load a model, generate, until the parent closes the pipe."""
    spawning.become_worker(parent)
    os.environ["EMSYNC_NO_PROGRESS"] = "1"  # the parent shows the bar; and tqdm's lock is a thread lock, not
    from tqdm import tqdm  # a named semaphore that a worker stopped mid-job (Ctrl-C) would leave behind

    tqdm.set_lock(threading.RLock())
    root = logging.getLogger()
    root.handlers[:] = [_Forward(replies)]
    from .generator import Generator

    loaded: dict[str, Generator] = {}
    while True:
        try:
            kind, job, *rest = requests.recv()
        except (EOFError, OSError):
            return
        if kind in ("mood", "abort"):
            continue  # a finished job's
        root.setLevel(rest.pop(0))  # the parent's level now
        try:
            if kind == "load":
                if rest[0] not in loaded:
                    loaded[rest[0]] = Generator.load(precision=rest[0], threads=1)
                replies.send(("loaded", loaded[rest[0]].vocab))
            else:
                replies.send(("done", _generate(loaded, job, rest, requests, replies)))
        except _MoodsFailedError:
            replies.send(("aborted",))
        except Exception as exc:  # noqa: BLE001 - raised in the parent
            logging.getLogger(__name__).debug("the generator failed", exc_info=True)
            replies.send(("error", _pickled(exc)))


def _generate(loaded: dict, job: int, request: list, requests: Connection, replies: Connection) -> list[tuple]:
    precision, cuts, duration, count, options_list, kept = request
    shown = [0.0]

    def moved(desc: str, fraction: float) -> None:
        if fraction - shown[0] >= 0.01 or fraction >= 1.0:
            shown[0] = fraction
            replies.send(("progress", fraction))

    with progress.listen(moved):
        found = loaded[precision].generate_many(cuts, duration, _Fed(requests, job, count), options_list, kept)
    return [(r.tokens, r.notes, r.seconds, r.steps) for r in found]


def _pickled(exc: Exception) -> bytes:
    """``exc`` as the parent can raise it (a plain ``ModelError`` when it cannot be pickled)."""
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
        return data
    except Exception:  # noqa: BLE001
        return pickle.dumps(ModelError(f"the generator failed: {type(exc).__name__}: {exc}"))
