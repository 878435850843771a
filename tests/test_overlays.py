"""Titles and overlays are not picture cuts (issue 13), and timecode is shown as the editor shows it.

Fixtures in tests/fixtures/overlays/ are copies of the shared fixtures with a title on a track
above V1 (see SOURCES.md there); expected frames are worked out from the files by hand.
"""
from __future__ import annotations

import json

import pytest

from emsync_plugin.cli import format_table
from emsync_plugin.timeline import Shot, build_timeline, read_cuts
from emsync_plugin.timeline.timecode import format_timecode


def frames(t, values):
    return [round(v * t.rate) for v in values]


def overlays(t):
    return [(o.track, round(o.start * t.rate), round(o.end * t.rate), o.name, o.reason) for o in t.overlays]


def test_otio_generator_title_does_not_cut(fixtures):
    # 25fps.edl's cuts 161, 361, 447 (of 496) plus V2: title 50-150, full-frame clip 200-260,
    # solid colour 300-330, adjustment layer 400-430
    t = read_cuts(fixtures / "overlays" / "title_over_v1.otio")
    assert frames(t, t.cuts) == [161, 200, 260, 300, 330, 361, 447]
    assert overlays(t) == [("V2", 50, 150, "Lower third", "title"), ("V2", 400, 430, "Grade", "adjustment layer")]
    assert len(t.scenes) == len(t.cuts) + 1


def test_track_still_chooses_one_track(fixtures):
    """With --track the chosen track's every clip cuts, titles too: no overlay rule."""
    t = read_cuts(fixtures / "overlays" / "title_over_v1.otio", track="V2")
    assert frames(t, t.cuts) == [50, 150, 200, 260, 300, 330, 400, 430]
    assert t.overlays == ()


def test_fcp7_text_generator_and_picture_in_picture(fixtures):
    # hiero_xml_export.xml (clip 14-1069, gap, clip 1085-1324) plus Video 2: Text generator
    # 100-200, full-frame clip 400-500, the clip at 20 % (Basic Motion) 600-700, colour matte 800-850
    t = read_cuts(fixtures / "overlays" / "title_over_v1.xml")
    assert t.rate == 24
    assert frames(t, t.cuts) == [14, 400, 500, 800, 850, 1069, 1085]
    assert overlays(t) == [("Video 2", 100, 200, "Lower third", "title"),
                           ("Video 2", 600, 700, "Picture in picture", "transform")]


def test_fcpxml_connected_title(fixtures):
    # fcpx_project.fcpxml plus, connected to its first clip, a <title> 2-5 s (lane 1) and a
    # clip 6-8 s (lane 2): the title is no cut, the clip cuts at 180 and 240 (30 fps)
    t = read_cuts(fixtures / "overlays" / "title_over_v1.fcpxml")
    plain = read_cuts(fixtures / "fcpxml" / "fcpx_project.fcpxml")
    assert frames(t, t.cuts) == sorted([180, 240, *frames(plain, plain.cuts)])
    assert overlays(t) == [("titles", 60, 150, "Lower third", "title")]


def test_fcpxml_connected_generators_and_transforms(fixtures):
    # title_over_v1.fcpxml plus, connected to the clip IMG_0233 at 110 s: a "Shapes" generator
    # 111-113 s (no cut), a "Custom" solid 114-115 s (cuts), an asset-clip at scale 0.3 moved to
    # 40 20 116-117 s (no cut), one at scale 1.1 centred 118-119 s (cuts). 30 fps.
    t = read_cuts(fixtures / "overlays" / "generator_over_v1.fcpxml")
    plain = read_cuts(fixtures / "overlays" / "title_over_v1.fcpxml")
    assert frames(t, t.cuts) == sorted([3420, 3450, 3540, 3570, *frames(plain, plain.cuts)])
    assert overlays(t) == [("titles", 60, 150, "Lower third", "title"), ("1", 3330, 3390, "Shapes", "generator"),
                           ("2", 3480, 3510, "Picture in picture", "transform")]


def test_fcpxml_generator_in_the_primary_storyline(fixtures, tmp_path):
    """A generator in the storyline itself is picture (over black): it reads as a shot, not a gap."""
    text = (fixtures / "overlays" / "generator_over_v1.fcpxml").read_text()
    gap = '<gap name="Gap" offset="70s" duration="10s" start="3600s"/>'
    assert gap in text
    path = tmp_path / "spine.fcpxml"
    path.write_text(text.replace(gap, '<video ref="r14" name="Shapes" offset="70s" duration="10s" start="3600s"/>', 1))
    t = read_cuts(path)
    assert [o.name for o in t.overlays] == ["Lower third", "Shapes", "Picture in picture"]


@pytest.mark.parametrize(("xml", "reason"), [
    ('<clip><adjust-transform position="10 0" scale="1 1"/></clip>', "transform"),
    ('<clip><adjust-transform position="0.2 -0.3" scale="0.5 0.5"/></clip>', ""),
    ('<clip><video ref="r2"><adjust-transform scale="0.4 1"/></video></clip>', "transform"),
    ('<clip><adjust-crop mode="trim"><trim-rect left="20"/></adjust-crop></clip>', "transform"),
    ('<clip><adjust-crop mode="crop"><crop-rect left="20"/></adjust-crop></clip>', ""),
    ('<clip><adjust-transform position="nan x" scale=""/></clip>', ""),
])
def test_fcpxml_transform_rule(xml, reason):
    import xml.etree.ElementTree as ET

    from emsync_plugin.timeline import overlay

    assert overlay.fcpx_transform_reason(ET.fromstring(xml)) == reason


def test_fcpxml_generator_kinds():
    from emsync_plugin.timeline import overlay

    apple = ".../Generators.localized/{}.localized/{}.localized/{}.motn"
    assert overlay.fcpx_generator_reason(apple.format("Solids", "Custom", "Custom"), "Custom") == ""
    assert overlay.fcpx_generator_reason(apple.format("Backgrounds", "Blobs", "Blobs"), "Blobs") == ""
    assert overlay.fcpx_generator_reason(apple.format("Elements", "Shapes", "Shapes"), "Shapes") == "generator"
    assert overlay.fcpx_generator_reason("FxPlug:1234", "Timecode") == "generator"


def test_kdenlive_title_clips(fixtures):
    # kdenlive_mixes_markers.kdenlive plus a "Titles" track: title 2-5 s over picture (no cut),
    # title 32-34 s over the black gap 31.04-37.12 s (a title card: cuts), full-frame clip
    # 60-62 s (cuts), a clip shrunk by qtblend 70-72 s (no cut). 25 fps.
    t = read_cuts(fixtures / "overlays" / "title_over_v1.kdenlive")
    plain = read_cuts(fixtures / "kdenlive" / "kdenlive_mixes_markers.kdenlive")
    assert frames(t, t.cuts) == sorted([800, 850, 1500, 1550, *frames(plain, plain.cuts)])
    assert overlays(t) == [("Titles", 50, 125, "Lower third", "title"),
                           ("Titles", 1750, 1800, "SomeNiceContent", "transform")]
    card = next(s for s in t.scenes if round(s.start * 25) == 800)
    assert card.media is None and round(card.end * 25) == 850


def test_edl_title_event_stays_a_cut(fixtures):
    """An EDL has one picture track and no overlays: a title event there is a title card."""
    t = read_cuts(fixtures / "overlays" / "title_in_edl.edl")
    assert frames(t, t.cuts) == [161, 361, 447] and t.overlays == ()


def test_title_on_the_only_track_is_a_title_card():
    t = build_timeline("t", 25, [[Shot(0, 2, None, 0, 2, "Title", False, "title"), Shot(2, 6, "a.mov", 0, 4)]])
    assert t.cuts == (2.0,) and t.overlays == ()


def test_overlay_partly_over_black():
    """Over picture the overlay is hidden, past the end of the picture below it is a title card."""
    v1 = [Shot(0, 4, "a.mov", 0, 4)]
    v2 = [Shot(0, 1, None), Shot(1, 6, None, 0, 5, "Credits", False, "title")]
    t = build_timeline("t", 25, [v1, v2], duration=8)
    assert t.cuts == (4.0, 6.0)
    assert [(o.start, o.end, o.reason) for o in t.overlays] == [(1.0, 4.0, "title")]
    assert t.scenes[0].media == "a.mov"


def test_overlays_in_json_and_table(fixtures):
    t = read_cuts(fixtures / "overlays" / "title_over_v1.otio")
    data = t.to_json()
    assert list(data)[-2:] == ["drop_frame", "overlays"]
    assert data["overlays"][0] == {"track": "V2", "start": 2.0, "end": 6.0, "name": "Lower third", "reason": "title"}
    json.dumps(data, allow_nan=False)
    table = format_table(t)
    assert "2 overlays do not cut" in table
    assert "Lower third" in table and "(title)" in table


@pytest.mark.parametrize("name", ["drop_frame_2997.xml", "drop_frame_2997.edl"])
def test_drop_frame_timelines_show_drop_frame(fixtures, name):
    """A 29.97 DF timeline starting at 01:00:00;00 was shown as 00:59:56:12."""
    t = read_cuts(fixtures / "overlays" / name)
    assert t.rate == pytest.approx(30000 / 1001) and t.drop_frame
    assert format_timecode(t.start, t.rate, t.drop_frame) == "01:00:00;00"
    assert "starts 01:00:00;00" in format_table(t)
    assert t.to_json()["drop_frame"] is True


def test_fcpxml_tc_format_df(fixtures, tmp_path):
    text = (fixtures / "overlays" / "title_over_v1.fcpxml").read_text()
    text = text.replace('frameDuration="100/3000s"', 'frameDuration="1001/30000s"')
    text = text.replace('<sequence duration="21602243/144000s" format="r1" tcStart="0s" tcFormat="NDF"',
                        '<sequence duration="21602243/144000s" format="r1" tcStart="0s" tcFormat="DF"')
    path = tmp_path / "df.fcpxml"
    path.write_text(text)
    t = read_cuts(path)
    assert t.rate == pytest.approx(30000 / 1001) and t.drop_frame


def test_non_drop_stays_non_drop(fixtures):
    for path in ("fcp7xml/hiero_xml_export.xml", "edl/25fps.edl", "fcpxml/fcpx_project.fcpxml",
                 "kdenlive/kdenlive_mixes_markers.kdenlive", "fcp7xml/empty_name_tags.xml"):
        assert not read_cuts(fixtures / path).drop_frame, path
    t = read_cuts(fixtures / "fcp7xml" / "hiero_xml_export.xml")
    assert "starts 01:00:00:00" in format_table(t)


def test_kdenlive_2997_is_drop_frame(fixtures, tmp_path):
    """Kdenlive has no project setting: it shows drop-frame whenever the profile is 30000/1001
    (kdenlive src/utils/timecode.cpp, Timecode::setFormat)."""
    text = (fixtures / "kdenlive" / "kdenlive_mixes_markers.kdenlive").read_text()
    text = text.replace('frame_rate_num="25"', 'frame_rate_num="30000"').replace('frame_rate_den="1"', 'frame_rate_den="1001"')
    path = tmp_path / "ntsc.kdenlive"
    path.write_text(text)
    assert read_cuts(path).drop_frame


def test_title_inside_a_compound_clip(tmp_path):
    """A nested stack (compound clip) is flattened: its title over its own clip is no cut."""
    import opentimelineio as otio
    from opentimelineio.opentime import RationalTime, TimeRange

    def span(n):
        return TimeRange(RationalTime(0, 25), RationalTime(n, 25))

    def clip(name, n, kind=None):
        ref = otio.schema.GeneratorReference(generator_kind=kind) if kind else otio.schema.ExternalReference(
            target_url="/media/a.mov")
        return otio.schema.Clip(name=name, media_reference=ref, source_range=span(n))

    inner = otio.schema.Stack(name="compound")
    picture, titles = otio.schema.Track(kind="Video"), otio.schema.Track(kind="Video")
    picture.append(clip("A", 100))
    titles.extend([otio.schema.Gap(source_range=span(20)), clip("Name", 30, "Text")])
    inner.extend([picture, titles])
    track = otio.schema.Track(kind="Video")
    track.extend([inner, clip("B", 50)])
    timeline = otio.schema.Timeline(name="compound")
    timeline.tracks.append(track)
    otio.adapters.write_to_file(timeline, str(tmp_path / "c.otio"))
    t = read_cuts(tmp_path / "c.otio")
    assert [round(c * 25) for c in t.cuts] == [100]
