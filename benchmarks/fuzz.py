"""Fuzz every reader of emsync: a correct result or one ``EmsyncError`` line, nothing else.

Each case is a mutation of a real file: the shared fixtures (``tests/fixtures``, a copy of
``../shared/fixtures``), the bundled sample (``emsync_plugin/data/sample``) and small files made
from them (OTIO bundles, tiny videos). Mutations are byte-level (bit flips, interesting bytes,
deleted/duplicated/spliced spans, truncation) and token-level (numbers replaced by extreme
values, XML/JSON/path tricks inserted). A case ends in one of

* ``ok``     the reader returned a timeline that passes the invariants below,
* ``error``  an :class:`~emsync_plugin.errors.EmsyncError` with a one-line message,
* ``crash``  anything else: another exception, a message over several lines, an invalid
             result (NaN times, cuts out of order, scenes not tiling the timeline), a hang
             (``--timeout``), memory over ``--memory-mb``, or the process dying.

Usage::

    python benchmarks/fuzz.py --reader all --cases 100000 --seed 1
    python benchmarks/fuzz.py --reader kdenlive --cases 2000 --seed 7 --crashes /tmp/crashes

The run prints a table per reader (cases, ok, EmsyncErrors, crashes, seconds), writes each
crashing input to ``--crashes`` (default ``benchmarks/results/fuzz-crashes/``) for
reproduction (``python benchmarks/fuzz.py --replay FILE --reader NAME``), and a JSON summary
to ``--json`` (default ``benchmarks/results/fuzz.json``). Cases run in a worker process that
is restarted when it dies; case ``i`` of a reader is the same input for the same ``--seed``.
``tests/test_fuzz.py`` runs a small seeded subset of the same cases.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SAMPLE = REPO / "emsync_plugin" / "data" / "sample"
RESULTS = REPO / "benchmarks" / "results"

#: Values that break careless number handling.
NUMBERS = [
    "0", "-0", "1", "-1", "-2147483648", "2147483647", "4294967296", "9223372036854775807",
    "99999999999999999999999", "1e308", "-1e308", "1e-320", "nan", "NaN", "inf", "-inf", "Infinity",
    "0.0000001", "1/0", "0/0", "24000/1001", "86400", "3600", "00:00:00:00", "23:59:59:29", "99:99:99:99",
    "00:00:00.000", "-00:00:01.000", "1.5", "0x10", "1_000", "", " ", "1e9", "-999999999",
]
#: Snippets inserted anywhere: path tricks, markup, encodings.
SNIPPETS = [
    "../", "../../../../etc/passwd", "/etc/passwd", "file:///etc/passwd", "file://host/share/clip.mov",
    "C:\\Users\\ed\\clip.mov", "\\\\server\\share\\clip.mov", "--help", "-rf", "clip with spaces.mov",
    "ümlaut-😀.mov", "line\nbreak.mov", "$(touch /tmp/pwned)", "`id`", ";rm -rf /", "%s%n", "\x00",
    "<", ">", "&", "&amp;", "&lol;", "<!--", "-->", "<![CDATA[", "]]>", "<!DOCTYPE x [<!ENTITY a \"b\">]>",
    "<x>", "</x>", '"', "'", "{", "}", "[", "]", ",", ":", "null", "true", "\\u0000", "\\ud800",
    "emsync: happy", "emsync: v=9 a=9", "emsync: v=nan a=0", "\ufeff", "\r\n", "\t",
]


# -------------------------------------------------------------------------------------------
# mutation


def mutate_bytes(data: bytes, rng: random.Random, others: list[bytes], max_size: int) -> bytes:
    """1-4 stacked mutations of ``data`` (``others``: seeds to splice from)."""
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        op = rng.randrange(10)
        n = len(buf)
        if n == 0:
            buf += rng.choice(SNIPPETS).encode()
            continue
        i = rng.randrange(n)
        if op == 0:  # bit flip
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # interesting byte
            buf[i] = rng.choice(b"\x00\xff\x7f\x80<>&\"'\n:;/\\{}[]0-9")
        elif op == 2:  # delete a span
            j = min(n, i + rng.choice((1, 2, 8, 64, 512, 4096)))
            del buf[i:j]
        elif op == 3:  # duplicate a span somewhere
            j = min(n, i + rng.choice((1, 8, 64, 512, 4096)))
            at = rng.randrange(n + 1)
            buf[at:at] = buf[i:j] * rng.choice((1, 1, 2, 16))
        elif op == 4:  # truncate
            del buf[rng.randrange(n):]
        elif op in (5, 6):  # a number replaced by an extreme value
            numbers = list(re.finditer(rb"-?\d+(?:[./]\d+)?", bytes(buf[max(0, i - 2000):i + 2000])))
            if numbers:
                m = rng.choice(numbers)
                a, b = max(0, i - 2000) + m.start(), max(0, i - 2000) + m.end()
                buf[a:b] = rng.choice(NUMBERS).encode()
        elif op == 7:  # a snippet inserted
            buf[i:i] = rng.choice(SNIPPETS).encode()
        elif op == 8:  # splice with another seed
            other = rng.choice(others) if others else bytes(buf)
            if other:
                k = rng.randrange(len(other))
                buf[i:] = other[k:k + rng.choice((64, 1024, 1 << 20))]
        else:  # overwrite a span with a copy of another part
            j = min(n, i + rng.choice((1, 4, 16, 256)))
            k = rng.randrange(n)
            buf[i:j] = buf[k:k + (j - i)]
        if len(buf) > max_size:
            del buf[max_size:]
    return bytes(buf)


# -------------------------------------------------------------------------------------------
# readers


class CrashFound(Exception):
    """A result that breaks an invariant (counted as a crash)."""


class DryRun(Exception):
    """The CLI fuzz stops ``score`` after its checks (no music is made)."""


@dataclass
class Refused:
    """A clean refusal that is not an exception (the CLI's exit status 2 with one error line)."""

    message: str


def check_timeline(tl) -> None:
    """Invariants of every Timeline a reader returns."""
    from emsync_plugin.cli import format_table
    from emsync_plugin.emotion.overrides import marker_overrides
    from emsync_plugin.errors import EmsyncError

    def bad(what):
        raise CrashFound(f"invalid result: {what}")

    if not (math.isfinite(tl.rate) and tl.rate > 0):
        bad(f"rate {tl.rate}")
    if not (math.isfinite(tl.duration) and tl.duration >= 0 and math.isfinite(tl.start)):
        bad(f"duration {tl.duration} / start {tl.start}")
    prev = 0.0
    for c in tl.cuts:
        if not (prev < c < tl.duration) or (prev == 0.0 and c <= 0):
            bad(f"cut {c} out of order or outside 0..{tl.duration}")
        prev = c
    if tl.scenes:
        if tl.scenes[0].start != 0.0 or tl.scenes[-1].end != tl.duration:
            bad("scenes do not cover the timeline")
        for a, b in zip(tl.scenes, tl.scenes[1:]):
            if a.end != b.start or b.index != a.index + 1:
                bad("scenes are not contiguous")
    json.dumps(tl.to_json(), allow_nan=False)  # ValueError on NaN/inf anywhere
    format_table(tl)
    try:
        marker_overrides(tl)
    except EmsyncError:
        pass


def _read_file(path: Path):
    from emsync_plugin.timeline import read_cuts

    tl = read_cuts(path)
    check_timeline(tl)
    return tl


@dataclass
class Reader:
    name: str
    suffix: str
    make_seeds: Callable[[Path], list[tuple[str, bytes]]]
    max_size: int = 1 << 20
    seeds: list[tuple[str, bytes]] = field(default_factory=list)

    def prepare(self, data: bytes, workdir: Path) -> Path:
        path = workdir / f"case{self.suffix}"
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        path.write_bytes(data)
        return path

    def run(self, data: bytes, workdir: Path):
        return _read_file(self.prepare(data, workdir))

    def mutate(self, data: bytes, rng: random.Random) -> bytes:
        return mutate_bytes(data, rng, [s for _, s in self.seeds], self.max_size)


def _files(*globs: str) -> Callable[[Path], list[tuple[str, bytes]]]:
    def make(_work: Path) -> list[tuple[str, bytes]]:
        out = []
        for g in globs:
            base = SAMPLE if g.startswith("sample") else FIXTURES
            for p in sorted(base.glob(g)):
                out.append((p.name, p.read_bytes()))
        return out
    return make


class KdenliveReader(Reader):
    """Kdenlive projects, one case in five saved as ``.xml`` (MLT XML is told from FCP 7 XML by content)."""

    def prepare(self, data: bytes, workdir: Path) -> Path:
        path = workdir / ("case.xml" if len(data) % 5 == 0 else "case.kdenlive")
        path.write_bytes(data)
        return path


def _otio_seeds(work: Path) -> list[tuple[str, bytes]]:
    import opentimelineio as otio

    seeds = [("sample.otio", (SAMPLE / "sample.otio").read_bytes())]
    for folder, name in (("fcp7xml", "sample_just_track.xml"), ("edl", "gap_test.edl"), ("edl", "dissolve_test.edl")):
        kw = {"rate": 25} if name.endswith(".edl") else {}
        t = otio.adapters.read_from_file(str(FIXTURES / folder / name), **kw)
        seeds.append((name + ".otio", otio.adapters.write_to_string(t, "otio_json").encode()))
    return seeds


def _bundle_timeline():
    import opentimelineio as otio

    t = otio.adapters.read_from_file(str(SAMPLE / "sample.otio"))
    for clip in t.find_clips():
        clip.media_reference = otio.schema.MissingReference()
    return t


def _otioz_seeds(work: Path) -> list[tuple[str, bytes]]:
    import opentimelineio as otio

    out = work / "seed.otioz"
    otio.adapters.write_to_file(_bundle_timeline(), str(out), media_policy="MissingIfNotFile")
    return [("sample.otioz", out.read_bytes())]


class OtiozReader(Reader):
    """Byte mutations of the zip, and rebuilt zips whose content or member names are mutated."""

    def mutate(self, data: bytes, rng: random.Random) -> bytes:
        if rng.random() < 0.3:
            return super().mutate(data, rng)
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = [(i.filename, z.read(i.filename)) for i in z.infolist()]
        buf = io.BytesIO()
        with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as z:
            warnings.simplefilter("ignore")  # duplicate member names are part of the game
            for name, body in members:
                if name.endswith(".otio") and rng.random() < 0.8:
                    body = mutate_bytes(body, rng, [], self.max_size)
                if rng.random() < 0.15:
                    name = rng.choice(["../evil.otio", "/tmp/evil", "media/../../x", "a/" * 50 + "x",
                                       "content.otio", "version.txt", "media/clip with space.mov"])
                info = zipfile.ZipInfo(name)
                if rng.random() < 0.05:
                    info.external_attr = 0o120777 << 16  # a symlink member
                z.writestr(info, body)
            for _ in range(rng.choice((0, 0, 0, 1, 3))):
                z.writestr(f"media/extra{rng.randrange(9)}.mov", b"x" * rng.choice((0, 10, 1000)))
        return buf.getvalue()


class OtiodReader(Reader):
    """An .otiod folder whose content.otio is the case."""

    def prepare(self, data: bytes, workdir: Path) -> Path:
        path = workdir / "case.otiod"
        if path.exists():
            shutil.rmtree(path)
        (path / "media").mkdir(parents=True)
        (path / "content.otio").write_bytes(data)
        return path


def _otiod_seeds(work: Path) -> list[tuple[str, bytes]]:
    import opentimelineio as otio

    out = work / "seed.otiod"
    otio.adapters.write_to_file(_bundle_timeline(), str(out), media_policy="MissingIfNotFile")
    return [("sample.otiod/content.otio", (out / "content.otio").read_bytes())]


def _video_seeds(work: Path) -> list[tuple[str, bytes]]:
    """Tiny videos made here (two shots each) and the head of the bundled sample."""
    import av
    import numpy as np

    seeds = []
    for codec, fmt, suffix in (("mpeg4", "mp4", "mp4"), ("mjpeg", "matroska", "mkv")):
        path = work / f"tiny.{suffix}"
        with av.open(str(path), "w", format=fmt) as c:
            s = c.add_stream(codec, rate=10)
            s.width, s.height, s.pix_fmt = 32, 32, "yuv420p" if codec == "mpeg4" else "yuvj420p"
            for i in range(20):
                img = np.full((32, 32, 3), 20 if i < 10 else 230, dtype=np.uint8)
                for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        seeds.append((path.name, path.read_bytes()))
    seeds.append(("sample.mp4[:64k]", (SAMPLE / "sample.mp4").read_bytes()[:65536]))
    return seeds


class VideoReader(Reader):
    def prepare(self, data: bytes, workdir: Path) -> Path:
        path = workdir / "case.mp4"
        path.write_bytes(data)
        return path


MARKER_SEEDS = [
    "emsync: happy", "emsync: v=0.6 a=-0.3", "emsync: valence=0.6, arousal=-0.3", "emsync: 0.6, -0.3",
    "EMSYNC:Tense", "emsync: calm\nsecond line", "emsync: joyful", "emsync: hapy", "Shot 3", "emsync:",
]


class MarkerReader(Reader):
    """Marker text as any reader surfaces it, and the same text as ``--emotion N=TEXT``."""

    def run(self, data: bytes, workdir: Path):
        from emsync_plugin.emotion import overrides
        from emsync_plugin.errors import EmsyncError, OptionsError
        from emsync_plugin.timeline.model import Marker, Shot, build_timeline

        text = data.decode("utf-8", "replace")
        tl = build_timeline("fuzz", 25.0, [[Shot(0.0, 2.0, "/a.mov", 0.0, 2.0), Shot(2.0, 4.0, "/b.mov", 0.0, 2.0)]],
                            markers=[Marker(1.0, text, "", "guide"), Marker(3.0, "cut", text, "clip marker: b")],
                            path=workdir / "markers.otio")
        got = overrides.marker_overrides(tl)
        for o in got.values():
            if not (-1 <= o.valence <= 1 and -1 <= o.arousal <= 1):
                raise CrashFound(f"invalid result: mood {o}")
        try:
            overrides.cli_overrides([f"1={text}"], tl)
        except OptionsError as exc:
            if "\n" in str(exc):
                raise CrashFound(f"message over several lines: {exc!r}") from exc
        try:
            overrides.cli_overrides([text], tl)
        except EmsyncError as exc:
            if "\n" in str(exc):
                raise CrashFound(f"message over several lines: {exc!r}") from exc
        return got


class SidecarReader(Reader):
    def run(self, data: bytes, workdir: Path):
        from emsync_plugin.sidecar import read_sidecar

        return read_sidecar(self.prepare(data, workdir))


def _sidecar_seeds(work: Path) -> list[tuple[str, bytes]]:
    from emsync_plugin.timeline import read_cuts

    tl = read_cuts(SAMPLE / "sample.otio")
    moods = [{"index": s.index, "start": s.start, "end": s.end, "valence": 0.1, "arousal": -0.2,
              "source": "cli", "probs": {}} for s in tl.scenes]
    sidecar = {
        "version": "0.1.0", "created": "2026-11-25T18:00:00+0000", "source": str(SAMPLE / "sample.otio"),
        "engine": "baseline", "seed": 0, "wav": "/x/sample.emsync.wav", "midi": "/x/sample.emsync.mid",
        "sidecar": "/x/sample.emsync.json", "loudness": -16.0, "lufs": -16.02, "fade": 3.0, "rate": tl.rate,
        "duration": tl.duration, "cuts": list(tl.cuts), "scenes": moods,
    }
    return [("sample.emsync.json", (json.dumps(sidecar, indent=2) + "\n").encode())]


CLI_TOKENS = [
    "cuts", "score", "analyze", "--json", "--track", "V1", "V9", "2", "0", "-1", "Main", "--rate", "--emotion",
    "1=happy", "2=0.2,0.7", "99=sad", "1=9,9", "1=nan,0", "=", "--valence", "--arousal", "--seed", "--loudness",
    "--fade", "--temperature", "--top-p", "--engine", "baseline", "emsync", "auto", "--in-place", "-o",
    "out.otio", "out.edl", "out.kdenlive", "out.wav", "--no-timeline", "--debug", "-q", "--", "-", "--report",
    *NUMBERS,
]


class CliReader(Reader):
    """``emsync`` argument lists (NUL-separated); ``score`` stops after validation and planning."""

    def run(self, data: bytes, workdir: Path):
        from emsync_plugin import cli, pipeline
        from emsync_plugin.emotion.overrides import cli_overrides, marker_overrides

        argv = [a.replace("{dir}", str(self.files)) for a in data.decode("utf-8", "replace").split("\0")]
        if argv and argv[0] == "--debug":
            argv = argv[1:]
        argv = [a for a in argv if a not in ("--debug",)]  # tracebacks are the point of --debug

        def dry_score(path, options, progress=None):
            tl = pipeline.read_cuts(path, track=options.track, rate=options.rate, min_duration=pipeline.MIN_DURATION)
            pipeline.timeline_io.output_path(path, tl, options.output, options.in_place)
            cli_overrides(options.emotion, tl)
            marker_overrides(tl)
            raise DryRun

        def dry_moods(tl, options):
            cli_overrides(options.emotion, tl)
            raise DryRun

        out, err = io.StringIO(), io.StringIO()
        saved = pipeline.score, pipeline.estimate_moods
        pipeline.score, pipeline.estimate_moods = dry_score, dry_moods
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli.main(argv)
        except DryRun:
            return 0
        except SystemExit as exc:  # argparse: usage and one error line
            if exc.code not in (0, 2):
                raise CrashFound(f"argparse exit {exc.code}") from None
            return Refused(err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "usage") if exc.code else 0
        finally:
            pipeline.score, pipeline.estimate_moods = saved
            logging.getLogger("emsync_plugin").handlers[:] = []
        lines = [line for line in err.getvalue().splitlines() if line.startswith("emsync: error:")]
        if code not in (0, 2) or (code == 2 and len(lines) != 1) or "Traceback" in err.getvalue():
            raise CrashFound(f"exit {code}, stderr {err.getvalue()[-500:]!r}")
        return Refused(lines[0]) if code == 2 else code

    def mutate(self, data: bytes, rng: random.Random) -> bytes:
        args = data.decode().split("\0")
        for _ in range(rng.choice((1, 1, 2, 3))):
            op = rng.randrange(5)
            i = rng.randrange(len(args) + 1)
            if op == 0:
                args.insert(i, rng.choice(CLI_TOKENS))
            elif op == 1 and len(args) > 1:
                del args[min(i, len(args) - 1)]
            elif op == 2 and args:
                args[min(i, len(args) - 1)] = rng.choice(CLI_TOKENS)
            elif op == 3:
                args[i:i] = [rng.choice(["--rate", "--valence", "--arousal", "--seed", "--fade", "--loudness",
                                         "--temperature", "--top-p", "--track", "--emotion"]),
                             rng.choice(NUMBERS + CLI_TOKENS)]
            else:
                j = min(i, len(args) - 1)
                if args:
                    args[j] = mutate_bytes(args[j].encode(), rng, [], 256).decode("utf-8", "replace")
        return "\0".join(args).replace("\x00\x00", "\0").encode()


def _cli_seeds(work: Path) -> list[tuple[str, bytes]]:
    READERS["cli"].files = work
    edl = FIXTURES / "edl" / "gap_test.edl"
    shutil.copy(edl, work / "gap test.edl")
    shutil.copy(SAMPLE / "sample.otio", work / "sample.otio")
    shutil.copy(FIXTURES / "kdenlive" / "kdenlive_mixes_markers.kdenlive", work / "-mixes.kdenlive")
    argvs = [
        ["cuts", "{dir}/gap test.edl", "--rate", "25", "--json"],
        ["cuts", "{dir}/sample.otio", "--track", "V1"],
        ["score", "{dir}/sample.otio", "--engine", "baseline", "--valence", "0.5", "--arousal", "-0.2",
         "--emotion", "3=tense", "--seed", "3", "--fade", "2", "--loudness", "-18"],
        ["score", "{dir}/-mixes.kdenlive", "--in-place", "--emotion", "1=0.2,0.7", "--temperature", "0.9", "--top-p", "0.8"],
        ["analyze", "{dir}/sample.otio", "--valence", "0.1", "--arousal", "0.1", "--json"],
    ]
    return [(" ".join(a), "\0".join(a).encode()) for a in argvs]


class WritebackReader(Reader):
    """Read a mutated timeline of any OTIO family or Kdenlive and write it back with a score
    track; what was written must read again. A case is ``SUFFIX\\n`` + the file's bytes."""

    def make(self, work: Path) -> list[tuple[str, bytes]]:
        seeds = []
        for name in ("otio", "kdenlive", "fcpxml", "edl"):
            for seed_name, data in READERS[name].make_seeds(work):
                seeds.append((seed_name, READERS[name].suffix.encode() + b"\n" + data))
        for seed_name, data in _files("fcp7xml/*.xml")(work):
            if len(data) < 100_000:  # the 1 MB export makes every case slow
                seeds.append((seed_name, b".xml\n" + data))
        return seeds

    def mutate(self, data: bytes, rng: random.Random) -> bytes:
        suffix, _, body = data.partition(b"\n")
        return suffix + b"\n" + mutate_bytes(body, rng, [], self.max_size)

    def run(self, data: bytes, workdir: Path):
        from emsync_plugin.timeline import ScoreTrack, read_cuts, write_timeline

        suffix, _, body = data.partition(b"\n")
        suffix = suffix.decode("ascii", "replace")
        path = workdir / f"case{suffix}"
        path.write_bytes(body)
        timeline = read_cuts(path)
        out = workdir / f"out{'.otio' if suffix == '.edl' else suffix}"
        if out.exists():
            out.unlink()
        score = ScoreTrack(wav=workdir / "s.wav", midi=workdir / "s.mid", duration=max(timeline.duration, 1.0),
                           metadata={"fuzz": True})
        write_timeline(timeline, out, score)
        again = read_cuts(out)
        check_timeline(again)
        return again


class SelfTestReader(MarkerReader):
    """Only with EMSYNC_FUZZ_SELFTEST=1: case inputs holding ``die`` kill the worker (SIGSEGV),
    so the tests can check that a dying case is counted and the run goes on."""

    def mutate(self, data: bytes, rng: random.Random) -> bytes:
        x = rng.random()
        return b"die" if x < 0.2 else b"hang" if x < 0.3 else b"emsync: calm"

    def run(self, data: bytes, workdir: Path):
        if data == b"die":
            os.kill(os.getpid(), signal.SIGSEGV)
        if data == b"hang":  # stuck where the alarm cannot reach, like a wait in C
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGPROF})
            time.sleep(3600)
        return super().run(data, workdir)


READERS: dict[str, Reader] = {
    r.name: r
    for r in (
        Reader("otio", ".otio", _otio_seeds),
        OtiozReader("otioz", ".otioz", _otioz_seeds),
        OtiodReader("otiod", ".otiod", _otiod_seeds),
        KdenliveReader("kdenlive", ".kdenlive", _files("kdenlive/*.kdenlive", "sample.kdenlive")),
        Reader("fcp7xml", ".xml", _files("fcp7xml/*.xml", "kdenlive/*.xml")),  # the latter: Kdenlive's FCP 7 export
        Reader("fcpxml", ".fcpxml", _files("fcpxml/*.fcpxml")),
        Reader("edl", ".edl", _files("edl/*.edl")),
        VideoReader("video", ".mp4", _video_seeds, max_size=1 << 17),
        MarkerReader("markers", ".txt", lambda w: [(t, t.encode()) for t in MARKER_SEEDS], max_size=4096),
        SidecarReader("sidecar", ".json", _sidecar_seeds),
        CliReader("cli", "", _cli_seeds, max_size=4096),
    )
}
READERS["writeback"] = WritebackReader("writeback", ".txt", lambda work: READERS["writeback"].make(work))
if os.environ.get("EMSYNC_FUZZ_SELFTEST") == "1":
    READERS["selftest"] = SelfTestReader("selftest", ".txt", lambda w: [("calm", b"emsync: calm")])


# -------------------------------------------------------------------------------------------
# running


@dataclass
class Outcome:
    kind: str  # "ok" | "error" | "unexpected" (an error from the safety net) | "crash"
    detail: str = ""


def case_input(reader: Reader, seed: int, index: int) -> tuple[str, bytes]:
    """The input of case ``index`` (deterministic for a seed): a mutated seed file."""
    rng = random.Random(f"{seed}:{reader.name}:{index}")
    name, data = reader.seeds[rng.randrange(len(reader.seeds))]
    return name, reader.mutate(data, rng)


def run_case(reader: Reader, data: bytes, workdir: Path) -> Outcome:
    """Run one input; classify the outcome."""
    from emsync_plugin.errors import EmsyncError

    try:
        result = reader.run(data, workdir)
    except EmsyncError as exc:
        message = str(exc)
        if "\n" in message or "\r" in message or not message.strip():
            return Outcome("crash", f"EmsyncError message is not one line: {message!r}")
        if exc.unexpected:  # a clean message, but from the readers' safety net: a root cause to fix
            tb = "".join(traceback.format_exception(exc.__cause__, limit=-6)) if exc.__cause__ else ""
            return Outcome("unexpected", f"{message[:300]}\n{tb}")
        return Outcome("error", f"{type(exc).__name__}: {message[:200]}")
    except CrashFound as exc:
        return Outcome("crash", str(exc))
    except RecursionError:
        return Outcome("crash", "RecursionError")
    except Exception as exc:  # noqa: BLE001 - the point: anything else is a crash
        tb = traceback.format_exc(limit=-6)
        return Outcome("crash", f"{type(exc).__name__}: {str(exc)[:300]}\n{tb}")
    if isinstance(result, Refused):
        return Outcome("error", result.message[:200])
    return Outcome("ok")


def setup(readers: list[Reader], work: Path) -> None:
    """Make each reader's seeds (once) and quiet the library's logs (and FFmpeg's)."""
    try:
        import av.logging

        av.logging.set_level(None)
    except Exception:  # noqa: BLE001 - only the noise
        pass
    for name in ("emsync_plugin", "pyscenedetect"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
        logging.getLogger(name).propagate = False
    for r in readers:
        if not r.seeds:
            seed_dir = work / f"seeds-{r.name}"
            seed_dir.mkdir(parents=True, exist_ok=True)
            r.seeds = r.make_seeds(seed_dir)


class _Timeout(BaseException):
    """Not an Exception: the readers' safety nets must not turn a hang into an error."""


def _alarm(signum, frame):
    raise _Timeout()


def worker(reader_name: str, seed: int, start: int, stop: int, timeout: float, memory_mb: int) -> None:
    """Run cases start..stop-1 of one reader; one JSON line per case on stdout."""
    if memory_mb:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    reader = READERS[reader_name]
    with tempfile.TemporaryDirectory(prefix="emsync-fuzz-") as tmp:
        work = Path(tmp)
        setup([reader], work)
        case_dir = work / "case"
        case_dir.mkdir()
        signal.signal(signal.SIGPROF, _alarm)  # CPU time: a paused run (SIGSTOP) does not time out
        print(json.dumps({"ready": True}), flush=True)
        for i in range(start, stop):
            name, data = case_input(reader, seed, i)
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_PROF, timeout)
            try:
                outcome = run_case(reader, data, case_dir)
            except _Timeout:
                outcome = Outcome("crash", f"hang: over {timeout:g} s")
            except MemoryError:
                outcome = Outcome("crash", f"memory: over {memory_mb} MB")
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
            if outcome.kind == "crash" and outcome.detail.startswith(("MemoryError", "_Timeout")):
                outcome.detail = ("memory: " if "Memory" in outcome.detail else "hang: ") + outcome.detail
            line = {"i": i, "k": outcome.kind[0], "s": round(time.perf_counter() - t0, 4)}
            if outcome.kind in ("crash", "unexpected"):
                line.update(seed_file=name, detail=outcome.detail)
            print(json.dumps(line), flush=True)


def fuzz_reader(reader: Reader, cases: int, seed: int, crashes: Path, timeout: float, memory_mb: int,
                progress: Path | None, watchdog: float | None = None, first: int = 0) -> dict:
    """Run ``cases`` cases of one reader (numbers ``first`` on) in worker processes, restarted
    when one dies."""
    counts = {"cases": 0, "ok": 0, "errors": 0, "unexpected": 0, "crashes": 0, "hangs": 0, "seconds": 0.0,
              "first_case": first}
    found: list[dict] = []
    t0 = time.perf_counter()
    nxt = first
    cases += first
    while nxt < cases:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", reader.name, "--seed", str(seed), "--start", str(nxt),
             "--stop", str(cases), "--timeout", str(timeout), "--memory-mb", str(memory_mb)],
            stdout=subprocess.PIPE, text=True, cwd=REPO,
        )
        done_here = False
        try:
            proc.hung = False
            lines = list(_lines(proc, reader, seed, crashes, counts, found, progress, t0, watchdog or 3 * timeout + 60))
        except KeyboardInterrupt:  # stopped (Ctrl-C or SIGTERM): keep the counts so far
            proc.kill()
            proc.wait()
            counts["stopped"] = True
            break
        if lines:
            nxt = lines[-1] + 1
        proc.wait()
        if nxt < cases and proc.returncode != 0:  # the worker died on case nxt
            detail = "hang: the worker stopped answering" if proc.hung else f"process died (exit {proc.returncode})"
            counts["cases"] += 1
            counts["crashes"] += 1
            counts["hangs"] += int(proc.hung)
            found.append(_save_crash(reader, seed, nxt, detail, crashes, "crashes"))
            nxt += 1
        elif nxt < cases:
            done_here = True
        if done_here:
            break
    counts["seconds"] = round(time.perf_counter() - t0, 1)
    if progress is not None:
        _write_progress(progress, reader.name, counts, counts["seconds"])
    counts["crash_cases"] = found[:50]
    return counts


def _lines(proc, reader, seed, crashes, counts, found, progress, t0, watchdog: float):
    """Count the worker's reports; yield each case number. A worker silent for ``watchdog``
    seconds (stuck in C code, where its own alarm cannot reach) is killed: a hang."""
    import queue
    import threading

    lines: queue.Queue = queue.Queue()

    def pump():
        for raw in proc.stdout:
            lines.put(raw)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    last_write = 0.0
    silent = 0
    while True:
        try:
            raw = lines.get(timeout=watchdog)
            silent = 0
        except queue.Empty:
            silent += 1  # twice: a run paused with SIGSTOP/SIGCONT is not a hang
            if silent < 2:
                continue
            proc.kill()
            proc.hung = True
            return
        if raw is None:
            return
        msg = json.loads(raw)
        if "ready" in msg:
            continue
        yield msg["i"]
        counts["cases"] += 1
        kind = {"o": "ok", "e": "errors", "c": "crashes", "u": "unexpected"}[msg["k"]]
        counts[kind] += 1
        if kind == "unexpected":
            counts["errors"] += 1  # a clean EmsyncError all the same
        if kind in ("crashes", "unexpected"):
            if msg["detail"].startswith("hang"):
                counts["hangs"] += 1
            if len(found) < 200:
                found.append(_save_crash(reader, seed, msg["i"], msg["detail"], crashes, kind))
        now = time.perf_counter()
        if progress is not None and now - last_write > 5:
            last_write = now
            _write_progress(progress, reader.name, counts, now - t0)


def _save_crash(reader: Reader, seed: int, index: int, detail: str, crashes: Path, kind: str) -> dict:
    if not reader.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            setup([reader], Path(tmp))
    name, data = case_input(reader, seed, index)
    crashes.mkdir(parents=True, exist_ok=True)
    path = crashes / f"{reader.name}-{seed}-{index}{reader.suffix or '.args'}"
    path.write_bytes(data)
    (crashes / f"{path.name}.txt").write_text(f"{kind}\nseed file: {name}\n{detail}\n")
    first = detail.splitlines()[0][:160] if detail else ""
    print(f"  {kind}: {reader.name} case {index} ({name}): {first} -> {path}", flush=True)
    return {"kind": kind, "case": index, "seed_file": name, "detail": first, "input": str(path.relative_to(REPO))
            if path.is_relative_to(REPO) else str(path)}


def _write_progress(progress: Path, name: str, counts: dict, seconds: float) -> None:
    progress.parent.mkdir(parents=True, exist_ok=True)
    state = json.loads(progress.read_text()) if progress.exists() else {}
    key = name if not counts.get("first_case") else f"{name}@{counts['first_case']}"
    state[key] = {**{k: v for k, v in counts.items() if k != "crash_cases"}, "seconds": round(seconds, 1)}
    tmp = progress.with_name(progress.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, progress)


def print_table(results: dict) -> None:
    print(f"{'reader':<13} {'cases':>8} {'ok':>8} {'EmsyncError':>11} {'(unexpected)':>12} {'crashes':>7} "
          f"{'hangs':>5} {'seconds':>8} {'cases/s':>8}")
    for name, c in results.items():
        rate = c["cases"] / c["seconds"] if c["seconds"] else 0.0
        print(f"{name:<13} {c['cases']:>8} {c['ok']:>8} {c['errors']:>11} {c['unexpected']:>12} {c['crashes']:>7} "
              f"{c['hangs']:>5} {c['seconds']:>8.1f} {rate:>8.1f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reader", default="all", help=f"one of {', '.join(READERS)}, a comma list, or all")
    p.add_argument("--cases", type=int, default=1000, help="cases per reader")
    p.add_argument("--first", type=int, default=0,
                   help="first case number (to share one reader's cases among parallel runs: --first 50000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds one case may take (else a hang)")
    p.add_argument("--memory-mb", type=int, default=4096, help="address-space limit of the worker (0: none)")
    p.add_argument("--crashes", type=Path, default=RESULTS / "fuzz-crashes")
    p.add_argument("--json", type=Path, default=RESULTS / "fuzz.json")
    p.add_argument("--progress", type=Path, help="rewrite partial counts to this JSON file every few seconds")
    p.add_argument("--replay", type=Path, help="run one saved input and print its outcome")
    p.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                   help="combine the summaries of runs made in parallel (different readers) into --json")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--stop", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker, args.seed, args.start, args.stop, args.timeout, args.memory_mb)
        return 0
    if args.merge:
        parts = [json.loads(p.read_text()) for p in args.merge]
        results: dict[str, dict] = {}
        for part in parts:  # a reader's cases may be shared among runs (--first): add them up
            for name, counts in part["readers"].items():
                if name not in results:
                    results[name] = {**counts, "crash_cases": list(counts.get("crash_cases", []))}
                    continue
                merged = results[name]
                for key in ("cases", "ok", "errors", "unexpected", "crashes", "hangs", "seconds"):
                    merged[key] = round(merged[key] + counts[key], 1) if key == "seconds" else merged[key] + counts[key]
                merged["first_case"] = min(merged.get("first_case", 0), counts.get("first_case", 0))
                merged["crash_cases"] += counts.get("crash_cases", [])
        summary = _summary(" && ".join(part["command"] for part in parts), results)
        summary["runs"] = [{"command": part["command"], "date": part["date"]} for part in parts]
        _write_json(args.json, summary)
        print_table(results)
        return 1 if summary["total"]["crashes"] else 0
    names = list(READERS) if args.reader == "all" else args.reader.split(",")
    unknown = [n for n in names if n not in READERS]
    if unknown:
        p.error(f"unknown reader(s) {unknown}; choose from {', '.join(READERS)}")
    if args.replay:
        with tempfile.TemporaryDirectory() as tmp:
            reader = READERS[names[0]]
            setup([reader], Path(tmp))
            logging.getLogger("emsync_plugin").setLevel(logging.DEBUG)
            outcome = run_case(reader, args.replay.read_bytes(), Path(tmp))
            print(outcome.kind, outcome.detail)
            return 1 if outcome.kind == "crash" else 0
    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # a stopped run still writes its counts
    results = {}
    command = "python benchmarks/fuzz.py " + " ".join(argv if argv is not None else sys.argv[1:])
    for name in names:
        print(f"{name}: {args.cases} cases, seed {args.seed}", flush=True)
        try:
            results[name] = fuzz_reader(READERS[name], args.cases, args.seed, args.crashes, args.timeout,
                                        args.memory_mb, args.progress, first=args.first)
        except KeyboardInterrupt:
            break
        summary = _summary(command, results)
        _write_json(args.json, summary)  # after every reader: partial runs keep their counts
        if results[name].get("stopped"):
            break
    print()
    print_table(results)
    summary = _summary(command, results)
    _write_json(args.json, summary)
    print(f"\nsummary: {args.json}")
    return 1 if summary["total"]["crashes"] else 0


def _summary(command: str, results: dict) -> dict:
    return {
        "command": command,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.version.split()[0],
        "readers": results,
        "total": {k: sum(r[k] for r in results.values()) for k in ("cases", "ok", "errors", "unexpected", "crashes", "hangs")},
    }


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
