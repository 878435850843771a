"""How much a checkpoint's valence input moves its mode: a low-noise measure for training.

    python -m onnx_models.training.probe runs/v11/weights_fp16.pt runs/v12/weights_fp16.pt \
        [--teacher onnx_models/training/runs/v12/probe] [--pieces 60]

The benchmark's model-alone valence (Spearman over 100-300 generated pieces) has 95 % intervals
about ±0.2 wide, too wide to follow a training run. This reads teacher pieces (``distill.py``,
a worker not trained on) and, at every note-on of the piece's tonic's third or sixth (minor or
major), compares the model's log-odds of the minor against the major interval with valence
-0.8 against +0.8 fed throughout (arousal and offsets as recorded). Larger is stronger
control; positive means negative valence favours minor. Printed per checkpoint: thirds, sixths,
and thirds and sixths within a piece's first 12 tokens (where its mode is chosen).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from emsync_plugin.music.vocab import Vocab

from .distill import Teacher, load_teacher
from .export import load
from .model import MusicTransformer
from .prepare_data import VOCAB_SPEC

LOW, HIGH = -0.8, 0.8
INTERVALS = ((3, 4), (8, 9))  # (minor, major) third and sixth above the tonic


@torch.no_grad()
def _log_probs(model: MusicTransformer, tokens: np.ndarray, cond: np.ndarray, valence: float) -> np.ndarray:
    n = len(tokens)
    logits, _, _ = model(torch.from_numpy(tokens[None]), torch.full((1, n), valence),
                         torch.from_numpy(cond[None, :, 1]), torch.from_numpy(cond[None, :, 2]))
    return torch.log_softmax(logits[0], -1).numpy()


def shifts(model: MusicTransformer, teacher: Teacher, vocab: Vocab, pieces: int = 60,
           max_tokens: int = 256) -> dict[str, list[float]]:
    """Per probed note-on, the minor-minus-major log-odds at valence LOW minus that at HIGH."""
    out: dict[str, list[float]] = {"third": [], "sixth": [], "first 12 tokens": []}
    for i in range(min(pieces, len(teacher))):
        a, b = int(teacher.offsets[i]), min(int(teacher.offsets[i + 1]), int(teacher.offsets[i]) + max_tokens)
        tokens, cond = teacher.tokens[a:b], teacher.cond[a:b]
        lp = {v: _log_probs(model, tokens, cond, v) for v in (LOW, HIGH)}
        for p, y in enumerate(tokens[1:]):
            if vocab.kind(int(y)) != "on":
                continue
            group, pitch = vocab.group_pitch(int(y))
            rel = (pitch - int(teacher.tonics[i])) % 12
            for name, (minor, major) in zip(("third", "sixth"), INTERVALS):
                lo, hi = pitch - rel + minor, pitch - rel + major
                if rel not in (minor, major) or lo < vocab.pitch_min or hi > vocab.pitch_max:
                    continue
                t_lo, t_hi = vocab.note_on(group, lo), vocab.note_on(group, hi)
                d = float((lp[LOW][p, t_lo] - lp[LOW][p, t_hi]) - (lp[HIGH][p, t_lo] - lp[HIGH][p, t_hi]))
                out[name].append(d)
                if p < 12:
                    out["first 12 tokens"].append(d)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("--teacher", type=Path, default=Path(__file__).resolve().parent / "runs" / "v12" / "probe")
    p.add_argument("--pieces", type=int, default=60)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    vocab = Vocab.from_json(VOCAB_SPEC)
    teacher = load_teacher(args.teacher, vocab)
    print("| checkpoint | thirds (n) | sixths (n) | first 12 tokens (n) |")
    print("|---|---|---|---|")
    for path in args.checkpoints:
        s = shifts(load(path)[0], teacher, vocab, args.pieces)
        cells = " | ".join(f"{np.mean(v):.2f} ({len(v)})" for v in s.values())
        print(f"| {path} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
