"""Tests of the Kdenlive (MLT XML) reader and writer.

The expected cuts of the fixtures were derived by hand from the XML (see the comments of each
``EXPECTED_*``), not by running the reader. All fixtures are 25 fps, so a clock time in the
file is ``seconds * 25`` frames. MLT counts ``<entry in out>`` inclusively: an entry covers
``out - in + 1`` frames; ``<blank length>`` is a plain length.
"""
from __future__ import annotations

import json
import shutil
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import pytest

from emsync_plugin.errors import EmsyncError, TimelineError
from emsync_plugin.timeline import kdenlive
from emsync_plugin.timeline.model import Marker, ScoreTrack, build_timeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from kdenlive_maker import write_project  # noqa: E402 - a script beside make_sample.py, not part of the plugin

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "kdenlive"
V19 = FIXTURES / "kdenlive_example_v191180.kdenlive"  # Kdenlive 19.11.80, document version 0.99
V22 = FIXTURES / "kdenlive_example_v221170.kdenlive"  # Kdenlive 22.11.70, document version 1.04
MIXES = FIXTURES / "kdenlive_mixes_markers.kdenlive"  # 22.11.70, 1.04: same-track mixes, markers
FCP = FIXTURES / "kdenlive_example_from_fcp.xml"  # FCP7 XML (another reader's job)
ALL = [V19, V22, MIXES]

RATE = 25


def f2s(frames: int, rate: Fraction | int = RATE) -> float:
    """Seconds of a frame number (rounded like the model's snapping)."""
    return round(float(Fraction(frames) / Fraction(rate)), 9)


# --- kdenlive_example_v191180 / v221170 (same timeline in both files) -------------------------
# Main tractor: black_track, tractor0 (A, "Ambience"), tractor1 (A), tractor2 (A), tractor3
# ("Wide", hide="audio" -> video V1), tractor4 ("Close", video V2). Root is /opt/kdenlive.
#
# V1 "Wide" = playlist6:
#   entry producer0 (colour clip 0x2a3158ff) in 0 out 00:00:02.920 (73)  -> 74 frames  [0, 74)
#   entry producer10 VID0001.MKV in 00:00:06.640 (166) out 00:00:15.320 (383) -> 218 [74, 292)
#   blank 00:00:06.640 = 166                                                    -> gap [292, 458)
#   entry producer10 in 00:00:20.320 (508) out 00:00:35.200 (880) -> 373        [458, 831)
# V2 "Close" = playlist8:
#   entry producer6 (kdenlivetitle) in 0 out 73 -> [0, 74); blank 00:00:08.720 = 218 -> [74, 292)
#   entry producer11 VID0002.MKV in 00:00:03.800 (95) out 00:00:10.400 (260) -> 166 [292, 458)
#   blank 00:00:03.720 = 93 -> [458, 551)
#   entry producer12 VID0003.MKV in 0 out 00:00:08.080 (202) -> 203 [551, 754)
# Audio: playlist0 producer7 in 00:00:27.920 (698) out 00:01:02.360 (1559) -> 862 [0, 862);
#   playlist2 ends at 213+245+57+269 = 784, playlist4 at 74+218+166+373 = 831.
# Duration = 862 frames = 34.48 s (the longest track is the audio of playlist0).
# Cuts = union of both video tracks' edges below 862: 74, 292, 458, 551, 754, 831 (V1 ends).
EXPECTED_V19_TRACKS = {
    "Wide": [(0, 74, None, None), (74, 292, "/opt/kdenlive/VID0001.MKV", 166), (292, 458, None, None),
             (458, 831, "/opt/kdenlive/VID0001.MKV", 508)],
    "Close": [(0, 74, None, None), (74, 292, None, None), (292, 458, "/opt/kdenlive/VID0002.MKV", 95),
              (458, 551, None, None), (551, 754, "/opt/kdenlive/VID0003.MKV", 0)],
}
EXPECTED_V19_CUTS = [74, 292, 458, 551, 754, 831]
EXPECTED_V19_FRAMES = 862
# v221170 only adds guides in main_bin's kdenlive:docproperties.guides JSON:
#   {"comment": "Purple Marker", "pos": 230} -> 9.2 s, {"comment": "Green", "pos": 466} -> 18.64 s
EXPECTED_V22_GUIDES = [(230, "Purple Marker"), (466, "Green")]

# --- kdenlive_mixes_markers --------------------------------------------------------------------
# Main tractor tractor4: black_track, tractor0 (audio "A3"), tractor1 (audio "A2"),
# tractor2 ("Nothing", video V1), tractor3 ("With Mix", video V2). Root /opt/kdenlive.
#
# V1 "Nothing" = playlist4 (playlist5 empty), media myClip.mp4:
#   in 0 out 00:00:14.000 (350) -> 351 [0, 351)      | in 01:50.160 (2754) out 02:07.120 (3178)
#   -> 425 [351, 776) | blank 06.080 = 152 [776, 928) | in 37.640 (941) out 53.360 (1334) -> 394
#   [928, 1322) | in 01:06.560 (1664) out 01:32.440 (2311) -> 648 [1322, 1970) | in 53.400 (1335)
#   out 01:06.520 (1663) -> 329 [1970, 2299) | in 14.040 (351) out 22.520 (563) -> 213
#   [2299, 2512) | blank 152 [2512, 2664) | in 22.560 (564) out 37.600 (940) -> 377 [2664, 3041)
#   | in 01:32.480 (2312) out 01:50.120 (2753) -> 442 [3041, 3483)
# V2 "With Mix": playlist6 (sub-track a) and playlist7 (sub-track b) overlap under 5 luma mixes.
#   playlist6: in 0 out 14.480 (362) [0, 363) | blank 22.600=565 | in 941 out 53.360 (1334)
#     [928, 1322) | blank 25.920=648 | in 1335 out 01:10.480 (1762) [1970, 2398) | blank
#     10.640=266 | in 564 out 1010 [2664, 3111)
#   playlist7: blank 13.520=338 | in 2741 out 3178 [338, 776) | blank 20.840=521 | in 1639 out
#     2336 [1297, 1995) | blank 7.560=189 | in 236 out 563 [2184, 2512) | blank 19.400=485 |
#     in 2268 out 2753 [2997, 3483)
#   Mixes (transition in/out) and their midpoints (in + out) // 2:
#     transition5 338..363  -> 350   (pl6 clip 1 ends, pl7 clip 1 starts)
#     transition6 1297..1322 -> 1309 (pl6 clip 2 -> pl7 clip 2)
#     transition7 1970..1995 -> 1982 (pl7 clip 2 -> pl6 clip 3; reverse=1)
#     transition8 2184..2398 -> 2291 (pl6 clip 3 -> pl7 clip 3; mixcut 99 is NOT the cut)
#     transition9 2997..3111 -> 3054 (pl6 clip 4 -> pl7 clip 4)
#   So V2 = [0,350) src 0 | [350,776) src 2741+12=2753 | gap [776,928) | [928,1309) src 941 |
#     [1309,1982) src 1639+12=1651 | [1982,2291) src 1335+12=1347 | [2291,2512) src 236+107=343 |
#     gap [2512,2664) | [2664,3054) src 564 | [3054,3483) src 2268+57=2325
# Audio tracks end at 3111 / 3483 (playlist1) and 3483 (playlist2): duration 3483 = 139.32 s.
# Cuts: V1 {351, 776, 928, 1322, 1970, 2299, 2512, 2664, 3041} u V2 {350, 776, 928, 1309, 1982,
#   2291, 2512, 2664, 3054} = 14 cuts (350 and 351 are one frame apart: two cuts).
CLIP = "/opt/kdenlive/myClip.mp4"
EXPECTED_MIX_TRACKS = {
    "Nothing": [(0, 351, CLIP, 0), (351, 776, CLIP, 2754), (776, 928, None, None), (928, 1322, CLIP, 941),
                (1322, 1970, CLIP, 1664), (1970, 2299, CLIP, 1335), (2299, 2512, CLIP, 351),
                (2512, 2664, None, None), (2664, 3041, CLIP, 564), (3041, 3483, CLIP, 2312)],
    "With Mix": [(0, 350, CLIP, 0), (350, 776, CLIP, 2753), (776, 928, None, None), (928, 1309, CLIP, 941),
                 (1309, 1982, CLIP, 1651), (1982, 2291, CLIP, 1347), (2291, 2512, CLIP, 343),
                 (2512, 2664, None, None), (2664, 3054, CLIP, 564), (3054, 3483, CLIP, 2325)],
}
EXPECTED_MIX_CUTS = [350, 351, 776, 928, 1309, 1322, 1970, 1982, 2291, 2299, 2512, 2664, 3041, 3054]
EXPECTED_MIX_FRAMES = 3483
# Clip markers: the bin clip producer2 (kdenlive:id 2) has kdenlive:markers "Lila" pos 1782 and
# "Orange" pos 2899 (source frames). Placements on the video tracks holding them:
#   Orange 2899: V1 [351,776) from 2754 -> 351 + 145 = 496; V2 pl7 [338,776) from 2741 -> 338 +
#     158 = 496 (same frame, one marker) -> 19.84 s
#   Lila 1782: V1 [1322,1970) from 1664 -> 1322 + 118 = 1440; V2 pl7 [1297,1995) from 1639 ->
#     1297 + 143 = 1440 -> 57.6 s
# No other placement's source range holds 1782 or 2899. Guides: the JSON list is empty.
EXPECTED_MIX_MARKERS = [(496, "Orange"), (1440, "Lila")]


def shots_in_frames(track) -> list[tuple]:
    """(start, end, media, source start) of a track's shots, in frames at 25 fps."""
    return [(round(s.start * RATE), round(s.end * RATE), s.media,
             None if s.source_start is None else round(s.source_start * RATE)) for s in track.shots]


def cuts_in_frames(edit) -> list[int]:
    timeline = build_timeline(edit.name, edit.rate, [t.shots for t in edit.tracks if t.enabled],
                              duration=edit.duration, markers=edit.markers)
    return [round(c * edit.rate) for c in timeline.cuts]


# ----------------------------------------------------------------------------------------------
# Reading the fixtures
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [V19, V22])
def test_read_examples(path):
    edit = kdenlive.read(path)
    assert edit.format == "kdenlive" and edit.rate == 25.0 and edit.start == 0.0
    assert edit.name == path.stem and edit.path == path
    assert [t.name for t in edit.tracks] == ["Wide", "Close"]  # V1 (bottom) first
    assert all(t.enabled for t in edit.tracks)
    for track in edit.tracks:
        assert shots_in_frames(track) == EXPECTED_V19_TRACKS[track.name]
    assert edit.duration == f2s(EXPECTED_V19_FRAMES)
    assert cuts_in_frames(edit) == EXPECTED_V19_CUTS
    wide = edit.tracks[0].shots[1]
    assert wide.source_end == f2s(166 + 218) and wide.name == "Wide"  # source range in seconds
    assert edit.tracks[0].shots[0].name == "Dark Blue"  # the colour clip: a named media-less shot


def test_read_guides_v22():
    edit = kdenlive.read(V22)
    assert [(m.time, m.name, m.origin) for m in edit.markers] == [
        (f2s(pos), text, "guide") for pos, text in EXPECTED_V22_GUIDES]
    assert kdenlive.read(V19).markers == ()  # 19.11 file: no guides, no clip markers


def test_read_mixes_cut_at_midpoint():
    edit = kdenlive.read(MIXES)
    assert [t.name for t in edit.tracks] == ["Nothing", "With Mix"]
    for track in edit.tracks:
        assert shots_in_frames(track) == EXPECTED_MIX_TRACKS[track.name], track.name
    assert edit.duration == f2s(EXPECTED_MIX_FRAMES) == 139.32
    assert cuts_in_frames(edit) == EXPECTED_MIX_CUTS
    assert len(EXPECTED_MIX_CUTS) == 14


def test_read_clip_markers():
    edit = kdenlive.read(MIXES)
    assert [(m.time, m.name) for m in edit.markers] == [(f2s(f), n) for f, n in EXPECTED_MIX_MARKERS]
    assert {m.origin for m in edit.markers} == {"clip marker: SomeNiceContent"}


def test_read_legacy_guides(tmp_path):
    """Before 19.04 guides were main_bin properties named by their time in seconds."""
    text = V19.read_text(encoding="utf-8").replace(
        '<property name="xml_retain">1</property>',
        '<property name="kdenlive:guide.12.52">Old guide</property>\n  <property name="xml_retain">1</property>', 1)
    path = tmp_path / "legacy.kdenlive"
    path.write_text(text, encoding="utf-8")
    assert [(m.time, m.name, m.origin) for m in kdenlive.read(path).markers] == [(12.52, "Old guide", "guide")]  # 313 frames


def test_read_timewarp(tmp_path):
    """A clip at double speed covers twice its length of media."""
    text = V22.read_text(encoding="utf-8")
    head, sep, tail = text.partition('<producer title="Anonymous Submission" id="producer12"')
    body, end, rest = tail.partition("</producer>")
    body = body.replace('<property name="resource">VID0003.MKV</property>',
                        '<property name="resource">2:VID0003.MKV</property>\n'
                        '  <property name="warp_speed">2</property>\n'
                        '  <property name="warp_resource">VID0003.MKV</property>')
    body = body.replace('<property name="mlt_service">avformat-novalidate</property>',
                        '<property name="mlt_service">timewarp</property>')
    path = tmp_path / "warp.kdenlive"
    path.write_text(head + sep + body + end + rest, encoding="utf-8")
    shot = kdenlive.read(path).tracks[1].shots[-1]
    # entry in 0 out 202 (203 frames) of the warped producer: 406 frames of VID0003 = 16.24 s
    assert (shot.media, shot.source_start, shot.source_end) == ("/opt/kdenlive/VID0003.MKV", 0.0, 16.24)
    assert (round(shot.start * RATE), round(shot.end * RATE)) == (551, 754)


def test_read_does_not_modify(tmp_path):
    before = MIXES.read_bytes()
    kdenlive.read(MIXES)
    assert MIXES.read_bytes() == before


# ----------------------------------------------------------------------------------------------
# Time values
# ----------------------------------------------------------------------------------------------


def test_parse_time_formats():
    pal, ntsc = Fraction(25), Fraction(30000, 1001)
    assert kdenlive.parse_time("362", pal) == 362
    assert kdenlive.parse_time("00:00:14.480", pal) == 362
    assert kdenlive.parse_time("00:00:14,480", pal) == 362
    assert kdenlive.parse_time("00:02:07.120", pal) == 3178
    assert kdenlive.parse_time("00:00:14:12", pal) == 362  # SMPTE
    assert kdenlive.parse_time("00:00:01.001", ntsc) == 30
    assert kdenlive.parse_time("00:01:00;02", ntsc) == 1800  # drop frame: ;00 and ;01 skipped
    with pytest.raises(ValueError):
        kdenlive.parse_time("soon", pal)


def test_clock_round_trips():
    assert kdenlive.clock(362, Fraction(25)) == "00:00:14.480"
    assert kdenlive.clock(90000, Fraction(25)) == "01:00:00.000"
    for rate in (Fraction(24), Fraction(30000, 1001), Fraction(60000, 1001), Fraction(50)):
        for frames in (0, 1, 29, 30, 1799, 1800, 107892, 215784):
            assert kdenlive.parse_time(kdenlive.clock(frames, rate), rate) == frames


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE mlt [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<mlt><profile frame_rate_num="25" frame_rate_den="1"/><playlist id="main_bin">&lol9;</playlist></mlt>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE mlt [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<mlt><profile frame_rate_num="25" frame_rate_den="1"/><playlist id="main_bin">&secret;</playlist></mlt>
"""


def _error(path: Path) -> TimelineError:
    with pytest.raises(TimelineError) as info:
        kdenlive.read(path)
    error = info.value
    assert isinstance(error, EmsyncError) and error.path == path
    assert str(path) in str(error) and "\n" not in str(error)
    return error


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_entity_attacks_refused(tmp_path, payload):
    path = tmp_path / "attack.kdenlive"
    path.write_bytes(payload)
    error = _error(path)
    assert "entity" in str(error)


def test_truncated_file(tmp_path):
    data = V22.read_bytes()
    path = tmp_path / "cut short.kdenlive"
    path.write_bytes(data[: len(data) // 2])
    error = _error(path)
    assert "truncated" in str(error)
    assert error.hint


@pytest.mark.parametrize("payload", [b"this is not XML at all\n", b"\x00\x01\x02\xff\xfe", b""],
                         ids=["text", "binary", "empty"])
def test_not_xml(tmp_path, payload):
    path = tmp_path / "notes.kdenlive"
    path.write_bytes(payload)
    _error(path)


def test_not_a_kdenlive_document(tmp_path):
    error = _error(FCP)  # an FCP7 <xmeml> file
    assert "not a Kdenlive project" in str(error)
    path = tmp_path / "other.kdenlive"
    path.write_text("<?xml version='1.0'?><fcpxml version='1.9'/>")
    _error(path)


def test_no_video_track(tmp_path):
    text = V22.read_text(encoding="utf-8")
    for track in ('<track producer="tractor3"/>', '<track producer="tractor4"/>'):  # the two video tracks
        assert track in text
        text = text.replace(track, "")
    path = tmp_path / "audio only.kdenlive"
    path.write_text(text, encoding="utf-8")
    error = _error(path)
    assert "no video track" in str(error)


def test_missing_file_and_missing_profile(tmp_path):
    _error(tmp_path / "nope.kdenlive")
    path = tmp_path / "noprofile.kdenlive"
    path.write_text("<mlt><playlist id='main_bin'/><tractor id='t'/></mlt>")
    _error(path)


def test_missing_producer(tmp_path):
    text = V22.read_text(encoding="utf-8").replace('producer="producer11"', 'producer="gone"')
    path = tmp_path / "broken.kdenlive"
    path.write_text(text, encoding="utf-8")
    assert "gone" in str(_error(path))


# ----------------------------------------------------------------------------------------------
# A Kdenlive 23+ document (version 1.1) with two sequences, one nested in the other
# ----------------------------------------------------------------------------------------------

OUTER, INNER = "{0b4a3a1e-6a0b-4e0e-9a1d-1a2b3c4d5e6f}", "{9e8d7c6b-5a49-4838-a726-15f4e3d2c1b0}"
# 29.97 fps. Times are mixed on purpose: frame numbers, clocks ("00:00:01.001" = 30 frames).
#   Inner sequence, V1 = pl_in: chain3 (b.mov) 0..59 -> [0, 60) src 0; chain3 100..139 -> [60, 100)
#   Outer sequence:
#     V1 = pl_v1: blank 00:00:01.001 (30) | chain2 (a.mp4) in 100 out 199 -> [30, 130) src 100 |
#          the inner sequence in 20 out 79 -> [130, 190): inner [20, 60) = b.mov from 20 ->
#          [130, 170); inner [60, 80) = b.mov from 100 -> [170, 190)
#     V2 = pl_v2, hidden (hide="both"): chain2 0..9 [0, 10) -> disabled, no cut
#     A1 = pl_a1: chain4 (a.mp4 audio) 0..249 -> [0, 250): duration 250 frames
#   Cuts: 30, 130, 170, 190 (V1 ends before the audio). Guide "Intro" at 45 (sequence guides).
#   Clip marker "beat" at source 120 of a.mp4 (bin chain0, kdenlive:id 4): V1 place [30,130)
#   from 100 -> 30 + 20 = 50. The hidden V2 place (source 0..9) does not hold it.
SEQUENCE_DOC = f"""<?xml version='1.0' encoding='utf-8'?>
<mlt LC_NUMERIC="C" producer="main_bin" version="7.22.0" root="/media/project">
 <profile description="HD 720p 29.97 fps" width="1280" height="720" progressive="1" sample_aspect_num="1"
  sample_aspect_den="1" display_aspect_num="16" display_aspect_den="9" frame_rate_num="30000" frame_rate_den="1001"
  colorspace="709"/>
 <chain id="chain0" out="00:00:10.010">
  <property name="length">301</property>
  <property name="resource">a.mp4</property>
  <property name="mlt_service">avformat-novalidate</property>
  <property name="kdenlive:clipname">Take A</property>
  <property name="kdenlive:id">4</property>
  <property name="kdenlive:markers">[{{"comment": "beat", "pos": 120, "type": 1}}]</property>
 </chain>
 <chain id="chain1" out="299">
  <property name="length">300</property>
  <property name="resource">/footage/b.mov</property>
  <property name="mlt_service">avformat-novalidate</property>
  <property name="kdenlive:id">5</property>
 </chain>
 <producer id="producer0" in="0" out="2000">
  <property name="length">2147483647</property>
  <property name="resource">black</property>
  <property name="mlt_service">color</property>
  <property name="kdenlive:playlistid">black_track</property>
 </producer>
 <chain id="chain3" out="299">
  <property name="length">300</property>
  <property name="resource">/footage/b.mov</property>
  <property name="mlt_service">avformat-novalidate</property>
  <property name="kdenlive:id">5</property>
  <property name="set.test_audio">1</property>
 </chain>
 <playlist id="pl_in">
  <entry producer="chain3" in="0" out="59"><property name="kdenlive:id">5</property></entry>
  <entry producer="chain3" in="100" out="139"><property name="kdenlive:id">5</property></entry>
 </playlist>
 <playlist id="pl_in_b"/>
 <tractor id="tr_in" in="0" out="99">
  <track hide="audio" producer="pl_in"/>
  <track hide="audio" producer="pl_in_b"/>
 </tractor>
 <tractor id="{INNER}" in="0" out="99">
  <property name="kdenlive:uuid">{INNER}</property>
  <property name="kdenlive:clipname">Inner</property>
  <property name="kdenlive:producer_type">17</property>
  <property name="kdenlive:id">6</property>
  <property name="kdenlive:sequenceproperties.guides">[]</property>
  <track producer="producer0"/>
  <track producer="tr_in"/>
 </tractor>
 <producer id="producer1" in="0" out="2000">
  <property name="length">2147483647</property>
  <property name="resource">black</property>
  <property name="mlt_service">color</property>
  <property name="kdenlive:playlistid">black_track</property>
 </producer>
 <chain id="chain2" out="300">
  <property name="length">301</property>
  <property name="resource">a.mp4</property>
  <property name="mlt_service">avformat-novalidate</property>
  <property name="kdenlive:id">4</property>
  <property name="set.test_audio">1</property>
 </chain>
 <chain id="chain4" out="300">
  <property name="length">301</property>
  <property name="resource">a.mp4</property>
  <property name="mlt_service">avformat-novalidate</property>
  <property name="kdenlive:id">4</property>
  <property name="set.test_image">1</property>
 </chain>
 <playlist id="pl_a1">
  <property name="kdenlive:audio_track">1</property>
  <entry producer="chain4" in="0" out="249"><property name="kdenlive:id">4</property></entry>
 </playlist>
 <playlist id="pl_a1_b"><property name="kdenlive:audio_track">1</property></playlist>
 <tractor id="tr_a1" in="0" out="249">
  <property name="kdenlive:audio_track">1</property>
  <track hide="video" producer="pl_a1"/>
  <track hide="video" producer="pl_a1_b"/>
 </tractor>
 <playlist id="pl_v1">
  <blank length="00:00:01.001"/>
  <entry producer="chain2" in="100" out="199"><property name="kdenlive:id">4</property></entry>
  <entry producer="{INNER}" in="20" out="79"><property name="kdenlive:id">6</property></entry>
 </playlist>
 <playlist id="pl_v1_b"/>
 <tractor id="tr_v1" in="0" out="189">
  <track hide="audio" producer="pl_v1"/>
  <track hide="audio" producer="pl_v1_b"/>
 </tractor>
 <playlist id="pl_v2">
  <entry producer="chain2" in="0" out="9"><property name="kdenlive:id">4</property></entry>
 </playlist>
 <playlist id="pl_v2_b"/>
 <tractor id="tr_v2" in="0" out="9">
  <property name="kdenlive:track_name">Hidden</property>
  <track hide="both" producer="pl_v2"/>
  <track hide="both" producer="pl_v2_b"/>
 </tractor>
 <tractor id="{OUTER}" in="0" out="249">
  <property name="kdenlive:uuid">{OUTER}</property>
  <property name="kdenlive:clipname">Main edit</property>
  <property name="kdenlive:producer_type">17</property>
  <property name="kdenlive:id">7</property>
  <property name="kdenlive:sequenceproperties.tracksCount">3</property>
  <property name="kdenlive:sequenceproperties.audioTarget">0</property>
  <property name="kdenlive:sequenceproperties.groups">[{{"children": [{{"data": "0:0", "leaf": "clip", "type": "Leaf"}},
   {{"data": "1:30", "leaf": "clip", "type": "Leaf"}}], "type": "AVSplit"}}]</property>
  <property name="kdenlive:sequenceproperties.guides">[{{"comment": "Intro", "pos": 45, "type": 0}}]</property>
  <track producer="producer1"/>
  <track producer="tr_a1"/>
  <track producer="tr_v1"/>
  <track producer="tr_v2"/>
  <transition id="transition0">
   <property name="a_track">0</property><property name="b_track">1</property>
   <property name="mlt_service">mix</property><property name="internal_added">237</property>
  </transition>
  <transition id="transition1">
   <property name="a_track">0</property><property name="b_track">2</property>
   <property name="mlt_service">qtblend</property><property name="internal_added">237</property>
  </transition>
  <transition id="transition2">
   <property name="a_track">0</property><property name="b_track">3</property>
   <property name="mlt_service">qtblend</property><property name="internal_added">237</property>
  </transition>
 </tractor>
 <playlist id="main_bin">
  <property name="kdenlive:docproperties.version">1.1</property>
  <property name="kdenlive:docproperties.uuid">{OUTER}</property>
  <property name="kdenlive:docproperties.opensequences">{OUTER};{INNER}</property>
  <property name="kdenlive:docproperties.activetimeline">{OUTER}</property>
  <property name="kdenlive:docproperties.guides">[{{"comment": "stale", "pos": 1, "type": 0}}]</property>
  <property name="xml_retain">1</property>
  <entry producer="chain0" in="0" out="300"/>
  <entry producer="chain1" in="0" out="299"/>
  <entry producer="{INNER}" in="0" out="99"/>
  <entry producer="{OUTER}" in="0" out="249"/>
 </playlist>
 <tractor id="tractor9" in="0" out="249">
  <property name="kdenlive:projectTractor">1</property>
  <track producer="{OUTER}" in="0" out="249"/>
 </tractor>
</mlt>
"""
NTSC = Fraction(30000, 1001)


@pytest.fixture
def sequence_doc(tmp_path) -> Path:
    path = tmp_path / "sequences.kdenlive"
    path.write_text(SEQUENCE_DOC, encoding="utf-8")
    return path


def test_read_sequences(sequence_doc):
    edit = kdenlive.read(sequence_doc)
    assert edit.name == "Main edit"  # two sequences: the open one's name
    assert edit.rate == pytest.approx(29.97002997)
    assert [(t.name, t.enabled) for t in edit.tracks] == [("V1", True), ("Hidden", False)]
    v1 = edit.tracks[0].shots
    frames = [(round(s.start * NTSC), round(s.end * NTSC), s.media,
               None if s.source_start is None else round(s.source_start * NTSC)) for s in v1]
    assert frames == [(0, 30, None, None), (30, 130, "/media/project/a.mp4", 100),
                      (130, 170, "/footage/b.mov", 20), (170, 190, "/footage/b.mov", 100)]
    assert v1[1].name == "Take A"
    assert edit.duration == f2s(250, NTSC)
    timeline = build_timeline(edit.name, edit.rate, [t.shots for t in edit.tracks if t.enabled],
                              duration=edit.duration)
    assert [round(c * NTSC) for c in timeline.cuts] == [30, 130, 170, 190]
    assert [(round(m.time * NTSC), m.name, m.origin) for m in edit.markers] == [
        (45, "Intro", "guide"), (50, "beat", "clip marker: Take A")]


def test_read_other_sequence(sequence_doc):
    edit = kdenlive.read(sequence_doc, sequence="Inner")
    assert edit.name == "Inner" and edit.duration == f2s(100, NTSC)
    assert [(round(s.start * NTSC), round(s.end * NTSC)) for s in edit.tracks[0].shots] == [(0, 60), (60, 100)]
    assert edit.markers == ()
    assert kdenlive.read(sequence_doc, sequence=INNER.strip("{}")).name == "Inner"
    with pytest.raises(TimelineError, match="no sequence named"):
        kdenlive.read(sequence_doc, sequence="Nope")


# ----------------------------------------------------------------------------------------------
# Writing the score back
# ----------------------------------------------------------------------------------------------


def _prop(element, name):
    for p in element.iterfind("property"):
        if p.get("name") == name:
            return p.text or ""
    return None


class Doc:
    """Independent look at a written document (plain ElementTree, not the module under test)."""

    def __init__(self, path: Path, timeline_id: str | None = None):
        self.root = ET.parse(path).getroot()
        self.by_id = {e.get("id"): e for e in self.root if e.get("id")}
        if timeline_id is None:  # pre-1.1: the tractor no other tractor uses as a track
            used = {t.get("producer") for tr in self.root.iterfind("tractor") for t in tr.iterfind("track")}
            timeline_id = [t.get("id") for t in self.root.iterfind("tractor") if t.get("id") not in used][-1]
        self.timeline = self.by_id[timeline_id]
        self.track_ids = [t.get("producer") for t in self.timeline.iterfind("track")]

    def score_tracks(self, name="EMSYNC Score"):
        return [self.by_id[i] for i in self.track_ids if _prop(self.by_id[i], "kdenlive:track_name") == name]

    def transitions(self):
        """(service, a track id, b track id) of the timeline's transitions."""
        return sorted((_prop(t, "mlt_service"), self.track_ids[int(_prop(t, "a_track"))],
                       self.track_ids[int(_prop(t, "b_track"))]) for t in self.timeline.iterfind("transition"))

    def groups(self, holder, name):
        """Group leaves as (track id, position): Kdenlive counts tracks without the black one."""
        raw = _prop(holder, name)
        leaves = []

        def walk(node):
            if isinstance(node, list):
                for n in node:
                    walk(n)
            elif isinstance(node, dict):
                if node.get("type") == "Leaf":
                    track, pos = node["data"].split(":")
                    leaves.append((self.track_ids[int(track) + 1], int(pos)))
                for c in node.get("children", []):
                    walk(c)
        walk(json.loads(raw) if raw else [])
        return sorted(leaves)


def _score(tmp_path, edit, metadata=None) -> ScoreTrack:
    return ScoreTrack(wav=tmp_path / "score.wav", midi=tmp_path / "score.mid", duration=edit.duration,
                      metadata=metadata or {"version": "0.1.0", "seed": 7})


def _check_score_track(doc: Doc, score: ScoreTrack, rate: Fraction, element_tag: str) -> None:
    tracks = doc.score_tracks(score.name)
    assert len(tracks) == 1
    track = tracks[0]
    assert _prop(track, "kdenlive:audio_track") == "1"
    subs = track.findall("track")
    assert len(subs) == 2 and all(s.get("hide") == "video" for s in subs)
    playlists = [doc.by_id[s.get("producer")] for s in subs]
    entries = playlists[0].findall("entry")
    assert len(entries) == 1 and not playlists[1].findall("entry")
    entry = entries[0]
    frames = round(Fraction(score.duration) * rate)
    assert kdenlive.parse_time(entry.get("in"), rate) == 0
    assert kdenlive.parse_time(entry.get("out"), rate) == frames - 1  # inclusive: covers the duration
    assert playlists[0].find("blank") is None  # starts at the timeline's start
    clip = doc.by_id[entry.get("producer")]
    assert clip.tag == element_tag
    assert _prop(clip, "resource") == str(score.wav)
    kid = _prop(entry, "kdenlive:id")
    assert kid and _prop(clip, "kdenlive:id") == kid
    # The bin lists a clip with the same kdenlive:id and the WAV.
    main_bin = doc.by_id["main_bin"]
    bin_clips = [doc.by_id[e.get("producer")] for e in main_bin.iterfind("entry")]
    assert [_prop(c, "resource") for c in bin_clips if _prop(c, "kdenlive:id") == kid] == [str(score.wav)]
    # metadata, with the MIDI path, on the track
    meta = json.loads(_prop(track, "kdenlive:emsync"))
    assert meta["midi"] == str(score.midi) and meta["wav"] == str(score.wav)
    assert {k: meta[k] for k in score.metadata} == score.metadata
    # the track's audio is mixed in, like Kdenlive's own audio tracks
    index = doc.track_ids.index(track.get("id"))
    assert ("mix", doc.track_ids[0], track.get("id")) in doc.transitions()
    assert index >= 1


@pytest.mark.parametrize("fixture", ALL, ids=lambda p: p.stem)
def test_write_round_trip(tmp_path, fixture):
    source = tmp_path / fixture.name
    shutil.copyfile(fixture, source)
    original_bytes = source.read_bytes()
    original = kdenlive.read(source)
    score = _score(tmp_path, original)

    first = kdenlive.write(source, tmp_path / "scored.kdenlive", score)
    assert first == tmp_path / "scored.kdenlive"
    assert source.read_bytes() == original_bytes  # the source is untouched
    written = kdenlive.read(first)
    assert written.tracks == original.tracks  # every video track and cut unchanged
    assert written.markers == original.markers
    assert written.duration == original.duration and written.rate == original.rate
    assert cuts_in_frames(written) == cuts_in_frames(original)
    doc, before = Doc(first), Doc(source)
    _check_score_track(doc, score, Fraction(25), "producer")  # these documents use <producer>
    # Every other track is still there, in order, and every transition and group still points
    # at the same tracks although the track numbers moved up by one.
    assert [i for i in doc.track_ids if i not in {t.get("id") for t in doc.score_tracks()}] == before.track_ids
    new_mix = ("mix", doc.track_ids[0], doc.score_tracks()[0].get("id"))
    assert sorted(t for t in doc.transitions() if t != new_mix) == before.transitions()
    groups = "kdenlive:docproperties.groups"
    assert doc.groups(doc.by_id["main_bin"], groups) == before.groups(before.by_id["main_bin"], groups)
    assert doc.groups(doc.by_id["main_bin"], groups)  # (the fixtures do have groups)

    # Writing again (a re-run on the written file) replaces the track instead of adding one.
    second = kdenlive.write(first, tmp_path / "scored twice.kdenlive", _score(tmp_path, original, {"seed": 8}))
    doc2 = Doc(second)
    assert len(doc2.score_tracks()) == 1 and len(doc2.track_ids) == len(doc.track_ids)
    assert json.loads(_prop(doc2.score_tracks()[0], "kdenlive:emsync"))["seed"] == 8
    assert doc2.transitions() == doc.transitions()
    assert kdenlive.read(second).tracks == original.tracks
    # no stale score clips left behind: one WAV clip in the bin, one on the track
    with_wav = [e for e in doc2.root if _prop(e, "resource") == str(score.wav)]
    assert len(with_wav) == 2


def test_write_in_place_keeps_backup(tmp_path):
    source = tmp_path / "project.kdenlive"
    shutil.copyfile(V22, source)
    edit = kdenlive.read(source)
    kdenlive.write(source, source, _score(tmp_path, edit))
    backups = list(tmp_path.glob("project.*.bak.kdenlive"))
    assert len(backups) == 1 and backups[0].read_bytes() == V22.read_bytes()
    assert len(Doc(source).score_tracks()) == 1
    assert not list(tmp_path.glob(".project.*"))  # no temporary file left


def test_write_sequence_document(tmp_path, sequence_doc):
    original = kdenlive.read(sequence_doc)
    score = _score(tmp_path, original)
    out = kdenlive.write(sequence_doc, tmp_path / "out.kdenlive", score)
    written = kdenlive.read(out)
    assert written.tracks == original.tracks and written.markers == original.markers
    doc = Doc(out, OUTER)
    _check_score_track(doc, score, NTSC, "chain")  # the document uses chains: so does the score
    assert doc.track_ids[1] == doc.score_tracks()[0].get("id")  # the bottom audio track
    assert _prop(doc.timeline, "kdenlive:sequenceproperties.tracksCount") == "4"
    assert _prop(doc.timeline, "kdenlive:sequenceproperties.audioTarget") == "1"  # still on A1
    before = Doc(sequence_doc, OUTER)
    groups = "kdenlive:sequenceproperties.groups"
    assert doc.groups(doc.timeline, groups) == before.groups(before.timeline, groups) == [
        ("tr_a1", 0), ("tr_v1", 30)]
    assert Doc(out, INNER).track_ids == Doc(sequence_doc, INNER).track_ids  # other sequence untouched
    again = kdenlive.write(out, out, score)
    assert len(Doc(again, OUTER).score_tracks()) == 1


def test_write_rejects_bad_input(tmp_path):
    edit = kdenlive.read(V22)
    with pytest.raises(EmsyncError):
        kdenlive.write(V22, tmp_path / "x.kdenlive", ScoreTrack(tmp_path / "s.wav", tmp_path / "s.mid", 0.0, {}))
    bad = tmp_path / "bad.kdenlive"
    bad.write_bytes(BILLION_LAUGHS)
    with pytest.raises(TimelineError):
        kdenlive.write(bad, tmp_path / "y.kdenlive", _score(tmp_path, edit))
    assert not (tmp_path / "x.kdenlive").exists() and not (tmp_path / "y.kdenlive").exists()


# ----------------------------------------------------------------------------------------------
# New projects
# ----------------------------------------------------------------------------------------------


def test_write_project(tmp_path):
    folder = tmp_path / "sample"
    (folder / "media").mkdir(parents=True)
    inside, outside = folder / "media" / "shot.mp4", tmp_path / "elsewhere.mp4"  # need not exist
    path = write_project(
        folder / "sample.kdenlive", name="Sample", rate_num=24000, rate_den=1001, width=640, height=360,
        clips=[(str(inside), 1.0, 3.0), (str(outside), 0.0, 1.5), (str(inside), 10.0, 10.5)],
        guides=[Marker(2.0, "Drop")])
    rate = Fraction(24000, 1001)
    root = ET.parse(path).getroot()
    assert "root" not in root.attrib  # resolved against the project's folder
    resources = {_prop(c, "resource") for c in root.iterfind("chain")}
    assert resources == {"media/shot.mp4", outside.as_posix()}
    assert _prop(root.find("playlist[@id='main_bin']"), "kdenlive:docproperties.version") == "1.1"

    edit = kdenlive.read(path)
    expected = [(round(1.0 * rate), round(3.0 * rate)), (round(0.0 * rate), round(1.5 * rate)),
                (round(10.0 * rate), round(10.5 * rate))]
    lengths = [b - a for a, b in expected]
    starts = [0, lengths[0], lengths[0] + lengths[1]]
    (track,) = edit.tracks
    assert [(round(s.start * rate), round(s.end * rate)) for s in track.shots] == [
        (s, s + n) for s, n in zip(starts, lengths)]
    assert [s.media for s in track.shots] == [str(inside), str(outside), str(inside)]
    assert [round(s.source_start * rate) for s in track.shots] == [a for a, _ in expected]
    assert edit.duration == f2s(sum(lengths), rate)
    assert [(round(m.time * rate), m.name) for m in edit.markers] == [(round(2.0 * rate), "Drop")]

    # The folder can move: relative media follow it.
    moved = tmp_path / "moved"
    shutil.copytree(folder, moved)
    assert kdenlive.read(moved / "sample.kdenlive").tracks[0].shots[0].media == str(moved / "media" / "shot.mp4")

    with pytest.raises(EmsyncError):
        write_project(tmp_path / "bad.kdenlive", name="x", rate_num=25, rate_den=1, width=320,
                               height=180, clips=[(str(inside), 2.0, 1.0)])
