"""Bad input: one line naming the file and the fix, exit status 2, no traceback."""
from __future__ import annotations

import shutil

import pytest

from emsync_plugin import cli
from emsync_plugin.errors import EmsyncError, MediaError, OptionsError, TimelineError
from emsync_plugin.pipeline import ScoreOptions
from emsync_plugin.timeline import read_cuts

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE xmeml [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<xmeml version="4"><sequence><name>&lol3;</name></sequence></xmeml>
"""


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, name, *words):
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("emsync: error:")]
    assert len(lines) == 1, err
    assert name in lines[0]
    for w in words:
        assert w.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in err


def test_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "cuts", str(tmp_path / "nope.otio"))
    assert_one_line_error(code, err, "nope.otio", "no such file")


def test_unsupported_file(capsys, tmp_path):
    f = tmp_path / "project.prproj"
    f.write_bytes(b"\x1f\x8b binary")
    code, _, err = run(capsys, "cuts", str(f))
    assert_one_line_error(code, err, "project.prproj", "unsupported", ".otio")


def test_empty_file(capsys, tmp_path):
    f = tmp_path / "empty.otio"
    f.write_text("")
    code, _, err = run(capsys, "cuts", str(f))
    assert_one_line_error(code, err, "empty.otio", "empty", "re-export")


@pytest.mark.parametrize("name,folder", [("premiere_example.xml", "fcp7xml"), ("fcpx_project.fcpxml", "fcpxml")])
def test_truncated_xml(capsys, fixtures, tmp_path, name, folder):
    data = (fixtures / folder / name).read_bytes()
    f = tmp_path / name
    f.write_bytes(data[: len(data) // 2])
    code, _, err = run(capsys, "cuts", str(f))
    assert_one_line_error(code, err, name, "truncated", "re-export")


def test_truncated_otio(capsys, tmp_path, fixtures):
    import opentimelineio as otio

    t = otio.adapters.read_from_file(str(fixtures / "fcp7xml" / "hiero_xml_export.xml"))
    text = otio.adapters.write_to_string(t, "otio_json")
    f = tmp_path / "cut.otio"
    f.write_text(text[: len(text) // 3])
    code, _, err = run(capsys, "cuts", str(f))
    assert_one_line_error(code, err, "cut.otio", "cannot read", "re-export")


def test_malformed_edl(capsys, tmp_path):
    f = tmp_path / "junk.edl"
    f.write_text("this is not an edl\nat all\n")
    code, _, err = run(capsys, "cuts", str(f))
    assert_one_line_error(code, err, "junk.edl")


def test_entity_attack_refused(capsys, tmp_path):
    f = tmp_path / "laughs.xml"
    f.write_text(BILLION_LAUGHS)
    code, _, err = run(capsys, "cuts", str(f))
    assert_one_line_error(code, err, "laughs.xml", "refused", "entities")


def test_external_entity_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    f = tmp_path / "xxe.fcpxml"
    f.write_text(f'<?xml version="1.0"?><!DOCTYPE fcpxml [<!ENTITY x SYSTEM "file://{secret}">]><fcpxml>&x;</fcpxml>')
    with pytest.raises(TimelineError, match="refused"):
        read_cuts(f)


def test_no_video_track(capsys, fixtures):
    code, _, err = run(capsys, "cuts", str(fixtures / "edl" / "multi_audio.edl"))
    assert_one_line_error(code, err, "multi_audio.edl", "no video track")


def test_too_short_to_score(capsys, fixtures, tmp_path):
    f = tmp_path / "dissolve_test.edl"
    shutil.copy(fixtures / "edl" / "dissolve_test.edl", f)
    code, out, err = run(capsys, "cuts", str(f))  # reading it is fine ...
    assert code == 0 and "1 cuts" in out
    code, _, err = run(capsys, "score", str(f), "--engine", "baseline")  # ... scoring is not
    assert_one_line_error(code, err, "dissolve_test.edl", "0.83 s", "at least 1 s")
    assert not list(tmp_path.glob("*.wav"))


def test_corrupt_video(capsys, tmp_path):
    f = tmp_path / "broken.mp4"
    f.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    code, _, err = run(capsys, "cuts", str(f))
    assert_one_line_error(code, err, "broken.mp4", "re-encode")


def test_debug_shows_traceback(tmp_path):
    with pytest.raises(TimelineError):
        cli.main(["cuts", str(tmp_path / "nope.otio"), "--debug"])


def test_options_validated_up_front():
    with pytest.raises(OptionsError, match="--valence 2"):
        ScoreOptions(valence=2.0)
    with pytest.raises(OptionsError, match="unknown engine"):
        ScoreOptions(engine="magic")
    with pytest.raises(OptionsError, match="--loudness"):
        ScoreOptions(loudness=5.0)


def test_error_family():
    for cls in (TimelineError, MediaError, OptionsError):
        assert issubclass(cls, EmsyncError)
    e = TimelineError("is broken", path="/x/a.otio", hint="fix it")
    assert str(e) == "/x/a.otio: is broken. Fix it."


def test_a_folder_is_not_a_timeline_and_the_error_names_one_inside(tmp_path):
    from emsync_plugin.errors import TimelineError
    from emsync_plugin.timeline import read_cuts

    with pytest.raises(TimelineError, match="is a folder, not a timeline.*not a folder"):
        read_cuts(tmp_path)
    (tmp_path / "cut.otio").write_text("{}")
    with pytest.raises(TimelineError, match=r"is a folder, not a timeline\. Name a timeline file in it, e\.g\. .*cut\.otio"):
        read_cuts(tmp_path)
