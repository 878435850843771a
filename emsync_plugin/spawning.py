"""Worker processes emsync starts (the render's, the generator's): whether it may, and how they
end with the process that started them."""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def may_spawn() -> bool:
    """Whether to start worker processes: not with one core, not inside a worker of another
    pool (``emsync batch`` already keeps the cores busy), not where ``sys.executable`` is a host
    application (Resolve's embedded Python) that spawning would start again."""
    python = Path(sys.executable or "").name.lower().startswith("python")
    return (os.cpu_count() or 1) > 1 and python and multiprocessing.parent_process() is None


@contextmanager
def sheltered() -> Iterator[None]:
    """Start worker processes inside this block: Ctrl-C is blocked in this thread meanwhile, and
    they inherit the block through ``exec``, so a Ctrl-C that comes while they start up (before
    :func:`become_worker`) is not theirs either."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def become_worker(parent: int) -> None:
    """A worker's first step: leave Ctrl-C to the process that started it (which stops its
    workers; in a worker it only printed a traceback), and exit once that process has died
    (even by SIGKILL, which leaves no chance to stop the worker) rather than linger with what
    it loaded. A thread looks every second whether the worker was handed to another parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # blocked since it was started (sheltered): now ignored
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="emsync-parent-watch", daemon=True).start()
