"""What a key-token checkpoint's notes take from its inputs, teacher-forced on held-out windows.

    python -m onnx_models.training.key_probe runs/v25/weights_fp16.pt [--modulate 0.5] [--windows 60]

On held-out training windows (mode flips in 80 %, scenes labelled by the window's mode, key
changes at cuts with ``--modulate``), the log-probability the model gives the notes as written,
minus what it gives them with one input changed:

* valence negated: on the note-ons that tell major from minor (``dataset.mode_tokens``);
* each scene's key token moved to the other mode: the same note-ons;
* each scene's key token moved a tritone (mode kept): every note-on.

and how surely it keeps the stated mode: on the same mode-telling note-ons, the share of
probability the written note gets against its twin a semitone away in the other mode
(:func:`dataset.other_mode`), with the context as written and with 30 % of the context's
mode-telling notes in the wrong mode (:func:`dataset.mode_noise`, as a sampled context has
them). 0.5 is a coin toss.

Near 0 means the model ignores that input; the benchmark's model-alone figures show whether
what it learned survives its own context.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from emsync_plugin.music.features import LabelStats
from emsync_plugin.music.vocab import Vocab

from . import dataset
from .export import load


@torch.no_grad()
def _log_probs(model, ex: dict, tokens: np.ndarray, sign: float = 1.0, targets: np.ndarray | None = None) -> np.ndarray:
    """log p(target i | tokens <= i) for every position of the window; the targets are the
    next tokens unless given."""
    logits, _, _ = model(torch.from_numpy(tokens[None, :-1]), torch.from_numpy(sign * ex["valence"][None, :-1]),
                         torch.from_numpy(ex["arousal"][None, :-1]), torch.from_numpy(ex["offset"][None, :-1]))
    want = tokens[1:] if targets is None else targets
    return torch.log_softmax(logits[0], -1).gather(-1, torch.from_numpy(want[:, None]))[:, 0].numpy()


def _twins(tokens: np.ndarray, vocab: Vocab) -> np.ndarray:
    """For each next token, its other-mode twin in the latest stated key (itself where none)."""
    out, keys = tokens[1:].copy(), dataset.stated_keys(tokens, vocab)
    for i, nxt in enumerate(out.tolist()):
        if keys[i] >= 0 and vocab.kind(nxt) == "on":
            out[i] = dataset.other_mode(nxt, int(keys[i]), vocab) or nxt
    return out


def _kept(model, ex: dict, tokens: np.ndarray, written: np.ndarray, twins: np.ndarray) -> np.ndarray:
    """p(written) / (p(written) + p(twin)) at each position, ``tokens`` the context."""
    a, b = _log_probs(model, ex, tokens, targets=written), _log_probs(model, ex, tokens, targets=twins)
    return 1.0 / (1.0 + np.exp(b - a))


def _moved(tokens: np.ndarray, marks: np.ndarray, vocab: Vocab, flip: bool, tonic_by: int) -> np.ndarray:
    out = tokens.copy()
    for i in marks:
        tonic, major = vocab.key_of(int(tokens[i]))
        out[i] = vocab.key(major != flip, (tonic or 0) + tonic_by)
    return out


def probe(path: Path, windows: int = 60, modulate: float = 0.0, seed: int = 0) -> dict[str, float]:
    """Mean nats lost per probed note-on when valence, a scene key's mode or its tonic is changed;
    the mean share the stated mode keeps against the other (``keys=24``)."""
    model, ckpt = load(path)
    vocab, stats = Vocab.from_json(ckpt["vocab"]), LabelStats.from_dict(ckpt["label_stats"])
    if not vocab.keys:
        raise SystemExit(f"{path} has no key tokens")
    dataset.MODE_FLIP_PROB, dataset.WINDOW_MODE, dataset.MODULATE_PROB = 0.8, True, modulate
    rng, noise_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    held = list(dataset.iter_pieces(split="heldout"))
    lost: dict[str, list[np.ndarray]] = {"valence negated": [], "key's mode swapped": [], "key's tonic a tritone away": [],
                                         "stated mode kept": [], "kept after wrong notes": []}
    for piece in held[:: max(1, len(held) // windows)][:windows]:
        ex = dataset.make_example(piece, rng, vocab, stats)
        if ex is None:
            continue
        tok = ex["tokens"]
        marks = np.flatnonzero(tok >= vocab.shift_end)
        telling = (ex["mode"] > 0)[1:] & (tok[1:] < vocab.shift_end)
        notes = (tok[1:] >= vocab.on_base) & (tok[1:] < vocab.off_base)
        base = _log_probs(model, ex, tok)
        lost["valence negated"].append((base - _log_probs(model, ex, tok, -1.0))[telling])
        lost["key's mode swapped"].append((base - _log_probs(model, ex, _moved(tok, marks, vocab, True, 0)))[telling])
        moved = _moved(tok, marks, vocab, False, 6) if vocab.keys == 24 else tok
        lost["key's tonic a tritone away"].append((base - _log_probs(model, ex, moved))[notes])
        if vocab.keys == 24:
            twins = _twins(tok, vocab)
            pair = telling & (twins != tok[1:])
            noisy, _ = dataset.mode_noise(tok, vocab, 0.3, noise_rng)
            lost["stated mode kept"].append(_kept(model, ex, tok, tok[1:], twins)[pair])
            lost["kept after wrong notes"].append(_kept(model, ex, noisy, tok[1:], twins)[pair])
    return {k: float(np.concatenate(v).mean()) for k, v in lost.items() if v}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("--windows", type=int, default=60)
    p.add_argument("--modulate", type=float, default=0.0, help="key changes at cuts in the probed windows")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print("| checkpoint | valence negated | key's mode swapped | key's tonic a tritone away "
          "| stated mode kept | kept after 30 % wrong notes |")
    print("|---|---|---|---|---|---|")
    for path in args.checkpoints:
        r = probe(path, args.windows, args.modulate)
        cells = [f"{v:+.3f}" if "kept" not in k else f"{v:.3f}" for k, v in r.items()]
        print(f"| {path} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
