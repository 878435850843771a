"""Per-scene analysis of real media: decoding, faces (real and fake), fusion, precedence, errors.

The bundled sample (``emsync_plugin/data/sample``, scenes described in ``sample.json``) gets this
order from its picture and sound cues alone:

* the bright, fast, loud scene (4) has the highest arousal, and the tense one (6) is next;
* the dark slow scene (1) and the still silent one (5) have the lowest arousal;
* the dark scenes (1: deep space, 6: dusk launch pad) have the lowest valence, the bright one the
  highest;

and, when the face model is installed, the smiling face scene (3) comes out happy from its faces.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
import sys

import av
import numpy as np
import opentimelineio as otio
import pytest
from test_cues import (
    bright_colourful_fast,
    dark_still_quiet,
    loud_beats,
    make_clip,
    quiet_hum,
)

from emsync_plugin import cli, pipeline
from emsync_plugin.demo import sample_dir
from emsync_plugin.emotion import analyze, mapping, scene_analysis, schedule
from emsync_plugin.emotion import media as media_module
from emsync_plugin.emotion.media import MediaReader
from emsync_plugin.emotion.sampling import AnalysisOptions, plan_samples
from emsync_plugin.errors import MediaError, ModelError, OptionsError
from emsync_plugin.pipeline import ScoreOptions, estimate_moods
from emsync_plugin.timeline import read_cuts
from emsync_plugin.timeline.model import Scene

SAMPLE = json.loads((sample_dir() / "sample.json").read_text())
KEY = {s["index"]: s["key"] for s in SAMPLE["scenes"]}  # 1 dark, 2 calm, 3 face, 4 bright, 5 silence, 6 tense, 7 speech
NO_FACES = AnalysisOptions(faces=False)


def otio_edit(path, clips, rate=25):
    """An OTIO timeline of ``clips`` [(media, source_start, seconds)] back to back on V1."""
    rt = lambda s: otio.opentime.RationalTime(round(s * rate), rate)  # noqa: E731
    tl = otio.schema.Timeline(path.stem)
    track = otio.schema.Track("V1", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    for media, start, seconds in clips:
        ref = otio.schema.ExternalReference(target_url=otio.url_utils.url_from_filepath(str(media)))
        track.append(otio.schema.Clip(media.stem, media_reference=ref,
                                      source_range=otio.opentime.TimeRange(rt(start), rt(seconds))))
    otio.adapters.write_to_file(tl, str(path))
    return path


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("analyze")
    dark = make_clip(folder / "dark.mp4", 4.0, dark_still_quiet, quiet_hum)
    bright = make_clip(folder / "bright.mp4", 4.0, bright_colourful_fast, loud_beats)
    return folder, dark, bright


def sample_without_markers():
    t = read_cuts(sample_dir() / "sample.otio")
    return dataclasses.replace(t, markers=())


# ------------------------------------------------------------------------------ real pictures


def test_dark_scene_is_lower_in_arousal_and_valence_than_bright(two_clips, tmp_path):
    folder, dark, bright = two_clips
    path = otio_edit(tmp_path / "edit.otio", [(dark, 0.0, 4.0), (bright, 0.0, 4.0)])
    moods = estimate_moods(read_cuts(path), ScoreOptions())
    assert [m.source for m in moods] == ["cues", "cues"]
    d, b = moods
    assert d.arousal < b.arousal and d.valence < b.valence
    assert d.arousal < -0.4 and b.arousal > 0.2


def test_sample_scenes_come_out_in_a_sensible_order():
    moods = {m.index: m for m in analyze.estimate(sample_without_markers(), options=NO_FACES)}
    assert all(m.source == "cues" and m.probs == {} for m in moods.values())
    arousal = sorted(moods, key=lambda i: moods[i].arousal)
    valence = sorted(moods, key=lambda i: moods[i].valence)
    named = lambda order: [KEY[i] for i in order]  # noqa: E731
    assert named(arousal)[-2:] == ["tense", "bright"], named(arousal)
    assert set(named(arousal)[:2]) == {"dark", "silence"}, named(arousal)
    assert set(named(valence)[:2]) == {"dark", "tense"} and named(valence)[-1] == "bright", named(valence)
    assert moods[4].arousal - moods[5].arousal > 0.8  # the range is used, not a huddle around 0


def test_sample_face_scene_is_happy_from_its_faces():
    assert scene_analysis.face_model() is not None, "the face model ships with emsync (onnx_models/fer_emotion.onnx)"
    moods = {m.index: m for m in analyze.estimate(sample_without_markers())}
    face = moods[3]
    assert face.source == "faces"
    assert max(face.probs, key=face.probs.get) == "happy" and face.probs["happy"] > 0.8
    assert face.valence > 0.4 and face.valence == max(m.valence for m in moods.values())
    assert not any(moods[i].probs for i in (1, 2, 5, 6))  # no faces there (sample.json)


def test_sample_marker_decides_the_face_scene():
    moods = estimate_moods(read_cuts(sample_dir() / "sample.otio"), ScoreOptions())
    assert moods[2].source == "marker" and (moods[2].valence, moods[2].arousal) == mapping.CENTRES["happy"]
    assert moods[2].probs == {}  # not analysed: the editor said so


# ------------------------------------------------------------------------------ faces


class FakeFace:
    def __init__(self, probs, weight):
        self.box, self.confidence, self.weight, self.probs = (10, 10, 40, 40), weight, weight, probs


class FakeAnalyzer:
    classes = mapping.CLASSES

    def __init__(self, probs, weight=0.9):
        self.calls, self.probs, self.weight = [], probs, weight

    def analyze(self, frame_rgb):
        assert frame_rgb.ndim == 3 and frame_rgb.shape[1] <= 320 and frame_rgb.dtype == np.uint8
        self.calls.append(frame_rgb.shape)
        return [FakeFace(self.probs, self.weight)]


def fake_reduce(faces):
    return (faces[0].probs, faces[0].weight) if faces else (None, 0.0)


def test_faces_are_fused_with_cues(two_clips, tmp_path, monkeypatch):
    folder, dark, _ = two_clips
    t = read_cuts(otio_edit(tmp_path / "one.otio", [(dark, 0.0, 4.0)]))
    cues_only = analyze.estimate(t, options=NO_FACES)[0]
    happy = {"happy": 0.9, "neutral": 0.1}
    fake = FakeAnalyzer(happy)
    monkeypatch.setattr(scene_analysis, "face_model", lambda: (fake, fake_reduce))
    schedule.clear_cache()
    got = analyze.estimate(t)[0]
    assert 1 <= len(fake.calls) <= AnalysisOptions().face_frames
    assert got.source == "faces" and got.probs == pytest.approx(happy)
    alpha = mapping.face_alpha(1.0, 0.9)
    expected = mapping.fuse(mapping.expected_va(happy), alpha, (cues_only.valence, cues_only.arousal))
    assert (got.valence, got.arousal) == pytest.approx(expected, abs=1e-3)
    assert got.valence > cues_only.valence + 0.5


def test_doubtful_faces_are_ignored(two_clips, tmp_path, monkeypatch):
    folder, dark, _ = two_clips
    t = read_cuts(otio_edit(tmp_path / "one.otio", [(dark, 0.0, 4.0)]))
    fake = FakeAnalyzer({"fear": 1.0}, weight=0.1)
    monkeypatch.setattr(scene_analysis, "face_model", lambda: (fake, fake_reduce))
    schedule.clear_cache()
    got = analyze.estimate(t)[0]
    assert got.source == "cues" and got.probs == {}


def test_missing_face_module_falls_back_to_cues_with_an_info(two_clips, tmp_path, monkeypatch, caplog):
    folder, dark, _ = two_clips
    t = read_cuts(otio_edit(tmp_path / "one.otio", [(dark, 0.0, 4.0)]))
    monkeypatch.setattr(scene_analysis, "_face_model", scene_analysis._UNSET)
    monkeypatch.setitem(sys.modules, "emsync_plugin.emotion.faces", None)  # import fails
    assert scene_analysis.face_model() is None
    assert analyze.estimate(t)[0].source == "cues"
    info = [r for r in caplog.records if "face model not available" in r.getMessage()]
    assert info and info[0].levelname == "INFO"


def test_missing_face_model_falls_back_to_cues(monkeypatch, caplog):
    import types

    class Missing:
        @classmethod
        def load(cls):
            raise ModelError("the model fer_emotion.onnx is not installed")

    monkeypatch.setattr(scene_analysis, "_face_model", scene_analysis._UNSET)
    monkeypatch.setitem(sys.modules, "emsync_plugin.emotion.faces",
                        types.SimpleNamespace(FaceAnalyzer=Missing, frame_face_probs=fake_reduce))
    assert scene_analysis.face_model() is None
    assert any("not installed" in r.getMessage() and r.levelname == "INFO" for r in caplog.records)


# ------------------------------------------------------------------------------ decoding


def test_continuing_a_pass_equals_seeking_each_scene():
    media = str(sample_dir() / "sample.mp4")  # its source shots, in file order: one forward pass
    scenes = [Scene(s["index"], s["start"], s["end"], media, s["start"], s["end"]) for s in SAMPLE["source_shots"]]
    schedule.clear_cache()
    together = schedule.analyze_scenes(scenes, NO_FACES)
    for s in (scenes[1], scenes[4]):
        reader = MediaReader(s.media, NO_FACES)
        try:
            alone = scene_analysis.analyze_source(reader, s.source_start, s.source_end, NO_FACES)
        finally:
            reader.close()
        a, b = alone.features, together[s.index].features
        picture = ("brightness", "saturation", "colourfulness", "motion", "frames")
        assert [getattr(a, k) for k in picture] == pytest.approx([getattr(b, k) for k in picture], abs=1e-6)
        # sound: an AAC decoder starting after a seek lacks one frame's overlap; otherwise the same
        assert a.loudness == pytest.approx(b.loudness, abs=0.1) and a.flux == pytest.approx(b.flux, abs=0.05)
        assert a.onset_rate == pytest.approx(b.onset_rate, abs=0.25)


def test_only_the_sampled_frames_of_intra_media_are_decoded(tmp_path, monkeypatch):
    path = tmp_path / "intra.avi"
    with av.open(str(path), "w") as out:
        v = out.add_stream("mjpeg", rate=25)
        v.width, v.height, v.pix_fmt = 160, 96, "yuvj420p"
        for i in range(250):  # 10 s, every frame a keyframe
            img = np.full((96, 160, 3), (i * 3) % 255, np.uint8)
            for packet in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)
    decoded = []
    real = MediaReader.decode

    def counting(self, stream, packets):
        out = real(self, stream, packets)
        decoded.extend(out)
        return out

    monkeypatch.setattr(MediaReader, "decode", counting)
    schedule.clear_cache()
    t = read_cuts(otio_edit(tmp_path / "intra.otio", [(path, 2.0, 4.0), (path, 7.0, 2.0)]))
    moods = analyze.estimate(t, options=NO_FACES)
    assert len(moods) == 2
    assert len(decoded) <= 8 + 4 + 4, len(decoded)  # 2 per second sampled, at most 8 a scene (+ slack), not 150


def long_gop_clip(path, seconds=20.0, keyint=125, rate=25):
    """A small H.264 clip with a keyframe every ``keyint`` frames (B-frames, no scene cuts)."""
    with av.open(str(path), "w") as out:
        params = f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=3"
        v = out.add_stream("libx264", rate=rate, options={"preset": "ultrafast", "crf": "20", "x264-params": params})
        v.width, v.height, v.pix_fmt = 160, 96, "yuv420p"
        for i in range(int(seconds * rate)):
            img = bright_colourful_fast(i, i / rate, (160, 96))
            for packet in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)
    return path


def test_a_long_scene_is_sampled_in_chains_from_keyframes(tmp_path, monkeypatch):
    path = long_gop_clip(tmp_path / "long.mp4")  # keyframes at 0, 5, 10, 15 s
    decoded, starts = [], []
    real_decode, real_plan = MediaReader.decode, plan_samples

    def counting(self, stream, packets):
        out = real_decode(self, stream, packets)
        decoded.extend(out)
        return out

    def plan(*args, **kw):
        samples = real_plan(*args, **kw)
        starts.extend(round(s.time, 2) for s in samples if not s.follows)
        return samples

    monkeypatch.setattr(MediaReader, "decode", counting)
    monkeypatch.setattr(media_module, "plan_samples", plan)
    reader = MediaReader(str(path), NO_FACES)
    try:
        got = []
        reader.read(4.0, 14.0, lambda k, frame, follows: got.append((float(frame.time), follows)), want_audio=False)
    finally:
        reader.close()
    times = [t for t, _ in got]
    assert [f for _, f in got] == [False, True] * 3  # three chains of two frames
    # the first two chains start at a keyframe (one frame to decode), the third where the run
    # of decoding from the keyframe at 10 s that the second one needs anyway reaches
    assert starts == [5.0, 10.0, 11.0]
    assert all(4.0 <= t < 14.0 for t in times) and times == sorted(times)
    steps = [b - a for (a, _), (b, follows) in itertools.pairwise(got) if follows]
    assert all(0.4 <= d <= 0.6 for d in steps), times  # the frames of a chain ~0.5 s apart
    assert len(decoded) <= 2 * 14, len(decoded)  # two keyframes and the reference frames of ~1.5 s, not 250


def test_plan_samples_spreads_short_ranges_and_chains_long_ones():
    short = plan_samples(10.0, 13.0, 6, 0.5, None)  # 6 frames 0.5 s apart fill 3 s
    assert [s.time for s in short] == pytest.approx([10.25, 10.75, 11.25, 11.75, 12.25, 12.75])
    assert [s.follows for s in short] == [False] + [True] * 5
    intra = [(k / 25, k) for k in range(25 * 40)]  # every frame a keyframe
    long = plan_samples(10.0, 30.0, 6, 0.5, intra)
    assert all(s.key_ts is not None for s in long)  # single-frame decodes only
    assert [s.follows for s in long] == [False, True] * 3
    assert long[0].time < 16.7 <= long[2].time < 23.4 <= long[4].time  # one chain in each third
    for t0, d in ((0.0, 0.04), (3.0, 0.7), (5.0, 4.3), (7.0, 61.0)):
        for keys in (None, intra, [(k * 2.4, k) for k in range(40)]):
            n = max(2, min(6, round(d * 2)))
            times = [s.time for s in plan_samples(t0, t0 + d, n, 0.5, keys)]
            assert len(times) == n and times == sorted(times) and all(t0 <= t < t0 + d for t in times), (t0, d, times)


def test_index_less_container_and_parallel_scenes_give_the_same_answers(two_clips, tmp_path, monkeypatch):
    _, dark, bright = two_clips
    ts = tmp_path / "bright.ts"  # MPEG-TS: no keyframe index, the reader finds keyframes by reading
    with av.open(str(bright)) as src, av.open(str(ts), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    scenes = [Scene(i + 1, 0.0, 1.5, str(m), a, a + 1.5) for i, (m, a) in enumerate(
        [(bright, 0.5), (ts, 0.5), (dark, 1.0), (bright, 2.0), (ts, 2.0)])]
    schedule.clear_cache()
    together = schedule.analyze_scenes(scenes, NO_FACES)
    monkeypatch.setattr(schedule, "MAX_WORKERS", 1)
    schedule.clear_cache()
    alone = schedule.analyze_scenes(scenes, NO_FACES)
    picture = ("brightness", "saturation", "colourfulness", "motion", "frames")
    for i in together:
        a, b = together[i].features, alone[i].features
        assert [getattr(a, k) for k in picture] == pytest.approx([getattr(b, k) for k in picture], abs=1e-6)
    for mp4, in_ts in ((1, 2), (4, 5)):  # same frames from the same range of either container
        a, b = together[mp4].features, together[in_ts].features
        assert [getattr(a, k) for k in picture] == pytest.approx([getattr(b, k) for k in picture], abs=1e-6)


def test_still_image_clip(tmp_path):
    from PIL import Image

    img = np.zeros((120, 200, 3), np.uint8)
    img[:, :100] = (250, 200, 40)
    Image.fromarray(img).save(tmp_path / "title.png")
    t = read_cuts(otio_edit(tmp_path / "still.otio", [(tmp_path / "title.png", 0.0, 3.0)]))
    result = schedule.analyze_scenes(t.scenes, NO_FACES)[1]
    assert result.features.frames == 6 and result.features.motion == 0.0
    assert result.features.loudness == -120.0  # no sound at all
    assert result.thumbnail is not None and result.thumbnail.shape[1] <= 96


def test_results_are_cached_per_source_range(monkeypatch):
    t = sample_without_markers()
    schedule.clear_cache()
    first = analyze.estimate(t, options=NO_FACES)

    def no_decoding(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(schedule, "MediaReader", no_decoding)
    assert analyze.estimate(t, options=NO_FACES) == first


def test_progress_bar_over_scenes(monkeypatch):
    seen = []
    real = schedule.progress.bar

    def bar(iterable=None, **kw):
        seen.append((kw.get("total"), kw.get("desc"), kw.get("unit")))
        return real(iterable, **kw)

    monkeypatch.setattr(schedule.progress, "bar", bar)
    analyze.estimate(sample_without_markers(), emotion=("2=calm",), options=NO_FACES)
    assert seen == [(6, "analysing scenes", "scene")]  # the overridden scene is not decoded


def test_thumbnails_for_the_report():
    t = read_cuts(sample_dir() / "sample.otio")
    analyze.estimate(t, options=NO_FACES)  # scene 3 is a marker scene: not analysed
    thumbs = analyze.scene_thumbnails(t, NO_FACES)
    assert sorted(thumbs) == [1, 2, 3, 4, 5, 6, 7]
    assert all(img.dtype == np.uint8 and img.shape[1] <= 96 and img.shape[2] == 3 for img in thumbs.values())


# ------------------------------------------------------------------------------ errors and whole-timeline values


def test_missing_media_is_one_clear_error(tmp_path):
    shutil.copy(sample_dir() / "sample.otio", tmp_path / "moved.otio")  # its sample.mp4 is not there
    t = read_cuts(tmp_path / "moved.otio")
    with pytest.raises(MediaError) as err:
        estimate_moods(t, ScoreOptions())
    msg = str(err.value)
    assert str(tmp_path / "sample.mp4") in msg and "missing" in msg and "scenes 1, 2, 4, 5, 6, 7" in msg
    assert "Relink the media, or set --emotion N=..." in msg and "\n" not in msg
    # every unmarked scene overridden: nothing to decode, no error
    moods = estimate_moods(t, ScoreOptions(emotion=tuple(f"{i}=calm" for i in (1, 2, 4, 5, 6, 7))))
    assert {m.source for m in moods} == {"cli", "marker"}
    # whole-timeline values stand in for the missing media
    moods = estimate_moods(t, ScoreOptions(valence=-0.2, arousal=0.4))
    assert [(m.valence, m.arousal, m.source) for m in moods if m.index != 3] == [(-0.2, 0.4, "cli")] * 6


def test_one_whole_timeline_value_replaces_one_axis():
    t = sample_without_markers()
    analysed = analyze.estimate(t, options=NO_FACES)
    half = analyze.estimate(t, valence=0.5, options=NO_FACES)
    assert all(h.valence == 0.5 and h.source == "cli" for h in half)
    assert [h.arousal for h in half] == [a.arousal for a in analysed]


def test_cli_analyze_json_and_report(tmp_path, capsys):
    png = tmp_path / "moods.png"
    code = cli.main(["-q", "analyze", str(sample_dir() / "sample.otio"), "--json", "--report", str(png),
                     "--emotion", "6=tense"])
    assert code == 0
    scenes = json.loads(capsys.readouterr().out)["scenes"]
    assert [s["index"] for s in scenes] == list(range(1, 8))
    assert all(set(s) == {"index", "start", "end", "probs", "valence", "arousal", "source"} for s in scenes)
    assert scenes[2]["source"] == "marker" and scenes[5]["source"] == "cli"
    assert all(s["source"] in ("faces", "cues") for s in scenes if s["index"] not in (3, 6))
    assert png.stat().st_size > 10_000
    code = cli.main(["analyze", str(sample_dir() / "sample.otio")])
    out = capsys.readouterr().out
    assert code == 0 and "valence" in out and "marker" in out


def test_scoring_writes_probs_and_sources_to_the_sidecar(two_clips, tmp_path):
    folder, dark, bright = two_clips
    path = otio_edit(tmp_path / "edit.otio", [(dark, 0.0, 3.0), (bright, 0.0, 3.0)])
    result = pipeline.score(path, ScoreOptions(engine="baseline", write_timeline=False, emotion=("2=excited",)))
    scenes = json.loads(result.sidecar.read_text())["scenes"]
    assert [(s["source"], s["probs"]) for s in scenes] == [("cues", {}), ("cli", {})]
    assert [m.source for m in result.moods] == ["cues", "cli"]


def test_the_learned_engine_records_its_sampling_in_the_sidecar(two_clips, tmp_path):
    from emsync_plugin import models

    assert "generator.onnx" in models.manifest()["files"], "the learned generator ships with emsync"
    folder, dark, bright = two_clips
    path = otio_edit(tmp_path / "edit.otio", [(dark, 0.0, 3.0), (bright, 0.0, 3.0)])
    result = pipeline.score(path, ScoreOptions(engine="emsync", write_timeline=False, guidance=0.5, seed=3))
    sampling = json.loads(result.sidecar.read_text())["sampling"]
    assert sampling["guidance"] == 0.5 and sampling["seed"] == 3
    assert sampling["mode_steering"] == ScoreOptions().sampling().mode_steering
    assert json.loads(result.sidecar.read_text())["precision"] == "int8"
    # the fp32 build (--precision fp32) scores too, with a chord on the cut, and says so
    exact = pipeline.score(path, ScoreOptions(engine="emsync", write_timeline=False, precision="fp32", seed=3))
    assert json.loads(exact.sidecar.read_text())["precision"] == "fp32"
    with pytest.raises(OptionsError, match="precision"):
        ScoreOptions(precision="fp8")
    base = pipeline.score(path, ScoreOptions(engine="baseline", write_timeline=False))
    assert "sampling" not in json.loads(base.sidecar.read_text())
