"""Where the Resolve script reaches emsync: in Resolve's own Python, or in a worker process.

Resolve runs the script under its own Python. When that interpreter can import emsync (the
version ``install.py`` recorded matches), :mod:`resolve_bridge.core` is called in-process;
otherwise compiled packages such as numpy would not load, so the recorded interpreter runs
``python -m resolve_bridge.worker``: it reads one JSON request on stdin and writes JSON lines on
stdout, ``{"progress": [stage, fraction]}`` then ``{"result": ...}`` or ``{"error": ...,
"message": ...}``. Both ways take the same requests (:func:`resolve_bridge.core.handle`), so the
dialog checks scene moods and words errors the same way in either case.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from .options import BridgeError, BridgeOptions, Scored

logger = logging.getLogger(__name__)

MODULE = "resolve_bridge.worker"
Progress = Callable[[str, float], None]


class Cancelled(Exception):  # noqa: N818 (an outcome, not an error)
    """The editor cancelled a running job (the worker was stopped; nothing was placed)."""


@dataclass(frozen=True)
class Environment:
    """The emsync environment ``install.py`` recorded in the launcher (all empty: not installed)."""

    python: str | None = None  # its interpreter
    version: tuple[int, ...] | None = None  # its (major, minor)
    paths: tuple[str, ...] = ()  # its import paths

    def matches(self) -> bool:
        """True when this interpreter is the recorded version (or none was recorded)."""
        return self.version is None or tuple(self.version) == tuple(sys.version_info[:2])

    def in_process(self) -> bool:
        """True when this interpreter can import emsync; then the core runs here."""
        if not self.matches():
            return False
        try:
            from emsync_plugin import pipeline  # noqa: F401  (numpy and the rest load here)

            from . import core  # noqa: F401
        except ImportError:
            logger.debug("emsync not importable in-process", exc_info=True)
            return False
        return True

    def has_worker(self) -> bool:
        """True when the recorded interpreter is there to run the worker."""
        return bool(self.python) and Path(str(self.python)).exists()


def call(env: Environment, request: dict, progress: Progress | None = None) -> Any:
    """Answer ``request`` (see :func:`resolve_bridge.core.handle`) in-process or in the worker."""
    if env.in_process():
        from emsync_plugin.errors import EmsyncError

        from . import core

        try:
            return core.handle(request, progress)
        except EmsyncError as exc:
            raise BridgeError(core.describe(exc)) from exc
    if env.has_worker():
        return _in_subprocess(env, request, progress)
    raise _not_importable()


def engines(env: Environment) -> tuple[str, ...]:
    """The generator engines the core offers ("baseline" when it cannot be asked here)."""
    if env.in_process():
        from emsync_plugin import pipeline

        return tuple(getattr(pipeline, "ENGINES", None) or ("baseline",))
    return ("baseline",)


def check_emotion(emotion: str | Iterable[str], env: Environment) -> tuple[str, ...]:
    """Per-scene moods (text or items) checked by emsync: one item per scene, by scene number.

    A BridgeError says which item is wrong and how to write it.
    """
    if isinstance(emotion, str):
        if not emotion.strip():
            return ()
        return tuple(call(env, {"command": "check", "emotion": emotion}))
    items = [str(e) for e in emotion or ()]
    return tuple(call(env, {"command": "check", "emotion": items})) if items else ()


def run_score(path: Path, options: BridgeOptions, progress: Progress, env: Environment,
              previous: Path | None = None) -> Scored:
    """``pipeline.score(path, ScoreOptions(write_timeline=False, ...))`` as a :class:`Scored`;
    ``previous`` is the last run's settings file (its music is kept unless ``options.fresh``)."""
    return Scored(**call(env, score_request(path, options, previous), progress))


def analyze_scenes(path: Path, options: BridgeOptions, progress: Progress, env: Environment) -> list[dict]:
    """The mood of each scene of the exported timeline (``pipeline.analyze``); nothing is written."""
    return call(env, analyze_request(path, options), progress)


class Job:
    """One request answered in the background, so that a dialog can stay responsive.

    With a recorded worker interpreter the request runs in the worker process (:meth:`cancel`
    kills it); otherwise in a thread of this process, whose result a cancel discards. The
    dialog calls :meth:`poll` from a UIManager timer; :meth:`wait` blocks (the Console).
    """

    def __init__(self, env: Environment, request: dict):
        self.messages: queue.Queue = queue.Queue()
        self.proc: subprocess.Popen | None = None
        self.cancelled = False
        self.finished = False
        self.outcome: tuple[str, Any] | None = None  # ("result", value) or ("error", exception)
        if not env.in_process() and env.has_worker():
            self.proc = _start_worker(env, request)
            target: Callable[[], Any] = lambda: _finish_worker(env, self.proc, self._progress)  # noqa: E731
        else:
            target = lambda: call(env, request, self._progress)  # noqa: E731
        threading.Thread(target=self._run, args=(target,), daemon=True).start()

    def _progress(self, stage: str, fraction: float) -> None:
        self.messages.put(("progress", (stage, fraction)))

    def _run(self, target: Callable[[], Any]) -> None:
        try:
            self.messages.put(("result", target()))
        except BaseException as exc:  # handed to the thread that polls
            self.messages.put(("error", exc))

    def poll(self, progress: Progress | None = None) -> bool:
        """Pass on the progress so far; True once the job has ended (then :meth:`result`)."""
        while self.outcome is None:
            try:
                kind, value = self.messages.get_nowait()
            except queue.Empty:
                break
            if kind == "progress":
                if progress is not None and not self.cancelled:
                    progress(*value)
            else:
                self.outcome = (kind, value)
        return self.outcome is not None or self.cancelled

    def wait(self, progress: Progress | None = None) -> Any:
        """Block until the job ends; its result (or its error raised)."""
        while self.outcome is None and not self.cancelled:
            kind, value = self.messages.get()
            if kind == "progress":
                if progress is not None:
                    progress(*value)
            else:
                self.outcome = (kind, value)
        return self.result()

    def result(self) -> Any:
        """The answer; Cancelled after :meth:`cancel`, or the error the request raised."""
        if self.cancelled:
            raise Cancelled("cancelled")
        assert self.outcome is not None, "the job is still running"
        kind, value = self.outcome
        if kind == "error":
            raise value
        return value

    def cancel(self) -> None:
        """Stop the worker process (a thread is left to finish; its result is dropped)."""
        self.cancelled = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()


def start(env: Environment, request: dict) -> Job:
    """Answer ``request`` in the background (see :class:`Job`)."""
    return Job(env, request)


def score_request(path: Path, options: BridgeOptions, previous: Path | None = None) -> dict:
    """The worker request for ``pipeline.score`` of the export at ``path``."""
    request = {"command": "score", "path": str(path), "options": asdict(options)}
    if previous is not None and not options.fresh:
        request["previous"] = str(previous)
    return request


def analyze_request(path: Path, options: BridgeOptions) -> dict:
    """The worker request for ``pipeline.analyze`` of the export at ``path``."""
    return {"command": "analyze", "path": str(path), "options": asdict(options)}


def _not_importable() -> BridgeError:
    return BridgeError(
        "emsync is not importable from Resolve's Python "
        f"({sys.executable or 'embedded'}, {sys.version_info[0]}.{sys.version_info[1]}). "
        "Install emsync in a Python environment and run emsync-resolve-install from it"
    )


def _in_subprocess(env: Environment, request: dict, progress: Progress | None) -> Any:
    """Send ``request`` to the worker in the recorded interpreter; its "result"."""
    return _finish_worker(env, _start_worker(env, request), progress)


def _start_worker(env: Environment, request: dict) -> subprocess.Popen:
    """The worker process in the recorded interpreter, ``request`` sent (stderr to a temporary file)."""
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join(env.paths)  # not Resolve's own module path
    environ.pop("PYTHONHOME", None)
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if os.name == "nt" else 0
    err = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (closed by _finish_worker)
    proc = subprocess.Popen(
        [str(env.python), "-m", MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=err, env=environ, text=True, encoding="utf-8", creationflags=flags,
    )
    proc.emsync_stderr = err  # type: ignore[attr-defined]
    assert proc.stdin is not None  # a pipe
    proc.stdin.write(json.dumps(request))
    proc.stdin.close()
    return proc


def _finish_worker(env: Environment, proc: subprocess.Popen | None, progress: Progress | None) -> Any:
    """Read the worker's replies until it ends; its "result" (BridgeError for its error)."""
    assert proc is not None and proc.stdout is not None  # a pipe
    err = proc.emsync_stderr  # type: ignore[attr-defined]
    try:
        reply = _read_replies(proc.stdout, progress)
        code = proc.wait()
        err.seek(0)
        stderr = err.read()
    finally:
        err.close()
    if reply is not None and "error" in reply:
        raise BridgeError(str(reply.get("message") or reply["error"]).rstrip("."))
    if code != 0 or reply is None:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {code}"
        raise BridgeError(f"the emsync worker ({env.python}) failed: {last}. Run emsync-resolve-install again")
    return reply["result"]


def _read_replies(lines: Iterable[str], progress: Progress | None) -> dict | None:
    """Pass the worker's progress lines on; its last "result" or "error" line."""
    reply = None
    for line in lines:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if "progress" in message:
            if progress is not None:
                progress(str(message["progress"][0]), float(message["progress"][1]))
        elif "result" in message or "error" in message:
            reply = message
    return reply


def worker_main(stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> int:
    """The worker: read one request on stdin, write JSON lines on stdout (progress, then the
    result or the error); exit status 0, 2 for an error the editor can fix, 1 for a bug."""
    source = stdin or sys.stdin
    sink = stdout or sys.stdout

    def emit(obj: dict) -> None:
        sink.write(json.dumps(obj) + "\n")
        sink.flush()

    from emsync_plugin.errors import EmsyncError

    from . import core

    request = json.load(source)
    try:
        result = core.handle(request, lambda stage, fraction: emit({"progress": [stage, fraction]}))
    except EmsyncError as exc:
        emit(core.error_fields(exc))
        return 2
    except Exception as exc:  # reported to Resolve; the traceback goes to stderr
        traceback.print_exc()
        emit({"error": f"internal error: {type(exc).__name__}: {exc}"})
        return 1
    emit({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
