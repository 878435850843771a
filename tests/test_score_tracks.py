"""Several score tracks (takes, stems) on every writable format: muted flags, ducking keyframes,
re-runs replacing exactly emsync's own tracks, and what the readers see of them (issue 12)."""
from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
from defusedxml.ElementTree import fromstring, parse

from emsync_plugin.timeline import ScoreTrack, ScoreTrackInfo, read_cuts, read_score_tracks, write_timeline
from emsync_plugin.timeline.kdenlive_xml import parse_time

SAMPLE = Path(__file__).resolve().parents[1] / "emsync_plugin" / "data" / "sample"
GAIN = ((0.0, 0.0), (20.0, 0.0), (20.2, -12.0), (27.0, -12.0), (27.8, 0.0))


def takes(tmp_path: Path, duration: float, n: int = 3, *, gain=GAIN) -> list[ScoreTrack]:
    """Take 1 audible with ducking keyframes, the others muted (as ``--takes`` writes them)."""
    return [
        ScoreTrack(wav=tmp_path / f"s.take{i}.wav", midi=tmp_path / f"s.take{i}.mid", duration=duration,
                   metadata={"engine": "baseline", "take": i, "sidecar": str(tmp_path / "s.json")},
                   name=f"EMSYNC Score take {i}", muted=i > 1, gain=gain if i == 1 else ())
        for i in range(1, n + 1)
    ]


def copy_sample(tmp_path: Path, suffix: str, fixtures: Path | None = None) -> Path:
    if suffix == ".kdenlive":
        shutil.copy(SAMPLE / "sample.kdenlive", tmp_path / "sample.kdenlive")
        return tmp_path / "sample.kdenlive"
    if suffix == ".otio":
        shutil.copy(SAMPLE / "sample.otio", tmp_path / "sample.otio")
        return tmp_path / "sample.otio"
    assert fixtures is not None
    name = {".xml": "fcp7xml/premiere_example.xml", ".fcpxml": "fcpxml/fcpx_project.fcpxml"}[suffix]
    shutil.copy(fixtures / name, tmp_path / Path(name).name)
    return tmp_path / Path(name).name


def other_audio(path: Path) -> list:
    """The editor's audio tracks as OTIO reads them (emsync's left out): kind and item count."""
    from emsync_plugin.timeline.otio_io import ADAPTERS, is_emsync_track, load

    timeline = load(path, ADAPTERS[path.suffix][0])
    return [(t.kind, len(t)) for t in timeline.tracks if not is_emsync_track(t)]


@pytest.mark.parametrize("suffix", [".otio", ".xml", ".fcpxml", ".kdenlive"])
def test_takes_written_muted_and_replaced_by_one(fixtures, tmp_path, suffix):
    src = copy_sample(tmp_path, suffix, fixtures)
    timeline = read_cuts(src)
    out = write_timeline(timeline, tmp_path / f"scored{suffix}", takes(tmp_path, timeline.duration))
    found = read_score_tracks(out)
    assert [t.name for t in found] == ["EMSYNC Score take 1", "EMSYNC Score take 2", "EMSYNC Score take 3"]
    assert [t.muted for t in found] == [False, True, True]  # every format here has a mute flag
    assert [str(t.metadata.get("take")) for t in found] == ["1", "2", "3"]
    assert all(t.metadata["sidecar"] == str(tmp_path / "s.json") for t in found)
    again = read_cuts(out)
    assert again.cuts == timeline.cuts and again.duration == pytest.approx(timeline.duration)
    assert again.audio == timeline.audio  # the editor's audio, not the score tracks
    if suffix != ".kdenlive":
        assert other_audio(out) == other_audio(src)

    # a re-run with one track replaces all three and nothing else
    one = [ScoreTrack(tmp_path / "s.wav", tmp_path / "s.mid", timeline.duration, {"engine": "baseline"})]
    final = write_timeline(again, tmp_path / f"rescored{suffix}", one)
    assert read_score_tracks(final) == [ScoreTrackInfo("EMSYNC Score", False, read_score_tracks(final)[0].metadata)]
    assert read_cuts(final).audio == timeline.audio
    if suffix != ".kdenlive":
        assert other_audio(final) == other_audio(src)
    else:
        assert final.read_text().count("EMSYNC Score take") == 0


def test_otio_keeps_gain_keyframes_and_enabled_flags(tmp_path):
    src = copy_sample(tmp_path, ".otio")
    timeline = read_cuts(src)
    out = write_timeline(timeline, tmp_path / "scored.otio", takes(tmp_path, timeline.duration))
    result = otio.adapters.read_from_file(str(out))
    ours = [t for t in result.tracks if t.name.startswith("EMSYNC Score")]
    assert [t.enabled for t in ours] == [True, False, False]
    clip = next(iter(ours[0].find_clips()))
    assert [list(k) for k in clip.metadata["emsync"]["gain"]] == [list(k) for k in GAIN]
    assert "gain" not in next(iter(ours[1].find_clips())).metadata["emsync"]
    assert read_score_tracks(out)[0].metadata["take"] == 1


def test_fcp7_track_enabled_and_fcpxml_disabled_clips(fixtures, tmp_path):
    for suffix in (".xml", ".fcpxml"):
        src = copy_sample(tmp_path, suffix, fixtures)
        out = write_timeline(read_cuts(src), tmp_path / f"scored{suffix}", takes(tmp_path, read_cuts(src).duration))
        text = out.read_text()
        if suffix == ".xml":
            assert text.count("<enabled>FALSE</enabled>") == 2
        else:
            assert text.count('enabled="0"') == 2
            assert 'name="EMSYNC Score take 1" enabled' not in text


def test_kdenlive_mute_and_disabled_volume_filter(tmp_path):
    src = copy_sample(tmp_path, ".kdenlive")
    timeline = read_cuts(src)
    out = write_timeline(timeline, tmp_path / "scored.kdenlive", takes(tmp_path, timeline.duration))
    root = parse(out).getroot()
    props = {}
    by_id = {e.get("id"): e for e in root}
    tracks = [e for e in root.iter("tractor")
              if any(p.get("name") == "kdenlive:track_name" and (p.text or "").startswith("EMSYNC Score")
                     for p in e.iterfind("property"))]
    for t in tracks:
        name = next(p.text for p in t.iterfind("property") if p.get("name") == "kdenlive:track_name")
        props[name] = {sub.get("hide") for sub in t.iterfind("track")}
    assert props == {"EMSYNC Score take 1": {"video"}, "EMSYNC Score take 2": {"both"},
                     "EMSYNC Score take 3": {"both"}}
    filters = [f for f in root.iter("filter")
               if any(p.get("name") == "kdenlive_id" and p.text == "volume" for p in f.iterfind("property"))]
    assert len(filters) == 1
    values = {p.get("name"): p.text for p in filters[0].iterfind("property")}
    assert values["disable"] == "1" and values["mlt_service"] == "volume"
    rate = Fraction(25)
    keys = [(parse_time(k.split("=")[0], rate), float(k.split("=")[1])) for k in values["level"].split(";")]
    assert keys == [(round(t * 25), db) for t, db in GAIN]
    # the filter sits on the score clip placed on take 1's track
    playlist = by_id[next(t for t in tracks if "take 1" in json.dumps([p.text for p in t.iterfind("property")]))
                     .find("track").get("producer")]
    instance = by_id[playlist.find("entry").get("producer")]
    assert filters[0] in list(instance)


@pytest.mark.parametrize("suffix", [".otio", ".kdenlive"])
def test_duration_ignores_an_old_longer_score_track(tmp_path, suffix):
    """Scene 4 shortened by 1 s after scoring: no 1 s black tail scene from the old score."""
    src = copy_sample(tmp_path, suffix)
    before = read_cuts(src)
    one = ScoreTrack(tmp_path / "s.wav", tmp_path / "s.mid", before.duration, {"engine": "baseline"})
    scored = write_timeline(before, tmp_path / f"scored{suffix}", one)
    if suffix == ".otio":
        timeline = otio.adapters.read_from_file(str(scored))
        for track in timeline.tracks:
            if track.name in ("V1", "A1"):
                clip = track[3]
                rng = clip.source_range
                clip.source_range = otio.opentime.TimeRange(
                    rng.start_time, rng.duration - otio.opentime.RationalTime(rng.duration.rate, rng.duration.rate))
        otio.adapters.write_to_file(timeline, str(scored))
    else:
        _shorten_kdenlive_scene(scored, 4)
    after = read_cuts(scored)
    assert after.duration == pytest.approx(before.duration - 1.0)
    assert len(after.scenes) == len(before.scenes)
    assert all(s.media is not None for s in after.scenes)
    assert after.audio[-1].end == pytest.approx(after.duration)


def _shorten_kdenlive_scene(path: Path, number: int) -> None:
    """Take 1 s (25 frames) off the ``number``-th clip of every non-score track's first playlist."""
    import re

    text = path.read_text()
    root = fromstring(text.encode())
    rate = Fraction(int(root.find("profile").get("frame_rate_num")), int(root.find("profile").get("frame_rate_den")))
    from emsync_plugin.timeline.kdenlive_xml import clock

    for playlist in root.iter("playlist"):
        entries = playlist.findall("entry")
        if playlist.get("id") == "main_bin" or len(entries) < number:
            continue
        entry = entries[number - 1]
        out = parse_time(entry.get("out"), rate)
        old = f'<entry producer="{entry.get("producer")}" in="{entry.get("in")}" out="{entry.get("out")}"'
        new = f'<entry producer="{entry.get("producer")}" in="{entry.get("in")}" out="{clock(out - int(rate), rate)}"'
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path.write_text(text)
    assert re.search("EMSYNC Score", text)


def test_audio_of_the_sample_and_an_fcp7_timeline(fixtures):
    sample = read_cuts(SAMPLE / "sample.otio")
    assert [(a.start, a.end) for a in sample.audio] == [(s.start, s.end) for s in sample.scenes]
    assert all(a.media == str(SAMPLE / "sample.mp4") for a in sample.audio)
    assert [a.source_start for a in sample.audio] == [s.source_start for s in sample.scenes]
    kdenlive = read_cuts(SAMPLE / "sample.kdenlive")
    assert [(a.start, a.end, a.media, a.source_start) for a in kdenlive.audio] == \
        [(a.start, a.end, a.media, a.source_start) for a in sample.audio]
    premiere = read_cuts(fixtures / "fcp7xml" / "premiere_example.xml")
    assert premiere.audio and any(a.media and a.media.endswith("track_08.wav") for a in premiere.audio)
    assert all(0 <= a.start < a.end <= premiere.duration + 1e-6 for a in premiere.audio)
    assert "audio" not in premiere.to_json()  # emsync cuts --json prints what it did before


def test_read_score_tracks_of_files_without_any(fixtures, tmp_path):
    assert read_score_tracks(SAMPLE / "sample.otio") == []
    assert read_score_tracks(SAMPLE / "sample.kdenlive") == []
    assert read_score_tracks(fixtures / "edl" / "transition_duration.edl") == []
    assert read_score_tracks(tmp_path / "missing.otio") == []
    bad = tmp_path / "bad.otio"
    bad.write_text("{not json")
    assert read_score_tracks(bad) == []
