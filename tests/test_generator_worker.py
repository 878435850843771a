"""The learned generator in its own process (issue 15): the same music as in this process, moods
sent as they are decided, the worker's errors and logs brought back, a lost worker replaced."""
from __future__ import annotations

import logging
import threading

import pytest

from emsync_plugin import spawning
from emsync_plugin.errors import MediaError, ModelError, OptionsError
from emsync_plugin.mood import SceneMood
from emsync_plugin.music import generator_worker
from emsync_plugin.music.decoding import SamplingOptions
from emsync_plugin.music.generator import Generator

CUTS = [6.8, 13.8, 21.8, 26.8]
DURATION = 30.0
MOODS = [SceneMood(i, a, b, v, ar) for i, (a, b, v, ar) in enumerate(
    [(0.0, 6.8, -0.6, -0.5), (6.8, 13.8, 0.7, 0.6), (13.8, 21.8, 0.0, 0.8), (21.8, 26.8, -0.8, 0.2),
     (26.8, 30.0, 0.5, -0.7)])]


@pytest.fixture(scope="module")
def remote():
    found = generator_worker.remote("fp32")
    assert found is not None, "this machine may spawn (two cores, a Python interpreter)"
    return found


class Slow(list):
    """Moods whose last one is decided only once ``release`` is set; records what was read."""

    def __init__(self, moods, release: threading.Event, fail: bool = False):
        super().__init__(moods)
        self.release, self.fail, self.read = release, fail, []

    def __getitem__(self, i):
        if i == len(self) - 1:
            assert self.release.wait(60), "never released"
            if self.fail:
                raise MediaError("cannot be decoded here", path="clip.mp4")
        self.read.append(i)
        return super().__getitem__(i)


def test_the_worker_gives_the_tokens_generated_here(remote):
    options = [SamplingOptions(seed=3), SamplingOptions(seed=4)]
    here = Generator.load(threads=1).generate_many(CUTS, DURATION, MOODS, options)
    there = remote.generate_many(CUTS, DURATION, MOODS, options)
    assert [r.tokens for r in there] == [r.tokens for r in here]
    assert [r.notes for r in there] == [r.notes for r in here]
    for a, b in zip(there, here):  # the MIDI is made here from the notes, velocities by the moods
        assert [(n.pitch, n.start, n.end, n.velocity) for i in a.midi.instruments for n in i.notes] == \
               [(n.pitch, n.start, n.end, n.velocity) for i in b.midi.instruments for n in i.notes]


def test_moods_are_sent_as_they_are_decided(remote):
    release = threading.Event()
    moods = Slow(MOODS, release)

    def watch(desc, fraction):  # the worker's progress, while the last mood is still undecided
        if fraction > 0.3:
            release.set()

    from emsync_plugin import progress

    with progress.listen(watch):
        found = remote.generate_many(CUTS, DURATION, moods, [SamplingOptions(seed=1)])
    assert release.is_set() and moods.read[-1] == len(MOODS) - 1  # read last, after the music passed 30 %
    assert found[0].tokens == remote.generate_many(CUTS, DURATION, MOODS, [SamplingOptions(seed=1)])[0].tokens


def test_an_analysis_error_is_raised_here_and_the_worker_goes_on(remote):
    before = generator_worker.pid()
    release = threading.Event()
    release.set()
    with pytest.raises(MediaError, match="clip.mp4: cannot be decoded here"):
        remote.generate_many(CUTS, DURATION, Slow(MOODS, release, fail=True), [SamplingOptions(seed=2)])
    assert generator_worker.pid() == before  # the same worker, ready for the next job
    assert remote.generate_many(CUTS, DURATION, MOODS, [SamplingOptions(seed=2)])[0].tokens


def test_the_workers_error_and_logs_come_back(remote, caplog):
    caplog.set_level(logging.INFO)
    remote.generate_many(CUTS, DURATION, MOODS, [SamplingOptions(seed=5)])
    assert any(r.name == "emsync_plugin.music.generator" and "generated 1 take(s)" in r.getMessage()
               for r in caplog.records)
    with pytest.raises(OptionsError, match="unknown precision 'fp16'"):
        generator_worker.remote("fp16")  # raised in the worker, the same error here
    assert remote.generate_many(CUTS, DURATION, MOODS, [SamplingOptions(seed=5)])[0].tokens


def test_a_lost_worker_is_an_error_and_the_next_run_starts_another(remote):
    first = generator_worker.pid()
    generator_worker._WORKER.process.kill()
    generator_worker._WORKER.process.join()
    with pytest.raises(ModelError, match="worker process stopped"):
        remote.generate_many(CUTS, DURATION, MOODS, [SamplingOptions(seed=6)])
    again = generator_worker.remote("fp32")
    assert again is not None and generator_worker.pid() not in (None, first)
    assert again.generate_many(CUTS, DURATION, MOODS, [SamplingOptions(seed=6)])[0].tokens


def test_a_worker_lost_while_loading_leaves_the_loading_to_this_process(monkeypatch):
    real = generator_worker._Process.call

    def dying(self, request, moods=None):
        self.process.kill()
        self.process.join()
        return real(self, request, moods)

    monkeypatch.setattr(generator_worker._Process, "call", dying)
    assert generator_worker.remote("fp32") is None and generator_worker.pid() is None


def test_no_worker_where_none_may_be_spawned(monkeypatch):
    monkeypatch.setattr(spawning, "may_spawn", lambda: False)
    assert generator_worker.remote("fp32") is None
