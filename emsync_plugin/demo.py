"""``emsync demo``: score the bundled sample in every format emsync writes back to.

The sample (``emsync_plugin/data/sample``: a 48 s video of seven different scenes, made by
``scripts/make_sample.py``, with its edit as ``.otio`` and ``.kdenlive``) is copied into the
demo folder; FCP 7 XML and FCPXML copies of the edit are made from the OTIO (as an editor's
export would be), and each is scored.
"""
from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from . import fileio
from .errors import EmsyncError
from .timeline.io import convert_timeline

logger = logging.getLogger(__name__)

SAMPLE_FILES = ("sample.mp4", "sample.otio", "sample.kdenlive")


def sample_dir() -> Path:
    """The bundled sample's folder inside the installed package."""
    return Path(str(resources.files("emsync_plugin") / "data" / "sample"))


def copy_sample(folder: Path) -> dict[str, Path]:
    """Copy the sample into ``folder`` and add FCP 7 XML and FCPXML exports of its edit."""
    folder.mkdir(parents=True, exist_ok=True)
    src = sample_dir()
    for name in SAMPLE_FILES:
        if not (src / name).exists():
            raise EmsyncError(f"the bundled sample is incomplete: {name} is missing", path=src,
                              hint="reinstall emsync (pip install --force-reinstall .)")
        fileio.copy(src / name, folder / name)
    files = {"otio": folder / "sample.otio", "kdenlive": folder / "sample.kdenlive"}
    for fmt, name in (("fcp7 xml", "sample.xml"), ("fcpxml", "sample.fcpxml")):
        files[fmt] = convert_timeline(folder / "sample.otio", folder / name)
    return files


def run_demo(folder: Path, progress_factory=None) -> dict:
    """Score the sample in each format; returns ``{format: ScoreResult}``."""
    from .pipeline import ScoreOptions, score

    files = copy_sample(Path(folder))
    results = {}
    for fmt, path in files.items():
        logger.info("scoring the sample as %s: %s", fmt, path.name)
        # one name per format, so each timeline keeps its own WAV and MIDI
        out = path.with_name(f"{path.stem}-{path.suffix[1:]}.emsync{path.suffix}")
        job = lambda cb, p=path, o=out: score(p, ScoreOptions(output=o, report_png=o.with_suffix(".png")), cb)  # noqa: E731
        results[fmt] = progress_factory(job) if progress_factory else job(None)
    return results
