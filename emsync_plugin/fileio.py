"""Safe writes: nothing of the user's is lost.

Every file emsync writes goes to a temporary file in the destination folder first (named
``.<stem>.<random><suffix>``), is flushed and fsynced, and is then renamed over the target
(atomic on POSIX and Windows); the folder is fsynced after the rename, so a crash or a power
cut leaves the old file or the new one, never half of one. A run that is killed leaves at
most such a hidden temporary file (or a render's :func:`scratch_file`), which is never mistaken
for an output and which :func:`remove_stale_temps` (:func:`remove_stale_scratch`) clears on the
next run. Overwriting an existing project in place
always keeps a timestamped backup beside it, and :class:`Snapshot` notices a project that
the editor saved while emsync was working.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TimelineError

logger = logging.getLogger(__name__)

#: A temporary file of :func:`atomic_path` older than this is left over from a killed run.
STALE_AFTER = 3600.0


@contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync it and rename it onto ``target``.

    The temporary file keeps the target's suffix (``suffix`` overrides it) so that writers
    which choose a format by extension (OTIO adapters, soundfile) still work. Inside
    :func:`guarding`, a target that changed on disk since its :class:`Snapshot` is not
    replaced (TimelineError; the temporary file is removed).
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
        sync_tree(tmp_path)
        for snapshot in _GUARDS.get():
            if _same(snapshot.path, target):
                snapshot.check()
        if tmp_path.is_dir():  # e.g. an .otiod bundle written by an adapter
            if target.exists():
                # the old bundle steps aside first, so a crash leaves one of the two complete
                old = Path(tempfile.mkdtemp(prefix=f".{target.stem}.", suffix=".old", dir=target.parent))
                old.rmdir()
                target.rename(old)
                tmp_path.rename(target)
                shutil.rmtree(old) if old.is_dir() else old.unlink()
            else:
                tmp_path.rename(target)
        else:
            os.replace(tmp_path, target)
        sync_dir(target.parent)
    except BaseException:
        if tmp_path.is_dir():
            shutil.rmtree(tmp_path, ignore_errors=True)
        else:
            tmp_path.unlink(missing_ok=True)
        raise


def sync_tree(path: Path) -> None:
    """fsync a written file, or every file and folder of a written folder (bundles)."""
    if path.is_dir():
        for folder, _, files in os.walk(path):
            for name in files:
                _fsync_file(Path(folder) / name)
            sync_dir(Path(folder))
    elif path.exists():
        _fsync_file(path)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_dir(folder: Path) -> None:
    """fsync a folder, so a rename inside it survives a crash (a no-op where not supported)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_RANDOM = re.compile(r"[A-Za-z0-9_]{8}")


def is_temp(entry: Path, target: Path) -> bool:
    """Whether ``entry`` is a temporary file or folder :func:`atomic_path` made for ``target``."""
    prefix = f".{target.stem}."
    rest = entry.name[len(prefix):]
    return (entry.parent == target.parent and entry.name.startswith(prefix) and bool(_RANDOM.fullmatch(rest[:8]))
            and rest[8:] in ("", ".old", target.suffix))


def remove_stale_temps(target: str | Path, older_than: float = STALE_AFTER) -> list[Path]:
    """Delete what killed runs left beside ``target``: hidden temporary files and folders of
    :func:`atomic_path` for the same name, older than ``older_than`` seconds (a run in
    progress elsewhere writes newer ones). Returns what was removed."""
    target = Path(target)
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not is_temp(entry, target):
            continue
        try:
            if entry.name.endswith(".old") and not target.exists() and entry.is_dir():
                # a bundle folder set aside by a run killed between its two renames: the only copy
                entry.rename(target)
                logger.warning("restored %s from %s, left by an interrupted run", target, entry.name)
                continue
        except OSError:
            continue
        if _remove_if_stale(entry, now, older_than):
            removed.append(entry)
    return removed


def _remove_if_stale(entry: Path, now: float, older_than: float) -> bool:
    """Delete ``entry`` (a file, or a folder tree) if it was not written for ``older_than``
    seconds before ``now``; whether it was."""
    try:
        if now - entry.lstat().st_mtime < older_than:
            return False
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    except OSError:
        return False
    logger.info("removed %s, left over from an interrupted run", entry)
    return True


#: a scratch file of :func:`scratch_file`: ``.emsync-<name>.<random><suffix>``
_SCRATCH = re.compile(r"\.emsync-[A-Za-z0-9_-]+\.[A-Za-z0-9_]{8}\.[a-z0-9]+")


def scratch_file(folder: str | Path, name: str, suffix: str) -> Path:
    """A new hidden scratch file ``.emsync-<name>.<random><suffix>`` in ``folder`` (e.g. the
    render's float audio between its two passes); the caller removes it. What a killed run
    leaves, :func:`remove_stale_scratch` clears on the next run."""
    fd, tmp = tempfile.mkstemp(prefix=f".emsync-{re.sub(r'[^A-Za-z0-9_-]', '_', name)}.", suffix=suffix,
                               dir=folder)
    os.close(fd)
    return Path(tmp)


def is_scratch(entry: Path) -> bool:
    """Whether ``entry`` is named like a file of :func:`scratch_file`."""
    return bool(_SCRATCH.fullmatch(entry.name))


def remove_stale_scratch(folder: str | Path, older_than: float = STALE_AFTER) -> list[Path]:
    """Delete the scratch files in ``folder`` not written for ``older_than`` seconds (left by
    killed runs; a run in progress keeps its own fresh). Returns what was removed."""
    now = time.time()
    try:
        entries = [e for e in Path(folder).iterdir() if is_scratch(e) and e.is_file() and not e.is_symlink()]
    except OSError:
        return []
    return [entry for entry in entries if _remove_if_stale(entry, now, older_than)]


@dataclass(frozen=True)
class Snapshot:
    """What a file (or bundle folder) was when emsync read it: size, mtime and sha256.

    ``check()`` raises when it changed since, e.g. the editor saved the project while emsync
    was scoring it; writing then would throw the editor's work away.
    """

    path: Path
    size: int
    mtime_ns: int
    digest: str
    hashed: Callable[[Path], bool] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def take(cls, path: str | Path, hashed: Callable[[Path], bool] | None = None) -> Snapshot:
        """Fingerprint ``path``. Of a folder, every file's name and size count, and the bytes
        of those ``hashed(file)`` accepts (all, by default)."""
        path = Path(path)
        size, mtime, digest = _fingerprint(path, hashed)
        return cls(path, size, mtime, digest, hashed)

    def changed(self) -> bool:
        """Whether the content is not what it was (a new mtime alone, e.g. a touch, is not a change)."""
        try:
            size, _, digest = _fingerprint(self.path, self.hashed)
        except OSError:
            return True
        return (size, digest) != (self.size, self.digest)

    def check(self) -> None:
        if self.changed():
            raise TimelineError(
                "changed on disk while emsync was working (saved by the editor?); it was not overwritten",
                path=self.path, hint="run emsync again on the saved project",
            )


_GUARDS: ContextVar[tuple[Snapshot, ...]] = ContextVar("emsync_fileio_guards", default=())


@contextmanager
def guarding(*snapshots: Snapshot | None) -> Iterator[None]:
    """Within this block, :func:`atomic_path` refuses to replace a file whose snapshot changed."""
    token = _GUARDS.set(_GUARDS.get() + tuple(s for s in snapshots if s is not None))
    try:
        yield
    finally:
        _GUARDS.reset(token)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _fingerprint(path: Path, hashed: Callable[[Path], bool] | None) -> tuple[int, int, str]:
    h = hashlib.sha256()
    if path.is_dir():
        size, mtime = 0, 0
        for folder, dirs, files in sorted(os.walk(path)):
            dirs.sort()
            for name in sorted(files):
                p = Path(folder) / name
                st = p.stat()
                size += st.st_size
                mtime = max(mtime, st.st_mtime_ns)
                h.update(str(p.relative_to(path)).encode() + b"\0" + str(st.st_size).encode() + b"\0")
                if hashed is None or hashed(p):
                    _hash_file(h, p)
        return size, mtime, h.hexdigest()
    st = path.stat()
    _hash_file(h, path)
    return st.st_size, st.st_mtime_ns, h.hexdigest()


def _hash_file(h: hashlib._Hash, path: Path) -> None:
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


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


def copy(source: str | Path, target: str | Path) -> Path:
    """Atomically copy the file ``source`` to ``target`` (data and times)."""
    with atomic_path(target) as tmp:
        shutil.copy2(source, tmp)
    return Path(target)


def backup(path: str | Path) -> Path:
    """Copy ``path`` to ``<name>.<YYYYmmdd-HHMMSS>.bak<suffix>`` beside it and return the copy
    (atomically, like every write)."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = path.with_name(f"{path.stem}.{stamp}.bak{path.suffix}")
    n = 1
    while dest.exists():
        dest = path.with_name(f"{path.stem}.{stamp}-{n}.bak{path.suffix}")
        n += 1
    if path.is_dir():
        with atomic_path(dest, suffix="") as tmp:
            tmp.unlink()
            shutil.copytree(path, tmp)
    else:
        with atomic_path(dest) as tmp:  # a killed run never leaves half a backup
            shutil.copy2(path, tmp)
    logger.info("backed up %s to %s", path, dest)
    return dest
