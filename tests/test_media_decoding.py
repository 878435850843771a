"""How much a sampled frame costs to decode (emotion/media.py, issue 15): only reference frames
from the keyframe before the sample, without the deblocking filter, on the thread count asked."""
from __future__ import annotations

import av
import numpy as np
import pytest
from test_analysis_batches import RATE, b_frame_clip

from emsync_plugin.emotion.media import MediaReader
from emsync_plugin.emotion.sampling import AnalysisOptions, Sample

NO_FACES = AnalysisOptions(faces=False)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return b_frame_clip(tmp_path_factory.mktemp("decoding") / "bframes.mp4", seconds=8.0)


def full_decode(path, skip_frame="DEFAULT", loop_filter=True) -> dict[float, np.ndarray]:
    """Every frame a plain decoder gives (time → luma)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        v.codec_context.thread_count = 1
        v.codec_context.skip_frame = skip_frame
        if not loop_filter:
            v.codec_context.options = {"skip_loop_filter": "all"}
        return {round(float(f.pts * v.time_base), 4): f.to_ndarray(format="gray") for f in c.decode(v)}


def decoded_by_reader(path, t: float) -> tuple[Sample, list[float]]:
    """Sample ``t`` read by a reader, and the times of every frame its decoder gave."""
    reader = MediaReader(str(path), NO_FACES, threads=1)
    out: list[float] = []
    real = reader.decode

    def counting(stream, packets):
        frames = real(stream, packets)
        out.extend(round(float(f.pts * stream.time_base), 4) for f in frames)
        return frames

    reader.decode = counting  # type: ignore[method-assign]
    try:
        sample = Sample(t)
        assert reader.decode_planned([sample], reader._keyframes())
        sample.frame = sample.frame.to_ndarray(format="gray")
        return sample, out
    finally:
        reader.close()


def test_decoder_setup(clip):
    reader = MediaReader(str(clip), NO_FACES, threads=1)
    try:
        cc = reader.video.codec_context
        assert str(cc.skip_frame) == "NONREF" and cc.options.get("skip_loop_filter") == "all"
        assert cc.thread_count == 1
    finally:
        reader.close()


def test_a_sample_costs_the_reference_frames_from_its_keyframe_and_no_more(clip):
    every = full_decode(clip)
    refs = full_decode(clip, skip_frame="NONREF", loop_filter=False)
    assert len(every) == 8 * RATE and 0.2 * len(every) < len(every) - len(refs)  # B-frames nothing references
    key, t = 4.0, 5.5  # keyframes every 2 s; the sample mid-GOP
    sample, decoded = decoded_by_reader(clip, t)
    assert t - 0.5 / RATE <= sample.frame_time < t + 3 / RATE
    assert round(sample.frame_time, 4) in refs
    needed = [x for x in refs if key - 1e-6 <= x <= sample.frame_time + 1e-6]
    assert set(decoded) <= set(refs)  # no frame nothing references
    assert set(needed) <= set(decoded)
    assert len(decoded) <= len(needed) + 1, (len(decoded), len(needed))  # at most the B-reference shown before
    assert len(decoded) < len([x for x in every if key - 1e-6 <= x <= sample.frame_time + 1e-6])


def test_sampled_frames_are_decoded_without_deblocking(clip):
    sample, _ = decoded_by_reader(clip, 5.5)
    t = round(sample.frame_time, 4)
    unfiltered = full_decode(clip, skip_frame="NONREF", loop_filter=False)[t]
    filtered = full_decode(clip)[t]
    assert np.array_equal(sample.frame, unfiltered)
    assert not np.array_equal(sample.frame, filtered)
    assert np.abs(sample.frame.astype(int) - filtered).mean() < 2.0  # the pixels hardly change
