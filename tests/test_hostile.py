"""Hostile and absurd input: refused early and clearly, or handled within bounds.

Files from strangers (zip tricks, XML entity and nesting tricks, files that crashed
OpenTimelineIO), media paths that look like commands, and timelines no editor would write.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
import zipfile
from pathlib import Path

import opentimelineio as otio
import pytest

from emsync_plugin import cli
from emsync_plugin.errors import OptionsError, TimelineError
from emsync_plugin.pipeline import ScoreOptions, missing_media, score
from emsync_plugin.timeline import limits, read_cuts
from emsync_plugin.timeline.otio_checks import read_otioz

SAMPLE = Path(__file__).resolve().parents[1] / "emsync_plugin" / "data" / "sample"
MOOD = dict(valence=0.2, arousal=0.1, engine="baseline")


def _timeline(clips=((0, 50), (0, 75)), rate=25, name="t", media=("a.mov", "b.mov")) -> otio.schema.Timeline:
    t = otio.schema.Timeline(name=name)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for (start, dur), url in zip(clips, media):
        ref = otio.schema.ExternalReference(target_url=url) if url is not None else otio.schema.MissingReference()
        track.append(otio.schema.Clip(name=str(url), media_reference=ref, source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(start, rate), otio.opentime.RationalTime(dur, rate))))
    t.tracks.append(track)
    return t


def _otioz(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    content = otio.adapters.write_to_string(_timeline(media=(None, None)), "otio_json").encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("version.txt", "1.0.0")
        z.writestr("content.otio", content)
        for name, data in members:
            z.writestr(name, data)
    return path


# ----------------------------------------------------------------------------- .otioz archives


def test_plain_bundle_reads(tmp_path):
    assert len(read_cuts(_otioz(tmp_path / "ok.otioz", [("media/a.mov", b"x")])).cuts) == 1


@pytest.mark.parametrize("member", ["../evil.mov", "media/../../evil.mov", "/tmp/evil.mov", "C:\\evil.mov",
                                    "media\\..\\..\\evil.mov"])
def test_bundle_member_outside_is_refused(tmp_path, member):
    path = _otioz(tmp_path / "bad.otioz", [(member, b"payload")])
    with pytest.raises(TimelineError, match="points outside the bundle"):
        read_cuts(path)
    with pytest.raises(TimelineError, match="points outside"):
        read_otioz(path, tmp_path / "unpack")
    assert not (tmp_path / "evil.mov").exists() and not Path("/tmp/evil.mov").exists()


def test_bundle_symlink_member_is_refused(tmp_path):
    info = zipfile.ZipInfo("media/link.mov")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = _otioz(tmp_path / "link.otioz", [(info, b"/etc/passwd")])
    with pytest.raises(TimelineError, match="symbolic link"):
        read_cuts(path)


def test_zip_bomb_is_refused(tmp_path):
    path = _otioz(tmp_path / "bomb.otioz", [("media/zeros.mov", b"\0" * (20 * 1024 * 1024))])
    assert path.stat().st_size < 200_000  # 20 MB packed ~1000:1
    with pytest.raises(TimelineError, match="zip bomb"):
        read_cuts(path)


def test_too_many_members_and_too_much_data(tmp_path, monkeypatch):
    path = _otioz(tmp_path / "many.otioz", [(f"media/{i}.mov", b"x") for i in range(20)])
    monkeypatch.setattr(limits, "MAX_MEMBERS", 10)
    with pytest.raises(TimelineError, match="22 members"):
        read_cuts(path)
    monkeypatch.setattr(limits, "MAX_MEMBERS", 10_000)
    monkeypatch.setattr(limits, "MAX_UNPACKED", 1000)
    with pytest.raises(TimelineError, match="unpacks to more"):
        read_cuts(path)


def test_bundle_without_content_or_not_a_zip(tmp_path):
    path = tmp_path / "empty.otioz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("version.txt", "1.0.0")
    with pytest.raises(TimelineError, match="no content.otio"):
        read_cuts(path)
    junk = tmp_path / "junk.otioz"
    junk.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(TimelineError, match="OTIOZ"):
        read_cuts(junk)


def test_bundle_media_is_unpacked_privately_and_bundled_again(tmp_path):
    media = tmp_path / "clip.mov"
    media.write_bytes(b"not a real movie, but a file")
    otio.adapters.write_to_file(_timeline(media=(str(media), str(media))), str(tmp_path / "in.otioz"),
                                media_policy="MissingIfNotFile")
    media.unlink()  # only the copy inside the bundle remains
    result = score(tmp_path / "in.otioz", ScoreOptions(output=tmp_path / "out.otioz", **MOOD))
    with zipfile.ZipFile(result.output) as z:
        names = z.namelist()
    assert "media/clip.mov" in names and "content.otio" in names
    leftovers = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("emsync-*") if p.is_dir()
                 and (p / "media" / "clip.mov").exists()]
    assert not leftovers, "the private unpack folder was left behind"


# ----------------------------------------------------------------------------- XML


@pytest.mark.parametrize("suffix", [".xml", ".fcpxml", ".kdenlive"])
def test_xml_tricks_refused(tmp_path, suffix):
    root = {".xml": "xmeml", ".fcpxml": "fcpxml", ".kdenlive": "mlt"}[suffix]
    cases = {
        "external DTD": f'<?xml version="1.0"?><!DOCTYPE {root} SYSTEM "http://example.invalid/x.dtd"><{root}/>',
        "entities": f'<?xml version="1.0"?><!DOCTYPE {root} [<!ENTITY a "aaaa">]><{root}>&a;</{root}>',
        "nested": f"<{root}>" + "<a>" * (limits.MAX_XML_DEPTH + 5) + "</a>" * (limits.MAX_XML_DEPTH + 5) + f"</{root}>",
        "attribute": f'<{root} x="' + "y" * (limits.MAX_ATTRIBUTE + 1) + '"/>',
        "encoding": f'<?xml version="1.0" encoding="UTF-999"?><{root}/>',
    }
    for what, text in cases.items():
        path = tmp_path / f"{what.replace(' ', '_')}{suffix}"
        path.write_text(text)
        with pytest.raises(TimelineError) as info:
            read_cuts(path)
        message = str(info.value)
        assert "\n" not in message and path.name in message, what
        assert ("refused" in message or "cannot be read as XML" in message), (what, message)


def test_huge_file_refused_before_reading(tmp_path, monkeypatch, fixtures):
    path = tmp_path / "big.xml"
    shutil.copy(fixtures / "fcp7xml" / "premiere_example.xml", path)
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 1000)

    def no_reading(*a, **k):
        raise AssertionError("the file was read")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    with pytest.raises(TimelineError, match="MB a timeline may be"):
        read_cuts(path)


# ----------------------------------------------------------------------------- OTIO JSON


def _clip_json(schema="Clip.2", extra=None):
    clip = json.loads(otio.adapters.write_to_string(_timeline().tracks[0][0], "otio_json"))
    clip["OTIO_SCHEMA"] = schema
    clip.update(extra or {})
    return clip


def _with_clip(clip) -> str:
    t = json.loads(otio.adapters.write_to_string(_timeline(), "otio_json"))
    t["tracks"]["children"][0]["children"][0] = clip
    return json.dumps(t)


@pytest.mark.parametrize("text,words", [
    (_with_clip(_clip_json("Clip.1")), "Clip.1"),  # segfaulted OpenTimelineIO 0.18
    (_with_clip(_clip_json("Clip.-1")), "OTIO_SCHEMA"),  # segfaulted too
    (_with_clip(_clip_json(extra={"surprise": {"OTIO_SCHEMA": "Gap.1"}})), "surprise"),
    (_with_clip(_clip_json()).replace('"name": "a.mov"', '"name": "a.mov", "name": "b"', 1), "twice"),
    ("[" * (limits.MAX_JSON_DEPTH + 1) + "]" * (limits.MAX_JSON_DEPTH + 1), "nested"),
])
def test_otio_json_that_crashed_opentimelineio_is_refused(tmp_path, text, words):
    path = tmp_path / "crash.otio"
    path.write_text(text)
    for _ in range(3):  # the duplicate-key crash came on a later read
        with pytest.raises(TimelineError, match=words):
            read_cuts(path)


def test_old_clip_schema_still_reads(tmp_path):
    clip = _clip_json("Clip.1")
    clip["media_reference"] = clip.pop("media_references")["DEFAULT_MEDIA"]
    del clip["active_media_reference_key"]
    path = tmp_path / "old.otio"
    path.write_text(_with_clip(clip))
    assert read_cuts(path).cuts == (2.0,)


# ----------------------------------------------------------------------------- absurd timelines


def test_hundred_thousand_clips_in_bounded_time(tmp_path):
    clip = ('{"OTIO_SCHEMA":"Clip.2","metadata":{},"name":"c","source_range":{"OTIO_SCHEMA":"TimeRange.1",'
            '"duration":{"OTIO_SCHEMA":"RationalTime.1","rate":25.0,"value":%d},"start_time":{"OTIO_SCHEMA":'
            '"RationalTime.1","rate":25.0,"value":0.0}},"effects":[],"markers":[],"enabled":true,"color":null,'
            '"media_references":{"DEFAULT_MEDIA":{"OTIO_SCHEMA":"ExternalReference.1","metadata":{},"name":"",'
            '"available_range":null,"available_image_bounds":null,"target_url":"m%d.mov"}},'
            '"active_media_reference_key":"DEFAULT_MEDIA"}')
    track = json.loads(otio.adapters.write_to_string(_timeline(), "otio_json"))
    track["tracks"]["children"][0]["children"] = ["@CLIPS@"]
    text = json.dumps(track).replace('["@CLIPS@"]', "[" + ",".join(clip % (1 + i % 3, i % 40) for i in range(100_000)) + "]")
    path = tmp_path / "huge.otio"
    path.write_text(text)
    t0 = time.perf_counter()
    timeline = read_cuts(path)
    assert len(timeline.cuts) == 99_999 and len(timeline.scenes) == 100_000
    assert time.perf_counter() - t0 < 60  # was quadratic (OTIO's range_in_parent): minutes


def test_absurd_numbers(tmp_path):
    cases = {
        "zero": (_timeline(clips=((0, 0), (0, 50))), None),  # zero-length clips are no cuts
        "negative rate": (_timeline(rate=-25), "frame rate"),
        "huge rate": (_timeline(rate=1e9), "frame rate"),
        "49 hours": (_timeline(clips=((0, 25 * 3600 * 49), (0, 25))), "outside 0-48 hours"),
        "24 hours": (_timeline(clips=((0, 25 * 3600 * 24), (0, 25))), None),
    }
    for name, (timeline, refused) in cases.items():
        path = tmp_path / f"{name}.otio"
        otio.adapters.write_to_file(timeline, str(path))
        if refused is None:
            assert read_cuts(path).duration > 0, name
        else:
            with pytest.raises(TimelineError, match=refused):
                read_cuts(path)


def test_day_long_timeline_is_read(tmp_path):
    # there is no length cap any more (the render works in blocks): tests/test_long_timeline.py scores 3 hours
    path = tmp_path / "day.otio"
    otio.adapters.write_to_file(_timeline(clips=((0, 25 * 3600 * 24), (0, 25))), str(path))
    assert read_cuts(path).duration == pytest.approx(86401.0)


def test_nested_stacks_and_overlapping_tracks(tmp_path):
    def nest(depth):
        t = _timeline()
        inner = t.tracks[0]
        for _ in range(depth):
            stack = otio.schema.Stack()
            t.tracks.remove(inner)
            stack.append(inner)
            outer = otio.schema.Track(kind=otio.schema.TrackKind.Video)
            outer.append(stack)
            t.tracks.append(outer)
            inner = outer
        return t

    otio.adapters.write_to_file(nest(5), str(tmp_path / "five.otio"))
    assert read_cuts(tmp_path / "five.otio").cuts == (2.0,)
    otio.adapters.write_to_file(nest(limits.MAX_STACK_NESTING + 2), str(tmp_path / "deep.otio"))
    with pytest.raises(TimelineError, match="nested more than"):
        read_cuts(tmp_path / "deep.otio")
    two = _timeline()
    two.tracks.append(_timeline(clips=((0, 30), (0, 30))).tracks[0].clone())
    otio.adapters.write_to_file(two, str(tmp_path / "two.otio"))
    assert read_cuts(tmp_path / "two.otio").cuts == (1.2, 2.0, 2.4)


def test_negative_seed_refused_up_front():
    with pytest.raises(OptionsError, match="--seed -1"):
        ScoreOptions(seed=-1)


# ----------------------------------------------------------------------------- media paths


WEIRD = ["clip with spaces.mov", "ümlaut 😀.mov", "new\nline.mov", "-rf --help.mov", "$(touch pwned).mov",
         "`touch pwned2`.mov", "file:///Volumes/Other%20Mac/clip.mov", "C:\\Users\\ed\\clip.mov",
         "file://server/share/clip.mov", "\\\\server\\share\\clip.mov"]


def test_media_paths_are_data(tmp_path, monkeypatch):
    timeline = _timeline(clips=[(0, 25)] * len(WEIRD), media=WEIRD)
    path = tmp_path / "weird.otio"
    otio.adapters.write_to_file(timeline, str(path))
    read = read_cuts(path)
    assert len(read.scenes) == len(WEIRD)
    media = [s.media for s in read.scenes]
    assert any("clip with spaces.mov" in m for m in media) and any("new\nline.mov" in m for m in media)
    assert len(missing_media(read)) == len(set(media))  # none exist: reported as missing, not a crash

    calls = []
    real_popen = subprocess.Popen

    def spy(args, *a, **k):
        calls.append(args)
        return real_popen(args, *a, **k)

    monkeypatch.setattr(subprocess, "Popen", spy)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["score", str(path), "--engine", "baseline", "--valence", "0.2", "--arousal", "0", "-q"])
    assert code == 0
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    for args in calls:
        text = " ".join(map(str, args)) if isinstance(args, (list, tuple)) else str(args)
        assert not any(w.split(".")[0] in text for w in WEIRD), args


def test_damaged_model_manifest_is_a_model_error(tmp_path):
    from emsync_plugin import models
    from emsync_plugin.errors import ModelError

    (tmp_path / "manifest.json").write_text('{"files": {"generator.onnx": {"sha256": 5')
    with pytest.raises(ModelError, match="manifest is damaged"):
        models.find("generator.onnx", tmp_path)
    (tmp_path / "manifest.json").write_text('{"files": {"generator.onnx": "abc"}}')
    with pytest.raises(ModelError, match="manifest is damaged"):
        models.find("generator.onnx", tmp_path)


def test_timeline_file_with_a_hostile_name(tmp_path, monkeypatch, capsys):
    name = "-rf ünï😀 new\nline.otio"
    otio.adapters.write_to_file(_timeline(), str(tmp_path / name))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["cuts", "--json", "--", name]) == 0
    assert json.loads(capsys.readouterr().out)["cuts"] == [2.0]
    assert cli.main(["score", "--engine", "baseline", "--valence", "0", "--arousal", "0", "-q", "--", name]) == 0
    stem = name[:-len(".otio")]
    assert {f"{stem}.emsync{s}" for s in (".otio", ".wav", ".mid", ".json")} <= {p.name for p in tmp_path.iterdir()}
