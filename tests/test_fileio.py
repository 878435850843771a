"""Safe writes: fsync, atomic rename, stale temporary files, and a project changed meanwhile."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from emsync_plugin import fileio, pipeline
from emsync_plugin.errors import TimelineError
from emsync_plugin.pipeline import ScoreOptions, score

SAMPLE = Path(__file__).resolve().parents[1] / "emsync_plugin" / "data" / "sample"
MOOD = dict(valence=0.2, arousal=0.1, engine="baseline")


def test_write_fsyncs_the_file_and_the_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    target = tmp_path / "out.json"
    fileio.write_text(target, "{}")
    assert target.read_text() == "{}"
    assert any(Path(p).name.startswith(".out.") for p in synced), synced  # the data, before the rename
    assert str(tmp_path) in synced  # the rename itself


def test_bundle_folders_are_synced_and_replaced_whole(tmp_path, monkeypatch):
    target = tmp_path / "b.otiod"
    target.mkdir()
    (target / "content.otio").write_text("old")
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")))
    with fileio.atomic_path(target) as tmp:
        tmp.unlink()
        tmp.mkdir()
        (tmp / "content.otio").write_text("new")
    assert (target / "content.otio").read_text() == "new"
    assert any(p.endswith("content.otio") for p in synced)
    assert [p.name for p in tmp_path.iterdir()] == ["b.otiod"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "project.kdenlive"
    target.write_text("the editor's work")
    with pytest.raises(RuntimeError), fileio.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "the editor's work"
    assert [p.name for p in tmp_path.iterdir()] == ["project.kdenlive"]


def test_stale_temporary_files_are_removed(tmp_path):
    target = tmp_path / "cut.emsync.otio"
    old = tmp_path / ".cut.emsync.ab12cd34.otio"
    fresh = tmp_path / ".cut.emsync.zz99yy88.otio"
    old_dir = tmp_path / ".cut.emsync.qq11ww22.old"
    others = [tmp_path / ".other.ab12cd34.otio", tmp_path / ".cut.emsync.x.otio", tmp_path / "cut.emsync.otio"]
    for p in (old, fresh, *others):
        p.write_text("x")
    old_dir.mkdir()
    hours_ago = time.time() - 2 * 3600
    for p in (old, old_dir, *others):
        os.utime(p, (hours_ago, hours_ago))
    assert fileio.is_temp(old, target) and fileio.is_temp(fresh, target) and not fileio.is_temp(others[0], target)
    removed = fileio.remove_stale_temps(target)
    assert sorted(removed) == sorted([old, old_dir])
    assert fresh.exists() and all(p.exists() for p in others)  # a run in progress, and not ours


def test_stale_scratch_files_are_removed(tmp_path):
    """The render's float audio between its passes: a killed run's stale one goes, a running one's stays."""
    made = fileio.scratch_file(tmp_path, "mix", ".f32")
    odd = fileio.scratch_file(tmp_path, "a/b c", ".f32")
    assert made.name.startswith(".emsync-mix.") and odd.name.startswith(".emsync-a_b_c.") and odd.parent == tmp_path
    stale = tmp_path / ".emsync-drums.ab12cd34.f32"
    others = [tmp_path / ".emsync-mix.x.f32", tmp_path / "emsync-mix.ab12cd34.f32", tmp_path / ".other.ab12cd34.f32"]
    for p in (stale, *others):
        p.write_text("x")
    hours_ago = time.time() - 2 * fileio.STALE_AFTER
    for p in (stale, odd, *others):
        os.utime(p, (hours_ago, hours_ago))
    assert all(fileio.is_scratch(p) for p in (made, odd, stale)) and not any(map(fileio.is_scratch, others))
    assert sorted(fileio.remove_stale_scratch(tmp_path)) == sorted([stale, odd])
    assert made.exists() and all(p.exists() for p in others)


def test_a_render_clears_what_a_killed_render_left(tmp_path):
    from emsync_plugin.mood import SceneMood
    from emsync_plugin.music.baseline import BaselineOptions, arrange
    from emsync_plugin.music.render import render_midi

    left = tmp_path / ".emsync-mix.ab12cd34.f32"
    left.write_bytes(b"\0" * 64)
    hours_ago = time.time() - 2 * fileio.STALE_AFTER
    os.utime(left, (hours_ago, hours_ago))
    midi = arrange([1.0], 2.0, [SceneMood(0, 0, 2, 0.2, 0.1)], BaselineOptions(seed=1))
    render_midi(midi, tmp_path / "x.wav", 2.0)
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_snapshot_notices_a_save_and_the_guard_refuses_the_rename(tmp_path):
    project = tmp_path / "cut.otio"
    project.write_text("version 1")
    snap = fileio.Snapshot.take(project)
    os.utime(project, (time.time() + 5, time.time() + 5))
    assert not snap.changed()  # touched, same content
    project.write_text("version 2 (saved by the editor)")
    assert snap.changed()
    with pytest.raises(TimelineError, match="changed on disk"), fileio.guarding(snap):
        fileio.write_text(project, "emsync's version")
    assert project.read_text() == "version 2 (saved by the editor)"
    assert [p.name for p in tmp_path.iterdir()] == ["cut.otio"]
    fileio.write_text(project, "outside the guard")  # only guarded writes are checked
    assert project.read_text() == "outside the guard"


def _sample(tmp_path: Path, name="sample.otio") -> Path:
    shutil.copy(SAMPLE / name, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("when", ["while making music", "while backing up"])
def test_in_place_refuses_a_project_saved_meanwhile(tmp_path, monkeypatch, when):
    project = _sample(tmp_path)
    saved = project.read_text().replace('"EMSYNC sample"', '"EMSYNC sample (edited)"')

    def editor_saves():
        project.write_text(saved)

    if when == "while making music":
        real = pipeline.generate
        monkeypatch.setattr(pipeline, "generate", lambda *a: (editor_saves(), real(*a))[1])
    else:
        real_backup = fileio.backup
        monkeypatch.setattr(fileio, "backup", lambda p: (real_backup(p), editor_saves())[0])
    with pytest.raises(TimelineError, match="changed on disk"):
        score(project, ScoreOptions(in_place=True, **MOOD))
    assert project.read_text() == saved  # the editor's save survives
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_in_place_keeps_the_editors_files_of_the_same_name(tmp_path):
    project = _sample(tmp_path)
    (tmp_path / "sample.wav").write_bytes(b"the editor's own recording")
    (tmp_path / "sample.emsync.json").write_text('{"mine": true}')
    result = score(project, ScoreOptions(in_place=True, **MOOD))
    assert result.wav.name == "sample.emsync.wav" and result.output == project
    assert (tmp_path / "sample.wav").read_bytes() == b"the editor's own recording"
    assert [p.read_text() for p in tmp_path.glob("sample.emsync.*.bak.json")] == ['{"mine": true}']
    again = score(project, ScoreOptions(in_place=True, **MOOD))  # our own outputs: replaced, no backup
    assert again.wav == result.wav
    assert len(list(tmp_path.glob("sample.emsync.*.bak.wav"))) == 0
    assert len(list(tmp_path.glob("sample.*.bak.otio"))) == 2  # one per in-place run


def test_a_bundle_set_aside_by_a_killed_run_is_restored(tmp_path):
    target = tmp_path / "cut.otiod"
    aside = tmp_path / ".cut.ab12cd34.old"  # killed between "old aside" and "new in place"
    aside.mkdir()
    (aside / "content.otio").write_text("the project")
    assert fileio.remove_stale_temps(target) == []
    assert (target / "content.otio").read_text() == "the project" and not aside.exists()


def test_bundle_snapshot_compares_the_timeline_inside_by_content(tmp_path):
    """timeline.io.snapshot: an .otiod bundle's content.otio counts byte for byte, its media by size."""
    from emsync_plugin.timeline import io

    bundle = tmp_path / "cut.otiod"
    (bundle / "media").mkdir(parents=True)
    (bundle / "content.otio").write_text('{"a": 1}')
    (bundle / "media" / "clip.mov").write_bytes(b"1234")
    snap = io.snapshot(bundle)
    assert snap is not None and not snap.changed()
    (bundle / "media" / "clip.mov").write_bytes(b"4321")  # same size: media are not hashed
    assert not snap.changed()
    (bundle / "content.otio").write_text('{"a": 2}')  # same size, other content
    assert snap.changed()
    assert fileio.Snapshot.take(bundle).digest != snap.digest  # by default every file is hashed
    assert io.snapshot(tmp_path / "missing.otiod") is None


def test_is_project_and_written_by_emsync(tmp_path):
    from emsync_plugin.timeline import io

    assert io.is_project(Path("cut.kdenlive")) and io.is_project(Path("cut.OTIO"))
    assert not io.is_project(Path("clip.MP4"))
    ours, theirs = tmp_path / "a.otio", tmp_path / "b.otio"
    ours.write_text('{"name": "EMSYNC Score"}')
    theirs.write_text("{}")
    assert io.written_by_emsync(ours) and not io.written_by_emsync(theirs)
    assert not io.written_by_emsync(tmp_path / "missing.otio") and io.written_by_emsync(tmp_path)
