"""Progress bars for long stages: shown on a terminal, silent when piped or in tests.

A GUI (the Kdenlive panel) can follow the bars a stage creates without a terminal: inside
``with progress.listen(callback):`` every bar made *in that thread* also calls
``callback(description, fraction)`` as it advances (fraction 0..1; bars without a known total
are not reported). An exception raised by the callback propagates out of the stage.
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
Listener = Callable[[str, float], None]

_local = threading.local()


def enabled() -> bool:
    """Bars appear only when stderr is a terminal and EMSYNC_NO_PROGRESS is unset."""
    return sys.stderr.isatty() and not os.environ.get("EMSYNC_NO_PROGRESS")


@contextmanager
def listen(callback: Listener) -> Iterator[None]:
    """Report the bars made in this thread, inside the block, to ``callback(desc, fraction)``."""
    previous = getattr(_local, "listener", None)
    _local.listener = callback
    try:
        yield
    finally:
        _local.listener = previous


def bar(iterable: Iterable[T] | None = None, *, total: float | None = None, desc: str = "", unit: str = "it") -> tqdm:
    """A tqdm bar on stderr that disables itself when nobody is watching."""
    shown = tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled(), leave=False, file=sys.stderr)
    listener = getattr(_local, "listener", None)
    if listener is None:
        return shown
    if total is None and iterable is not None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    return _Reported(shown, listener, desc, total)


class _Reported:
    """A tqdm bar that also tells a listener how far it is (the tqdm API the stages use)."""

    def __init__(self, shown: tqdm, listener: Listener, desc: str, total: float | None):
        self._shown = shown
        self._listener = listener
        self._desc = desc
        self._total = total
        self._done = 0.0
        self._report()

    def _report(self) -> None:
        if self._total:
            self._listener(self._desc, max(0.0, min(1.0, self._done / self._total)))

    def __iter__(self):
        for obj in self._shown:
            yield obj
            self._done += 1
            self._report()

    def update(self, n: float = 1):
        self._done += n
        self._report()
        return self._shown.update(n)

    def set_description(self, desc: str | None = None, refresh: bool = True):
        self._desc = desc or ""
        return self._shown.set_description(desc, refresh)

    def close(self) -> None:
        self._shown.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __getattr__(self, name: str):
        return getattr(self._shown, name)
