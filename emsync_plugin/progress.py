"""Progress bars for long stages: shown on a terminal, silent when piped or in tests."""
from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def enabled() -> bool:
    """Bars appear only when stderr is a terminal and EMSYNC_NO_PROGRESS is unset."""
    return sys.stderr.isatty() and not os.environ.get("EMSYNC_NO_PROGRESS")


def bar(iterable: Iterable[T] | None = None, *, total: float | None = None, desc: str = "", unit: str = "it") -> tqdm:
    """A tqdm bar on stderr that disables itself when nobody is watching."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled(), leave=False, file=sys.stderr)
