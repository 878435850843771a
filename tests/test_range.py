"""Scoring part of a timeline: --in/--out (issue 13, part 3)."""
from __future__ import annotations

import shutil
from pathlib import Path

import opentimelineio as otio
import pytest
import soundfile

from emsync_plugin.errors import OptionsError
from emsync_plugin.pipeline import ScoreOptions, score
from emsync_plugin.timeline import read_cuts
from emsync_plugin.timeline.io import read_score_tracks
from emsync_plugin.timeline.span import crop, position

SAMPLE = Path(__file__).resolve().parents[1] / "emsync_plugin" / "data" / "sample"


@pytest.fixture
def folder(tmp_path) -> Path:
    for name in ("sample.otio", "sample.kdenlive", "sample.mp4"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    return tmp_path


def test_position_reads_seconds_and_timeline_timecode():
    t = read_cuts(SAMPLE / "sample.otio")  # starts at 01:00:00:00, 25 fps
    assert position("12.5", t) == 12.5
    assert position("01:00:10:05", t) == pytest.approx(10.2)
    with pytest.raises(OptionsError, match="--out 1:2"):
        position("1:2", t, "--out")


def test_crop_clips_scenes_and_keeps_their_source():
    t = read_cuts(SAMPLE / "sample.otio")
    part = crop(t, 10.0, 30.5)
    assert part.duration == pytest.approx(20.52)  # 30.5 s is frame 762.5: halves round up
    assert part.start == pytest.approx(t.start + 10.0)
    assert part.cuts == pytest.approx([c - 10.0 for c in t.cuts if 10.0 < c < 30.52])
    first = part.scenes[0]
    whole = next(s for s in t.scenes if s.start <= 10.0 < s.end)
    assert (first.index, first.start) == (1, 0.0)
    assert first.source_start == pytest.approx(whole.source_start + 10.0 - whole.start)
    with pytest.raises(OptionsError, match="is not a range"):
        crop(t, 30.0, 10.0)


def test_a_range_is_scored_exactly_and_placed_at_its_in_point(folder):
    result = score(folder / "sample.otio", ScoreOptions(engine="baseline", range_in="01:00:10:00", range_out=30.0,
                                                         output=folder / "part.otio"))
    audio, sr = soundfile.read(result.wav)
    assert len(audio) == 20 * sr  # exactly out - in
    written = otio.adapters.read_from_file(str(folder / "part.otio"))
    track = next(t for t in written.tracks if t.name == "EMSYNC Score")
    gap, clip = list(track)
    assert isinstance(gap, otio.schema.Gap) and gap.duration().to_seconds() == pytest.approx(10.0)
    assert clip.duration().to_seconds() == pytest.approx(20.0)
    assert read_cuts(folder / "part.otio").duration == pytest.approx(read_cuts(folder / "sample.otio").duration)


def test_a_range_in_kdenlive_starts_with_a_blank(folder):
    result = score(folder / "sample.kdenlive", ScoreOptions(engine="baseline", range_in=10.0, range_out=30.0,
                                                              output=folder / "part.kdenlive"))
    text = (folder / "part.kdenlive").read_text()
    assert '<blank length="00:00:10.000"/>' in text
    assert [t.name for t in read_score_tracks(folder / "part.kdenlive")] == ["EMSYNC Score"]
    assert read_cuts(result.output).duration == pytest.approx(read_cuts(folder / "sample.kdenlive").duration)


def _melt(project: Path, out: Path):
    import melt_runner

    melt_runner.render(project, out)
    audio, sr = soundfile.read(out)
    return audio.mean(axis=1), sr


@pytest.mark.skipif(shutil.which("melt") is None, reason="melt not installed (the README's test command installs it)")
def test_melt_plays_the_range_score_from_its_in_point_only(folder):
    import numpy as np

    score(folder / "sample.kdenlive", ScoreOptions(engine="baseline", range_in=10.0, range_out=30.0,
                                                  output=folder / "part.kdenlive"))
    with_score, sr = _melt(folder / "part.kdenlive", folder / "with.wav")
    without, _ = _melt(folder / "sample.kdenlive", folder / "without.wav")
    added = with_score - without
    assert np.max(np.abs(added[: int(9.9 * sr)])) < 1e-4 and np.max(np.abs(added[int(30.1 * sr):])) < 1e-4
    ref = soundfile.read(folder / "part.wav")[0].mean(axis=1)
    placed = added[int(10 * sr): int(10 * sr) + len(ref)]
    assert np.corrcoef(placed, ref[: len(placed)])[0, 1] > 0.99
