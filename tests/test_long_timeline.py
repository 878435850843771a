"""Length is free (issue 15): a 3-hour timeline is scored end to end and rendered in bounded memory.

Timelines of absent media with a fixed mood (``--valence/--arousal``), so no footage is needed
and analysis costs nothing; the baseline arranger and the ``piano`` style, so music and render
cost the least a real score does (the learned engine takes minutes for 3 hours on 2 cores: its
speed is measured by ``benchmarks/bench_pipeline.py``). Each score runs in its own process, whose
peak resident memory plus twice the largest of its render workers' (two on two cores) is the
figure asserted, each process's own peak (``synth.peak_memory_mb``: ``ru_maxrss`` would also
count pytest's memory, which the child held until ``exec``); a data limit of 4 GB keeps a
regression from taking the machine down with it.
"""
from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
from pathlib import Path

import opentimelineio as otio
import pytest

from emsync_plugin.timeline import read_cuts

RATE = 25
PEAK_MB = 1024  # the target, whatever the length
SAFETY = 4 << 30  # bytes of data a scoring process may hold before it fails (instead of swapping)

CHILD = r"""
import json, sys
import soundfile
from emsync_plugin.pipeline import ScoreOptions, score
from emsync_plugin.music import synth
result = score(sys.argv[1], ScoreOptions(**json.loads(sys.argv[2])))
own, worker = synth.peak_memory_mb()  # each process's own peak, read while the workers live
synth.shutdown()
info = soundfile.info(str(result.wav))
print(json.dumps({"frames": info.frames, "rate": info.samplerate, "scenes": len(result.moods),
                  "sources": sorted({m.source for m in result.moods}), "lufs": result.lufs,
                  "output": str(result.output), "rss_mb": own, "worker_mb": worker}))
"""


def absent_media_timeline(path: Path, minutes: float, seed: int = 15) -> Path:
    """An OTIO timeline of 1.5-8 s shots of a media file that does not exist."""
    rng = random.Random(seed)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    total, at = int(minutes * 60 * RATE), 0
    while at < total:
        n = min(total - at, rng.randint(int(1.5 * RATE), 8 * RATE))
        start = rng.randrange(0, 3600 * RATE)
        ref = otio.schema.ExternalReference(target_url=str(path.parent / "offline" / "reel.mov"))
        track.append(otio.schema.Clip(name=f"shot {len(track) + 1}", media_reference=ref,
                                      source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(start, RATE),
                                                                           otio.opentime.RationalTime(n, RATE))))
        at += n
    timeline = otio.schema.Timeline(name=path.stem)
    timeline.tracks.append(track)
    otio.adapters.write_to_file(timeline, str(path))
    return path


def score_in_child(timeline: Path, **options) -> dict:
    """``pipeline.score`` in a fresh process: what it wrote and its peak memory (``peak_mb``: its
    own and two workers' at most)."""
    opts = {"engine": "baseline", "style": "piano", "valence": 0.2, "arousal": -0.5, **options}

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (SAFETY, SAFETY))

    done = subprocess.run([sys.executable, "-c", CHILD, str(timeline), json.dumps(opts)], capture_output=True,
                          text=True, preexec_fn=limit, env={**os.environ, "EMSYNC_NO_PROGRESS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {**found, "peak_mb": found["rss_mb"] + 2 * found["worker_mb"]}


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory) -> dict:
    path = absent_media_timeline(tmp_path_factory.mktemp("ten") / "ten.otio", 10)
    return {"timeline": path, **score_in_child(path)}


def test_a_three_hour_timeline_is_scored_in_the_memory_of_a_short_one(tmp_path, ten_minutes):
    path = absent_media_timeline(tmp_path / "feature.otio", 180)
    found = score_in_child(path)
    timeline = read_cuts(path)
    assert timeline.duration == 3 * 3600
    assert found["frames"] == 3 * 3600 * found["rate"]  # exactly the timeline's length
    assert found["scenes"] == len(timeline.scenes) > 1000 and found["sources"] == ["cli"]
    assert found["lufs"] == pytest.approx(-16.0, abs=1.0)
    assert read_cuts(found["output"]).duration == timeline.duration  # written back, the score track on it
    assert found["peak_mb"] <= PEAK_MB, f"peak memory {found['peak_mb']:.0f} MB for 3 hours"
    # memory does not grow with the programme: 18 times longer, about the same peak
    assert found["peak_mb"] - ten_minutes["peak_mb"] < 150, (found["peak_mb"], ten_minutes["peak_mb"])


def test_ten_minutes_score_under_the_memory_target(ten_minutes):
    assert ten_minutes["frames"] == 600 * ten_minutes["rate"]
    assert ten_minutes["peak_mb"] <= PEAK_MB
