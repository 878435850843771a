"""Scenes analysed in batches (emotion/batches.py): the same answers as each range read alone,
each stretch of a file decoded once, and a sample's frame independent of what else is decoded."""
from __future__ import annotations

import random

import av
import numpy as np
import pytest
from test_cues import bright_colourful_fast, loud_beats

from emsync_plugin.emotion import batches, scene_analysis, schedule
from emsync_plugin.emotion.media import MediaReader
from emsync_plugin.emotion.sampling import AnalysisOptions, Sample
from emsync_plugin.timeline.model import Scene

NO_FACES = AnalysisOptions(faces=False)
PICTURE = ("brightness", "saturation", "colourfulness", "motion", "frames")
RATE, SR = 25, 16000


def b_frame_clip(path, seconds=24.0, keyint=50):
    """H.264 with B-frames (pyramid: a sample's frame may be demuxed after a later one), a keyframe
    every ``keyint`` frames, every frame different, and AAC sound."""
    with av.open(str(path), "w") as out:
        params = f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=3:b-pyramid=normal"
        v = out.add_stream("libx264", rate=RATE, options={"preset": "veryfast", "crf": "20", "x264-params": params})
        v.width, v.height, v.pix_fmt = 160, 96, "yuv420p"
        a = out.add_stream("aac", rate=SR)
        a.layout = "mono"
        for i in range(int(seconds * RATE)):
            img = bright_colourful_fast(i, i / RATE, (160, 96))
            img[:8] = (i * 7) % 256  # a band that tells every frame from the next
            out.mux(v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")))
        out.mux(v.encode())
        sound = np.clip(loud_beats(np.arange(int(seconds * SR)) / SR), -1, 1).astype(np.float32)
        for k in range(0, len(sound), 1024):
            fr = av.AudioFrame.from_ndarray(sound[None, k:k + 1024], format="flt", layout="mono")
            fr.sample_rate, fr.pts = SR, k
            out.mux(a.encode(fr))
        out.mux(a.encode())
    return path


def alone(scene):
    reader = MediaReader(scene.media, NO_FACES, threads=1)
    try:
        return scene_analysis.analyze_source(reader, *schedule.source_range(scene), NO_FACES)
    finally:
        reader.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return b_frame_clip(tmp_path_factory.mktemp("batches") / "bframes.mp4")


def overlapping_scenes(media, count=14, seed=3):
    """Shots of 1-5 s taken at random from the clip (overlapping, out of order)."""
    rng = random.Random(seed)
    out, at = [], 0.0
    for k in range(count):
        length = round(rng.uniform(1.0, 5.0), 2)
        start = round(rng.uniform(0.0, 23.0 - length), 2)
        out.append(Scene(k + 1, at, at + length, str(media), start, start + length))
        at += length
    return out


def test_batches_give_the_answers_of_each_range_read_alone(clip, monkeypatch):
    scenes = overlapping_scenes(clip)
    truth = {s.index: alone(s) for s in scenes}
    monkeypatch.setattr(schedule, "BATCH_SCENES", 4)  # several batches: readers go on from one to the next
    monkeypatch.setattr(schedule, "MAX_WORKERS", 2)
    monkeypatch.setattr(schedule, "_cpus", lambda: 2)
    for _ in range(3):  # the threads meet the batches in a different order each time
        schedule.clear_cache()
        together = schedule.analyze_scenes(scenes, NO_FACES)
        for i, a in truth.items():
            b = together[i]
            assert [getattr(b.features, k) for k in PICTURE] == pytest.approx([getattr(a.features, k) for k in PICTURE],
                                                                              abs=1e-6), i
            assert b.features.loudness == pytest.approx(a.features.loudness, abs=0.05)
            assert b.features.flux == pytest.approx(a.features.flux, abs=0.05)
            assert b.thumbnail is not None and np.array_equal(b.thumbnail, a.thumbnail)
    schedule.clear_cache()


def test_a_batch_decodes_each_stretch_once(clip, monkeypatch):
    scenes = overlapping_scenes(clip)
    fed: list[int] = []
    real = MediaReader.decode

    def counting(self, stream, packets):
        if stream.type == "video":
            fed.extend(1 for p in packets if p is not None)
        return real(self, stream, packets)

    monkeypatch.setattr(MediaReader, "decode", counting)
    for s in scenes:
        alone(s)
    one_by_one = len(fed)
    fed.clear()
    batch = batches.FileBatch(str(clip), [schedule.source_range(s) for s in scenes], NO_FACES, parts=3)
    readers: dict[str, MediaReader] = {}
    try:
        assert batch.ready(lambda m: readers.setdefault(m, MediaReader(m, NO_FACES, threads=1)))
    finally:
        for r in readers.values():
            r.close()
    packets = 24 * RATE
    assert len(fed) <= packets < one_by_one, (len(fed), one_by_one)  # at most one pass over the file


def test_a_sample_takes_the_first_frame_shown_at_its_time_however_far_decoding_goes(clip):
    reader = MediaReader(str(clip), NO_FACES, threads=1)
    try:
        keys = reader._keyframes()
        assert keys and reader._shift and reader._shift > 0  # B-frames: shown later than decoded
        for t in np.arange(2.1, 3.9, 0.04):  # every frame time of a GOP, between the frames too
            single = [Sample(float(t))]
            reader.decode_planned(single, keys)
            more = [Sample(float(t)), Sample(3.95)]
            reader.decode_planned(more, keys)
            assert single[0].frame_time == more[0].frame_time, t
            assert t - 0.5 / RATE <= single[0].frame_time < t + 3 / RATE
    finally:
        reader.close()


def test_a_reader_that_decoded_before_plans_like_a_fresh_one(clip):
    fresh = MediaReader(str(clip), NO_FACES, threads=1)
    used = MediaReader(str(clip), NO_FACES, threads=1)
    try:
        keys = fresh._keyframes()
        used.decode_planned([Sample(11.0), Sample(11.5)], keys)  # its demuxer is mid-file now
        for t0, t1 in ((3.9, 9.0), (14.0, 15.3)):
            a, _ = fresh.plan(t0, t1, 6)
            b, _ = used.plan(t0, t1, 6)
            assert [s.time for s in a] == [s.time for s in b]
    finally:
        fresh.close()
        used.close()
