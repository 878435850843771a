"""Every shared fixture is read, and its cuts equal values derived here independently.

Expected values come from the files themselves, not from emsync: EDL record timecodes,
FCP 7 XML <start>/<end> elements, FCPXML offsets, worked out by hand (see each comment) or,
for the big FCP 7 files, by a separate plain-XML reading in this test.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from emsync_plugin.errors import TimelineError
from emsync_plugin.timeline import read_cuts


def tc(text: str, rate: int) -> int:
    """Frames of a non-drop timecode."""
    h, m, s, f = (int(x) for x in text.replace(";", ":").split(":"))
    return ((h * 60 + m) * 60 + s) * rate + f


# name -> (rate, start seconds, cut frames, duration frames)
EDL_EXPECTED = {
    # record 00:00:00:00-06:11, -14:11, -17:22, -19:21; frame fields up to 24 -> 25 fps
    "25fps.edl": (25, 0.0, [161, 361, 447], 496),
    # record 00:59:53:11-54:18 (31 f), 54:18-56:20 (50 f)
    "avid_example.edl": (24, tc("00:59:53:11", 24) / 24, [31], 81),
    "premiere_example.edl": (24, tc("00:59:53:11", 24) / 24, [31], 81),
    # A 0-9, dissolve A->B 9-19 (midpoint 14), B 19-20 continues B's source (08:18): a through
    # edit, not a cut
    "dissolve_test.edl": (24, 3600.0, [14], 20),
    # 0-1:00, gap, 1:16-2:16, gap, 4:06-5:06 -> edges 24, 40, 64, 102; end 126
    "gap_test.edl": (24, 0.0, [24, 40, 64, 102], 126),
    # record from 01:00:48:20: 0-106, 106-180, dissolve 180-206 (26 f, midpoint 193), 253, 408
    "transition_duration.edl": (24, tc("01:00:48:20", 24) / 24, [106, 193, 253], 408),
}


@pytest.mark.parametrize("name", sorted(EDL_EXPECTED))
def test_edl_cuts(fixtures, name):
    rate, start, cuts, duration = EDL_EXPECTED[name]
    t = read_cuts(fixtures / "edl" / name)
    assert t.rate == rate
    assert t.start == pytest.approx(start)
    assert [round(c * rate, 6) for c in t.cuts] == cuts
    assert round(t.duration * rate, 6) == duration
    assert len(t.scenes) == len(cuts) + 1


def test_edl_rate_inference_is_logged_and_overridable(fixtures, caplog):
    read_cuts(fixtures / "edl" / "25fps.edl")
    assert any("inferred 25.000 fps" in r.getMessage() for r in caplog.records)
    t = read_cuts(fixtures / "edl" / "gap_test.edl", rate=30)
    assert [round(c * 30) for c in t.cuts] == [30, 46, 76, 126]  # 1:00, 1:16, 2:16, 4:06 at 30 fps


def test_edl_with_no_fitting_rate_says_pass_rate(fixtures, tmp_path):
    bad = tmp_path / "bad.edl"
    bad.write_text((fixtures / "edl" / "gap_test.edl").read_text().replace("00:00:01:16", "00:00:01:61"))
    with pytest.raises(TimelineError, match=r"bad\.edl.*--rate"):
        read_cuts(bad)
    with pytest.raises(TimelineError, match="--rate"):
        read_cuts(fixtures / "edl" / "25fps.edl", rate=24)


def test_audio_only_edl_has_no_video_track(fixtures):
    with pytest.raises(TimelineError, match=r"multi_audio\.edl: has no video track"):
        read_cuts(fixtures / "edl" / "multi_audio.edl")


def test_hiero_fcp7(fixtures):
    # <timecode> 01:00:00:00 at 24; clip 14-1069, gap, clip 1085-1324
    t = read_cuts(fixtures / "fcp7xml" / "hiero_xml_export.xml")
    assert t.rate == 24 and t.start == 3600.0
    assert [round(c * 24) for c in t.cuts] == [14, 1069, 1085]
    assert round(t.duration * 24) == 1324
    assert t.scenes[0].media is None  # leading gap is black
    assert Path(t.scenes[1].media).name == "A160C005_171213_R0MN.mxf"  # the clip's <pathurl>


def test_premiere_fcp7_transitions_titles_nested(fixtures):
    # V1: 536-636. V2: 13-113, 165-322, 322-(fade 538-557, midpoint 547.5 -> 548), nested
    # sequence 636-956. V3: title 15-956 (Premiere writes its titles as a "Slug" with
    # <alphatype>straight</alphatype>): an overlay, so no cut at 15 where it comes in over V2's
    # clip (issue 13); over black (113-165, and the nested sequence has no picture of its own)
    # it is a title card. V4: 956-(dissolve 1152-1177, midpoint 1164.5 -> 1165)-1246. Audio
    # runs to 1271.
    t = read_cuts(fixtures / "fcp7xml" / "premiere_example.xml")
    assert t.rate == 30 and t.start == 0.0
    assert [round(c * 30) for c in t.cuts] == [13, 113, 165, 322, 536, 548, 636, 956, 1165, 1246]
    assert round(t.duration * 30) == 1271
    assert [(o.track, round(o.start * 30), round(o.end * 30), o.name, o.reason) for o in t.overlays] == [
        ("V3", 15, 113, "test_title", "title"), ("V3", 165, 636, "test_title", "title")]
    assert not t.drop_frame  # <displayformat>NDF</displayformat>


def test_premiere_fcp7_markers(fixtures):
    t = read_cuts(fixtures / "fcp7xml" / "premiere_example.xml")
    assert len(t.markers) >= 3


def _fcp7_union(path):
    """Independent reading: <start>/<end> of items on enabled video tracks, via plain XML."""
    seq = ET.parse(path).getroot().find(".//sequence")
    points, end = set(), 0
    for track in seq.find("media/video").findall("track"):
        if track.findtext("enabled", "TRUE") == "FALSE":
            continue
        for item in track:
            if item.tag not in ("clipitem", "generatoritem"):
                continue
            a, b = int(item.findtext("start")), int(item.findtext("end"))
            points.update(x for x in (a, b) if x >= 0)
            end = max(end, b)
    return points, end


def test_empty_name_tags_fcp7_ntsc(fixtures):
    path = fixtures / "fcp7xml" / "empty_name_tags.xml"
    points, end = _fcp7_union(path)
    t = read_cuts(path)
    assert t.rate == pytest.approx(24000 / 1001)
    assert [round(c * t.rate) for c in t.cuts] == sorted(p for p in points if 0 < p < end)
    assert round(t.duration * t.rate) == end == 3517
    assert len(t.cuts) == 33


def test_kdenlive_written_fcp7(fixtures):
    path = fixtures / "kdenlive" / "kdenlive_example_from_fcp.xml"
    points, end = _fcp7_union(path)
    # one edit (frame 1735) splits a clip whose source runs on (in/out contiguous): a through
    # edit, invisible, so not a cut. Found by reading the clip items' <in>/<start>/<end>
    # (at 10748 the <out> says contiguous, but the placed length skips one source frame: a cut).
    seq = ET.parse(path).getroot().find(".//sequence")
    items = [i for i in seq.find("media/video").findall("track")[0] if i.tag == "clipitem"]
    through = {
        int(a.findtext("end"))
        for a, b in zip(items, items[1:])
        if a.find("file").get("id") == b.find("file").get("id")
        and a.findtext("end") == b.findtext("start")
        # a shows source frames in .. in + (end - start); b must go on from the next one
        and int(a.findtext("in")) + int(a.findtext("end")) - int(a.findtext("start")) == int(b.findtext("in"))
    }
    assert through == {1735}
    t = read_cuts(path)
    assert t.rate == pytest.approx(30000 / 1001)
    assert [round(c * t.rate) for c in t.cuts] == sorted(p for p in points if 0 < p < end and p not in through)
    assert len(t.cuts) == 65


@pytest.mark.parametrize("name", ["fcpx_project.fcpxml", "fcpx_example.fcpxml"])
def test_fcpxml_connected_and_compound_clips(fixtures, name):
    # spine: IMG_0715 0-10 s (dissolve 9.5-10.5, midpoint 10), gaps to 80 s with connected
    # clips: lane 1 20-30 s; lane 1 spine 50-59.5-69 s (dissolve midpoint 59.5); lane 2
    # 64.567-74.567 s (offset 108137/30 - 3600 + 60). Compound 80-110 s from 3.633 s into it:
    # IMG_0233 to 86.367, black, connected IMG_0268 96.367-106.367, black. Then 110, 120, 130,
    # compound again 140-148.1 (IMG_0233 from 1.9 s), black to 150. Frames at 30 fps:
    expected = [300, 600, 900, 1500, 1785, 1937, 2070, 2237, 2400, 2591, 2891, 3191, 3300, 3600, 3900, 4200, 4443]
    t = read_cuts(fixtures / "fcpxml" / name)
    assert t.rate == 30
    assert [round(c * 30) for c in t.cuts] == expected
    assert round(t.duration * 30) == 4500


def test_fcp7_with_no_video_track(fixtures):
    with pytest.raises(TimelineError, match="sample_just_track.xml: has no video track"):
        read_cuts(fixtures / "fcp7xml" / "sample_just_track.xml")


def test_track_selection(fixtures):
    path = fixtures / "fcp7xml" / "premiere_example.xml"
    v4 = read_cuts(path, track="V4")
    assert [round(c * 30) for c in v4.cuts] == [956, 1165, 1246]
    assert read_cuts(path, track="4").cuts == v4.cuts
    with pytest.raises(TimelineError, match="V9.*Pick one of: V1, V2, V3, V4"):
        read_cuts(path, track="V9")


def test_every_fixture_is_read(fixtures):
    """Each file under shared/fixtures gives a timeline or a specific, explained error."""
    expected_errors = {"multi_audio.edl", "sample_just_track.xml"}
    files = [p for p in sorted(fixtures.rglob("*")) if p.is_file() and p.suffix != ".md"]
    assert len(files) >= 17
    for path in files:
        if path.name in expected_errors:
            with pytest.raises(TimelineError, match="no video track"):
                read_cuts(path)
            continue
        t = read_cuts(path)
        assert t.duration > 0 and len(t.scenes) == len(t.cuts) + 1, path
        assert all(0 < c < t.duration for c in t.cuts), path
        json.dumps(t.to_json())
