"""A bare video file as a timeline: shots from PySceneDetect (4 s minimum, as EMSYNC)."""
from __future__ import annotations

import json
import shutil

import av
import numpy as np
import opentimelineio as otio
import pytest

from emsync_plugin import cli
from emsync_plugin.demo import sample_dir
from emsync_plugin.errors import MediaError
from emsync_plugin.timeline import read_cuts


def make_video(path, shots, rate=25, size=(160, 90)):
    """Solid-colour shots: [(seconds, (r, g, b)), ...], with a quiet tone for sound."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("mpeg4", rate=rate)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        for seconds, colour in shots:
            frame = np.zeros((size[1], size[0], 3), np.uint8)
            frame[:] = colour
            for _ in range(int(round(seconds * rate))):
                for packet in v.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
        for packet in v.encode():
            out.mux(packet)


def test_sample_video_shots_are_the_source_shots():
    recorded = json.loads((sample_dir() / "sample.json").read_text())
    t = read_cuts(sample_dir() / "sample.mp4")
    # the sample's source shots (scripts/make_sample.py): 0-8, 8-13, 13-22, 22-29, 29-35, 35-39.6, 39.6-48
    assert list(t.cuts) == pytest.approx([8.0, 13.0, 22.0, 29.0, 35.0, 39.6], abs=1 / 25)
    assert t.duration == pytest.approx(48.0, abs=0.05)
    assert t.rate == 25
    assert all(s.media.endswith("sample.mp4") and s.source_start == pytest.approx(s.start) for s in t.scenes)
    # and they are not the edit's cuts: the edit reorders and trims them
    assert list(read_cuts(sample_dir() / "sample.otio").cuts) != list(t.cuts)
    assert recorded["scenes"]


def test_short_shots_are_merged(tmp_path):
    f = tmp_path / "flash.mp4"
    make_video(f, [(5, (200, 0, 0)), (1, (0, 0, 200)), (5, (255, 255, 255))])
    # red->blue at 5 s is a cut; blue->white at 6 s would leave a 1 s shot: merged (4 s minimum)
    assert list(read_cuts(f).cuts) == pytest.approx([5.0], abs=1 / 25)
    from emsync_plugin.timeline.video import detect_shots

    assert detect_shots(f, 25, min_scene=0.5) == pytest.approx([5.0, 6.0], abs=1 / 25)


def test_score_a_video_writes_an_otio_timeline(tmp_path, capsys):
    f = tmp_path / "clip.mp4"
    make_video(f, [(5, (200, 0, 0)), (5, (0, 0, 200))])  # red -> blue: a clear cut
    assert cli.main(["-q", "score", str(f), "--engine", "baseline"]) == 0
    out = tmp_path / "clip.emsync.otio"
    t = otio.adapters.read_from_file(str(out))
    assert [tr.name for tr in t.tracks] == ["V1", "A1", "EMSYNC Score"]
    assert [round(c.range_in_parent().start_time.to_seconds(), 2) for c in t.tracks[0]] == [0.0, 5.0]
    assert list(read_cuts(out).cuts) == pytest.approx([5.0])


def test_undecodable_video_is_a_media_error(tmp_path):
    f = tmp_path / "noise.mov"
    f.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match="noise.mov.*re-encode"):
        read_cuts(f)


def test_missing_media_is_named(tmp_path, capsys):
    shutil.copy(sample_dir() / "sample.otio", tmp_path / "moved.otio")  # its sample.mp4 is not there
    # scene emotion needs the pictures: one line naming the file and the fix
    assert cli.main(["score", str(tmp_path / "moved.otio"), "--engine", "baseline"]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and str(tmp_path / "sample.mp4") in err and "relink" in err.lower()
    # with the mood given for the whole timeline the score is made, with a warning
    assert cli.main(["score", str(tmp_path / "moved.otio"), "--engine", "baseline", "--valence", "0.3", "--arousal", "0"]) == 0
    err = capsys.readouterr().err
    assert "missing" in err and str(tmp_path / "sample.mp4") in err and "relink" in err
