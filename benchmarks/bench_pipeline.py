#!/usr/bin/env python3
"""The whole pipeline against decoding its footage once, and peak memory against length (issue 15).

Builds the issue's timelines: shots of 1.5-8 s (seeded) cut at random from the bundled sample
re-encoded to 1080p H.264 with a long GOP (x264 defaults, keyint 250), written as OTIO. The 1080p file is made once
and cached (``--cache``, default ``~/.cache/emsync-bench``; never in git). Then, in one run:

* the decode-only reference: every frame of the footage (the 48 s 1080p file the shots are cut
  from) decoded once, start to end (PyAV, frame threads on), as in the issue;
* ``emsync score`` (defaults: learned engine, default style and SoundFont) in a fresh process
  per timeline, by stage: start-up (interpreter and imports), reading the cuts, analysis and
  generation (overlapped since issue 15: one figure), render, writing; total wall time;
* the same at ``--baseline-commit`` (default dcfa9d3, before issue 15's work), from a
  ``git archive`` of that commit run with this interpreter, side by side;
* 10- and 60-minute timelines (the 60-minute one of absent media with a fixed mood by default,
  ``--long-media footage`` to analyse it too) to show the cost grows linearly (these and the memory
  rows for the measured tree only, unless ``--long-baseline``: they take ~20 min a column);
* peak memory (the scoring process's own peak plus its workers', the render's two and the
  generator's, each ``VmHWM`` read while the workers live: ``ru_maxrss`` would also count the
  parent a process was started from) of a 30-minute timeline of footage and of a
  3-hour timeline of absent media with a fixed mood (``--memory-engine``, default baseline:
  the learned engine takes minutes for 3 hours).

Also ``import emsync_plugin.cli`` and ``emsync cuts`` wall time (start-up of a command that
makes no music). Prints one table; figures for the README are its ratios.

Also the scene analysis alone (``pipeline.analyze``, what ``emsync analyze`` runs) of the 3- and
10-minute timelines in a fresh process, wall and CPU seconds against the decode's, and how far
each column's moods are from the first column's (``--parts analysis``).

    python benchmarks/bench_pipeline.py [--parts analysis,3min,long] [--commit HEAD] [--baseline-commit dcfa9d3 | --no-baseline]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import opentimelineio as otio
from av.video.frame import PictureType

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "emsync_plugin" / "data" / "sample" / "sample.mp4"
RATE = 25
GOP = 10 * RATE  # long GOP: a keyframe at least every 10 s (and at scene changes: x264's default)
SHOT = (1.5, 8.0)
SAFETY = 8 << 30  # bytes of data a scoring process may hold (RLIMIT_DATA)

#: run inside the scoring process (``PYTHONPATH`` picks the tree): times each stage of
#: pipeline.score through its progress callback; prints one JSON line
DRIVER = r"""
import json, os, resource, sys, time
t0 = time.perf_counter()
from emsync_plugin import pipeline
imported = time.perf_counter() - t0
path, opts = sys.argv[1], json.loads(sys.argv[2])
marks = []
def step(stage, fraction):
    if not marks or marks[-1][0] != stage:
        marks.append((stage, time.perf_counter()))
try:
    pipeline.score(path, pipeline.ScoreOptions(**opts), step)
    error = ""
except Exception as exc:
    error = f"{type(exc).__name__}: {exc}"
end = time.perf_counter()
def hwm(pid):  # a process's own peak (ru_maxrss also counts the parent it was started from)
    try:
        status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status") if ":" in line)
    except OSError:
        return 0.0, 0
    return int(status.get("VmHWM", "0 kB").split()[0]) / 1024, int(status["PPid"])
workers = [hwm(p)[0] for p in os.listdir("/proc") if p.isdigit() and hwm(p)[1] == os.getpid()]
peak = hwm("self")[0] + sum(workers)  # read while the workers (render, generator) live
for module in ("synth", "generator_worker"):  # the workers waited for, so their CPU seconds count
    try:  # (trees before them have none)
        __import__(f"emsync_plugin.music.{module}", fromlist=["shutdown"]).shutdown()
    except (ImportError, AttributeError):
        pass
own, waited = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime
print(json.dumps({"imported": imported, "cpu": cpu, "marks": [(s, t - t0) for s, t in marks], "end": end - t0,
                  "error": error, "rss_mb": peak, "module": pipeline.__file__}))
"""


#: run inside a fresh process: ``pipeline.analyze`` of a timeline (the scene analysis alone, as
#: ``emsync analyze`` runs it; the face model loads in it); prints one JSON line
ANALYSIS_DRIVER = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from emsync_plugin import pipeline
imported = time.perf_counter() - t0
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
c0, w0 = cpu(), time.perf_counter()
found = pipeline.analyze(sys.argv[1])
print(json.dumps({"imported": imported, "wall": time.perf_counter() - w0, "cpu": cpu() - c0,
                  "moods": [(m.valence, m.arousal) for m in found.moods], "module": pipeline.__file__}))
"""


def footage(cache: Path) -> Path:
    """The sample re-encoded to 1080p H.264 (long GOP) with its sound, made once."""
    out = cache / "sample_1080p_gop250.mp4"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    part = out.with_suffix(".part.mp4")
    with av.open(str(SAMPLE)) as src, av.open(str(part), "w") as dst:
        v = dst.add_stream("libx264", rate=RATE)
        v.width, v.height, v.pix_fmt = 1920, 1080, "yuv420p"
        v.options = {"crf": "20", "preset": "veryfast", "x264-params": f"keyint={GOP}"}
        a = dst.add_stream("aac", rate=48000, layout="stereo")
        for k, frame in enumerate(src.decode(video=0)):
            big = frame.reformat(width=1920, height=1080, format="yuv420p")
            big.pts, big.time_base = k, Fraction(1, RATE)
            big.pict_type = PictureType.NONE  # the sample's own keyframes are not forced on the encoder
            dst.mux(v.encode(big))
        dst.mux(v.encode(None))
        src.seek(0)
        for sound in src.decode(audio=0):
            sound.pts = None
            dst.mux(a.encode(sound))
        dst.mux(a.encode(None))
    part.rename(out)
    return out


def shots(minutes: float, seed: int, source_seconds: float) -> list[tuple[float, float]]:
    """``(source_start, length)`` of each shot, whole frames, filling ``minutes``."""
    rng = random.Random(seed)
    total = int(round(minutes * 60 * RATE))
    out, at = [], 0
    while at < total:
        n = min(total - at, int(round(rng.uniform(*SHOT) * RATE)))
        start = rng.randrange(0, int(source_seconds * RATE) - n - 1)
        out.append((start / RATE, n / RATE))
        at += n
    return out


def write_otio(path: Path, media: str, cuts: list[tuple[float, float]]) -> Path:
    timeline = otio.schema.Timeline(name=path.stem)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    ref = otio.schema.ExternalReference(target_url=media)
    for k, (start, length) in enumerate(cuts):
        rng = otio.opentime.TimeRange(otio.opentime.from_seconds(start, RATE), otio.opentime.from_seconds(length, RATE))
        track.append(otio.schema.Clip(name=f"shot {k + 1}", media_reference=ref.clone(), source_range=rng))
    timeline.tracks.append(track)
    otio.adapters.write_to_file(timeline, str(path))
    return path


def decode_once(media: Path) -> tuple[float, float]:
    """Seconds (wall, CPU) to decode every frame of the footage once, start to end (PyAV, frame threads on)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    c0 = own.ru_utime + own.ru_stime
    t0 = time.perf_counter()
    with av.open(str(media)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass
    wall = time.perf_counter() - t0
    own = resource.getrusage(resource.RUSAGE_SELF)
    return wall, own.ru_utime + own.ru_stime - c0


def run_score(tree: Path, timeline: Path, opts: dict, refusal: bool = False) -> dict:
    """``pipeline.score`` of ``tree`` in a fresh process: stage times, wall time, peak memory."""
    env = {**os.environ, "PYTHONPATH": str(tree), "EMSYNC_NO_PROGRESS": "1"}

    def limit() -> None:  # a run that holds the whole programme fails instead of taking the machine down
        resource.setrlimit(resource.RLIMIT_DATA, (SAFETY, SAFETY))

    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", DRIVER, str(timeline), json.dumps(opts)], env=env, cwd=tree,
                          capture_output=True, text=True, preexec_fn=limit)
    wall = time.perf_counter() - t0
    if done.returncode:
        if refusal:
            return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1], "wall": wall, "rss_mb": 0.0, "cpu": 0.0}
        raise SystemExit(f"scoring {timeline.name} failed:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if found["error"] and not refusal:
        raise SystemExit(f"scoring {timeline.name} with {tree} failed: {found['error']}")
    found.setdefault("error", "")
    if not found["module"].startswith(str(tree)):
        raise SystemExit(f"{tree}: imported {found['module']} instead")
    found["wall"] = wall
    times = dict(found["marks"])
    found["stages"] = {
        "start-up": wall - found["end"] + found["imported"],
        "read": times.get("estimating moods", 0) - times.get("reading cuts", 0),
        "analysis + generation": times.get("rendering audio", 0) - times.get("estimating moods", 0),
        "render": times.get("writing timeline", times.get("done", 0)) - times.get("rendering audio", 0),
        "write": times.get("done", 0) - times.get("writing timeline", times.get("done", 0)),
    }
    return found


def run_analysis(tree: Path, timeline: Path) -> dict:
    """``pipeline.analyze`` of ``tree`` in a fresh process: wall and CPU seconds, the moods."""
    env = {**os.environ, "PYTHONPATH": str(tree), "EMSYNC_NO_PROGRESS": "1"}
    done = subprocess.run([sys.executable, "-c", ANALYSIS_DRIVER, str(timeline)], env=env, cwd=tree,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"analysing {timeline.name} with {tree} failed:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if not found["module"].startswith(str(tree)):
        raise SystemExit(f"{tree}: imported {found['module']} instead")
    return found


def analysis_rows(rows: list, trees: dict[str, Path], timeline, media: Path, repeat: int) -> None:
    """The scene analysis alone (best of ``repeat`` runs, alternating the trees) on the 3- and 10-minute
    timelines, against one decode of the footage, and how far each tree's moods are from the first's."""
    decode, decode_cpu = decode_once(media)
    rows.append(("decode every frame of the footage once (PyAV)", {k: f"{decode:.2f} s, {decode_cpu:.1f} CPU-s"
                                                                  for k in trees}))
    for minutes in (3, 10):
        path, cuts = timeline(minutes, False)
        runs: dict[str, list[dict]] = {k: [] for k in trees}
        for _ in range(repeat):
            for k, tree in trees.items():
                runs[k].append(run_analysis(tree, path))
        best = {k: min(r, key=lambda x: x["cpu"]) for k, r in runs.items()}
        wall = {k: min(x["wall"] for x in r) for k, r in runs.items()}
        rows.append((f"analysis alone, {minutes} min ({len(cuts)} scenes): wall", {k: f"{w:.2f} s" for k, w in wall.items()}))
        rows.append(("  CPU seconds (ratio to the decode's)",
                     {k: f"{b['cpu']:.1f} ({b['cpu'] / decode_cpu:.2f})" for k, b in best.items()}))
        first = next(iter(best.values()))["moods"]
        rows.append(("  max |valence|, |arousal| difference to the first column",
                     {k: "{:.3f}, {:.3f}".format(*(max((abs(a[i] - b[i]) for a, b in zip(first, r["moods"])), default=0.0)
                                                   for i in (0, 1))) for k, r in best.items()}))


def baseline_tree(commit: str, cache: Path) -> Path:
    """The tree of ``commit`` (git archive), kept in the cache."""
    sha = subprocess.run(["git", "rev-parse", commit], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    tree = cache / f"tree-{sha[:12]}"
    if not (tree / "emsync_plugin").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def startup(tree: Path, sample_otio: Path) -> tuple[float, float]:
    """Seconds to ``import emsync_plugin.cli`` and to run ``emsync cuts`` (best of 3 each)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}

    def best(args: list[str]) -> float:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(args, env=env, cwd=tree, capture_output=True, check=True)
            times.append(time.perf_counter() - t0)
        return min(times)

    bare = best([sys.executable, "-c", "pass"])
    return (best([sys.executable, "-c", "import emsync_plugin.cli"]) - bare,
            best([sys.executable, "-m", "emsync_plugin", "cuts", str(sample_otio)]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "emsync-bench")
    p.add_argument("--baseline-commit", default="dcfa9d3")
    p.add_argument("--commit", help="measure this commit (git archive) instead of the working tree, e.g. HEAD")
    p.add_argument("--no-baseline", action="store_true", help="only this tree")
    p.add_argument("--parts", default="analysis,3min,long",
                   help="analysis (the scene analysis alone, 3 and 10 min), 3min (the issue's timeline), "
                        "long (10/60 min, memory rows)")
    p.add_argument("--rows", default="10,60,30,180",
                   help="the long rows, in this order: 10, 60 (minutes: time), 30, 180 (minutes: peak memory)")
    p.add_argument("--long-baseline", action="store_true",
                   help="the long rows for the earlier commit too (it doubles their ~20 min; its 2-hour cap refuses 3 h)")
    p.add_argument("--repeat", type=int, default=2, help="runs of each analysis row (the best is shown)")
    p.add_argument("--long-media", choices=("absent", "footage"), default="absent", help="the 60-minute timeline's media")
    p.add_argument("--memory-engine", choices=("baseline", "emsync"), default="baseline",
                   help="engine of the 3-hour memory row")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    media = footage(args.cache)
    with av.open(str(media)) as c:
        source_seconds = float((c.duration or 0) / av.time_base)
    trees = {"now": REPO} if not args.commit else {f"now ({args.commit})": baseline_tree(args.commit, args.cache)}
    if not args.no_baseline:
        trees[f"before ({args.baseline_commit})"] = baseline_tree(args.baseline_commit, args.cache)
    work = Path(tempfile.mkdtemp(prefix="emsync-bench-"))
    fixed = {"valence": 0.2, "arousal": 0.3}
    cols = list(trees)
    width = 52
    print(f"{'':<{width}}  " + "  ".join(f"{c:>24}" for c in cols), flush=True)

    class Rows(list):
        def append(self, item: tuple[str, dict[str, str]]) -> None:  # printed as measured
            label, values = item
            print(f"{label:<{width}}  " + "  ".join(f"{values.get(c, ''):>24}" for c in cols), flush=True)

    rows = Rows()
    parts = set(args.parts.split(","))

    def timeline(minutes: float, absent: bool) -> tuple[Path, list[tuple[float, float]]]:
        cuts = shots(minutes, args.seed, source_seconds)
        name = f"t{minutes:g}min{'-absent' if absent else ''}.otio"
        return write_otio(work / name, str(work / "absent.mp4") if absent else str(media), cuts), cuts

    if "analysis" in parts:
        analysis_rows(rows, trees, timeline, media, args.repeat)
    if "3min" in parts:
        three_minutes(rows, trees, timeline, media, work)
    if "long" in parts:
        now = dict(itertools.islice(trees.items(), 1))
        long_rows(rows, trees if args.long_baseline else now, timeline, work, args, fixed)
    print(f"\n{os.cpu_count()} CPUs; footage {media} ({source_seconds:.0f} s, 1080p H.264, GOP <= {GOP}); "
          f"load average at the end {os.getloadavg()[0]:.1f}; work in {work}")
    return 0


def three_minutes(rows: list, trees: dict[str, Path], timeline, media: Path, work: Path) -> None:
    """The issue's timeline: stages, total, ratio to a decode, start-up."""
    three, _ = timeline(3, False)
    decode, decode_cpu = decode_once(media)
    rows.append(("decode every frame of the footage once (PyAV)", {k: f"{decode:.2f} s" for k in trees}))
    results = {k: run_score(tree, three, {"output": str(work / f"{i}-3.otio")}) for i, (k, tree) in enumerate(trees.items())}
    for stage in ("start-up", "read", "analysis + generation", "render", "write"):
        rows.append((f"  {stage}", {k: f"{r['stages'][stage]:.2f} s" for k, r in results.items()}))
    rows.append(("emsync score, 3 min: total", {k: f"{r['wall']:.2f} s" for k, r in results.items()}))
    rows.append(("  ratio total / decode (target <= 1.0)", {k: f"{r['wall'] / decode:.2f}" for k, r in results.items()}))
    rows.append(("  x real time (target >= 30)", {k: f"{180 / r['wall']:.1f}" for k, r in results.items()}))
    rows.append(("  CPU seconds / decode's (robust to a busy machine)",
                 {k: f"{r['cpu']:.1f} / {decode_cpu:.1f} = {r['cpu'] / decode_cpu:.2f}" for k, r in results.items()}))
    rows.append(("  peak memory", {k: f"{r['rss_mb']:.0f} MB" for k, r in results.items()}))
    starts = {k: startup(tree, three) for k, tree in trees.items()}
    rows.append(("import emsync_plugin.cli", {k: f"{s[0]:.3f} s" for k, s in starts.items()}))
    rows.append(("emsync cuts (3 min timeline), wall", {k: f"{s[1]:.3f} s" for k, s in starts.items()}))


def long_rows(rows: list, trees: dict[str, Path], timeline, work: Path, args, fixed: dict) -> None:
    """10 and 60 minutes (linear cost), peak memory at 30 minutes and 3 hours."""
    def row(label: str, found: dict[str, dict], show) -> None:
        rows.append((label, {k: show(r) if not r["error"] else r["error"][:24] for k, r in found.items()}))

    def each(minutes: float, absent: bool, **opts) -> dict[str, dict]:
        path, _ = timeline(minutes, absent)
        return {k: run_score(tree, path, {"output": str(work / f"{i}-{minutes:g}.otio"), **opts}, refusal=True)
                for i, (k, tree) in enumerate(trees.items())}

    def ten() -> None:
        r10 = each(10, False)
        row("10 min: total (x real time; CPU s; per minute)", r10,
            lambda r: f"{r['wall']:.1f} s ({600 / r['wall']:.0f}x; {r['cpu']:.0f}; {r['cpu'] / 10:.1f})")
        row("10 min: peak memory", r10, lambda r: f"{r['rss_mb']:.0f} MB")

    def sixty() -> None:
        absent = args.long_media == "absent"
        r60 = each(60, absent, **(fixed if absent else {}))
        label = "60 min" + (" (absent media, fixed mood)" if absent else "")
        row(f"{label}: total (x real time; CPU s; per minute)", r60,
            lambda r: f"{r['wall']:.1f} s ({3600 / r['wall']:.0f}x; {r['cpu']:.0f}; {r['cpu'] / 60:.1f})")
        row(f"{label}: peak memory", r60, lambda r: f"{r['rss_mb']:.0f} MB")

    def thirty() -> None:
        r30 = each(30, False)
        row("30 min (footage): peak memory (target <= 1 GB)", r30, lambda r: f"{r['rss_mb']:.0f} MB")
        row("30 min (footage): total", r30, lambda r: f"{r['wall']:.1f} s")

    def three_hours() -> None:
        r180 = each(180, True, engine=args.memory_engine, **fixed)
        row(f"3 h ({args.memory_engine}, absent media): peak memory (target <= 1 GB)", r180,
            lambda r: f"{r['rss_mb']:.0f} MB")
        row(f"3 h ({args.memory_engine}, absent media): total", r180, lambda r: f"{r['wall']:.1f} s")

    measure = {"10": ten, "60": sixty, "30": thirty, "180": three_hours}
    for name in args.rows.split(","):
        measure[name]()

if __name__ == "__main__":
    sys.exit(main())
