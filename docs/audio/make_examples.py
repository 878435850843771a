"""Score the bundled sample in every style and keep a short OGG of each (README "Styles").

    python docs/audio/make_examples.py [--soundfont SF2] [--keep DIR]

Each style is scored with the command it prints (``emsync score`` on the bundled sample, seed 0),
then ``EXCERPT`` seconds of the score (a calm scene, the cut into the bright energetic scene 3,
the cut into scene 4) go to ``docs/audio/sample-STYLE.ogg`` (Vorbis) with 0.3 s fades at either
end. It also prints what each style measures on the whole score: loudness per scene against
the scene's arousal, the peak, the DC offset, 100 ms windows that are silent while notes
sound, the programs per instrument group and the long-term spectrum (octave bands), whose RMS
differences between styles it tabulates.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from itertools import combinations
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile
from scipy.stats import spearmanr

from emsync_plugin.music.groups import instrument_group
from emsync_plugin.music.render import integrated_loudness
from emsync_plugin.music.styles import STYLES

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "emsync_plugin" / "data" / "sample" / "sample.otio"
FLUID = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
EXCERPT = (9.0, 25.0)  # seconds of the sample's score kept in each OGG
FADE = 0.3


def score(style: str, folder: Path, soundfont: Path | None) -> tuple[Path, Path, str]:
    """Score the sample in ``style``; (WAV, sidecar, the command)."""
    out = folder / f"sample-{style}.otio"
    command = ["emsync", "score", str(SAMPLE.relative_to(ROOT)), "--style", style, "--seed", "0", "-o", str(out)]
    if soundfont is not None:
        command += ["--soundfont", str(soundfont)]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    shown = " ".join(shlex.quote(c) for c in command).replace(str(folder), "OUT")
    return out.with_suffix(".wav"), out.with_suffix(".json"), shown


def excerpt(wav: Path, ogg: Path) -> None:
    audio, rate = soundfile.read(wav)
    part = audio[int(EXCERPT[0] * rate):int(EXCERPT[1] * rate)].copy()
    ramp = np.linspace(0.0, 1.0, int(FADE * rate))[:, None]
    part[:len(ramp)] *= ramp
    part[-len(ramp):] *= ramp[::-1]
    soundfile.write(ogg, part, rate, format="OGG", subtype="VORBIS")


def measure(style: str, wav: Path, sidecar: Path) -> tuple[str, np.ndarray]:
    """One line of figures for the style's whole score, and its octave-band spectrum (dB)."""
    audio, rate = soundfile.read(wav)
    side = json.loads(sidecar.read_text())
    midi = pretty_midi.PrettyMIDI(side["midi"])
    arousal = [s["arousal"] for s in side["scenes"]]
    loud = [integrated_loudness(audio[int((s["start"] + 0.2) * rate):int((s["end"] - 0.2) * rate)], rate)
            for s in side["scenes"]]
    calm = [v for v, a in zip(loud, arousal) if a < -0.5]
    lively = [v for v, a in zip(loud, arousal) if a > 0.4]
    window = int(0.1 * rate)
    frames = len(audio) // window
    level = 10 * np.log10(np.mean(audio[:frames * window].reshape(frames, window, 2) ** 2, axis=(1, 2)) + 1e-20)
    sounding = np.zeros(frames, bool)
    for inst in midi.instruments:
        for n in inst.notes:
            sounding[int(n.start / 0.1) + 1:min(int(n.end / 0.1), frames - int(3.0 / 0.1))] = True
    mono = audio.mean(axis=1)
    blocks = mono[:len(mono) // 8192 * 8192].reshape(-1, 8192) * np.hanning(8192)
    power = (np.abs(np.fft.rfft(blocks, axis=1)) ** 2).mean(axis=0)
    freq = np.fft.rfftfreq(8192, 1 / rate)
    bands = np.array([power[(freq >= lo) & (freq < 2 * lo)].sum() for lo in 31.25 * 2.0 ** np.arange(9)])
    programs = sorted({f"{instrument_group(i)}:{i.program}{' kit' if i.is_drum else ''}" for i in midi.instruments})
    line = (f"{style:<10} {side['lufs']:6.1f} LUFS, peak {20 * np.log10(np.max(np.abs(audio))):5.2f} dBFS, "
            f"DC {np.max(np.abs(audio.mean(axis=0))):.1e}, silent while notes sound {np.mean(level[sounding] < -60):.1%}; "
            f"scene loudness {' '.join(f'{v:.1f}' for v in loud)} LUFS, Spearman vs arousal "
            f"{spearmanr(arousal, loud)[0]:.2f}, calm (a<-0.5) vs lively (a>0.4) "
            f"{min(lively) - max(calm):.1f} dB; programs {', '.join(programs)}")
    return line, 10 * np.log10(bands / bands.sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soundfont", type=Path, default=FLUID if FLUID.is_file() else None)
    parser.add_argument("--keep", type=Path, help="keep the full scores in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="emsync-styles-"))
    folder.mkdir(parents=True, exist_ok=True)
    spectra = {}
    for style in STYLES:
        wav, sidecar, command = score(style, folder, args.soundfont)
        ogg = Path(__file__).with_name(f"sample-{style}.ogg")
        excerpt(wav, ogg)
        line, spectra[style] = measure(style, wav, sidecar)
        print(f"$ {command}\n  -> {ogg.relative_to(ROOT)} ({ogg.stat().st_size // 1024} KB)\n  {line}")
    print("octave-band spectrum differences, dB RMS:")
    for a, b in combinations(spectra, 2):
        print(f"  {a:<10} {b:<10} {np.sqrt(np.mean((spectra[a] - spectra[b]) ** 2)):5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
