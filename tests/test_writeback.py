"""Score back on the timeline, in the input's own format; nothing of the user's is lost."""
from __future__ import annotations

import hashlib
import json
import shutil
import wave

import opentimelineio as otio
import pytest

from emsync_plugin import cli
from emsync_plugin.errors import OptionsError
from emsync_plugin.pipeline import ScoreOptions, score
from emsync_plugin.timeline import read_cuts, read_edit

SCORE = "EMSYNC Score"
# the fixtures' media are not on this machine: give the mood rather than analyse the scenes
MOOD = dict(valence=0.3, arousal=0.0)


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def score_tracks(path):
    t = otio.adapters.read_from_file(str(path))
    if not isinstance(t, otio.schema.Timeline):
        t = next(iter(t))
    return t, [
        tr for tr in t.tracks
        if tr.kind == otio.schema.TrackKind.Audio and any(c.name == SCORE for c in tr.find_clips())
    ]


def wav_info(path):
    with wave.open(str(path)) as w:
        return w.getnframes(), w.getframerate(), w.getnchannels()


def make_inputs(fixtures, tmp_path):
    """One input per OTIO family, from the shared fixtures (bundles made from the Hiero XML)."""
    files = {}
    for folder, name in (("fcp7xml", "premiere_example.xml"), ("fcpxml", "fcpx_project.fcpxml"),
                         ("edl", "transition_duration.edl"), ("fcp7xml", "hiero_xml_export.xml")):
        shutil.copy(fixtures / folder / name, tmp_path / name)
        files[name] = tmp_path / name
    hiero = otio.adapters.read_from_file(str(tmp_path / "hiero_xml_export.xml"))
    for clip in hiero.find_clips():  # bundles need media that exists; point at a small real file
        clip.media_reference = otio.schema.MissingReference()
    otio.adapters.write_to_file(hiero, str(tmp_path / "hiero.otio"))
    otio.adapters.write_to_file(hiero, str(tmp_path / "hiero.otioz"), media_policy="MissingIfNotFile")
    otio.adapters.write_to_file(hiero, str(tmp_path / "hiero.otiod"), media_policy="MissingIfNotFile")
    for n in ("hiero.otio", "hiero.otioz", "hiero.otiod"):
        files[n] = tmp_path / n
    return files


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    from conftest import FIXTURES

    tmp = tmp_path_factory.mktemp("writeback")
    inputs = make_inputs(FIXTURES, tmp)
    before = {n: (sha(p) if p.is_file() else None) for n, p in inputs.items()}
    results = {n: score(p, ScoreOptions(valence=0.5, arousal=0.2, engine="baseline")) for n, p in inputs.items()}
    return inputs, before, results


@pytest.mark.parametrize("name,suffix", [
    ("premiere_example.xml", ".xml"), ("fcpx_project.fcpxml", ".fcpxml"), ("transition_duration.edl", ".otio"),
    ("hiero.otio", ".otio"), ("hiero.otioz", ".otioz"), ("hiero.otiod", ".otiod"),
])
def test_score_track_added_and_nothing_else_changed(scored, name, suffix):
    inputs, before, results = scored
    src, result = inputs[name], results[name]
    assert result.output.suffix == suffix and result.output != src
    if before[name]:
        assert sha(src) == before[name], "the input was modified"
    original, written = read_edit(src), read_edit(result.output)
    # every video track reads back the same: same shots, same cuts
    assert [[(round(s.start, 6), round(s.end, 6)) for s in t.shots] for t in original.tracks] == \
           [[(round(s.start, 6), round(s.end, 6)) for s in t.shots] for t in written.tracks]
    a, b = read_cuts(src), read_cuts(result.output)
    assert a.cuts == b.cuts and a.start == pytest.approx(b.start) and a.duration == pytest.approx(b.duration)
    # exactly one score track, one clip from the timeline's start covering the whole timeline
    if suffix != ".otioz":
        timeline, tracks = score_tracks(result.output)
        assert len(tracks) == 1
        (clip,) = list(tracks[0].find_clips())
        rng = clip.trimmed_range_in_parent()
        assert rng.start_time.value == 0
        assert rng.duration.to_seconds() == pytest.approx(a.duration, abs=1 / a.rate)
        if suffix != ".otiod":
            assert otio.url_utils.filepath_from_url(clip.media_reference.target_url) == str(result.wav)
        # other tracks unchanged: same count of non-score tracks, same kinds and item counts
        orig_t = otio.adapters.read_from_file(str(src), **({"rate": a.rate} if src.suffix == ".edl" else {}))
        if not isinstance(orig_t, otio.schema.Timeline):
            orig_t = next(iter(orig_t))
        others = [tr for tr in timeline.tracks if tr not in tracks]
        assert [(tr.kind, len(tr)) for tr in others] == [(tr.kind, len(tr)) for tr in orig_t.tracks]
        if suffix == ".otio":
            assert clip.metadata["emsync"]["midi"] == str(result.midi)
            assert timeline.metadata["emsync"]["engine"] == "baseline"
    # the score files exist; the WAV is exactly the timeline's length at 48 kHz stereo
    frames, sr, ch = wav_info(result.wav)
    assert (sr, ch) == (48000, 2)
    assert frames == round(a.duration * 48000)
    assert result.midi.exists()
    settings = json.loads(result.sidecar.read_text())
    assert settings["cuts"] == list(a.cuts) and settings["scenes"][0]["valence"] == 0.5


def test_fcp7_and_fcpxml_keep_settings_in_their_own_fields(scored):
    _, _, results = scored
    xml = results["premiere_example.xml"].output.read_text()
    assert "<mastercomment2>MIDI: " in xml and str(results["premiere_example.xml"].midi) in xml
    fcpx = results["fcpx_project.fcpxml"].output.read_text()
    assert 'key="com.emsync.midi"' in fcpx and "<note>" in fcpx


def test_rerun_replaces_the_score_track(scored, tmp_path):
    _, _, results = scored
    first = results["premiere_example.xml"].output
    again = score(first, ScoreOptions(output=tmp_path / "again.xml", seed=3, engine="baseline", **MOOD))
    _, tracks = score_tracks(again.output)
    assert len(tracks) == 1
    (clip,) = list(tracks[0].find_clips())
    assert clip.media_reference.target_url.endswith("again.wav")


def test_in_place_keeps_a_backup(fixtures, tmp_path):
    src = tmp_path / "hiero.xml"
    shutil.copy(fixtures / "fcp7xml" / "hiero_xml_export.xml", src)
    original = src.read_bytes()
    with pytest.raises(OptionsError, match="--in-place"):
        score(src, ScoreOptions(output=src))
    assert src.read_bytes() == original
    score(src, ScoreOptions(in_place=True, engine="baseline", **MOOD))
    backups = list(tmp_path.glob("hiero.*.bak.xml"))
    assert len(backups) == 1 and backups[0].read_bytes() == original
    assert src.read_bytes() != original
    _, tracks = score_tracks(src)
    assert len(tracks) == 1


def test_existing_foreign_output_is_backed_up(fixtures, tmp_path):
    src = tmp_path / "hiero.xml"
    shutil.copy(fixtures / "fcp7xml" / "hiero_xml_export.xml", src)
    precious = tmp_path / "mine.xml"
    precious.write_text("<xmeml>my own work</xmeml>")
    score(src, ScoreOptions(output=precious, engine="baseline", **MOOD))
    assert [p.read_text() for p in tmp_path.glob("mine.*.bak.xml")] == ["<xmeml>my own work</xmeml>"]


def test_failed_write_leaves_no_partial_file(fixtures, tmp_path, monkeypatch):
    src = tmp_path / "hiero.xml"
    shutil.copy(fixtures / "fcp7xml" / "hiero_xml_export.xml", src)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(otio.adapters, "write_to_file", boom)
    with pytest.raises(OSError):
        score(src, ScoreOptions(engine="baseline", **MOOD))
    assert not (tmp_path / "hiero.emsync.xml").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp files left behind"


def test_edl_cannot_be_written_in_place(fixtures, tmp_path, capsys):
    src = tmp_path / "gap_test.edl"
    shutil.copy(fixtures / "edl" / "gap_test.edl", src)
    assert cli.main(["score", str(src), "--in-place"]) == 2
    assert "-o NAME.otio" in capsys.readouterr().err


def test_cli_score_prints_what_it_wrote(fixtures, tmp_path, capsys):
    src = tmp_path / "gap_test.edl"
    shutil.copy(fixtures / "edl" / "gap_test.edl", src)
    assert cli.main(["score", str(src), "-o", str(tmp_path / "out.otio"), "--valence", "-0.5", "--engine", "baseline"]) == 0
    out = capsys.readouterr().out
    assert "scored timeline: " in out and "out.otio" in out and "out.wav" in out


def test_importing_emsync_leaves_the_fcpxml_adapter_alone(fixtures, tmp_path):
    """Our FCPXML rounding lives in subclasses: the adapter module others use is untouched."""
    import opentimelineio as otio

    from emsync_plugin.timeline import fcpxml, io

    adapter = otio.adapters.from_name("fcpx_xml").module()
    before = {name: getattr(adapter, name) for name in ("to_rational_time", "FcpxXml", "FcpxOtio")}
    methods = dict(vars(adapter.FcpxXml)), dict(vars(adapter.FcpxOtio))
    path = next((fixtures / "fcpxml").glob("*.fcpxml"))
    io.read_cuts(path)
    fcpxml.write(fcpxml.read(path), tmp_path / "out.fcpxml", rounding=True)
    assert {name: getattr(adapter, name) for name in before} == before
    assert (dict(vars(adapter.FcpxXml)), dict(vars(adapter.FcpxOtio))) == methods


def test_output_path_rules(tmp_path):
    """timeline.io.output_path: the default name, the formats each family can be written as."""
    from emsync_plugin.errors import OptionsError
    from emsync_plugin.timeline import io
    from emsync_plugin.timeline.model import build_timeline

    def timeline(fmt):
        return build_timeline("t", 25.0, [[]], duration=10.0, format=fmt)

    src = tmp_path / "cut.edl"
    assert io.output_path(src, timeline("cmx_3600"), None, False) == tmp_path / "cut.emsync.otio"
    assert io.output_path(tmp_path / "cut.xml", timeline("fcp_xml"), None, False) == tmp_path / "cut.emsync.xml"
    assert io.output_path(tmp_path / "a.otio", timeline("otio"), tmp_path / "b.fcpxml", False) == tmp_path / "b.fcpxml"
    assert io.output_path(tmp_path / "a.otio", timeline("otio"), None, True) == tmp_path / "a.otio"
    with pytest.raises(OptionsError, match="cannot write a kdenlive timeline as b.otio"):
        io.output_path(tmp_path / "a.kdenlive", timeline("kdenlive"), tmp_path / "b.otio", False)
    with pytest.raises(OptionsError, match="cannot write a otio timeline as b.edl"):
        io.output_path(tmp_path / "a.otio", timeline("otio"), tmp_path / "b.edl", False)
    with pytest.raises(OptionsError, match="cannot take a score track in place"):
        io.output_path(src, timeline("cmx_3600"), None, True)
    with pytest.raises(OptionsError, match="is the input timeline"):
        io.output_path(tmp_path / "a.otio", timeline("otio"), tmp_path / "a.otio", False)
    with pytest.raises(OptionsError, match="name different files"):
        io.output_path(tmp_path / "a.otio", timeline("otio"), tmp_path / "b.otio", True)


def test_convert_timeline_makes_fcp_exports(tmp_path):
    """timeline.io.convert_timeline: what demo.py needs, media made absolute, FCPXML's tcStart kept."""
    import shutil

    from emsync_plugin.demo import sample_dir
    from emsync_plugin.timeline import io

    for name in ("sample.otio", "sample.mp4"):
        shutil.copy(sample_dir() / name, tmp_path / name)
    xml = io.convert_timeline(tmp_path / "sample.otio", tmp_path / "sample.xml")
    fcpx = io.convert_timeline(tmp_path / "sample.otio", tmp_path / "sample.fcpxml")
    assert 'tcStart="3600s"' in fcpx.read_text()
    cuts = io.read_cuts(tmp_path / "sample.otio").cuts
    assert io.read_cuts(xml).cuts == io.read_cuts(fcpx).cuts == cuts
    assert io.read_cuts(xml).scenes[0].media == str((tmp_path / "sample.mp4").resolve())
