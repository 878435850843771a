"""Render the listening examples in docs/examples/ with the shipped generator.

    python scripts/make_examples.py [--out docs/examples] [--engine emsync]

Four moods over the bundled sample's cuts (happy, sad, tense, calm), orchestrated in the default
style (``--style``): for each, the MIDI, a small Ogg Vorbis rendering and a piano-roll picture
with the cuts drawn on it.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import soundfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emsync_plugin.demo import sample_dir  # noqa: E402
from emsync_plugin.mood import SceneMood  # noqa: E402
from emsync_plugin.music.render import RenderOptions, render_midi, write_midi  # noqa: E402
from emsync_plugin.music.styles import DEFAULT_STYLE, apply_style  # noqa: E402
from emsync_plugin.pipeline import ScoreOptions, generate  # noqa: E402
from emsync_plugin.report import draw_report  # noqa: E402
from emsync_plugin.timeline import read_cuts  # noqa: E402

MOODS = {"happy": (0.7, 0.5), "sad": (-0.7, -0.5), "tense": (-0.6, 0.7), "calm": (0.5, -0.6)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "examples")
    p.add_argument("--engine", default="emsync")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--style", default=DEFAULT_STYLE)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    timeline = read_cuts(sample_dir() / "sample.otio")
    for name, (v, a) in MOODS.items():
        moods = [SceneMood(s.index, s.start, s.end, v, a, "cli") for s in timeline.scenes]
        generated = generate(timeline, moods, ScoreOptions(engine=args.engine, seed=args.seed))
        midi = apply_style(generated, args.style, timeline.cuts, timeline.duration, moods, seed=args.seed)
        write_midi(midi, args.out / f"{name}.mid")
        wav = args.out / f"{name}.wav"
        render_midi(midi, wav, timeline.duration, RenderOptions())
        audio, sr = soundfile.read(str(wav))
        # libsndfile's Vorbis encoder crashes on one large write: feed it in blocks
        with soundfile.SoundFile(str(args.out / f"{name}.ogg"), "w", sr, audio.shape[1], format="OGG", subtype="VORBIS") as f:
            for i in range(0, len(audio), 4096):
                f.write(audio[i:i + 4096])
        wav.unlink()
        draw_report(timeline, moods, midi, args.out / f"{name}.png",
                    title=f"{name}: valence {v:+.1f}, arousal {a:+.1f} over the sample's cuts ({args.engine}, {args.style})")


if __name__ == "__main__":
    main()
