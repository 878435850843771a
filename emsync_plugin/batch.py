"""Score many timelines at once (``emsync batch``): agencies deliver dozens of cut-downs of one edit.

Each timeline is scored by :func:`~emsync_plugin.pipeline.score` exactly as ``emsync score`` would,
in a local process pool or, given a scheduler address, on a Dask distributed cluster. A failure
is reported for its own file (the same one-line message the CLI prints) and never stops the others.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from .errors import EmsyncError, OptionsError
from .options import ScoreOptions

__all__ = ["BatchResult", "format_summary", "score_many"]

logger = logging.getLogger(__name__)

#: Options naming one file: with several timelines they would all write to (or read) the same one.
_ONE_FILE_OPTIONS = {"output": "-o/--output", "report_png": "--report", "previous": "--previous"}


@dataclass(frozen=True)
class BatchResult:
    """How one timeline of a batch went: the files written, or the one-line error."""

    path: Path
    ok: bool
    output: Path | None = None  # the scored timeline (None with write_timeline=False or on failure)
    wav: Path | None = None
    sidecar: Path | None = None
    error: str = ""  # str(EmsyncError), as the CLI prints it; "" when ok
    seconds: float = 0.0


Listener = Callable[[BatchResult], None]


def score_many(paths: Sequence[str | Path], options: ScoreOptions = ScoreOptions(), jobs: int | None = None,
               scheduler: str | None = None, progress: Listener | None = None) -> list[BatchResult]:
    """Score every timeline in ``paths``; results in the order given, ``progress`` called as each ends.

    Local: ``jobs`` processes (default: one per CPU). With ``scheduler`` (a Dask scheduler
    address such as ``tcp://10.0.0.5:8786``) the cluster's workers do the work instead.
    """
    names = [str(p) for p in paths]
    _check(names, options, jobs)
    if not names:
        return []
    if scheduler:
        found = _on_cluster(names, options, scheduler, progress)
    else:
        found = _on_pool(names, options, max(1, min(jobs or os.cpu_count() or 1, len(names))), progress)
    return [found[n] for n in names]


def _check(names: Sequence[str], options: ScoreOptions, jobs: int | None) -> None:
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise OptionsError(f"--jobs {jobs} is not a number of processes", hint="use 1 or more (default: one per CPU)")
    if len(names) > 1:
        for field, flag in _ONE_FILE_OPTIONS.items():
            if getattr(options, field) is not None:
                raise OptionsError(f"{flag} names one file but {len(names)} timelines were given",
                                   hint=f"drop {flag}: each timeline's files are written beside it")
    seen: set[Path] = set()
    for name in names:
        key = Path(name).resolve()
        if key in seen:
            raise OptionsError(f"{name} is given twice", hint="list each timeline once")
        seen.add(key)


def score_one(path: str, options: ScoreOptions) -> BatchResult:
    """Score one timeline in a worker process; every exception becomes a failed result (top level: picklable)."""
    from .pipeline import score

    os.environ.setdefault("EMSYNC_NO_PROGRESS", "1")  # the parent draws the one bar that counts timelines
    start = time.perf_counter()
    try:
        result = score(path, options)
    except EmsyncError as exc:
        return BatchResult(Path(path), False, error=str(exc), seconds=time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - a bug in one file must not end the batch
        return BatchResult(Path(path), False, error=_unexpected(path, exc), seconds=time.perf_counter() - start)
    return BatchResult(Path(path), True, result.output, result.wav, result.sidecar, seconds=time.perf_counter() - start)


def _unexpected(path: str, exc: BaseException) -> str:
    return " ".join(f"{path}: {type(exc).__name__}: {exc}".split())  # one line, like EmsyncError


def _finish(found: dict[str, BatchResult], name: str, result: BatchResult, progress: Listener | None) -> None:
    found[name] = result
    logger.debug("%s: %s in %.1f s", name, "scored" if result.ok else "failed", result.seconds)
    if progress is not None:
        progress(result)


def _on_pool(names: Sequence[str], options: ScoreOptions, jobs: int, progress: Listener | None) -> dict[str, BatchResult]:
    found: dict[str, BatchResult] = {}
    # spawn: the parent may hold threads (onnxruntime, tqdm) that a fork would copy half-locked
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures: dict[Future[BatchResult], str] = {pool.submit(score_one, n, options): n for n in names}
        for future in as_completed(futures):
            name = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. a worker killed by the system
                result = BatchResult(Path(name), False, error=_unexpected(name, exc))
            _finish(found, name, result, progress)
    return found


def _on_cluster(names: Sequence[str], options: ScoreOptions, scheduler: str,
                progress: Listener | None) -> dict[str, BatchResult]:
    try:
        from distributed import Client
        from distributed import as_completed as completed
    except ImportError:
        raise OptionsError("--scheduler needs Dask distributed", hint="pip install 'emsync[cluster]'") from None
    found: dict[str, BatchResult] = {}
    try:
        client = Client(scheduler, timeout="30s")
    except OSError as exc:
        raise OptionsError(f"cannot reach the Dask scheduler {scheduler} ({exc})",
                           hint="check the address (e.g. tcp://HOST:8786) and that the scheduler runs") from None
    with client:
        futures = {client.submit(score_one, n, options, pure=False): n for n in names}
        for future in completed(list(futures)):
            name = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: reported for this file only
                result = BatchResult(Path(name), False, error=_unexpected(name, exc))
            _finish(found, name, result, progress)
    return found


def format_summary(results: Sequence[BatchResult]) -> str:
    """The table ``emsync batch`` prints at the end: file, result, seconds, what was written."""
    width = max([len("timeline"), *(len(str(r.path)) for r in results)])
    lines = [f"{'timeline':<{width}}  {'result':<6}  {'seconds':>7}  written"]
    for r in results:
        written = (r.output or r.wav) if r.ok else ""
        lines.append(f"{str(r.path):<{width}}  {'ok' if r.ok else 'FAILED':<6}  {r.seconds:>7.1f}  {written}".rstrip())
    failed = sum(not r.ok for r in results)
    lines.append(f"{len(results) - failed} scored, {failed} failed")
    return "\n".join(lines)
