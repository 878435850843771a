"""Worker processes emsync starts (the render's, the generator's): whether it may, and how they
end with the process that started them."""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path


def may_spawn() -> bool:
    """Whether to start worker processes: not with one core, not inside a worker of another
    pool (``emsync batch`` already keeps the cores busy), not where ``sys.executable`` is a host
    application (Resolve's embedded Python) that spawning would start again."""
    python = Path(sys.executable or "").name.lower().startswith("python")
    return (os.cpu_count() or 1) > 1 and python and multiprocessing.parent_process() is None


def become_worker(parent: int) -> None:
    """A worker's first step: leave Ctrl-C to the process that started it (which stops its
    workers; in a worker it only printed a traceback), and exit once that process has died
    (even by SIGKILL, which leaves no chance to stop the worker) rather than linger with what
    it loaded. A thread looks every second whether the worker was handed to another parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="emsync-parent-watch", daemon=True).start()
