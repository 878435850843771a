"""The blockwise render against the old one-shot render, side by side in one run (issue 15).

For a 3-minute and a 30-minute score (and a 3-hour one with ``--long``; the one-shot is not
run there, it would need ~22 GB), with TimGM6mb and with FluidR3_GM when installed, and the
blocks synthesised by midirenderer and by FluidSynth (when libfluidsynth is installed), each
render runs in a fresh subprocess that reports its wall time, its CPU seconds (its own and its
workers', a figure a busy machine distorts less) and peak memory (ru_maxrss of the process and
of its largest worker process). Printed: x real time of each, the speed-up over the one-shot,
the CPU seconds and the peak RSS of each. The one-shot reference below is the render as it was before issue 15 (the whole
programme's float audio in memory, pyloudnorm on the whole, the limiter re-run until the
loudness holds); it lives here, not in the library.

    nice python benchmarks/bench_render.py [--long] [--minutes 3 30] [--no-one-shot]
"""
from __future__ import annotations

import argparse
import io
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def score(seconds: float):
    """A baseline score with a cut every 6.5 s and random moods (strings, piano, bass, drums)."""
    from emsync_plugin.mood import SceneMood
    from emsync_plugin.music.baseline import BaselineOptions, arrange

    cuts = list(np.arange(6.0, seconds, 6.5))
    rng = random.Random(1)
    moods = [SceneMood(i, s, e, rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.8))
             for i, (s, e) in enumerate(zip([0.0, *cuts], [*cuts, seconds]))]
    return arrange(cuts, seconds, moods, BaselineOptions(seed=3))


def one_shot(midi, out: Path, seconds: float, soundfont: Path, rate: int = 48000) -> None:
    """The render before issue 15: synthesise the whole score in one call, then work on it in memory."""
    import midirenderer
    import pyloudnorm
    import soundfile

    from emsync_plugin.music.mastering import fade_out, limiter_gain

    buffer = io.BytesIO()
    midi.write(buffer)
    wav = midirenderer.render_wave_from(soundfont.read_bytes(), buffer.getvalue())
    audio, _ = soundfile.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    samples = int(round(seconds * rate))
    audio = np.concatenate([audio[:samples], np.zeros((max(0, samples - len(audio)), 2), np.float32)])
    audio = fade_out(audio, int(3.0 * rate))
    meter, ceiling = pyloudnorm.Meter(rate), 10 ** (-1 / 20)
    lufs = meter.integrated_loudness(audio)
    for _ in range(6):
        audio = audio * np.float32(10 ** ((-16.0 - lufs) / 20))
        if np.max(np.abs(audio)) > ceiling:
            gain = limiter_gain(audio, ceiling, rate)
            if gain is not None:
                audio = np.clip(audio * gain[:, None], -ceiling, ceiling)
        lufs = meter.integrated_loudness(audio)
        if abs(lufs + 16.0) <= 0.05:
            break
    soundfile.write(str(out), audio, rate, subtype="PCM_24", format="WAV")


def child(method: str, seconds: float, soundfont: str, out: str) -> None:
    """Run one render in this process and print its figures as JSON."""
    from emsync_plugin.music import synth
    from emsync_plugin.music.render import RenderOptions, render_midi

    midi = score(seconds)
    blocks = method.startswith("blocks")
    if blocks:
        synth.ENGINE = method.split("-", 1)[1]
        synth.warm_up(Path(soundfont))  # as pipeline.score does during the analysis: workers hold the SoundFont
    began, start_cpu = time.perf_counter(), _cpu()
    if blocks:
        render_midi(midi, out, seconds, RenderOptions(soundfont=Path(soundfont)))
    else:
        one_shot(midi, Path(out), seconds, Path(soundfont))
    wall = time.perf_counter() - began
    synth.shutdown()
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime - start_cpu
    print(json.dumps({"wall": wall, "cpu": cpu, "rss": own.ru_maxrss / 1024, "workers": workers.ru_maxrss / 1024}))


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children so far."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def measure(method: str, seconds: float, soundfont: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", method, str(seconds), str(soundfont), str(out)],
                          capture_output=True, text=True, check=True)
    out.unlink(missing_ok=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="also a 3-hour score (blockwise only)")
    parser.add_argument("--minutes", type=float, nargs="+", default=[3.0, 30.0])
    parser.add_argument("--no-one-shot", action="store_true", help="skip the one-shot reference")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], float(args.child[1]), args.child[2], args.child[3])
        return
    from emsync_plugin.music import player
    from emsync_plugin.music.synth import FLUIDR3_PATHS, shipped_soundfont

    fonts = [shipped_soundfont(), *[p for p in FLUIDR3_PATHS if p.is_file()][:1]]
    synths = ["midirenderer", *(["fluidsynth"] if player.available() else [])]
    lengths = [m * 60 for m in args.minutes] + ([3 * 3600.0] if args.long else [])
    out = Path("/tmp") / "emsync-bench-render.wav"
    print(f"{'score':>7} {'SoundFont':<15} {'synth':<12} {'one-shot x':>10} {'blocks x':>9} {'ratio':>6} "
          f"{'one-shot CPU':>12} {'blocks CPU':>10} {'one-shot RSS':>12} {'blocks RSS main+worker':>23}")
    for seconds in lengths:
        for font in fonts:
            old = measure("one-shot", seconds, font, out) if seconds <= 1800 and not args.no_one_shot else None
            for name in synths:
                new = measure(f"blocks-{name}", seconds, font, out)
                old_x = f"{seconds / old['wall']:10.1f}" if old else f"{'-':>10}"
                ratio = f"{old['wall'] / new['wall']:6.2f}" if old else f"{'-':>6}"
                old_rss = f"{old['rss']:9.0f} MB" if old else f"{'-':>12}"
                old_cpu = f"{old['cpu']:10.1f} s" if old else f"{'-':>12}"
                print(f"{seconds / 60:5.0f} m {font.name:<15} {name:<12} {old_x} {seconds / new['wall']:9.1f} {ratio} "
                      f"{old_cpu} {new['cpu']:8.1f} s {old_rss} {new['rss']:10.0f} + {new['workers']:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
