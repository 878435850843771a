"""Safe writes: nothing of the user's is lost.

Every file emsync writes goes to a temporary file in the destination folder first and is
then renamed over the target (atomic on POSIX and Windows). Overwriting an existing project
in place always keeps a timestamped backup beside it.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

logger = logging.getLogger(__name__)


@contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``.

    The temporary file keeps the target's suffix (``suffix`` overrides it) so that writers
    which choose a format by extension (OTIO adapters, soundfile) still work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=suffix if suffix is not None else target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _set_mode(tmp_path, target)
        if tmp_path.is_dir():  # e.g. an .otiod bundle written by an adapter
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            tmp_path.rename(target)
        else:
            os.replace(tmp_path, target)
    except BaseException:
        if tmp_path.is_dir():
            shutil.rmtree(tmp_path, ignore_errors=True)
        else:
            tmp_path.unlink(missing_ok=True)
        raise


def _set_mode(tmp: Path, target: Path) -> None:
    """mkstemp makes private files; give the result the target's mode, or the umask's default."""
    if not tmp.exists() or tmp.is_dir():
        return
    if target.exists():
        mode = target.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)


def write_bytes(target: str | Path, data: bytes) -> Path:
    """Atomically write ``data`` to ``target``."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Atomically write ``text`` to ``target``."""
    return write_bytes(target, text.encode(encoding))


def backup(path: str | Path) -> Path:
    """Copy ``path`` to ``<name>.<YYYYmmdd-HHMMSS>.bak<suffix>`` beside it and return the copy."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = path.with_name(f"{path.stem}.{stamp}.bak{path.suffix}")
    n = 1
    while dest.exists():
        dest = path.with_name(f"{path.stem}.{stamp}-{n}.bak{path.suffix}")
        n += 1
    if path.is_dir():
        shutil.copytree(path, dest)
    else:
        shutil.copy2(path, dest)
    logger.info("backed up %s to %s", path, dest)
    return dest
