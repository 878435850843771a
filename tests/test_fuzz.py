"""Every reader, fuzzed: a correct result or one EmsyncError line, never anything else.

A fast, seeded subset of ``benchmarks/fuzz.py`` (byte and token mutations of the shared
fixtures and the bundled sample, per reader) plus hypothesis-generated timelines, EDLs,
marker texts and command lines. The long run is ``python benchmarks/fuzz.py --cases 100000``.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import math
import sys
from pathlib import Path

import opentimelineio as otio
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from emsync_plugin.errors import EmsyncError, TimelineError
from emsync_plugin.timeline import read_cuts
from emsync_plugin.timeline.model import Shot, build_timeline

REPO = Path(__file__).resolve().parents[1]
logger = logging.getLogger(__name__)


def _load_harness():
    spec = importlib.util.spec_from_file_location("emsync_fuzz", REPO / "benchmarks" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["emsync_fuzz"] = module
    spec.loader.exec_module(module)
    return module


fuzz = _load_harness()

#: Cases per reader in the test suite (seeded: the same inputs every run).
CASES = {"video": 150, "fcp7xml": 400, "fcpxml": 600, "cli": 600, "otiod": 600}
DEFAULT_CASES = 1000
SEED = 20261125
HYPOTHESIS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    fuzz.setup(list(fuzz.READERS.values()), folder)
    logging.getLogger("emsync_plugin").setLevel(logging.NOTSET)  # setup() quiets it; the tests see logs
    logging.getLogger("emsync_plugin").propagate = True
    return folder


def _outcomes(reader, work: Path, cases: int) -> dict[str, int]:
    case_dir = work / f"case-{reader.name}"
    case_dir.mkdir(exist_ok=True)
    counts = {"ok": 0, "error": 0, "unexpected": 0, "crash": 0}
    failures = []
    for i in range(cases):
        name, data = fuzz.case_input(reader, SEED, i)
        outcome = fuzz.run_case(reader, data, case_dir)
        counts[outcome.kind] += 1
        if outcome.kind in ("crash", "unexpected"):
            failures.append(f"case {i} (from {name}): {outcome.detail}")
    logger.info("fuzz %s: %d cases: %s", reader.name, cases, counts)
    assert not failures, "\n\n".join(failures[:3])
    return counts


@pytest.mark.parametrize("name", list(fuzz.READERS))
def test_seeds_are_read(work, name):
    """The unmutated seeds are real, readable files: mutations start from valid input."""
    reader = fuzz.READERS[name]
    case_dir = work / f"seed-{name}"
    case_dir.mkdir(exist_ok=True)
    kinds = {seed_name: fuzz.run_case(reader, data, case_dir).kind for seed_name, data in reader.seeds}
    assert kinds and set(kinds.values()) <= {"ok", "error"}, kinds
    assert "ok" in kinds.values(), kinds


@pytest.mark.parametrize("name", list(fuzz.READERS))
def test_mutations(work, name, request):
    reader = fuzz.READERS[name]
    cases = CASES.get(name, DEFAULT_CASES)
    counts = _outcomes(reader, work, cases)
    if not hasattr(request.config, "emsync_fuzz_counts"):
        request.config.emsync_fuzz_counts = {}
    request.config.emsync_fuzz_counts[name] = counts  # printed at the end of the run (conftest.py)
    assert sum(counts.values()) == cases
    # mutations that keep a file readable and ones that break it both occur
    assert counts["error"] > 0
    if name not in ("sidecar", "cli"):
        assert counts["ok"] > 0


def test_harness_tells_crashes_from_errors(tmp_path):
    """The classification the fuzz relies on (a harness that sees no crash would prove nothing)."""
    from emsync_plugin.timeline.model import Timeline

    class Boom(fuzz.Reader):
        def run(self, data, workdir):
            if data == b"crash":
                raise KeyError("x")
            if data == b"nan":
                fuzz.check_timeline(Timeline("t", math.nan, 0.0, 1.0, (), ()))
            if data == b"two lines":
                raise TimelineError("line one\nline two")  # EmsyncError joins lines: still one
            raise TimelineError("is broken", path=workdir / "x.otio", hint="fix it")

    r = Boom("boom", ".otio", lambda w: [])
    assert fuzz.run_case(r, b"crash", tmp_path).kind == "crash"
    assert fuzz.run_case(r, b"nan", tmp_path).kind == "crash"
    assert fuzz.run_case(r, b"two lines", tmp_path).kind == "error"
    assert fuzz.run_case(r, b"other", tmp_path).kind == "error"


def test_dying_case_is_counted_and_the_run_goes_on(tmp_path, monkeypatch):
    """A case that kills the worker process (as OpenTimelineIO's segfaults did) is a crash,
    its input is saved for replay, and the remaining cases still run."""
    monkeypatch.setenv("EMSYNC_FUZZ_SELFTEST", "1")
    reader = fuzz.SelfTestReader("selftest", ".txt", lambda w: [("calm", b"emsync: calm")])
    reader.seeds = [("calm", b"emsync: calm")]
    inputs = [fuzz.case_input(reader, SEED, i)[1] for i in range(14)]
    dying = [i for i, data in enumerate(inputs) if data in (b"die", b"hang")]
    assert b"die" in inputs and b"hang" in inputs, "the seed gives no dying or hanging case"
    results = fuzz.fuzz_reader(reader, 14, SEED, tmp_path / "crashes", 1.0, 0, None, watchdog=2.0)
    assert results["cases"] == 14
    assert results["crashes"] == len(dying) and results["ok"] == 14 - len(dying)
    assert results["hangs"] == inputs.count(b"hang")
    assert sorted(c["case"] for c in results["crash_cases"]) == dying
    first = dying[0]
    assert (tmp_path / "crashes" / f"selftest-{SEED}-{first}.txt").read_bytes() == inputs[first]


# --------------------------------------------------------------------------- hypothesis


def _check(fn):
    """Run a reader: a valid timeline or a one-line EmsyncError."""
    try:
        result = fn()
    except EmsyncError as exc:
        assert "\n" not in str(exc) and str(exc).strip()
        return None
    if result is not None and hasattr(result, "scenes"):
        fuzz.check_timeline(result)
    return result


times = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**12).map(float),
                  st.floats(0, 100))


@HYPOTHESIS
@given(rate=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([24.0, 25.0, 30000 / 1001])),
       shots=st.lists(st.tuples(times, times, st.booleans()), max_size=30),
       duration=st.one_of(st.none(), times))
def test_build_timeline_any_numbers(rate, shots, duration):
    tracks = [[Shot(a, b, "/m.mov" if media else None, 0.0 if media else None, 1.0 if media else None) for a, b, media in shots]]
    _check(lambda: build_timeline("t", rate, tracks, duration=duration, path=Path("t.otio")))


def _clip_strategy():
    return st.builds(
        lambda dur, start, rate, name: ("clip", dur, start, rate, name),
        st.integers(-5, 500), st.integers(-100, 10**6), st.sampled_from([24, 25, 23.976, 1, 1000, 0.5, 120]),
        st.text(max_size=12),
    )


items = st.recursive(
    st.one_of(_clip_strategy(), st.builds(lambda d: ("gap", d), st.integers(-5, 300)),
              st.builds(lambda a, b: ("transition", a, b), st.integers(-5, 50), st.integers(-5, 50))),
    lambda inner: st.builds(lambda ch: ("stack", ch), st.lists(st.lists(inner, max_size=4), min_size=1, max_size=2)),
    max_leaves=20,
)


def _item(spec):
    kind = spec[0]
    rt = otio.opentime.RationalTime
    if kind == "clip":
        _, dur, start, rate, name = spec
        ref = otio.schema.ExternalReference(target_url=f"media/{name or 'x'}.mov")
        return otio.schema.Clip(name=name, media_reference=ref,
                                source_range=otio.opentime.TimeRange(rt(start, rate), rt(dur, rate)))
    if kind == "gap":
        return otio.schema.Gap(source_range=otio.opentime.TimeRange(rt(0, 24), rt(spec[1], 24)))
    if kind == "transition":
        return otio.schema.Transition(in_offset=rt(spec[1], 24), out_offset=rt(spec[2], 24))
    stack = otio.schema.Stack()
    for children in spec[1]:
        track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
        for child in children:
            track.append(_item(child))
        stack.append(track)
    return stack


@HYPOTHESIS
@given(tracks=st.lists(st.lists(items, max_size=8), min_size=0, max_size=3),
       start=st.one_of(st.none(), st.integers(-10**6, 10**9)))
def test_generated_otio_timelines(tmp_path_factory, tracks, start):
    timeline = otio.schema.Timeline(name="gen")
    if start is not None:
        timeline.global_start_time = otio.opentime.RationalTime(start, 24)
    try:
        for spec in tracks:
            track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
            for item in spec:
                track.append(_item(item))
            timeline.tracks.append(track)
        text = otio.adapters.write_to_string(timeline, "otio_json")
    except Exception:  # noqa: BLE001 - OTIO refused to build it (e.g. two transitions in a row)
        assume(False)
    path = tmp_path_factory.mktemp("gen") / "gen.otio"
    path.write_text(text)
    _check(lambda: read_cuts(path))


tc = st.builds(lambda h, m, s, f, sep: f"{h:02d}:{m:02d}:{s:02d}{sep}{f:02d}",
               st.integers(0, 99), st.integers(0, 99), st.integers(0, 99), st.integers(0, 99), st.sampled_from(":;."))
events = st.builds(
    lambda n, reel, chan, kind, a, b, c, d: f"{n:03d}  {reel} {chan} {kind} {a} {b} {c} {d}",
    st.integers(0, 999), st.sampled_from(["AX", "BL", "TAPE1", "x" * 40]), st.sampled_from(["V", "A", "A2", "B", "AA/V"]),
    st.sampled_from(["C", "D 010", "W001 020", "K B 005"]), tc, tc, tc, tc,
)
edl_lines = st.lists(st.one_of(events, st.sampled_from(["TITLE: gen", "FCM: DROP FRAME", "FCM: NON-DROP FRAME",
                                                        "* FROM CLIP NAME: a.mov", "M2   AX       050.0                01:00:00:00",
                                                        "* LOC: 01:00:01:00 RED emsync: happy"]), st.text(max_size=40)),
                     min_size=1, max_size=25)


@HYPOTHESIS
@given(lines=edl_lines, rate=st.one_of(st.none(), st.sampled_from([24.0, 25.0, 29.97, 30.0, 60.0])))
def test_generated_edls(tmp_path_factory, lines, rate):
    path = tmp_path_factory.mktemp("edl") / "gen.edl"
    path.write_text("\n".join(lines) + "\n", errors="replace")
    _check(lambda: read_cuts(path, rate=rate))


@HYPOTHESIS
@given(text=st.one_of(st.text(max_size=80), st.builds(lambda t: "emsync:" + t, st.text(max_size=60)),
                      st.builds(lambda v, a: f"emsync: v={v} a={a}", st.floats(), st.floats())))
def test_marker_and_emotion_text(tmp_path_factory, text):
    _check(lambda: fuzz.READERS["markers"].run(text.encode("utf-8", "surrogatepass"), tmp_path_factory.getbasetemp()))


@HYPOTHESIS
@given(argv=st.lists(st.one_of(st.sampled_from(fuzz.CLI_TOKENS), st.text(max_size=20)), max_size=8))
def test_command_lines(work, argv):
    reader = fuzz.READERS["cli"]
    base = ["cuts", "{dir}/sample.otio"] if not argv or argv[0] not in ("cuts", "score", "analyze") else []
    data = "\0".join(base + [a.replace("\0", "") for a in argv]).encode("utf-8", "surrogatepass")
    outcome = fuzz.run_case(reader, data, work)
    assert outcome.kind in ("ok", "error"), outcome.detail


@HYPOTHESIS
@given(doc=st.dictionaries(st.sampled_from(["version", "engine", "seed", "wav", "midi", "duration", "rate", "cuts", "scenes"]),
                           st.recursive(st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=8)),
                                        lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=6), c, max_size=4)),
                                        max_leaves=12)))
def test_sidecar_documents(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("sidecar") / "x.emsync.json"
    path.write_text(json.dumps(doc))
    from emsync_plugin.sidecar import read_sidecar

    _check(lambda: read_sidecar(path))


@pytest.mark.parametrize("name", ["otio", "otioz", "otiod", "kdenlive", "fcp7xml", "fcpxml", "edl"])
def test_readable_mutations_are_written_back(work, tmp_path, name):
    """What reads must write back (or say why not): the adapters' writers raised on some
    (an FCP 7 timecode rate SMPTE does not have, an FCPXML clip it cannot place)."""
    from emsync_plugin.timeline import ScoreTrack, write_timeline

    reader = fuzz.READERS[name]
    case_dir = tmp_path / "case"
    case_dir.mkdir()
    written = 0
    for i in range(120 if name in ("fcp7xml", "otiod") else 250):
        _, data = fuzz.case_input(reader, SEED, i)
        try:
            timeline = read_cuts(reader.prepare(data, case_dir))
        except EmsyncError:
            continue
        out = tmp_path / f"out{i}{'.otio' if name == 'edl' else reader.prepare(data, case_dir).suffix}"
        score = ScoreTrack(wav=tmp_path / "s.wav", midi=tmp_path / "s.mid", duration=max(timeline.duration, 1.0),
                           metadata={"seed": i})
        try:
            write_timeline(timeline, out, score)
        except EmsyncError as exc:
            assert "\n" not in str(exc)
            continue
        _check(lambda out=out: read_cuts(out))
        written += 1
    assert written > 0
