"""Train the music transformer on 2 CPU cores, resumably (nanoGPT's loop, read top to bottom).

    python -m onnx_models.training.train --out onnx_models/training/runs/v1 --minutes 80

Every ``--ckpt-every`` steps it writes ``OUT/ckpt.pt`` (weights, optimiser, step, RNG, config,
vocabulary, label statistics, data hash: everything to resume or export) and appends to
``OUT/log.csv``; every ``--eval-every`` steps it measures the held-out loss and redraws
``OUT/loss.png``. Run it again with the same ``--out`` to resume where it stopped. At the end
(or on Ctrl-C, ``kill``, time limit) it also writes ``OUT/weights_fp16.pt``, a small weights-only copy
to commit and resume from on a new machine (``--init OUT/weights_fp16.pt``).
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from emsync_plugin.music.features import LabelStats
from emsync_plugin.music.vocab import Vocab

from . import dataset
from .dataset import chord_share, iter_pieces, make_example, mode_noise
from .distill import load_teacher, teacher_example
from .model import ModelConfig, MusicTransformer
from .prepare_data import VOCAB_SPEC

logger = logging.getLogger("emsync.train")


def get_batch(pieces, weights, rng, vocab, stats, batch_size, seq_len, cap, chordless_keep=1.0,
              teacher=None, teacher_share=0.0, noise=0.0):
    """``chordless_keep``: the chance of keeping an example whose boundaries mostly (over half)
    fall on single notes rather than chords (monophonic tunes): below 1 the model sees more
    windows where a cut brings a chord, which is what the product asks of it. With a
    ``teacher`` (:func:`distill.load_teacher`), ``teacher_share`` of the rows are the guided
    decoder's music fed with what it was told (guidance distillation). ``noise``: the share of
    the inputs' mode-telling notes moved to the other mode (:func:`dataset.mode_noise`)."""
    rows = []
    while len(rows) < batch_size:
        if teacher is not None and rng.random() < teacher_share:
            rows.append(teacher_example(teacher, rng, vocab, seq_len, cap))
            continue
        piece = pieces[rng.choice(len(pieces), p=weights)]
        ex = make_example(piece, rng, vocab, stats, seq_len=seq_len, cap=cap)
        if ex is None:
            continue
        share = chord_share(ex, vocab) if chordless_keep < 1.0 else None
        if share is not None and share < 0.5 and rng.random() >= chordless_keep:
            continue
        if noise > 0.0:
            ex["inputs"], ignore = mode_noise(ex["tokens"], vocab, noise, rng)
            ex["tokens"] = np.where(ignore, -1, ex["tokens"])
        rows.append(ex)
    tok_key = "tokens" if "tokens" in rows[0] else "input_ids"

    def stack(key, dtype):
        out = np.full((batch_size, seq_len + 1), -1 if key == tok_key else 0, dtype=dtype)
        for i, r in enumerate(rows):
            n = min(len(r[key]), seq_len + 1)
            out[i, :n] = r[key][:n]
        return torch.from_numpy(out)

    tok = stack(tok_key, np.int64)
    x = (stack("inputs", np.int64) if "inputs" in rows[0] else tok)[:, :-1].clamp(min=0)
    y = tok[:, 1:].clone()
    cond = {k: stack(k, np.float32)[:, :-1] for k in ("valence", "arousal", "offset", "since") if k in rows[0]}
    if "mode" in rows[0]:
        cond["mode"] = stack("mode", np.float32)[:, 1:]  # a flag on the target token, not the input
    return x, y, cond


def weighted_loss(logits, y, offset, approach_weight, since=None, departure_weight=1.0, mode=None, mode_weight=1.0):
    """Cross-entropy where the predictions made less than 1 s before a cut weigh
    ``approach_weight`` (the landing shift and the chord on it are rare but are what the
    product needs) and those less than 1 s after one ``departure_weight`` (the chord on the
    cut and its first notes, where the new scene's mood, and mode, must show), the larger of
    the two where both hold; a prediction whose target is a note-on of the key's third or
    sixth (``mode`` = 1, see :func:`dataset.mode_tokens`; a scene's first one
    ``dataset.FIRST_MODE_BOOST``) is further multiplied by ``mode_weight`` times ``mode``: those
    are the notes valence decides, a few per cent of the tokens.
    Normalised by the total weight."""
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-1,
                                           reduction="none")
    w = torch.where(offset.reshape(-1) < 1.0, approach_weight, 1.0)
    if since is not None and departure_weight != 1.0:
        w = torch.maximum(w, torch.where(since.reshape(-1) < 1.0, departure_weight, 1.0))
    if mode is not None and mode_weight != 1.0:
        w = w * torch.where(mode.reshape(-1) > 0, mode_weight * mode.reshape(-1), 1.0)
    w = w * (y.reshape(-1) >= 0)
    return (ce * w).sum() / w.sum().clamp(min=1.0)


def label_stats_dict(source: str, cache_stats: dict, init: Path | None) -> dict:
    """The label normalisation to train with: the cache's (``source="cache"``) or the one the
    ``init`` weights were trained with (``"init"``). A continued stage trained on another cache
    (e.g. a partial rebuild) keeps the meaning of its valence and arousal inputs with ``"init"``:
    the same music gets the same labels as in the stages before it."""
    if source == "cache":
        return cache_stats
    if init is None:
        raise SystemExit("--label-stats init needs --init")
    meta = torch.load(init, map_location="cpu", weights_only=False)
    if "label_stats" not in meta:
        raise SystemExit(f"{init} carries no label statistics")
    return meta["label_stats"]


def centred_on_mode(label_stats: dict) -> dict:
    """The label normalisation with the mode feature measured from 0, where the best major and
    the best minor key fit equally, not from the corpus's (mostly major) mean: valence 0 is then
    the boundary between the modes, which is where the decoder's mode steering puts it."""
    out = json.loads(json.dumps(label_stats))
    out["mean"]["mode"] = 0.0
    return out


def lr_at(step, base_lr, warmup, total):
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def evaluate(model, batches):
    model.eval()
    losses = [model(x, c["valence"], c["arousal"], c["offset"], targets=y)[1].item() for x, y, c in batches]
    model.train()
    return float(np.mean(losses))


def plot(log_path: Path, png: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(log_path.open()))
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    tr = [(float(r["tokens"]) / 1e6, float(r["train_loss"])) for r in rows if r["train_loss"]]
    va = [(float(r["tokens"]) / 1e6, float(r["val_loss"])) for r in rows if r["val_loss"]]
    if tr:
        ax.plot(*zip(*tr), label="train", alpha=0.7)
    if va:
        ax.plot(*zip(*va), label="held-out", marker="o")
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("onnx_models/training/cache"))
    p.add_argument("--out", type=Path, default=Path("onnx_models/training/runs/v1"))
    p.add_argument("--init", type=Path, help="start from these weights (e.g. a committed weights_fp16.pt)")
    p.add_argument("--minutes", type=float, default=60.0, help="stop after this much wall time")
    p.add_argument("--max-steps", type=int, default=20000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--offset-steps", type=int, default=100,
                   help="offsets up to this many shift units get their own embedding (0: none)")
    p.add_argument("--offset-logit-bias", action=argparse.BooleanOptionalAction, default=True,
                   help="a learned output bias per exact offset (with --offset-steps)")
    p.add_argument("--approach-weight", type=float, default=1.0,
                   help="loss weight of the tokens fed less than 1 s before a cut (where the shift that lands on it is chosen)")
    p.add_argument("--departure-weight", type=float, default=1.0,
                   help="loss weight of the predictions made less than 1 s after a cut")
    p.add_argument("--mode-flip", type=float, default=None,
                   help="share of training windows whose scenes may move to the parallel mode "
                        "(default: dataset.MODE_FLIP_PROB)")
    p.add_argument("--mode-weight", type=float, default=1.0,
                   help="loss weight of the note-ons of the key's thirds and sixths (what valence decides)")
    p.add_argument("--chordless-keep", type=float, default=1.0,
                   help="chance of keeping a training window whose cuts mostly fall on single notes")
    p.add_argument("--teacher", type=Path, help="a directory of distill.py teacher files to mix in")
    p.add_argument("--teacher-share", type=float, default=0.5, help="share of the rows taken from --teacher")
    p.add_argument("--label-stats", choices=("cache", "init"), default="cache",
                   help="label normalisation: the cache's, or the --init weights' (a stage trained on another cache)")
    p.add_argument("--whole-flip", type=float, default=0.0,
                   help="of the windows --mode-flip picks, the share moved to the parallel mode as a whole "
                        "(every scene), so that a held mode is the norm (dataset.WHOLE_FLIP_PROB)")
    p.add_argument("--first-mode-weight", type=float, default=1.0,
                   help="the first third or sixth of each scene weighs this many times more again (dataset.FIRST_MODE_BOOST)")
    p.add_argument("--mode-label", choices=("scene", "window"), default="scene",
                   help="the mode in a scene's valence label: measured on the scene's notes, or the window's "
                        "mode in the scene's flip state (dataset.WINDOW_MODE)")
    p.add_argument("--start-prob", type=float, default=None,
                   help="chance that a long piece's window starts at BOS, where a piece's mode is chosen "
                        "(default: dataset.START_PROB)")
    p.add_argument("--mood-blocks", action="store_true",
                   help="every block's layer norms also scaled and shifted by the mood (new, zero at start with --init)")
    p.add_argument("--key-tokens", type=int, choices=(0, 2, 24), default=0,
                   help="a token opens every scene with its key: 2 the mode only, 24 tonic and mode "
                        "(the vocabulary grows; --init pads it)")
    p.add_argument("--modulate", type=float, default=0.0,
                   help="the chance that a scene after a window's first moves to a new key (dataset.MODULATE_PROB)")
    p.add_argument("--mode-noise", type=float, default=0.0,
                   help="the share of the inputs' mode-telling notes moved to the other mode, targets as "
                        "written (dataset.mode_noise; needs --key-tokens 24)")
    p.add_argument("--valence-centre", choices=("corpus", "mode"), default="corpus",
                   help="valence 0 at the corpus's average mode, or where major and minor fit equally")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.mode_flip is not None:
        dataset.MODE_FLIP_PROB = args.mode_flip
    dataset.WINDOW_MODE = args.mode_label == "window"
    dataset.FIRST_MODE_BOOST = args.first_mode_weight
    dataset.WHOLE_FLIP_PROB = args.whole_flip
    dataset.MODULATE_PROB = args.modulate
    if args.start_prob is not None:
        dataset.START_PROB = args.start_prob

    vocab = Vocab.from_json(VOCAB_SPEC)
    if args.mode_noise and args.key_tokens != 24:
        raise SystemExit("--mode-noise moves notes in the stated key: it needs --key-tokens 24")
    if args.key_tokens:
        if args.teacher:
            raise SystemExit("--key-tokens: teacher takes have no key tokens; train without --teacher")
        vocab = replace(vocab, keys=args.key_tokens)
    stats_json = json.loads((args.data / "stats.json").read_text())
    stats_json["label_stats"] = label_stats_dict(args.label_stats, stats_json["label_stats"], args.init)
    if args.valence_centre == "mode":
        stats_json["label_stats"] = centred_on_mode(stats_json["label_stats"])
    stats = LabelStats.from_dict(stats_json["label_stats"])
    data_hash = stats_json.get("data_sha256", "")
    train = [p for p in iter_pieces(args.data, "train")]
    held = [p for p in iter_pieces(args.data, "heldout")]
    lengths = np.array([max(1.0, float(np.asarray(_notes(p))[:, 3].max())) for p in train])
    weights = lengths / lengths.sum()  # sample pieces by duration
    logger.info("%d training pieces, %d held out", len(train), len(held))
    teacher = load_teacher(args.teacher, vocab) if args.teacher else None
    if teacher is not None:
        logger.info("%d teacher pieces (%d tokens), %.0f %% of the rows", len(teacher), len(teacher.tokens),
                    100 * args.teacher_share)

    ckpt_path = args.out / "ckpt.pt"
    cap = 8.0
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        cfg = ModelConfig(**ckpt["config"])
        model = MusicTransformer(cfg)
        model.load_state_dict(ckpt["model"])
        opt = model.configure_optimizer(args.lr)
        opt.load_state_dict(ckpt["optimizer"])
        step, tokens_seen = ckpt["step"], ckpt["tokens"]
        rng = np.random.default_rng()
        rng.bit_generator.state = ckpt["rng"]
        logger.info("resumed from %s at step %d (%.1fM tokens)", ckpt_path, step, tokens_seen / 1e6)
    else:
        cfg = ModelConfig(vocab_size=vocab.size, block_size=args.seq_len, n_layer=args.n_layer, n_head=args.n_head,
                          n_embd=args.n_embd, dropout=args.dropout, offset_cap=cap, offset_unit=vocab.shift_seconds,
                          n_offset_steps=args.offset_steps, offset_logit_bias=args.offset_logit_bias,
                          mood_blocks=args.mood_blocks)
        model = MusicTransformer(cfg)
        if args.init:
            init = torch.load(args.init, map_location="cpu", weights_only=False)
            missing, unexpected = model.load_state_dict(_grown(init["model"], model.state_dict()), strict=False)
            if unexpected or any(not k.startswith(("cond.steps.", "offset_bias.")) and ".mood." not in k for k in missing):
                raise SystemExit(f"{args.init} does not fit this model: missing {missing}, unexpected {unexpected}")
            for k in missing:  # a part the initial weights lack starts from zero: the same function
                torch.nn.init.zeros_(model.get_parameter(k))
            logger.info("initialised from %s%s", args.init, f" (new, zero: {missing})" if missing else "")
        opt = model.configure_optimizer(args.lr)
        step, tokens_seen = 0, 0
        rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed + step)
    logger.info("model: %.2fM parameters, config %s", model.n_params() / 1e6, cfg.to_dict())

    val_rng = np.random.default_rng(12345)  # the same held-out batches every time
    val_w = np.array([max(1.0, float(np.asarray(_notes(p))[:, 3].max())) for p in held])
    val_batches = [get_batch(held, val_w / val_w.sum(), val_rng, vocab, stats, args.batch_size, args.seq_len, cap) for _ in range(8)]

    log_path = args.out / "log.csv"
    new_log = not log_path.exists()
    log_file = log_path.open("a", newline="")
    log = csv.writer(log_file)
    if new_log:
        log.writerow(["step", "tokens", "train_loss", "val_loss", "lr", "elapsed_s", "tokens_per_s"])

    def save():
        meta = dict(config=cfg.to_dict(), vocab=json.loads(vocab.to_json()), label_stats=stats_json["label_stats"],
                    data_sha256=data_hash, step=step, tokens=tokens_seen)
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(dict(model=model.state_dict(), optimizer=opt.state_dict(), rng=rng.bit_generator.state, **meta), tmp)
        tmp.replace(ckpt_path)
        small = {k: v.half() for k, v in model.state_dict().items()}
        tmp = args.out / "weights_fp16.tmp"
        torch.save(dict(model=small, **meta), tmp)
        tmp.replace(args.out / "weights_fp16.pt")

    model.train()
    start = time.time()
    window_tokens, window_start, losses = 0, time.time(), []
    signal.signal(signal.SIGTERM, _interrupt)  # a background run ignores Ctrl-C's signal: kill saves too
    try:
        while step < args.max_steps and (time.time() - start) < args.minutes * 60:
            lr = lr_at(step, args.lr, args.warmup, args.max_steps)
            for g in opt.param_groups:
                g["lr"] = lr * g.get("lr_mult", 1.0)
            x, y, c = get_batch(train, weights, rng, vocab, stats, args.batch_size, args.seq_len, cap,
                                args.chordless_keep, teacher, args.teacher_share, args.mode_noise)
            if args.approach_weight != 1.0 or args.departure_weight != 1.0 or args.mode_weight != 1.0:
                logits, _, _ = model(x, c["valence"], c["arousal"], c["offset"])
                loss = weighted_loss(logits, y, c["offset"], args.approach_weight, c.get("since"), args.departure_weight,
                                     c.get("mode"), args.mode_weight)
            else:
                _, loss, _ = model(x, c["valence"], c["arousal"], c["offset"], targets=y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            n = int((y >= 0).sum())
            tokens_seen += n
            window_tokens += n
            losses.append(loss.item())
            val = ""
            if step % args.eval_every == 0:
                val = f"{evaluate(model, val_batches):.4f}"
            if step % 20 == 0 or val:
                tps = window_tokens / (time.time() - window_start)
                log.writerow([step, tokens_seen, f"{np.mean(losses):.4f}", val, f"{lr:.2e}", f"{time.time() - start:.0f}", f"{tps:.0f}"])
                log_file.flush()
                logger.info("step %d loss %.4f%s lr %.1e %.0f tok/s", step, np.mean(losses), f" val {val}" if val else "", lr, tps)
                window_tokens, window_start, losses = 0, time.time(), []
            if val:
                plot(log_path, args.out / "loss.png")
            if step % args.ckpt_every == 0:
                save()
    except KeyboardInterrupt:
        logger.info("interrupted; saving")
    save()
    val = evaluate(model, val_batches)
    log.writerow([step, tokens_seen, "", f"{val:.4f}", "", f"{time.time() - start:.0f}", ""])
    log_file.close()
    plot(log_path, args.out / "loss.png")
    logger.info("saved %s at step %d, held-out loss %.4f", ckpt_path, step, val)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _grown(weights: dict, fresh: dict) -> dict:
    """``weights`` as float32, a tensor over a smaller vocabulary padded with ``fresh``'s own
    initial entries for the new tokens (the vocabulary is each tensor's first or last axis)."""
    out = {}
    for k, v in weights.items():
        v = v.float()
        f = fresh.get(k)
        if f is not None and v.shape != f.shape and v.dim() == f.dim():
            axis = 0 if v.shape[1:] == f.shape[1:] else -1
            g = f.clone()
            g.narrow(axis, 0, v.shape[axis]).copy_(v)
            v = g
        out[k] = v
    return out


def _notes(piece):
    return np.asarray(piece)


if __name__ == "__main__":
    main()
