"""A scored project folder can be moved: relative media stay relative, the score too (issue 13, part 7)."""
from __future__ import annotations

import shutil
from pathlib import Path

import opentimelineio as otio

from emsync_plugin.pipeline import ScoreOptions, score

SAMPLE = Path(__file__).resolve().parents[1] / "emsync_plugin" / "data" / "sample"


def test_the_score_is_referenced_like_the_media(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    for name in ("sample.otio", "sample.mp4"):
        shutil.copy(SAMPLE / name, folder / name)
    score(folder / "sample.otio", ScoreOptions(engine="baseline", in_place=True))
    moved = tmp_path / "moved"
    folder.rename(moved)
    timeline = otio.adapters.read_from_file(str(moved / "sample.otio"))
    urls = {c.name: c.media_reference.target_url for c in timeline.find_clips()}
    assert urls["EMSYNC Score"] == "sample.emsync.wav"
    assert all(not Path(u).is_absolute() and "://" not in u for u in urls.values())
    again = score(moved / "sample.otio", ScoreOptions(engine="baseline", in_place=True))
    assert {d.action for d in again.decisions} == {"kept"}


def test_a_marker_fcpxml_cannot_carry_is_named_not_lost_silently(tmp_path, caplog):
    from emsync_plugin.timeline.io import convert_timeline

    for name in ("sample.otio", "sample.mp4"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    convert_timeline(tmp_path / "sample.otio", tmp_path / "sample.fcpxml")
    lost = [r.getMessage() for r in caplog.records if "cannot carry" in r.getMessage()]
    assert lost and "'emsync: happy'" in lost[0] and "--emotion" in lost[0]
