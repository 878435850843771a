"""Render a Kdenlive project's audio with the real ``melt`` (MLT), for the tests.

melt sometimes does not exit after it has written and closed its output (seen here: one
thread asleep for minutes; MLT issue #921 reports the same end-of-render hang). A render whose
output is a complete WAV when melt is still running after ``timeout`` seconds counts as done.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import soundfile

logger = logging.getLogger(__name__)

MELT = shutil.which("melt")


def render(project: Path, out: Path, rate: int = 48000, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Render ``project``'s audio to the 16-bit stereo WAV ``out``; CalledProcessError if melt fails."""
    assert MELT is not None, "melt is not installed (the README's test command installs it)"
    args = [MELT, "-quiet", str(project), "-consumer", f"avformat:{out}", "vn=1", "acodec=pcm_s16le", f"ar={rate}",
            "ac=2", "real_time=-1", "terminate_on_pause=1"]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    with subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            if not _complete(out):
                raise
            logger.warning("melt did not exit after writing %s; killed it (MLT's end-of-render hang)", out.name)
            return subprocess.CompletedProcess(args, 0, stdout, stderr)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, args, stdout, stderr)
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def _complete(path: Path) -> bool:
    try:
        return soundfile.info(str(path)).frames > 0
    except (OSError, RuntimeError, soundfile.LibsndfileError):
        return False
