"""Both cores at once (issue 15): scenes are analysed while the music is generated, models load
once per process, and a command imports only what it uses."""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from emsync_plugin import models, pipeline
from emsync_plugin.demo import sample_dir
from emsync_plugin.emotion import analyze, schedule
from emsync_plugin.emotion.sampling import AnalysisOptions
from emsync_plugin.errors import MediaError
from emsync_plugin.pipeline import ScoreOptions, score
from emsync_plugin.timeline import read_cuts

NO_FACES = AnalysisOptions(faces=False)


def _unmarked():
    """The sample without its marker, so every scene is analysed."""
    from dataclasses import replace

    return replace(read_cuts(sample_dir() / "sample.otio"), markers=())


def test_a_mood_waits_only_for_its_own_and_its_neighbours_scenes(monkeypatch):
    timeline = _unmarked()
    schedule.clear_cache()
    whole = analyze.estimate(timeline, options=NO_FACES)
    schedule.clear_cache()
    failing = timeline.scenes[4]  # its analysis fails; scenes 1-3 do not need it
    real = schedule.analyze_source

    def analyse(reader, start, end, options, faces=None):
        if abs(start - failing.source_start) < 1e-6:
            raise MediaError("cannot be decoded here", path=reader.path if hasattr(reader, "path") else None)
        return real(reader, start, end, options, faces)

    monkeypatch.setattr(schedule, "analyze_source", analyse)
    with analyze.Moods(timeline, options=NO_FACES) as moods:
        assert len(moods) == len(whole) == 7
        assert [moods[k] for k in range(3)] == whole[:3]  # the same moods as deciding all at once
        with pytest.raises(MediaError, match="cannot be decoded here"):
            moods[3]  # smoothed with scene 5: its error, where it is needed
    schedule.clear_cache()


def test_generation_starts_before_the_last_scene_is_analysed(tmp_path, monkeypatch):
    for name in ("sample.otio", "sample.mp4"):
        shutil.copy(sample_dir() / name, tmp_path / name)
    timeline = read_cuts(tmp_path / "sample.otio")
    last = timeline.scenes[-1]
    released = threading.Event()
    real_analyse, real_generate = schedule.analyze_source, pipeline.generate

    def analyse(reader, start, end, options, faces=None):
        if abs(start - last.source_start) < 1e-6 and not released.wait(30):
            raise AssertionError("the last scene was needed before any music was generated")
        return real_analyse(reader, start, end, options, faces)

    def generate(tl, moods, options, kept=(), generator=None):
        first = moods[0]  # the music of scene 1 need not wait for the last scene
        released.set()
        assert first.index == 1
        return real_generate(tl, list(moods), options, kept)

    monkeypatch.setattr(schedule, "analyze_source", analyse)
    monkeypatch.setattr(pipeline, "generate", generate)
    schedule.clear_cache()
    result = score(tmp_path / "sample.otio", ScoreOptions(engine="baseline", write_timeline=False))
    assert released.is_set() and [m.index for m in result.moods] == [s.index for s in timeline.scenes]
    assert result.moods[-1].source in ("cues", "faces")
    schedule.clear_cache()


def test_each_model_session_is_created_once_per_process(tmp_path, monkeypatch, caplog):
    import onnxruntime as ort

    from emsync_plugin.music import generator_worker

    for name in ("sample.otio", "sample.mp4"):
        shutil.copy(sample_dir() / name, tmp_path / name)
    made: list[str] = []
    real = ort.InferenceSession

    def counting(path, *args, **kwargs):
        made.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", counting)
    models.session.cache_clear()
    caplog.set_level(logging.DEBUG, logger="emsync_plugin")  # the worker's records come back at this level
    options = ScoreOptions(engine="emsync", precision="int8", write_timeline=False, duck=-12.0)
    workers = []
    for k in range(2):
        schedule.clear_cache()  # analysed again: the face model runs again
        score(tmp_path / "sample.otio", ScoreOptions(**{**options.__dict__, "seed": k}))
        workers.append(generator_worker.pid())
    assert sorted(made) == sorted(set(made))  # each of this process's sessions made once
    # the generator runs in its worker process, the same one both times, which made its session at most once
    assert workers[0] is not None and workers[0] == workers[1] and "generator.int8.onnx" not in made
    loads = [r for r in caplog.records if r.getMessage().startswith("loaded generator.int8.onnx")]
    assert len(loads) <= 1 and all(r.levelno == logging.DEBUG for r in loads)
    models.session.cache_clear()


def test_the_command_imports_only_what_it_uses():
    code = ("import sys; from emsync_plugin import cli; cli.main(['cuts', sys.argv[1]]); "
            "print(sorted(m for m in ('numpy', 'pretty_midi', 'tqdm', 'scipy', 'onnxruntime', 'av', 'cv2') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(sample_dir() / "sample.otio")], capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
