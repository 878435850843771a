"""The editor's word on a scene's mood: ``emsync:`` markers in every format, ``--emotion``, precedence."""
from __future__ import annotations

import json
import shutil

import opentimelineio as otio
import pytest

from emsync_plugin import cli
from emsync_plugin.demo import sample_dir
from emsync_plugin.emotion import analyze, overrides
from emsync_plugin.emotion.mapping import CENTRES
from emsync_plugin.emotion.overrides import MOODS, marker_overrides, parse_cli_emotion, parse_mood
from emsync_plugin.errors import MediaError, OptionsError
from emsync_plugin.pipeline import ScoreOptions
from emsync_plugin.timeline import read_cuts
from emsync_plugin.timeline.model import Marker, Shot, build_timeline

RATE = 25


# ------------------------------------------------------------------------------ the text


@pytest.mark.parametrize("text,expected", [
    ("happy", CENTRES["happy"]),
    ("  Sad ", CENTRES["sad"]),
    ("TENSE", MOODS["tense"]),
    ("calm", MOODS["calm"]),
    ("joy", CENTRES["happy"]),  # an alias
    ("v=0.6 a=-0.3", (0.6, -0.3)),
    ("valence=0.6, arousal=-0.3", (0.6, -0.3)),
    ("a=-0.3 v=0.6", (0.6, -0.3)),
    ("0.2,0.7", (0.2, 0.7)),
    ("-1 1", (-1.0, 1.0)),
])
def test_override_forms(text, expected):
    v, a, label = parse_mood(text)
    assert (v, a) == pytest.approx(expected)
    assert label


@pytest.mark.parametrize("text,reason", [
    ("hapy", 'unknown mood "hapy" (did you mean "happy"?)'),
    ("v=3 a=0", "valence 3 is out of range"),
    ("v=3", "valence 3 is out of range"),
    ("v=0.5", "arousal is missing"),
    ("v=x a=0", 'valence "x" is not a number'),
    ("v=0.1 a=0.2 b=3", "cannot read"),
    ("", "no mood given"),
    ("0.2, 1.5", "arousal 1.5 is out of range"),
])
def test_bad_override_text_says_what_is_wrong(text, reason):
    with pytest.raises(ValueError, match=None) as err:
        parse_mood(text)
    assert reason in str(err.value)


def test_vocabulary_covers_the_face_classes_and_editor_words():
    assert set(CENTRES) <= set(MOODS)
    assert {"tense", "calm", "excited", "relaxed"} <= set(MOODS)
    assert all(-1 <= v <= 1 and -1 <= a <= 1 for v, a in MOODS.values())
    v, a = MOODS["tense"]
    assert v < 0 < a  # suspense: unpleasant and aroused
    v, a = MOODS["calm"]
    assert a < 0 < v


# ------------------------------------------------------------------------------ --emotion


def test_cli_emotion_forms():
    assert parse_cli_emotion("3=tense")[:3] == (3, *MOODS["tense"])
    assert parse_cli_emotion("5=0.2,0.7")[:3] == (5, 0.2, 0.7)
    assert parse_cli_emotion("12=v=0.1,a=-0.2")[:3] == (12, 0.1, -0.2)


@pytest.mark.parametrize("arg,reason", [
    ("3", "expected N=MOOD"),
    ("x=sad", '"x" is not a scene number'),
    ("0=sad", '"0" is not a scene number'),
    ("3=hapy", "did you mean"),
    ("5=0.2,7", "arousal 7 is out of range"),
])
def test_bad_cli_emotion_names_the_argument(arg, reason):
    with pytest.raises(OptionsError) as err:
        ScoreOptions(emotion=(arg,))
    msg = str(err.value)
    assert f"--emotion {arg}" in msg and reason in msg and "N=MOOD" in msg and "\n" not in msg


def test_cli_emotion_setting_one_scene_twice():
    ScoreOptions(emotion=("2=sad", "2=sad"))  # the same twice is fine
    with pytest.raises(OptionsError, match="--emotion 2=sad and --emotion 2=happy set scene 2 twice"):
        ScoreOptions(emotion=("2=sad", "2=happy"))
    assert ScoreOptions(emotion="4=calm").emotion == ("4=calm",)  # one string is one override



def test_split_cli_starts_an_item_at_each_scene_number():
    assert overrides.split_cli("3=tense, 5=0.2,0.7") == ("3=tense", "5=0.2,0.7")
    assert overrides.split_cli("3=tense, 5=0.2,0.7;1 = v=0.1 a=0.2\n2=sad") == (
        "3=tense", "5=0.2,0.7", "1 = v=0.1 a=0.2", "2=sad")
    assert overrides.split_cli("2=sad 1=happy") == ("2=sad", "1=happy")
    assert overrides.split_cli("3 = tense; 1=0.2, 0.7,") == ("3 = tense", "1=0.2, 0.7")
    assert overrides.split_cli("") == () and overrides.split_cli(" ,; ") == ()
    overrides.validate_cli(overrides.split_cli("3 = tense; 1=0.2, 0.7, 3=suspense"))  # suspense is tense


@pytest.mark.parametrize("items,named,reason", [
    (("1=sad", "tense"), "--emotion tense", "expected N=MOOD or N=V,A"),
    (("x=sad",), "--emotion x=sad", '"x" is not a scene number'),
    (("0=sad",), "--emotion 0=sad", '"0" is not a scene number'),
    (("-2=sad",), "--emotion -2=sad", '"-2" is not a scene number'),
    (("1.5=sad",), "--emotion 1.5=sad", '"1.5" is not a scene number'),
    (("3=",), "--emotion 3=", "no mood given"),
    (("3=gleeful",), "--emotion 3=gleeful", 'unknown mood "gleeful"'),
    (("2=sad", "4=calm", "2=0.1,0.2"), "--emotion 2=sad and --emotion 2=0.1,0.2", "set scene 2 twice"),
])
def test_validate_cli_names_the_bad_item(items, named, reason):
    with pytest.raises(OptionsError) as err:
        overrides.validate_cli(items)
    msg = str(err.value)
    assert named in msg and reason in msg and "\n" not in msg


# ------------------------------------------------------------------------------ markers in each format


def edl(tmp_path, locators: dict[int, str], name="loc.edl"):
    """Three 10 s events; ``locators`` {event: text} puts a LOC 5 s into that event's source."""
    lines = ["TITLE:   locators", "FCM: NON-DROP FRAME"]
    for i in range(3):
        src = f"0{i + 1}:00:00:00 0{i + 1}:00:10:00"
        rec = f"01:00:{i * 10:02d}:00 01:00:{(i + 1) * 10:02d}:00"
        lines += [f"00{i + 1}  SHOT{i + 1}    V     C        {src} {rec} ", f"* FROM CLIP NAME: shot{i + 1}.mov"]
        if i + 1 in locators:
            lines.append(f"* LOC: 0{i + 1}:00:05:00 YELLOW  {locators[i + 1]}")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_edl_locators_are_overrides(tmp_path):
    t = read_cuts(edl(tmp_path, {1: "emsync: sad", 3: "EMSYNC: V=0.5 A=0.2"}), rate=RATE)
    assert [m.name for m in t.markers] == ["emsync: sad", "EMSYNC: V=0.5 A=0.2"]
    found = marker_overrides(t)
    assert sorted(found) == [1, 3]
    assert (found[1].valence, found[1].arousal) == CENTRES["sad"] and found[1].source == "marker"
    assert (found[3].valence, found[3].arousal) == (0.5, 0.2)


def _otio_timeline(tmp_path):
    rt = lambda s: otio.opentime.RationalTime(s * RATE, RATE)  # noqa: E731
    rng = lambda a, d: otio.opentime.TimeRange(rt(a), rt(d))  # noqa: E731
    tl = otio.schema.Timeline("markers")
    tl.global_start_time = rt(3600)
    track = otio.schema.Track("V1", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    for name in ("a.mov", "b.mov", "c.mov"):
        ref = otio.schema.ExternalReference(target_url=str(tmp_path / name), available_range=rng(0, 100))
        clip = otio.schema.Clip(name, media_reference=ref, source_range=rng(20, 6))
        track.append(clip)
    # a clip marker on b.mov (source 22 s = 2 s into the clip = timeline 8 s), a sequence marker at 13 s
    track[1].markers.append(otio.schema.Marker(name="emsync: tense", marked_range=rng(22, 0), comment="note"))
    tl.tracks.markers.append(otio.schema.Marker(name="Scene C", marked_range=rng(13, 0), comment="emsync: v=0.2 a=-0.4"))
    tl.tracks.markers.append(otio.schema.Marker(name="just a note", marked_range=rng(2, 0)))
    return tl


def test_otio_markers_are_overrides(tmp_path):
    path = tmp_path / "m.otio"
    otio.adapters.write_to_file(_otio_timeline(tmp_path), str(path))
    found = marker_overrides(read_cuts(path))
    assert sorted(found) == [2, 3]
    assert found[2].label == "tense" and "clip marker: b.mov" in found[2].origin
    assert (found[3].valence, found[3].arousal) == (0.2, -0.4)  # from the marker's comment


def test_fcp7_xml_markers_are_overrides(tmp_path):
    path = tmp_path / "m.xml"
    otio.adapters.write_to_file(_otio_timeline(tmp_path), str(path), adapter_name="fcp_xml")
    t = read_cuts(path)
    found = marker_overrides(t)
    # the adapter keeps clip and sequence markers by name, but does not write their comments
    assert found[2].label == "tense"
    assert 3 not in found
    assert any(m.name == "Scene C" for m in t.markers)


def test_fcp7_xml_marker_comments_are_overrides(tmp_path):
    path = tmp_path / "m.xml"
    otio.adapters.write_to_file(_otio_timeline(tmp_path), str(path), adapter_name="fcp_xml")
    text = path.read_text()
    assert text.count("<name>Scene C</name>") == 1  # a comment as Premiere writes it
    path.write_text(text.replace("<name>Scene C</name>", "<name>Scene C</name><comment>emsync: v=0.2 a=-0.4</comment>"))
    found = marker_overrides(read_cuts(path))
    assert (found[3].valence, found[3].arousal) == (0.2, -0.4)


def test_fcpxml_clip_markers_are_overrides(tmp_path):
    path = tmp_path / "m.fcpxml"
    otio.adapters.write_to_file(_otio_timeline(tmp_path), str(path), adapter_name="fcpx_xml")
    found = marker_overrides(read_cuts(path))
    assert found[2].label == "tense"  # clip markers survive; the adapter drops sequence markers


def test_kdenlive_guide_is_an_override():
    t = read_cuts(sample_dir() / "sample.kdenlive")
    found = marker_overrides(t)
    assert list(found) == [3] and found[3].label == "happy" and "guide" in found[3].origin


def test_kdenlive_clip_marker_and_guide(fixtures, tmp_path):
    text = (fixtures / "kdenlive" / "kdenlive_mixes_markers.kdenlive").read_text()
    assert text.count('"comment": "Orange"') == 4  # the bin clip and its copies on the tracks
    text = text.replace('"comment": "Orange"', '"comment": "emsync: sad"')
    guides = '<property name="kdenlive:docproperties.guides">[\n]'
    assert guides in text
    text = text.replace(guides, '<property name="kdenlive:docproperties.guides">[\n'
                                '{"comment": "emsync: v=0.5 a=-0.5", "pos": 2000, "type": 0}\n]')
    path = tmp_path / "mixes.kdenlive"
    path.write_text(text)
    t = read_cuts(path)
    found = marker_overrides(t)
    by_origin = {o.source + ":" + o.origin.split("(")[-1]: (i, o) for i, o in found.items()}
    sad = next((i, o) for i, o in found.items() if o.label == "sad")
    guide = next((i, o) for i, o in found.items() if "guide" in o.origin)
    assert "clip marker" in sad[1].origin
    s = t.scenes[sad[0] - 1]
    assert s.start <= 19.84 < s.end  # the clip marker's place on the timeline (see test_kdenlive)
    g = t.scenes[guide[0] - 1]
    assert g.start <= 80.0 < g.end and (guide[1].valence, guide[1].arousal) == (0.5, -0.5)
    assert len(by_origin) == 2


# ------------------------------------------------------------------------------ errors name the marker


def _timeline(markers, scenes=((0, 10), (10, 20), (20, 30)), start=3600.0):
    shots = [Shot(a, b, f"/nowhere/{i}.mov", 0.0, b - a) for i, (a, b) in enumerate(scenes)]
    return build_timeline("t", RATE, [shots], start=start, markers=markers, format="otio")


def test_bad_marker_names_the_marker_and_the_forms():
    t = _timeline([Marker(17.0, "emsync: hapy", "", "guide")])
    with pytest.raises(OptionsError) as err:
        marker_overrides(t)
    msg = str(err.value)
    assert 'marker "emsync: hapy" at 01:00:17:00 (17.000 s, guide)' in msg
    assert 'did you mean "happy"' in msg
    assert '"emsync: MOOD"' in msg and '"emsync: v=V a=A"' in msg and "\n" not in msg


def test_out_of_range_marker_value():
    t = _timeline([Marker(3.0, "EMSYNC: v=3", "", "clip marker: a.mov")])
    with pytest.raises(OptionsError, match=r'marker "EMSYNC: v=3" at 01:00:03:00 .*clip marker: a.mov.*valence 3 is out'):
        marker_overrides(t)


def test_two_markers_disagreeing_in_one_scene():
    t = _timeline([Marker(11.0, "emsync: sad", "", "guide"), Marker(15.0, "emsync: happy", "", "guide")])
    with pytest.raises(OptionsError, match="both set the mood of scene 2"):
        marker_overrides(t)
    t = _timeline([Marker(11.0, "emsync: sad", "", "guide"), Marker(15.0, "emsync: sadness", "", "guide")])
    assert marker_overrides(t)[2].label == "sad"  # agreeing markers are fine


def test_name_and_comment_disagreeing():
    t = _timeline([Marker(5.0, "emsync: sad", "emsync: happy", "timeline")])
    with pytest.raises(OptionsError, match="name says .* comment says"):
        marker_overrides(t)


def test_marker_on_a_cut_belongs_to_the_scene_that_starts_there(caplog):
    t = _timeline([Marker(10.0, "emsync: calm", "", "guide"), Marker(30.0, "emsync: sad", "", "guide"),
                   Marker(45.0, "emsync: happy", "", "guide"), Marker(4.0, "not emsync: happy", "", "guide")])
    found = marker_overrides(t)
    assert sorted(found) == [2, 3]  # 30.0 is the timeline's end: the last scene
    assert any("outside the timeline" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------ precedence


def test_precedence_cli_over_markers_over_whole_timeline(tmp_path):
    t = read_cuts(edl(tmp_path, {1: "emsync: sad", 2: "emsync: happy"}), rate=RATE)
    moods = analyze.estimate(t, emotion=("2=tense", "3=0.1,0.2"), valence=0.9, arousal=-0.9)
    assert [m.source for m in moods] == ["marker", "cli", "cli"]
    assert (moods[0].valence, moods[0].arousal) == CENTRES["sad"]
    assert (moods[1].valence, moods[1].arousal) == MOODS["tense"] and moods[1].label == "tense"
    assert (moods[2].valence, moods[2].arousal) == (0.1, 0.2)
    moods = analyze.estimate(t, valence=0.9, arousal=-0.9)
    assert [(m.source, m.valence, m.arousal) for m in moods][2] == ("cli", 0.9, -0.9)
    assert moods[0].source == "marker"  # a marker beats the whole-timeline values


def test_no_media_anywhere_needs_an_override(tmp_path):
    t = read_cuts(edl(tmp_path, {}), rate=RATE)  # EDLs name no media files
    with pytest.raises(MediaError, match="names no media files.*--valence and --arousal.*--emotion"):
        analyze.estimate(t)
    # one marked scene: the others (no picture to analyse) carry its mood on
    t = read_cuts(edl(tmp_path, {2: "emsync: calm"}), rate=RATE)
    moods = analyze.estimate(t)
    assert [m.source for m in moods] == ["default", "marker", "default"]
    assert {(m.valence, m.arousal) for m in moods} == {MOODS["calm"]}


def test_missing_media_is_fine_where_overridden(tmp_path):
    t = _timeline([Marker(5.0, "emsync: sad", "", "guide")])
    with pytest.raises(MediaError) as err:
        analyze.estimate(t, emotion=("2=calm",))
    msg = str(err.value)
    assert "/nowhere/2.mov" in msg and "scene 3" in msg and "relink" in msg.lower() and "--emotion N=" in msg
    moods = analyze.estimate(t, emotion=("2=calm", "3=excited"))
    assert [m.source for m in moods] == ["marker", "cli", "cli"]


def test_cli_scene_number_is_checked_against_the_timeline(tmp_path, capsys):
    path = edl(tmp_path, {})
    assert cli.main(["analyze", str(path), "--rate", "25", "--emotion", "9=sad"]) == 2
    err = capsys.readouterr().err
    assert "--emotion 9=sad" in err and "has 3 scenes" in err and len(err.strip().splitlines()) == 1


def test_analyze_json_with_overrides_only(tmp_path, capsys):
    path = edl(tmp_path, {1: "emsync: surprise"})
    code = cli.main(["-q", "analyze", str(path), "--rate", "25", "--json", "--emotion", "3=0.3,-0.2"])
    assert code == 0
    scenes = json.loads(capsys.readouterr().out)["scenes"]
    assert [set(s) for s in scenes] == [{"index", "start", "end", "probs", "valence", "arousal", "source"}] * 3
    assert [s["source"] for s in scenes] == ["marker", "default", "cli"]
    assert scenes[2]["valence"] == 0.3 and scenes[2]["arousal"] == -0.2


def test_bad_marker_stops_score_with_one_line(tmp_path, capsys):
    path = tmp_path / "bad.otio"
    tl = _otio_timeline(tmp_path)
    tl.tracks.markers.append(otio.schema.Marker(name="emsync: furious", marked_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(5 * RATE, RATE), otio.opentime.RationalTime(0, RATE))))
    otio.adapters.write_to_file(tl, str(path))
    code = cli.main(["score", str(path), "--engine", "baseline", "--valence", "0", "--arousal", "0"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("emsync: error:")]
    assert code == 2 and len(errors) == 1 and 'marker "emsync: furious" at 01:00:05:00' in errors[0]
    assert not list(tmp_path.glob("*.wav"))


def test_sample_markers_in_every_sample_format(tmp_path):
    """The sample's "emsync: happy" guide/marker lands on the face scene in both shipped files."""
    for name in ("sample.otio", "sample.kdenlive"):
        shutil.copy(sample_dir() / name, tmp_path / name)
        found = overrides.marker_overrides(read_cuts(tmp_path / name))
        assert list(found) == [3] and found[3].label == "happy", name
